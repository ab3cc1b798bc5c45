//! `ebm-train continual`: every method and seed through the task sequence,
//! accuracy measured after each task.

use std::path::Path;

use anyhow::Result;
use candle_core::Device;
use ebm_core::Rng;
use serde::{Deserialize, Serialize};

use super::config::ContinualConfig;
use super::data::{load_split_mnist, Digits};
use super::learner::{Learner, Method, MethodSettings};

/// Accuracy after one task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AfterTask {
    /// On the evaluation digits of every class seen so far, each classified
    /// among the classes seen so far.
    pub seen: f64,
    /// On every evaluation digit, classified among all classes.
    pub all: f64,
    /// On each task's digits so far (classified among all classes seen).
    pub per_task: Vec<f64>,
}

/// One method's runs, one per seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MethodRuns {
    pub method: Method,
    pub settings: MethodSettings,
    /// `runs[seed][task]`.
    pub runs: Vec<Vec<AfterTask>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContinualReport {
    pub tasks: Vec<Vec<u8>>,
    pub seeds: Vec<u64>,
    /// `validation` or `test`: the digits the accuracies are measured on.
    pub split: String,
    pub methods: Vec<MethodRuns>,
}

/// Trains every method of `cfg` with every seed on the task sequence;
/// `on_validation` measures on the held-out training digits.
pub fn run_continual(
    cfg: &ContinualConfig,
    base: &Path,
    on_validation: bool,
    device: &Device,
) -> Result<ContinualReport> {
    let (fit, eval) = load_split_mnist(&base.join(&cfg.data), cfg.validation, on_validation)?;
    let methods = cfg
        .methods
        .iter()
        .map(|settings| {
            let runs = cfg
                .seeds
                .iter()
                .map(|&seed| train_sequence(cfg, settings, seed, &fit, &eval, device))
                .collect::<Result<Vec<_>>>()?;
            Ok(MethodRuns {
                method: settings.method,
                settings: settings.clone(),
                runs,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ContinualReport {
        tasks: cfg.tasks.clone(),
        seeds: cfg.seeds.clone(),
        split: if on_validation { "validation" } else { "test" }.into(),
        methods,
    })
}

/// One learner through every task; accuracy after each.
pub fn train_sequence(
    cfg: &ContinualConfig,
    settings: &MethodSettings,
    seed: u64,
    fit: &Digits,
    eval: &Digits,
    device: &Device,
) -> Result<Vec<AfterTask>> {
    let classes = cfg.classes();
    let mut learner = Learner::new(
        settings,
        [fit.dim, classes],
        &cfg.hidden,
        cfg.activation,
        cfg.adam.clone(),
        seed,
        device,
    )?;
    let mut rng = Rng::derived(seed, "continual batches");
    let mut seen: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for (t, task) in cfg.tasks.iter().enumerate() {
        let data = fit.of_classes(task);
        anyhow::ensure!(
            !data.is_empty(),
            "task {t} ({task:?}) has no training digits"
        );
        for epoch in 0..settings.epochs {
            let mut order: Vec<usize> = (0..data.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            for idx in order.chunks(settings.batch_size) {
                let b = data.rows(idx);
                let loss = learner.step(&b.tensor(device)?, &b.labels, task, &seen)?;
                anyhow::ensure!(
                    loss.is_finite(),
                    "{} diverged in task {t}, epoch {epoch}",
                    settings.name()
                );
            }
        }
        seen.extend(task);
        out.push(measure(
            &learner,
            cfg,
            &seen,
            &cfg.tasks[..=t],
            eval,
            device,
        )?);
        tracing::info!(
            method = %settings.name(),
            seed,
            task = t,
            seen = out[t].seen,
            all = out[t].all,
            "task learned"
        );
    }
    Ok(out)
}

fn accuracy(learner: &Learner, digits: &Digits, among: &[u8], device: &Device) -> Result<f64> {
    if digits.is_empty() {
        return Ok(0.0);
    }
    let predicted = learner.predict(&digits.tensor(device)?, among)?;
    let hits = predicted
        .iter()
        .zip(&digits.labels)
        .filter(|(p, l)| p == l)
        .count();
    Ok(hits as f64 / digits.len() as f64)
}

fn measure(
    learner: &Learner,
    cfg: &ContinualConfig,
    seen: &[u8],
    tasks: &[Vec<u8>],
    eval: &Digits,
    device: &Device,
) -> Result<AfterTask> {
    let all: Vec<u8> = (0..cfg.classes() as u8).collect();
    Ok(AfterTask {
        seen: accuracy(learner, &eval.of_classes(seen), seen, device)?,
        all: accuracy(learner, eval, &all, device)?,
        per_task: tasks
            .iter()
            .map(|t| accuracy(learner, &eval.of_classes(t), seen, device))
            .collect::<Result<_>>()?,
    })
}
