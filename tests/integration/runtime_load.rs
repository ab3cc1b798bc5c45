//! The runtime daemon under load, with more robot ids than slots, and with a
//! separate OOD model, over real Zenoh sessions on loopback (the harness is
//! in `harness.rs`).

use anyhow::Result;
use ebm_msgs::Encoding;

use crate::harness::{
    put, receive_until, state, tiny_checkpoint, tiny_checkpoint_with_context, Harness, Received,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_burst_of_10000_states_stays_bounded_and_serves_the_latest() -> Result<()> {
    // 5 forecasts a second at most: a 10,000-state burst must be absorbed by
    // the one-slot-per-robot inbox.
    let h = Harness::start(|c| c.forecast.rate_hz = 5.0).await?;
    let mut sub = h.outputs("fast").await?;
    let publ = h.publisher("fast").await?;
    let n = 10_000u64;
    for seq in 0..n {
        put(&publ, &state("fast", seq, 0.0), Encoding::Bincode).await?;
    }
    let mut rec = Received::default();
    receive_until(&mut sub, &mut rec, |r| {
        r.forecasts.iter().any(|f| f.seq == n - 1)
    })
    .await?;
    let st = h
        .status_where(|s| {
            // Every state is either served or superseded (eventually; an
            // earlier status may predate the last one's processing).
            let c = &s.counters;
            c["states_received"] == n && c["states_processed"] + c["states_superseded"] == n
        })
        .await?;
    let c = &st.counters;
    // Never more than one state waiting per robot: memory does not grow with the burst.
    assert_eq!(c["pending_max"], 1, "{c:?}");
    assert_eq!(c["states_out_of_order"] + c["outputs_dropped"], 0, "{c:?}");
    assert!(
        c["states_superseded"] > n / 2,
        "latest-wins never kicked in: {c:?}"
    );
    assert!(rec.forecasts.len() < (n / 2) as usize);
    // Forecasts come in order, the last being from the last state.
    assert!(rec.forecasts.windows(2).all(|w| w[0].seq < w[1].seq));
    h.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_two_robots_are_served_at_once() -> Result<()> {
    let h = Harness::start(|_| {}).await?;
    let mut subs = [h.outputs("left").await?, h.outputs("right").await?];
    let pubs = [h.publisher("left").await?, h.publisher("right").await?];
    for seq in 0..4u64 {
        for (robot, p) in ["left", "right"].iter().zip(&pubs) {
            put(
                p,
                &state(robot, seq, if *robot == "left" { 0.0 } else { 1.0 }),
                Encoding::Bincode,
            )
            .await?;
        }
    }
    for (robot, sub) in ["left", "right"].iter().zip(subs.iter_mut()) {
        let mut rec = Received::default();
        receive_until(sub, &mut rec, |r| r.forecasts.iter().any(|f| f.seq == 3)).await?;
        assert!(rec.forecasts.iter().all(|f| f.robot_id == *robot));
        // Each robot's forecast starts near its own state (1.0 apart).
        let f = rec.forecasts.last().map(|f| f.mean[0]).unwrap_or(f32::NAN);
        let want = if *robot == "left" { 0.0 } else { 1.0 };
        assert!((f - want).abs() < 0.5, "{robot}: first mean {f}");
    }
    let st = h.status_where(|s| s.robots == 2).await?;
    assert!(st.counters["batched_robots"] >= 2);
    h.stop().await
}

/// With `ood.checkpoints` set, OOD scores come from those models (composed;
/// here one with the forecast model's context and one with a longer one)
/// while forecasts keep coming from the forecast model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_scores_ood_with_separate_models() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (ood1, ood2) = (tmp.path().join("tiny-ood"), tmp.path().join("tiny-ood2"));
    tiny_checkpoint(&ood1)?;
    tiny_checkpoint_with_context(&ood2, 2)?;
    let h = Harness::start(|c| c.ood.checkpoints = vec![ood1.clone(), ood2.clone()]).await?;
    let mut sub = h.outputs("hand-ood").await?;
    let publ = h.publisher("hand-ood").await?;
    let mut rec = Received::default();
    for seq in 0..3u64 {
        put(
            &publ,
            &state("hand-ood", seq, 0.1 * seq as f32),
            Encoding::Bincode,
        )
        .await?;
    }
    receive_until(&mut sub, &mut rec, |r| {
        r.ood.iter().any(|o| o.seq == 2) && !r.forecasts.is_empty()
    })
    .await?;
    assert!(
        rec.ood
            .iter()
            .all(|o| o.model_id == "tiny-ood@42+tiny-ood2@42" && o.energy.is_finite()),
        "{:?}",
        rec.ood
    );
    assert!(rec.forecasts.iter().all(|f| f.model_id == "tiny@42"));
    h.stop().await
}

/// Robot slots are not taken for ever: with every slot held by robots that
/// went silent, a new robot is refused only until they have been idle for
/// `engine.robot_idle_s`; then their slots are freed and it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_idle_robots_give_their_slots_back() -> Result<()> {
    let h = Harness::start(|c| {
        c.engine.max_robots = 2;
        c.engine.robot_idle_s = 2.0; // a margin over the first forecasts on a slow machine
    })
    .await?;
    for robot in ["once-1", "once-2"] {
        let mut out = h.outputs(robot).await?;
        put(
            &h.publisher(robot).await?,
            &state(robot, 0, 0.1),
            Encoding::Bincode,
        )
        .await?;
        receive_until(&mut out, &mut Received::default(), |r| {
            !r.forecasts.is_empty()
        })
        .await?;
    }
    let mut out = h.outputs("late").await?;
    let late = h.publisher("late").await?;
    put(&late, &state("late", 0, 0.2), Encoding::Bincode).await?;
    let st = h
        .status_where(|s| s.counters["states_too_many_robots"] >= 1)
        .await?;
    assert_eq!(
        (st.robots, st.counters["robots_evicted"]),
        (2, 0),
        "the others are still fresh"
    );
    // Once both have been silent for the idle time, their slots are freed.
    let st = h
        .status_where(|s| s.counters["robots_evicted"] >= 2)
        .await?;
    assert_eq!(st.robots, 0);
    put(&late, &state("late", 1, 0.2), Encoding::Bincode).await?;
    let mut rec = Received::default();
    receive_until(&mut out, &mut rec, |r| {
        r.forecasts.iter().any(|f| f.seq == 1)
    })
    .await?;
    let st = h.status_where(|s| s.robots == 1).await?;
    assert_eq!(st.models[0].robots, ["late"]);
    assert_eq!(st.counters["states_too_many_robots"], 1);
    h.stop().await
}

/// An OOD model that cannot be used is not only logged: the status says
/// which and why, and the forecast model scores instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_status_names_ood_models_it_could_not_use() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let missing = tmp.path().join("no-such-model");
    let h = Harness::start(|c| c.ood.checkpoints = vec![missing]).await?;
    let st = h.status_where(|_| true).await?;
    assert!(
        st.warnings.iter().any(|w| w.contains("OOD model")
            && w.contains("no-such-model")
            && w.contains("not loaded")),
        "{:?}",
        st.warnings
    );
    assert_eq!(st.models[0].ood_model_id, "tiny@42");
    h.stop().await
}
