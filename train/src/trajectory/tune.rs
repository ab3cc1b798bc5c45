//! `ebm-train traj tune`: settings chosen on a validation split carved from
//! the training split (never the test split). Every candidate (a context
//! length and a context-noise level) is trained for both models on the rest
//! of the training split and scored by average Frechet distance on the
//! validation split, all candidates from the same first predicted step.
//! Each model gets the candidate with its lowest score: the same grid and
//! the same rule for both.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::config::TrajectoryConfig;
use super::evaluate::evaluate;
use super::report::TrajEvalReport;
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

/// The outcome: every candidate and each model's choice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TuneReport {
    pub validation_trajectories: usize,
    pub first_step: usize,
    pub candidates: Vec<Candidate>,
    pub ebm_context_len: usize,
    pub ebm_context_noise: f32,
    pub fc_context_len: usize,
    pub fc_context_noise: f32,
}

/// The context lengths `cfg.tune` tries.
fn lengths(cfg: &TrajectoryConfig) -> Vec<usize> {
    match cfg.tune.as_ref().map(|t| t.context_len.clone()) {
        Some(v) if !v.is_empty() => v,
        _ => vec![cfg.model.context_len],
    }
}

/// The config of one candidate: the same context length and noise level
/// for both models, the validation split held out and scored from the
/// first step every candidate can predict.
pub fn candidate(cfg: &TrajectoryConfig, context_len: usize, level: f32) -> TrajectoryConfig {
    let mut c = cfg.clone();
    c.model.context_len = context_len;
    c.baseline.context_len = Some(context_len);
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
pub fn tune(
    cfg: &TrajectoryConfig,
    base: &Path,
    dir: &Path,
    device: &Device,
) -> Result<TuneReport> {
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

/// Each model's candidate with the lowest validation FD.
pub fn choose(candidates: Vec<Candidate>, scored: usize, first_step: usize) -> TuneReport {
    let best = |f: fn(&Candidate) -> f64| -> (usize, f32) {
        candidates
            .iter()
            .filter(|c| f(c).is_finite())
            .min_by(|a, b| f(a).total_cmp(&f(b)))
            .map_or((1, 0.0), |c| (c.context_len, c.context_noise))
    };
    let (ebm_context_len, ebm_context_noise) = best(|c| c.avg_fd_ebm);
    let (fc_context_len, fc_context_noise) = best(|c| c.avg_fd_fc);
    TuneReport {
        validation_trajectories: scored,
        first_step,
        ebm_context_len,
        ebm_context_noise,
        fc_context_len,
        fc_context_noise,
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
        "\n{} validation trajectories (carved from the training split), predicted from step {}. Chosen: EBM `model.context_len = {}`, `context_noise = {}`; FC `baseline.context_len = {}`, `baseline.context_noise = {}`.",
        r.validation_trajectories,
        r.first_step,
        r.ebm_context_len,
        r.ebm_context_noise,
        r.fc_context_len,
        r.fc_context_noise
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(k: usize, noise: f32, e: f64, f: f64) -> Candidate {
        Candidate {
            context_len: k,
            context_noise: noise,
            avg_fd_ebm: e,
            avg_fd_fc: f,
            avg_fd_fc_noisy: f,
        }
    }

    #[test]
    fn each_model_gets_its_own_best_candidate() {
        let r = choose(
            vec![
                c(1, 0.0, 10.0, 4.0),
                c(1, 0.3, 6.0, 5.0),
                c(4, 0.0, 2.0, 9.0),
                c(4, 0.3, 3.0, f64::NAN),
            ],
            10,
            4,
        );
        assert_eq!((r.ebm_context_len, r.ebm_context_noise), (4, 0.0));
        assert_eq!((r.fc_context_len, r.fc_context_noise), (1, 0.0));
        let r = choose(vec![c(1, 0.0, 10.0, 4.0), c(2, 0.3, 6.0, 5.0)], 10, 2);
        assert_eq!((r.ebm_context_len, r.ebm_context_noise), (2, 0.3));
        assert_eq!((r.fc_context_len, r.fc_context_noise), (1, 0.0));
    }
}
