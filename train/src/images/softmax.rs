//! `ebm-train images softmax`: the same conditional network trained as a
//! plain classifier, by cross-entropy alone on the logits `-E(x, y) / T`
//! (no Langevin negatives, no energy regulariser): the independent judge of
//! cross-class samples and the softmax baseline of the robustness study.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;
use ebm_core::checkpoint::{save_model, Manifest};
use ebm_core::training::adam::Adam;
use ebm_core::training::label_contrast::LabelContrast;
use ebm_core::{EnergyModel, ParamStore, PositiveSource, ResNetEnergy, Rng};

use super::config::ImageConfig;
use super::dataset::ImageData;
use super::loaders::Split;
use super::validation::accuracy;

/// Figures of a softmax run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SoftmaxSummary {
    pub steps: u64,
    pub seconds: f64,
    /// Accuracy on the held-out training images (`data.validation`), if any.
    pub validation_accuracy: Option<f64>,
}

/// Trains `steps` Adam steps of cross-entropy on `cfg`'s conditional
/// network (batch, Adam settings, seed and temperature from `cfg.trainer`)
/// and saves the model to `run` (`manifest.json`, `weights.safetensors`).
pub fn train_softmax(
    cfg: &ImageConfig,
    base: &Path,
    run: &Path,
    steps: u64,
    device: &Device,
) -> Result<SoftmaxSummary> {
    anyhow::ensure!(
        cfg.data.conditional,
        "a softmax classifier needs a conditional config (num_classes > 1)"
    );
    let data = ImageData {
        set: cfg
            .load(base, Split::Train)
            .context("loading training images")?,
        conditional: true,
    };
    let params = ParamStore::new(cfg.trainer.seed, device);
    let mut model = ResNetEnergy::init(&cfg.model, &params)?;
    let mut adam = Adam::new(cfg.trainer.adam.clone())?;
    let mut rng = Rng::derived(cfg.trainer.seed, "softmax");
    let t0 = std::time::Instant::now();
    for step in 1..=steps {
        let (x, c) = data.batch(cfg.trainer.batch_size, &mut rng, device)?;
        let c = c.context("conditional batches carry labels")?;
        model.power_iteration()?;
        let term = LabelContrast::new(&model.frozen(), &x, &c, cfg.trainer.label_temperature)?;
        let grads = term.surrogate(&model, 1.0)?.backward()?;
        adam.step(&params, &grads)?;
        model.refresh()?;
        if step % 100 == 0 {
            tracing::info!(
                step,
                cross_entropy = term.cross_entropy,
                batch_accuracy = term.accuracy,
                "softmax training"
            );
        }
    }
    let validation_accuracy = if cfg.data.validation > 0 {
        let set = cfg.load_validation(base)?;
        let labels = set.labels.clone();
        let v = ImageData {
            set,
            conditional: true,
        };
        let x = v.clean(&(0..labels.len()).collect::<Vec<_>>(), device)?;
        Some(accuracy(&model.frozen(), &x, &labels)?)
    } else {
        None
    };
    save_model(
        run,
        Manifest::new::<ResNetEnergy>(&cfg.model, steps)?,
        &params,
    )?;
    Ok(SoftmaxSummary {
        steps,
        seconds: t0.elapsed().as_secs_f64(),
        validation_accuracy,
    })
}
