//! Energy landscapes as heat maps with axes: the energy on a grid over a
//! square (viridis, dark = low, scaled between the 2nd and 98th
//! percentiles per panel), with circles (the data's modes) and points (the
//! samples) drawn over them.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::err;

/// One panel: `values` on an `n x n` grid over `[-half, half]^2`, row 0 at
/// the top (y = +half).
pub struct EnergyMap<'a> {
    pub title: &'a str,
    pub values: &'a [f64],
    pub n: usize,
    pub half: f64,
    /// `(x, y, radius)` outlines drawn in white.
    pub circles: &'a [(f64, f64, f64)],
    /// Samples drawn in red.
    pub points: &'a [[f64; 2]],
}

/// A perceptually ordered blue-to-yellow colour map (viridis anchors).
pub fn viridis(t: f64) -> RGBColor {
    const STOPS: [[f64; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let c = |k: usize| (STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f).round() as u8;
    RGBColor(c(0), c(1), c(2))
}

/// The 2nd and 98th percentiles of the finite `values`.
fn color_range(values: &[f64]) -> (f64, f64) {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0).max(0.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    (pick(0.02), pick(0.98))
}

/// `maps` side by side under one title, written to `path` as SVG.
pub fn energy_maps(path: &Path, title: &str, maps: &[EnergyMap]) -> Result<()> {
    let (w, h) = (380u32, 400u32);
    super::ensure_parent(path)?;
    let root = SVGBackend::new(path, (w * maps.len().max(1) as u32, h + 40)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (head, body) = root.split_vertically(40);
    head.draw(&Text::new(title, (12, 10), ("sans-serif", 17)))
        .map_err(err)?;
    for (area, m) in body.split_evenly((1, maps.len().max(1))).iter().zip(maps) {
        let half = m.half;
        let mut chart = ChartBuilder::on(area)
            .caption(m.title, ("sans-serif", 14))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(-half..half, -half..half)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("x")
            .y_desc("y")
            .label_style(("sans-serif", 11))
            .axis_desc_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        let (lo, hi) = color_range(m.values);
        let span = if hi > lo { hi - lo } else { 1.0 };
        let cell = 2.0 * half / m.n.max(1) as f64;
        let cells = m.values.iter().enumerate().map(|(i, &v)| {
            let (r, c) = (i / m.n, i % m.n);
            let (x0, y1) = (-half + c as f64 * cell, half - r as f64 * cell);
            // A little overlap, so that no seam shows between cells.
            let o = 0.15 * cell;
            let inside = |v: f64| v.clamp(-half, half);
            Rectangle::new(
                [
                    (inside(x0 - o), inside(y1 - cell - o)),
                    (inside(x0 + cell + o), inside(y1 + o)),
                ],
                viridis((v - lo) / span).filled(),
            )
        });
        chart.draw_series(cells).map_err(err)?;
        // Circles as polylines, so that they keep their data-space radius.
        for &(x, y, r) in m.circles {
            let ring = (0..=48).map(|k| {
                let a = std::f64::consts::TAU * k as f64 / 48.0;
                (x + r * a.cos(), y + r * a.sin())
            });
            chart
                .draw_series(std::iter::once(PathElement::new(
                    ring.collect::<Vec<_>>(),
                    WHITE.stroke_width(1),
                )))
                .map_err(err)?;
        }
        chart
            .draw_series(
                m.points
                    .iter()
                    .map(|p| Circle::new((p[0], p[1]), 1, RGBColor(230, 40, 40).filled())),
            )
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
