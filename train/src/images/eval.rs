//! Shared pieces of the image evaluation commands: loading trained models,
//! batched energies, Langevin restoration runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use ebm_core::{
    checkpoint, EnergyFunction, EnergyModel, EnergyTerm, LangevinConfig, LangevinSampler,
    ResNetEnergy, Rng,
};

use super::dataset::{ImageData, NUM_CLASSES};

/// A trained image energy, frozen for sampling.
pub struct TrainedImageModel {
    pub model: ResNetEnergy,
    pub conditional: bool,
    pub checkpoint: PathBuf,
    pub step: u64,
}

/// The latest checkpoint of a run directory (the newest intact earlier step if
/// that one is damaged), or a checkpoint directory itself.
pub fn load_latest(run: &Path, device: &Device) -> Result<TrainedImageModel> {
    let context = || format!("loading {}", run.display());
    let loaded = match checkpoint::load_latest(run, device).with_context(context)? {
        Some(loaded) => loaded,
        None => checkpoint::load(run, device).with_context(context)?,
    };
    trained_model(&loaded, device)
}

pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<TrainedImageModel> {
    let loaded =
        checkpoint::load(dir, device).with_context(|| format!("loading {}", dir.display()))?;
    trained_model(&loaded, device)
}

fn trained_model(loaded: &checkpoint::Loaded, device: &Device) -> Result<TrainedImageModel> {
    let (model, _) = loaded.model::<ResNetEnergy>(device)?;
    Ok(TrainedImageModel {
        conditional: model.config().num_classes > 1,
        model: model.frozen(),
        checkpoint: loaded.dir.clone(),
        step: loaded.manifest.step,
    })
}

/// Writes the weights of `run`'s latest checkpoint (or of the checkpoint
/// `run`) to `out` without the trainer state (optimiser moments, replay
/// buffer): the small export committed for evaluation without retraining.
///
/// With `ensemble > 1` the last `ensemble` step checkpoints are exported too,
/// weights only, as `<out>/step-*` folders, so that the historical ensemble
/// ([`load_history`]) samples from the export as from the run.
pub fn export_model(run: &Path, out: &Path, ensemble: usize, device: &Device) -> Result<u64> {
    let loaded = match checkpoint::load_latest(run, device)? {
        Some(l) => l,
        None => checkpoint::load(run, device)?,
    };
    save_weights(&loaded, out)?;
    if ensemble > 1 {
        let steps = checkpoint::list_steps(run)?;
        for dir in &steps[steps.len().saturating_sub(ensemble)..] {
            let member = checkpoint::load(dir, device)?;
            save_weights(&member, &checkpoint::step_dir(out, member.manifest.step))?;
        }
    }
    Ok(loaded.manifest.step)
}

/// A checkpoint's manifest and weights, without the trainer state.
fn save_weights(loaded: &checkpoint::Loaded, out: &Path) -> Result<()> {
    let mut manifest = loaded.manifest.clone();
    manifest.trainer = None;
    let mut files = std::collections::BTreeMap::new();
    files.insert(checkpoint::WEIGHTS.to_string(), loaded.weights()?.clone());
    checkpoint::save(out, manifest, &files)?;
    Ok(())
}

/// The last `n` step checkpoints of a run, oldest first (the historical ensemble).
pub fn load_history(run: &Path, n: usize, device: &Device) -> Result<Vec<TrainedImageModel>> {
    let steps = checkpoint::list_steps(run)?;
    let start = steps.len().saturating_sub(n);
    steps[start..]
        .iter()
        .map(|d| load_checkpoint(d, device))
        .collect()
}

/// Energies of `x: [N, D]` in batches of 250; `labels` one-hot when given.
pub fn energies(
    model: &dyn EnergyFunction,
    x: &Tensor,
    labels: Option<&Tensor>,
) -> Result<Vec<f64>> {
    let n = x.dim(0)?;
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    while start < n {
        let len = 250.min(n - start);
        let xb = x.narrow(0, start, len)?;
        let yb = match labels {
            Some(l) => Some(l.narrow(0, start, len)?),
            None => None,
        };
        out.extend(
            model
                .energy(&xb, yb.as_ref())?
                .to_vec1::<f32>()?
                .into_iter()
                .map(f64::from),
        );
        start += len;
    }
    Ok(out)
}

/// Energy of each image under each class: `[N][10]`.
pub fn class_energies(model: &dyn EnergyFunction, x: &Tensor) -> Result<Vec<[f64; NUM_CLASSES]>> {
    let n = x.dim(0)?;
    let mut out = vec![[0.0; NUM_CLASSES]; n];
    for class in 0..NUM_CLASSES {
        let labels = ImageData::one_hot(&vec![class as u8; n], x.device())?;
        for (row, e) in out.iter_mut().zip(energies(model, x, Some(&labels))?) {
            row[class] = e;
        }
    }
    Ok(out)
}

/// The OOD score used throughout: `-E(x)`, or `-min_y E(x, y)` for a
/// class-conditional model (higher = more in-distribution).
pub fn in_distribution_score(m: &TrainedImageModel, x: &Tensor) -> Result<Vec<f64>> {
    if m.conditional {
        Ok(class_energies(&m.model, x)?
            .into_iter()
            .map(|row| -row.iter().copied().fold(f64::INFINITY, f64::min))
            .collect())
    } else {
        Ok(energies(&m.model, x, None)?
            .into_iter()
            .map(|e| -e)
            .collect())
    }
}

/// `rounds` chained Langevin calls of `cfg.steps` each from `x0`, moving only
/// `free` entries when given, under `labels` for conditional models.
pub fn langevin_rounds(
    model: &dyn EnergyFunction,
    cfg: &LangevinConfig,
    rounds: usize,
    x0: &Tensor,
    labels: Option<&Tensor>,
    free: Option<&Tensor>,
    rng: &mut Rng,
) -> Result<Tensor> {
    let sampler = LangevinSampler::new(cfg.clone())?;
    let terms = [EnergyTerm::new(model, labels.cloned())];
    let mut x = x0.clone();
    for _ in 0..rounds.max(1) {
        x = sampler.sample(&terms, &x, free, rng)?;
    }
    Ok(x)
}

/// Mean squared error per image, averaged, between `a` and `b` (`[N, D]`),
/// over the entries where `region` is 1 (all entries when `None`).
pub fn mse(a: &Tensor, b: &Tensor, region: Option<&Tensor>) -> Result<f64> {
    let d2 = (a - b)?.sqr()?;
    let v = match region {
        Some(r) => {
            (d2 * r)?.sum_all()?.to_scalar::<f32>()? / r.sum_all()?.to_scalar::<f32>()?.max(1.0)
        }
        None => d2.mean_all()?.to_scalar::<f32>()?,
    };
    Ok(f64::from(v))
}
