//! Recordings of robots other than our hand: the MuJoCo Fetch fixture made
//! by `sim-data/mujoco/fetch_record.py` (an independent writer, Python's
//! `mcap`) loads with its robot's description and trains a model that
//! carries it; a robot that records no actions trains an unconditional model.

use std::path::{Path, PathBuf};

use candle_core::Device;
use ebm_msgs::recording;
use ebm_msgs::RobotSpec;
use ebm_train::trajectory::{train_trajectory, TrajectoryConfig};

use crate::trajectory::write_recording_of;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn config(name: &str) -> anyhow::Result<TrajectoryConfig> {
    let text = std::fs::read_to_string(root().join("configs").join(name))?;
    Ok(TrajectoryConfig::parse(&text)?)
}

#[test]
fn the_fetch_fixture_loads_with_its_robot_and_sane_values() -> anyhow::Result<()> {
    let ds = recording::load(&root().join("tests/fixtures/fetch_small.mcap"))?;
    let r = &ds.robot;
    assert_eq!(
        (r.kind.as_str(), r.state_dim, r.action_dim),
        ("fetch", 16, 4)
    );
    assert_eq!(r.state_names[0], "shoulder_pan_joint");
    assert_eq!(
        &r.state_names[9..],
        [
            "object.x",
            "object.y",
            "object.z",
            "object.qx",
            "object.qy",
            "object.qz",
            "object.qw"
        ]
    );
    assert_eq!(r.state_units[0], "rad");
    assert_eq!(r.action_names, ["dx", "dy", "dz", "gripper"]);
    assert_eq!(ds.states.shape(), &[12, 40, 16]);
    assert_eq!(ds.actions.shape(), &[12, 40, 4]);
    assert_eq!(ds.header.split.test.len() + ds.header.split.train.len(), 12);
    for row in ds.states.rows() {
        let q: f32 = row.iter().skip(12).map(|v| v * v).sum();
        assert!(
            (q - 1.0).abs() < 1e-3,
            "the block's quaternion has norm^2 {q}"
        );
    }
    assert!(ds.actions.iter().all(|a| (-1.0..=1.0).contains(a)));
    // The block moves in most episodes: the data is not a still life.
    let moved = (0..12)
        .filter(|&e| {
            let (a, b) = (ds.states[[e, 0, 9]], ds.states[[e, 39, 9]]);
            let (c, d) = (ds.states[[e, 0, 10]], ds.states[[e, 39, 10]]);
            ((a - b).powi(2) + (c - d).powi(2)).sqrt() > 0.02
        })
        .count();
    assert!(moved >= 6, "the block moved in {moved} of 12 episodes");
    Ok(())
}

#[test]
fn a_model_trained_on_the_fetch_fixture_carries_its_robot() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cfg = config("fetch_cond.toml")?;
    cfg.recording = root().join("tests/fixtures/fetch_small.mcap");
    cfg.steps = 30;
    cfg.baseline.steps = 10;
    cfg.model.hidden = vec![16];
    let run = dir.path().join("run");
    train_trajectory(&cfg, dir.path(), &run, &Device::Cpu)?;
    let m = ebm_core::checkpoint::load(&run.join("model"), &Device::Cpu)?.manifest;
    let robot = m.robot.expect("the robot");
    assert_eq!(
        (robot.kind.as_str(), robot.state_dim, robot.action_dim),
        ("fetch", 16, 4)
    );
    assert_eq!(robot.state_names[15], "object.qw");
    let model: ebm_core::MlpEnergyConfig = serde_json::from_value(m.model_config)?;
    assert_eq!((model.state_dim, model.action_dim), (16, 4));
    // A config that states the hand's sizes is refused, naming both.
    let mut hand = cfg.clone();
    hand.model.state_dim = 31;
    let err = train_trajectory(&hand, dir.path(), &dir.path().join("x"), &Device::Cpu).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("model.state_dim is 31") && text.contains("16-float states"),
        "{text}"
    );
    Ok(())
}

#[test]
fn a_robot_without_actions_trains_unconditionally_and_refuses_conditioning() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rec = dir.path().join("sensor.mcap");
    write_recording_of(&rec, 24, &RobotSpec::unnamed("sensor-rig", 3, 0))?;
    let mut cfg = config("traj_uncond.toml")?;
    cfg.recording = rec.clone();
    cfg.steps = 20;
    cfg.baseline.steps = 10;
    cfg.model.hidden = vec![16];
    let run = dir.path().join("run");
    train_trajectory(&cfg, dir.path(), &run, &Device::Cpu)?;
    let m = ebm_core::checkpoint::load(&run.join("model"), &Device::Cpu)?.manifest;
    assert_eq!(m.robot.map(|r| (r.state_dim, r.action_dim)), Some((3, 0)));
    let mut cond = config("traj_cond.toml")?;
    cond.recording = rec;
    let err = train_trajectory(&cond, dir.path(), &dir.path().join("c"), &Device::Cpu).unwrap_err();
    assert!(format!("{err:#}").contains("no actions"), "{err:#}");
    Ok(())
}
