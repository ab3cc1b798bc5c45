//! A ROS 2 bag written by an independent implementation (rosbags, see
//! `sim-data/ros2/`) imports into a recording, trains a few steps, and the
//! exported model loads in the runtime describing the bag's joints.

use std::path::Path;

use candle_core::Device;
use ebm_sim_data::ros2_import::{import_ros2, ImportOptions, JointField};
use ebm_train::trajectory::{train_trajectory, TrajectoryConfig};

const ARM: [&str; 6] = [
    "shoulder_pan",
    "shoulder_lift",
    "elbow",
    "wrist_1",
    "wrist_2",
    "wrist_3",
];

#[test]
fn a_ros2_bag_imports_trains_and_serves_with_its_joint_names() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir()?;
    let rec = dir.path().join("arm.mcap");
    let mut opts = ImportOptions::new("/joint_states");
    opts.state_fields = vec![JointField::Position, JointField::Velocity];
    opts.action_topic = Some("/arm_controller/joint_trajectory".into());
    opts.joints = Some(ARM.iter().map(|j| j.to_string()).collect());
    let report = import_ros2(&root.join("tests/fixtures/ros2/arm_demo.mcap"), &opts, &rec)?;
    assert_eq!(
        (
            report.episodes,
            report.robot.state_dim,
            report.robot.action_dim
        ),
        (2, 12, 6)
    );

    let mut cfg = TrajectoryConfig::parse(&std::fs::read_to_string(
        root.join("configs/traj_cond.toml"),
    )?)?;
    cfg.recording = rec.clone();
    cfg.steps = 20;
    cfg.baseline.steps = 20;
    let run = dir.path().join("run");
    let s = train_trajectory(&cfg, dir.path(), &run, &Device::Cpu)?;
    assert_eq!(s.train_trajectories, 2);

    let served = ebm_runtime::RobotModel::load(&run.join("model"), &Device::Cpu)?;
    let robot = &served.robot;
    assert_eq!(
        (robot.kind.as_str(), robot.state_dim, robot.action_dim),
        ("arm_demo", 12, 6)
    );
    let mut names: Vec<String> = ARM.iter().map(|j| format!("{j}.position")).collect();
    assert_eq!(robot.action_names, names);
    names.extend(ARM.iter().map(|j| format!("{j}.velocity")));
    assert_eq!(robot.state_names, names);
    Ok(())
}
