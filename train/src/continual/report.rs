//! The continual-learning report: mean +- sd over seeds, a table and a
//! figure of accuracy across tasks.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::run::ContinualReport;
use crate::plot::{line_chart, Axes, Line, BLUE, BROWN, GREEN, ORANGE, PURPLE, RED};

/// Mean and sample standard deviation.
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

impl ContinualReport {
    /// Per method, mean and sd over seeds of an accuracy after each task.
    pub fn curve(
        &self,
        method: usize,
        pick: impl Fn(&super::run::AfterTask) -> f64,
    ) -> Vec<(f64, f64)> {
        let runs = &self.methods[method].runs;
        (0..self.tasks.len())
            .map(|t| mean_sd(&runs.iter().map(|r| pick(&r[t])).collect::<Vec<_>>()))
            .collect()
    }

    /// A markdown table: accuracy on all classes after each task, and on the
    /// classes seen so far, mean +- sd in percent.
    pub fn table(&self) -> String {
        let mut s = format!(
            "Accuracy ({} digits, {} seeds, mean +- sd, %) after each task\n\n| method | ",
            self.split,
            self.seeds.len()
        );
        let heads: Vec<String> = self.tasks.iter().map(|t| format!("{t:?}")).collect();
        let _ = writeln!(s, "{} |", heads.join(" | "));
        let _ = writeln!(s, "| --- |{}", " --- |".repeat(self.tasks.len()));
        for (m, runs) in self.methods.iter().enumerate() {
            for (what, all) in [("all ten classes", true), ("classes seen so far", false)] {
                let cells: Vec<String> = self
                    .curve(m, |a| if all { a.all } else { a.seen })
                    .iter()
                    .map(|(mu, sd)| format!("{:.2} +- {:.2}", 100.0 * mu, 100.0 * sd))
                    .collect();
                let _ = writeln!(
                    s,
                    "| {}, {what} | {} |",
                    runs.settings.name(),
                    cells.join(" | ")
                );
            }
        }
        s
    }

    /// `accuracy.svg`: accuracy on all classes seen so far against the
    /// number of tasks learned, a band of +- 1 sd per method.
    pub fn figure(&self, path: &Path) -> Result<()> {
        let x: Vec<f64> = (1..=self.tasks.len()).map(|t| t as f64).collect();
        let colours = [BLUE, RED, ORANGE, GREEN, PURPLE, BROWN];
        let curves: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = (0..self.methods.len())
            .map(|m| {
                let c = self.curve(m, |a| a.seen);
                (
                    c.iter().map(|(mu, _)| 100.0 * mu).collect(),
                    c.iter().map(|(mu, sd)| 100.0 * (mu - sd)).collect(),
                    c.iter().map(|(mu, sd)| 100.0 * (mu + sd)).collect(),
                )
            })
            .collect();
        let names: Vec<String> = self.methods.iter().map(|m| m.settings.name()).collect();
        let lines: Vec<Line> = curves
            .iter()
            .enumerate()
            .map(|(i, (y, lo, hi))| Line {
                name: &names[i],
                color: colours[i % colours.len()],
                x: &x,
                y,
                band: Some((lo, hi)),
                thin: false,
            })
            .collect();
        let title = format!(
            "Split MNIST, class-incremental: accuracy on all classes seen ({} seeds, +-1 sd)",
            self.seeds.len()
        );
        line_chart(
            path,
            &lines,
            &Axes {
                title: &title,
                x: "tasks learned (2 classes each)",
                y: &format!("{} accuracy (%)", self.split),
            },
        )
    }
}
