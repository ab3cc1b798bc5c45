//! The daemon's ingest under random and mutated payloads of every message
//! kind, bincode and JSON, on a robot's state key and as query payloads: it
//! keeps serving, every state sample ends in exactly one counter (processed,
//! superseded or a named refusal), and every query gets a reply.
//! `EBM_INGEST_FUZZ=N` payloads (default 5,000).

use anyhow::{anyhow, Result};
use ebm_msgs::mutate::Mutator;
use ebm_msgs::{
    encode, Action, DaemonStatus, DenoisedState, Encoding, ErrorCode, ErrorReply, Forecast,
    ForecastRequest, Health, Message, OodScore,
};

use crate::harness::{check_forecast, put, receive_until, state, within, Harness, Received, WAIT};

/// Valid payloads of every kind, each in both encodings.
fn pool(robot: &str) -> Result<Vec<(Vec<u8>, Encoding)>> {
    fn both<T: Message>(m: &T, out: &mut Vec<(Vec<u8>, Encoding)>) -> Result<()> {
        for enc in [Encoding::Bincode, Encoding::Json] {
            out.push((encode(m, enc)?, enc));
        }
        Ok(())
    }
    let mut out = Vec::new();
    for seq in [0, 1, 7, 1 << 33] {
        both(&state(robot, seq, 0.1), &mut out)?;
    }
    both(
        &Action {
            robot_id: robot.into(),
            episode: 0,
            seq: 1,
            stamp_ns: 1,
            action: vec![0.1; 20],
        },
        &mut out,
    )?;
    both(
        &Forecast {
            robot_id: robot.into(),
            seq: 1,
            model_id: "m".into(),
            horizon: 1,
            particles: 1,
            trajectories: vec![0.0; 31],
            energies: vec![0.0],
            mean: vec![0.0; 31],
            spread: vec![0.0; 31],
            compute_us: 1,
            langevin_steps: 1,
        },
        &mut out,
    )?;
    both(
        &OodScore {
            robot_id: robot.into(),
            seq: 1,
            model_id: "m".into(),
            energy: 1.0,
            percentile: 50.0,
            flagged: false,
            window_energy: 1.0,
            window_len: 1,
            window_discrepancy: None,
            window_percentile: None,
            window_flagged: false,
            reason: None,
        },
        &mut out,
    )?;
    both(
        &DenoisedState {
            robot_id: robot.into(),
            seq: 1,
            model_id: "m".into(),
            state: vec![0.0; 31],
        },
        &mut out,
    )?;
    both(&request(robot, 3, 2), &mut out)?;
    both(
        &DaemonStatus {
            daemon_id: "d".into(),
            health: Health::Ok,
            models: vec![],
            warnings: vec![],
            uptime_ms: 1,
            robots: 0,
            counters: Default::default(),
        },
        &mut out,
    )?;
    both(
        &ErrorReply {
            code: ErrorCode::Malformed,
            message: "x".into(),
        },
        &mut out,
    )?;
    Ok(out)
}

fn request(robot: &str, horizon: u32, particles: u32) -> ForecastRequest {
    ForecastRequest {
        robot_id: robot.into(),
        horizon,
        particles,
        deadline_ms: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_ingest_counts_every_mutated_payload_and_keeps_serving() -> Result<()> {
    let n: usize = std::env::var("EBM_INGEST_FUZZ")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000);
    let h = Harness::start(|_| {}).await?;
    let robot = "fz";
    let pool = pool(robot)?;
    let mut rng = Mutator::new(0xfeed);
    let p = h.publisher(robot).await?;
    // States first (each sample to one counter), then queries (each to a reply).
    for _ in 0..n {
        let (base, enc) = &pool[rng.below(pool.len())];
        let (other, _) = &pool[rng.below(pool.len())];
        let payload = rng.mutate(base, other, *enc == Encoding::Json);
        within(
            "put",
            p.put(payload)
                .encoding(zenoh::bytes::Encoding::from(enc.mime())),
        )
        .await?
        .map_err(|e| anyhow!("{e}"))?;
    }
    let total = n as u64;
    let status = h
        .status_where(|s| s.counters["states_received"] >= total)
        .await?;
    let buckets = [
        "states_processed",
        "states_superseded",
        "states_malformed",
        "states_wrong_dimensions",
        "states_non_finite",
        "states_out_of_range",
        "states_out_of_order",
        "states_unknown_robot",
        "states_too_many_robots",
    ];
    // Settled: every received state counted once (pending ones are served).
    let settled = h
        .status_where(|s| {
            buckets.iter().map(|b| s.counters[*b]).sum::<u64>() == s.counters["states_received"]
        })
        .await
        .map_err(|e| anyhow!("states not each counted once ({e}); first status {status:?}"))?;
    assert_eq!(
        settled.counters["states_received"], total,
        "{:?}",
        settled.counters
    );
    assert_eq!(settled.health, Health::Ok);

    let queries = n / 10;
    let (mut answered, mut refused) = (0, 0);
    let key = format!("{}/{robot}/forecast_query", h.keys.prefix());
    let base = encode(&request(robot, 3, 2), Encoding::Bincode)?;
    for i in 0..queries {
        let enc = if i % 2 == 0 {
            Encoding::Bincode
        } else {
            Encoding::Json
        };
        let (base, other) = match enc {
            Encoding::Bincode => (base.clone(), pool[rng.below(pool.len())].0.clone()),
            Encoding::Json => (encode(&request(robot, 3, 2), enc)?, base.clone()),
        };
        let payload = rng.mutate(&base, &other, enc == Encoding::Json);
        let replies = within(
            "query",
            h.session
                .get(key.as_str())
                .payload(payload)
                .encoding(zenoh::bytes::Encoding::from(enc.mime()))
                .timeout(WAIT),
        )
        .await?
        .map_err(|e| anyhow!("{e}"))?;
        let reply = within("reply", replies.recv_async())
            .await?
            .map_err(|e| anyhow!("query {i} got no reply: {e}"))?;
        match reply.result() {
            Ok(_) => answered += 1,
            Err(_) => refused += 1,
        }
    }
    assert_eq!(answered + refused, queries);
    assert!(refused > 0, "no mutated query was refused");

    // Still serving: a well-formed robot gets its forecast.
    let mut outputs = h.outputs("after").await?;
    let good = h.publisher("after").await?;
    put(&good, &state("after", 0, 0.0), Encoding::Bincode).await?;
    let mut rec = Received::default();
    receive_until(&mut outputs, &mut rec, |r| !r.forecasts.is_empty()).await?;
    check_forecast(&rec.forecasts[0], 5, 4);
    eprintln!(
        "ingest fuzz: {n} state payloads ({} processed, {} refused), {queries} queries ({answered} answered, {refused} refused)",
        settled.counters["states_processed"] + settled.counters["states_superseded"],
        n as u64 - settled.counters["states_processed"] - settled.counters["states_superseded"],
    );
    h.stop().await
}
