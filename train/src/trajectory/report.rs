//! The evaluation's report ([`TrajEvalReport`]) and its human-readable
//! outputs: a markdown table of the Frechet
//! distance and error per step, the Frechet distance over the horizon
//! (Figure 13) and rollouts from one start next to the truth (Figure 12).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::plot::{self, Axes, Line};

/// Offline evaluation of one setting.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TrajEvalReport {
    pub test_trajectories: usize,
    pub particles: usize,
    pub horizon: usize,
    /// Frechet distance per predicted step, in normalised units.
    pub fd_ebm: Vec<f64>,
    pub fd_fc: Vec<f64>,
    pub avg_fd_ebm: f64,
    pub avg_fd_fc: f64,
    /// `avg_fd_ebm / avg_fd_fc` (the paper: 0.18 unconditional, 0.45 conditional).
    pub ratio: f64,
    /// Mean squared error of the particle mean (EBM) or prediction (FC) per step.
    pub mse_ebm: Vec<f64>,
    pub mse_fc: Vec<f64>,
    /// The noisy baseline: the FC's prediction plus Gaussian noise of its
    /// training residuals' spread at every step, as many particles as the EBM
    /// (what Frechet distance rewards for spread alone).
    #[serde(default)]
    pub fd_fc_noisy: Vec<f64>,
    #[serde(default)]
    pub avg_fd_fc_noisy: f64,
    #[serde(default)]
    pub mse_fc_noisy: Vec<f64>,
    /// Which split was scored: "test", or "validation" in a tuning run.
    #[serde(default = "test_split")]
    pub split: String,
    pub seconds: f64,
}

fn test_split() -> String {
    "test".into()
}

/// Steps listed in the table (1-based), where the horizon reaches them.
const TABLE_STEPS: [usize; 8] = [1, 2, 5, 10, 20, 30, 40, 50];

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// `report.md`: per-step FD and particle-mean MSE of the EBM, the FC and the
/// noisy FC, and their averages over the horizon.
pub fn markdown_table(r: &TrajEvalReport, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## {title}\n\n{} {} trajectories, {} particles, horizon {}; normalised units.\n",
        r.test_trajectories, r.split, r.particles, r.horizon
    );
    let _ = writeln!(
        s,
        "| step | FD EBM | FD FC | FD noisy FC | MSE EBM | MSE FC | MSE noisy FC |"
    );
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- |");
    let at = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(f64::NAN);
    for &t in TABLE_STEPS.iter().filter(|&&t| t <= r.horizon) {
        let i = t - 1;
        let _ = writeln!(
            s,
            "| {t} | {:.3} | {:.3} | {:.3} | {:.4} | {:.4} | {:.4} |",
            r.fd_ebm[i],
            r.fd_fc[i],
            at(&r.fd_fc_noisy, i),
            r.mse_ebm[i],
            r.mse_fc[i],
            at(&r.mse_fc_noisy, i)
        );
    }
    let _ = writeln!(
        s,
        "| average | {:.3} | {:.3} | {:.3} | {:.4} | {:.4} | {:.4} |\n\nAverage-FD ratio EBM / FC: **{:.3}** (the paper: 0.18 unconditional, 0.45 action-conditional).",
        r.avg_fd_ebm,
        r.avg_fd_fc,
        r.avg_fd_fc_noisy,
        mean(&r.mse_ebm),
        mean(&r.mse_fc),
        mean(&r.mse_fc_noisy),
        r.ratio
    );
    s
}

/// `fd.svg`: the Frechet distance of each predictor over the horizon.
pub fn fd_figure(r: &TrajEvalReport, title: &str, path: &Path) -> Result<()> {
    let x: Vec<f64> = (1..=r.fd_ebm.len()).map(|t| t as f64).collect();
    let lines = [
        Line {
            name: "EBM",
            color: plot::BLUE,
            x: &x,
            y: &r.fd_ebm,
            band: None,
            thin: false,
        },
        Line {
            name: "FC baseline",
            color: plot::RED,
            x: &x,
            y: &r.fd_fc,
            band: None,
            thin: false,
        },
        Line {
            name: "FC + residual noise",
            color: plot::ORANGE,
            x: &x[..r.fd_fc_noisy.len().min(x.len())],
            y: &r.fd_fc_noisy,
            band: None,
            thin: false,
        },
    ];
    plot::line_chart(
        path,
        &lines,
        &Axes {
            title,
            x: "predicted step (control periods ahead)",
            y: "Frechet distance (normalised units)",
        },
    )
}

/// One panel per state dimension in `dims`: the true trajectory (black), the
/// FC prediction (red) and every EBM particle (light blue), over the context
/// state and the horizon. `truth: [H+1][D]`, `fc: [H][D]`,
/// `particles: [P][H][D]`; `names` names every state dimension.
pub fn rollout_figure(
    truth: &[Vec<f32>],
    fc: &[Vec<f32>],
    particles: &[Vec<Vec<f32>>],
    dims: &[usize],
    names: &[String],
    title: &str,
    path: &Path,
) -> Result<()> {
    let x: Vec<f64> = (0..truth.len()).map(|t| t as f64).collect();
    let start = |d: usize| f64::from(truth[0][d]);
    let col = |v: &[Vec<f32>], d: usize| -> Vec<f64> {
        std::iter::once(start(d))
            .chain(v.iter().map(|s| f64::from(s[d])))
            .collect()
    };
    // Per dimension: the particles' paths, the FC's path, the truth.
    type Paths = (Vec<Vec<f64>>, Vec<f64>, Vec<f64>);
    let data: Vec<Paths> = dims
        .iter()
        .map(|&d| {
            let ps = particles.iter().map(|p| col(p, d)).collect();
            (
                ps,
                col(fc, d),
                truth.iter().map(|s| f64::from(s[d])).collect(),
            )
        })
        .collect();
    let ylabels: Vec<String> = dims
        .iter()
        .map(|&d| match names.get(d) {
            Some(n) => format!("{n} (norm. units)"),
            None => format!("state {d} (norm. units)"),
        })
        .collect();
    let charts: Vec<(Vec<Line>, Axes)> = data
        .iter()
        .zip(&ylabels)
        .map(|((ps, f, t), yl)| {
            let mut lines: Vec<Line> = ps
                .iter()
                .map(|p| Line {
                    name: "",
                    color: plot::LIGHT_BLUE,
                    x: &x,
                    y: p,
                    band: None,
                    thin: true,
                })
                .collect();
            lines.push(Line {
                name: "",
                color: plot::RED,
                x: &x,
                y: f,
                band: None,
                thin: false,
            });
            lines.push(Line {
                name: "",
                color: plotters::style::colors::BLACK,
                x: &x,
                y: t,
                band: None,
                thin: false,
            });
            (
                lines,
                Axes {
                    title: "",
                    x: "step",
                    y: yl,
                },
            )
        })
        .collect();
    plot::panels(
        path,
        title,
        &[
            ("truth", plotters::style::colors::BLACK),
            ("FC baseline", plot::RED),
            ("EBM particles", plot::LIGHT_BLUE),
        ],
        &charts,
        3,
    )
}
