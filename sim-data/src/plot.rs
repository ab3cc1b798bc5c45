//! A figure of several futures from one start state (SVG, plotters): the
//! cube's orientation (rotation vector relative to the start, x, y, z
//! panels, top row) and position (relative to the start, x, y, z panels,
//! bottom row) over time, one line per trajectory, coloured by behaviour
//! ([`COLORS`], in the order of [`Behaviour::ALL`]), with a legend.

use std::path::Path;

use plotters::prelude::*;
use rapier3d::na::{Quaternion, UnitQuaternion};

use crate::layout::{JOINT_DIM, STATE_DIM};
use crate::policy::Behaviour;
use crate::SimError;

/// One colour per behaviour: blue, orange, green, red, purple, brown.
pub const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

const PANEL_W: u32 = 400;
const PANEL_H: u32 = 270;
const HEAD_H: u32 = 70;

/// The six plotted series of one trajectory: rotation vector (rad) and
/// position (m) relative to the first frame, per step.
pub fn series(states: &[f32]) -> [Vec<f32>; 6] {
    let q = |s: &[f32]| {
        UnitQuaternion::from_quaternion(Quaternion::new(
            s[JOINT_DIM + 6],
            s[JOINT_DIM + 3],
            s[JOINT_DIM + 4],
            s[JOINT_DIM + 5],
        ))
    };
    let first = &states[..STATE_DIM];
    let q0 = q(first);
    let mut out: [Vec<f32>; 6] = Default::default();
    for s in states.chunks(STATE_DIM) {
        let r = (q0.inverse() * q(s)).scaled_axis();
        for k in 0..3 {
            out[k].push(r[k]);
            out[3 + k].push(s[JOINT_DIM + k] - first[JOINT_DIM + k]);
        }
    }
    out
}

/// Draws `trajectories` (`(behaviour, states)`, states every
/// `period_s` seconds) as an SVG at `path`.
pub fn write_svg(
    path: &Path,
    trajectories: &[(Behaviour, Vec<f32>)],
    period_s: f32,
) -> Result<(), SimError> {
    let err = |e: &dyn std::fmt::Debug| SimError::Figure {
        path: path.to_owned(),
        reason: format!("{e:?}"),
    };
    let root = SVGBackend::new(path, (3 * PANEL_W, 2 * PANEL_H + HEAD_H)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (head, body) = root.split_vertically(HEAD_H);
    let title = "Futures of one start state by behaviour: the cube relative to the start";
    head.draw(&Text::new(title, (12, 8), ("sans-serif", 18)))
        .map_err(|e| err(&e))?;
    let mut x = 12;
    for b in Behaviour::ALL {
        let name = format!("{b:?}");
        let c = COLORS[b.index()];
        head.draw(&PathElement::new(
            vec![(x, 48), (x + 22, 48)],
            c.stroke_width(3),
        ))
        .map_err(|e| err(&e))?;
        head.draw(&Text::new(name.clone(), (x + 28, 41), ("sans-serif", 13)))
            .map_err(|e| err(&e))?;
        x += 44 + 7 * name.len() as i32;
    }
    let data: Vec<(Behaviour, [Vec<f32>; 6])> =
        trajectories.iter().map(|(b, s)| (*b, series(s))).collect();
    let steps = data
        .iter()
        .map(|(_, d)| d[0].len())
        .max()
        .unwrap_or(2)
        .max(2);
    let t_end = (steps - 1) as f64 * f64::from(period_s);
    let axis = ["x", "y", "z"];
    for (panel, area) in body.split_evenly((2, 3)).iter().enumerate() {
        // Rotation in rad; position in cm.
        let (scale, what, unit) = if panel < 3 {
            (1.0, "rotation", "rad")
        } else {
            (100.0, "position", "cm")
        };
        let values = || {
            data.iter()
                .flat_map(move |(_, d)| d[panel].iter().map(move |&v| f64::from(v) * scale))
        };
        let hi = values().fold(1e-6f64, |m, v| m.max(v.abs())) * 1.05;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("cube {what} {}", axis[panel % 3]),
                ("sans-serif", 14),
            )
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..t_end, -hi..hi)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc(format!("{what} ({unit})"))
            .light_line_style(WHITE.mix(0.0))
            .label_style(("sans-serif", 11))
            .axis_desc_style(("sans-serif", 12))
            .draw()
            .map_err(|e| err(&e))?;
        for (b, d) in &data {
            let pts = d[panel]
                .iter()
                .enumerate()
                .map(|(i, &v)| (i as f64 * f64::from(period_s), f64::from(v) * scale));
            chart
                .draw_series(LineSeries::new(pts, COLORS[b.index()].stroke_width(1)))
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))
}
