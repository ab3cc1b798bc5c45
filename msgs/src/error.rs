//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong encoding, decoding, naming or recording messages.
#[derive(Debug, thiserror::Error)]
pub enum MsgsError {
    #[error("{kind} message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{extra} trailing bytes after a complete {kind} message")]
    TrailingBytes { kind: &'static str, extra: usize },
    #[error("protocol version {found} is not supported (this build speaks version {expected})")]
    VersionMismatch { found: u16, expected: u16 },
    #[error("malformed bincode {kind} message")]
    BincodeDecode {
        kind: &'static str,
        #[source]
        source: bincode::error::DecodeError,
    },
    #[error("could not bincode-encode a {kind} message")]
    BincodeEncode {
        kind: &'static str,
        #[source]
        source: bincode::error::EncodeError,
    },
    #[error("malformed JSON {kind} message")]
    Json {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{kind}.{field} has {found} values, expected {expected}")]
    WrongDimension {
        kind: &'static str,
        field: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("{kind}.{field} has {found} values, expected 1 to {max}")]
    DimensionOutOfBounds {
        kind: &'static str,
        field: &'static str,
        found: usize,
        max: usize,
    },
    #[error("{kind}.{field}[{index}] is not finite")]
    NonFinite {
        kind: &'static str,
        field: &'static str,
        index: usize,
    },
    #[error("unknown encoding `{0}` (expected `ebm-bincode2` or `json`)")]
    UnknownEncoding(String),
    #[error("invalid robot id `{id}`: {reason}")]
    InvalidRobotId { id: String, reason: &'static str },
    #[error("invalid robot pattern `{pattern}`: {reason}")]
    InvalidRobotPattern {
        pattern: String,
        reason: &'static str,
    },
    #[error("invalid key prefix `{prefix}`: {reason}")]
    InvalidKeyPrefix {
        prefix: String,
        reason: &'static str,
    },
    #[error("I/O error on recording {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "recording is truncated: the file ends in the middle of a record (after {offset} bytes)"
    )]
    Truncated { offset: u64 },
    #[error("recording is corrupt near byte {offset}")]
    Corrupt {
        offset: u64,
        #[source]
        source: mcap::McapError,
    },
    #[error("could not write the recording")]
    McapWrite(#[source] mcap::McapError),
    #[error("recording has no `{0}` metadata record before its first message")]
    MissingHeader(&'static str),
    #[error("recording metadata field `{field}` is missing or invalid: `{value}`")]
    BadMetadata { field: &'static str, value: String },
    #[error("recording message on `{topic}` at log time {log_time} ns could not be decoded")]
    BadMessage {
        topic: String,
        log_time: u64,
        #[source]
        source: Box<MsgsError>,
    },
    #[error(
        "recording has episode {episode}, but its header declares {trajectories} trajectories"
    )]
    EpisodeOutOfRange { episode: u64, trajectories: u64 },
    #[error("recording episode {episode} has more than {steps} {kind} messages")]
    TooManyFrames {
        episode: u64,
        kind: &'static str,
        steps: u32,
    },
    #[error("recording episode {episode} has {found} {kind} messages, expected {expected} (truncated or incomplete recording)")]
    MissingFrames {
        episode: u64,
        kind: &'static str,
        found: u32,
        expected: u32,
    },
    #[error("recording episode {episode}: seq {seq} does not follow seq {previous}")]
    OutOfOrder {
        episode: u64,
        seq: u64,
        previous: u64,
    },
    #[error("malformed CDR {type_name}: {error}")]
    Cdr {
        type_name: &'static str,
        error: crate::ros2::CdrError,
    },
    #[error("recording holds robot `{found}`, but its header names `{expected}`")]
    UnexpectedRobot { found: String, expected: String },
}
