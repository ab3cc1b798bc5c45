//! `ebm-train images sample`: grids of Langevin samples from uniform noise,
//! per class for conditional models, optionally from the historical ensemble
//! of the last checkpoints (each step uses the next checkpoint in turn, as the
//! official `test_inception.py --ensemble`).

use std::path::{Path, PathBuf};

use anyhow::Result;
use candle_core::{Device, Tensor};
use ebm_core::{EnergyTerm, LangevinConfig, LangevinSampler, Rng};

use super::config::ImageConfig;
use super::dataset::{ImageData, NUM_CLASSES};
use super::eval::{load_history, load_latest, TrainedImageModel};
use super::grid::image_grid;

const PER_ROW: usize = 10;

/// Writes `samples.png` (or `samples_ensemble.png`): 10 x 10 samples, one
/// class per row for conditional models.
pub fn sample_grid(
    cfg: &ImageConfig,
    run: &Path,
    out: &Path,
    ensemble: usize,
    device: &Device,
) -> Result<PathBuf> {
    let models: Vec<TrainedImageModel> = if ensemble > 1 {
        load_history(run, ensemble, device)?
    } else {
        vec![load_latest(run, device)?]
    };
    let n = PER_ROW * PER_ROW;
    let d = cfg.model.in_channels * cfg.model.image_size * cfg.model.image_size;
    let labels = if models[0].conditional {
        let l: Vec<u8> = (0..n).map(|i| (i / PER_ROW % NUM_CLASSES) as u8).collect();
        Some(ImageData::one_hot(&l, device)?)
    } else {
        None
    };
    let mut rng = Rng::derived(cfg.trainer.seed, "image-samples");
    let mut x = Tensor::from_vec(rng.uniform_vec(n * d, 0.0, 1.0), (n, d), device)?;
    let one_step = LangevinSampler::new(LangevinConfig {
        steps: 1,
        ..cfg.eval.langevin.clone()
    })?;
    let total = cfg.eval.langevin.steps * cfg.eval.sample_rounds.max(1);
    for step in 0..total {
        let m = &models[step % models.len()];
        let terms = [EnergyTerm::new(&m.model, labels.clone())];
        x = one_step.sample(&terms, &x, None, &mut rng)?;
    }
    let values: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let s = cfg.model.image_size;
    let name = if models.len() > 1 {
        "samples_ensemble.png"
    } else {
        "samples.png"
    };
    let path = out.join(name);
    image_grid(&values, n, cfg.model.in_channels, s, s, PER_ROW, 3).save_png(&path)?;
    tracing::info!(
        checkpoints = models.len(),
        steps = total,
        "wrote {}",
        path.display()
    );
    Ok(path)
}
