//! The bridge at run time: subscriptions to ROS 2 robots' joint states,
//! their publishers and liveliness tokens (see [`super`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ebm_msgs::ros2::{decode_cdr, encode_cdr, JointState, Ros2Message, Time};
use ebm_msgs::ros2::{DiagnosticArray, JointTrajectory};
use ebm_msgs::{Encoding, ErrorCode, ErrorReply, RobotId, RobotState};
use tokio::sync::mpsc;
use tracing::{info, warn};
use zenoh::liveliness::LivelinessToken;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::sample::Sample;

use super::command::{self, LatestCommand};
use super::convert::{diagnostics, ActionLayout, JointLayout};
use super::wire::{self, Attachment, Distro, Entity};
use super::Ros2Robot;
use crate::counters::Counters;
use crate::engine::StreamOutput;
use crate::error::StateError;
use crate::fleet::Fleet;
use crate::RuntimeError;

/// One ROS 2 output topic: its publisher, GID and sequence numbers.
struct RosPublisher {
    publisher: Publisher<'static>,
    gid: [u8; 16],
    seq: AtomicI64,
}

impl RosPublisher {
    async fn put<M: Ros2Message>(&self, msg: &M, c: &Counters) {
        let Ok(bytes) = encode_cdr(msg) else {
            Counters::inc(&c.publish_errors);
            return;
        };
        let attachment = Attachment {
            sequence: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
            source_timestamp_ns: now().to_ns().map_or(0, |n| n as i64),
            gid: self.gid,
        };
        match self
            .publisher
            .put(bytes)
            .attachment(attachment.to_bytes())
            .await
        {
            Ok(()) => Counters::inc(&c.ros2_published),
            Err(_) => Counters::inc(&c.publish_errors),
        }
    }
}

/// A served ROS 2 robot's outputs.
struct RobotOutputs {
    layout: JointLayout,
    period_s: f64,
    node: String,
    forecast: Option<RosPublisher>,
    denoised: Option<RosPublisher>,
    diagnostics: Option<RosPublisher>,
}

/// Where a robot's joint states come from: the publisher (its GID) and the
/// last stamp, for episodes and ordering.
#[derive(Default)]
struct Source {
    gid: Option<[u8; 16]>,
    episode: u64,
    seq: u64,
    last_stamp_ns: Option<u64>,
}

/// The running bridge; dropping it undeclares its subscriptions and tokens.
pub struct Ros2Bridge {
    outputs: HashMap<RobotId, RobotOutputs>,
    _subscribers: Vec<Subscriber<()>>,
    _tokens: Vec<LivelinessToken>,
}

fn now() -> Time {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Time::from_ns(ns)
}

impl Ros2Bridge {
    /// Subscribes to every entry's joint states and declares its outputs.
    /// Fails when an entry's robot has no model, or its model's state is
    /// not named by joints.
    pub(crate) async fn start(
        entries: &[Ros2Robot],
        session: &zenoh::Session,
        fleet: &Arc<Fleet>,
        counters: &Arc<Counters>,
        errors: &mpsc::Sender<StateError>,
    ) -> Result<Self, RuntimeError> {
        let zid = session.zid().to_string();
        let served = fleet.status();
        let mut bridge = Self {
            outputs: HashMap::new(),
            _subscribers: Vec::new(),
            _tokens: Vec::new(),
        };
        let mut nodes: HashMap<(u32, String), u32> = HashMap::new();
        let mut next_entity = 1u32;
        for e in entries {
            let robot = RobotId::new(e.robot.as_str())?;
            let distro = Distro::parse(&e.distro)
                .ok_or_else(|| RuntimeError::Model(format!("ros2: unknown distro {}", e.distro)))?;
            let model = fleet
                .route_index(&robot)
                .and_then(|i| served.get(i))
                .ok_or_else(|| {
                    RuntimeError::Model(format!("ros2: no model serves robot {robot}"))
                })?;
            let layout = JointLayout::from_names(&model.robot.state_names).map_err(|why| {
                RuntimeError::Model(format!(
                    "ros2 robot {robot} (model {}): {why}",
                    model.model_id
                ))
            })?;
            let n_nodes = nodes.len() as u32;
            let node_id = *nodes
                .entry((e.domain_id, e.node.clone()))
                .or_insert(n_nodes);
            let node = wire::Node {
                domain: e.domain_id,
                zid: &zid,
                id: node_id,
                name: &e.node,
            };
            if node_id == n_nodes {
                bridge
                    ._tokens
                    .push(declare_token(session, node.token()).await?);
            }
            let mut entity = |kind, topic: &str, type_name: &str| {
                let hash = wire::type_hash(type_name, distro).unwrap_or(wire::NO_TYPE_HASH);
                next_entity += 1;
                let token = node.entity_token(next_entity, kind, topic, type_name, hash);
                (wire::data_key(e.domain_id, topic, type_name, hash), token)
            };
            // In: joint states, any distribution's hash (checked per sample).
            let (_, sub_token) =
                entity(Entity::Subscription, &e.joint_states, JointState::TYPE_NAME);
            bridge
                ._tokens
                .push(declare_token(session, sub_token).await?);
            let key = wire::data_key(e.domain_id, &e.joint_states, JointState::TYPE_NAME, "*");
            let command = match (&e.action_topic, model.robot.action_dim) {
                (Some(t), 0) => {
                    return Err(RuntimeError::Model(format!(
                        "ros2 robot {robot}: action_topic {t}, but its model {} takes no action",
                        model.model_id
                    )))
                }
                (Some(t), _) => {
                    let layout =
                        ActionLayout::from_names(&model.robot.action_names).map_err(|why| {
                            RuntimeError::Model(format!(
                                "ros2 robot {robot} (model {}): {why}",
                                model.model_id
                            ))
                        })?;
                    let (sub, latest) = command::subscribe(
                        session,
                        (e.domain_id, t),
                        robot.clone(),
                        layout,
                        counters,
                        errors,
                    )
                    .await?;
                    bridge._subscribers.push(sub);
                    Some(latest)
                }
                (None, n) => {
                    if n > 0 {
                        warn!(robot = %robot, "its model takes an action but no action_topic is set: states carry none (scored as the training mean)");
                    }
                    None
                }
            };
            let input = Input {
                robot: robot.clone(),
                command,
                layout: layout.clone(),
                fleet: Arc::clone(fleet),
                counters: Arc::clone(counters),
                errors: errors.clone(),
                source: Mutex::new(Source::default()),
            };
            bridge._subscribers.push(
                session
                    .declare_subscriber(key.clone())
                    .callback(move |s| input.take(&s))
                    .await
                    .map_err(RuntimeError::zenoh("declaring a ROS 2 subscriber"))?,
            );
            // Out.
            let mut out = |topic: &Option<String>, type_name: &'static str| {
                topic
                    .as_ref()
                    .map(|t| entity(Entity::Publisher, t, type_name))
            };
            let keys = [
                out(&e.forecast_topic, JointTrajectory::TYPE_NAME),
                out(&e.denoised_topic, JointState::TYPE_NAME),
                out(&e.diagnostics_topic, DiagnosticArray::TYPE_NAME),
            ];
            let mut pubs = Vec::new();
            for k in keys {
                pubs.push(match k {
                    Some((key, token)) => {
                        let gid = wire::gid_of(&token);
                        bridge._tokens.push(declare_token(session, token).await?);
                        let publisher = session
                            .declare_publisher(key)
                            .congestion_control(CongestionControl::Drop)
                            .await
                            .map_err(RuntimeError::zenoh("declaring a ROS 2 publisher"))?;
                        Some(RosPublisher {
                            publisher,
                            gid,
                            seq: AtomicI64::new(0),
                        })
                    }
                    None => None,
                });
            }
            let mut pubs = pubs.into_iter();
            info!(robot = %robot, topic = %e.joint_states, joints = ?layout.joints, "ROS 2 robot");
            bridge.outputs.insert(
                robot,
                RobotOutputs {
                    layout,
                    period_s: e.period_s,
                    node: e.node.clone(),
                    forecast: pubs.next().flatten(),
                    denoised: pubs.next().flatten(),
                    diagnostics: pubs.next().flatten(),
                },
            );
        }
        Ok(bridge)
    }

    /// Publishes one robot's outputs on its ROS 2 topics (if it has any).
    pub(crate) async fn publish(&self, out: &StreamOutput, c: &Counters) {
        let Some(r) = self.outputs.get(&out.robot) else {
            return;
        };
        let stamp = now();
        if let (Some(p), Some(f)) = (&r.forecast, &out.forecast) {
            let t = r
                .layout
                .trajectory(&f.mean, f.horizon as usize, r.period_s, stamp);
            p.put(&t, c).await;
        }
        if let (Some(p), Some(d)) = (&r.denoised, &out.denoised) {
            p.put(&r.layout.joint_state(&d.state, stamp, ""), c).await;
        }
        if let (Some(p), Some(o)) = (&r.diagnostics, &out.ood) {
            p.put(&diagnostics(o, stamp, &r.node), c).await;
        }
    }
}

async fn declare_token(
    session: &zenoh::Session,
    key: String,
) -> Result<LivelinessToken, RuntimeError> {
    session
        .liveliness()
        .declare_token(key)
        .await
        .map_err(RuntimeError::zenoh("declaring a ROS 2 liveliness token"))
}

/// One ROS 2 robot's incoming joint states.
struct Input {
    robot: RobotId,
    /// The latest command, for a model that takes an action.
    command: Option<LatestCommand>,
    layout: JointLayout,
    fleet: Arc<Fleet>,
    counters: Arc<Counters>,
    errors: mpsc::Sender<StateError>,
    source: Mutex<Source>,
}

impl Input {
    fn take(&self, sample: &Sample) {
        let c = &self.counters;
        Counters::inc(&c.ros2_received);
        match self.state(sample) {
            Ok(Some(state)) => {
                Counters::inc(&c.states_received);
                let Some(i) = self.fleet.route_index(&self.robot) else {
                    return;
                };
                if let Err(e) = self.fleet.engine(i).submit_state(self.robot.clone(), state) {
                    self.refuse(e);
                }
            }
            Ok(None) => {}
            Err(e) => self.refuse(e),
        }
    }

    fn refuse(&self, reply: ErrorReply) {
        if self
            .errors
            .try_send((self.robot.clone(), Encoding::Json, reply))
            .is_err()
        {
            Counters::inc(&self.counters.state_errors_dropped);
        }
    }

    /// The robot's state from one sample; `None` for a sample dropped
    /// silently (counted: out of order).
    fn state(&self, sample: &Sample) -> Result<Option<RobotState>, ErrorReply> {
        let c = &self.counters;
        let refuse = |counter: &std::sync::atomic::AtomicU64, code, message: String| {
            Counters::inc(counter);
            Err(ErrorReply { code, message })
        };
        let key = sample.key_expr().as_str();
        let hash = key.rsplit('/').next().unwrap_or_default();
        let known =
            [Distro::Rihs01, Distro::Humble].map(|d| wire::type_hash(JointState::TYPE_NAME, d));
        if !known.contains(&Some(hash)) {
            return refuse(
                &c.ros2_wrong_type,
                ErrorCode::Malformed,
                format!("`{key}`: type hash {hash} is not sensor_msgs/msg/JointState's"),
            );
        }
        let js: JointState = match decode_cdr(&sample.payload().to_bytes()) {
            Ok(js) => js,
            Err(e) => {
                return refuse(
                    &c.ros2_malformed,
                    ErrorCode::Malformed,
                    format!("`{key}`: {e}"),
                )
            }
        };
        let state = match self.layout.state_of(&js) {
            Ok(s) => s,
            Err(why) => {
                return refuse(
                    &c.ros2_wrong_joints,
                    ErrorCode::WrongDimensions,
                    format!("`{key}`: {why}"),
                )
            }
        };
        let attachment = sample
            .attachment()
            .and_then(|a| Attachment::parse(&a.to_bytes()));
        let stamp_ns = js
            .header
            .stamp
            .to_ns()
            .filter(|&n| n > 0)
            .or_else(|| attachment.map(|a| a.source_timestamp_ns.max(0) as u64))
            .unwrap_or_else(|| now().to_ns().unwrap_or(0));
        let mut src = self.source.lock().unwrap_or_else(|p| p.into_inner());
        let gid = attachment.map(|a| a.gid);
        if src.gid.is_some() && gid.is_some() && src.gid != gid {
            // Another publisher (the robot restarted): a new episode.
            src.episode += 1;
            src.last_stamp_ns = None;
        }
        src.gid = gid.or(src.gid);
        if src.last_stamp_ns.is_some_and(|last| stamp_ns <= last) {
            Counters::inc(&c.ros2_out_of_order);
            if Counters::get(&c.ros2_out_of_order).is_power_of_two() {
                warn!(robot = %self.robot, "joint states out of order (stamp {stamp_ns} ns not after the last)");
            }
            return Ok(None);
        }
        src.last_stamp_ns = Some(stamp_ns);
        src.seq += 1;
        Ok(Some(RobotState {
            robot_id: self.robot.to_string(),
            episode: src.episode,
            seq: src.seq,
            stamp_ns,
            state,
            last_action: self
                .command
                .as_ref()
                .and_then(|c| c.lock().unwrap_or_else(|p| p.into_inner()).clone()),
        }))
    }
}
