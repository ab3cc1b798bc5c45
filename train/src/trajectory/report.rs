//! The evaluation's human-readable outputs: a markdown table of the Frechet
//! distance and error per step, and rollouts from one start next to the truth
//! (the paper's Figure 12).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::run::TrajEvalReport;
use crate::figure::{line_chart, Canvas};

/// Steps listed in the table (1-based), where the horizon reaches them.
const TABLE_STEPS: [usize; 8] = [1, 2, 5, 10, 20, 30, 40, 50];

/// `report.md`: per-step FD and particle-mean MSE, EBM and FC, and averages.
pub fn markdown_table(r: &TrajEvalReport, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## {title}\n\n{} test trajectories, {} particles, horizon {}; normalised units.\n",
        r.test_trajectories, r.particles, r.horizon
    );
    let _ = writeln!(s, "| step | FD EBM | FD FC | MSE EBM | MSE FC |");
    let _ = writeln!(s, "| --- | --- | --- | --- | --- |");
    for &t in TABLE_STEPS.iter().filter(|&&t| t <= r.horizon) {
        let i = t - 1;
        let _ = writeln!(
            s,
            "| {t} | {:.3} | {:.3} | {:.4} | {:.4} |",
            r.fd_ebm[i], r.fd_fc[i], r.mse_ebm[i], r.mse_fc[i]
        );
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let _ = writeln!(
        s,
        "| average | {:.3} | {:.3} | {:.4} | {:.4} |\n\nAverage-FD ratio EBM / FC: **{:.3}** (the paper: 0.18 unconditional, 0.45 action-conditional).",
        r.avg_fd_ebm,
        r.avg_fd_fc,
        mean(&r.mse_ebm),
        mean(&r.mse_fc),
        r.ratio
    );
    s
}

/// One panel per state dimension in `dims`: the true trajectory (black), the
/// FC prediction (red) and every EBM particle (blue), over the context state
/// and the horizon. `truth: [H+1][D]`, `fc: [H][D]`, `particles: [P][H][D]`.
pub fn rollout_figure(
    truth: &[Vec<f32>],
    fc: &[Vec<f32>],
    particles: &[Vec<Vec<f32>>],
    dims: &[usize],
    path: &Path,
) -> Result<()> {
    let (w, h, cols) = (320, 200, 3);
    let rows = dims.len().div_ceil(cols);
    let mut canvas = Canvas::new(w * cols, h * rows, [255, 255, 255]);
    let start = |d: usize| f64::from(truth[0][d]);
    for (k, &d) in dims.iter().enumerate() {
        let col = |v: &[Vec<f32>]| -> Vec<f64> {
            std::iter::once(start(d))
                .chain(v.iter().map(|s| f64::from(s[d])))
                .collect()
        };
        let t: Vec<f64> = truth.iter().map(|s| f64::from(s[d])).collect();
        let f = col(fc);
        let ps: Vec<Vec<f64>> = particles.iter().map(|p| col(p)).collect();
        let mut series: Vec<(&[f64], [u8; 3])> =
            ps.iter().map(|p| (p.as_slice(), [120, 170, 230])).collect();
        series.push((&f, [214, 39, 40]));
        series.push((&t, [0, 0, 0]));
        let panel = line_chart(&series, w - 8, h - 8);
        canvas.blit(&panel, (k % cols) * w + 4, (k / cols) * h + 4);
    }
    canvas.save_png(path)
}
