//! A ROS 2 robot's command topic, for a model that takes an action: the
//! latest command, read by [`ActionLayout`], goes with each of the robot's
//! states as its `last_action`.

use std::sync::{Arc, Mutex};

use ebm_msgs::ros2::{decode_cdr, Float64MultiArray, JointState, JointTrajectory, Ros2Message};
use ebm_msgs::{Encoding, ErrorCode, ErrorReply, RobotId};
use tokio::sync::mpsc;
use zenoh::pubsub::Subscriber;
use zenoh::sample::Sample;

use super::convert::ActionLayout;
use super::wire::{self, Distro};
use crate::counters::Counters;
use crate::error::StateError;
use crate::RuntimeError;

/// The latest command of a robot, shared with its joint-state input.
pub(crate) type LatestCommand = Arc<Mutex<Option<Vec<f32>>>>;

struct CommandInput {
    robot: RobotId,
    layout: ActionLayout,
    latest: LatestCommand,
    counters: Arc<Counters>,
    errors: mpsc::Sender<StateError>,
}

/// Subscribes to `topic` (any of the three command types, any known type
/// hash); returns the subscription and where the latest command is kept.
pub(crate) async fn subscribe(
    session: &zenoh::Session,
    (domain, topic): (u32, &str),
    robot: RobotId,
    layout: ActionLayout,
    counters: &Arc<Counters>,
    errors: &mpsc::Sender<StateError>,
) -> Result<(Subscriber<()>, LatestCommand), RuntimeError> {
    let latest: LatestCommand = Arc::new(Mutex::new(None));
    let input = CommandInput {
        robot,
        layout,
        latest: Arc::clone(&latest),
        counters: Arc::clone(counters),
        errors: errors.clone(),
    };
    let key = format!("{domain}/{}/*/*", topic.trim_matches('/'));
    let sub = session
        .declare_subscriber(key)
        .callback(move |s| input.take(&s))
        .await
        .map_err(RuntimeError::zenoh("declaring a ROS 2 command subscriber"))?;
    Ok((sub, latest))
}

impl CommandInput {
    fn take(&self, sample: &Sample) {
        let c = &self.counters;
        match self.action(sample) {
            Ok(a) => {
                Counters::inc(&c.ros2_commands);
                *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(a);
            }
            Err((counter, reply)) => {
                Counters::inc(counter);
                if self
                    .errors
                    .try_send((self.robot.clone(), Encoding::Json, reply))
                    .is_err()
                {
                    Counters::inc(&c.state_errors_dropped);
                }
            }
        }
    }

    fn action(
        &self,
        sample: &Sample,
    ) -> Result<Vec<f32>, (&std::sync::atomic::AtomicU64, ErrorReply)> {
        let c = &self.counters;
        let key = sample.key_expr().as_str();
        let mut chunks = key.rsplit('/');
        let (hash, dds) = (
            chunks.next().unwrap_or_default(),
            chunks.next().unwrap_or_default(),
        );
        let known = |type_name: &str| {
            wire::dds_type_name(type_name) == dds
                && [Distro::Rihs01, Distro::Humble]
                    .iter()
                    .any(|&d| wire::type_hash(type_name, d) == Some(hash))
        };
        let malformed = |e: String| {
            (
                &c.ros2_malformed,
                ErrorReply {
                    code: ErrorCode::Malformed,
                    message: format!("`{key}`: {e}"),
                },
            )
        };
        let payload = sample.payload().to_bytes();
        let read = if known(JointState::TYPE_NAME) {
            let m = decode_cdr::<JointState>(&payload).map_err(|e| malformed(e.to_string()))?;
            self.layout.from_joint_state(&m)
        } else if known(JointTrajectory::TYPE_NAME) {
            let m =
                decode_cdr::<JointTrajectory>(&payload).map_err(|e| malformed(e.to_string()))?;
            self.layout.from_trajectory(&m)
        } else if known(Float64MultiArray::TYPE_NAME) {
            let m =
                decode_cdr::<Float64MultiArray>(&payload).map_err(|e| malformed(e.to_string()))?;
            self.layout.from_array(&m)
        } else {
            return Err((&c.ros2_wrong_type, ErrorReply {
                code: ErrorCode::Malformed,
                message: format!("`{key}`: not a JointState, JointTrajectory or Float64MultiArray command (type {dds}, hash {hash})"),
            }));
        };
        read.map_err(|why| {
            (
                &c.ros2_wrong_joints,
                ErrorReply {
                    code: ErrorCode::WrongDimensions,
                    message: format!("`{key}`: {why}"),
                },
            )
        })
    }
}
