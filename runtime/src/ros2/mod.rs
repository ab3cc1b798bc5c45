//! The ROS 2 bridge: robots running `rmw_zenoh` are served without any code
//! of theirs. The daemon subscribes to a robot's `sensor_msgs/msg/JointState`
//! topic as rmw_zenoh publishes it, turns each message into the robot's state
//! (by joint name, see [`convert`]), and publishes its outputs both on its own
//! keys and as ROS 2 topics (`JointTrajectory` forecast mean, `JointState`
//! denoised state, `DiagnosticArray` OOD score) with the attachment and the
//! liveliness tokens rmw_zenoh uses, so `ros2 topic list / echo` see them
//! ([`wire`]).

pub mod bridge;
mod command;
pub mod convert;
pub mod wire;

use serde::{Deserialize, Serialize};

pub use bridge::Ros2Bridge;

/// A `[[ros2]]` entry: one ROS 2 robot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ros2Robot {
    /// The robot's id in this daemon (its outputs also go to
    /// `<prefix>/<robot>/...`); the model serving it is the one its id matches.
    pub robot: String,
    /// Its `sensor_msgs/msg/JointState` topic.
    pub joint_states: String,
    /// The robot's command topic, for a model that takes an action
    /// (`sensor_msgs/msg/JointState`, `trajectory_msgs/msg/JointTrajectory`
    /// or `std_msgs/msg/Float64MultiArray`, as `ebm-sim import-ros2
    /// --action-topic` read it): each state carries the latest command.
    #[serde(default)]
    pub action_topic: Option<String>,
    /// Where the forecast mean goes (`trajectory_msgs/msg/JointTrajectory`).
    #[serde(default)]
    pub forecast_topic: Option<String>,
    /// Where the denoised state goes (`sensor_msgs/msg/JointState`).
    #[serde(default)]
    pub denoised_topic: Option<String>,
    /// Where OOD scores go (`diagnostic_msgs/msg/DiagnosticArray`).
    #[serde(default)]
    pub diagnostics_topic: Option<String>,
    #[serde(default)]
    pub domain_id: u32,
    /// Whose type hashes the keys carry ([`wire::DISTROS`]).
    #[serde(default = "default_distro")]
    pub distro: String,
    /// The model's step in seconds (`ebm-sim import-ros2`'s `1 / --rate-hz`):
    /// the forecast's points are this far apart.
    #[serde(default = "default_period_s")]
    pub period_s: f64,
    /// The ROS node name the bridge's topics belong to.
    #[serde(default = "default_node")]
    pub node: String,
}

fn default_distro() -> String {
    "jazzy".into()
}

fn default_period_s() -> f64 {
    0.1
}

fn default_node() -> String {
    "ebm_runtime".into()
}

impl Ros2Robot {
    /// The first thing wrong with the entry, if any: (field, rule).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        let topic_ok = |t: &str| {
            t.starts_with('/')
                && t.len() > 1
                && t[1..].split('/').all(|c| {
                    !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                })
        };
        if ebm_msgs::RobotId::new(self.robot.as_str()).is_err() {
            return Some(("ros2.robot", "1-64 ASCII letters, digits, '-' or '_'"));
        }
        let outs = [
            &self.action_topic,
            &self.forecast_topic,
            &self.denoised_topic,
            &self.diagnostics_topic,
        ];
        if !topic_ok(&self.joint_states)
            || outs
                .iter()
                .any(|t| t.as_deref().is_some_and(|t| !topic_ok(t)))
        {
            return Some((
                "ros2 topics",
                "absolute ROS names (`/ns/name`: letters, digits, '_')",
            ));
        }
        if wire::Distro::parse(&self.distro).is_none() {
            return Some(("ros2.distro", "humble, iron, jazzy, kilted or rolling"));
        }
        if !(self.period_s.is_finite() && self.period_s > 0.0) {
            return Some(("ros2.period_s", "positive"));
        }
        if self.domain_id > 232 {
            return Some(("ros2.domain_id", "0 to 232"));
        }
        if self.node.is_empty()
            || !self
                .node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Some(("ros2.node", "letters, digits and '_'"));
        }
        None
    }
}
