//! `ebm-sim import-ros2`: a rosbag2 MCAP bag to a recording.
//!
//! - The state is a `sensor_msgs/msg/JointState` topic: the chosen fields
//!   (`position`, `velocity`, `effort`) of the chosen joints, field-major
//!   (all positions, then all velocities), named `<joint>.<field>`. The
//!   joint order is `--joints`, else the first message's; joints are found
//!   by name in every message, whatever its order.
//! - The action (optional) is a command topic: `sensor_msgs/msg/JointState`
//!   (positions), `trajectory_msgs/msg/JointTrajectory` (the first point's
//!   positions; trajectories without points are skipped and counted), both
//!   named `<joint>.position` for the joints of `--joints` it names (all of
//!   its first message's otherwise), or `std_msgs/msg/Float64MultiArray`
//!   (`data`, named `<topic>[i]`).
//! - Times: header stamps, or log times for messages stamped zero and for
//!   `Float64MultiArray` (no header); `--clock log` uses log times only.
//!   A message not later than its predecessor is skipped and counted.
//! - Resampling: both topics are cut into spans at gaps longer than
//!   `max_gap_periods` periods; where a state span and an action span
//!   overlap, the states and the actions are interpolated linearly between
//!   their neighbouring messages at `start + k / rate_hz` (the action is not
//!   held: a command between two messages is their linear interpolation).
//! - Episodes: every episode of a recording has the same length, `--steps`,
//!   by default the longest that every span holds; each span gives as many
//!   episodes of that length as fit, end to end, and the rest is dropped
//!   (counted in the report).
//! - A bag cut short (a recorder killed) is read up to its last complete
//!   chunk, imported, and reported.

mod output;
mod resample;
mod topics;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ebm_msgs::ros2::BagReader;
use ebm_msgs::{Encoding, MsgsError, RobotId, RobotSpec};

use crate::SimError;
pub use topics::{Clock, JointField, ACTION_TYPES, STATE_TYPES};
use topics::{Role, TopicReader};

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub state_topic: String,
    /// Non-empty, no repeats.
    pub state_fields: Vec<JointField>,
    pub action_topic: Option<String>,
    /// The joints, in order (default: the first state message's).
    pub joints: Option<Vec<String>>,
    /// Several publishers share the state topic, each naming some of
    /// `joints` (needed): each message updates the joints it names.
    pub merge_publishers: bool,
    pub rate_hz: f64,
    /// Spans end at gaps longer than this many periods (more than 1).
    pub max_gap_periods: f64,
    /// Steps per episode (default: the longest every span holds).
    pub steps: Option<u32>,
    pub clock: Clock,
    /// The robot's kind (default: the bag's file stem).
    pub robot_kind: Option<String>,
    /// Default: the kind, with characters other than letters, digits, `-`
    /// and `_` replaced by `-`.
    pub robot_id: Option<RobotId>,
    pub encoding: Encoding,
}

impl ImportOptions {
    /// Positions of `state_topic` at 10 Hz, spans cut at 3 periods.
    pub fn new(state_topic: impl Into<String>) -> Self {
        Self {
            state_topic: state_topic.into(),
            state_fields: vec![JointField::Position],
            action_topic: None,
            joints: None,
            merge_publishers: false,
            rate_hz: 10.0,
            max_gap_periods: 3.0,
            steps: None,
            clock: Clock::Header,
            robot_kind: None,
            robot_id: None,
            encoding: Encoding::Bincode,
        }
    }

    fn validate(&self) -> Result<u64, SimError> {
        let bad = |option, rule| Err(SimError::InvalidImport { option, rule });
        if !(self.rate_hz.is_finite() && self.rate_hz > 0.0 && self.rate_hz <= 1e6) {
            return bad("rate_hz", "a number in (0, 1e6]");
        }
        if !(self.max_gap_periods.is_finite() && self.max_gap_periods > 1.0) {
            return bad("max_gap_periods", "a number above 1");
        }
        if self.steps.is_some_and(|s| s < 2) {
            return bad("steps", "at least 2");
        }
        let f = &self.state_fields;
        if f.is_empty() || (1..f.len()).any(|i| f[..i].contains(&f[i])) {
            return bad(
                "state_fields",
                "one or more of position, velocity, effort, each once",
            );
        }
        if self.merge_publishers && self.joints.is_none() {
            return bad(
                "merge_publishers",
                "given with --joints (every joint of the state)",
            );
        }
        if let Some(j) = &self.joints {
            if j.is_empty() || (1..j.len()).any(|i| j[..i].contains(&j[i])) {
                return bad("joints", "one or more joint names, each once");
            }
        }
        Ok((1e9 / self.rate_hz).round() as u64)
    }
}

/// Counts of one imported topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStats {
    pub topic: String,
    pub messages: u64,
    /// Messages kept as samples.
    pub samples: usize,
    /// Skipped: not later than their predecessor.
    pub out_of_order: u64,
    /// Skipped: a NaN or infinite value.
    pub non_finite: u64,
    /// Skipped: a trajectory without points.
    pub empty_trajectories: u64,
    /// Timed by log time for a zero stamp.
    pub log_time_fallbacks: u64,
}

/// What an import read and wrote.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// Every topic of the bag: its type and message count.
    pub topics: BTreeMap<String, (String, u64)>,
    pub state: TopicStats,
    pub action: Option<TopicStats>,
    /// Overlapping spans of state (and action) without long gaps.
    pub spans: usize,
    pub episodes: u64,
    pub steps: u32,
    /// Resampled steps left out of every episode (spans shorter than
    /// `steps`, and the ends of longer ones).
    pub dropped_steps: u64,
    pub period_ns: u64,
    pub robot_id: RobotId,
    pub robot: RobotSpec,
    /// Bytes read when the bag ended in the middle of a record (what was
    /// read before is imported).
    pub truncated_after: Option<u64>,
}

/// The MCAP files of a bag: the file itself, or the `*.mcap` files of a
/// `ros2 bag record` directory in split order (`name_0.mcap`, `name_1.mcap`,
/// ...). SQLite bags are refused with the command that converts them.
pub fn bag_files(bag: &Path) -> Result<Vec<PathBuf>, SimError> {
    let refuse = |why: String| SimError::BagFiles {
        path: bag.to_owned(),
        why,
    };
    let sqlite =
        "a SQLite (.db3) bag: convert it to MCAP with `ros2 bag convert` (storage_id: mcap) first";
    if !bag.is_dir() {
        if bag.extension().is_some_and(|e| e == "db3") {
            return Err(refuse(sqlite.into()));
        }
        return Ok(vec![bag.to_owned()]);
    }
    let entries = std::fs::read_dir(bag)
        .map_err(|e| refuse(format!("cannot list the bag directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    if files
        .iter()
        .all(|p| p.extension().is_none_or(|e| e != "mcap"))
    {
        if files
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "db3"))
        {
            return Err(refuse(sqlite.into()));
        }
        return Err(refuse("a directory without .mcap files".into()));
    }
    files.retain(|p| p.extension().is_some_and(|e| e == "mcap"));
    // rosbag2 numbers split files `<name>_<i>.mcap`: numeric order, not text.
    let split_index = |p: &PathBuf| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.rsplit_once('_'))
            .and_then(|(_, i)| i.parse::<u64>().ok())
    };
    files.sort_by_key(|p| (split_index(p), p.clone()));
    Ok(files)
}

/// Imports `bag` (an MCAP file, or a `ros2 bag` directory of split MCAP
/// files) into the recording `out`.
pub fn import_ros2(bag: &Path, opts: &ImportOptions, out: &Path) -> Result<ImportReport, SimError> {
    let period_ns = opts.validate()?;
    let mut state: Option<TopicReader> = None;
    let mut action: Option<TopicReader> = None;
    // Messages per (topic, type), over every file.
    let mut counts: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut truncated_after = None;
    for file in bag_files(bag)? {
        let mut reader = BagReader::open(&file)?;
        loop {
            let msg = match reader.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(MsgsError::Truncated { .. }) => {
                    truncated_after = Some(reader.bytes_read());
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let Some(ch) = reader.channels().get(&msg.channel) else {
                continue;
            };
            counts
                .entry(ch.topic.clone())
                .or_insert((ch.type_name.clone(), 0))
                .1 += 1;
            let (slot, role) = if ch.topic == opts.state_topic {
                (&mut state, Role::State)
            } else if Some(&ch.topic) == opts.action_topic.as_ref() {
                (&mut action, Role::Action)
            } else {
                continue;
            };
            let topic_reader = match slot {
                Some(r) => r,
                None => slot.insert(
                    TopicReader::new(
                        &ch.topic,
                        &ch.type_name,
                        role,
                        &opts.state_fields,
                        opts.joints.as_deref(),
                        opts.clock,
                    )?
                    .merging(opts.merge_publishers),
                ),
            };
            topic_reader.push(msg.log_time_ns, &msg.data)?;
        }
        for ch in reader.channels().values() {
            counts
                .entry(ch.topic.clone())
                .or_insert((ch.type_name.clone(), 0));
        }
        if truncated_after.is_some() {
            break; // a cut file ends the bag: later files would leave a gap unsaid
        }
    }
    let topics = counts;
    let missing = |topic: &str| SimError::TopicMissing {
        topic: topic.to_owned(),
        present: topics
            .iter()
            .map(|(t, (ty, n))| format!("{t} ({ty}, {n} messages)"))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let state = state.ok_or_else(|| missing(&opts.state_topic))?;
    if opts.merge_publishers {
        let never = state.never_seen();
        if !never.is_empty() {
            return Err(SimError::JointNeverSeen {
                topic: state.topic.clone(),
                joints: never.join(", "),
            });
        }
    }
    let action = match &opts.action_topic {
        Some(t) => Some(action.ok_or_else(|| missing(t))?),
        None => None,
    };
    let read = output::Read {
        topics,
        state,
        action,
        truncated_after,
    };
    output::write(bag, opts, out, period_ns, read)
}
