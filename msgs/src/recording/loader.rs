//! Loads a dataset recording into dense arrays for training.
//!
//! Memory: the arrays are allocated once from the header (`N x T x S` and
//! `N x T x A` f32 for the robot's state and action sizes; the hand's 31 and
//! 20 take about 4 GB at 200,000 x 100) and filled while the file streams
//! through one chunk at a time; nothing else grows with the file. A version 1
//! recording (no robot in its header) takes its sizes from its first state
//! and action.

use std::path::Path;

use ndarray::Array3;
use tracing::info;

use crate::recording::header::{RecordingHeader, HEADER_RECORD};
use crate::recording::reader::{RecordingEvent, RecordingReader};
use crate::robot::RobotSpec;
use crate::MsgsError;

/// A recording as arrays: `states[[n, t, ..]]` is trajectory `n`'s state at
/// step `t`, and `actions[[n, t, ..]]` the action applied at that state.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub header: RecordingHeader,
    /// The robot (the header's; for a version 1 recording, sizes from its
    /// messages and no names).
    pub robot: RobotSpec,
    /// `[N, T, state_dim]`, row-major.
    pub states: Array3<f32>,
    /// `[N, T, action_dim]`, row-major (`action_dim` 0: no actions).
    pub actions: Array3<f32>,
}

impl Dataset {
    /// Trajectory indices (rows) for training.
    pub fn train_ids(&self) -> &[u64] {
        &self.header.split.train
    }
    /// Trajectory indices (rows) held out for testing.
    pub fn test_ids(&self) -> &[u64] {
        &self.header.split.test
    }
}

/// Per-episode fill state of one channel and its array, allocated when its
/// width is known (from the header, or the channel's first message).
struct Fill {
    /// The channel's field (`state`, `action`).
    kind: &'static str,
    /// The message kind that carries it, for errors.
    message: &'static str,
    count: Vec<u32>,
    last_seq: Vec<Option<u64>>,
    width: Option<usize>,
    array: Option<Array3<f32>>,
}

impl Fill {
    fn new(kind: &'static str, message: &'static str, n: usize, width: Option<usize>) -> Self {
        Self {
            kind,
            message,
            count: vec![0; n],
            last_seq: vec![None; n],
            width,
            array: None,
        }
    }

    /// Stores `values` at the next step of `episode` after checking order,
    /// room and width.
    fn put(
        &mut self,
        header: &RecordingHeader,
        episode: u64,
        seq: u64,
        values: &[f32],
    ) -> Result<(), MsgsError> {
        let width = *self.width.get_or_insert(values.len());
        if values.len() != width {
            return Err(MsgsError::WrongDimension {
                kind: self.message,
                field: self.kind,
                expected: width,
                found: values.len(),
            });
        }
        let t = self.next_slot(header, episode, seq)?;
        let (n, steps) = (self.count.len(), header.steps as usize);
        let array = self
            .array
            .get_or_insert_with(|| Array3::zeros((n, steps, width)));
        let mut row = array.index_axis_mut(ndarray::Axis(0), episode as usize);
        let mut row = row.index_axis_mut(ndarray::Axis(0), t);
        row.iter_mut().zip(values).for_each(|(d, v)| *d = *v);
        Ok(())
    }

    /// The filled array (`[N, T, 0]` for a channel with width 0).
    fn into_array(self, steps: u32) -> Array3<f32> {
        let n = self.count.len();
        self.array
            .unwrap_or_else(|| Array3::zeros((n, steps as usize, self.width.unwrap_or(0))))
    }

    /// Checks order and room; returns the step index to write.
    fn next_slot(
        &mut self,
        header: &RecordingHeader,
        episode: u64,
        seq: u64,
    ) -> Result<usize, MsgsError> {
        let e = usize::try_from(episode)
            .ok()
            .filter(|&e| e < self.count.len())
            .ok_or(MsgsError::EpisodeOutOfRange {
                episode,
                trajectories: header.trajectories,
            })?;
        if let Some(previous) = self.last_seq[e] {
            if seq <= previous {
                return Err(MsgsError::OutOfOrder {
                    episode,
                    seq,
                    previous,
                });
            }
        }
        let t = self.count[e];
        if t >= header.steps {
            return Err(MsgsError::TooManyFrames {
                episode,
                kind: self.kind,
                steps: header.steps,
            });
        }
        self.count[e] += 1;
        self.last_seq[e] = Some(seq);
        Ok(t as usize)
    }

    fn check_complete(&self, steps: u32) -> Result<(), MsgsError> {
        match self.count.iter().position(|&c| c != steps) {
            Some(e) => Err(MsgsError::MissingFrames {
                episode: e as u64,
                kind: self.kind,
                found: self.count[e],
                expected: steps,
            }),
            None => Ok(()),
        }
    }
}

/// Reads a whole dataset recording; every episode must have exactly `steps`
/// states and actions, in order.
pub fn load(path: &Path) -> Result<Dataset, MsgsError> {
    let mut events = RecordingReader::open(path)?;
    let header = match events.next().transpose()? {
        Some(RecordingEvent::Metadata { name, entries }) if name == HEADER_RECORD => {
            RecordingHeader::from_metadata(&entries)?
        }
        _ => return Err(MsgsError::MissingHeader(HEADER_RECORD)),
    };
    let n = usize::try_from(header.trajectories).map_err(|_| MsgsError::BadMetadata {
        field: "trajectories",
        value: header.trajectories.to_string(),
    })?;
    let t = header.steps as usize;
    // A header is checked before anything is allocated from it.
    const MAX_FRAMES: usize = 1 << 32;
    if n.checked_mul(t.max(1)).is_none_or(|f| f > MAX_FRAMES) {
        return Err(MsgsError::BadMetadata {
            field: "trajectories",
            value: format!("{n} trajectories x {t} steps (more than {MAX_FRAMES} frames)"),
        });
    }
    let spec = header.robot.clone();
    let mut sfill = Fill::new("state", "RobotState", n, spec.as_ref().map(|r| r.state_dim));
    let mut afill = Fill::new("action", "Action", n, spec.as_ref().map(|r| r.action_dim));
    let robot = header.robot_id.as_str();
    let check_robot = |found: &str| {
        if found == robot {
            Ok(())
        } else {
            Err(MsgsError::UnexpectedRobot {
                found: found.to_owned(),
                expected: robot.to_owned(),
            })
        }
    };
    for event in events {
        match event? {
            RecordingEvent::State(s) => {
                check_robot(&s.robot_id)?;
                sfill.put(&header, s.episode, s.seq, &s.state)?;
            }
            RecordingEvent::Action(a) => {
                check_robot(&a.robot_id)?;
                afill.put(&header, a.episode, a.seq, &a.action)?;
            }
            RecordingEvent::Metadata { .. } => {}
        }
    }
    sfill.check_complete(header.steps)?;
    if afill.width != Some(0) {
        afill.check_complete(header.steps)?;
    }
    let robot = match spec {
        Some(r) => r,
        // A version 1 recording: sizes from its messages, no names.
        None => RobotSpec::unnamed(
            "unknown",
            sfill.width.unwrap_or(0),
            afill.width.unwrap_or(0),
        ),
    };
    let (states, actions) = (
        sfill.into_array(header.steps),
        afill.into_array(header.steps),
    );
    info!(trajectories = n, steps = t, state_dim = robot.state_dim, action_dim = robot.action_dim, path = %path.display(), "loaded recording");
    Ok(Dataset {
        header,
        robot,
        states,
        actions,
    })
}
