//! `ebm-train images restore`: salt-and-pepper denoising, inpainting of the
//! bottom half, and (conditional models) cross-class sampling, as in the
//! official `ebm_sandbox.py` (`anticorrupt`, `boxcorrupt`, `crossclass`);
//! the paper's Figures 5 to 7.

use std::path::Path;

use anyhow::Result;
use candle_core::{Device, Tensor};
use ebm_core::Rng;
use serde::Serialize;

use super::baselines::{filled, mean_image, median_3x3, nearest_rows};
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
    /// What trivial methods score on the same images and region.
    pub baselines: Vec<BaselineScore>,
}

/// Every restoration task's figures, and the cross-class result of
/// conditional models.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub rows: Vec<RestoreRow>,
    pub cross: Option<CrossClass>,
}

/// Digits relabelled to the next class and sampled from under it.
#[derive(Debug, Clone, Serialize)]
pub struct CrossClass {
    pub images: usize,
    /// Share of the results classified as their new class.
    pub share: f64,
    /// By the model itself or by an independent classifier.
    pub graded_by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BaselineScore {
    pub method: String,
    pub mse: f64,
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

/// Runs every restoration task on the first `eval.restore_images` test
/// images; cross-class samples are graded by `judge` (an independent
/// classifier's run) where given, else by the model itself.
pub fn restore(
    cfg: &ImageConfig,
    base: &Path,
    run: &Path,
    out: &Path,
    judge: Option<&Path>,
    device: &Device,
) -> Result<RestoreReport> {
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
    // The training images, for the mean-image and nearest-neighbour baselines.
    let train: Vec<f32> = cfg
        .load(base, Split::Train)?
        .pixels
        .iter()
        .map(|&b| f32::from(b) / 255.0)
        .collect();
    let mean = mean_image(&train, d);
    let score = |method: &str, v: Vec<f32>, region: Option<&Tensor>| -> Result<BaselineScore> {
        let t = Tensor::from_vec(v, (n, d), device)?;
        Ok(BaselineScore {
            method: method.into(),
            mse: mse(&t, &clean, region)?,
        })
    };
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
    let noisy_v: Vec<f32> = noisy.flatten_all()?.to_vec1()?;
    let all = vec![1f32; d];
    rows.push(RestoreRow {
        task: "salt-and-pepper denoising".into(),
        images: n,
        mse_corrupted: mse(&noisy, &clean, None)?,
        mse_restored: mse(&fixed, &clean, None)?,
        baselines: vec![
            score("3x3 median filter", median_3x3(&noisy_v, c, size), None)?,
            score("mean training image", mean.repeat(n), None)?,
            score(
                "nearest training image",
                nearest_rows(&train, &noisy_v, &all, d),
                None,
            )?,
        ],
    });

    // Inpainting: the bottom half replaced by uniform noise, Langevin masked to it.
    let mut mask = vec![0f32; d];
    for ch in 0..c {
        for p in (size / 2) * size..plane {
            mask[ch * plane + p] = 1.0;
        }
    }
    let mask_row = mask;
    let region = Tensor::from_vec(mask_row.clone(), (1, d), device)?.repeat((n, 1))?;
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
    let holed_v: Vec<f32> = holed.flatten_all()?.to_vec1()?;
    let visible: Vec<f32> = mask_row.iter().map(|m| 1.0 - m).collect();
    let neighbours = nearest_rows(&train, &holed_v, &visible, d);
    let fill_with = |f: &[f32]| filled(&holed_v, &mask_row, f, d);
    rows.push(RestoreRow {
        task: "inpainting (bottom half)".into(),
        images: n,
        mse_corrupted: mse(&holed, &clean, Some(&region))?,
        mse_restored: mse(&inpainted, &clean, Some(&region))?,
        baselines: vec![
            score("zero fill", fill_with(&vec![0.0; d]), Some(&region))?,
            score("mean training image", fill_with(&mean), Some(&region))?,
            score(
                "nearest training image (by the top half)",
                fill_with(&neighbours),
                Some(&region),
            )?,
        ],
    });

    // Cross-class: each digit relabelled to the next class and sampled from.
    let mut cross = None;
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
        let (grader, by) = match judge {
            Some(j) => (load_latest(j, device)?, "an independent classifier"),
            None => (load_latest(run, device)?, "the model itself"),
        };
        let hits = class_energies(&grader.model, &moved)?
            .iter()
            .zip(&target)
            .filter(|(e, &t)| argmin(e.as_slice()) == usize::from(t))
            .count();
        let share = hits as f64 / n.max(1) as f64;
        tracing::info!(
            "cross-class: {:.1}% of results are classified as their new class by {by}",
            100.0 * share
        );
        cross = Some(CrossClass {
            images: n,
            share,
            graded_by: by.into(),
        });
    }
    let report = RestoreReport { rows, cross };
    std::fs::write(
        out.join("restore.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(report)
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
