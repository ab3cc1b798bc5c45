//! ROS 2 messages in CDR, the bytes ROS 2 middlewares (rmw_zenoh, Fast DDS,
//! Cyclone DDS) and rosbag2 carry: the types the bag importer reads and the
//! ROS 2 bridge publishes, with a hand-written, bounded codec ([`cdr`]), and
//! a streaming reader of rosbag2 MCAP files ([`bag`]).
//!
//! ```
//! use ebm_msgs::ros2::{decode_cdr, encode_cdr, JointState, Ros2Message};
//! let js = JointState { name: vec!["elbow".into()], position: vec![0.5], ..Default::default() };
//! let bytes = encode_cdr(&js)?;
//! assert_eq!(&bytes[..4], &[0, 1, 0, 0]); // little-endian plain CDR
//! assert_eq!(decode_cdr::<JointState>(&bytes)?, js);
//! assert_eq!(JointState::TYPE_NAME, "sensor_msgs/msg/JointState");
//! # Ok::<(), ebm_msgs::MsgsError>(())
//! ```
//!
//! Decoding never panics, reads both byte orders, allocates no more than
//! the payload's size can justify, accepts at most 3 bytes of trailing
//! padding, and names the type, the field and the byte offset of what is
//! wrong ([`MsgsError::Cdr`]). The fixtures under `tests/fixtures/ros2/`
//! were written by an independent implementation (the Python `rosbags`
//! package, see `sim-data/ros2/`): the tests decode them and re-encode them
//! byte for byte.

pub mod bag;
pub mod cdr;
mod types;

#[cfg(test)]
mod tests;

pub use bag::{BagChannel, BagMessage, BagReader};
pub use cdr::{CdrError, CdrProblem, CdrReader, CdrWriter};
pub use types::{
    DiagnosticArray, DiagnosticStatus, Duration, Float64MultiArray, Header, JointState,
    JointTrajectory, JointTrajectoryPoint, KeyValue, MultiArrayDimension, MultiArrayLayout, Time,
};

use crate::MsgsError;

/// A ROS 2 message type with its CDR layout.
pub trait Ros2Message: Sized {
    /// The ROS type name, `package/msg/Type` (`sensor_msgs/msg/JointState`),
    /// as rosbag2 schemas and rmw_zenoh key expressions spell it.
    const TYPE_NAME: &'static str;
    /// Reads the fields in order (no encapsulation header).
    fn read_cdr(r: &mut CdrReader<'_>) -> Result<Self, CdrError>;
    /// Writes the fields in order (no encapsulation header).
    fn write_cdr(&self, w: &mut CdrWriter) -> Result<(), CdrError>;
}

/// Decodes one payload (encapsulation header first) as `M`.
pub fn decode_cdr<M: Ros2Message>(payload: &[u8]) -> Result<M, MsgsError> {
    let error = |error| MsgsError::Cdr {
        type_name: M::TYPE_NAME,
        error,
    };
    let mut r = CdrReader::new(payload).map_err(error)?;
    let msg = M::read_cdr(&mut r).map_err(error)?;
    r.finish().map_err(error)?;
    Ok(msg)
}

/// Encodes `msg` as little-endian CDR with its encapsulation header
/// (`00 01 00 00`), no trailing padding (as rosbags and Fast-CDR write it).
pub fn encode_cdr<M: Ros2Message>(msg: &M) -> Result<Vec<u8>, MsgsError> {
    let mut w = CdrWriter::new();
    msg.write_cdr(&mut w).map_err(|error| MsgsError::Cdr {
        type_name: M::TYPE_NAME,
        error,
    })?;
    Ok(w.into_bytes())
}

/// The message types of this module, by ROS type name.
pub const SUPPORTED_TYPES: [&str; 12] = [
    Time::TYPE_NAME,
    Duration::TYPE_NAME,
    Header::TYPE_NAME,
    JointState::TYPE_NAME,
    MultiArrayDimension::TYPE_NAME,
    MultiArrayLayout::TYPE_NAME,
    Float64MultiArray::TYPE_NAME,
    JointTrajectoryPoint::TYPE_NAME,
    JointTrajectory::TYPE_NAME,
    KeyValue::TYPE_NAME,
    DiagnosticStatus::TYPE_NAME,
    DiagnosticArray::TYPE_NAME,
];
