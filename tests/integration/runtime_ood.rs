//! The daemon's window test over real Zenoh, on the committed OOD model
//! (`configs/models/traj_residual`, which stores the Stein window test): a
//! robot replaying a nominal simulated episode stays unflagged, the same
//! episode under sensor noise is flagged once its window is full.

use std::path::Path;

use anyhow::Result;
use candle_core::Device;
use ebm_core::Rng;
use ebm_msgs::{Encoding, RobotState};
use ebm_sim_data::config::SimConfig;
use ebm_sim_data::episode::{simulate, Control, Seeds};
use ebm_sim_data::{HAND_ACTION_DIM, HAND_STATE_DIM};

use crate::harness::{put, receive_until, Harness, Received};

/// Transitions per window (the committed model's).
const WINDOW: usize = 50;
const STEPS: usize = 60;

/// States and actions (wire units) of a nominal episode that keeps the cube.
fn nominal_episode() -> (Vec<f32>, Vec<f32>) {
    (0..20)
        .find_map(|i| {
            let seeds = Seeds::attempt(77_000 + i);
            let control = Control::Scripted { force: None };
            simulate(&SimConfig::default(), STEPS as u32, seeds, &control).ok()
        })
        .map(|t| (t.states, t.actions))
        .expect("a simulated episode")
}

fn message(robot: &str, seq: usize, states: &[f32], actions: &[f32]) -> RobotState {
    RobotState {
        robot_id: robot.into(),
        episode: 0,
        seq: seq as u64,
        stamp_ns: seq as u64 * 100_000_000,
        state: states[seq * HAND_STATE_DIM..(seq + 1) * HAND_STATE_DIM].to_vec(),
        // The action applied at the previous state, which led here.
        last_action: (seq > 0)
            .then(|| actions[(seq - 1) * HAND_ACTION_DIM..seq * HAND_ACTION_DIM].to_vec()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_window_test_flags_a_noisy_robot_and_not_a_nominal_one() -> Result<()> {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/models/traj_residual");
    let served = ebm_runtime::RobotModel::load(&model, &Device::Cpu)?;
    assert_eq!(served.stein_window.as_ref().map(|t| t.window), Some(WINDOW));
    let (states, actions) = nominal_episode();
    // Sensor noise of half of each dimension's spread (as `ood-eval`).
    let spread = served.units.denormalize_state(&[1.0; HAND_STATE_DIM]);
    let zero = served.units.denormalize_state(&[0.0; HAND_STATE_DIM]);
    let mut rng = Rng::new(5);
    let noisy: Vec<f32> = states
        .iter()
        .zip(rng.normal_vec(states.len()))
        .enumerate()
        .map(|(i, (v, n))| v + 0.5 * n * (spread[i % HAND_STATE_DIM] - zero[i % HAND_STATE_DIM]))
        .collect();
    let h = Harness::start(|c| c.ood.checkpoints = vec![model.clone()]).await?;
    let robots = [("calm", &states), ("shaky", &noisy)];
    let mut subs = Vec::new();
    for (robot, _) in robots {
        subs.push((
            h.outputs(robot).await?,
            h.publisher(robot).await?,
            Received::default(),
        ));
    }
    // In lock step, so that every transition is scored.
    for seq in 0..STEPS {
        for ((robot, s), (_, publ, _)) in robots.iter().zip(&subs) {
            put(publ, &message(robot, seq, s, &actions), Encoding::Bincode).await?;
        }
        for (sub, _, rec) in subs.iter_mut() {
            receive_until(sub, rec, |r| {
                r.forecasts.iter().any(|f| f.seq == seq as u64)
                    && (seq == 0 || r.ood.iter().any(|o| o.seq == seq as u64))
            })
            .await?;
        }
    }
    let last = |rec: &Received| {
        rec.ood
            .iter()
            .max_by_key(|o| o.seq)
            .cloned()
            .expect("scores")
    };
    let (calm, shaky) = (last(&subs[0].2), last(&subs[1].2));
    for o in [&calm, &shaky] {
        assert_eq!(
            (o.seq, o.window_len as usize),
            (STEPS as u64 - 1, WINDOW),
            "{o:?}"
        );
        assert!(o.window_discrepancy.is_some_and(f32::is_finite), "{o:?}");
        assert!(o.window_percentile.is_some(), "{o:?}");
    }
    // Until the window is full: no test.
    assert!(subs[1]
        .2
        .ood
        .iter()
        .filter(|o| (o.window_len as usize) < WINDOW)
        .all(|o| {
            o.window_discrepancy.is_none() && o.window_percentile.is_none() && !o.window_flagged
        }));
    assert!(
        shaky.window_flagged && !calm.window_flagged,
        "{calm:?}\n{shaky:?}"
    );
    assert!(shaky.window_discrepancy > calm.window_discrepancy.map(|d| 10.0 * d));
    h.stop().await
}
