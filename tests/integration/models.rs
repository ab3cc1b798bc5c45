//! The committed trajectory models (`configs/models/`): they load, carry their
//! normalisation, energy percentiles and sampler settings, and are trained:
//! on freshly simulated hand-cube trajectories the action-conditional model's
//! one-step forecasts beat "nothing moves" by a wide margin, and observed
//! transitions score lower energy than shuffled ones; the OOD model tells
//! perturbed simulators from the nominal one.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ebm_core::checkpoint;
use ebm_core::rollout::{rollout, RolloutConfig};
use ebm_core::{EnergyFunction, EnergyModel, MlpEnergy, Rng};
use ebm_sim_data::config::SimConfig;
use ebm_sim_data::episode::{simulate, Control, Seeds};
use ebm_sim_data::{HAND_ACTION_DIM, HAND_STATE_DIM};

fn model_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs/models")
        .join(name)
}

/// Normalised `[T, 31]` states and `[T, 20]` actions of a fresh simulation.
fn simulated(seed: u64, mean: &[f32], std: &[f32]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let t = simulate(
        &SimConfig::default(),
        40,
        Seeds::attempt(10_000 + seed),
        &Control::Scripted { force: None },
    )
    .expect("simulation");
    let z = |v: &[f32], off: usize| -> Vec<f32> {
        v.iter()
            .enumerate()
            .map(|(j, x)| (x - mean[off + j]) / std[off + j])
            .collect()
    };
    (
        t.states.chunks(HAND_STATE_DIM).map(|s| z(s, 0)).collect(),
        t.actions
            .chunks(HAND_ACTION_DIM)
            .map(|a| z(a, HAND_STATE_DIM))
            .collect(),
    )
}

#[test]
fn committed_conditional_model_forecasts_and_scores_real_transitions() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let loaded = checkpoint::load(&model_dir("traj_cond"), &dev)?;
    let (model, _) = loaded.model::<MlpEnergy>(&dev)?;
    let model = model.frozen();
    assert_eq!(model.config().action_dim, HAND_ACTION_DIM);
    let norm = loaded
        .manifest
        .normalization
        .clone()
        .expect("normalisation");
    let pct = loaded
        .manifest
        .ood
        .clone()
        .expect("OOD calibration")
        .energy_percentiles;
    assert!(pct.len() == 101 && pct.windows(2).all(|w| w[0] <= w[1]));
    let rc: RolloutConfig = serde_json::from_value(loaded.manifest.extra["rollout"].clone())?;

    // Transitions (s_t, a_t, s_{t+1}) of 4 fresh trajectories.
    let (mut cond, mut next, mut last): (Vec<f32>, Vec<f32>, Vec<f32>) = Default::default();
    for seed in 0..4 {
        let (s, a) = simulated(seed, &norm.mean, &norm.std);
        for t in 5..s.len() - 1 {
            cond.extend(s[t].iter().chain(&a[t]).copied());
            next.extend(&s[t + 1]);
            last.extend(&s[t]);
        }
    }
    let n = next.len() / HAND_STATE_DIM;
    let c = Tensor::from_vec(cond, (n, HAND_STATE_DIM + HAND_ACTION_DIM), &dev)?;
    let x = Tensor::from_vec(next.clone(), (n, HAND_STATE_DIM), &dev)?;

    // One-step forecasts: particle means against the truth, vs persistence.
    let one = RolloutConfig {
        horizon: 1,
        particles: 4,
        ..rc
    };
    let ctx = c.narrow(1, 0, HAND_STATE_DIM)?.unsqueeze(1)?;
    let acts = c.narrow(1, HAND_STATE_DIM, HAND_ACTION_DIM)?.unsqueeze(1)?;
    let r = rollout(&model, &ctx, Some(&acts), &one, &mut Rng::new(3))?;
    let mean: Vec<f32> = r.states.mean(1)?.flatten_all()?.to_vec1()?;
    let mse = |p: &[f32]| -> f64 {
        p.iter()
            .zip(&next)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>()
            / p.len() as f64
    };
    let (ebm, still) = (mse(&mean), mse(&last));
    assert!(
        ebm < 0.25 * still,
        "one-step MSE {ebm} vs {still} for no motion"
    );

    // True next states have lower energy than next states of other transitions.
    let e_true: Vec<f32> = model.energy(&x, Some(&c))?.to_vec1()?;
    let shuffled = x.roll(7, 0)?;
    let e_wrong: Vec<f32> = model.energy(&shuffled, Some(&c))?.to_vec1()?;
    let lower = e_true.iter().zip(&e_wrong).filter(|(a, b)| a < b).count();
    eprintln!("committed cond model: one-step MSE {ebm:.4} (no motion {still:.4}); {lower} of {n} true transitions lower than shuffled");
    assert!(
        lower as f64 > 0.9 * n as f64,
        "{lower} of {n} true transitions score lower"
    );
    Ok(())
}

#[test]
fn committed_unconditional_model_loads_with_its_settings() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let loaded = checkpoint::load(&model_dir("traj_uncond"), &dev)?;
    let (model, _) = loaded.model::<MlpEnergy>(&dev)?;
    assert_eq!(
        (model.config().state_dim, model.config().action_dim),
        (HAND_STATE_DIM, 0)
    );
    let rc: RolloutConfig = serde_json::from_value(loaded.manifest.extra["rollout"].clone())?;
    assert_eq!(rc.langevin.steps, 20);
    assert!(loaded.manifest.ood.is_some());
    // Migrated to the current format: the hand's description, every dimension named.
    let robot = loaded.manifest.robot.clone().expect("the robot");
    assert_eq!(robot.kind, ebm_sim_data::layout::HAND_KIND);
    assert_eq!(
        robot.state_names,
        ebm_sim_data::hand_robot_spec().state_names
    );
    Ok(())
}

/// The committed OOD model (`configs/runtime.toml`'s `[ood] checkpoints`):
/// held-out nominal transitions sit mid-way in its training energies, and
/// a stuck joint and sensor noise are told apart from nominal trajectories.
#[test]
fn committed_residual_model_scores_perturbed_simulators_out_of_distribution() -> anyhow::Result<()>
{
    use ebm_runtime::ood::OodScorer;
    use ebm_tools::ood_eval::{ood_eval, OodEvalOptions};
    let served = ebm_runtime::RobotModel::load(&model_dir("traj_residual"), &Device::Cpu)?;
    assert_eq!(served.context_len(), 2);
    assert!(served.model.config().prior.is_some());
    assert!(
        served.stein_window.is_some(),
        "the export stores the Stein window test"
    );
    let opts = OodEvalOptions {
        trajectories: 40,
        steps: 60,
        ..Default::default()
    };
    let report = ood_eval(&OodScorer::new(vec![served]), &opts)?;
    eprintln!("{}", report.markdown());
    let row = |name: &str| {
        report
            .rows
            .iter()
            .find(|r| r.perturbation.starts_with(name))
            .expect("a row per perturbation")
    };
    let nominal = row("nominal").mean_percentile;
    assert!(
        (30.0..70.0).contains(&nominal),
        "nominal mean percentile {nominal}"
    );
    // The goal, per perturbation, by the daemon's window test (the
    // Stein discrepancy of the last 50 transitions).
    for name in [
        "heavier cube",
        "lower friction",
        "stuck joint",
        "sensor noise",
    ] {
        let a = row(name).auroc_windows.expect("an AUROC");
        assert!(a >= 0.9, "{name}: window AUROC {a}");
    }
    assert!(row("sensor noise").auroc_transitions.expect("an AUROC") > 0.95);
    // The daemon's window flag (50 transitions, 99th percentile of training
    // windows): every noisy window, few nominal ones.
    assert_eq!(row("nominal").window, 50);
    assert_eq!(row("sensor noise").windows_flagged, Some(1.0));
    let false_alarms = row("nominal").windows_flagged.expect("window percentiles");
    assert!(
        false_alarms <= 0.25,
        "nominal windows flagged: {false_alarms}"
    );
    Ok(())
}
