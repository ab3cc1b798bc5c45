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

use crate::MsgsError;

/// The first schema version: every kind's [`Message::VERSION`] unless its
/// fields have changed since. Checked on every decode.
pub const PROTOCOL_VERSION: u16 = 1;
/// Hand joint angles in a state (Shadow hand order, see `ebm-sim-data`).
pub const JOINT_DIM: usize = 24;
/// State: 24 joint angles, cube position (3), cube quaternion `[x, y, z, w]` (4).
pub const STATE_DIM: usize = JOINT_DIM + 3 + 4;
/// Action: 20 actuator position targets (rad).
pub const ACTION_DIM: usize = 20;

/// A message type the codec can carry: a name for errors and a validity check
/// run after every decode (dimensions, finiteness).
pub trait Message: Serialize + for<'de> Deserialize<'de> {
    /// Name used in errors and schemas.
    const KIND: &'static str;
    /// Schema version of this kind, carried in its envelope.
    const VERSION: u16 = PROTOCOL_VERSION;
    /// Checks invariants serde cannot express.
    fn validate(&self) -> Result<(), MsgsError>;
}

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
    /// [`STATE_DIM`] floats.
    pub state: Vec<f32>,
    /// The action applied just before this state ([`ACTION_DIM`] floats), if known.
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
    /// [`ACTION_DIM`] actuator position targets.
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
    /// `particles x horizon x STATE_DIM`, row-major.
    pub trajectories: Vec<f32>,
    /// Energy of each particle's trajectory (`particles`).
    pub energies: Vec<f32>,
    /// Per-step mean over particles (`horizon x STATE_DIM`).
    pub mean: Vec<f32>,
    /// Per-step standard deviation over particles (`horizon x STATE_DIM`).
    pub spread: Vec<f32>,
    pub compute_us: u64,
    pub langevin_steps: u32,
}

/// How unusual the latest observed transition is, alone and over the
/// robot's recent transitions (schema version 2: the window fields; 3: the
/// window's Stein discrepancy).
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

/// The daemon's health, published periodically on `ebm/status` (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonStatus {
    pub daemon_id: String,
    pub model_id: String,
    /// Where OOD percentiles come from: `checkpoint` (training energies
    /// stored with the model) or `online` (the checkpoint has none; energies
    /// seen since start-up, flags off until enough are seen).
    pub ood_percentiles: String,
    /// Warnings a user should see (untrained model, missing checkpoint...).
    pub warnings: Vec<String>,
    pub uptime_ms: u64,
    /// Robots seen since start-up.
    pub robots: u32,
    /// Named counters and gauges: inputs, drops, errors, outputs.
    pub counters: std::collections::BTreeMap<String, u64>,
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

fn check_finite(kind: &'static str, field: &'static str, v: &[f32]) -> Result<(), MsgsError> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(MsgsError::NonFinite { kind, field, index }),
        None => Ok(()),
    }
}

impl Message for RobotState {
    const KIND: &'static str = "RobotState";
    fn validate(&self) -> Result<(), MsgsError> {
        check_len(Self::KIND, "state", &self.state, STATE_DIM)?;
        match &self.last_action {
            Some(a) => check_len(Self::KIND, "last_action", a, ACTION_DIM),
            None => Ok(()),
        }
    }
}

impl Message for Action {
    const KIND: &'static str = "Action";
    fn validate(&self) -> Result<(), MsgsError> {
        check_len(Self::KIND, "action", &self.action, ACTION_DIM)
    }
}

impl Message for Forecast {
    const KIND: &'static str = "Forecast";
    fn validate(&self) -> Result<(), MsgsError> {
        let (h, p) = (self.horizon as usize, self.particles as usize);
        let k = Self::KIND;
        check_len(k, "trajectories", &self.trajectories, p * h * STATE_DIM)?;
        check_len(k, "energies", &self.energies, p)?;
        check_len(k, "mean", &self.mean, h * STATE_DIM)?;
        check_len(k, "spread", &self.spread, h * STATE_DIM)
    }
}

impl Message for OodScore {
    const KIND: &'static str = "OodScore";
    const VERSION: u16 = 3;
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
    fn validate(&self) -> Result<(), MsgsError> {
        check_len(Self::KIND, "state", &self.state, STATE_DIM)
    }
}

impl Message for ForecastRequest {
    const KIND: &'static str = "ForecastRequest";
    fn validate(&self) -> Result<(), MsgsError> {
        Ok(())
    }
}

impl Message for DaemonStatus {
    const KIND: &'static str = "DaemonStatus";
    fn validate(&self) -> Result<(), MsgsError> {
        Ok(())
    }
}

impl Message for ErrorReply {
    const KIND: &'static str = "ErrorReply";
    fn validate(&self) -> Result<(), MsgsError> {
        Ok(())
    }
}
