//! The committed Shadow hand models (`configs/models/shadow_*`, trained on
//! the MuJoCo recording of `sim-data/mujoco/hand_record.py`), checked on the
//! committed held-out demo recording (`configs/recordings/shadow_demo.mcap`,
//! another generator seed): they describe the robot of the recording; the
//! action-conditional model's one-step forecasts beat "nothing moves" by a
//! wide margin, and true next states score lower energy than those of other
//! transitions.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ebm_core::checkpoint;
use ebm_core::rollout::{rollout, RolloutConfig};
use ebm_core::{EnergyFunction, EnergyModel, MlpEnergy, Rng};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

#[test]
fn committed_shadow_models_forecast_a_held_out_recording() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let ds = ebm_msgs::recording::load(&repo("configs/recordings/shadow_demo.mcap"))?;
    for name in ["shadow_uncond", "shadow_cond"] {
        let loaded = checkpoint::load(&repo("configs/models").join(name), &dev)?;
        let robot = loaded.manifest.robot.clone().expect("the robot");
        assert_eq!(robot.kind, ds.robot.kind, "{name}");
        assert_eq!(robot.state_names, ds.robot.state_names, "{name}");
        assert!(loaded.manifest.ood.is_some(), "{name}: OOD calibration");
    }
    let loaded = checkpoint::load(&repo("configs/models/shadow_cond"), &dev)?;
    let (model, _) = loaded.model::<MlpEnergy>(&dev)?;
    let model = model.frozen();
    let mc = model.config().clone();
    let (d, a, k) = (mc.state_dim, mc.action_dim, mc.context_len);
    assert_eq!((d, a), (ds.robot.state_dim, ds.robot.action_dim));
    let norm = loaded
        .manifest
        .normalization
        .clone()
        .expect("normalisation");
    let z = |v: f32, j: usize| (v - norm.mean[j]) / norm.std[j];
    let rc: RolloutConfig = serde_json::from_value(loaded.manifest.extra["rollout"].clone())?;

    // Every 3rd transition of every demo episode, with its k-state context.
    let (mut ctx, mut acts, mut next, mut last) = (vec![], vec![], vec![], vec![]);
    let t_len = ds.states.shape()[1];
    for e in 0..ds.states.shape()[0] {
        for t in (k - 1..t_len - 1).step_by(3) {
            for tt in t + 1 - k..=t {
                ctx.extend((0..d).map(|j| z(ds.states[[e, tt, j]], j)));
            }
            acts.extend((0..a).map(|j| z(ds.actions[[e, t, j]], d + j)));
            next.extend((0..d).map(|j| z(ds.states[[e, t + 1, j]], j)));
            last.extend((0..d).map(|j| z(ds.states[[e, t, j]], j)));
        }
    }
    let n = next.len() / d;
    let context = Tensor::from_vec(ctx, (n, k, d), &dev)?;
    let actions = Tensor::from_vec(acts, (n, 1, a), &dev)?;
    let one = RolloutConfig {
        horizon: 1,
        particles: 4,
        ..rc
    };
    let r = rollout(&model, &context, Some(&actions), &one, &mut Rng::new(3))?;
    let mean: Vec<f32> = r.states.mean(1)?.flatten_all()?.to_vec1()?;
    let mse = |p: &[f32]| -> f64 {
        p.iter()
            .zip(&next)
            .map(|(x, y)| f64::from(x - y).powi(2))
            .sum::<f64>()
            / p.len() as f64
    };
    let (ebm, still) = (mse(&mean), mse(&last));
    assert!(
        ebm < 0.5 * still,
        "one-step MSE {ebm} vs {still} for no motion"
    );

    // True next states have lower energy than next states of other transitions.
    let cond = Tensor::cat(&[context.reshape((n, k * d))?, actions.squeeze(1)?], 1)?;
    let x = Tensor::from_vec(next.clone(), (n, d), &dev)?;
    let e_true: Vec<f32> = model.energy(&x, Some(&cond))?.to_vec1()?;
    let e_wrong: Vec<f32> = model.energy(&x.roll(7, 0)?, Some(&cond))?.to_vec1()?;
    let lower = e_true.iter().zip(&e_wrong).filter(|(t, w)| t < w).count();
    eprintln!("shadow_cond on the demo: one-step MSE {ebm:.4} (no motion {still:.4}); {lower} of {n} true transitions lower than shuffled");
    assert!(
        lower as f64 > 0.9 * n as f64,
        "{lower} of {n} true transitions score lower"
    );
    Ok(())
}
