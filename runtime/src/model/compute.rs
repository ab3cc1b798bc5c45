//! The three computations the daemon serves, batched over robots, in wire
//! units in and out (the [`RobotModel`] converts on the way in and out):
//!
//! - **forecast**: a multistep Langevin rollout (`ebm_core::rollout`) of P
//!   particles over H steps; future actions of a conditional model are held
//!   at the last known action;
//! - **transition scores**: `E(s_t | s_{t-k..t-1} [, a_{t-1}])` of an
//!   observed transition and its Stein features (for OOD scores);
//! - **denoised state**: Langevin on `w E(x | prior [, a]) + |x - obs|^2 / (2 sigma^2)`,
//!   the dynamics energy from the previous denoised state composed with a
//!   Gaussian observation term (the paper's compositionality, used as a filter).

use std::time::Instant;

use candle_core::{Result, Tensor};
use ebm_core::energy::{energy_and_grad, EnergyFunction, EnergyTerm};
use ebm_core::rollout::{rollout_from, RolloutConfig, Starts, WarmSteps};
use ebm_core::sampling::langevin::{LangevinSampler, StepBudget};
use ebm_core::stats::stein;
use ebm_core::{MlpEnergy, Rng};

use super::RobotModel;
use crate::config::DenoiseConfig;

/// `|x - obs|^2 / (2 sigma^2)` with the observation passed as conditioning.
pub struct ObservationEnergy {
    pub sigma: f64,
}

impl EnergyFunction for ObservationEnergy {
    fn energy(&self, x: &Tensor, obs: Option<&Tensor>) -> Result<Tensor> {
        let Some(obs) = obs else {
            candle_core::bail!("the observation energy needs the observation as conditioning")
        };
        (x - obs)?.sqr()?.sum(1)? / (2.0 * self.sigma * self.sigma)
    }
}

/// One robot's forecast, in wire units.
#[derive(Debug, Clone)]
pub struct ForecastOut {
    /// `P x H x D` (D the robot's state size).
    pub trajectories: Vec<f32>,
    /// Summed energy of each particle's transitions (`P`).
    pub energies: Vec<f32>,
    /// Per-step mean and standard deviation over particles (`H x D`).
    pub mean: Vec<f32>,
    pub spread: Vec<f32>,
    pub langevin_steps: u32,
}

/// One observed transition, in wire units.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    /// The states before it, oldest first: at least the model's context
    /// (each model reads its own last `k`).
    pub before: &'a [Vec<f32>],
    /// The action taken (conditional models; `None`: unknown).
    pub action: Option<&'a [f32]>,
    /// The state reached.
    pub next: &'a [f32],
}

/// One robot's denoising problem, in wire units.
#[derive(Debug, Clone, Copy)]
pub struct DenoiseInput<'a> {
    /// The prior's context, oldest first, ending in the best estimate of the
    /// previous state (the previous denoised state where there is one).
    pub before: &'a [Vec<f32>],
    pub action: Option<&'a [f32]>,
    /// The observed state.
    pub observed: &'a [f32],
}

impl RobotModel {
    /// Conditioning rows as a tensor `[n, C]`.
    fn cond_tensor<'a>(
        &self,
        rows: impl Iterator<Item = (&'a [Vec<f32>], Option<&'a [f32]>)>,
    ) -> Result<Tensor> {
        let flat: Vec<f32> = rows.flat_map(|(b, a)| self.cond_row(b, a)).collect();
        let n = flat.len() / self.cond_dim().max(1);
        Tensor::from_vec(flat, (n, self.cond_dim()), &self.device)
    }

    /// States `[n, D]` in model units.
    fn state_tensor<'a>(&self, states: impl Iterator<Item = &'a [f32]>) -> Result<Tensor> {
        let flat: Vec<f32> = states.flat_map(|s| self.units.normalize_state(s)).collect();
        let n = flat.len() / self.state_dim().max(1);
        Tensor::from_vec(flat, (n, self.state_dim()), &self.device)
    }

    /// Forecasts for a batch of robots: `contexts` their recent states
    /// (oldest first, at least `k`), `actions` their last actions, held over
    /// the horizon (conditional models). The rollout shares one deadline.
    pub fn forecast(
        &self,
        contexts: &[&[Vec<f32>]],
        actions: &[Option<&[f32]>],
        cfg: &RolloutConfig,
        rng: &mut Rng,
        deadline: Option<Instant>,
    ) -> Result<Vec<ForecastOut>> {
        self.forecast_from(contexts, actions, cfg, None, rng, deadline)
    }

    /// As [`Self::forecast`], every robot's chains starting from `warm`:
    /// its start trajectories (`P x H x D`, wire units, see
    /// `engine::warm_start`), run as [`WarmSteps`] says.
    pub fn forecast_warm(
        &self,
        contexts: &[&[Vec<f32>]],
        actions: &[Option<&[f32]>],
        cfg: &RolloutConfig,
        warm: (&[&[f32]], WarmSteps),
        rng: &mut Rng,
    ) -> Result<Vec<ForecastOut>> {
        self.forecast_from(contexts, actions, cfg, Some(warm), rng, None)
    }

    fn forecast_from(
        &self,
        contexts: &[&[Vec<f32>]],
        actions: &[Option<&[f32]>],
        cfg: &RolloutConfig,
        warm: Option<(&[&[f32]], WarmSteps)>,
        rng: &mut Rng,
        deadline: Option<Instant>,
    ) -> Result<Vec<ForecastOut>> {
        let (b, k, h, d) = (
            contexts.len(),
            self.context_len(),
            cfg.horizon,
            self.state_dim(),
        );
        let p = cfg.particles.max(1);
        if let Some(short) = contexts.iter().find(|c| c.len() < k) {
            candle_core::bail!(
                "forecast: {} context states, the model takes {k}",
                short.len()
            );
        }
        let ctx = self.state_tensor(
            contexts
                .iter()
                .flat_map(|c| c[c.len() - k..].iter().map(Vec::as_slice)),
        )?;
        let ctx = ctx.reshape((b, k, d))?;
        let acts = if self.conditional() {
            let a = actions.len();
            if a != b {
                candle_core::bail!("forecast: {a} actions for {b} robots");
            }
            let ad = self.action_dim();
            let held: Vec<f32> = actions
                .iter()
                .flat_map(|a| {
                    let a = self.units.normalize_action(*a, ad);
                    std::iter::repeat_n(a, h).flatten()
                })
                .collect();
            Some(Tensor::from_vec(held, (b, h, ad), &self.device)?)
        } else {
            None
        };
        let warm_states = match warm {
            Some((starts, _)) => {
                if starts.len() != b || starts.iter().any(|s| s.len() != p * h * d) {
                    candle_core::bail!("forecast: warm starts are not {b} x {p} x {h} x {d}");
                }
                let flat: Vec<f32> = starts
                    .iter()
                    .flat_map(|s| self.units.normalize_state(s))
                    .collect();
                Some(Tensor::from_vec(flat, (b, p, h, d), &self.device)?)
            }
            None => None,
        };
        let starts = match (&warm_states, warm) {
            (Some(states), Some((_, warm))) => Starts::Warm { states, warm },
            _ => Starts::Cold,
        };
        let r = rollout_from(&self.model, &ctx, acts.as_ref(), cfg, starts, rng, deadline)?;
        let states: Vec<f32> = r.states.flatten_all()?.to_vec1()?;
        let energies: Vec<f32> = r.energies.flatten_all()?.to_vec1()?;
        let per_robot = p * h * d;
        let mut out = Vec::with_capacity(b);
        for j in 0..b {
            let raw = self
                .units
                .denormalize_state(&states[j * per_robot..(j + 1) * per_robot]);
            let e: Vec<f32> = energies[j * p * h..(j + 1) * p * h]
                .chunks(h)
                .map(|c| c.iter().sum())
                .collect();
            let (mean, spread) = moments(&raw, p, h * d);
            out.push(ForecastOut {
                trajectories: raw,
                energies: e,
                mean,
                spread,
                langevin_steps: u32::try_from(r.langevin_steps).unwrap_or(u32::MAX),
            });
        }
        Ok(out)
    }

    /// Conditioning rows and next states of `transitions` as tensors
    /// `[n, C]`, `[n, D]`.
    fn observed(&self, transitions: &[Transition]) -> Result<(Tensor, Tensor)> {
        let c = self.cond_tensor(transitions.iter().map(|t| (t.before, t.action)))?;
        let next = self.state_tensor(transitions.iter().map(|t| t.next))?;
        Ok((c, next))
    }

    /// Energy of each observed transition (in the model's sample space:
    /// change-space models score the scaled step, as their training did).
    pub fn transition_energy(&self, transitions: &[Transition]) -> Result<Vec<f32>> {
        let (c, next) = self.observed(transitions)?;
        self.model.transition_energy(&next, Some(&c))?.to_vec1()
    }

    /// Energy and Stein features (`x_j dE/dx_j` in the model's sample space,
    /// see [`ebm_core::stats::stein`]) of each observed transition: `n` and
    /// `n x D`.
    pub fn transition_scores(&self, transitions: &[Transition]) -> Result<(Vec<f32>, Vec<f32>)> {
        let (c, next) = self.observed(transitions)?;
        let x = self.model.to_sample(&next, Some(&c))?;
        let (e, g) = energy_and_grad(&[EnergyTerm::new(&self.model, Some(c))], &x)?;
        let features = stein::features(&x.flatten_all()?.to_vec1()?, &g.flatten_all()?.to_vec1()?);
        Ok((e.to_vec1()?, features))
    }

    /// Denoised states: Langevin from each observation on the sum of the
    /// dynamics energy given its prior context and the Gaussian observation
    /// term.
    pub fn denoise(
        &self,
        inputs: &[DenoiseInput],
        cfg: &DenoiseConfig,
        rng: &mut Rng,
    ) -> Result<Vec<Vec<f32>>> {
        let c = self.cond_tensor(inputs.iter().map(|i| (i.before, i.action)))?;
        let o = self.state_tensor(inputs.iter().map(|i| i.observed))?;
        let gauss = ObservationEnergy { sigma: cfg.sigma };
        // Langevin moves the state itself; a change-space model sees it as the
        // scaled step from the previous state.
        let in_state_space = InStateSpace(&self.model);
        let dynamics: &dyn EnergyFunction = if self.model.config().delta_scale.is_empty() {
            &self.model
        } else {
            &in_state_space
        };
        let terms = [
            EnergyTerm::new(dynamics, Some(c)).weighted(cfg.dynamics_weight),
            EnergyTerm::new(&gauss as &dyn EnergyFunction, Some(o.clone())),
        ];
        let sampler = LangevinSampler::new(cfg.langevin.clone())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let chain = sampler.run(&terms, &o, None, rng, StepBudget::default())?;
        let v: Vec<f32> = chain.x.flatten_all()?.to_vec1()?;
        Ok(v.chunks(self.state_dim())
            .map(|z| self.units.denormalize_state(z))
            .collect())
    }
}

/// Mean and standard deviation over `p` rows of width `w`.
fn moments(x: &[f32], p: usize, w: usize) -> (Vec<f32>, Vec<f32>) {
    let mut mean = vec![0.0f64; w];
    for row in x.chunks(w) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += f64::from(*v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= p as f64);
    let mut var = vec![0.0f64; w];
    for row in x.chunks(w) {
        for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (f64::from(*v) - m).powi(2);
        }
    }
    (
        mean.iter().map(|&m| m as f32).collect(),
        var.iter().map(|&s| (s / p as f64).sqrt() as f32).collect(),
    )
}

/// A trajectory model's energy as a function of the next state.
struct InStateSpace<'a>(&'a MlpEnergy);

impl EnergyFunction for InStateSpace<'_> {
    fn energy(&self, next: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        self.0.transition_energy(next, cond)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use ebm_core::sampling::langevin::LangevinConfig;

    /// Any robot: the daemon's computations know no fixed size.
    const DIM: usize = 9;

    fn model() -> RobotModel {
        RobotModel::untrained(3, DIM, vec![16], &Device::Cpu).unwrap()
    }

    #[test]
    fn forecast_shapes_moments_and_units() {
        let b = model();
        let cfg = RolloutConfig {
            horizon: 3,
            particles: 4,
            init_noise: 0.0,
            langevin: LangevinConfig {
                steps: 0,
                step_size: 0.0,
                noise_scale: 0.0,
                grad_clip: None,
                clamp: None,
                tolerance: None,
            },
        };
        let ctx = [vec![vec![0.5; DIM]], vec![vec![-1.0; DIM]]];
        let ctx: Vec<&[Vec<f32>]> = ctx.iter().map(Vec::as_slice).collect();
        let out = b.forecast(&ctx, &[], &cfg, &mut Rng::new(0), None).unwrap();
        assert_eq!(out.len(), 2);
        for (o, want) in out.iter().zip([0.5f32, -1.0]) {
            assert_eq!(o.trajectories.len(), 4 * 3 * DIM);
            assert_eq!(o.energies.len(), 4);
            assert_eq!(o.mean.len(), 3 * DIM);
            // No movement: every particle stays at the start, spread 0.
            assert!(o.mean.iter().all(|&m| (m - want).abs() < 1e-6));
            assert!(o.spread.iter().all(|&s| s.abs() < 1e-6));
            assert_eq!(o.langevin_steps, 0);
        }
        assert_eq!(
            moments(&[1.0, 3.0, 3.0, 5.0], 2, 2),
            (vec![2.0, 4.0], vec![1.0, 1.0])
        );
    }

    /// An untrained change-space model (context 1, steps scaled by 1/2) with
    /// base weight `base`.
    fn change_space_model(seed: u64, base: f32) -> RobotModel {
        use ebm_core::{EnergyModel, MlpEnergy, MlpEnergyConfig, ParamStore};
        let mut b = model();
        let mut cfg = MlpEnergyConfig::new(DIM);
        cfg.context_len = 1;
        cfg.hidden = vec![16];
        cfg.delta_scale = vec![0.5; DIM];
        cfg.base_weight = base;
        b.model = MlpEnergy::init(&cfg, &ParamStore::new(seed, &Device::Cpu))
            .unwrap()
            .frozen();
        b
    }

    /// A change-space model scores the scaled step `(s_{t+1} - s_t) / scale`,
    /// the variable its training percentiles were taken on, not the raw state.
    #[test]
    fn change_space_models_score_the_scaled_step() {
        use ebm_core::EnergyFunction;
        let b = change_space_model(2, 0.0);
        let prev = vec![vec![0.2; DIM]];
        let next = vec![0.7; DIM];
        let t = [Transition {
            before: &prev,
            action: None,
            next: &next,
        }];
        let got = b.transition_energy(&t).unwrap();
        let energy_of = |v: f32| {
            let x = Tensor::from_vec(vec![v; DIM], (1, DIM), &Device::Cpu).unwrap();
            let c = Tensor::from_vec(prev[0].clone(), (1, DIM), &Device::Cpu).unwrap();
            b.model
                .energy(&x, Some(&c))
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()[0]
        };
        assert!(
            (got[0] - energy_of(1.0)).abs() < 1e-6,
            "step (0.7 - 0.2) / 0.5 = 1"
        );
        assert!((got[0] - energy_of(0.7)).abs() > 1e-4, "not the raw state");
        // Denoising descends the same (state-space) transition energy.
        let cfg = DenoiseConfig {
            sigma: 100.0,
            dynamics_weight: 1.0,
            langevin: LangevinConfig {
                steps: 30,
                step_size: 0.05,
                noise_scale: 0.0,
                grad_clip: None,
                clamp: None,
                tolerance: None,
            },
        };
        let input = [DenoiseInput {
            before: &prev,
            action: None,
            observed: &next,
        }];
        let x = b.denoise(&input, &cfg, &mut Rng::new(3)).unwrap();
        let t = [Transition {
            before: &prev,
            action: None,
            next: &x[0],
        }];
        let after = b.transition_energy(&t).unwrap();
        assert!(after[0] < got[0] - 1e-3, "{} -> {}", got[0], after[0]);
    }

    /// Stein features are `x_j dE/dx_j` in sample space (the scaled step):
    /// against central differences of the model's energy there.
    #[test]
    fn transition_scores_give_the_energy_and_x_times_its_gradient() {
        use ebm_core::EnergyFunction;
        let b = change_space_model(5, 1.0);
        let prev = [vec![0.2; DIM], vec![-0.4; DIM]];
        let next: Vec<Vec<f32>> = (0..2)
            .map(|r| {
                (0..DIM)
                    .map(|j| (j as f32 * 0.37 + r as f32).sin())
                    .collect()
            })
            .collect();
        let t: Vec<Transition> = (0..2)
            .map(|r| Transition {
                before: &prev[r..r + 1],
                action: None,
                next: &next[r],
            })
            .collect();
        let (e, f) = b.transition_scores(&t).unwrap();
        let want_e = b.transition_energy(&t).unwrap();
        assert_eq!(f.len(), 2 * DIM);
        let c = Tensor::from_vec(prev.concat(), (2, DIM), &Device::Cpu).unwrap();
        let energy_at = |x: &[f32]| {
            let x = Tensor::from_vec(x.to_vec(), (2, DIM), &Device::Cpu).unwrap();
            b.model
                .energy(&x, Some(&c))
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let x: Vec<f32> = (0..2 * DIM)
            .map(|k| (next[k / DIM][k % DIM] - prev[k / DIM][0]) / 0.5)
            .collect();
        for r in 0..2 {
            assert!((e[r] - want_e[r]).abs() < 1e-4 * (1.0 + want_e[r].abs()));
        }
        let h = 1e-2;
        for j in 0..DIM {
            let (mut up, mut down) = (x.clone(), x.clone());
            for r in 0..2 {
                up[r * DIM + j] += h;
                down[r * DIM + j] -= h;
            }
            let (eu, ed) = (energy_at(&up), energy_at(&down));
            for r in 0..2 {
                let k = r * DIM + j;
                let want = x[k] * (eu[r] - ed[r]) / (2.0 * h);
                assert!(
                    (f[k] - want).abs() < 2e-2 * (1.0 + want.abs()),
                    "{j}: {} vs {want}",
                    f[k]
                );
            }
        }
    }

    /// A frozen model of `D = 3` states, context 1 (and `delta_scale` when
    /// given), whose energy is `(1/2) |x - M s - b|^2` in its sample space to
    /// a relative `(0.02 z)^2 / 12`: hidden pairs `silu(+-0.02 z_j)` (their sum
    /// `u tanh(u / 2)` is `u^2 / 2` near 0), `z = x - M s - b`, and a head of
    /// `1 / 0.02^2`.
    fn quadratic_prior(m: &[f64; 9], b: &[f64; 3], delta_scale: &[f32]) -> MlpEnergy {
        use ebm_core::{Activation, EnergyModel, MlpEnergyConfig, ParamStore};
        let (d, s) = (3, 0.02f64);
        let (mut w, mut bias) = (vec![0f32; 2 * d * 2 * d], vec![0f32; 2 * d]);
        for (row, sign) in (0..2 * d).map(|r| (r, if r < d { 1.0 } else { -1.0 })) {
            let j = row % d;
            let r = &mut w[row * 2 * d..(row + 1) * 2 * d];
            for (v, mji) in r[..d].iter_mut().zip(&m[j * d..(j + 1) * d]) {
                *v = (-sign * s * mji) as f32;
            }
            r[d + j] = (sign * s) as f32;
            bias[row] = (-sign * s * b[j]) as f32;
        }
        let dev = Device::Cpu;
        let tensors = [
            ("layer0.weight", Tensor::from_vec(w, (2 * d, 2 * d), &dev)),
            ("layer0.bias", Tensor::from_vec(bias, 2 * d, &dev)),
            (
                "head.weight",
                Tensor::from_vec(vec![(1.0 / (s * s)) as f32; 2 * d], (1, 2 * d), &dev),
            ),
            ("head.bias", Tensor::from_vec(vec![0f32], 1, &dev)),
        ];
        let tensors = tensors
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.unwrap()))
            .collect();
        let mut cfg = MlpEnergyConfig::new(d);
        cfg.context_len = 1;
        cfg.hidden = vec![2 * d];
        cfg.activation = Activation::Silu;
        cfg.spectral_norm = false;
        cfg.delta_scale = delta_scale.to_vec();
        let store = ParamStore::from_tensors(tensors, &dev).unwrap();
        MlpEnergy::init(&cfg, &store).unwrap().frozen()
    }

    /// The denoised state is the minimiser of `w E(x | prior) + |x - obs|^2 /
    /// (2 sigma^2)`. With the quadratic dynamics energy of
    /// [`quadratic_prior`] (in state space, precision `1 / scale_j^2` around
    /// `mu = s + scale (M s + b)`, or `1` around `M s + b` without a scale)
    /// that is the precision-weighted mean `(w p mu + obs / sigma^2) / (w p +
    /// 1 / sigma^2)`. The chain starts at the observation, and the weights
    /// (w = 2, sigma = 0.5) make both terms count, so a denoiser that dropped
    /// the prior, the observation, the dynamics weight or sigma, conditioned
    /// on the wrong state, or (in change space) scored the state itself as
    /// the model's sample, lands elsewhere.
    #[test]
    fn denoising_gives_the_precision_weighted_mean_of_prior_and_observation() {
        const M: [f64; 9] = [0.9, 0.2, 0.0, -0.3, 0.8, 0.1, 0.0, 0.4, 1.1];
        const B: [f64; 3] = [0.3, -0.5, 0.2];
        let (w, sigma) = (2.0, 0.5);
        let cfg = DenoiseConfig {
            sigma,
            dynamics_weight: w,
            langevin: LangevinConfig {
                steps: 60,
                step_size: 0.1,
                noise_scale: 0.0,
                grad_clip: None,
                clamp: None,
                tolerance: None,
            },
        };
        let priors = [vec![0.5, -1.0, 0.8], vec![-1.2, 0.3, -0.4]];
        let obs = [vec![1.0, 0.2, -0.3], vec![-0.6, -0.9, 0.7]];
        for scale in [vec![], vec![0.5f32, 1.0, 2.0]] {
            let mut b = RobotModel::untrained(0, 3, vec![6], &Device::Cpu).unwrap();
            b.model = quadratic_prior(&M, &B, &scale);
            let before: Vec<Vec<Vec<f32>>> = priors.iter().map(|p| vec![p.clone()]).collect();
            let inputs: Vec<DenoiseInput> = (0..2)
                .map(|r| DenoiseInput {
                    before: &before[r],
                    action: None,
                    observed: &obs[r],
                })
                .collect();
            let got = b.denoise(&inputs, &cfg, &mut Rng::new(1)).unwrap();
            let (mut from_obs, mut from_prior) = (0f64, 0f64);
            for r in 0..2 {
                let s = &priors[r];
                for j in 0..3 {
                    let y = B[j] + (0..3).map(|i| M[j * 3 + i] * f64::from(s[i])).sum::<f64>();
                    let (mu, p) = match scale.get(j).map(|&c| f64::from(c)) {
                        Some(c) => (f64::from(s[j]) + c * y, 1.0 / (c * c)),
                        None => (y, 1.0),
                    };
                    let o = f64::from(obs[r][j]);
                    let want = (w * p * mu + o / sigma.powi(2)) / (w * p + 1.0 / sigma.powi(2));
                    let g = f64::from(got[r][j]);
                    assert!(
                        (g - want).abs() < 1e-3,
                        "scale {scale:?}, robot {r}, dim {j}: {g} vs {want} (prior {mu}, obs {o})"
                    );
                    from_obs = from_obs.max((g - o).abs());
                    from_prior = from_prior.max((g - mu).abs());
                }
            }
            // Both terms pulled: the result is neither the observation nor
            // the prior's prediction.
            assert!(
                from_obs > 0.3 && from_prior > 0.3,
                "{from_obs} {from_prior}"
            );
        }
    }
}
