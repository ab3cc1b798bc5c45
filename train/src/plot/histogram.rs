//! Overlaid histograms as outlines, each series as its share of values per
//! bin over one shared range (series of different sizes compare).

use std::path::Path;

use anyhow::Result;
use plotters::prelude::RGBColor;

use super::{line_chart, Axes, Line};

/// One series of a histogram chart.
pub struct Histogram<'a> {
    pub name: &'a str,
    pub color: RGBColor,
    pub values: &'a [f64],
}

/// The outline of each series' histogram over `bins` equal bins spanning
/// every finite value: `(x, y)` step points, `y` the share of the series.
pub fn outlines(series: &[Histogram], bins: usize) -> Vec<(Vec<f64>, Vec<f64>)> {
    let bins = bins.max(1);
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    let (lo, span) = if hi > lo {
        (lo, hi - lo)
    } else {
        (lo.min(0.0), 1.0)
    };
    series
        .iter()
        .map(|s| {
            let mut share = vec![0.0; bins];
            for &v in s.values.iter().filter(|v| v.is_finite()) {
                let b = (((v - lo) / span) * bins as f64).floor() as usize;
                share[b.min(bins - 1)] += 1.0 / s.values.len().max(1) as f64;
            }
            let edge = |b: usize| lo + span * b as f64 / bins as f64;
            let x = (0..bins).flat_map(|b| [edge(b), edge(b + 1)]).collect();
            let y = share.iter().flat_map(|&v| [v, v]).collect();
            (x, y)
        })
        .collect()
}

/// The histograms of `series` in one chart with a legend, written to `path`
/// as SVG; the y axis is the share of each series per bin.
pub fn histogram_chart(path: &Path, series: &[Histogram], bins: usize, axes: &Axes) -> Result<()> {
    let steps = outlines(series, bins);
    let lines: Vec<Line> = series
        .iter()
        .zip(&steps)
        .map(|(s, (x, y))| Line {
            name: s.name,
            color: s.color,
            x,
            y,
            band: None,
            thin: false,
        })
        .collect();
    line_chart(path, &lines, axes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values 0..=3 and 2, 3 in two bins over [0, 3]: shares by hand.
    #[test]
    fn outlines_are_shares_per_bin_over_the_shared_range() {
        let a = [0.0, 1.0, 2.0, 3.0];
        let b = [2.0, 3.0, f64::NAN];
        let c = RGBColor(0, 0, 0);
        let s = [
            Histogram {
                name: "a",
                color: c,
                values: &a,
            },
            Histogram {
                name: "b",
                color: c,
                values: &b,
            },
        ];
        let o = outlines(&s, 2);
        assert_eq!(o[0].0, vec![0.0, 1.5, 1.5, 3.0]);
        assert_eq!(o[0].1, vec![0.5, 0.5, 0.5, 0.5]);
        // NaN is not counted but is part of the series' size.
        assert_eq!(o[1].1, vec![0.0, 0.0, 2.0 / 3.0, 2.0 / 3.0]);
    }

    /// A chart can go into a folder that does not exist yet (`images ood
    /// --out` into a fresh folder failed before).
    #[test]
    fn charts_create_their_folder() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("ebm-plot-{}", std::process::id()));
        let path = dir.join("fresh").join("h.svg");
        let values = [0.0, 1.0, 1.0, 2.0];
        let series = [Histogram {
            name: "v",
            color: RGBColor(0, 0, 0),
            values: &values,
        }];
        let axes = Axes {
            title: "t",
            x: "x",
            y: "y",
        };
        histogram_chart(&path, &series, 4, &axes)?;
        assert!(std::fs::read_to_string(&path)?.contains("<svg"));
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
