//! The resampled recording: spans, episodes, header and summary.

use std::collections::BTreeMap;
use std::path::Path;

use ebm_msgs::recording::{RecordingHeader, RecordingWriter};
use ebm_msgs::{Action, RobotId, RobotSpec, RobotState};

use super::resample::{grid_len, intersect, Series};
use super::topics::TopicReader;
use super::{ImportOptions, ImportReport, TopicStats};
use crate::generate::split;
use crate::SimError;

/// What the pass over the bag gathered.
pub(super) struct Read {
    pub topics: BTreeMap<String, (String, u64)>,
    pub state: TopicReader,
    pub action: Option<TopicReader>,
    pub truncated_after: Option<u64>,
}

fn stats(r: &TopicReader) -> TopicStats {
    TopicStats {
        topic: r.topic.clone(),
        messages: r.messages,
        samples: r.series.as_ref().map_or(0, Series::len),
        out_of_order: r.series.as_ref().map_or(0, |s| s.out_of_order),
        non_finite: r.non_finite,
        empty_trajectories: r.empty_trajectories,
        log_time_fallbacks: r.log_time_fallbacks,
    }
}

/// Resamples what was read and writes the recording `out`.
pub(super) fn write(
    bag: &Path,
    opts: &ImportOptions,
    out: &Path,
    period_ns: u64,
    read: Read,
) -> Result<ImportReport, SimError> {
    let empty = Series::new(0);
    let states = read.state.series.as_ref().unwrap_or(&empty);
    let actions = read
        .action
        .as_ref()
        .map(|r| r.series.as_ref().unwrap_or(&empty));
    let max_gap_ns = (opts.max_gap_periods * period_ns as f64) as u64;
    let mut spans = states.spans(max_gap_ns);
    if let Some(a) = actions {
        spans = intersect(&spans, &a.spans(max_gap_ns));
    }
    let lens: Vec<u64> = spans.iter().map(|&s| grid_len(s, period_ns)).collect();
    let longest = lens.iter().copied().max().unwrap_or(0);
    let steps = match opts.steps {
        Some(s) => u64::from(s),
        None => lens.iter().copied().filter(|&n| n >= 2).min().unwrap_or(0),
    };
    let episodes: u64 = if steps >= 2 {
        lens.iter().map(|n| n / steps).sum()
    } else {
        0
    };
    let steps_u32 = u32::try_from(steps).unwrap_or(u32::MAX);
    if episodes == 0 || u64::from(steps_u32) != steps {
        return Err(SimError::NoEpisodes {
            samples: states.len(),
            spans: spans.len(),
            longest,
            rate_hz: opts.rate_hz,
        });
    }
    let kind = match &opts.robot_kind {
        Some(k) => k.clone(),
        None => bag
            .file_stem()
            .map_or("ros2".into(), |s| s.to_string_lossy().into_owned()),
    };
    let robot_id = match &opts.robot_id {
        Some(id) => id.clone(),
        None => RobotId::new(robot_id_from(&kind))?,
    };
    let action_names = read
        .action
        .as_ref()
        .map(TopicReader::dim_names)
        .unwrap_or_default();
    let robot = RobotSpec {
        kind,
        state_dim: states.width(),
        action_dim: action_names.len(),
        state_names: read.state.dim_names(),
        state_units: Vec::new(),
        action_names,
        action_units: Vec::new(),
    };
    let header = RecordingHeader {
        robot_id: robot_id.clone(),
        encoding: opts.encoding,
        trajectories: episodes,
        steps: steps_u32,
        control_period_ns: period_ns,
        generator: concat!("ebm-sim import-ros2 ", env!("CARGO_PKG_VERSION")).to_owned(),
        seed: 0,
        config: config_text(bag, opts),
        split: split(episodes, 0),
        robot: Some(robot.clone()),
    };
    let mut w = RecordingWriter::create(out, &header)?;
    let (mut s, mut a) = (vec![0.0; robot.state_dim], vec![0.0; robot.action_dim]);
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let mut seq = 0u64;
    for (&span, &len) in spans.iter().zip(&lens) {
        for e in 0..len / steps {
            let episode = seq / steps;
            for k in 0..steps {
                let t_ns = span.0 + (e * steps + k) * period_ns;
                states.interpolate(t_ns, &mut s);
                let state = f32s(&s);
                w.write_state(&RobotState {
                    robot_id: robot_id.to_string(),
                    episode,
                    seq,
                    stamp_ns: t_ns,
                    state,
                    last_action: None,
                })?;
                if let Some(series) = actions {
                    series.interpolate(t_ns, &mut a);
                    w.write_action(&Action {
                        robot_id: robot_id.to_string(),
                        episode,
                        seq,
                        stamp_ns: t_ns,
                        action: f32s(&a),
                    })?;
                }
                seq += 1;
            }
        }
    }
    let report = ImportReport {
        topics: read.topics,
        state: stats(&read.state),
        action: read.action.as_ref().map(stats),
        spans: spans.len(),
        episodes,
        steps: steps_u32,
        dropped_steps: lens.iter().sum::<u64>() - episodes * steps,
        period_ns,
        robot_id,
        robot,
        truncated_after: read.truncated_after,
    };
    w.finish(summary(&report))?;
    Ok(report)
}

/// A robot id from a kind: characters other than ASCII letters, digits,
/// `-` and `_` become `-`, at most 64, starting with a letter or digit.
pub(super) fn robot_id_from(kind: &str) -> String {
    let id: String = kind
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(64)
        .collect();
    if id.is_empty() {
        "ros2".into()
    } else {
        id
    }
}

/// The import's options, for the header's `config` (TOML).
fn config_text(bag: &Path, opts: &ImportOptions) -> String {
    let mut t = toml::Table::new();
    let mut put = |k: &str, v: toml::Value| t.insert(k.to_owned(), v);
    let strings =
        |v: Vec<String>| toml::Value::Array(v.into_iter().map(toml::Value::String).collect());
    put("bag", toml::Value::String(bag.display().to_string()));
    put("state_topic", toml::Value::String(opts.state_topic.clone()));
    put(
        "state_fields",
        strings(
            opts.state_fields
                .iter()
                .map(|f| f.name().to_owned())
                .collect(),
        ),
    );
    if let Some(a) = &opts.action_topic {
        put("action_topic", toml::Value::String(a.clone()));
    }
    if let Some(j) = &opts.joints {
        put("joints", strings(j.clone()));
    }
    put("rate_hz", toml::Value::Float(opts.rate_hz));
    put("max_gap_periods", toml::Value::Float(opts.max_gap_periods));
    put(
        "clock",
        toml::Value::String(format!("{:?}", opts.clock).to_lowercase()),
    );
    toml::to_string(&t).unwrap_or_default()
}

fn summary(r: &ImportReport) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (topic, (ty, n)) in &r.topics {
        m.insert(format!("messages {topic}"), format!("{n} ({ty})"));
    }
    for s in std::iter::once(&r.state).chain(&r.action) {
        m.insert(
            format!("skipped {}", s.topic),
            format!(
                "{} out of order, {} non-finite, {} empty trajectories; {} timed by log time",
                s.out_of_order, s.non_finite, s.empty_trajectories, s.log_time_fallbacks
            ),
        );
    }
    m.insert("spans".into(), r.spans.to_string());
    m.insert("dropped_steps".into(), r.dropped_steps.to_string());
    if let Some(b) = r.truncated_after {
        m.insert("truncated_after_bytes".into(), b.to_string());
    }
    m
}
