//! The trajectory pipeline end to end on a small synthetic recording written
//! through `ebm-msgs`: training of the EBM and the FC baseline, checkpoints
//! with normalisation, rollouts and Frechet scores, and the recalibration of
//! an export's OOD statistics.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Device;
use ebm_core::checkpoint::{self, ENERGY_PERCENTILES, STEIN_WINDOW, WINDOW_ENERGY_PERCENTILES};
use ebm_core::stein::SteinWindow;
use ebm_msgs::recording::{RecordingHeader, RecordingWriter, Split};
use ebm_msgs::types::{Action, RobotState, ACTION_DIM, STATE_DIM};
use ebm_msgs::{Encoding, RobotId};
use ebm_train::trajectory::{calibrate_export, evaluate, train_trajectory, TrajectoryConfig};

const TRAJ: u64 = 40;
const STEPS: u32 = 24;

/// Each trajectory drifts at its own constant velocity, scaled by the action's
/// first entry: `s_{t+1} = s_t + a_t[0] * v`.
fn write_recording(path: &Path, steps: u32) -> anyhow::Result<()> {
    let header = RecordingHeader {
        robot_id: RobotId::new("synthetic")?,
        encoding: Encoding::Bincode,
        trajectories: TRAJ,
        steps,
        control_period_ns: 40_000_000,
        generator: "trajectory test".into(),
        seed: 0,
        config: String::new(),
        split: Split {
            train: (0..32).collect(),
            test: (32..TRAJ).collect(),
        },
    };
    let mut w = RecordingWriter::create(path, &header)?;
    let mut rng = ebm_core::Rng::new(5);
    for ep in 0..TRAJ {
        let v: Vec<f32> = (0..STATE_DIM).map(|_| 0.05 * rng.normal() as f32).collect();
        let mut s: Vec<f32> = (0..STATE_DIM).map(|_| rng.normal() as f32).collect();
        for t in 0..u64::from(steps) {
            let a: Vec<f32> = (0..ACTION_DIM)
                .map(|_| 0.5 + 0.5 * rng.uniform() as f32)
                .collect();
            let seq = ep * 1000 + t;
            w.write_state(&RobotState {
                robot_id: "synthetic".into(),
                episode: ep,
                seq,
                stamp_ns: t * 40_000_000,
                state: s.clone(),
                last_action: None,
            })?;
            w.write_action(&Action {
                robot_id: "synthetic".into(),
                episode: ep,
                seq,
                stamp_ns: t * 40_000_000,
                action: a.clone(),
            })?;
            for (x, dv) in s.iter_mut().zip(&v) {
                *x += a[0] * dv;
            }
        }
    }
    w.finish(BTreeMap::new())?;
    Ok(())
}

#[test]
fn trajectory_training_and_evaluation_run_end_to_end() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rec = dir.path().join("synthetic.mcap");
    write_recording(&rec, STEPS)?;
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/traj_cond.toml"),
    )?;
    let mut cfg = TrajectoryConfig::parse(&text)?;
    cfg.recording = rec.clone();
    cfg.model.context_len = 2;
    cfg.steps = 150;
    cfg.baseline.steps = 400;
    cfg.eval.rollout.horizon = 10;
    cfg.eval.rollout.particles = 4;
    let run = dir.path().join("run");
    let s = train_trajectory(&cfg, dir.path(), &run, &Device::Cpu)?;
    assert_eq!(s.train_trajectories, 32);
    assert!(s.fc_final_mse.is_finite());

    let dev = Device::Cpu;
    let ckpt = ebm_core::checkpoint::latest(&run.join("ebm"))?.expect("an EBM checkpoint");
    let norm = ebm_core::checkpoint::load(&ckpt, &dev)?
        .manifest
        .normalization
        .expect("normalisation in the manifest");
    assert_eq!(norm.mean.len(), STATE_DIM + ACTION_DIM);

    let r = evaluate(&cfg, dir.path(), &run, &dir.path().join("eval"), &dev)?;
    assert_eq!(
        (
            r.test_trajectories,
            r.horizon,
            r.fd_ebm.len(),
            r.fd_fc.len()
        ),
        (8, 10, 10, 10)
    );
    assert!(r
        .fd_ebm
        .iter()
        .chain(&r.fd_fc)
        .all(|v| v.is_finite() && *v >= 0.0));
    assert!(r.ratio.is_finite());
    // The dynamics are nearly linear: the trained baseline's one-step error is
    // far below the states' variance (1 after normalisation).
    assert!(r.mse_fc[0] < 0.05, "FC one-step MSE {}", r.mse_fc[0]);
    // The EBM's particles stay near the truth for the first step too.
    assert!(r.mse_ebm[0] < 0.5, "EBM one-step MSE {}", r.mse_ebm[0]);
    for f in ["eval/fd.png", "eval/rollouts.png", "eval/report.md"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    // The inference export carries the energy percentiles of training
    // transitions, in order, for the runtime's OOD scores.
    let export = ebm_core::checkpoint::load(&run.join("model"), &dev)?;
    let pct: Vec<f32> = serde_json::from_value(
        export.manifest.extra[ebm_core::checkpoint::ENERGY_PERCENTILES].clone(),
    )?;
    assert_eq!(pct.len(), 101);
    assert!(pct.windows(2).all(|w| w[0] <= w[1]) && pct[0] < pct[100]);
    Ok(())
}

/// An export made before the window statistics existed gets them from
/// `traj calibrate`: the same numbers training stores, the weights untouched.
#[test]
fn calibration_restores_an_exports_ood_statistics() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rec = dir.path().join("synthetic.mcap");
    write_recording(&rec, 60)?;
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/traj_residual.toml"),
    )?;
    let mut cfg = TrajectoryConfig::parse(&text)?;
    cfg.recording = rec.clone();
    cfg.steps = 40;
    cfg.baseline.steps = 10;
    let run = dir.path().join("run");
    train_trajectory(&cfg, dir.path(), &run, &Device::Cpu)?;
    let model = run.join("model");
    let trained = checkpoint::load(&model, &Device::Cpu)?;
    let stein: SteinWindow = serde_json::from_value(trained.manifest.extra[STEIN_WINDOW].clone())?;
    assert_eq!((stein.window, stein.dim()), (50, STATE_DIM));
    // 32 training trajectories: 16 windows fit the test, 16 calibrate it.
    assert!(stein.check(STATE_DIM).is_ok());
    let mut old = trained.manifest.clone();
    for key in [STEIN_WINDOW, WINDOW_ENERGY_PERCENTILES, ENERGY_PERCENTILES] {
        old.extra.remove(key);
    }
    checkpoint::save(&model, old, &trained.files)?;
    let s = calibrate_export(&cfg, dir.path(), &model, &Device::Cpu)?;
    assert!(s.stein && s.train_trajectories == 32);
    let again = checkpoint::load(&model, &Device::Cpu)?;
    for key in [STEIN_WINDOW, WINDOW_ENERGY_PERCENTILES, ENERGY_PERCENTILES] {
        assert_eq!(
            again.manifest.extra[key], trained.manifest.extra[key],
            "{key}"
        );
    }
    assert_eq!(
        again.manifest.files, trained.manifest.files,
        "weights untouched"
    );
    // Trajectories shorter than a window: the energy percentiles only; the
    // old window statistics, which describe other data, are gone.
    let short = dir.path().join("short.mcap");
    write_recording(&short, 20)?;
    cfg.recording = short;
    let s = calibrate_export(&cfg, dir.path(), &model, &Device::Cpu)?;
    assert!(!s.stein);
    let extra = checkpoint::load(&model, &Device::Cpu)?.manifest.extra;
    assert!(extra.contains_key(ENERGY_PERCENTILES));
    assert!(!extra.contains_key(STEIN_WINDOW) && !extra.contains_key(WINDOW_ENERGY_PERCENTILES));
    Ok(())
}
