//! CDR as ROS 2 puts it on the wire: OMG XCDR version 1 ("plain CDR") after a
//! 4-byte encapsulation header.
//!
//! - Header: `0x00 0x01` little endian or `0x00 0x00` big endian, then two
//!   option bytes (ignored on read, written as zero). Both byte orders are
//!   read; [`CdrWriter`] writes little endian, as every ROS 2 middleware does
//!   on common hardware.
//! - Alignment: a primitive of `n` bytes starts at a multiple of `n` (8 for
//!   `float64`), counted from the byte after the header.
//! - Strings: `u32` length including the terminating NUL, the bytes, the NUL
//!   (a length of 0 is read as the empty string, as Fast-CDR does).
//! - Sequences: `u32` element count, then the elements; an empty sequence
//!   of `float64` is not aligned (rosbags and Fast-CDR align only when there
//!   are elements).
//!
//! Reading is bounded: a count is checked against the bytes left (at the
//! element's smallest encoded size) before anything is allocated, so a
//! hostile count is an error naming its field, never a huge allocation.
//! Errors carry the field path (`points[3].positions`) and the byte offset
//! in the payload, header included.

use std::fmt;

mod reader;
mod writer;

pub use reader::CdrReader;
pub use writer::CdrWriter;

/// Size of the encapsulation header.
pub const HEADER_BYTES: usize = 4;
/// Encapsulation identifier of little-endian plain CDR.
pub const CDR_LE: [u8; 2] = [0x00, 0x01];
/// Encapsulation identifier of big-endian plain CDR.
pub const CDR_BE: [u8; 2] = [0x00, 0x00];
/// Trailing bytes accepted after a complete message: alignment padding some
/// writers add to reach a multiple of 4.
pub(crate) const MAX_PADDING: usize = 3;

/// What is wrong at a [`CdrError`]'s position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CdrProblem {
    /// The payload ends before the value (alignment padding included).
    Truncated { needed: usize, left: usize },
    /// A string length or sequence count that cannot fit in the bytes left.
    CountTooLarge {
        count: u32,
        min_bytes: u64,
        left: usize,
    },
    /// A string whose last byte is not NUL.
    MissingNul,
    /// A string that is not UTF-8.
    NotUtf8,
    /// Not plain CDR (XCDR2 and parameter lists are not supported).
    Encapsulation { id: [u8; 2] },
    /// Bytes left after a complete message, beyond alignment padding.
    TrailingBytes { extra: usize },
    /// Encoding: a string or sequence longer than a `u32` count can say.
    TooLong { len: usize },
    /// A string with a NUL inside (CDR strings end at the first).
    InteriorNul,
}

impl fmt::Display for CdrProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed, left } => {
                write!(f, "needs {needed} bytes, the payload has {left} left")
            }
            Self::CountTooLarge {
                count,
                min_bytes,
                left,
            } => write!(
                f,
                "count {count} needs at least {min_bytes} bytes, the payload has {left} left"
            ),
            Self::MissingNul => f.write_str("string is not NUL-terminated"),
            Self::NotUtf8 => f.write_str("string is not UTF-8"),
            Self::Encapsulation { id } => write!(
                f,
                "encapsulation {:#04x} {:#04x} is not plain CDR (expected 0x00 0x01 or 0x00 0x00)",
                id[0], id[1]
            ),
            Self::TrailingBytes { extra } => {
                write!(f, "{extra} trailing bytes after a complete message")
            }
            Self::TooLong { len } => write!(f, "{len} entries do not fit a u32 count"),
            Self::InteriorNul => f.write_str("string contains a NUL byte"),
        }
    }
}

/// A CDR decoding or encoding error: which field (a path such as
/// `header.frame_id` or `points[3].positions`), where (byte offset in the
/// payload, the encapsulation header included) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrError {
    pub field: String,
    pub offset: usize,
    pub problem: CdrProblem,
}

impl CdrError {
    pub(crate) fn new(field: &str, offset: usize, problem: CdrProblem) -> Self {
        Self {
            field: field.to_owned(),
            offset,
            problem,
        }
    }

    /// The same error inside `parent` (`parent.field`).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_owned()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for CdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "field `{}` at byte {}: {}",
            self.field, self.offset, self.problem
        )
    }
}

impl std::error::Error for CdrError {}

#[cfg(test)]
mod tests;
