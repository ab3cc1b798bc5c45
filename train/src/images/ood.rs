//! `ebm-train images ood` and `classify`: out-of-distribution detection by
//! energy (the paper's Figures 10 and 11) and classification by the lowest
//! class-conditional energy.

use std::path::Path;

use anyhow::Result;
use candle_core::{Device, Tensor};
use ebm_core::stats::metrics::auroc;
use ebm_core::Rng;
use serde::Serialize;

use super::config::ImageConfig;
use super::dataset::ImageData;
use super::eval::{in_distribution_score, load_latest};
use super::loaders::{load_idx_images, Split};
use super::validation::accuracy;
use crate::plot::{histogram_chart, Axes, Histogram, BLUE, GREEN, ORANGE, RED};
use plotters::prelude::RGBColor;

#[derive(Debug, Clone, Serialize)]
pub struct OodRow {
    pub ood_set: String,
    pub images: usize,
    /// AUROC of the score (-E, or -min_y E) separating test digits from this set.
    pub auroc: f64,
}

/// Builds the OOD sets from `test: [N, D]` in [0, 1]: uniform noise, constant
/// images, mid-point interpolations of two test digits, inverted digits.
pub fn ood_sets(test: &Tensor, rng: &mut Rng) -> Result<Vec<(String, Tensor)>> {
    let (n, d) = test.dims2()?;
    let dev = test.device();
    let noise = Tensor::from_vec(rng.uniform_vec(n * d, 0.0, 1.0), (n, d), dev)?;
    let levels = Tensor::from_vec(rng.uniform_vec(n, 0.0, 1.0), (n, 1), dev)?;
    let constant = levels.repeat((1, d))?;
    let partner: Vec<u32> = (0..n)
        .map(|i| ((i + 1 + rng.below(n.max(2) - 1)) % n) as u32)
        .collect();
    let other = test.index_select(&Tensor::from_vec(partner, n, dev)?, 0)?;
    let interp = ((test + other)? * 0.5)?;
    let inverted = (1.0 - test)?;
    Ok(vec![
        ("uniform noise".into(), noise),
        ("constant images".into(), constant),
        ("interpolations of two digits".into(), interp),
        ("inverted digits".into(), inverted),
    ])
}

/// AUROC per OOD set and a histogram of energies (train, test, OOD sets;
/// `energy_histogram.svg`).
pub fn ood(
    cfg: &ImageConfig,
    base: &Path,
    run: &Path,
    out: &Path,
    device: &Device,
) -> Result<Vec<OodRow>> {
    let m = load_latest(run, device)?;
    let n = cfg.eval.test_images;
    let test = cfg.load(base, Split::Test)?.truncated(n);
    let train = cfg.load(base, Split::Train)?.truncated(test.len());
    let clean = |set| -> Result<Tensor> {
        let d = ImageData {
            set,
            conditional: false,
        };
        Ok(d.clean(&(0..d.set.len()).collect::<Vec<_>>(), device)?)
    };
    let (test, train) = (clean(test)?, clean(train)?);
    let mut rng = Rng::derived(cfg.trainer.seed, "ood");
    let s_test = in_distribution_score(&m, &test)?;
    let s_train = in_distribution_score(&m, &train)?;
    let mut rows = Vec::new();
    let mut hist: Vec<(String, Vec<f64>, RGBColor)> = vec![
        (
            "training digits".into(),
            s_train.iter().map(|s| -s).collect(),
            BLUE,
        ),
        (
            "test digits".into(),
            s_test.iter().map(|s| -s).collect(),
            GREEN,
        ),
    ];
    let colours = [
        RED,
        ORANGE,
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(127, 127, 127),
    ];
    let mut sets = ood_sets(&test, &mut rng)?;
    if let Some(p) = &cfg.eval.ood_photos {
        let photos = load_idx_images(&base.join(p))?.truncated(test.dim(0)?);
        let want = (cfg.model.in_channels, cfg.model.image_size);
        anyhow::ensure!(
            (1, photos.height, photos.width) == (want.0, want.1, want.1),
            "{}: {}x{} grey images, the model takes {}x{s}x{s}",
            p.display(),
            photos.height,
            photos.width,
            want.0,
            s = want.1
        );
        sets.push(("photograph crops (real)".into(), clean(photos)?));
    }
    for ((name, set), colour) in sets.into_iter().zip(colours) {
        let s = in_distribution_score(&m, &set)?;
        hist.push((name.clone(), s.iter().map(|v| -v).collect(), colour));
        rows.push(OodRow {
            ood_set: name,
            images: s.len(),
            auroc: auroc(&s_test, &s).unwrap_or(f64::NAN),
        });
    }
    let series: Vec<Histogram> = hist
        .iter()
        .map(|(name, values, color)| Histogram {
            name,
            color: *color,
            values,
        })
        .collect();
    let axes = Axes {
        title: "Energies of training, test and out-of-distribution images",
        x: "energy: E(x), or min over classes of E(x, y) (lower: more like training)",
        y: "share of the set's images per bin",
    };
    histogram_chart(&out.join("energy_histogram.svg"), &series, 60, &axes)?;
    std::fs::write(out.join("ood.json"), serde_json::to_vec_pretty(&rows)?)?;
    Ok(rows)
}

/// Test accuracy of `argmin_y E(x, y)` (conditional models only).
pub fn classify(
    cfg: &ImageConfig,
    base: &Path,
    run: &Path,
    device: &Device,
) -> Result<(usize, f64)> {
    let m = load_latest(run, device)?;
    anyhow::ensure!(
        m.conditional,
        "classification needs a class-conditional model (num_classes > 1)"
    );
    let test = cfg.load(base, Split::Test)?.truncated(cfg.eval.test_images);
    let labels = test.labels.clone();
    let d = ImageData {
        set: test,
        conditional: true,
    };
    let x = d.clean(&(0..labels.len()).collect::<Vec<_>>(), device)?;
    Ok((labels.len(), accuracy(&m.model, &x, &labels)?))
}
