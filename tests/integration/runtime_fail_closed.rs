//! Fail-closed OOD over real Zenoh: a finite but absurd state (1e20 in one
//! joint) is the most out-of-distribution input there is, so it must get a
//! flagged score with its reason, never be dropped; it gets no forecast or
//! denoised state, and the robot is served normally again from its next state.

use anyhow::Result;
use ebm_msgs::Encoding;

use crate::harness::{put, receive_until, state, Harness, Received};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_a_state_outside_the_models_range_fails_closed_and_the_robot_recovers() -> Result<()>
{
    let h = Harness::start(|_| {}).await?;
    let mut out = h.outputs("wild").await?;
    let p = h.publisher("wild").await?;
    let mut rec = Received::default();
    // Each state once the previous one's outputs are in: nothing superseded.
    for seq in 0..2u64 {
        put(&p, &state("wild", seq, 0.1 * seq as f32), Encoding::Bincode).await?;
        receive_until(&mut out, &mut rec, |r| {
            r.denoised.iter().any(|d| d.seq == seq)
        })
        .await?;
    }
    let mut absurd = state("wild", 2, 0.2);
    absurd.state[3] = 1e20;
    put(&p, &absurd, Encoding::Json).await?;
    receive_until(&mut out, &mut rec, |r| r.ood.iter().any(|o| o.seq == 2)).await?;
    let score = rec
        .ood
        .iter()
        .find(|o| o.seq == 2)
        .expect("a score")
        .clone();
    assert!(score.flagged && score.window_flagged, "{score:?}");
    assert_eq!(
        (score.percentile, score.window_percentile),
        (100.0, Some(100.0))
    );
    let reason = score.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("state[3] = 100000000000000000000 is"),
        "{reason}"
    );
    assert!(reason.contains("outside the model's range"), "{reason}");
    // The robot is served again from its next state (a new start: no
    // transition into it), then scored normally.
    put(&p, &state("wild", 3, 0.3), Encoding::Bincode).await?;
    receive_until(&mut out, &mut rec, |r| {
        r.denoised.iter().any(|d| d.seq == 3)
    })
    .await?;
    put(&p, &state("wild", 4, 0.4), Encoding::Bincode).await?;
    receive_until(&mut out, &mut rec, |r| r.ood.iter().any(|o| o.seq == 4)).await?;
    assert!(!rec.forecasts.iter().any(|f| f.seq == 2) && !rec.denoised.iter().any(|d| d.seq == 2));
    assert!(
        !rec.ood.iter().any(|o| o.seq == 3),
        "no transition into the first state after"
    );
    let after = rec.ood.iter().find(|o| o.seq == 4).expect("a score");
    assert!(
        after.reason.is_none() && after.percentile < 100.0,
        "{after:?}"
    );
    assert!(rec.forecasts.iter().any(|f| f.seq == 4));
    for d in &rec.denoised {
        assert!(
            d.state.iter().all(|v| v.is_finite() && v.abs() < 1e3),
            "{d:?}"
        );
    }
    let st = h
        .status_where(|s| s.counters["states_processed"] >= 4)
        .await?;
    assert_eq!(st.counters["states_out_of_range"], 1);
    h.stop().await
}
