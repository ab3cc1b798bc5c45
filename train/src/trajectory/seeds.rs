//! `ebm-train traj summary`: the evaluation reports of several training
//! seeds of one setting, as one table (per seed and mean +- sd) and one
//! figure: the Frechet distance over the horizon, EBM and FC baseline, mean
//! over seeds with a +-1 sd band.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::report::TrajEvalReport;
use crate::plot::{self, Axes, Line};

/// Mean and sample standard deviation (0 for one value).
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Reads `report.json` files written by `traj eval`.
pub fn read_reports(paths: &[PathBuf]) -> Result<Vec<TrajEvalReport>> {
    paths
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a traj eval report", p.display()))
        })
        .collect()
}

/// Per-step mean and +-1 sd of `f(report)` over reports.
fn per_step(
    reports: &[TrajEvalReport],
    f: impl Fn(&TrajEvalReport) -> &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let h = reports.iter().map(|r| f(r).len()).min().unwrap_or(0);
    let (mut m, mut lo, mut hi) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..h {
        let v: Vec<f64> = reports.iter().map(|r| f(r)[t]).collect();
        let (mean, sd) = mean_sd(&v);
        m.push(mean);
        lo.push((mean - sd).max(0.0)); // distances are never negative
        hi.push(mean + sd);
    }
    (m, lo, hi)
}

fn avg(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The Markdown table of `reports` (one row per seed, then mean +- sd):
/// average FD of the EBM, the FC and the noisy FC, the ratio, and the
/// particle-mean MSE averaged over the horizon.
pub fn markdown(
    title: &str,
    names: &[String],
    reports: &[TrajEvalReport],
    paper_ratio: Option<f64>,
) -> String {
    let mut s = format!("### {title}\n\n| run | avg FD EBM | avg FD FC | EBM / FC | avg FD noisy FC | MSE EBM | MSE FC | MSE noisy FC |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (n, r) in names.iter().zip(reports) {
        s += &format!(
            "| {n} | {:.3} | {:.3} | {:.3} | {:.3} | {:.4} | {:.4} | {:.4} |\n",
            r.avg_fd_ebm,
            r.avg_fd_fc,
            r.ratio,
            r.avg_fd_fc_noisy,
            avg(&r.mse_ebm),
            avg(&r.mse_fc),
            avg(&r.mse_fc_noisy)
        );
    }
    let col =
        |f: &dyn Fn(&TrajEvalReport) -> f64| mean_sd(&reports.iter().map(f).collect::<Vec<_>>());
    let fmt = |(m, sd): (f64, f64), p: usize| format!("{m:.p$} +- {sd:.p$}");
    s += &format!(
        "| **mean +- sd ({} seeds)** | {} | {} | **{}** | {} | {} | {} | {} |\n",
        reports.len(),
        fmt(col(&|r| r.avg_fd_ebm), 3),
        fmt(col(&|r| r.avg_fd_fc), 3),
        fmt(col(&|r| r.ratio), 3),
        fmt(col(&|r| r.avg_fd_fc_noisy), 3),
        fmt(col(&|r| avg(&r.mse_ebm)), 4),
        fmt(col(&|r| avg(&r.mse_fc)), 4),
        fmt(col(&|r| avg(&r.mse_fc_noisy)), 4),
    );
    if let Some(p) = paper_ratio {
        s += &format!("\nThe paper's EBM / FC ratio in this setting (Shadow hand): {p:.2}.\n");
    }
    if let Some(r) = reports.first() {
        s += &format!(
            "\n{} {} trajectories, horizon {}, {} particles per trajectory (EBM and noisy FC); Frechet distance and MSE (of the particle mean, averaged over the horizon) in normalised units.\n",
            r.test_trajectories, r.split, r.horizon, r.particles
        );
    }
    s
}

/// Writes `summary.md` and `fd.svg` for `reports` into `out`.
pub fn write_summary(
    title: &str,
    reports_paths: &[PathBuf],
    paper_ratio: Option<f64>,
    out: &Path,
) -> Result<String> {
    let reports = read_reports(reports_paths)?;
    anyhow::ensure!(!reports.is_empty(), "no reports given");
    let names: Vec<String> = reports_paths
        .iter()
        .map(|p| {
            p.ancestors()
                .filter_map(|a| a.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .find(|n| n != "report.json" && n != "eval")
                .unwrap_or_else(|| p.display().to_string())
        })
        .collect();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let md = markdown(title, &names, &reports, paper_ratio);
    std::fs::write(out.join("summary.md"), &md)?;
    let n = reports.len();
    let bands: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = [
        per_step(&reports, |r| &r.fd_ebm),
        per_step(&reports, |r| &r.fd_fc),
        per_step(&reports, |r| &r.fd_fc_noisy),
    ]
    .into();
    let x: Vec<f64> = (1..=bands[0].0.len()).map(|t| t as f64).collect();
    let names = [
        format!("EBM, mean of {n} seeds (band: +-1 sd)"),
        format!("FC baseline, mean of {n} seeds"),
        format!("FC + residual noise, mean of {n} seeds"),
    ];
    let colors = [plot::BLUE, plot::RED, plot::ORANGE];
    let lines: Vec<Line> = bands
        .iter()
        .zip(&names)
        .zip(colors)
        .filter(|((b, _), _)| !b.0.is_empty())
        .map(|(((m, lo, hi), name), color)| Line {
            name,
            color,
            x: &x[..m.len().min(x.len())],
            y: m,
            band: (n > 1).then_some((&lo[..], &hi[..])),
            thin: false,
        })
        .collect();
    plot::line_chart(
        &out.join("fd.svg"),
        &lines,
        &Axes {
            title,
            x: "predicted step (control periods ahead)",
            y: "Frechet distance to the true states (normalised units)",
        },
    )?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_sd_by_hand() {
        let (m, sd) = mean_sd(&[1.0, 2.0, 6.0]);
        assert!((m - 3.0).abs() < 1e-12);
        // ((4 + 1 + 9) / 2)^0.5
        assert!((sd - 7f64.sqrt()).abs() < 1e-12);
        assert_eq!(mean_sd(&[5.0]), (5.0, 0.0));
    }
}
