//! `ebm-train traj tune`: settings chosen on a validation split carved from
//! the training split (never the test split). Every candidate (a context
//! length, shared by both models, and a context-noise level) is trained for
//! both models on the rest of the training split and scored by average
//! Frechet distance on the validation split, all candidates from the same
//! first predicted step. Each model gets its best noise level; the context
//! length is the one where the two models' best scores have the lowest
//! geometric mean (it must help both).

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
    pub context_len: usize,
    pub context_noise: f32,
    pub avg_fd_ebm: f64,
    pub avg_fd_fc: f64,
    pub avg_fd_fc_noisy: f64,
}

/// The outcome: every candidate and the choice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TuneReport {
    pub validation_trajectories: usize,
    pub first_step: usize,
    pub candidates: Vec<Candidate>,
    pub context_len: usize,
    pub ebm_context_noise: f32,
    pub fc_context_noise: f32,
}

/// The context lengths `cfg.tune` tries.
fn lengths(cfg: &TrajectoryConfig) -> Vec<usize> {
    match cfg.tune.as_ref().map(|t| t.context_len.clone()) {
        Some(v) if !v.is_empty() => v,
        _ => vec![cfg.model.context_len],
    }
}

/// The config of one candidate: the context length for both models, the
/// same noise level on both models' training contexts, the validation split
/// held out and scored from the first step every candidate can predict.
pub fn candidate(cfg: &TrajectoryConfig, context_len: usize, level: f32) -> TrajectoryConfig {
    let mut c = cfg.clone();
    c.model.context_len = context_len;
    c.context_noise = level;
    c.baseline.context_noise = level;
    c.validation_run = true;
    let longest = lengths(cfg).into_iter().max().unwrap_or(context_len);
    c.eval.first_step = c.eval.first_step.max(longest);
    c
}

/// Runs every candidate of `cfg.tune` under `dir` (`k<len>-noise-<level>/`;
/// a candidate whose validation report exists is not run again) and writes
/// `tune.json` and `tune.md` there.
pub fn tune(cfg: &TrajectoryConfig, base: &Path, dir: &Path, device: &Device) -> Result<TuneReport> {
    let t = cfg
        .tune
        .as_ref()
        .context("the config has no [tune] section (validation_share, context_noise levels)")?;
    let mut candidates = Vec::new();
    let mut scored = 0;
    let mut first_step = 0;
    for k in lengths(cfg) {
        for &level in &t.context_noise {
            let c = candidate(cfg, k, level);
            first_step = c.eval.first_step;
            let run = dir.join(format!("k{k}-noise-{level}"));
            let report_path = run.join("validation").join("report.json");
            let report: TrajEvalReport = match std::fs::read(&report_path) {
                Ok(bytes) => serde_json::from_slice(&bytes)
                    .with_context(|| format!("reading {}", report_path.display()))?,
                Err(_) => {
                    tracing::info!(context_len = k, level, "tuning: training both models");
                    train_trajectory(&c, base, &run, device)?;
                    evaluate(&c, base, &run, &run.join("validation"), device)?
                }
            };
            anyhow::ensure!(
                report.split == "validation",
                "{} is not a validation report",
                report_path.display()
            );
            scored = report.test_trajectories;
            candidates.push(Candidate {
                context_len: k,
                context_noise: level,
                avg_fd_ebm: report.avg_fd_ebm,
                avg_fd_fc: report.avg_fd_fc,
                avg_fd_fc_noisy: report.avg_fd_fc_noisy,
            });
        }
    }
    let report = choose(candidates, scored, first_step);
    std::fs::write(dir.join("tune.json"), serde_json::to_vec_pretty(&report)?)?;
    std::fs::write(dir.join("tune.md"), markdown(&report))?;
    Ok(report)
}

/// Each model's best candidate at the context length where the geometric
/// mean of the two models' best validation FDs is lowest.
pub fn choose(candidates: Vec<Candidate>, scored: usize, first_step: usize) -> TuneReport {
    let best_at = |k: usize, f: fn(&Candidate) -> f64| -> Option<&Candidate> {
        candidates
            .iter()
            .filter(|c| c.context_len == k && f(c).is_finite())
            .min_by(|a, b| f(a).total_cmp(&f(b)))
    };
    let mut ks: Vec<usize> = candidates.iter().map(|c| c.context_len).collect();
    ks.dedup();
    let score = |k: usize| match (best_at(k, |c| c.avg_fd_ebm), best_at(k, |c| c.avg_fd_fc)) {
        (Some(e), Some(f)) => (e.avg_fd_ebm * f.avg_fd_fc).sqrt(),
        _ => f64::INFINITY,
    };
    let k = ks
        .iter()
        .copied()
        .min_by(|&a, &b| score(a).total_cmp(&score(b)))
        .unwrap_or(0);
    let ebm = best_at(k, |c| c.avg_fd_ebm).map_or(0.0, |c| c.context_noise);
    let fc = best_at(k, |c| c.avg_fd_fc).map_or(0.0, |c| c.context_noise);
    TuneReport {
        validation_trajectories: scored,
        first_step,
        context_len: k,
        ebm_context_noise: ebm,
        fc_context_noise: fc,
        candidates,
    }
}

pub fn markdown(r: &TuneReport) -> String {
    let mut s = "| context length | context noise | avg FD EBM | avg FD FC | avg FD noisy FC |\n| --- | --- | --- | --- | --- |\n".to_string();
    for c in &r.candidates {
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} | {:.3} | {:.3} |",
            c.context_len, c.context_noise, c.avg_fd_ebm, c.avg_fd_fc, c.avg_fd_fc_noisy
        );
    }
    let _ = writeln!(
        s,
        "\n{} validation trajectories (carved from the training split), predicted from step {}. Chosen: `model.context_len = {}`, `context_noise = {}` (EBM), `baseline.context_noise = {}` (FC).",
        r.validation_trajectories, r.first_step, r.context_len, r.ebm_context_noise, r.fc_context_noise
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(k: usize, noise: f32, e: f64, f: f64) -> Candidate {
        Candidate { context_len: k, context_noise: noise, avg_fd_ebm: e, avg_fd_fc: f, avg_fd_fc_noisy: f }
    }

    #[test]
    fn each_model_gets_its_best_level_at_the_length_that_helps_both() {
        let r = choose(
            vec![
                c(1, 0.0, 10.0, 4.0),
                c(1, 0.3, 6.0, 5.0), // k = 1: sqrt(6 * 4) = 4.9
                c(4, 0.0, 2.0, 9.0),
                c(4, 0.3, 3.0, 12.0), // k = 4: sqrt(2 * 9) = 4.24, the lower
            ],
            10,
            4,
        );
        assert_eq!((r.context_len, r.ebm_context_noise, r.fc_context_noise), (4, 0.0, 0.0));
        let r = choose(vec![c(1, 0.0, 10.0, 4.0), c(1, 0.3, 6.0, 5.0)], 10, 1);
        assert_eq!((r.context_len, r.ebm_context_noise, r.fc_context_noise), (1, 0.3, 0.0));
    }
}
