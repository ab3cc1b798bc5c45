//! Replay of the learner's own dreams: inputs of the classes of earlier
//! tasks drawn by Langevin dynamics on the learner itself (no stored digit),
//! trained on beside each batch of the current task so the old classes keep
//! their place against the new ones. For the EBM the chain runs on
//! `E(x, y)`; for a classifier on `-logit_y`, the same thing for its logits.

use candle_core::{Result, Tensor, Var};
use ebm_core::{LangevinConfig, Rng};
use serde::{Deserialize, Serialize};

/// How the dreams are drawn.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DreamConfig {
    /// Dreamed inputs per training batch (labels drawn uniformly among the
    /// classes of earlier tasks).
    pub per_batch: usize,
    /// The chain, from uniform noise in `[0, 1]`.
    pub langevin: LangevinConfig,
    /// Run the chain on `-log p(y | x)` over the classes seen so far instead
    /// of the energy `E(x, y)`: inputs that are the label *rather than* the
    /// others, not only of low energy under it.
    #[serde(default)]
    pub posterior: bool,
}

impl DreamConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.per_batch > 0, "dreams.per_batch: at least one");
        self.langevin.validate()?;
        Ok(())
    }
}

/// `n` dreams `[n, dim]` of labels drawn from `old`, with their labels.
/// `logits(x, seen)` scores `x` under each class of `seen` (higher: more
/// that class); `old` must be part of `seen`.
pub fn dream(
    logits: impl Fn(&Tensor, &[u8]) -> Result<Tensor>,
    cfg: &DreamConfig,
    [n, dim]: [usize; 2],
    old: &[u8],
    seen: &[u8],
    rng: &mut Rng,
    device: &candle_core::Device,
) -> Result<(Tensor, Vec<u8>)> {
    let labels: Vec<u8> = (0..n).map(|_| old[rng.below(old.len())]).collect();
    let at: Vec<u32> = labels
        .iter()
        .map(|l| seen.iter().position(|c| c == l).map(|p| p as u32))
        .collect::<Option<_>>()
        .ok_or_else(|| candle_core::Error::Msg(format!("{old:?} not all in {seen:?}")))?;
    let at = Tensor::from_vec(at, (n, 1), device)?;
    let l = &cfg.langevin;
    let mut x = Tensor::from_vec(rng.uniform_vec(n * dim, 0.0, 1.0), (n, dim), device)?;
    for _ in 0..l.steps {
        let v = Var::from_tensor(&x)?;
        let mut scores = logits(v.as_tensor(), seen)?;
        if cfg.posterior {
            scores = candle_nn::ops::log_softmax(&scores, 1)?;
        }
        let energy = scores.gather(&at, 1)?.neg()?.sum_all()?;
        let grads = energy.backward()?;
        let mut g = grads.get(v.as_tensor()).cloned().unwrap_or(x.zeros_like()?);
        if let Some(c) = l.grad_clip {
            g = g.clamp(-c, c)?;
        }
        let noise = Tensor::from_vec(rng.normal_vec(n * dim), (n, dim), device)?;
        x = ((x - (g * l.step_size)?)? + (noise * l.noise_scale)?)?;
        if let Some([lo, hi]) = l.clamp {
            x = x.clamp(lo, hi)?;
        }
    }
    Ok((x.detach(), labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, D};

    /// A fixed linear classifier's dreams are of their label: drawn only
    /// from the old classes, and read back as their label among every class
    /// seen, where the uniform noise they start from is read as it about a
    /// third of the time.
    #[test]
    fn dreams_are_read_as_their_label() -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let dim = 16;
        let w = Tensor::from_vec(Rng::new(3).normal_vec(dim * 3), (dim, 3), &dev)?;
        let logits = |x: &Tensor, among: &[u8]| {
            let idx: Vec<u32> = among.iter().map(|&c| u32::from(c)).collect();
            let idx = Tensor::from_vec(idx, among.len(), &dev)?;
            x.matmul(&w.index_select(&idx, 1)?)
        };
        let agreement = |steps: usize| -> anyhow::Result<f64> {
            let cfg = DreamConfig {
                per_batch: 300,
                langevin: LangevinConfig {
                    steps,
                    step_size: 0.5,
                    noise_scale: 0.005,
                    grad_clip: None,
                    clamp: Some([0.0, 1.0]),
                    tolerance: None,
                },
                posterior: true,
            };
            let seen = [0, 1, 2];
            let (x, labels) = dream(
                logits,
                &cfg,
                [300, dim],
                &[0, 1],
                &seen,
                &mut Rng::new(5),
                &dev,
            )?;
            assert!(labels.iter().all(|l| *l < 2) && labels.contains(&0) && labels.contains(&1));
            let read: Vec<u32> = logits(&x, &seen)?.argmax(D::Minus1)?.to_vec1()?;
            let agree = read
                .iter()
                .zip(&labels)
                .filter(|(r, l)| **r == u32::from(**l))
                .count();
            Ok(agree as f64 / labels.len() as f64)
        };
        let (before, after) = (agreement(0)?, agreement(30)?);
        eprintln!("read as their label: noise {before}, dreams {after}");
        assert!(before < 0.6, "{before}");
        assert!(after > 0.95, "{after}");
        Ok(())
    }
}
