//! A small raster canvas for figures written as PNG: heat maps with points
//! drawn over them. Enough for energy landscapes; no text.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::{Context, Result};

pub type Rgb = [u8; 3];

pub struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<Rgb>,
}

/// A perceptually ordered blue-to-yellow colour map (viridis anchors).
pub fn viridis(t: f64) -> Rgb {
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
    let mut out = [0u8; 3];
    for (c, o) in out.iter_mut().enumerate() {
        *o = (STOPS[i][c] * (1.0 - f) + STOPS[i + 1][c] * f).round() as u8;
    }
    out
}

impl Canvas {
    pub fn new(width: usize, height: usize, background: Rgb) -> Self {
        Self {
            width,
            height,
            pixels: vec![background; width * height],
        }
    }

    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[y as usize * self.width + x as usize] = c;
        }
    }

    /// Fills the canvas from `values` (row-major `rows x cols`, row 0 at the
    /// top), scaled linearly between their 2nd and 98th percentiles.
    pub fn heat_map(&mut self, values: &[f64], rows: usize, cols: usize) {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            sorted
                .get(((sorted.len() as f64 - 1.0) * q) as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let (lo, hi) = (pick(0.02), pick(0.98));
        let span = if hi > lo { hi - lo } else { 1.0 };
        for py in 0..self.height {
            for px in 0..self.width {
                let r = py * rows / self.height;
                let c = px * cols / self.width;
                let v = values[r * cols + c];
                self.pixels[py * self.width + px] = viridis((v - lo) / span);
            }
        }
    }

    /// A filled disc of `radius` pixels.
    pub fn dot(&mut self, x: f64, y: f64, radius: i64, c: Rgb) {
        let (cx, cy) = (x.round() as i64, y.round() as i64);
        for dy in -radius..=radius {
            for dx in -radius..=radius {
                if dx * dx + dy * dy <= radius * radius {
                    self.set(cx + dx, cy + dy, c);
                }
            }
        }
    }

    /// A ring outline of `radius` pixels.
    pub fn circle(&mut self, x: f64, y: f64, radius: f64, c: Rgb) {
        let n = (radius * 8.0).max(16.0) as usize;
        for k in 0..n {
            let a = std::f64::consts::TAU * k as f64 / n as f64;
            self.set(
                (x + radius * a.cos()).round() as i64,
                (y + radius * a.sin()).round() as i64,
                c,
            );
        }
    }

    /// Places `other` with its top-left corner at `(x, y)`.
    pub fn blit(&mut self, other: &Canvas, x: usize, y: usize) {
        for oy in 0..other.height {
            for ox in 0..other.width {
                self.set(
                    (x + ox) as i64,
                    (y + oy) as i64,
                    other.pixels[oy * other.width + ox],
                );
            }
        }
    }

    pub fn save_png(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut enc =
            png::Encoder::new(BufWriter::new(file), self.width as u32, self.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().context("writing PNG header")?;
        let flat: Vec<u8> = self.pixels.iter().flatten().copied().collect();
        w.write_image_data(&flat).context("writing PNG data")?;
        Ok(())
    }
}

/// A grid of images (`[n, channels, h, w]` values in [0, 1], row-major) with
/// `cols` images per row, each scaled by `zoom`, separated by 2-pixel gaps.
pub fn image_grid(
    values: &[f32],
    n: usize,
    channels: usize,
    h: usize,
    w: usize,
    cols: usize,
    zoom: usize,
) -> Canvas {
    let cols = cols.max(1);
    let rows = n.div_ceil(cols);
    let gap = 2;
    let (cw, ch) = (w * zoom + gap, h * zoom + gap);
    let mut c = Canvas::new(
        (cols * cw + gap).max(1),
        (rows * ch + gap).max(1),
        [40, 40, 40],
    );
    let plane = h * w;
    for i in 0..n {
        let (gx, gy) = (gap + (i % cols) * cw, gap + (i / cols) * ch);
        let img = &values[i * channels * plane..(i + 1) * channels * plane];
        for y in 0..h {
            for x in 0..w {
                let px =
                    |ch: usize| (img[ch * plane + y * w + x].clamp(0.0, 1.0) * 255.0).round() as u8;
                let rgb = if channels >= 3 {
                    [px(0), px(1), px(2)]
                } else {
                    [px(0); 3]
                };
                for dy in 0..zoom {
                    for dx in 0..zoom {
                        c.set(
                            (gx + x * zoom + dx) as i64,
                            (gy + y * zoom + dy) as i64,
                            rgb,
                        );
                    }
                }
            }
        }
    }
    c
}

/// Overlaid histograms (outlines) of several series over a shared range.
pub fn histograms(series: &[(&[f64], Rgb)], bins: usize, width: usize, height: usize) -> Canvas {
    let all = series
        .iter()
        .flat_map(|(s, _)| s.iter().copied())
        .filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut c = Canvas::new(width, height, [255, 255, 255]);
    let counts: Vec<Vec<f64>> = series
        .iter()
        .map(|(s, _)| {
            let mut h = vec![0.0; bins];
            for &v in s.iter().filter(|v| v.is_finite()) {
                let b = (((v - lo) / span) * bins as f64).floor() as usize;
                h[b.min(bins - 1)] += 1.0 / s.len().max(1) as f64;
            }
            h
        })
        .collect();
    let top = counts
        .iter()
        .flatten()
        .copied()
        .fold(0.0, f64::max)
        .max(1e-12);
    for ((_, colour), h) in series.iter().zip(&counts) {
        let mut prev_y = height as i64 - 1;
        for (b, &v) in h.iter().enumerate() {
            let x0 = (b * width / bins) as i64;
            let x1 = ((b + 1) * width / bins) as i64;
            let y = height as i64 - 1 - (v / top * (height as f64 - 4.0)) as i64;
            for yy in y.min(prev_y)..=y.max(prev_y) {
                c.set(x0, yy, *colour);
            }
            for x in x0..x1 {
                c.set(x, y, *colour);
                c.set(x, y + 1, *colour);
            }
            prev_y = y;
        }
    }
    c
}
