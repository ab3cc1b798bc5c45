//! The continual-learning config (`configs/continual_mnist.toml`).

use std::path::{Path, PathBuf};

use anyhow::{ensure, Result};
use ebm_core::training::adam::AdamConfig;
use ebm_core::Activation;
use serde::{Deserialize, Serialize};

use super::learner::MethodSettings;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContinualConfig {
    /// MNIST IDX folder, relative to the config's folder.
    pub data: PathBuf,
    /// The tasks in order, each a set of classes (disjoint).
    pub tasks: Vec<Vec<u8>>,
    /// The last `validation` training digits are held out: settings are
    /// chosen on them (`--split validation`), never on the test digits.
    #[serde(default)]
    pub validation: usize,
    /// Hidden layer widths (the paper: two of 400).
    pub hidden: Vec<usize>,
    /// The hidden layers' activation.
    pub activation: Activation,
    /// Adam's settings but the learning rate (each method's own).
    pub adam: AdamConfig,
    /// The learners compared, each with its settings.
    pub methods: Vec<MethodSettings>,
    /// Seeds of the repeated runs (initialisation and batch order).
    pub seeds: Vec<u64>,
}

impl ContinualConfig {
    /// Reads and checks a config; returns it with the folder its paths are
    /// relative to.
    pub fn load(path: &Path) -> Result<(Self, PathBuf)> {
        let cfg = crate::config_file::load_toml(path, Self::validate)?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok((cfg, base))
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(!self.tasks.is_empty(), "tasks: at least one task");
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.tasks {
            ensure!(
                t.len() >= 2,
                "tasks: each task needs two classes or more, got {t:?}"
            );
            for &c in t {
                ensure!(seen.insert(c), "tasks: class {c} appears twice");
            }
        }
        ensure!(
            !self.hidden.is_empty() && self.hidden.iter().all(|&h| h > 0),
            "hidden: positive widths"
        );
        ensure!(!self.methods.is_empty(), "methods: at least one");
        for m in &self.methods {
            ensure!(
                m.epochs > 0 && m.batch_size > 0 && m.lr > 0.0 && m.alpha >= 0.0,
                "methods: {:?} needs positive epochs, batch_size and lr, and alpha >= 0",
                m.method
            );
            if let Some(d) = &m.dreams {
                d.validate()?;
            }
            if let Some(r) = &m.replay {
                ensure!(
                    m.langevin.is_some(),
                    "methods: {:?}: a replay buffer needs langevin negatives",
                    m.method
                );
                r.validate()?;
            }
        }
        ensure!(!self.seeds.is_empty(), "seeds: at least one");
        self.adam.validate()?;
        Ok(())
    }

    /// The number of classes: one more than the largest in any task.
    pub fn classes(&self) -> usize {
        self.tasks
            .iter()
            .flatten()
            .map(|&c| usize::from(c) + 1)
            .max()
            .unwrap_or(0)
    }
}
