//! Multi-step trajectory forecasts by Langevin dynamics (the paper's Section 5):
//! each new state starts from the last predicted state plus small uniform noise
//! and runs K Langevin steps of `E(s_{t+1} | s_{t-k+1..t} [, a_t])`, conditioned
//! on the model's own previous predictions, with P particles per start.
//! Shared by offline evaluation and the runtime daemon.

//!
//! - [`config`]: what a rollout is asked for and what it returns.
//! - `fused_path`: the whole rollout on plain buffers, for models with a
//!   [`crate::energy::FusedEnergy`] form (frozen CPU MLPs).
//! - `tensor_path`: the same arithmetic on tensors, for everything else
//!   (CUDA, change-space models, deadlines).

use std::time::Instant;

use candle_core::{Result, Tensor};

use crate::models::MlpEnergy;
use crate::sampling::langevin::LangevinSampler;
use crate::Rng;

pub mod config;
mod fused_path;
mod tensor_path;

pub use config::{Rollout, RolloutConfig, Starts, WarmSteps};

/// Rolls `model` forward from `context: [B, k, D]` (the last k observed
/// states, oldest first), with `actions: [B, H, A]` for action-conditional
/// models. `model` should be frozen (see `EnergyModel::frozen`).
pub fn rollout(
    model: &MlpEnergy,
    context: &Tensor,
    actions: Option<&Tensor>,
    cfg: &RolloutConfig,
    rng: &mut Rng,
) -> Result<Rollout> {
    rollout_until(model, context, actions, cfg, rng, None)
}

/// As [`rollout`], finishing by `deadline` (the paper's adaptive computation
/// time): every predicted step gets an equal share of the time left, so a
/// tight deadline gives fewer Langevin steps per prediction rather than a
/// shorter horizon. A step with no time left keeps its start state.
pub fn rollout_until(
    model: &MlpEnergy,
    context: &Tensor,
    actions: Option<&Tensor>,
    cfg: &RolloutConfig,
    rng: &mut Rng,
    deadline: Option<Instant>,
) -> Result<Rollout> {
    rollout_from(model, context, actions, cfg, Starts::Cold, rng, deadline)
}

/// As [`rollout_until`], the chains starting as `starts` says (warm starts
/// from a previous forecast run their own, smaller, number of steps; see
/// [`WarmSteps`]).
pub fn rollout_from(
    model: &MlpEnergy,
    context: &Tensor,
    actions: Option<&Tensor>,
    cfg: &RolloutConfig,
    starts: Starts,
    rng: &mut Rng,
    deadline: Option<Instant>,
) -> Result<Rollout> {
    let mc = model.config();
    let (b, k, d) = context.dims3()?;
    if k != mc.context_len || d != mc.state_dim {
        candle_core::bail!(
            "rollout: context is [{b}, {k}, {d}], the model takes {} states of {}",
            mc.context_len,
            mc.state_dim
        );
    }
    let h = cfg.horizon;
    match (actions, mc.action_dim) {
        (None, 0) => {}
        (Some(a), ad) if ad > 0 && a.dims() == [b, h, ad] => {}
        (a, ad) => candle_core::bail!(
            "rollout: actions of shape {:?}, the model expects [{b}, {h}, {ad}]",
            a.map(|a| a.dims().to_vec())
        ),
    }
    let warm = match starts {
        Starts::Cold => None,
        Starts::Warm { states, warm } => {
            let want = [b, cfg.particles.max(1), h, d];
            if states.dims() != want {
                candle_core::bail!(
                    "rollout: warm starts of shape {:?}, expected {want:?}",
                    states.dims()
                );
            }
            Some((states, warm))
        }
    };
    let sampler = LangevinSampler::new(cfg.langevin.clone())
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    if deadline.is_none() {
        if let Some(r) = fused_path::rollout(model, context, actions, cfg, warm, &sampler, rng)? {
            return Ok(r);
        }
    }
    tensor_path::rollout(model, context, actions, cfg, warm, &sampler, rng, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::{EnergyFunction, EnergyModel};
    use crate::models::MlpEnergyConfig;
    use crate::params::ParamStore;
    use crate::sampling::langevin::LangevinConfig;
    use candle_core::Device;

    #[test]
    fn shapes_follow_batch_particles_horizon_and_actions_are_checked() -> Result<()> {
        let dev = Device::Cpu;
        let mut cfg = MlpEnergyConfig::new(3);
        cfg.context_len = 2;
        cfg.action_dim = 2;
        cfg.hidden = vec![16];
        let m = MlpEnergy::init(&cfg, &ParamStore::new(0, &dev))?.frozen();
        let rc = RolloutConfig {
            horizon: 4,
            particles: 5,
            init_noise: 0.1,
            langevin: LangevinConfig {
                steps: 3,
                step_size: 0.01,
                noise_scale: 0.005,
                grad_clip: None,
                clamp: None,
                tolerance: None,
            },
        };
        let ctx = Tensor::zeros((2, 2, 3), candle_core::DType::F32, &dev)?;
        let acts = Tensor::zeros((2, 4, 2), candle_core::DType::F32, &dev)?;
        let r = rollout(&m, &ctx, Some(&acts), &rc, &mut Rng::new(1))?;
        assert_eq!(r.states.dims(), &[2, 5, 4, 3]);
        assert_eq!(r.energies.dims(), &[2, 5, 4]);
        assert!(rollout(&m, &ctx, None, &rc, &mut Rng::new(1)).is_err());
        // A deadline already past runs no Langevin step and keeps the shapes.
        let past = Some(Instant::now());
        let r = rollout_until(&m, &ctx, Some(&acts), &rc, &mut Rng::new(1), past)?;
        assert_eq!((r.langevin_steps, r.states.dims()), (0, &[2, 5, 4, 3][..]));
        Ok(())
    }

    #[test]
    fn change_space_samples_map_back_to_states() -> Result<()> {
        let dev = Device::Cpu;
        let mut cfg = MlpEnergyConfig::new(2);
        cfg.context_len = 2;
        cfg.hidden = vec![8];
        cfg.delta_scale = vec![0.5, 4.0];
        let m = MlpEnergy::init(&cfg, &ParamStore::new(0, &dev))?;
        // Context [s_{t-1}, s_t] = [[9, 9], [1, 2]]; next state [2, 0].
        let cond = Tensor::new(&[[9f32, 9., 1., 2.]], &dev)?;
        let next = Tensor::new(&[[2f32, 0.]], &dev)?;
        let x = m.to_sample(&next, Some(&cond))?;
        assert_eq!(x.to_vec2::<f32>()?, vec![vec![2.0, -0.5]]);
        assert_eq!(
            m.from_sample(&x, Some(&cond))?.to_vec2::<f32>()?,
            vec![vec![2.0, 0.0]]
        );
        let e1 = m.transition_energy(&next, Some(&cond))?;
        let e2 = m.energy(&x, Some(&cond))?;
        assert_eq!(e1.to_vec1::<f32>()?, e2.to_vec1::<f32>()?);
        cfg.delta_scale = vec![1.0];
        assert!(cfg.validate().is_err());
        Ok(())
    }

    #[test]
    fn residual_space_samples_measure_from_the_prior_and_whiten() -> Result<()> {
        let dev = Device::Cpu;
        let mut cfg = MlpEnergyConfig::new(2);
        cfg.context_len = 1;
        cfg.action_dim = 1;
        cfg.hidden = vec![8];
        cfg.delta_scale = vec![0.5, 2.0];
        // Predicted change [a + 0.1, s0 - 1]; L = [[1, 0], [0.6, 0.8]].
        cfg.prior = Some(crate::models::LinearPrior {
            weight: vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0],
            bias: vec![0.1, -1.0],
            correlation_cholesky: vec![1.0, 0.0, 0.6, 0.8],
        });
        cfg.validate()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let m = MlpEnergy::init(&cfg, &ParamStore::new(0, &dev))?.frozen();
        // s = [1, 2], a = 3: prediction [1 + 3.1, 2 + 0] = [4.1, 2].
        let cond = Tensor::new(&[[1f32, 2., 3.]], &dev)?;
        let next = Tensor::new(&[[4.6f32, 6.]], &dev)?;
        // Scaled residual r = [0.5 / 0.5, 4 / 2] = [1, 2]; x = L^{-1} r = [1, (2 - 0.6) / 0.8].
        let x = m.to_sample(&next, Some(&cond))?.to_vec2::<f32>()?;
        assert!(
            (x[0][0] - 1.0).abs() < 1e-5 && (x[0][1] - 1.75).abs() < 1e-5,
            "{x:?}"
        );
        let xt = Tensor::new(x[0].as_slice(), &dev)?.unsqueeze(0)?;
        let back = m.from_sample(&xt, Some(&cond))?.to_vec2::<f32>()?;
        assert!(
            (back[0][0] - 4.6).abs() < 1e-5 && (back[0][1] - 6.0).abs() < 1e-5,
            "{back:?}"
        );
        // Chains start at the prediction: the zero residual.
        let start = m.chain_start(&cond.narrow(1, 0, 2)?, Some(&cond))?;
        let at = m.from_sample(&start, Some(&cond))?.to_vec2::<f32>()?;
        assert!(
            (at[0][0] - 4.1).abs() < 1e-5 && (at[0][1] - 2.0).abs() < 1e-5,
            "{at:?}"
        );
        // A prior without change scales, or of the wrong size, is refused.
        let mut bad = cfg.clone();
        bad.delta_scale.clear();
        assert!(bad.validate().is_err());
        let mut bad = cfg.clone();
        bad.action_dim = 0;
        assert!(bad.validate().is_err());
        Ok(())
    }

    /// `s_{t+1} = M [s_{t-1}, s_t, a_t] + b` for two-dimensional states: `M`
    /// is `2 x 5`, row-major.
    const MAP: [f64; 10] = [-0.5, 0.0, 1.2, -0.3, 0.5, 0.1, -0.3, 0.4, 0.9, -0.2];
    const OFFSET: [f64; 2] = [0.1, -0.2];

    /// Two robots' contexts (two states of 2 floats) and actions over 5 steps.
    const CTX: [[[f64; 2]; 2]; 2] = [[[0.3, -0.7], [1.0, 0.4]], [[-1.2, 0.5], [-0.6, 1.1]]];
    const ACTS: [[f64; 5]; 2] = [[0.5, -1.0, 0.0, 1.5, 0.2], [-0.3, 0.8, 1.0, -1.2, 0.4]];

    /// [`CTX`] and the first `h` of [`ACTS`] as tensors `[2, 2, 2]`, `[2, h, 1]`.
    fn two_robots(h: usize) -> Result<(Tensor, Tensor)> {
        let dev = Device::Cpu;
        let to_f32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let ctx = Tensor::from_vec(to_f32(CTX.as_flattened().as_flattened()), (2, 2, 2), &dev)?;
        let acts: Vec<f32> = ACTS.iter().flat_map(|a| to_f32(&a[..h])).collect();
        Ok((ctx, Tensor::from_vec(acts, (2, h, 1), &dev)?))
    }

    /// Every particle of `r` (two robots of [`two_robots`], `p` particles,
    /// `h` steps) within `tol`, relative, of the iterated map.
    fn assert_on_map(
        label: &str,
        r: &Rollout,
        p: usize,
        h: usize,
        scale: Option<[f64; 2]>,
        tol: f64,
    ) -> Result<()> {
        let got: Vec<f32> = r.states.flatten_all()?.to_vec1()?;
        for (b, (c, a)) in CTX.iter().zip(&ACTS).enumerate() {
            let want = iterate(*c, a, scale);
            for (i, g) in got[b * p * h * 2..(b + 1) * p * h * 2].iter().enumerate() {
                let (particle, t, j) = (i / (h * 2), i / 2 % h, i % 2);
                let w = want[t][j];
                assert!(
                    (f64::from(*g) - w).abs() < tol * (1.0 + w.abs()),
                    "{label}: start {b}, particle {particle}, step {t}, dim {j}: {g} vs {w}"
                );
            }
        }
        Ok(())
    }

    /// The states [`MAP`] gives from the context `[s_{t-1}, s_t]` under one
    /// action per step, each fed back as the newest context state; with
    /// `scale`, the map gives the scaled change `(s_{t+1} - s_t) / scale`.
    fn iterate(ctx: [[f64; 2]; 2], acts: &[f64], scale: Option<[f64; 2]>) -> Vec<[f64; 2]> {
        let [mut prev, mut last] = ctx;
        acts.iter()
            .map(|&a| {
                let c = [prev[0], prev[1], last[0], last[1], a];
                let next: [f64; 2] = std::array::from_fn(|j| {
                    let y = OFFSET[j] + (0..5).map(|i| MAP[j * 5 + i] * c[i]).sum::<f64>();
                    scale.map_or(y, |s| last[j] + s[j] * y)
                });
                (prev, last) = (last, next);
                next
            })
            .collect()
    }

    /// Each predicted step conditions on the previous predictions. The energy
    /// is a quadratic well around a known linear map of the context and
    /// action, and noiseless Langevin from jittered starts converges to its
    /// minimiser, so step t's prediction must be the t-times iterated map of
    /// the context. Conditioning every step on the observed context, shifting
    /// the two-state window wrongly or pairing a step with another step's
    /// action all give other states. Fused and tensor paths, and a
    /// change-space model (whose samples map back through the context).
    #[test]
    fn predictions_are_the_iterated_map_of_the_context() -> Result<()> {
        let mut cfg = MlpEnergyConfig::new(2);
        cfg.context_len = 2;
        cfg.action_dim = 1;
        let (h, p) = (5, 3);
        let rc = RolloutConfig {
            horizon: h,
            particles: p,
            init_noise: 0.5,
            langevin: LangevinConfig {
                steps: 40,
                step_size: 0.5,
                noise_scale: 0.0,
                grad_clip: None,
                clamp: None,
                tolerance: None,
            },
        };
        let (ctx_t, acts_t) = two_robots(h)?;
        let well = crate::test_util::quadratic_well(&cfg, &MAP, &OFFSET, 1.0);
        assert!(well.fused().is_some(), "the fused path is under test");
        let tensor_path = well.without_fused_path();
        cfg.delta_scale = vec![0.5, 0.25];
        let change = crate::test_util::quadratic_well(&cfg, &MAP, &OFFSET, 1.0);
        let cases = [
            ("fused", &well, None),
            ("tensor", &tensor_path, None),
            ("change space", &change, Some([0.5, 0.25])),
        ];
        for (label, model, scale) in cases {
            let r = rollout(model, &ctx_t, Some(&acts_t), &rc, &mut Rng::new(7))?;
            assert_eq!(r.langevin_steps, h * 40, "{label}");
            assert_on_map(label, &r, p, h, scale, 1e-3)?;
        }
        Ok(())
    }

    /// Adaptive steps: on the quadratic well, chains that settle within the
    /// tolerance stop early, on the fused and the tensor path alike, never
    /// run more than `K` steps per prediction, and still land on the map.
    #[test]
    fn adaptive_rollouts_stop_early_and_still_follow_the_map() -> Result<()> {
        let mut cfg = MlpEnergyConfig::new(2);
        cfg.context_len = 2;
        cfg.action_dim = 1;
        let (h, p, k) = (5, 3, 40);
        let rc = |tolerance| RolloutConfig {
            horizon: h,
            particles: p,
            init_noise: 0.5,
            langevin: LangevinConfig {
                steps: k,
                step_size: 0.5,
                noise_scale: 0.0,
                grad_clip: None,
                clamp: None,
                tolerance,
            },
        };
        let (ctx_t, acts_t) = two_robots(h)?;
        let well = crate::test_util::quadratic_well(&cfg, &MAP, &OFFSET, 1.0);
        let tensor_path = well.without_fused_path();
        for (label, model) in [("fused", &well), ("tensor", &tensor_path)] {
            let early = rollout(
                model,
                &ctx_t,
                Some(&acts_t),
                &rc(Some(1e-6)),
                &mut Rng::new(7),
            )?;
            assert!(
                (2 * h..h * k).contains(&early.langevin_steps),
                "{label}: {} steps",
                early.langevin_steps
            );
            let least = rollout(
                model,
                &ctx_t,
                Some(&acts_t),
                &rc(Some(1e9)),
                &mut Rng::new(7),
            )?;
            assert_eq!(least.langevin_steps, 2 * h, "{label}");
            assert_on_map(label, &early, p, h, None, 1e-2)?;
        }
        Ok(())
    }

    /// Warm starts: for a robot standing still (the well's minimiser is its
    /// last state), a forecast started from the previous one (the same
    /// trajectory shifted by a step) with 5 steps per prediction matches a
    /// cold 40-step one within sampling noise; and the given starts are
    /// where the chains begin, relative to their own last prediction: with
    /// given starts climbing by 3 a step, each chain starts 3 above its last
    /// prediction (the context at step 0), and one step goes half way to the
    /// well's centre, that last prediction, `x <- x - 0.5 (x - centre)`; so
    /// step `t` lands `1.5 (t + 1)` above the context. Fused and tensor paths.
    #[test]
    fn warm_starts_match_cold_ones_for_a_stationary_robot() -> Result<()> {
        let dev = Device::Cpu;
        let mut cfg = MlpEnergyConfig::new(2);
        cfg.context_len = 1;
        let (h, p) = (4, 64);
        let rc = RolloutConfig {
            horizon: h,
            particles: p,
            init_noise: 0.5,
            langevin: LangevinConfig {
                steps: 40,
                step_size: 0.5,
                noise_scale: 0.05,
                grad_clip: None,
                clamp: None,
                tolerance: None,
            },
        };
        let well = crate::test_util::quadratic_well(&cfg, &[1.0, 0.0, 0.0, 1.0], &[0.0, 0.0], 1.0);
        let tensor_path = well.without_fused_path();
        let c = [0.4f32, -0.8];
        let ctx = Tensor::from_vec(c.to_vec(), (1, 1, 2), &dev)?;
        let means = |r: &Rollout| -> Result<Vec<[f32; 2]>> {
            let v: Vec<f32> = r.states.flatten_all()?.to_vec1()?;
            Ok((0..h)
                .map(|t| {
                    let mut m = [0f32; 2];
                    for i in 0..p {
                        for (j, mj) in m.iter_mut().enumerate() {
                            *mj += v[(i * h + t) * 2 + j] / p as f32;
                        }
                    }
                    m
                })
                .collect())
        };
        for (label, model) in [("fused", &well), ("tensor", &tensor_path)] {
            let cold = rollout(model, &ctx, None, &rc, &mut Rng::new(1))?;
            // Shifted by a step; the last step repeated (a still robot).
            let last = cold.states.narrow(2, h - 1, 1)?;
            let shifted = Tensor::cat(&[cold.states.narrow(2, 1, h - 1)?, last], 2)?;
            let warm = Starts::Warm {
                states: &shifted,
                warm: WarmSteps {
                    steps: 5,
                    cold_head: 0,
                    cold_tail: 0,
                },
            };
            let w = rollout_from(model, &ctx, None, &rc, warm, &mut Rng::new(2), None)?;
            assert_eq!(w.langevin_steps, 5 * h, "{label}");
            for (t, (a, b)) in means(&cold)?.iter().zip(means(&w)?).enumerate() {
                for j in 0..2 {
                    assert!(
                        (a[j] - b[j]).abs() < 0.03 && (a[j] - c[j]).abs() < 0.03,
                        "{label}, step {t}: cold {a:?}, warm {b:?}"
                    );
                }
            }
            // Starts climbing by 3 a step, one Langevin step per prediction.
            let far = Tensor::from_vec(
                (0..p * h)
                    .flat_map(|i| {
                        let up = 3.0 * ((i % h) + 1) as f32;
                        [c[0] + up, c[1] + up]
                    })
                    .collect::<Vec<f32>>(),
                (1, p, h, 2),
                &dev,
            )?;
            // Predictions in the cold head or tail start cold instead and
            // run 40 steps: they settle on their well's centre, the
            // prediction before them, where warm ones climb by 1.5.
            for (cold_head, cold_tail) in [(0, 0), (0, 1), (1, 0), (2, 1)] {
                let warm = WarmSteps {
                    steps: 1,
                    cold_head,
                    cold_tail,
                };
                let one = Starts::Warm { states: &far, warm };
                let r = rollout_from(model, &ctx, None, &rc, one, &mut Rng::new(3), None)?;
                let cold = cold_head + cold_tail;
                assert_eq!(r.langevin_steps, (h - cold) + 40 * cold);
                let mut above = 0.0;
                for (t, m) in means(&r)?.iter().enumerate() {
                    if warm.is_warm(t, h) {
                        above += 1.5;
                    }
                    for j in 0..2 {
                        assert!(
                            (m[j] - (c[j] + above)).abs() < 0.05,
                            "{label}, {warm:?}, step {t}: {m:?}, want {above} above"
                        );
                    }
                }
            }
            let wrong = Tensor::zeros((1, p, h + 1, 2), candle_core::DType::F32, &dev)?;
            let bad = Starts::Warm {
                states: &wrong,
                warm: WarmSteps {
                    steps: 5,
                    cold_head: 0,
                    cold_tail: 0,
                },
            };
            assert!(rollout_from(model, &ctx, None, &rc, bad, &mut Rng::new(4), None).is_err());
        }
        Ok(())
    }
}
