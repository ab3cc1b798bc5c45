//! `ebm-train images train`: Algorithm 1 on an image set, with progress,
//! periodic checkpoints and resume.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use ebm_core::{checkpoint, EnergyModel, ResNetEnergy, Trainer};
use indicatif::{ProgressBar, ProgressStyle};

use super::config::ImageConfig;
use super::dataset::ImageData;
use super::loaders::Split;
use super::validation::{accuracy, record, ValidationPoint};

/// Figures of a training run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainSummary {
    pub steps: u64,
    pub seconds: f64,
    /// Positive images per second (each also costs K Langevin steps on a negative).
    pub images_per_second: f64,
    pub parameters: usize,
    pub last_e_pos: f64,
    pub last_e_neg: f64,
}

/// Trains (or resumes, when `run_dir` already holds a checkpoint) up to
/// `cfg.steps` total steps.
pub fn train_images(
    cfg: &ImageConfig,
    base: &Path,
    run_dir: &Path,
    device: &Device,
) -> Result<TrainSummary> {
    let set = cfg
        .load(base, Split::Train)
        .context("loading training images")?;
    tracing::info!(images = set.len(), "training set loaded");
    let data = ImageData {
        set,
        conditional: cfg.data.conditional,
    };
    let cond_dim = if cfg.data.conditional { 10 } else { 0 };
    let mut trainer = if checkpoint::latest(run_dir)?.is_some() {
        let t = Trainer::<ResNetEnergy>::resume(run_dir, device).context("resuming")?;
        tracing::info!(step = t.step_count(), "resumed from {}", run_dir.display());
        t
    } else {
        Trainer::<ResNetEnergy>::new(
            cfg.model.clone(),
            cfg.trainer.clone(),
            data.set.image_len(),
            cond_dim,
            device,
        )?
    };
    let parameters: usize = trainer
        .params()
        .trainable()
        .iter()
        .map(|(_, v)| v.elem_count())
        .sum();
    let todo = cfg.steps.saturating_sub(trainer.step_count());
    let bar = ProgressBar::new(cfg.steps).with_position(trainer.step_count());
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} steps {elapsed_precise} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // The validation curve, where configured: training runs in chunks
    // between its points.
    let every = cfg.eval.validate_every;
    let validation = if cfg.data.conditional && cfg.data.validation > 0 && every > 0 {
        let set = cfg.load_validation(base)?;
        let labels = set.labels.clone();
        let v = ImageData {
            set,
            conditional: true,
        };
        Some((
            v.clean(&(0..labels.len()).collect::<Vec<_>>(), device)?,
            labels,
        ))
    } else {
        None
    };
    let t0 = Instant::now();
    let mut last = (0.0, 0.0);
    while trainer.step_count() < cfg.steps {
        let left = cfg.steps - trainer.step_count();
        let chunk = match validation {
            Some(_) => left.min(every - trainer.step_count() % every),
            None => left,
        };
        trainer.train(&data, chunk, Some(run_dir), |s| {
            bar.inc(1);
            last = (s.e_pos, s.e_neg);
            if s.step % 10 == 0 {
                bar.set_message(format!("E+ {:.4} E- {:.4}", s.e_pos, s.e_neg));
            }
            if s.step % 100 == 0 {
                tracing::info!(
                    step = s.step,
                    loss = s.loss,
                    e_pos = s.e_pos,
                    e_neg = s.e_neg,
                    label_ce = s.label_ce,
                    "image training"
                );
            }
        })?;
        if let Some((x, labels)) = &validation {
            let step = trainer.step_count();
            let acc = accuracy(&trainer.model().frozen(), x, labels)?;
            tracing::info!(step, accuracy = acc, "validation");
            record(
                run_dir,
                ValidationPoint {
                    step,
                    accuracy: acc,
                },
            )?;
        }
    }
    bar.finish();
    let seconds = t0.elapsed().as_secs_f64();
    Ok(TrainSummary {
        steps: todo,
        seconds,
        images_per_second: (todo as f64 * cfg.trainer.batch_size as f64) / seconds.max(1e-9),
        parameters,
        last_e_pos: last.0,
        last_e_neg: last.1,
    })
}
