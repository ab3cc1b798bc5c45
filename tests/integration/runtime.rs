//! The runtime daemon over real Zenoh sessions on loopback.
//!
//! Hermetic: each test starts its own daemon on a free 127.0.0.1 port with
//! multicast and gossip scouting off, on a tiny checkpoint written to a temp
//! dir (so no committed model is needed); the client session connects to it
//! explicitly, and every await is under a timeout. The only timing assert is
//! the deadline one, with its margin stated there.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use ebm_msgs::{decode, encode, Encoding, ErrorCode, ErrorReply, ForecastRequest};
use ebm_sim_data::HAND_STATE_DIM;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_states_in_give_forecasts_ood_scores_and_denoised_states_out() -> Result<()> {
    let h = Harness::start(|_| {}).await?;
    let (hz, pz) = (h.cfg.forecast.horizon, h.cfg.forecast.particles);
    for (robot, enc) in [("hand-1", Encoding::Bincode), ("hand-json", Encoding::Json)] {
        let mut sub = h.outputs(robot).await?;
        let publ = h.publisher(robot).await?;
        let mut rec = Received::default();
        for seq in 0..3u64 {
            put(&publ, &state(robot, seq, 0.1 * seq as f32), enc).await?;
            let encs = receive_until(&mut sub, &mut rec, |r| {
                r.forecasts.iter().any(|f| f.seq == seq)
                    && r.denoised.iter().any(|d| d.seq == seq)
                    && (seq == 0 || r.ood.iter().any(|o| o.seq == seq))
            })
            .await?;
            assert!(
                encs.iter().all(|&e| e == enc),
                "outputs come in the input's encoding"
            );
        }
        for f in &rec.forecasts {
            check_forecast(f, hz, pz);
            assert_eq!(f.robot_id, robot);
            assert_eq!(
                f.langevin_steps as usize,
                hz * h.cfg.forecast.langevin.steps
            );
        }
        // The first state of an episode has no transition, hence no OOD score.
        assert!(rec.ood.iter().all(|o| o.seq >= 1), "{:?}", rec.ood);
        for o in &rec.ood {
            assert!(o.energy.is_finite() && (0.0..=100.0).contains(&o.percentile));
            assert_eq!(
                o.flagged,
                f64::from(o.percentile) >= h.cfg.ood.flag_percentile
            );
            // The window holds this episode's scored transitions so far (the
            // test checkpoint stores no window statistics: no percentile).
            assert!(
                o.window_len >= 1 && u64::from(o.window_len) <= o.seq,
                "{o:?}"
            );
            assert!(o.window_energy.is_finite() && o.window_percentile.is_none());
            assert!(o.window_discrepancy.is_none());
            if o.window_len == 1 {
                assert_eq!(o.window_energy, o.energy);
            }
        }
        for d in &rec.denoised {
            assert_eq!(d.state.len(), HAND_STATE_DIM);
            assert!(d.state.iter().all(|v| v.is_finite()));
        }
    }
    // The liveliness token is visible.
    let replies = within(
        "liveliness",
        h.session
            .liveliness()
            .get(format!("{}/@alive/*", h.keys.prefix())),
    )
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = within("liveliness reply", replies.recv_async())
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = token
        .result()
        .map_err(|_| anyhow::anyhow!("error reply"))?
        .key_expr()
        .to_string();
    assert_eq!(key, "ebm/@alive/ebm-runtime");
    let st = h
        .status_where(|s| s.counters["states_processed"] >= 6)
        .await?;
    assert_eq!(st.robots, 2);
    assert_eq!(st.models.len(), 1);
    assert_eq!(st.models[0].ood_percentiles, "checkpoint");
    assert_eq!(st.models[0].robots_pattern, "*");
    assert_eq!(st.models[0].robot.state_dim, HAND_STATE_DIM);
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_query_with_deadline_is_answered_in_time() -> Result<()> {
    // 200 Langevin steps per predicted step: a 200-step, 256-particle query
    // runs 40,000 steps in full, several seconds even for this tiny model.
    let h = Harness::start(|c| {
        c.forecast.langevin.steps = 200;
        c.forecast.rate_hz = 0.2; // streaming forecasts stay out of the way
    })
    .await?;
    let publ = h.publisher("arm").await?;
    put(&publ, &state("arm", 0, 0.0), Encoding::Bincode).await?;
    h.status_where(|s| s.robots == 1).await?;

    // Small and without deadline: every step runs.
    let small = ForecastRequest {
        robot_id: "arm".into(),
        horizon: 3,
        particles: 2,
        deadline_ms: None,
    };
    let (r, _) = query(&h, &small, Encoding::Json).await?;
    let f = r.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    check_forecast(&f, 3, 2);
    assert_eq!(f.langevin_steps, 3 * 200);

    let deadline_ms = 150;
    let big = ForecastRequest {
        robot_id: "arm".into(),
        horizon: 200,
        particles: 256,
        deadline_ms: Some(deadline_ms),
    };
    let (r, elapsed) = query(&h, &big, Encoding::Bincode).await?;
    let f = r.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    check_forecast(&f, 200, 256);
    assert!(
        f.langevin_steps < 200 * 200,
        "ran {} steps: no early stop",
        f.langevin_steps
    );
    // Margin: 1.5 s for queueing behind a streaming forecast, the tail of
    // predicted steps that run no Langevin step, encoding a 6 MB reply and
    // the round trip, on 2 shared cores.
    let margin = Duration::from_millis(1500);
    assert!(
        elapsed < Duration::from_millis(deadline_ms) + margin,
        "answered after {elapsed:?}"
    );

    // Errors: unknown robot, out-of-range sizes, malformed payload.
    let unknown = ForecastRequest {
        robot_id: "ghost".into(),
        ..small.clone()
    };
    let (r, _) = query(&h, &unknown, Encoding::Bincode).await?;
    assert_eq!(r.map(|_| ()).unwrap_err().code, ErrorCode::UnknownRobot);
    let too_big = ForecastRequest {
        horizon: 10_000,
        ..small.clone()
    };
    let (r, _) = query(&h, &too_big, Encoding::Bincode).await?;
    assert_eq!(r.map(|_| ()).unwrap_err().code, ErrorCode::WrongDimensions);
    // Within the size bounds, but not encodable as JSON under the message
    // limit (about 28 MB of text): refused before any inference, by name.
    let (r, elapsed) = query(&h, &big, Encoding::Json).await?;
    let err = r.map(|_| ()).unwrap_err();
    assert_eq!(err.code, ErrorCode::WrongDimensions);
    assert!(err.message.contains("message limit"), "{}", err.message);
    assert!(
        elapsed < Duration::from_secs(5),
        "refused after {elapsed:?}"
    );
    let replies = within(
        "bad query",
        h.session
            .get("ebm/arm/forecast_query")
            .payload(vec![1u8, 2, 3])
            .encoding(zenoh::bytes::Encoding::from(Encoding::Bincode.mime()))
            .timeout(WAIT),
    )
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let reply = within("bad reply", replies.recv_async())
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let err = reply.result().map(|_| ()).unwrap_err();
    let err: ErrorReply = decode(&err.payload().to_bytes(), Encoding::Bincode)?;
    assert_eq!(err.code, ErrorCode::Malformed);
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_malformed_messages_are_counted_and_a_valid_one_is_still_served() -> Result<()> {
    let h = Harness::start(|_| {}).await?;
    let mut sub = h.outputs("r1").await?;
    let publ = h.publisher("r1").await?;
    let good = encode(&state("r1", 5, 0.3), Encoding::Bincode)?;
    let json = String::from_utf8(encode(&state("r1", 5, 0.3), Encoding::Json)?)?;
    let bin = zenoh::bytes::Encoding::from(Encoding::Bincode.mime());
    let js = zenoh::bytes::Encoding::from(Encoding::Json.mime());
    let mut sent = BTreeMap::<&str, u64>::new();
    for i in 0..1000usize {
        let (payload, enc, kind) = match i % 8 {
            0 => (vec![0xFF; i % 50], bin.clone(), "malformed"),
            1 => (
                good[..good.len() - 1 - i % 10].to_vec(),
                bin.clone(),
                "malformed",
            ),
            2 => {
                let mut b = good.clone();
                b.push(0);
                (b, bin.clone(), "malformed") // trailing byte
            }
            3 => {
                let mut b = good.clone();
                b[0] = 9;
                (b, bin.clone(), "malformed") // protocol version 9
            }
            4 => {
                // 30 floats instead of 31.
                let bad = json.replacen("0.3,", "", 1);
                (bad.into_bytes(), js.clone(), "wrong_dimensions")
            }
            5 => (
                good.clone(),
                zenoh::bytes::Encoding::from("text/plain"),
                "malformed",
            ),
            6 => {
                let other = encode(&state("r2", 5, 0.3), Encoding::Bincode)?;
                (other, bin.clone(), "malformed") // names another robot
            }
            _ => (b"{\"v\":1,\"msg\":{}}".to_vec(), js.clone(), "malformed"),
        };
        *sent.entry(kind).or_default() += 1;
        within("put", publ.put(payload).encoding(enc))
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    put(&publ, &state("r1", 5, 0.3), Encoding::Bincode).await?;
    let mut rec = Received::default();
    receive_until(&mut sub, &mut rec, |r| {
        r.forecasts.iter().any(|f| f.seq == 5)
    })
    .await?;
    let st = h
        .status_where(|s| s.counters["states_received"] >= 1001)
        .await?;
    let c = &st.counters;
    assert_eq!(c["states_received"], 1001, "{c:?}");
    assert_eq!(c["states_malformed"], sent["malformed"], "{c:?}");
    assert_eq!(
        c["states_wrong_dimensions"], sent["wrong_dimensions"],
        "{c:?}"
    );
    assert_eq!(c["states_processed"], 1, "{c:?}");
    // Each state of the wrong size was answered on the robot's error key
    // (or, with the error queue full, counted as not answered).
    assert_eq!(
        c["state_errors_published"] + c["state_errors_dropped"],
        sent["wrong_dimensions"],
        "{c:?}"
    );
    h.stop().await
}

/// Warm starts through the daemon: a robot's consecutive states (or states
/// up to `forecast.warm.max_gap` apart) get forecasts started from the
/// previous one (`forecast.warm.steps` per prediction but for the cold head
/// and tail), and a longer gap, a new episode or a restart starts cold again
/// (`langevin.steps` per prediction); the status counts the warm ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_warm_starts_follow_consecutive_states_and_restart_cold() -> Result<()> {
    let h = Harness::start(|c| {
        c.forecast.warm.steps = 3;
        c.forecast.warm.max_gap = 2; // the horizon is 5
                                     // Only a non-finite energy flags: this test is about warm starts.
        c.ood.flag_percentile = 100.0;
    })
    .await?;
    let (hz, k) = (h.cfg.forecast.horizon, h.cfg.forecast.langevin.steps);
    let robot = "warm-1";
    let mut sub = h.outputs(robot).await?;
    let publ = h.publisher(robot).await?;
    let mut rec = Received::default();
    let max_gap = h.cfg.forecast.warm.max_gap as u64;
    let cases = [
        (0, 0, false),
        (0, 1, true),
        (0, 2, true),
        (0, 3 + max_gap, false), // a gap longer than the bridge
        (0, 4 + max_gap, true),
        (0, 4 + 2 * max_gap, true),  // a gap the bridge spans
        (1, 5 + 2 * max_gap, false), // a new episode
        (1, 6 + 2 * max_gap, true),
        (1, 0, false), // a restart
    ];
    let mut last = 0;
    for (episode, seq, warm) in cases {
        let mut s = state(robot, seq, 0.1 + 0.01 * seq as f32);
        s.episode = episode;
        let seen = rec.forecasts.len();
        put(&publ, &s, Encoding::Bincode).await?;
        receive_until(&mut sub, &mut rec, |r| r.forecasts.len() > seen).await?;
        let f = &rec.forecasts[seen];
        assert_eq!(f.seq, seq);
        // Warm: the cold head and tail (at least the steps moved) run
        // `langevin.steps`, the rest 3.
        let w = &h.cfg.forecast.warm;
        let cold = w.cold_head + w.cold_tail.max((seq - last) as usize);
        let want = if warm {
            (hz - cold) * 3 + cold * k
        } else {
            hz * k
        };
        assert_eq!(
            f.langevin_steps as usize, want,
            "episode {episode}, seq {seq}: warm {warm}"
        );
        check_forecast(f, hz, h.cfg.forecast.particles);
        last = seq;
    }
    h.status_where(|s| s.counters.get("forecasts_warm") == Some(&5))
        .await?;
    h.stop().await
}
