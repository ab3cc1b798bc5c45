//! `ebm-msgs`: the wire and recording formats of igebm-rs.
//!
//! This crate is the single owner of
//! - the message types ([`types`]): robot state and action (live traffic and
//!   recordings), forecast, OOD score, denoised state, forecast request and
//!   error reply, each carrying its kind's schema version in its envelope
//!   ([`types::Message::VERSION`]: [`PROTOCOL_VERSION`], or 4 for the OOD
//!   score since its window fields, their Stein discrepancy and the
//!   fail-closed reason, 2 for the
//!   daemon status since it lists served models);
//! - their codec ([`codec`]): bincode 2, strict (size limit per kind, protocol
//!   version, no trailing bytes, bounds on vector sizes, finiteness), and JSON for
//!   non-Rust clients and Foxglove; the only module that names bincode;
//! - the Zenoh key expressions ([`keys`]), robot-id validation and robot-id
//!   patterns (globs) with their key expressions;
//! - what a robot's vectors mean ([`robot`]): kind, state and action sizes,
//!   dimension names and units; recordings and models carry it, the code
//!   knows no robot's sizes;
//! - MCAP recordings ([`recording`]): writer, streaming reader, and the loader
//!   that turns a recording into `[N, T, state_dim]` / `[N, T, action_dim]` arrays;
//! - ROS 2 messages in CDR ([`ros2`]): `JointState`, `Float64MultiArray`,
//!   `JointTrajectory`, `DiagnosticArray` and their parts, for the bag
//!   importer and the ROS 2 bridge;
//! - JSON schemas of the recorded messages ([`schema`], for Foxglove), the
//!   record-by-record MCAP reader both recordings and bags use
//!   (`mcap_stream`), and payload mutations for robustness tests
//!   ([`mutate`]).
//!
//! Where it sits: at the bottom of the workspace; every other crate speaks
//! through these types.
//!
//! It does not depend on Zenoh: the runtime maps [`Encoding`] to a Zenoh
//! encoding through [`Encoding::mime`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod codec;
pub mod error;
pub mod keys;
mod mcap_stream;
pub mod mutate;
pub mod recording;
pub mod robot;
pub mod ros2;
pub mod schema;
pub mod types;

pub use codec::{decode, encode, Encoding};
pub use error::MsgsError;
pub use keys::{KeySpace, RobotId, RobotPattern};
/// Re-exported: the loader returns `ndarray` arrays.
pub use ndarray;
pub use robot::{RobotSpec, MAX_DIM};
pub use types::{
    Action, DaemonStatus, DenoisedState, ErrorCode, ErrorReply, Forecast, ForecastRequest, Health,
    Message, OodScore, RobotState, ServedModel, MAX_MESSAGE_BYTES, MAX_SMALL_MESSAGE_BYTES,
    PROTOCOL_VERSION,
};
