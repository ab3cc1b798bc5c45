//! Loads a dataset recording into dense arrays for training.
//!
//! Memory: the arrays are allocated once from the header (`N x T x 31` and
//! `N x T x 20` f32, about 4 GB at 200,000 x 100) and filled while the file
//! streams through one chunk at a time; nothing else grows with the file.

use std::path::Path;

use ndarray::Array3;
use tracing::info;

use crate::recording::header::{RecordingHeader, HEADER_RECORD};
use crate::recording::reader::{RecordingEvent, RecordingReader};
use crate::types::{ACTION_DIM, STATE_DIM};
use crate::MsgsError;

/// A recording as arrays: `states[[n, t, ..]]` is trajectory `n`'s state at
/// step `t`, and `actions[[n, t, ..]]` the action applied at that state.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub header: RecordingHeader,
    /// `[N, T, 31]`, row-major.
    pub states: Array3<f32>,
    /// `[N, T, 20]`, row-major.
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

/// Per-episode fill state of one channel.
struct Fill {
    kind: &'static str,
    count: Vec<u32>,
    last_seq: Vec<Option<u64>>,
}

impl Fill {
    fn new(kind: &'static str, n: usize) -> Self {
        Self {
            kind,
            count: vec![0; n],
            last_seq: vec![None; n],
        }
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
    let mut states = Array3::<f32>::zeros((n, t, STATE_DIM));
    let mut actions = Array3::<f32>::zeros((n, t, ACTION_DIM));
    let (mut sfill, mut afill) = (Fill::new("state", n), Fill::new("action", n));
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
                let step = sfill.next_slot(&header, s.episode, s.seq)?;
                put_row(&mut states, s.episode as usize, step, &s.state);
            }
            RecordingEvent::Action(a) => {
                check_robot(&a.robot_id)?;
                let step = afill.next_slot(&header, a.episode, a.seq)?;
                put_row(&mut actions, a.episode as usize, step, &a.action);
            }
            RecordingEvent::Metadata { .. } => {}
        }
    }
    sfill.check_complete(header.steps)?;
    afill.check_complete(header.steps)?;
    info!(trajectories = n, steps = t, path = %path.display(), "loaded recording");
    Ok(Dataset {
        header,
        states,
        actions,
    })
}

/// Copies `values` into `array[[n, t, ..]]` (indices were checked by [`Fill`],
/// lengths by the codec).
fn put_row(array: &mut Array3<f32>, n: usize, t: usize, values: &[f32]) {
    let mut row = array.index_axis_mut(ndarray::Axis(0), n);
    let mut row = row.index_axis_mut(ndarray::Axis(0), t);
    row.iter_mut().zip(values).for_each(|(d, v)| *d = *v);
}
