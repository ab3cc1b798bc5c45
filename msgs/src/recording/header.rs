//! The header metadata record of a recording and the split's compact id lists.

use std::collections::BTreeMap;

use crate::codec::Encoding;
use crate::keys::RobotId;
use crate::robot::RobotSpec;
use crate::MsgsError;

/// Name of the metadata record that opens every recording.
pub const HEADER_RECORD: &str = "ebm-recording";
/// Name of the optional metadata record that closes a recording.
pub const SUMMARY_RECORD: &str = "ebm-recording-summary";
/// Version of the recording layout described in [`crate::recording`]:
/// 2 since the header describes the robot ([`RobotSpec`]). Version 1
/// recordings (the hand simulator's, before) still load: their sizes are
/// taken from their first state and action.
pub const RECORDING_FORMAT_VERSION: u32 = 2;

/// Which trajectories (episodes) are for training and which for testing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    pub train: Vec<u64>,
    pub test: Vec<u64>,
}

/// What a recording holds and how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingHeader {
    pub robot_id: RobotId,
    pub encoding: Encoding,
    /// Number of trajectories (episodes `0..trajectories`).
    pub trajectories: u64,
    /// States (and actions) per trajectory.
    pub steps: u32,
    pub control_period_ns: u64,
    /// Name and version of whatever produced the recording.
    pub generator: String,
    pub seed: u64,
    /// The generator's resolved configuration (TOML for the simulator).
    pub config: String,
    pub split: Split,
    /// The robot's kind, sizes and dimension names; `None` only for a
    /// version 1 recording, until the loader has seen its first messages.
    pub robot: Option<RobotSpec>,
}

impl RecordingHeader {
    pub(crate) fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| m.insert(k.to_owned(), v);
        put("format_version", RECORDING_FORMAT_VERSION.to_string());
        put("robot_id", self.robot_id.to_string());
        put("encoding", self.encoding.mcap_name().to_owned());
        put("trajectories", self.trajectories.to_string());
        put("steps", self.steps.to_string());
        put("control_period_ns", self.control_period_ns.to_string());
        put("generator", self.generator.clone());
        put("seed", self.seed.to_string());
        put("config", self.config.clone());
        put("split_train", format_ids(&self.split.train));
        put("split_test", format_ids(&self.split.test));
        if let Some(r) = &self.robot {
            let list = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
            put("robot_kind", r.kind.clone());
            put("state_dim", r.state_dim.to_string());
            put("action_dim", r.action_dim.to_string());
            put("state_names", list(&r.state_names));
            put("state_units", list(&r.state_units));
            put("action_names", list(&r.action_names));
            put("action_units", list(&r.action_units));
        }
        m
    }

    /// Parses the entries of a [`HEADER_RECORD`] metadata record.
    pub fn from_metadata_entries(m: &BTreeMap<String, String>) -> Result<Self, MsgsError> {
        Self::from_metadata(m)
    }

    pub(crate) fn from_metadata(m: &BTreeMap<String, String>) -> Result<Self, MsgsError> {
        let get = |field: &'static str| {
            m.get(field).ok_or(MsgsError::BadMetadata {
                field,
                value: "<missing>".into(),
            })
        };
        fn num<T: std::str::FromStr>(field: &'static str, v: &str) -> Result<T, MsgsError> {
            v.parse().map_err(|_| MsgsError::BadMetadata {
                field,
                value: v.to_owned(),
            })
        }
        let version: u32 = num("format_version", get("format_version")?)?;
        if !(1..=RECORDING_FORMAT_VERSION).contains(&version) {
            return Err(MsgsError::BadMetadata {
                field: "format_version",
                value: version.to_string(),
            });
        }
        Ok(Self {
            robot_id: RobotId::new(get("robot_id")?.clone())?,
            encoding: Encoding::from_mcap_name(get("encoding")?)?,
            trajectories: num("trajectories", get("trajectories")?)?,
            steps: num("steps", get("steps")?)?,
            control_period_ns: num("control_period_ns", get("control_period_ns")?)?,
            generator: get("generator")?.clone(),
            seed: num("seed", get("seed")?)?,
            config: get("config")?.clone(),
            split: Split {
                train: parse_ids("split_train", get("split_train")?)?,
                test: parse_ids("split_test", get("split_test")?)?,
            },
            robot: if version >= 2 {
                Some(robot_spec(m)?)
            } else {
                None
            },
        })
    }
}

/// The robot description of a version 2 header.
fn robot_spec(m: &BTreeMap<String, String>) -> Result<RobotSpec, MsgsError> {
    let get = |field: &'static str| {
        m.get(field).ok_or(MsgsError::BadMetadata {
            field,
            value: "<missing>".into(),
        })
    };
    let dim = |field: &'static str| {
        let v = get(field)?;
        v.parse::<usize>().map_err(|_| MsgsError::BadMetadata {
            field,
            value: v.clone(),
        })
    };
    // Name lists are optional JSON arrays of strings.
    let list = |field: &'static str| match m.get(field) {
        None => Ok(Vec::new()),
        Some(v) if v.is_empty() => Ok(Vec::new()),
        Some(v) => serde_json::from_str::<Vec<String>>(v).map_err(|_| MsgsError::BadMetadata {
            field,
            value: v.chars().take(80).collect(),
        }),
    };
    let spec = RobotSpec {
        kind: get("robot_kind")?.clone(),
        state_dim: dim("state_dim")?,
        action_dim: dim("action_dim")?,
        state_names: list("state_names")?,
        state_units: list("state_units")?,
        action_names: list("action_names")?,
        action_units: list("action_units")?,
    };
    spec.validate()?;
    Ok(spec)
}

/// Formats sorted ids compactly as ranges: `[0, 1, 2, 5, 7, 8]` -> `"0-2,5,7-8"`.
pub fn format_ids(ids: &[u64]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// Parses what [`format_ids`] writes.
pub fn parse_ids(field: &'static str, s: &str) -> Result<Vec<u64>, MsgsError> {
    let bad = || MsgsError::BadMetadata {
        field,
        value: s.chars().take(80).collect(),
    };
    let mut ids = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if b < a || ids.last().is_some_and(|&last| last >= a) {
            return Err(bad());
        }
        ids.extend(a..=b);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_ranges_round_trip() {
        let ids = [0, 1, 2, 5, 7, 8, 100];
        assert_eq!(format_ids(&ids), "0-2,5,7-8,100");
        assert_eq!(parse_ids("x", "0-2,5,7-8,100").unwrap(), ids);
        assert_eq!(parse_ids("x", "").unwrap(), Vec::<u64>::new());
        for bad in ["a", "3-1", "5,4", "1-2,2", "1--2"] {
            assert!(parse_ids("x", bad).is_err(), "{bad}");
        }
    }
}
