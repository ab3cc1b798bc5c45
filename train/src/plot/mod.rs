//! Every chart of `ebm-train`, with plotters (SVG: axes with labels and
//! units, ticks, legends and titles; nothing to install, any browser and
//! GitHub show them): lines with bands and panels of lines (this file),
//! histograms ([`histogram`]) and energy landscapes ([`energy_map`]).
//! Pictures (grids of generated images) are PNGs: `images/grid.rs`.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

pub mod energy_map;
pub mod histogram;

pub use energy_map::{energy_maps, EnergyMap};
pub use histogram::{histogram_chart, Histogram};

/// One line of a chart: its legend name, colour, points and an optional
/// `(lo, hi)` band per point drawn under it; `thin` lines (particles) are
/// drawn light and get no legend entry unless named.
pub struct Line<'a> {
    pub name: &'a str,
    pub color: RGBColor,
    pub x: &'a [f64],
    pub y: &'a [f64],
    pub band: Option<(&'a [f64], &'a [f64])>,
    pub thin: bool,
}

/// A chart's title and axis labels (with units).
pub struct Axes<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
}

pub const BLUE: RGBColor = RGBColor(31, 119, 180);
pub const RED: RGBColor = RGBColor(214, 39, 40);
pub const ORANGE: RGBColor = RGBColor(255, 127, 14);
pub const GREEN: RGBColor = RGBColor(44, 160, 44);
pub const PURPLE: RGBColor = RGBColor(148, 103, 189);
pub const BROWN: RGBColor = RGBColor(140, 86, 75);
pub const LIGHT_BLUE: RGBColor = RGBColor(150, 190, 230);

/// Creates the folder a figure goes into, so that any chart can be written
/// to a fresh output folder.
pub(crate) fn ensure_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| anyhow!("creating {}: {e}", dir.display()))?;
    }
    Ok(())
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a figure: {e:?}")
}

/// The range of every value in `lines` (bands included), padded by 5%.
fn y_range(lines: &[Line], from_zero: bool) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for l in lines {
        let band = l.band.map(|(a, b)| a.iter().chain(b)).into_iter().flatten();
        for &v in l.y.iter().chain(band).filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if from_zero && lo >= 0.0 {
        lo = 0.0;
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (
        if from_zero && lo == 0.0 {
            0.0
        } else {
            lo - pad
        },
        hi + pad,
    )
}

fn x_range(lines: &[Line]) -> (f64, f64) {
    let lo = lines
        .iter()
        .flat_map(|l| l.x)
        .copied()
        .fold(f64::INFINITY, f64::min);
    let hi = lines
        .iter()
        .flat_map(|l| l.x)
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    }
}

/// Draws `lines` into one chart area.
fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    lines: &[Line],
    axes: &Axes,
    title_size: u32,
    legend: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (x0, x1) = x_range(lines);
    let (y0, y1) = y_range(lines, legend);
    let mut chart = ChartBuilder::on(area)
        .caption(axes.title, ("sans-serif", title_size))
        .margin(8)
        .margin_right(24)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(axes.x)
        .y_desc(axes.y)
        .light_line_style(WHITE.mix(0.0))
        .x_label_formatter(&|v: &f64| {
            if x1 - x0 >= 5.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    for l in lines {
        if let Some((lo, hi)) = l.band {
            let poly: Vec<(f64, f64)> =
                l.x.iter()
                    .zip(hi)
                    .map(|(&x, &y)| (x, y))
                    .chain(l.x.iter().zip(lo).rev().map(|(&x, &y)| (x, y)))
                    .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    poly,
                    l.color.mix(0.18).filled(),
                )))
                .map_err(err)?;
        }
        let style = if l.thin {
            l.color.mix(0.6).stroke_width(1)
        } else {
            l.color.stroke_width(2)
        };
        let pts = l.x.iter().zip(l.y).map(|(&x, &y)| (x, y));
        let s = chart
            .draw_series(LineSeries::new(pts, style))
            .map_err(err)?;
        if legend && !l.name.is_empty() {
            let c = l.color;
            s.label(l.name).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
            });
        }
    }
    if legend {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 12))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// One chart with a legend, written to `path` as SVG.
pub fn line_chart(path: &Path, lines: &[Line], axes: &Axes) -> Result<()> {
    ensure_parent(path)?;
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    draw(&root, lines, axes, 17, true)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Small charts in a grid under one title and one legend line (`key`:
/// names and colours shared by every panel), written to `path` as SVG.
pub fn panels(
    path: &Path,
    title: &str,
    key: &[(&str, RGBColor)],
    charts: &[(Vec<Line>, Axes)],
    cols: usize,
) -> Result<()> {
    let cols = cols.max(1);
    let rows = charts.len().div_ceil(cols).max(1);
    let (w, h) = (340u32, 250u32);
    ensure_parent(path)?;
    let root = SVGBackend::new(path, (w * cols as u32, h * rows as u32 + 60)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (head, body) = root.split_vertically(60);
    head.draw(&Text::new(title, (12, 8), ("sans-serif", 18)))
        .map_err(err)?;
    let mut x = 12;
    for (name, color) in key {
        head.draw(&PathElement::new(
            vec![(x, 44), (x + 22, 44)],
            color.stroke_width(3),
        ))
        .map_err(err)?;
        head.draw(&Text::new(*name, (x + 28, 37), ("sans-serif", 13)))
            .map_err(err)?;
        x += 40 + 7 * name.len() as i32;
    }
    for (area, (lines, axes)) in body.split_evenly((rows, cols)).iter().zip(charts) {
        draw(area, lines, axes, 13, false)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
