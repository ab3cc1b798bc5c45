//! `ebm-tools replay-eval`: the offline trajectory evaluation (`ebm-train
//! traj eval`) reproduced through the daemon. Test episodes of a recording
//! are replayed into an in-process daemon over Zenoh: for each episode its
//! first `k` states are published (with their recorded last actions, as
//! `ebm-tools replay` sends them), the daemon's forecast from them is
//! received, and the forecasts are scored against the recording: per
//! horizon step, the mean squared error of the particle mean and the
//! Frechet distance
//! between all predicted particles and the true states (normalised units,
//! as the offline evaluation).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use ebm_core::stats::forecast_error::StepErrors;
use ebm_msgs::recording::{
    LastActions, RecordingEvent, RecordingHeader, RecordingReader, HEADER_RECORD,
};
use ebm_msgs::{decode, encode, Encoding, Forecast, RobotId, RobotState};
use serde::Serialize;
use tracing::info;

use ebm_runtime::config::RuntimeConfig;
use ebm_runtime::local::LocalDaemon;
use ebm_runtime::model::RobotModel;
use ebm_runtime::RuntimeError;

#[derive(Debug, Clone, Serialize)]
pub struct ReplayEvalReport {
    pub model_id: String,
    pub episodes: usize,
    /// Forecasts scored: one per episode, `1 + follow` with `--follow`.
    pub forecasts: usize,
    pub horizon: usize,
    pub particles: usize,
    /// Per horizon step (1..=H): mean squared error of the particle mean,
    /// normalised units (as `ebm-train traj eval`'s `mse_ebm`).
    pub mse: Vec<f64>,
    /// Per horizon step: Frechet distance, predicted particles vs truth.
    pub fd: Vec<f64>,
    pub avg_fd: f64,
    /// Mean daemon compute time per forecast.
    pub mean_compute_ms: f64,
    /// Mean Langevin steps per forecast over the horizon (`H * K` unless
    /// adaptive steps stop chains early).
    pub langevin_steps: f64,
}

/// The first `n` test episodes of a recording, each as its ordered states
/// with `last_action` filled in.
/// The header and test episodes `episodes` (by position in the split) of
/// a recording, `last_action` filled in.
pub fn test_episodes(
    path: &Path,
    episodes: &Range<usize>,
) -> Result<(RecordingHeader, Vec<Vec<RobotState>>), RuntimeError> {
    let mut header = None;
    let mut wanted: BTreeMap<u64, Vec<RobotState>> = BTreeMap::new();
    let mut last_actions = LastActions::default();
    for event in RecordingReader::open(path)? {
        match event? {
            RecordingEvent::Metadata { name, entries } if name == HEADER_RECORD => {
                let h = RecordingHeader::from_metadata_entries(&entries)?;
                for &id in h.split.test.iter().take(episodes.end).skip(episodes.start) {
                    wanted.insert(id, Vec::new());
                }
                header = Some(h);
            }
            RecordingEvent::State(mut s) => {
                if let Some(v) = wanted.get_mut(&s.episode) {
                    last_actions.fill(&mut s);
                    v.push(s);
                }
                // Stop reading once every wanted episode is complete.
                let steps = header.as_ref().map_or(usize::MAX, |h| h.steps as usize);
                if wanted.values().all(|v| v.len() >= steps) {
                    break;
                }
            }
            RecordingEvent::Action(a) => {
                if wanted.contains_key(&a.episode) {
                    last_actions.record(a);
                }
            }
            RecordingEvent::Metadata { .. } => {}
        }
    }
    let header = header.ok_or(ebm_msgs::MsgsError::MissingHeader(HEADER_RECORD))?;
    Ok((header, wanted.into_values().collect()))
}

/// Replays, collects forecasts and scores them.
///
/// With `follow > 0`, each episode goes on for `follow` more states, one at
/// a time (each published once the previous one's forecast is in, as a
/// robot at its rate): the forecasts from them are scored too, and they are
/// the ones that can start warm (`forecast.warm_steps`).
pub async fn replay_eval(
    cfg: RuntimeConfig,
    recording: &Path,
    episodes: Range<usize>,
    follow: usize,
    out: Option<&Path>,
) -> Result<ReplayEvalReport, RuntimeError> {
    let device = ebm_core::device::select(&cfg.device)?;
    let served = RobotModel::from_config(cfg.default_model()?, cfg.seed, &device)?;
    // A second copy, to normalise for scoring as the offline evaluation does.
    let scorer = RobotModel::from_config(cfg.default_model()?, cfg.seed, &device)?;
    let k = served.context_len();
    let (h, p) = (cfg.forecast.horizon, cfg.forecast.particles);
    let (header, eps) = test_episodes(recording, &episodes)?;
    let found = eps.iter().flatten().next().map_or(0, |s| s.state.len());
    if found != 0 && found != served.state_dim() {
        return Err(RuntimeError::Model(format!(
            "{} records {found}-float states; the model {} takes {}",
            recording.display(),
            served.model_id,
            served.state_dim()
        )));
    }
    let need = k + h + follow;
    let eps: Vec<Vec<RobotState>> = eps.into_iter().filter(|e| e.len() >= need).collect();
    if eps.is_empty() {
        return Err(RuntimeError::Model(format!(
            "no test episode of {} has {need} states (context + horizon + follow)",
            recording.display(),
        )));
    }
    info!(
        episodes = eps.len(),
        horizon = h,
        particles = p,
        "replaying test episodes into the daemon"
    );
    let model_id = served.model_id.clone();
    let daemon = LocalDaemon::start(cfg, served).await?;
    let robot = RobotId::new(header.robot_id.as_str())?;
    let publisher = daemon.state_publisher(&robot).await?;
    let (_sub, mut rx) = daemon.subscribe(daemon.keys.forecast(&robot)).await?;
    // Each forecast with its episode and the index of the state it is from.
    let mut forecasts: Vec<(Forecast, usize, usize)> = Vec::with_capacity(eps.len() * (1 + follow));
    for (i, ep) in eps.iter().enumerate() {
        for (n, from) in (k - 1..k + follow).enumerate() {
            let states = if n == 0 { &ep[..k] } else { &ep[from..=from] };
            for s in states {
                publisher
                    .put(encode(s, Encoding::Bincode)?)
                    .encoding(zenoh::bytes::Encoding::from(Encoding::Bincode.mime()))
                    .await
                    .map_err(RuntimeError::zenoh("publishing a state"))?;
            }
            let want = ep[from].seq;
            let f = loop {
                let sample = tokio::time::timeout(Duration::from_secs(120), rx.recv())
                    .await
                    .map_err(|_| {
                        RuntimeError::Model(format!(
                            "no forecast for episode {} within 120 s",
                            ep[0].episode
                        ))
                    })?
                    .ok_or(RuntimeError::EngineStopped)?;
                let f: Forecast = decode(&sample.payload().to_bytes(), Encoding::Bincode)?;
                if f.seq == want {
                    break f;
                }
            };
            forecasts.push((f, i, from));
        }
        info!(
            episode = ep[0].episode,
            done = i + 1,
            of = eps.len(),
            "forecasts"
        );
    }
    drop(publisher);
    daemon.stop().await?;

    // Score in normalised units, as the offline evaluation does: per step,
    // B * P predicted rows vs B true rows.
    let d = scorer.state_dim();
    let units = &scorer.units;
    let mut pred: Vec<Vec<Vec<f32>>> = vec![Vec::new(); h];
    let mut truth: Vec<Vec<Vec<f32>>> = vec![Vec::new(); h];
    for (f, i, from) in &forecasts {
        let ep = &eps[*i];
        for step in 0..h {
            truth[step].push(units.normalize_state(&ep[from + 1 + step].state));
            for j in 0..p {
                let o = (j * h + step) * d;
                pred[step].push(units.normalize_state(&f.trajectories[o..o + d]));
            }
        }
    }
    let errors = StepErrors::of(&pred, &truth, d);
    let report = ReplayEvalReport {
        model_id,
        episodes: eps.len(),
        forecasts: forecasts.len(),
        horizon: h,
        particles: p,
        avg_fd: errors.average_fd(),
        mean_compute_ms: forecasts
            .iter()
            .map(|(f, _, _)| f.compute_us as f64 / 1e3)
            .sum::<f64>()
            / forecasts.len() as f64,
        langevin_steps: forecasts
            .iter()
            .map(|(f, _, _)| f64::from(f.langevin_steps))
            .sum::<f64>()
            / forecasts.len().max(1) as f64,
        mse: errors.mse,
        fd: errors.fd,
    };
    if let Some(out) = out {
        std::fs::create_dir_all(out).map_err(|source| RuntimeError::Io {
            path: out.to_owned(),
            source,
        })?;
        let path = out.join("report.json");
        let json =
            serde_json::to_vec_pretty(&report).map_err(|e| RuntimeError::Model(e.to_string()))?;
        std::fs::write(&path, json).map_err(|source| RuntimeError::Io { path, source })?;
    }
    Ok(report)
}
