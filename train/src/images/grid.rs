//! Grids of images (generated digits, their restorations) written as PNG:
//! pictures, not charts (charts are `crate::plot`).

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
