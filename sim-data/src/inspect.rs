//! Streaming statistics of a recording: counts, split and per-dimension
//! mean / std / min / max of states and actions (one pass, constant memory).

use std::collections::BTreeMap;
use std::path::Path;

use ebm_msgs::recording::{
    RecordingEvent, RecordingHeader, RecordingReader, HEADER_RECORD, SUMMARY_RECORD,
};

use crate::SimError;

/// Running moments of one dimension (Welford).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DimStats {
    pub count: u64,
    pub mean: f64,
    m2: f64,
    pub min: f32,
    pub max: f32,
}

impl Default for DimStats {
    fn default() -> Self {
        Self {
            count: 0,
            mean: 0.0,
            m2: 0.0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        }
    }
}

impl DimStats {
    fn push(&mut self, x: f32) {
        self.count += 1;
        let d = f64::from(x) - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (f64::from(x) - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    pub fn std(&self) -> f64 {
        if self.count > 1 {
            (self.m2 / (self.count - 1) as f64).sqrt()
        } else {
            0.0
        }
    }
}

/// Everything `ebm-sim inspect` prints.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub header: Option<RecordingHeader>,
    pub summary: BTreeMap<String, String>,
    pub states: u64,
    pub actions: u64,
    pub episodes: u64,
    pub state_stats: Vec<DimStats>,
    pub action_stats: Vec<DimStats>,
}

/// Reads the whole recording once.
pub fn inspect(path: &Path) -> Result<Inspection, SimError> {
    let mut out = Inspection {
        header: None,
        summary: BTreeMap::new(),
        states: 0,
        actions: 0,
        episodes: 0,
        state_stats: Vec::new(),
        action_stats: Vec::new(),
    };
    let mut last_episode = None;
    for event in RecordingReader::open(path)? {
        match event? {
            RecordingEvent::Metadata { name, entries } if name == HEADER_RECORD => {
                out.header =
                    Some(RecordingHeader::from_metadata_entries(&entries).map_err(SimError::from)?);
            }
            RecordingEvent::Metadata { name, entries } if name == SUMMARY_RECORD => {
                out.summary = entries
            }
            RecordingEvent::Metadata { .. } => {}
            RecordingEvent::State(s) => {
                out.states += 1;
                if last_episode != Some(s.episode) {
                    out.episodes += 1;
                    last_episode = Some(s.episode);
                }
                push_all(&mut out.state_stats, &s.state);
            }
            RecordingEvent::Action(a) => {
                out.actions += 1;
                push_all(&mut out.action_stats, &a.action);
            }
        }
    }
    Ok(out)
}

/// Adds one vector to per-dimension statistics (sized by the first vector).
fn push_all(stats: &mut Vec<DimStats>, v: &[f32]) {
    if stats.len() < v.len() {
        stats.resize(v.len(), DimStats::default());
    }
    v.iter()
        .zip(stats.iter_mut())
        .for_each(|(x, st)| st.push(*x));
}
