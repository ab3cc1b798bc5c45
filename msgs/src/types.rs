//! Message types, shared by the wire (Zenoh) and recordings (MCAP).
//!
//! Every payload travels inside a versioned envelope (see [`crate::codec`])
//! carrying its kind's [`Message::VERSION`]: [`PROTOCOL_VERSION`] for kinds
//! unchanged since the first protocol, one more each time a kind's fields
//! change (so recordings of states and actions stay readable when an output
//! message grows).
//!
//! Trajectories are identified by `(robot_id, episode)`: a robot's episode
//! counter increments on every reset, and the simulator uses one episode per
//! trajectory (episode = trajectory id), so a recording holds one state and
//! one action channel per robot whatever the number of trajectories (MCAP
//! channel ids are 16-bit, so a channel per trajectory cannot scale).

use serde::{Deserialize, Serialize};

use crate::robot::MAX_DIM;
use crate::MsgsError;

/// The first schema version: every kind's [`Message::VERSION`] unless its
/// fields have changed since. Checked on every decode.
pub const PROTOCOL_VERSION: u16 = 1;
/// Largest payload of a message that carries at most one state or action
/// ([`MAX_DIM`] floats each, as JSON text): 256 KiB. Bigger payloads of
/// those kinds are refused before they are parsed.
pub const MAX_SMALL_MESSAGE_BYTES: usize = 256 << 10;

/// A message type the codec can carry: a name for errors and a validity check
/// run after every decode (dimensions, finiteness).
///
/// Vectors have the length of the robot's model (any robot): the codec
/// checks only bounds ([`MAX_DIM`]) and finiteness; the daemon checks each
/// state against the model serving its robot.
pub trait Message: Serialize + for<'de> Deserialize<'de> {
    /// Name used in errors and schemas.
    const KIND: &'static str;
    /// Schema version of this kind, carried in its envelope.
    const VERSION: u16 = PROTOCOL_VERSION;
    /// Largest accepted payload of this kind, in bytes.
    const MAX_BYTES: usize = MAX_MESSAGE_BYTES;
    /// Checks invariants serde cannot express.
    fn validate(&self) -> Result<(), MsgsError>;
}

/// Largest accepted payload: a 256-particle, 100-step forecast is about 3.2 MB.
pub const MAX_MESSAGE_BYTES: usize = 8 << 20;

/// One observation of a robot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotState {
    pub robot_id: String,
    /// Episode (trajectory) id; increments when the robot is reset.
    pub episode: u64,
    /// Per-robot sequence number, strictly increasing (gaps mean drops).
    pub seq: u64,
    /// Source time in ns (simulated time for the simulator).
    pub stamp_ns: u64,
    /// The robot's state (1 to [`MAX_DIM`] floats, its model's size).
    pub state: Vec<f32>,
    /// The action applied just before this state (the model's action size), if known.
    pub last_action: Option<Vec<f32>>,
}

/// The action a robot applied at one step (recordings; also publishable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub robot_id: String,
    pub episode: u64,
    /// Sequence number of the state this action was applied at.
    pub seq: u64,
    pub stamp_ns: u64,
    /// The robot's action (1 to [`MAX_DIM`] floats).
    pub action: Vec<f32>,
}

/// A multistep forecast from one state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forecast {
    pub robot_id: String,
    /// Sequence number of the state forecast from.
    pub seq: u64,
    pub model_id: String,
    pub horizon: u32,
    pub particles: u32,
    /// `particles x horizon x D`, row-major (`D` the model's state size).
    pub trajectories: Vec<f32>,
    /// Energy of each particle's trajectory (`particles`).
    pub energies: Vec<f32>,
    /// Per-step mean over particles (`horizon x D`).
    pub mean: Vec<f32>,
    /// Per-step standard deviation over particles (`horizon x D`).
    pub spread: Vec<f32>,
    pub compute_us: u64,
    pub langevin_steps: u32,
}

/// How unusual the latest observed transition is, alone and over the
/// robot's recent transitions (schema version 2: the window fields; 3: the
/// window's Stein discrepancy; 4: the reason of a fail-closed score).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OodScore {
    pub robot_id: String,
    pub seq: u64,
    pub model_id: String,
    /// Energy of the observed transition.
    pub energy: f32,
    /// Percentile of `energy` among training transitions, in `[0, 100]`.
    pub percentile: f32,
    pub flagged: bool,
    /// Mean `energy` over this robot's last `window_len` transitions of the
    /// episode, this one included.
    pub window_energy: f32,
    pub window_len: u32,
    /// Once the window is full, with a model that stores the Stein window
    /// test: how far the window's mean Stein features `x_j dE/dx_j` lie from
    /// those of training windows (a Hotelling statistic; `None` otherwise).
    pub window_discrepancy: Option<f32>,
    /// Percentile among training windows of the same length, once the window
    /// is full: of `window_discrepancy` where the model stores the Stein
    /// test, else of the window's mean energy (`None` before, or when the
    /// model stores no window statistics).
    pub window_percentile: Option<f32>,
    pub window_flagged: bool,
    /// Why the score was set to the most unusual value without being
    /// computed (a state outside the model's trained range, an infinite
    /// energy): the daemon fails closed, it never drops such a state silently.
    pub reason: Option<String>,
}

/// A filtered estimate of the current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenoisedState {
    pub robot_id: String,
    pub seq: u64,
    pub model_id: String,
    pub state: Vec<f32>,
}

/// An on-demand forecast query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastRequest {
    pub robot_id: String,
    pub horizon: u32,
    pub particles: u32,
    pub deadline_ms: Option<u64>,
}

/// One model a daemon serves and the robots it serves it to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServedModel {
    /// The robot-id pattern bound to the model (`arm-*`; `*` for the default).
    pub robots_pattern: String,
    pub model_id: String,
    /// The OOD model(s) scoring its robots' transitions (`a+b` when composed).
    pub ood_model_id: String,
    /// Where OOD percentiles come from: `checkpoint` (training energies
    /// stored with the model) or `online` (the checkpoint has none; energies
    /// seen since start-up, flags off until enough are seen).
    pub ood_percentiles: String,
    /// The robot kind, state and action sizes and dimension names the model
    /// was trained on: what its robots must send.
    pub robot: crate::RobotSpec,
    /// Robots served so far (ids, sorted).
    pub robots: Vec<String>,
}

/// The daemon's health, published periodically on `ebm/status` (JSON;
/// version 2: a list of served models instead of one model id; version 3:
/// `health`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonStatus {
    pub daemon_id: String,
    /// `Ok`, `Degraded` (serving, with warnings) or `Failing` (an inference
    /// thread died: the last status before the daemon exits non-zero).
    pub health: Health,
    /// The served models, in the order the config binds them (the default last).
    pub models: Vec<ServedModel>,
    /// Warnings a user should see (untrained model, missing checkpoint...).
    pub warnings: Vec<String>,
    pub uptime_ms: u64,
    /// Robots seen since start-up.
    pub robots: u32,
    /// Named counters and gauges: inputs, drops, errors, outputs.
    pub counters: std::collections::BTreeMap<String, u64>,
}

/// How well a daemon serves, in its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    /// Every model served as configured.
    Ok,
    /// Serving, but not as configured: see the status's warnings (an
    /// untrained model, an OOD model that could not be used).
    Degraded,
    /// An inference thread died; the daemon is exiting with an error.
    Failing,
}

/// Why a request or input was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    Malformed,
    WrongDimensions,
    NonFinite,
    UnknownRobot,
    NoModel,
    Overloaded,
    Internal,
}

/// Error reply to a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorReply {
    pub code: ErrorCode,
    pub message: String,
}

fn check_len(
    kind: &'static str,
    field: &'static str,
    v: &[f32],
    expected: usize,
) -> Result<(), MsgsError> {
    if v.len() != expected {
        return Err(MsgsError::WrongDimension {
            kind,
            field,
            expected,
            found: v.len(),
        });
    }
    check_finite(kind, field, v)
}

/// A robot vector: 1 to [`MAX_DIM`] finite floats.
fn check_vector(kind: &'static str, field: &'static str, v: &[f32]) -> Result<(), MsgsError> {
    if v.is_empty() || v.len() > MAX_DIM {
        return Err(MsgsError::DimensionOutOfBounds {
            kind,
            field,
            found: v.len(),
            max: MAX_DIM,
        });
    }
    check_finite(kind, field, v)
}

fn check_finite(kind: &'static str, field: &'static str, v: &[f32]) -> Result<(), MsgsError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(MsgsError::NonFinite { kind, field, index }),
        None => Ok(()),
    }
}

impl Message for RobotState {
    const KIND: &'static str = "RobotState";
    const MAX_BYTES: usize = MAX_SMALL_MESSAGE_BYTES;
    fn validate(&self) -> Result<(), MsgsError> {
        check_vector(Self::KIND, "state", &self.state)?;
        match &self.last_action {
            Some(a) => check_vector(Self::KIND, "last_action", a),
            None => Ok(()),
        }
    }
}

impl Message for Action {
    const KIND: &'static str = "Action";
    const MAX_BYTES: usize = MAX_SMALL_MESSAGE_BYTES;
    fn validate(&self) -> Result<(), MsgsError> {
        check_vector(Self::KIND, "action", &self.action)
    }
}

impl Message for Forecast {
    const KIND: &'static str = "Forecast";
    /// The state size is `mean.len() / horizon`; every other field must agree.
    fn validate(&self) -> Result<(), MsgsError> {
        let (h, p) = (self.horizon as usize, self.particles as usize);
        let k = Self::KIND;
        let d = self.mean.len().checked_div(h).unwrap_or(0);
        if h == 0 || p == 0 || d == 0 || d > MAX_DIM {
            return Err(MsgsError::DimensionOutOfBounds {
                kind: k,
                field: "mean",
                found: self.mean.len(),
                max: h.max(1) * MAX_DIM,
            });
        }
        check_len(k, "mean", &self.mean, h * d)?;
        check_len(k, "trajectories", &self.trajectories, p * h * d)?;
        check_len(k, "energies", &self.energies, p)?;
        check_len(k, "spread", &self.spread, h * d)
    }
}

impl Message for OodScore {
    const KIND: &'static str = "OodScore";
    const VERSION: u16 = 4;
    fn validate(&self) -> Result<(), MsgsError> {
        check_finite(Self::KIND, "energy", &[self.energy])?;
        check_finite(Self::KIND, "percentile", &[self.percentile])?;
        check_finite(Self::KIND, "window_energy", &[self.window_energy])?;
        check_finite(
            Self::KIND,
            "window_discrepancy",
            self.window_discrepancy.as_slice(),
        )?;
        check_finite(
            Self::KIND,
            "window_percentile",
            self.window_percentile.as_slice(),
        )
    }
}

impl Message for DenoisedState {
    const KIND: &'static str = "DenoisedState";
    const MAX_BYTES: usize = MAX_SMALL_MESSAGE_BYTES;
    fn validate(&self) -> Result<(), MsgsError> {
        check_vector(Self::KIND, "state", &self.state)
    }
}

impl Message for ForecastRequest {
    const KIND: &'static str = "ForecastRequest";
    const MAX_BYTES: usize = MAX_SMALL_MESSAGE_BYTES;
    fn validate(&self) -> Result<(), MsgsError> {
        Ok(())
    }
}

impl Message for DaemonStatus {
    const KIND: &'static str = "DaemonStatus";
    const VERSION: u16 = 3;
    fn validate(&self) -> Result<(), MsgsError> {
        Ok(())
    }
}

impl Message for ErrorReply {
    const KIND: &'static str = "ErrorReply";
    const MAX_BYTES: usize = MAX_SMALL_MESSAGE_BYTES;
    fn validate(&self) -> Result<(), MsgsError> {
        Ok(())
    }
}
