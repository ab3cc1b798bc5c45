//! `ebm-train images restore`: salt-and-pepper denoising, inpainting of the
//! bottom half, and (conditional models) cross-class sampling, as in the
//! official `ebm_sandbox.py` (`anticorrupt`, `boxcorrupt`, `crossclass`);
//! the paper's Figures 5 to 7.

use std::path::Path;

use anyhow::Result;
use candle_core::{Device, Tensor};
use ebm_core::Rng;
use serde::Serialize;

use super::config::ImageConfig;
use super::dataset::{ImageData, NUM_CLASSES};
use super::eval::{class_energies, langevin_rounds, load_latest, mse};
use super::grid::image_grid;
use super::loaders::Split;

#[derive(Debug, Clone, Serialize)]
pub struct RestoreRow {
    pub task: String,
    pub images: usize,
    /// MSE to the clean image before restoration (over the scored region).
    pub mse_corrupted: f64,
    /// MSE to the clean image after restoration.
    pub mse_restored: f64,
}

fn save_triptych(
    clean: &Tensor,
    bad: &Tensor,
    fixed: &Tensor,
    size: usize,
    path: &Path,
) -> Result<()> {
    let k = 10.min(clean.dim(0)?);
    let mut v: Vec<f32> = Vec::new();
    for t in [clean, bad, fixed] {
        v.extend(t.narrow(0, 0, k)?.flatten_all()?.to_vec1::<f32>()?);
    }
    let c = clean.dim(1)? / (size * size);
    image_grid(&v, 3 * k, c, size, size, k, 3).save_png(path)
}

/// Runs every restoration task on the first `eval.restore_images` test images.
pub fn restore(
    cfg: &ImageConfig,
    base: &Path,
    run: &Path,
    out: &Path,
    device: &Device,
) -> Result<Vec<RestoreRow>> {
    let m = load_latest(run, device)?;
    let test = cfg
        .load(base, Split::Test)?
        .truncated(cfg.eval.restore_images);
    let n = test.len();
    let data = ImageData {
        set: test,
        conditional: m.conditional,
    };
    let clean = data.clean(&(0..n).collect::<Vec<_>>(), device)?;
    let d = clean.dim(1)?;
    let labels = if m.conditional {
        Some(ImageData::one_hot(&data.set.labels, device)?)
    } else {
        None
    };
    let mut rng = Rng::derived(cfg.trainer.seed, "restore");
    let lcfg = &cfg.eval.langevin;
    let size = cfg.model.image_size;
    let mut rows = Vec::new();

    // Salt and pepper: 5% of pixels to 0.1, 5% to 0.9 (all channels of a pixel).
    let (c, plane) = (cfg.model.in_channels, size * size);
    let mut noisy: Vec<f32> = clean.flatten_all()?.to_vec1()?;
    for i in 0..n {
        for p in 0..plane {
            let u = rng.uniform();
            let v = if u < 0.05 {
                Some(0.1)
            } else if u < 0.10 {
                Some(0.9)
            } else {
                None
            };
            if let Some(v) = v {
                for ch in 0..c {
                    noisy[i * d + ch * plane + p] = v;
                }
            }
        }
    }
    let noisy = Tensor::from_vec(noisy, (n, d), device)?;
    let fixed = langevin_rounds(
        &m.model,
        lcfg,
        cfg.eval.restore_rounds,
        &noisy,
        labels.as_ref(),
        None,
        &mut rng,
    )?;
    save_triptych(&clean, &noisy, &fixed, size, &out.join("denoise.png"))?;
    rows.push(RestoreRow {
        task: "salt-and-pepper denoising".into(),
        images: n,
        mse_corrupted: mse(&noisy, &clean, None)?,
        mse_restored: mse(&fixed, &clean, None)?,
    });

    // Inpainting: the bottom half replaced by uniform noise, Langevin masked to it.
    let mut mask = vec![0f32; d];
    for ch in 0..c {
        for p in (size / 2) * size..plane {
            mask[ch * plane + p] = 1.0;
        }
    }
    let region = Tensor::from_vec(mask, (1, d), device)?.repeat((n, 1))?;
    let fill = Tensor::from_vec(rng.uniform_vec(n * d, 0.0, 1.0), (n, d), device)?;
    let holed = ((&clean * (1.0 - &region)?)? + (&fill * &region)?)?;
    let inpainted = langevin_rounds(
        &m.model,
        lcfg,
        cfg.eval.restore_rounds,
        &holed,
        labels.as_ref(),
        Some(&region),
        &mut rng,
    )?;
    save_triptych(&clean, &holed, &inpainted, size, &out.join("inpaint.png"))?;
    rows.push(RestoreRow {
        task: "inpainting (bottom half)".into(),
        images: n,
        mse_corrupted: mse(&holed, &clean, Some(&region))?,
        mse_restored: mse(&inpainted, &clean, Some(&region))?,
    });

    // Cross-class: each digit relabelled to the next class and sampled from.
    if m.conditional {
        let target: Vec<u8> = data
            .set
            .labels
            .iter()
            .map(|&l| ((usize::from(l) + 1) % NUM_CLASSES) as u8)
            .collect();
        let y = ImageData::one_hot(&target, device)?;
        let moved = langevin_rounds(
            &m.model,
            lcfg,
            cfg.eval.restore_rounds,
            &clean,
            Some(&y),
            None,
            &mut rng,
        )?;
        save_triptych(&clean, &clean, &moved, size, &out.join("crossclass.png"))?;
        let hits = class_energies(&m.model, &moved)?
            .iter()
            .zip(&target)
            .filter(|(e, &t)| argmin(e.as_slice()) == usize::from(t))
            .count();
        tracing::info!(
            "cross-class: {:.1}% of results are classified as their new class",
            100.0 * hits as f64 / n.max(1) as f64
        );
    }
    std::fs::write(out.join("restore.json"), serde_json::to_vec_pretty(&rows)?)?;
    Ok(rows)
}

pub fn argmin(e: &[f64]) -> usize {
    e.iter()
        .enumerate()
        .fold(
            (0, f64::INFINITY),
            |b, (i, &v)| if v < b.1 { (i, v) } else { b },
        )
        .0
}
