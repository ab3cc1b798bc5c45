//! Langevin dynamics over any (summed) energy, as in the official code:
//! add noise, take `grad_x E` at the noisy point, clip it elementwise, step,
//! clamp to a box. Step size and noise scale are separate constants (the
//! paper's single lambda was two; openai/ebm_code_release#2).
//!
//! `x <- clamp(x' - step * clip(grad E(x')))`, `x' = x + noise * N(0, I)`.

use std::time::Instant;

use candle_core::{Result, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::energy::{energy_and_grad, EnergyTerm};
use crate::error::CoreError;
use crate::Rng;

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
    /// Adaptive steps: a chain stops once no sample's energy changed by
    /// more than this between two consecutive steps (at most `steps`
    /// steps, at least two). `None` runs every step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
}

impl LangevinConfig {
    pub fn validate(&self) -> std::result::Result<(), CoreError> {
        if !(self.step_size.is_finite() && self.step_size >= 0.0) {
            return Err(CoreError::config(
                "langevin.step_size must be finite and >= 0",
            ));
        }
        if !(self.noise_scale.is_finite() && self.noise_scale >= 0.0) {
            return Err(CoreError::config(
                "langevin.noise_scale must be finite and >= 0",
            ));
        }
        if matches!(self.grad_clip, Some(c) if !(c > 0.0)) {
            return Err(CoreError::config("langevin.grad_clip must be positive"));
        }
        if matches!(self.tolerance, Some(t) if !(t.is_finite() && t >= 0.0)) {
            return Err(CoreError::config(
                "langevin.tolerance must be finite and >= 0",
            ));
        }
        if matches!(self.clamp, Some([lo, hi]) if !(lo < hi)) {
            return Err(CoreError::config(
                "langevin.clamp must be [lo, hi] with lo < hi",
            ));
        }
        Ok(())
    }
}

/// Whether a chain's energies `e` have settled within `tolerance` of the
/// previous step's (`prev`, then replaced by `e`); never on the first step.
pub(crate) fn settled(tolerance: Option<f64>, prev: &mut Vec<f32>, e: &[f32]) -> bool {
    let Some(tol) = tolerance else { return false };
    let done = prev.len() == e.len()
        && prev
            .iter()
            .zip(e)
            .all(|(p, q)| f64::from((q - p).abs()) <= tol);
    prev.clear();
    prev.extend_from_slice(e);
    done
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
    pub fn sample(
        &self,
        terms: &[EnergyTerm],
        x0: &Tensor,
        free: Option<&Tensor>,
        rng: &mut Rng,
    ) -> Result<Tensor> {
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
                    candle_core::bail!(
                        "langevin mask has shape {:?}, samples {:?}",
                        m.dims(),
                        x0.dims()
                    );
                }
                Some(m.ne(0.0)?)
            }
            None => None,
        };
        // Noise only on the free entries, as the official code masks noise
        // and gradient alike: the energy sees the fixed ones exactly.
        let free_noise = match &keep {
            Some(k) => Some(k.to_dtype(x0.dtype())?),
            None => None,
        };
        if keep.is_none() && terms.len() == 1 {
            if let Some(chain) = self.run_fused(&terms[0], x0, rng, budget)? {
                return Ok(chain);
            }
        }
        let fixed = x0.detach();
        let mut x = fixed.clone();
        let mut energy = None;
        let mut steps_run = 0;
        let mut prev = Vec::new();
        for _ in 0..c.steps {
            if budget.deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let noisy = if c.noise_scale > 0.0 {
                let mut noise =
                    Tensor::from_vec(rng.normal_vec(x.elem_count()), x.shape(), x.device())?;
                if let Some(f) = &free_noise {
                    noise = (noise * f)?;
                }
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
            let stop = c.tolerance.is_some()
                && settled(
                    c.tolerance,
                    &mut prev,
                    &e.to_dtype(candle_core::DType::F32)?.to_vec1()?,
                );
            energy = Some(e);
            steps_run += 1;
            if stop {
                break;
            }
        }
        Ok(Chain {
            x,
            energy,
            steps_run,
        })
    }
}

thread_local! {
    /// The fused chains' noise, drawn up front (see `run_fused`).
    static NOISE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl LangevinSampler {
    /// The chain of [`LangevinSampler::run`] on plain buffers, for one term
    /// with a fused CPU form (same arithmetic, same random stream); `None`
    /// when the term or the shapes do not qualify.
    fn run_fused(
        &self,
        term: &EnergyTerm,
        x0: &Tensor,
        rng: &mut Rng,
        budget: StepBudget,
    ) -> Result<Option<Chain>> {
        let Some(f) = term.energy.fused() else {
            return Ok(None);
        };
        let (d, cond) = (f.state_dim(), term.cond.as_ref());
        if x0.rank() != 2 || !crate::models::fused::inputs_ok(x0, cond, d, f.cond_dim()) {
            return Ok(None);
        }
        let (n, mut x, cond) = crate::models::fused::host_rows(x0, cond)?;
        let c = &self.cfg;
        let w = term.weight as f32;
        let noise = c.noise_scale as f32;
        let mut e = vec![0.0f32; n];
        let threads = rayon::current_num_threads();
        if budget.deadline.is_none() && threads > 1 && n > f.rows_per_task() {
            // Rows are independent: each thread runs the whole chain for its
            // rows, with the noise drawn up front in the per-step order.
            let chunk = f.rows_per_task().max(n.div_ceil(threads));
            let cond = cond.as_deref();
            let steps_run = NOISE.with(|buf| {
                // Reused across calls: a fresh buffer this size is fresh
                // pages from the kernel on every training step.
                let mut z = buf.borrow_mut();
                z.clear();
                if c.noise_scale > 0.0 {
                    z.resize(c.steps * n * d, 0.0);
                }
                for step_noise in z.chunks_mut(n * d) {
                    rng.fill_normal(step_noise);
                }
                let z = &z[..];
                x.par_chunks_mut(chunk * d)
                    .zip(e.par_chunks_mut(chunk))
                    .enumerate()
                    .map(|(i, (x, e))| {
                        let rows = i * chunk..i * chunk + e.len();
                        let cond =
                            cond.map(|cv| &cv[rows.start * f.cond_dim()..rows.end * f.cond_dim()]);
                        let mut g = vec![0f32; x.len()];
                        // The conditioning's share of the first layer,
                        // fixed for the whole chain.
                        let mut pre = Vec::new();
                        f.cond_preactivation(cond, e.len(), &mut pre);
                        let mut prev = Vec::new();
                        let mut ran = 0;
                        for s in 0..c.steps {
                            if c.noise_scale > 0.0 {
                                let zs = &z[s * n * d + rows.start * d..s * n * d + rows.end * d];
                                for (v, z) in x.iter_mut().zip(zs) {
                                    *v += z * noise;
                                }
                            }
                            f.energy_and_grad_pre(x, &pre, e, &mut g);
                            self.descend(x, &g, w);
                            ran += 1;
                            if settled(c.tolerance, &mut prev, e) {
                                break;
                            }
                        }
                        ran
                    })
                    .max()
                    .unwrap_or(0)
            });
            return Ok(Some(self.chain(x, &e, w, steps_run, n, d, x0.device())?));
        }
        let mut g = vec![0.0f32; n * d];
        let mut steps_run = 0;
        let mut prev = Vec::new();
        for _ in 0..c.steps {
            if budget.deadline.is_some_and(|t| Instant::now() >= t) {
                break;
            }
            if c.noise_scale > 0.0 {
                for (v, z) in x.iter_mut().zip(rng.normal_vec(n * d)) {
                    *v += z * noise;
                }
            }
            f.energy_and_grad(&x, cond.as_deref(), &mut e, &mut g);
            self.descend(&mut x, &g, w);
            steps_run += 1;
            if settled(c.tolerance, &mut prev, &e) {
                break;
            }
        }
        Ok(Some(self.chain(x, &e, w, steps_run, n, d, x0.device())?))
    }

    /// One step down the weighted gradient `w g`: clip, step, clamp.
    pub(crate) fn descend(&self, x: &mut [f32], g: &[f32], w: f32) {
        let c = &self.cfg;
        let step = c.step_size as f32;
        let clip = c.grad_clip.map(|v| v as f32);
        for (v, &gv) in x.iter_mut().zip(g) {
            let mut gv = gv * w;
            if let Some(cl) = clip {
                gv = gv.clamp(-cl, cl);
            }
            *v -= step * gv;
            if let Some([lo, hi]) = c.clamp {
                *v = v.clamp(lo as f32, hi as f32);
            }
        }
    }

    /// The chain's result from plain buffers (energies weighted by `w`).
    #[allow(clippy::too_many_arguments)]
    fn chain(
        &self,
        x: Vec<f32>,
        e: &[f32],
        w: f32,
        steps_run: usize,
        n: usize,
        d: usize,
        device: &candle_core::Device,
    ) -> Result<Chain> {
        let energy = if steps_run > 0 {
            Some(Tensor::from_vec(
                e.iter().map(|v| v * w).collect::<Vec<_>>(),
                n,
                device,
            )?)
        } else {
            None
        };
        Ok(Chain {
            x: Tensor::from_vec(x, (n, d), device)?,
            energy,
            steps_run,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::EnergyFunction;
    use candle_core::{DType, Device};

    /// `E(x) = ||x - mu||^2 / (2 s2)`.
    struct Quadratic {
        mu: Tensor,
        s2: f64,
    }

    impl EnergyFunction for Quadratic {
        fn energy(&self, x: &Tensor, _cond: Option<&Tensor>) -> Result<Tensor> {
            x.broadcast_sub(&self.mu)?.sqr()?.sum(1)? / (2.0 * self.s2)
        }
    }

    fn moments(x: &Tensor) -> Result<(Vec<f64>, Vec<f64>)> {
        let rows: Vec<Vec<f32>> = x.to_vec2()?;
        let n = rows.len() as f64;
        let d = rows[0].len();
        let mean: Vec<f64> = (0..d)
            .map(|j| rows.iter().map(|r| f64::from(r[j])).sum::<f64>() / n)
            .collect();
        let var = (0..d)
            .map(|j| {
                rows.iter()
                    .map(|r| (f64::from(r[j]) - mean[j]).powi(2))
                    .sum::<f64>()
                    / n
            })
            .collect();
        Ok((mean, var))
    }

    #[test]
    fn quadratic_energy_gives_the_predicted_gaussian() -> Result<()> {
        let dev = Device::Cpu;
        let (step, noise, s2) = (0.01, 0.1, 1.0);
        let e = Quadratic {
            mu: Tensor::new(&[1.5f32, -0.5], &dev)?,
            s2,
        };
        let sampler = LangevinSampler::new(LangevinConfig {
            steps: 600,
            step_size: step,
            noise_scale: noise,
            grad_clip: None,
            clamp: None,
            tolerance: None,
        })
        .expect("valid config");
        let n = 8000;
        let x0 = Tensor::zeros((n, 2), candle_core::DType::F32, &dev)?;
        let terms = [EnergyTerm::new(&e, None)];
        let x = sampler.sample(&terms, &x0, None, &mut Rng::new(1))?;
        let (mean, var) = moments(&x)?;
        // Noise, then a gradient step at the noisy point: x' = mu + a (x + n z - mu),
        // a = 1 - step / s2, so the stationary variance is a^2 n^2 / (1 - a^2).
        let a: f64 = 1.0 - step / s2;
        let want_var = a * a * noise * noise / (1.0 - a * a);
        for (j, want_mean) in [1.5, -0.5].into_iter().enumerate() {
            assert!((mean[j] - want_mean).abs() < 0.03, "mean {mean:?}");
            assert!(
                (var[j] / want_var - 1.0).abs() < 0.05,
                "var {var:?}, want {want_var}"
            );
        }
        Ok(())
    }

    #[test]
    fn masked_entries_never_move_and_clamp_holds() -> Result<()> {
        let dev = Device::Cpu;
        let e = Quadratic {
            mu: Tensor::new(&[5f32, 5.0, 5.0], &dev)?,
            s2: 0.1,
        };
        let sampler = LangevinSampler::new(LangevinConfig {
            steps: 50,
            step_size: 0.1,
            noise_scale: 0.01,
            grad_clip: Some(1.0),
            clamp: Some([0.0, 1.0]),
            tolerance: None,
        })
        .expect("valid config");
        let x0 = Tensor::new(&[[0.2f32, 0.3, 0.4], [0.9, 0.1, 0.5]], &dev)?;
        let free = Tensor::new(&[[1f32, 0.0, 1.0], [0.0, 1.0, 0.0]], &dev)?;
        let x: Vec<Vec<f32>> = sampler
            .sample(
                &[EnergyTerm::new(&e, None)],
                &x0,
                Some(&free),
                &mut Rng::new(2),
            )?
            .to_vec2()?;
        assert_eq!((x[0][1], x[1][0], x[1][2]), (0.3, 0.9, 0.5));
        // Free entries move 0.1 per step (clipped gradient) towards mu = 5 and
        // are clamped at 1.
        assert_eq!((x[0][0], x[0][2], x[1][1]), (1.0, 1.0, 1.0));
        Ok(())
    }

    /// `E = (x_0 - x_1)^2 / 2`.
    struct Coupled;

    impl EnergyFunction for Coupled {
        fn energy(&self, x: &Tensor, _cond: Option<&Tensor>) -> Result<Tensor> {
            (x.narrow(1, 0, 1)? - x.narrow(1, 1, 1)?)?
                .sqr()?
                .squeeze(1)?
                / 2.0
        }
    }

    /// The noise of masked chains falls on the free entries only: with
    /// `x_0` fixed at 0 and `x_1` free on `E = (x_0 - x_1)^2 / 2`, a step
    /// of 0.5 makes `x_1 <- 0.5 (x_1 + n_1) + 0.5 (x_0 + n_0)`, whose
    /// stationary variance is `sigma^2 / 3` when `n_0 = 0` (masked) and
    /// `2 sigma^2 / 3` when the fixed entry is noised too.
    #[test]
    fn masked_chains_put_no_noise_on_the_fixed_entries() -> Result<()> {
        let dev = Device::Cpu;
        let sigma = 0.1;
        let sampler = LangevinSampler::new(LangevinConfig {
            steps: 100,
            step_size: 0.5,
            noise_scale: sigma,
            grad_clip: None,
            clamp: None,
            tolerance: None,
        })
        .expect("valid config");
        let n = 4000;
        let x0 = Tensor::zeros((n, 2), DType::F32, &dev)?;
        let free = Tensor::from_vec([0f32, 1.0].repeat(n), (n, 2), &dev)?;
        let x = sampler.sample(
            &[EnergyTerm::new(&Coupled, None)],
            &x0,
            Some(&free),
            &mut Rng::new(5),
        )?;
        let (mean, var) = moments(&x)?;
        assert_eq!((mean[0], var[0]), (0.0, 0.0));
        let want = sigma * sigma / 3.0;
        assert!(
            (var[1] - want).abs() < 0.1 * want,
            "variance {} against {want}",
            var[1]
        );
        Ok(())
    }

    /// `x <- x / 2` on `E = x^2 / 2` from 2: energies 2, 0.5, 0.125,
    /// 0.031, 0.0078, 0.0020, ...; with tolerance 0.01 the chain settles at
    /// the sixth evaluation (change 0.0059), never later than configured.
    #[test]
    fn adaptive_chains_stop_once_settled_and_never_exceed_the_steps() -> Result<()> {
        let dev = Device::Cpu;
        let e = Quadratic {
            mu: Tensor::new(&[0f32], &dev)?,
            s2: 1.0,
        };
        let run = |tolerance: Option<f64>, steps: usize| -> Result<usize> {
            let sampler = LangevinSampler::new(LangevinConfig {
                steps,
                step_size: 0.5,
                noise_scale: 0.0,
                grad_clip: None,
                clamp: None,
                tolerance,
            })
            .expect("valid config");
            let x0 = Tensor::new(&[[2f32]], &dev)?;
            let terms = [EnergyTerm::new(&e, None)];
            let chain = sampler.run(&terms, &x0, None, &mut Rng::new(0), StepBudget::default())?;
            Ok(chain.steps_run)
        };
        assert_eq!(run(None, 10)?, 10);
        assert_eq!(run(Some(0.01), 10)?, 6);
        assert_eq!(run(Some(0.01), 4)?, 4, "never more than configured");
        assert_eq!(run(Some(1e9), 10)?, 2, "at least two steps");
        assert!(LangevinSampler::new(LangevinConfig {
            steps: 1,
            step_size: 0.1,
            noise_scale: 0.0,
            grad_clip: None,
            clamp: None,
            tolerance: Some(f64::NAN),
        })
        .is_err());
        Ok(())
    }

    #[test]
    fn a_past_deadline_runs_no_step() -> Result<()> {
        let dev = Device::Cpu;
        let e = Quadratic {
            mu: Tensor::new(&[0f32], &dev)?,
            s2: 1.0,
        };
        let sampler = LangevinSampler::new(LangevinConfig {
            steps: 10,
            step_size: 0.1,
            noise_scale: 0.0,
            grad_clip: None,
            clamp: None,
            tolerance: None,
        })
        .expect("valid config");
        let x0 = Tensor::new(&[[2f32]], &dev)?;
        let budget = StepBudget {
            deadline: Some(Instant::now()),
        };
        let chain = sampler.run(
            &[EnergyTerm::new(&e, None)],
            &x0,
            None,
            &mut Rng::new(3),
            budget,
        )?;
        assert_eq!(chain.steps_run, 0);
        let full = sampler.run(
            &[EnergyTerm::new(&e, None)],
            &x0,
            None,
            &mut Rng::new(3),
            StepBudget::default(),
        )?;
        assert_eq!(full.steps_run, 10);
        // Deterministic gradient descent: x = 2 * 0.9^10.
        let v = full.x.to_vec2::<f32>()?[0][0];
        assert!((f64::from(v) - 2.0 * 0.9f64.powi(10)).abs() < 1e-5, "{v}");
        Ok(())
    }
}
