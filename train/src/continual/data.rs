//! Digits for continual learning: images as rows of `[0, 1]` floats with
//! their labels, split into tasks by class.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};

use crate::images::loaders::{load_mnist, ImageSet, Split};

/// Images `[n, d]` in `[0, 1]` and their class labels.
#[derive(Debug, Clone)]
pub struct Digits {
    pub x: Vec<f32>,
    pub labels: Vec<u8>,
    pub dim: usize,
}

impl Digits {
    pub fn from_set(set: &ImageSet) -> Self {
        Self {
            x: set.pixels.iter().map(|&p| f32::from(p) / 255.0).collect(),
            labels: set.labels.clone(),
            dim: set.image_len(),
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The digits whose label is in `classes`.
    pub fn of_classes(&self, classes: &[u8]) -> Self {
        let keep: Vec<usize> = (0..self.len())
            .filter(|&i| classes.contains(&self.labels[i]))
            .collect();
        self.rows(&keep)
    }

    /// The rows `idx`, in that order.
    pub fn rows(&self, idx: &[usize]) -> Self {
        let d = self.dim;
        Self {
            x: idx
                .iter()
                .flat_map(|&i| self.x[i * d..(i + 1) * d].iter().copied())
                .collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            dim: d,
        }
    }

    pub fn tensor(&self, device: &Device) -> candle_core::Result<Tensor> {
        Tensor::from_vec(self.x.clone(), (self.len(), self.dim), device)
    }
}

/// The training digits (without the last `validation`) and the evaluation
/// digits: the held-out last `validation` training digits when
/// `on_validation`, else the test digits.
pub fn load_split_mnist(
    dir: &Path,
    validation: usize,
    on_validation: bool,
) -> Result<(Digits, Digits)> {
    let train = load_mnist(dir, Split::Train)
        .with_context(|| format!("loading MNIST training digits from {}", dir.display()))?;
    let n = train.len();
    anyhow::ensure!(
        validation < n,
        "validation {validation} of {n} training digits"
    );
    let fit = Digits::from_set(&train.clone().truncated(n - validation));
    let eval = if on_validation {
        anyhow::ensure!(
            validation > 0,
            "--split validation needs `validation` > 0 in the config"
        );
        Digits::from_set(&train.skipped(n - validation))
    } else {
        let test = load_mnist(dir, Split::Test)
            .with_context(|| format!("loading MNIST test digits from {}", dir.display()))?;
        Digits::from_set(&test)
    };
    Ok((fit, eval))
}
