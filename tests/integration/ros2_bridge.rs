//! The ROS 2 bridge over real Zenoh: a robot publishes `JointState` as
//! rmw_zenoh does (data key with type hash, CDR with its header, 33-byte
//! attachment); the first payload is the one `rosbags` wrote
//! (`tests/fixtures/ros2/joint_state.cdr`). The daemon forecasts it and
//! publishes `JointTrajectory`, `JointState` and `DiagnosticArray` with the
//! attachment and liveliness tokens, whose values are its own outputs';
//! malformed CDR, a wrong type hash, a missing joint and a stale stamp are
//! counted and the robot keeps being served.

use anyhow::{anyhow, ensure, Result};
use ebm_core::checkpoint::{Normalization, RobotSpec};
use ebm_core::MlpEnergyConfig;
use ebm_msgs::ros2::{
    decode_cdr, encode_cdr, DiagnosticArray, DiagnosticStatus, JointState, JointTrajectory,
    Ros2Message, Time,
};
use ebm_runtime::ros2::wire::{self, Attachment, Distro};
use ebm_runtime::ros2::Ros2Robot;

use crate::harness::{receive_until, save_tiny, within, Harness, Received};

const JOINTS: [&str; 4] = ["shoulder_pan", "elbow", "wrist_3", "gripper_finger"];

/// A tiny model of the fixture's 4 joints (position and velocity each),
/// conditioned on their commanded positions if `commands`.
fn joint_model(dir: &std::path::Path, commands: bool) -> Result<()> {
    let names: Vec<String> = ["position", "velocity"]
        .iter()
        .flat_map(|f| JOINTS.iter().map(move |j| format!("{j}.{f}")))
        .collect();
    let d = names.len();
    let action_names: Vec<String> = if commands {
        JOINTS.iter().map(|j| format!("{j}.position")).collect()
    } else {
        vec![]
    };
    let a = action_names.len();
    let mut cfg = MlpEnergyConfig::new(d);
    cfg.context_len = 1;
    cfg.action_dim = a;
    let normalization = Normalization {
        mean: vec![0.0; d + a],
        std: vec![1.0; d + a],
    };
    let robot = RobotSpec {
        kind: "arm".into(),
        state_dim: d,
        action_dim: a,
        state_names: names,
        state_units: vec![],
        action_names,
        action_units: vec![],
    };
    save_tiny(dir, cfg, normalization, Some(robot))
}

fn key(type_name: &str, topic: &str) -> String {
    let hash = wire::type_hash(type_name, Distro::Rihs01).expect("a known type");
    wire::data_key(0, topic, type_name, hash)
}

async fn put_ros(h: &Harness, key: &str, payload: Vec<u8>, seq: i64) -> Result<()> {
    let a = Attachment {
        sequence: seq,
        source_timestamp_ns: 0,
        gid: [5; 16],
    };
    within(
        "ros put",
        h.session.put(key, payload).attachment(a.to_bytes()),
    )
    .await?
    .map_err(|e| anyhow!("{e}"))
}

fn joint_state(stamp_s: u64, names: &[&str], x: f64) -> JointState {
    let mut js = JointState {
        name: names.iter().map(|s| s.to_string()).collect(),
        position: names
            .iter()
            .enumerate()
            .map(|(i, _)| x + i as f64 * 0.1)
            .collect(),
        velocity: vec![0.01; names.len()],
        ..Default::default()
    };
    js.header.stamp = Time::from_ns(stamp_s * 1_000_000_000);
    js
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ros2_robot_is_served_over_rmw_zenoh_keys() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ckpt = dir.path().join("arm");
    joint_model(&ckpt, false)?;
    let h = Harness::start(|cfg| {
        cfg.model.as_mut().expect("a default model").checkpoint = ckpt.clone();
        cfg.ros2 = vec![Ros2Robot {
            robot: "arm-1".into(),
            joint_states: "/joint_states".into(),
            action_topic: None,
            forecast_topic: Some("/ebm/forecast".into()),
            denoised_topic: Some("/ebm/joint_states_denoised".into()),
            diagnostics_topic: Some("/diagnostics".into()),
            domain_id: 0,
            distro: "jazzy".into(),
            period_s: 0.1,
            node: "ebm_runtime".into(),
        }];
    })
    .await?;
    let s = &h.session;
    let subscribe =
        |k: String| async move { s.declare_subscriber(k).await.map_err(|e| anyhow!("{e}")) };
    let traj_sub = subscribe(key(JointTrajectory::TYPE_NAME, "/ebm/forecast")).await?;
    let js_sub = subscribe(key(JointState::TYPE_NAME, "/ebm/joint_states_denoised")).await?;
    let diag_sub = subscribe(key(DiagnosticArray::TYPE_NAME, "/diagnostics")).await?;
    let mut ours = h.outputs("arm-1").await?;
    let input = key(JointState::TYPE_NAME, "/joint_states");
    let fixture = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/ros2/joint_state.cdr"
    ))?;
    let first: JointState = decode_cdr(&fixture)?;
    put_ros(&h, &input, fixture, 1).await?;
    let mut rec = Received::default();
    receive_until(&mut ours, &mut rec, |r| !r.forecasts.is_empty()).await?;
    let f = &rec.forecasts[0];
    ensure!(f.robot_id == "arm-1" && f.seq == 1, "{f:?}");
    // One state per forecast (latest wins), joints in another order, until
    // every ROS 2 output has arrived (the test's subscriptions reach the
    // daemon some time after they are declared).
    let (mut traj, mut den, mut diag) = (None, None, None);
    for i in 0..100u64 {
        let js = joint_state(
            1_700_000_003 + i,
            &["gripper_finger", "wrist_3", "elbow", "shoulder_pan"],
            0.3 + 0.01 * i as f64,
        );
        put_ros(&h, &input, encode_cdr(&js)?, 2 + i as i64).await?;
        let n = rec.forecasts.len();
        receive_until(&mut ours, &mut rec, |r| r.forecasts.len() > n).await?;
        traj = traj.or(traj_sub.try_recv().ok().flatten());
        den = den.or(js_sub.try_recv().ok().flatten());
        diag = diag.or(diag_sub.try_recv().ok().flatten());
        if traj.is_some() && den.is_some() && diag.is_some() {
            break;
        }
    }
    let (Some(traj), Some(den), Some(diag)) = (traj, den, diag) else {
        anyhow::bail!("not every ROS 2 output arrived");
    };
    receive_until(&mut ours, &mut rec, |r| {
        !r.denoised.is_empty() && !r.ood.is_empty()
    })
    .await?;

    // Outputs on ROS 2 topics: the attachment, and the values of one of the
    // daemon's own outputs.
    let att =
        Attachment::parse(&traj.attachment().expect("an attachment").to_bytes()).expect("33 bytes");
    assert!(att.sequence >= 1);
    let traj: JointTrajectory = decode_cdr(&traj.payload().to_bytes())?;
    assert_eq!(traj.joint_names, JOINTS);
    let f = rec
        .forecasts
        .iter()
        .find(|f| traj.points[0].positions[0] == f64::from(f.mean[0]))
        .expect("the trajectory is one of the forecasts");
    assert_eq!(traj.points.len(), f.horizon as usize);
    for (k, p) in traj.points.iter().enumerate() {
        for j in 0..4 {
            assert_eq!(p.positions[j], f64::from(f.mean[k * 8 + j]));
            assert_eq!(p.velocities[j], f64::from(f.mean[k * 8 + 4 + j]));
        }
        assert_eq!(p.time_from_start.to_ns(), (k as i64 + 1) * 100_000_000);
    }
    let den: JointState = decode_cdr(&den.payload().to_bytes())?;
    assert_eq!(den.name, JOINTS);
    let as_f64 = |v: &[f32]| v.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
    let ours_den = rec
        .denoised
        .iter()
        .find(|d| as_f64(&d.state[..4]) == den.position)
        .expect("the joint state is one of the denoised states");
    assert_eq!(den.velocity, as_f64(&ours_den.state[4..]));
    let diag: DiagnosticArray = decode_cdr(&diag.payload().to_bytes())?;
    let status = &diag.status[0];
    assert_eq!(status.hardware_id, "arm-1");
    let energy = status
        .values
        .iter()
        .find(|kv| kv.key == "energy")
        .expect("energy");
    let ood = rec
        .ood
        .iter()
        .find(|o| o.energy.to_string() == energy.value)
        .expect("the diagnostics are one of the OOD scores");
    let want_level = if ood.reason.is_some() || ood.window_flagged {
        DiagnosticStatus::ERROR
    } else if ood.flagged {
        DiagnosticStatus::WARN
    } else {
        DiagnosticStatus::OK
    };
    assert_eq!(status.level, want_level);
    // The fixture's state was read by joint name: its denoised state
    // starts at the observation and moves by less than the joints differ.
    assert!((rec.denoised[0].state[0] - first.position[0] as f32).abs() < 0.5);

    // Discovery: rmw_zenoh's tokens for the node, the publishers, the subscription.
    let replies = s
        .liveliness()
        .get("@ros2_lv/0/**")
        .timeout(std::time::Duration::from_secs(2))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let mut tokens = Vec::new();
    while let Ok(r) = replies.recv_async().await {
        if let Ok(sample) = r.result() {
            tokens.push(sample.key_expr().to_string());
        }
    }
    let has = |part: &str| tokens.iter().any(|t| t.contains(part));
    assert!(has("/NN/%/%/ebm_runtime"), "{tokens:?}");
    assert!(has("/MP/%/%/ebm_runtime/%ebm%forecast/trajectory_msgs::msg::dds_::JointTrajectory_/RIHS01_179b"), "{tokens:?}");
    assert!(
        has("/MS/%/%/ebm_runtime/%joint_states/sensor_msgs::msg::dds_::JointState_/RIHS01_a13e"),
        "{tokens:?}"
    );
    assert!(
        has("/MP/%/%/ebm_runtime/%diagnostics/diagnostic_msgs::msg::dds_::DiagnosticArray_/"),
        "{tokens:?}"
    );

    // Bad input, counted; the robot keeps being served.
    let received = h.status_where(|_| true).await?.counters["ros2_received"];
    let served = rec.forecasts.len();
    let good = encode_cdr(&joint_state(1_700_001_000, &JOINTS, 0.1))?;
    put_ros(&h, &input, good[..20].to_vec(), 3).await?;
    let wrong_hash = wire::data_key(0, "/joint_states", JointState::TYPE_NAME, "RIHS01_00");
    put_ros(
        &h,
        &wrong_hash,
        encode_cdr(&joint_state(1_700_001_010, &JOINTS, 0.0))?,
        4,
    )
    .await?;
    put_ros(
        &h,
        &input,
        encode_cdr(&joint_state(1_700_001_011, &JOINTS[..3], 0.0))?,
        5,
    )
    .await?;
    put_ros(
        &h,
        &input,
        encode_cdr(&joint_state(1_700_000_001, &JOINTS, 0.0))?,
        6,
    )
    .await?;
    put_ros(
        &h,
        &input,
        encode_cdr(&joint_state(1_700_001_012, &JOINTS, 0.2))?,
        7,
    )
    .await?;
    let c = h
        .status_where(|s| s.counters["ros2_received"] >= received + 5)
        .await?
        .counters;
    for (k, n) in [
        ("ros2_malformed", 1),
        ("ros2_wrong_type", 1),
        ("ros2_wrong_joints", 1),
        ("ros2_out_of_order", 1),
    ] {
        assert_eq!(c[k], n, "{k}: {c:?}");
    }
    receive_until(&mut ours, &mut rec, |r| {
        r.forecasts.len() > served && !r.errors.is_empty()
    })
    .await?;
    assert!(c["ros2_published"] >= 6, "{c:?}");
    h.stop().await
}

/// Two robots of one action-conditional model, with the same joint states
/// but different commands: their transitions' OOD energies differ (they
/// would be equal if the commands were not carried), and a command of
/// another shape is refused and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ros2_commands_go_with_the_states_of_an_action_conditional_model() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ckpt = dir.path().join("arm");
    joint_model(&ckpt, true)?;
    let entry = |robot: &str| Ros2Robot {
        robot: robot.into(),
        joint_states: format!("/{robot}/joint_states").replace('-', "_"),
        action_topic: Some(format!("/{robot}/joint_trajectory").replace('-', "_")),
        forecast_topic: None,
        denoised_topic: None,
        diagnostics_topic: None,
        domain_id: 0,
        distro: "jazzy".into(),
        period_s: 0.1,
        node: "ebm_runtime".into(),
    };
    let h = Harness::start(|cfg| {
        cfg.model.as_mut().expect("a default model").checkpoint = ckpt.clone();
        cfg.ros2 = vec![entry("arm-1"), entry("arm-2")];
    })
    .await?;
    let command = |positions: Vec<f64>| JointTrajectory {
        joint_names: JOINTS.iter().rev().map(|j| j.to_string()).collect(),
        points: vec![ebm_msgs::ros2::JointTrajectoryPoint {
            positions,
            ..Default::default()
        }],
        ..Default::default()
    };
    let traj_key = |r: &str| {
        key(
            JointTrajectory::TYPE_NAME,
            &format!("/{r}/joint_trajectory"),
        )
    };
    put_ros(
        &h,
        &traj_key("arm_1"),
        encode_cdr(&command(vec![2.0, -2.0, 1.5, -1.5]))?,
        1,
    )
    .await?;
    put_ros(
        &h,
        &traj_key("arm_2"),
        encode_cdr(&command(vec![0.0; 4]))?,
        1,
    )
    .await?;
    // A command of another shape: refused, counted.
    let array = ebm_msgs::ros2::Float64MultiArray {
        data: vec![0.0; 4],
        ..Default::default()
    };
    let f64_type = ebm_msgs::ros2::Float64MultiArray::TYPE_NAME;
    let hash = wire::type_hash(f64_type, Distro::Rihs01).expect("known");
    let array_key = wire::data_key(0, "/arm_1/joint_trajectory", f64_type, hash);
    put_ros(&h, &array_key, encode_cdr(&array)?, 2).await?;
    let c = h
        .status_where(|s| s.counters["ros2_commands"] >= 2 && s.counters["ros2_wrong_joints"] >= 1)
        .await?
        .counters;
    assert_eq!(
        (c["ros2_commands"], c["ros2_wrong_joints"]),
        (2, 1),
        "{c:?}"
    );

    let mut energies = Vec::new();
    for robot in ["arm-1", "arm-2"] {
        let mut ours = h.outputs(robot).await?;
        let input = key(
            JointState::TYPE_NAME,
            &format!("/{}/joint_states", robot.replace('-', "_")),
        );
        let mut rec = Received::default();
        for (i, stamp) in [1_700_000_000u64, 1_700_000_001].into_iter().enumerate() {
            put_ros(
                &h,
                &input,
                encode_cdr(&joint_state(stamp, &JOINTS, 0.1 * i as f64))?,
                3 + i as i64,
            )
            .await?;
            receive_until(&mut ours, &mut rec, |r| r.forecasts.len() > i).await?;
        }
        receive_until(&mut ours, &mut rec, |r| !r.ood.is_empty()).await?;
        energies.push(rec.ood[0].energy);
    }
    assert_ne!(
        energies[0], energies[1],
        "the commands did not reach the model"
    );
    h.stop().await
}
