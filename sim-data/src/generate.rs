//! Dataset generation: trajectories in parallel (rayon), written in order to
//! one MCAP recording with the 90/10 train/test split in its header.
//!
//! Batches of trajectories are simulated in parallel and written in id order,
//! so the bytes depend only on the seed and config, never on thread count.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::layout::{ACTION_DIM, STATE_DIM};
use ebm_msgs::recording::{format_ids, RecordingHeader, RecordingWriter, Split};
use ebm_msgs::{Action, Encoding, RobotId, RobotState};
use indicatif::ProgressBar;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tracing::info;

use crate::config::SimConfig;
use crate::episode::{mix, trajectory, Rejections, Trajectory};
use crate::policy::Behaviour;
use crate::SimError;

/// Name and version written into every recording.
pub const GENERATOR: &str = concat!(
    "ebm-sim-data ",
    env!("CARGO_PKG_VERSION"),
    " (rapier3d 0.23, hand-cube v1)"
);

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub trajectories: u64,
    pub steps: u32,
    pub seed: u64,
    pub encoding: Encoding,
    pub robot_id: RobotId,
    /// Trajectories simulated in parallel before being written.
    pub batch: usize,
}

/// What a generation did.
#[derive(Debug, Clone, Default)]
pub struct GenerateReport {
    pub trajectories: u64,
    pub frames: u64,
    pub rejected: Rejections,
    pub elapsed: Duration,
    /// Segments per behaviour (index of [`Behaviour::ALL`]).
    pub behaviour_segments: [u64; 6],
}

impl GenerateReport {
    pub fn frames_per_s(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The 90/10 split: a seeded permutation, its first `round(n / 10)` ids are
/// the test set; both lists sorted.
pub fn split(n: u64, seed: u64) -> Split {
    let mut ids: Vec<u64> = (0..n).collect();
    ids.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(seed, 0x5EED_5B11)));
    let n_test = ((n as f64) / 10.0).round() as usize;
    let mut test = ids[..n_test].to_vec();
    let mut train = ids[n_test..].to_vec();
    test.sort_unstable();
    train.sort_unstable();
    Split { train, test }
}

/// The messages of trajectory `episode`: `seq = episode * steps + t`,
/// `stamp_ns = seq * period` (trajectories end to end in time).
pub fn messages(
    robot: &RobotId,
    episode: u64,
    steps: u32,
    period_ns: u64,
    traj: &Trajectory,
) -> Vec<(RobotState, Action)> {
    traj.states
        .chunks(STATE_DIM)
        .zip(traj.actions.chunks(ACTION_DIM))
        .enumerate()
        .map(|(t, (s, a))| {
            let seq = episode * u64::from(steps) + t as u64;
            let stamp_ns = seq * period_ns;
            (
                RobotState {
                    robot_id: robot.to_string(),
                    episode,
                    seq,
                    stamp_ns,
                    state: s.to_vec(),
                    last_action: None,
                },
                Action {
                    robot_id: robot.to_string(),
                    episode,
                    seq,
                    stamp_ns,
                    action: a.to_vec(),
                },
            )
        })
        .collect()
}

/// Generates `opts.trajectories` trajectories into `out`.
pub fn generate(
    cfg: &SimConfig,
    opts: &GenerateOptions,
    out: &Path,
    progress: &ProgressBar,
) -> Result<GenerateReport, SimError> {
    cfg.validate()?;
    let start = Instant::now();
    let header = RecordingHeader {
        robot_id: opts.robot_id.clone(),
        encoding: opts.encoding,
        trajectories: opts.trajectories,
        steps: opts.steps,
        control_period_ns: cfg.control_period_ns(),
        generator: GENERATOR.to_owned(),
        seed: opts.seed,
        config: cfg.to_toml()?,
        split: split(opts.trajectories, opts.seed),
        robot: Some(crate::layout::robot_spec()),
    };
    let mut writer = RecordingWriter::create(out, &header)?;
    let mut report = GenerateReport::default();
    let mut attempts_used = Vec::with_capacity(opts.trajectories as usize);
    let mut behaviours = Vec::with_capacity(opts.trajectories as usize);
    let batch = opts.batch.max(1) as u64;
    let mut first = 0;
    while first < opts.trajectories {
        let ids: Vec<u64> = (first..(first + batch).min(opts.trajectories)).collect();
        let results: Vec<_> = ids
            .par_iter()
            .map(|&id| {
                let r = trajectory(cfg, opts.steps, opts.seed, id);
                progress.inc(1);
                r
            })
            .collect();
        for (&id, (traj, rej)) in ids.iter().zip(results) {
            report.rejected.dropped += rej.dropped;
            report.rejected.non_finite += rej.non_finite;
            let traj = traj.ok_or(SimError::GaveUp {
                trajectory: id,
                attempts: cfg.max_attempts,
            })?;
            for (s, a) in messages(
                &opts.robot_id,
                id,
                opts.steps,
                header.control_period_ns,
                &traj,
            ) {
                writer.write_state(&s)?;
                writer.write_action(&a)?;
            }
            attempts_used.push(traj.attempt);
            let code: String = traj
                .segments
                .iter()
                .map(|s| char::from(b'0' + s.behaviour.index() as u8))
                .collect();
            for s in &traj.segments {
                report.behaviour_segments[s.behaviour.index()] += 1;
            }
            behaviours.push(code);
            report.trajectories += 1;
            report.frames += u64::from(opts.steps);
        }
        first += batch;
    }
    let mut summary = BTreeMap::new();
    summary.insert(
        "rejected_dropped".to_owned(),
        report.rejected.dropped.to_string(),
    );
    summary.insert(
        "rejected_non_finite".to_owned(),
        report.rejected.non_finite.to_string(),
    );
    let retried: Vec<u64> = (0..attempts_used.len() as u64)
        .filter(|&i| attempts_used[i as usize] > 0)
        .collect();
    summary.insert("retried_trajectories".to_owned(), format_ids(&retried));
    let names: Vec<String> = Behaviour::ALL.iter().map(|b| format!("{b:?}")).collect();
    summary.insert("behaviour_names".to_owned(), names.join(","));
    summary.insert("behaviours".to_owned(), behaviours.join(","));
    writer.finish(summary)?;
    report.elapsed = start.elapsed();
    info!(
        trajectories = report.trajectories,
        frames = report.frames,
        secs = report.elapsed.as_secs_f64(),
        rejected_dropped = report.rejected.dropped,
        rejected_non_finite = report.rejected.non_finite,
        "generated"
    );
    Ok(report)
}
