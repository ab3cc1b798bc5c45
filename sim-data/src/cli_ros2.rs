//! `ebm-sim import-ros2`: arguments and the printed summary.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use ebm_msgs::{Encoding, RobotId};
use ebm_sim_data::ros2_import::{import_ros2, Clock, ImportOptions, JointField};

/// A rosbag2 MCAP bag (schema encoding `ros2msg`, messages `cdr`) to a recording.
#[derive(Args)]
pub struct ImportRos2 {
    /// The bag: its `.mcap` file, or the directory `ros2 bag record` wrote
    /// (its split `.mcap` files read in order).
    bag: PathBuf,
    /// The `sensor_msgs/msg/JointState` topic that is the state.
    #[arg(long)]
    state_topic: String,
    /// JointState fields in the state, in order: position, velocity, effort.
    #[arg(long, value_delimiter = ',', default_value = "position")]
    state_fields: Vec<String>,
    /// The command topic that is the action: JointState (positions),
    /// Float64MultiArray (data) or JointTrajectory (first point's positions).
    #[arg(long)]
    action_topic: Option<String>,
    /// Joints in order (default: the first state message's).
    #[arg(long, value_delimiter = ',')]
    joints: Option<Vec<String>>,
    /// Several publishers share the state topic, each naming some joints:
    /// merge them (each message updates the joints it names; needs --joints).
    #[arg(long)]
    merge_publishers: bool,
    /// Rate of the recording: states and actions are interpolated linearly onto it.
    #[arg(long, default_value_t = 10.0)]
    rate_hz: f64,
    /// A gap longer than this many periods ends an episode.
    #[arg(long, default_value_t = 3.0)]
    max_gap_periods: f64,
    /// Steps per episode (default: the longest every span holds).
    #[arg(long)]
    steps: Option<u32>,
    /// `header` (stamps; log time for zero stamps and headerless types) or `log`.
    #[arg(long, default_value = "header")]
    clock: String,
    /// The robot's kind in the recording (default: the bag's file stem).
    #[arg(long)]
    robot_kind: Option<String>,
    /// The robot id (default: from the kind).
    #[arg(long)]
    robot_id: Option<String>,
    /// Record JSON instead of bincode.
    #[arg(long)]
    json: bool,
    /// The recording to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: ImportRos2) -> Result<()> {
    let mut fields = Vec::new();
    for f in &a.state_fields {
        match JointField::parse(f) {
            Some(field) => fields.push(field),
            None => bail!("--state-fields: `{f}` is not position, velocity or effort"),
        }
    }
    let clock = match a.clock.as_str() {
        "header" => Clock::Header,
        "log" => Clock::Log,
        other => bail!("--clock: `{other}` is not header or log"),
    };
    let opts = ImportOptions {
        state_topic: a.state_topic,
        state_fields: fields,
        action_topic: a.action_topic,
        joints: a.joints,
        merge_publishers: a.merge_publishers,
        rate_hz: a.rate_hz,
        max_gap_periods: a.max_gap_periods,
        steps: a.steps,
        clock,
        robot_kind: a.robot_kind,
        robot_id: a.robot_id.map(RobotId::new).transpose()?,
        encoding: if a.json {
            Encoding::Json
        } else {
            Encoding::Bincode
        },
    };
    let r = import_ros2(&a.bag, &opts, &a.out)?;
    if let Some(bytes) = r.truncated_after {
        println!(
            "warning: the bag ends in the middle of a record after {bytes} bytes; imported what came before"
        );
    }
    for (topic, (ty, n)) in &r.topics {
        println!("read {n:>7} messages of {topic} ({ty})");
    }
    for s in std::iter::once(&r.state).chain(&r.action) {
        println!(
            "{}: {} of {} messages used; skipped {} out of order, {} non-finite, {} empty trajectories; {} timed by log time",
            s.topic, s.samples, s.messages, s.out_of_order, s.non_finite, s.empty_trajectories, s.log_time_fallbacks
        );
    }
    println!(
        "wrote {} episodes x {} steps at {} Hz ({} spans, {} resampled steps left out) to {}",
        r.episodes,
        r.steps,
        1e9 / r.period_ns as f64,
        r.spans,
        r.dropped_steps,
        a.out.display()
    );
    println!(
        "robot {} (kind {}): state {} [{}], action {} [{}]",
        r.robot_id,
        r.robot.kind,
        r.robot.state_dim,
        r.robot.state_names.join(", "),
        r.robot.action_dim,
        r.robot.action_names.join(", ")
    );
    Ok(())
}
