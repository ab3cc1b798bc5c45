//! A PNG of several futures from one start state: the cube's orientation
//! (rotation vector relative to the start, x, y, z panels, top row, +-1 rad) and
//! position (relative to the start, x, y, z panels, bottom row, +-3 cm) over
//! time, one line per trajectory, coloured by behaviour ([`COLORS`], in the
//! order of [`Behaviour::ALL`]). No text: the legend is printed by the CLI.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::layout::{JOINT_DIM, STATE_DIM};
use rapier3d::na::{Quaternion, UnitQuaternion};

use crate::policy::Behaviour;
use crate::SimError;

/// One colour per behaviour: blue, orange, green, red, purple, brown.
pub const COLORS: [[u8; 3]; 6] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
];
const PANEL_W: usize = 400;
const PANEL_H: usize = 260;
const MARGIN: usize = 16;
const POSITION_RANGE_M: f32 = 0.03;
const ROTATION_RANGE_RAD: f32 = 1.0;

struct Canvas {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            rgb: vec![255; w * h * 3],
        }
    }

    fn dot(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = (y as usize * self.w + x as usize) * 3;
            self.rgb[i..i + 3].copy_from_slice(&c);
        }
    }

    /// A 2-pixel line (DDA).
    fn line(&mut self, (x0, y0): (f32, f32), (x1, y1): (f32, f32), c: [u8; 3]) {
        let n = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as usize;
        for k in 0..=n {
            let t = k as f32 / n as f32;
            let (x, y) = (
                (x0 + t * (x1 - x0)).round() as i64,
                (y0 + t * (y1 - y0)).round() as i64,
            );
            self.dot(x, y, c);
            self.dot(x + 1, y, c);
            self.dot(x, y + 1, c);
        }
    }

    fn frame(&mut self, x: usize, y: usize, w: usize, h: usize) {
        let grey = [150, 150, 150];
        let (x0, y0, x1, y1) = (x as f32, y as f32, (x + w) as f32, (y + h) as f32);
        for (a, b) in [
            ((x0, y0), (x1, y0)),
            ((x1, y0), (x1, y1)),
            ((x1, y1), (x0, y1)),
            ((x0, y1), (x0, y0)),
        ] {
            self.line(a, b, grey);
        }
        let mid = y0 + 0.5 * h as f32;
        let mut xx = x0;
        while xx < x1 {
            self.line((xx, mid), ((xx + 4.0).min(x1), mid), [200, 200, 200]);
            xx += 10.0;
        }
    }
}

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

/// Draws `trajectories` (`(behaviour, states)`) into a PNG at `path`.
pub fn write_png(path: &Path, trajectories: &[(Behaviour, Vec<f32>)]) -> Result<(), SimError> {
    let (w, h) = (3 * PANEL_W + 4 * MARGIN, 2 * PANEL_H + 3 * MARGIN);
    let mut canvas = Canvas::new(w, h);
    let origin = |panel: usize| {
        (
            MARGIN + (panel % 3) * (PANEL_W + MARGIN),
            MARGIN + (panel / 3) * (PANEL_H + MARGIN),
        )
    };
    for panel in 0..6 {
        let (x, y) = origin(panel);
        canvas.frame(x, y, PANEL_W, PANEL_H);
    }
    for (behaviour, states) in trajectories {
        let color = COLORS[behaviour.index()];
        let data = series(states);
        for (panel, values) in data.iter().enumerate() {
            let range = if panel < 3 {
                ROTATION_RANGE_RAD
            } else {
                POSITION_RANGE_M
            };
            let (x, y) = origin(panel);
            let n = values.len().max(2) - 1;
            let to_px = |i: usize, v: f32| {
                let px = x as f32 + i as f32 / n as f32 * PANEL_W as f32;
                let py = y as f32 + (0.5 - 0.5 * (v / range).clamp(-1.0, 1.0)) * PANEL_H as f32;
                (px, py)
            };
            for i in 1..values.len() {
                canvas.line(to_px(i - 1, values[i - 1]), to_px(i, values[i]), color);
            }
        }
    }
    let io = |source| SimError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::create(path).map_err(io)?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let png_err = |e: png::EncodingError| SimError::Png {
        path: path.to_owned(),
        source: e,
    };
    let mut writer = encoder.write_header().map_err(png_err)?;
    writer.write_image_data(&canvas.rgb).map_err(png_err)?;
    writer.finish().map_err(png_err)
}
