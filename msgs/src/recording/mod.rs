//! MCAP recordings of robot traffic and simulated datasets.
//!
//! Layout of a recording (one robot):
//! - a metadata record [`HEADER_RECORD`] first, before any message: the
//!   [`RecordingHeader`] (robot, encoding, trajectory count and length, control
//!   period, generator, seed, config, train/test split);
//! - channel `ebm/<robot>/state` ([`crate::RobotState`]) and channel
//!   `ebm/<robot>/action` ([`crate::Action`]), message encoding `ebm-bincode2`
//!   (no schema) or `json` (with a `jsonschema` schema, so Foxglove opens it);
//!   log time = publish time = the message's `stamp_ns`;
//! - trajectories are episodes `0..N` of the robot, laid end to end in time,
//!   each `steps` states and `steps` actions (`action[t]` is applied at
//!   `state[t]`); states carry `last_action: None` in recordings (the action
//!   channel has it; [`LastActions`] fills it back in for replay);
//! - optionally a metadata record [`SUMMARY_RECORD`] at the end (generator
//!   statistics, e.g. rejected attempts).
//!
//! Chunks are zstd-compressed; the reader validates chunk and data CRCs.

mod convert;
mod header;
mod last_action;
mod loader;
mod reader;
mod writer;

pub use convert::{convert, Converted};
pub use header::{format_ids, parse_ids, RecordingHeader, Split, HEADER_RECORD, SUMMARY_RECORD};
pub use last_action::LastActions;
pub use loader::{load, Dataset};
pub use reader::{RecordingEvent, RecordingReader};
pub use writer::RecordingWriter;

#[cfg(test)]
mod tests;
