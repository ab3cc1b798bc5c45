//! Langevin dynamics over any (summed) energy, as in the official code:
//! add noise, take `grad_x E` at the noisy point, clip it elementwise, step,
//! clamp to a box. Step size and noise scale are separate constants (the
//! paper's single lambda was two; openai/ebm_code_release#2).
//!
//! `x <- clamp(x' - step * clip(grad E(x')))`, `x' = x + noise * N(0, I)`.

use std::time::Instant;

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::energy::{energy_and_grad, EnergyTerm};
use crate::error::CoreError;
use crate::rng::Rng;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LangevinConfig {
    /// Langevin steps K.
    pub steps: usize,
    /// Gradient step size.
    pub step_size: f64,
    /// Standard deviation of the Gaussian noise added each step.
    pub noise_scale: f64,
    /// Elementwise clip of the energy gradient to `[-c, c]`.
    #[serde(default)]
    pub grad_clip: Option<f64>,
    /// Clamp of every sample to `[lo, hi]` after each step.
    #[serde(default)]
    pub clamp: Option<[f64; 2]>,
}

impl LangevinConfig {
    pub fn validate(&self) -> std::result::Result<(), CoreError> {
        if !(self.step_size.is_finite() && self.step_size >= 0.0) {
            return Err(CoreError::config("langevin.step_size must be finite and >= 0"));
        }
        if !(self.noise_scale.is_finite() && self.noise_scale >= 0.0) {
            return Err(CoreError::config("langevin.noise_scale must be finite and >= 0"));
        }
        if matches!(self.grad_clip, Some(c) if !(c > 0.0)) {
            return Err(CoreError::config("langevin.grad_clip must be positive"));
        }
        if matches!(self.clamp, Some([lo, hi]) if !(lo < hi)) {
            return Err(CoreError::config("langevin.clamp must be [lo, hi] with lo < hi"));
        }
        Ok(())
    }
}

/// When to stop a chain early: the paper's adaptive computation time.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepBudget {
    /// Stop after this instant, keeping the steps taken so far.
    pub deadline: Option<Instant>,
}

/// The result of a chain: final samples, their energies and the steps run.
#[derive(Debug, Clone)]
pub struct Chain {
    pub x: Tensor,
    /// Summed energy `[B]` at the last gradient evaluation.
    pub energy: Option<Tensor>,
    pub steps_run: usize,
}

#[derive(Debug, Clone)]
pub struct LangevinSampler {
    cfg: LangevinConfig,
}

impl LangevinSampler {
    pub fn new(cfg: LangevinConfig) -> std::result::Result<Self, CoreError> {
        cfg.validate()?;
        Ok(Self { cfg })
    }

    pub fn config(&self) -> &LangevinConfig {
        &self.cfg
    }

    /// Runs `steps` steps from `x0` and returns the final samples.
    ///
    /// `free`, when given, has `x0`'s shape with 1 where entries may move and 0
    /// where they stay exactly at `x0` (inpainting, conditioning by clamping).
    pub fn sample(&self, terms: &[EnergyTerm], x0: &Tensor, free: Option<&Tensor>, rng: &mut Rng) -> Result<Tensor> {
        Ok(self.run(terms, x0, free, rng, StepBudget::default())?.x)
    }

    /// As [`LangevinSampler::sample`], stopping early at the budget's deadline.
    pub fn run(
        &self,
        terms: &[EnergyTerm],
        x0: &Tensor,
        free: Option<&Tensor>,
        rng: &mut Rng,
        budget: StepBudget,
    ) -> Result<Chain> {
        let c = &self.cfg;
        let keep = match free {
            Some(m) => {
                if m.shape() != x0.shape() {
                    candle_core::bail!("langevin mask has shape {:?}, samples {:?}", m.dims(), x0.dims());
                }
                Some(m.ne(0.0)?)
            }
            None => None,
        };
        let fixed = x0.detach();
        let mut x = fixed.clone();
        let mut energy = None;
        let mut steps_run = 0;
        for _ in 0..c.steps {
            if budget.deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let noisy = if c.noise_scale > 0.0 {
                let noise = Tensor::from_vec(rng.normal_vec(x.elem_count()), x.shape(), x.device())?;
                (&x + (noise * c.noise_scale)?)?
            } else {
                x.clone()
            };
            let (e, mut g) = energy_and_grad(terms, &noisy)?;
            if let Some(clip) = c.grad_clip {
                g = g.clamp(-clip, clip)?;
            }
            let mut next = (noisy - (g * c.step_size)?)?;
            if let Some([lo, hi]) = c.clamp {
                next = next.clamp(lo, hi)?;
            }
            x = match &keep {
                Some(k) => k.where_cond(&next, &fixed)?,
                None => next,
            };
            energy = Some(e);
            steps_run += 1;
        }
        Ok(Chain { x, energy, steps_run })
    }
}
