//! `ebm-train traj tune`: each model's context noise chosen on a validation
//! split carved from the training split (never the test split). Every
//! candidate level is tried for both models, each trained on the rest of
//! the training split and scored by average Frechet distance on the
//! validation split; each model gets its best level.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::config::TrajectoryConfig;
use super::evaluate::{evaluate, TrajEvalReport};
use super::run::train_trajectory;

/// One candidate's validation scores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Candidate {
    pub context_noise: f32,
    pub avg_fd_ebm: f64,
    pub avg_fd_fc: f64,
    pub avg_fd_fc_noisy: f64,
}

/// The outcome: every candidate and each model's choice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TuneReport {
    pub validation_trajectories: usize,
    pub candidates: Vec<Candidate>,
    pub ebm_context_noise: f32,
    pub fc_context_noise: f32,
}

/// The config of candidate `level`: the same level on both models' training
/// contexts, the validation split held out and scored.
pub fn candidate(cfg: &TrajectoryConfig, level: f32) -> TrajectoryConfig {
    let mut c = cfg.clone();
    c.context_noise = level;
    c.baseline.context_noise = level;
    c.validation_run = true;
    c
}

/// Runs every candidate of `cfg.tune` under `dir` (`noise-<level>/`; a
/// candidate whose validation report exists is not run again) and writes
/// `tune.json` and `tune.md` there.
pub fn tune(cfg: &TrajectoryConfig, base: &Path, dir: &Path, device: &Device) -> Result<TuneReport> {
    let t = cfg
        .tune
        .as_ref()
        .context("the config has no [tune] section (validation_share, context_noise levels)")?;
    let mut candidates = Vec::new();
    let mut scored = 0;
    for &level in &t.context_noise {
        let c = candidate(cfg, level);
        let run = dir.join(format!("noise-{level}"));
        let report_path = run.join("validation").join("report.json");
        let report: TrajEvalReport = match std::fs::read(&report_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", report_path.display()))?,
            Err(_) => {
                tracing::info!(level, "tuning: training both models");
                train_trajectory(&c, base, &run, device)?;
                evaluate(&c, base, &run, &run.join("validation"), device)?
            }
        };
        anyhow::ensure!(report.split == "validation", "{} is not a validation report", report_path.display());
        scored = report.test_trajectories;
        candidates.push(Candidate {
            context_noise: level,
            avg_fd_ebm: report.avg_fd_ebm,
            avg_fd_fc: report.avg_fd_fc,
            avg_fd_fc_noisy: report.avg_fd_fc_noisy,
        });
    }
    let best = |f: fn(&Candidate) -> f64| {
        candidates
            .iter()
            .min_by(|a, b| f(a).total_cmp(&f(b)))
            .map_or(0.0, |c| c.context_noise)
    };
    let report = TuneReport {
        validation_trajectories: scored,
        ebm_context_noise: best(|c| c.avg_fd_ebm),
        fc_context_noise: best(|c| c.avg_fd_fc),
        candidates,
    };
    std::fs::write(dir.join("tune.json"), serde_json::to_vec_pretty(&report)?)?;
    std::fs::write(dir.join("tune.md"), markdown(&report))?;
    Ok(report)
}

pub fn markdown(r: &TuneReport) -> String {
    let mut s = format!(
        "| context noise | avg FD EBM | avg FD FC | avg FD noisy FC |\n| --- | --- | --- | --- |\n"
    );
    for c in &r.candidates {
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3} | {:.3} |",
            c.context_noise, c.avg_fd_ebm, c.avg_fd_fc, c.avg_fd_fc_noisy
        );
    }
    let _ = writeln!(
        s,
        "\n{} validation trajectories (carved from the training split). Chosen: `context_noise = {}` (EBM), `baseline.context_noise = {}` (FC).",
        r.validation_trajectories, r.ebm_context_noise, r.fc_context_noise
    );
    s
}
