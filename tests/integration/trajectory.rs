//! The trajectory pipeline end to end on a small synthetic recording written
//! through `ebm-msgs`: training of the EBM and the FC baseline, checkpoints
//! with normalisation, rollouts and Frechet scores, and the recalibration of
//! an export's OOD statistics.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Device;
use ebm_core::checkpoint::{self, ENERGY_PERCENTILES, STEIN_WINDOW, WINDOW_ENERGY_PERCENTILES};
use ebm_msgs::recording::{RecordingHeader, RecordingWriter, Split};
use ebm_msgs::types::{Action, RobotState};
use ebm_msgs::{Encoding, RobotId, RobotSpec};
use ebm_sim_data::{hand_robot_spec, HAND_ACTION_DIM, HAND_STATE_DIM};
use ebm_train::trajectory::{
    calibrate_export, evaluate, migrate_export, train_trajectory, TrajectoryConfig,
};

const TRAJ: u64 = 40;
const STEPS: u32 = 24;

/// A hand-shaped synthetic recording (see [`write_recording_of`]).
fn write_recording(path: &Path, steps: u32) -> anyhow::Result<()> {
    write_recording_of(path, steps, &hand_robot_spec())
}

/// A synthetic recording of `robot`'s shape: each trajectory drifts at its
/// own constant velocity, scaled by the action's first entry:
/// `s_{t+1} = s_t + a_t[0] * v` (`0.75 v` for a robot without actions).
pub(crate) fn write_recording_of(path: &Path, steps: u32, robot: &RobotSpec) -> anyhow::Result<()> {
    let (state_dim, action_dim) = (robot.state_dim, robot.action_dim);
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
        robot: Some(robot.clone()),
    };
    let mut w = RecordingWriter::create(path, &header)?;
    let mut rng = ebm_core::Rng::new(5);
    for ep in 0..TRAJ {
        let v: Vec<f32> = (0..state_dim).map(|_| 0.05 * rng.normal() as f32).collect();
        let mut s: Vec<f32> = (0..state_dim).map(|_| rng.normal() as f32).collect();
        for t in 0..u64::from(steps) {
            let a: Vec<f32> = (0..action_dim)
                .map(|_| 0.5 + 0.5 * rng.uniform() as f32)
                .collect();
            let seq = ep * 1000 + t;
            let speed = a.first().copied().unwrap_or(0.75);
            w.write_state(&RobotState {
                robot_id: "synthetic".into(),
                episode: ep,
                seq,
                stamp_ns: t * 40_000_000,
                state: s.clone(),
                last_action: None,
            })?;
            if action_dim > 0 {
                w.write_action(&Action {
                    robot_id: "synthetic".into(),
                    episode: ep,
                    seq,
                    stamp_ns: t * 40_000_000,
                    action: a.clone(),
                })?;
            }
            for (x, dv) in s.iter_mut().zip(&v) {
                *x += speed * dv;
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
    assert_eq!(norm.mean.len(), HAND_STATE_DIM + HAND_ACTION_DIM);

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
    for f in ["eval/fd.svg", "eval/rollouts.svg", "eval/report.md"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    // The inference export carries the robot it models and the energy
    // percentiles of training transitions, in order, for the runtime's OOD
    // scores, as typed fields.
    let export = ebm_core::checkpoint::load(&run.join("model"), &dev)?;
    let robot = export
        .manifest
        .robot
        .clone()
        .expect("the robot in the export");
    assert_eq!(
        (robot.kind.as_str(), robot.state_dim, robot.action_dim),
        (
            ebm_sim_data::layout::HAND_KIND,
            HAND_STATE_DIM,
            HAND_ACTION_DIM
        )
    );
    assert_eq!(robot.state_names, hand_robot_spec().state_names);
    let pct = export
        .manifest
        .ood
        .clone()
        .expect("OOD calibration")
        .energy_percentiles;
    assert!(!export.manifest.extra.contains_key(ENERGY_PERCENTILES));
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
    let calibration = trained.manifest.ood.clone().expect("OOD calibration");
    let stein = calibration
        .stein_window
        .clone()
        .expect("the Stein window test");
    assert_eq!((stein.window, stein.dim()), (50, HAND_STATE_DIM));
    // 32 training trajectories: 16 windows fit the test, 16 calibrate it.
    assert!(stein.check(HAND_STATE_DIM).is_ok());
    let mut old = trained.manifest.clone();
    old.ood = None;
    checkpoint::save(&model, old, &trained.files)?;
    let s = calibrate_export(&cfg, dir.path(), &model, &Device::Cpu)?;
    assert!(s.stein && s.train_trajectories == 32);
    let again = checkpoint::load(&model, &Device::Cpu)?;
    assert_eq!(again.manifest.ood, trained.manifest.ood);
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
    let ood = checkpoint::load(&model, &Device::Cpu)?
        .manifest
        .ood
        .expect("OOD calibration");
    assert_eq!(ood.energy_percentiles.len(), 101);
    assert!(ood.stein_window.is_none() && ood.window_energy_percentiles.is_none());
    Ok(())
}

/// An export of the earlier format (OOD statistics as free-form `extra`
/// keys, no robot) loads as it is, and `traj migrate` rewrites it in the
/// current one with the recording's robot, the weights untouched.
#[test]
fn old_exports_load_and_migrate_to_typed_fields() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rec = dir.path().join("synthetic.mcap");
    write_recording(&rec, STEPS)?;
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/traj_uncond.toml"),
    )?;
    let mut cfg = TrajectoryConfig::parse(&text)?;
    cfg.recording = rec.clone();
    cfg.steps = 20;
    cfg.baseline.steps = 10;
    let run = dir.path().join("run");
    train_trajectory(&cfg, dir.path(), &run, &Device::Cpu)?;
    let model = run.join("model");
    let trained = checkpoint::load(&model, &Device::Cpu)?;
    let ood = trained.manifest.ood.clone().expect("OOD calibration");
    // Write it back as the earlier format did.
    let mut old = trained.manifest.clone();
    old.ood = None;
    old.robot = None;
    old.extra.insert(
        ENERGY_PERCENTILES.into(),
        serde_json::to_value(&ood.energy_percentiles)?,
    );
    if let Some(w) = &ood.window_energy_percentiles {
        old.extra
            .insert(WINDOW_ENERGY_PERCENTILES.into(), serde_json::to_value(w)?);
    }
    if let Some(t) = &ood.stein_window {
        old.extra
            .insert(STEIN_WINDOW.into(), serde_json::to_value(t)?);
    }
    checkpoint::save(&model, old, &trained.files)?;
    let on_disk = std::fs::read_to_string(model.join(checkpoint::MANIFEST))?;
    assert!(on_disk.contains(ENERGY_PERCENTILES) && !on_disk.contains("\"ood\""));
    // It loads: the statistics are read into the typed field.
    let loaded = checkpoint::load(&model, &Device::Cpu)?;
    assert_eq!(loaded.manifest.ood.as_ref(), Some(&ood));
    assert_eq!(loaded.manifest.robot, None);
    let served = ebm_runtime::RobotModel::load(&model, &Device::Cpu)?;
    assert_eq!(served.percentiles.as_ref().map(Vec::len), Some(101));
    assert_eq!(
        served.robot,
        RobotSpec::unnamed("unknown", HAND_STATE_DIM, HAND_ACTION_DIM)
    );
    // The migration writes the current format with the recording's robot.
    let s = migrate_export(&model, Some(&rec), &Device::Cpu)?;
    assert!(s.ood);
    let migrated = checkpoint::load(&model, &Device::Cpu)?;
    let robot = migrated.manifest.robot.clone().expect("the robot");
    assert_eq!(robot.state_names, hand_robot_spec().state_names);
    assert_eq!(
        migrated.manifest.files[checkpoint::WEIGHTS],
        trained.manifest.files[checkpoint::WEIGHTS]
    );
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join(checkpoint::MANIFEST))?)?;
    assert!(on_disk["ood"].is_object() && on_disk["extra"].get(ENERGY_PERCENTILES).is_none());
    // A recording of another robot is refused by name.
    let other = dir.path().join("other.mcap");
    write_recording_of(&other, STEPS, &RobotSpec::unnamed("arm", 5, 2))?;
    let err = migrate_export(&model, Some(&other), &Device::Cpu).unwrap_err();
    assert!(format!("{err:#}").contains("5-float states"), "{err:#}");
    Ok(())
}
