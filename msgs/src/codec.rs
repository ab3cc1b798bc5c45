//! The codec: the only module that names bincode.
//!
//! Every message travels in an envelope `{ v: VERSION, msg }` (its kind's
//! [`Message::VERSION`]):
//! - [`Encoding::Bincode`]: bincode 2 (standard config: little endian, varint
//!   integers, f32 as 4 bytes), the version first so it is checked before the
//!   body is parsed;
//! - [`Encoding::Json`]: `{"v": 1, "msg": {...}}` for non-Rust clients and
//!   Foxglove (schemas in [`crate::schema`]).
//!
//! Decoding is strict: payloads over the kind's [`Message::MAX_BYTES`]
//! ([`MAX_MESSAGE_BYTES`] for forecasts, 256 KiB for a state) are refused
//! before parsing, so a state of a million floats is never allocated; the version must be the kind's, trailing bytes (bincode) or unknown fields
//! (JSON) are errors, and [`Message::validate`] checks dimensions and
//! finiteness.

use serde::{Deserialize, Serialize};

use crate::types::Message;
use crate::types::MAX_MESSAGE_BYTES;
#[cfg(test)]
use crate::types::PROTOCOL_VERSION;
use crate::MsgsError;

/// How a payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// bincode 2 in the versioned envelope (compact; Rust peers).
    Bincode,
    /// JSON in the versioned envelope (anyone; Foxglove).
    Json,
}

impl Encoding {
    /// The MCAP `message_encoding` string.
    pub fn mcap_name(self) -> &'static str {
        match self {
            Encoding::Bincode => "ebm-bincode2",
            Encoding::Json => "json",
        }
    }

    /// Parses an MCAP `message_encoding` string.
    pub fn from_mcap_name(name: &str) -> Result<Self, MsgsError> {
        match name {
            "ebm-bincode2" => Ok(Encoding::Bincode),
            "json" => Ok(Encoding::Json),
            other => Err(MsgsError::UnknownEncoding(other.to_owned())),
        }
    }

    /// A MIME-like string for a Zenoh `Encoding` (`type/subtype;schema`).
    pub fn mime(self) -> &'static str {
        match self {
            Encoding::Bincode => "application/octet-stream;ebm-bincode2",
            Encoding::Json => "application/json",
        }
    }

    /// Parses a Zenoh encoding string as produced by [`Encoding::mime`].
    pub fn from_mime(mime: &str) -> Result<Self, MsgsError> {
        match mime {
            "application/octet-stream;ebm-bincode2" => Ok(Encoding::Bincode),
            m if m == "application/json" || m.starts_with("application/json;") => {
                Ok(Encoding::Json)
            }
            other => Err(MsgsError::UnknownEncoding(other.to_owned())),
        }
    }
}

#[derive(Serialize)]
struct EnvelopeRef<'a, T> {
    v: u16,
    msg: &'a T,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<T> {
    #[allow(dead_code)] // checked through `VersionProbe` first
    v: u16,
    msg: T,
}

/// Reads only the version of a JSON envelope (other fields ignored).
#[derive(Deserialize)]
struct VersionProbe {
    v: u16,
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE_BYTES>()
}

/// Encodes `msg` after validating it.
pub fn encode<T: Message>(msg: &T, encoding: Encoding) -> Result<Vec<u8>, MsgsError> {
    msg.validate()?;
    let env = EnvelopeRef { v: T::VERSION, msg };
    let bytes = match encoding {
        Encoding::Bincode => {
            bincode::serde::encode_to_vec(&env, bincode_config()).map_err(|source| {
                MsgsError::BincodeEncode {
                    kind: T::KIND,
                    source,
                }
            })?
        }
        Encoding::Json => serde_json::to_vec(&env).map_err(|source| MsgsError::Json {
            kind: T::KIND,
            source,
        })?,
    };
    if bytes.len() > T::MAX_BYTES {
        return Err(MsgsError::TooLarge {
            kind: T::KIND,
            len: bytes.len(),
            max: T::MAX_BYTES,
        });
    }
    Ok(bytes)
}

/// Decodes strictly; see the module docs for what is refused.
pub fn decode<T: Message>(bytes: &[u8], encoding: Encoding) -> Result<T, MsgsError> {
    if bytes.len() > T::MAX_BYTES {
        return Err(MsgsError::TooLarge {
            kind: T::KIND,
            len: bytes.len(),
            max: T::MAX_BYTES,
        });
    }
    let msg = match encoding {
        Encoding::Bincode => decode_bincode::<T>(bytes)?,
        Encoding::Json => decode_json::<T>(bytes)?,
    };
    msg.validate()?;
    Ok(msg)
}

fn decode_bincode<T: Message>(bytes: &[u8]) -> Result<T, MsgsError> {
    let bin_err = |source| MsgsError::BincodeDecode {
        kind: T::KIND,
        source,
    };
    let (v, head) =
        bincode::serde::decode_from_slice::<u16, _>(bytes, bincode_config()).map_err(bin_err)?;
    check_version::<T>(v)?;
    let body = bytes.get(head..).unwrap_or_default();
    let (msg, used) =
        bincode::serde::decode_from_slice::<T, _>(body, bincode_config()).map_err(bin_err)?;
    if used != body.len() {
        return Err(MsgsError::TrailingBytes {
            kind: T::KIND,
            extra: body.len() - used,
        });
    }
    Ok(msg)
}

fn decode_json<T: Message>(bytes: &[u8]) -> Result<T, MsgsError> {
    let json_err = |source| MsgsError::Json {
        kind: T::KIND,
        source,
    };
    let probe: VersionProbe = serde_json::from_slice(bytes).map_err(json_err)?;
    check_version::<T>(probe.v)?;
    // serde_json rejects trailing non-whitespace itself.
    let env: Envelope<T> = serde_json::from_slice(bytes).map_err(json_err)?;
    Ok(env.msg)
}

fn check_version<T: Message>(found: u16) -> Result<(), MsgsError> {
    if found == T::VERSION {
        Ok(())
    } else {
        Err(MsgsError::VersionMismatch {
            found,
            expected: T::VERSION,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ErrorCode, ErrorReply, RobotState};

    /// A robot of any size: the codec knows none.
    const DIM: usize = 7;
    const ADIM: usize = 3;

    /// `s` in its bincode envelope without validation (as a faulty peer sends it).
    fn unchecked_bincode(s: &RobotState) -> Vec<u8> {
        let env = EnvelopeRef {
            v: PROTOCOL_VERSION,
            msg: s,
        };
        bincode::serde::encode_to_vec(&env, bincode_config()).unwrap()
    }

    fn state() -> RobotState {
        RobotState {
            robot_id: "hand-1".into(),
            episode: 7,
            seq: 42,
            stamp_ns: 1_000_000,
            state: (0..DIM).map(|i| i as f32 * 0.5).collect(),
            last_action: Some(vec![0.25; ADIM]),
        }
    }

    #[test]
    fn round_trips_in_both_encodings() {
        for enc in [Encoding::Bincode, Encoding::Json] {
            let bytes = encode(&state(), enc).unwrap();
            let back: RobotState = decode(&bytes, enc).unwrap();
            assert_eq!(back, state(), "{enc:?}");
        }
        let reply = ErrorReply {
            code: ErrorCode::UnknownRobot,
            message: "no such robot".into(),
        };
        let bytes = encode(&reply, Encoding::Bincode).unwrap();
        assert_eq!(
            decode::<ErrorReply>(&bytes, Encoding::Bincode).unwrap(),
            reply
        );
    }

    #[test]
    fn bincode_layout_is_version_then_fields() {
        let bytes = encode(&state(), Encoding::Bincode).unwrap();
        // varint 1 (version), varint 6 + "hand-1", episode 7, seq 42.
        assert_eq!(&bytes[..9], &[1, 6, b'h', b'a', b'n', b'd', b'-', b'1', 7]);
        assert_eq!(bytes[9], 42);
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut bytes = encode(&state(), Encoding::Bincode).unwrap();
        bytes.push(0);
        let err = decode::<RobotState>(&bytes, Encoding::Bincode).unwrap_err();
        assert!(
            matches!(err, MsgsError::TrailingBytes { extra: 1, .. }),
            "{err}"
        );
        let mut json = encode(&state(), Encoding::Json).unwrap();
        json.extend_from_slice(b"{}");
        assert!(decode::<RobotState>(&json, Encoding::Json).is_err());
    }

    #[test]
    fn rejects_other_versions() {
        let mut bytes = encode(&state(), Encoding::Bincode).unwrap();
        bytes[0] = 2;
        let err = decode::<RobotState>(&bytes, Encoding::Bincode).unwrap_err();
        assert!(matches!(
            err,
            MsgsError::VersionMismatch {
                found: 2,
                expected: 1
            }
        ));
        let json = br#"{"v":9,"msg":{}}"#;
        let err = decode::<RobotState>(json, Encoding::Json).unwrap_err();
        assert!(matches!(err, MsgsError::VersionMismatch { found: 9, .. }));
    }

    #[test]
    fn each_kind_carries_its_own_version() {
        let score = crate::types::OodScore {
            robot_id: "hand-1".into(),
            seq: 3,
            model_id: "m@1".into(),
            energy: 1.5,
            percentile: 97.0,
            flagged: false,
            window_energy: 0.5,
            window_len: 50,
            window_discrepancy: Some(120.0),
            window_percentile: Some(99.5),
            window_flagged: true,
            reason: None,
        };
        for enc in [Encoding::Bincode, Encoding::Json] {
            let bytes = encode(&score, enc).unwrap();
            assert_eq!(
                decode::<crate::types::OodScore>(&bytes, enc).unwrap(),
                score
            );
        }
        // The window fields made OodScore version 2, the discrepancy 3, the
        // fail-closed reason 4; states stay at 1.
        let bytes = encode(&score, Encoding::Bincode).unwrap();
        assert_eq!(bytes[0], 4);
        assert_eq!(encode(&state(), Encoding::Bincode).unwrap()[0], 1);
        let mut old = bytes.clone();
        old[0] = 3;
        let err = decode::<crate::types::OodScore>(&old, Encoding::Bincode).unwrap_err();
        assert!(matches!(
            err,
            MsgsError::VersionMismatch {
                found: 3,
                expected: 4
            }
        ));
        let nan = crate::types::OodScore {
            window_percentile: Some(f32::NAN),
            ..score.clone()
        };
        assert!(encode(&nan, Encoding::Json).is_err());
        let inf = crate::types::OodScore {
            window_discrepancy: Some(f32::INFINITY),
            ..score
        };
        let err = encode(&inf, Encoding::Bincode).unwrap_err().to_string();
        assert!(err.contains("window_discrepancy"), "{err}");
    }

    #[test]
    fn rejects_oversize_truncated_and_unknown_fields() {
        let big = vec![0u8; MAX_MESSAGE_BYTES + 1];
        let err = decode::<RobotState>(&big, Encoding::Bincode).unwrap_err();
        assert!(matches!(err, MsgsError::TooLarge { .. }));
        let bytes = encode(&state(), Encoding::Bincode).unwrap();
        for cut in [0, 1, 5, bytes.len() - 1] {
            assert!(decode::<RobotState>(&bytes[..cut], Encoding::Bincode).is_err());
        }
        // A length prefix claiming far more floats than the limit allows.
        let mut huge = bytes[..9].to_vec();
        huge.extend_from_slice(&[42, 0, 253, 0, 0, 0, 0, 0, 0, 0, 64]);
        assert!(decode::<RobotState>(&huge, Encoding::Bincode).is_err());
        let json = br#"{"v":1,"msg":{"robot_id":"a","episode":0,"seq":0,"stamp_ns":0,"state":[],"last_action":null,"extra":1}}"#;
        assert!(decode::<RobotState>(json, Encoding::Json).is_err());
    }

    #[test]
    fn rejects_out_of_bounds_dimensions_and_non_finite() {
        // Any size from 1 to MAX_DIM is a valid state; the daemon checks it
        // against the robot's model.
        for n in [1, 31, crate::MAX_DIM] {
            let s = RobotState {
                state: vec![0.5; n],
                ..state()
            };
            let back: RobotState =
                decode(&encode(&s, Encoding::Json).unwrap(), Encoding::Json).unwrap();
            assert_eq!(back.state.len(), n);
        }
        let mut s = state();
        s.state.clear();
        let err = encode(&s, Encoding::Json).unwrap_err();
        assert!(
            matches!(err, MsgsError::DimensionOutOfBounds { found: 0, .. }),
            "{err}"
        );
        s.state = vec![0.0; crate::MAX_DIM + 1];
        let err = encode(&s, Encoding::Bincode).unwrap_err().to_string();
        assert!(err.contains("4097 values, expected 1 to 4096"), "{err}");
        // A state of a million floats is refused by size, before parsing.
        s.state = vec![0.0; 1_000_000];
        let err = decode::<RobotState>(&unchecked_bincode(&s), Encoding::Bincode).unwrap_err();
        assert!(
            matches!(
                err,
                MsgsError::TooLarge {
                    kind: "RobotState",
                    ..
                }
            ),
            "{err}"
        );
        let mut s = state();
        s.state[3] = f32::NAN;
        // NaN is not valid JSON either; check through bincode with validation skipped.
        let err = decode::<RobotState>(&unchecked_bincode(&s), Encoding::Bincode).unwrap_err();
        assert!(
            matches!(err, MsgsError::NonFinite { index: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn encoding_names_round_trip() {
        for enc in [Encoding::Bincode, Encoding::Json] {
            assert_eq!(Encoding::from_mcap_name(enc.mcap_name()).unwrap(), enc);
            assert_eq!(Encoding::from_mime(enc.mime()).unwrap(), enc);
        }
        assert!(Encoding::from_mcap_name("cdr").is_err());
    }
}
