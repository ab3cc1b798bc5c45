//! [`crate::rollout::rollout`] on the fused CPU path: each thread rolls its
//! own particles through the whole horizon on plain buffers, with no tensor
//! op and no synchronisation between predicted steps (a forecast's 50 x 20
//! Langevin steps of 64 particles are otherwise 50 fork-joins and a few
//! hundred small tensor ops).
//!
//! Every particle row draws its start jitter and Langevin noise from its own
//! generator, seeded in row order from the caller's, so a forecast depends on
//! the seed but not on the number of threads. Same arithmetic as the tensor
//! path; only the random stream differs.

use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

use super::config::{Rollout, RolloutConfig, WarmSteps};
use crate::energy::{EnergyFunction, FusedEnergy};
use crate::models::MlpEnergy;
use crate::sampling::langevin::{settled, LangevinSampler};
use crate::Rng;

/// The whole rollout on the fused path, or `None` when the model or the
/// inputs do not qualify (no fused path, change-space sampling, not f32 on
/// the CPU). Shapes are checked by the caller.
pub(super) fn rollout(
    model: &MlpEnergy,
    context: &Tensor,
    actions: Option<&Tensor>,
    cfg: &RolloutConfig,
    warm: Option<(&Tensor, WarmSteps)>,
    sampler: &LangevinSampler,
    rng: &mut Rng,
) -> Result<Option<Rollout>> {
    let Some(f) = model.fused() else {
        return Ok(None);
    };
    let host_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == DType::F32;
    if !model.config().delta_scale.is_empty()
        || !host_f32(context)
        || !actions.is_none_or(host_f32)
        || !warm.is_none_or(|(w, _)| host_f32(w))
    {
        return Ok(None);
    }
    let (b, k, d) = context.dims3()?;
    let (h, p) = (cfg.horizon, cfg.particles.max(1));
    if h == 0 || b == 0 || d == 0 {
        return Ok(None);
    }
    let a = model.config().action_dim;
    let n = b * p;
    let ctx0 = context.flatten_all()?.to_vec1::<f32>()?;
    let acts = actions
        .map(|t| t.flatten_all()?.to_vec1::<f32>())
        .transpose()?;
    // Warm starts, `[B * P, H, D]`: row `j * P + i` is particle `i` of start `j`.
    let warm = match warm {
        Some((t, steps)) => Some((t.flatten_all()?.to_vec1::<f32>()?, steps)),
        None => None,
    };
    let seeds: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();

    let mut states = vec![0f32; n * h * d];
    let mut energies = vec![0f32; n * h];
    let threads = rayon::current_num_threads().max(1);
    let chunk = f.rows_per_task().max(n.div_ceil(threads));
    let langevin_steps = states
        .par_chunks_mut(chunk * h * d)
        .zip(energies.par_chunks_mut(chunk * h))
        .enumerate()
        .map(|(i, (st, en))| {
            let rows = i * chunk..i * chunk + en.len() / h.max(1);
            let job = Rows {
                f,
                sampler,
                cfg,
                k,
                d,
                a,
                p,
            };
            job.run(
                rows,
                &ctx0,
                acts.as_deref(),
                warm.as_ref().map(|(w, s)| (w.as_slice(), *s)),
                &seeds,
                st,
                en,
            )
        })
        .max()
        .unwrap_or(0);
    let dev = context.device();
    Ok(Some(Rollout {
        states: Tensor::from_vec(states, (b, p, h, d), dev)?,
        energies: Tensor::from_vec(energies, (b, p, h), dev)?,
        langevin_steps,
    }))
}

/// What one thread needs to roll its rows.
struct Rows<'a> {
    f: &'a dyn FusedEnergy,
    sampler: &'a LangevinSampler,
    cfg: &'a RolloutConfig,
    k: usize,
    d: usize,
    a: usize,
    p: usize,
}

impl Rows<'_> {
    /// Rolls particle rows `rows` (row `r` starts from context `r / p`,
    /// its chains from `warm` where given, as [`WarmSteps`] says) into
    /// `states: [rows, H, D]` and `energies: [rows, H]`; returns the
    /// Langevin steps run over the horizon (fewer than `H * K` when the
    /// chains settle within `langevin.tolerance`).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        rows: std::ops::Range<usize>,
        ctx0: &[f32],
        acts: Option<&[f32]>,
        warm: Option<(&[f32], WarmSteps)>,
        seeds: &[u64],
        states: &mut [f32],
        energies: &mut [f32],
    ) -> usize {
        let (k, d, a) = (self.k, self.d, self.a);
        let (h, cold_steps) = (self.cfg.horizon, self.sampler.config().steps);
        let m = rows.len();
        let cd = k * d + a;
        let mut rngs: Vec<Rng> = seeds[rows.clone()].iter().map(|&s| Rng::new(s)).collect();
        // Context rows, oldest state first.
        let mut ctx: Vec<f32> = rows
            .clone()
            .flat_map(|r| {
                ctx0[(r / self.p) * k * d..(r / self.p + 1) * k * d]
                    .iter()
                    .copied()
            })
            .collect();
        let (mut cond, mut pre) = (vec![0f32; m * cd], Vec::new());
        let (mut x, mut g, mut e) = (vec![0f32; m * d], vec![0f32; m * d], vec![0f32; m]);
        // Each row's Langevin noise for one predicted step, `[m, steps, d]`.
        let most = cold_steps.max(warm.map_or(0, |(_, w)| w.steps));
        let mut z = vec![0f32; m * most * d];
        let (init, noise) = (self.cfg.init_noise, self.cfg.langevin.noise_scale as f32);
        let tolerance = self.sampler.config().tolerance;
        let mut ran = 0;
        for t in 0..h {
            let warm_t = warm.filter(|(_, w)| w.is_warm(t, h));
            let steps = warm_t.map_or(cold_steps, |(_, w)| w.steps);
            for (j, r) in rows.clone().enumerate() {
                let row = &mut cond[j * cd..(j + 1) * cd];
                row[..k * d].copy_from_slice(&ctx[j * k * d..(j + 1) * k * d]);
                if let Some(av) = acts {
                    let at = ((r / self.p) * h + t) * a;
                    row[k * d..].copy_from_slice(&av[at..at + a]);
                }
                let xr = &mut x[j * d..(j + 1) * d];
                let last = &ctx[(j * k + k - 1) * d..(j * k + k) * d];
                if let Some((w, _)) = warm_t {
                    // The last state plus the change the given trajectory
                    // makes at this step (from the context's last state at
                    // the first step).
                    let at = |t: usize| &w[(r * h + t) * d..(r * h + t + 1) * d];
                    let before = if t == 0 { last } else { at(t - 1) };
                    for (((xv, l), wt), wb) in xr.iter_mut().zip(last).zip(at(t)).zip(before) {
                        *xv = l + (wt - wb);
                    }
                } else {
                    // The start: the last state plus uniform jitter.
                    let jitter = rngs[j].uniform_vec(d, -init, init);
                    for ((xv, l), u) in xr.iter_mut().zip(last).zip(jitter) {
                        *xv = l + u;
                    }
                }
            }
            if noise > 0.0 && steps > 0 {
                for (zr, rng) in z[..m * steps * d]
                    .chunks_exact_mut(steps * d)
                    .zip(&mut rngs)
                {
                    rng.fill_normal(zr);
                }
            }
            // The conditioning's share of the first layer, fixed for the
            // whole chain.
            self.f.cond_preactivation(Some(&cond), m, &mut pre);
            let mut prev = Vec::new();
            for s in 0..steps {
                if noise > 0.0 {
                    for (j, xr) in x.chunks_exact_mut(d).enumerate() {
                        let zs = &z[(j * steps + s) * d..(j * steps + s + 1) * d];
                        xr.iter_mut().zip(zs).for_each(|(v, z)| *v += z * noise);
                    }
                }
                self.f.energy_and_grad_pre(&x, &pre, &mut e, &mut g);
                self.sampler.descend(&mut x, &g, 1.0);
                ran += 1;
                if settled(tolerance, &mut prev, &e) {
                    break;
                }
            }
            self.f.energy_pre(&x, &pre, &mut e);
            for j in 0..m {
                let xr = &x[j * d..(j + 1) * d];
                states[(j * h + t) * d..(j * h + t + 1) * d].copy_from_slice(xr);
                energies[j * h + t] = e[j];
                let c = &mut ctx[j * k * d..(j + 1) * k * d];
                c.copy_within(d.., 0);
                c[(k - 1) * d..].copy_from_slice(xr);
            }
        }
        ran
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::EnergyModel;
    use crate::models::MlpEnergyConfig;
    use crate::params::ParamStore;
    use crate::rollout::rollout;
    use crate::sampling::langevin::LangevinConfig;
    use crate::test_util::rel_err;
    use candle_core::Device;

    fn model(k: usize, a: usize) -> MlpEnergy {
        let mut cfg = MlpEnergyConfig::new(5);
        cfg.context_len = k;
        cfg.action_dim = a;
        cfg.hidden = vec![32, 32];
        MlpEnergy::init(&cfg, &ParamStore::new(4, &Device::Cpu))
            .unwrap()
            .frozen()
    }

    fn settings(particles: usize, init_noise: f64, step: f64, noise: f64) -> RolloutConfig {
        RolloutConfig {
            horizon: 4,
            particles,
            init_noise,
            langevin: LangevinConfig {
                steps: 6,
                step_size: step,
                noise_scale: noise,
                grad_clip: None,
                clamp: None,
                tolerance: None,
            },
        }
    }

    #[test]
    fn without_noise_it_equals_the_tensor_rollout() -> Result<()> {
        let dev = Device::Cpu;
        let m = model(2, 3);
        let plain = m.without_fused_path();
        let mut rng = Rng::new(1);
        let ctx = Tensor::from_vec(rng.normal_vec(2 * 2 * 5), (2, 2, 5), &dev)?;
        let acts = Tensor::from_vec(rng.normal_vec(2 * 4 * 3), (2, 4, 3), &dev)?;
        let rc = settings(3, 0.0, 0.1, 0.0);
        let fused = rollout(&m, &ctx, Some(&acts), &rc, &mut Rng::new(2))?;
        let tensor = rollout(&plain, &ctx, Some(&acts), &rc, &mut Rng::new(2))?;
        assert_eq!(fused.states.dims(), [2, 3, 4, 5]);
        assert_eq!(fused.langevin_steps, tensor.langevin_steps);
        assert!(rel_err(&fused.states, &tensor.states) < 1e-5);
        assert!(rel_err(&fused.energies, &tensor.energies) < 1e-5);
        // The chains moved: predictions differ from the last context state.
        let last = ctx
            .narrow(1, 1, 1)?
            .unsqueeze(1)?
            .broadcast_as((2, 3, 1, 5))?;
        let moved = (fused.states.narrow(2, 0, 1)? - last)?.abs()?.max_all()?;
        assert!(moved.to_scalar::<f32>()? > 1e-3);
        Ok(())
    }

    #[test]
    fn results_depend_on_the_seed_not_on_the_thread_count() -> Result<()> {
        let dev = Device::Cpu;
        let m = model(1, 0);
        let ctx = Tensor::from_vec(Rng::new(3).normal_vec(5), (1, 1, 5), &dev)?;
        let rc = settings(70, 0.3, 0.05, 0.01);
        let run = |threads: usize, seed: u64| -> Result<Vec<f32>> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            pool.install(|| rollout(&m, &ctx, None, &rc, &mut Rng::new(seed)))?
                .states
                .flatten_all()?
                .to_vec1()
        };
        let one = run(1, 9)?;
        assert_eq!(one, run(2, 9)?);
        assert_eq!(one, run(3, 9)?);
        assert_ne!(one, run(2, 10)?);
        Ok(())
    }

    #[test]
    fn noise_accumulates_as_a_gaussian_random_walk() -> Result<()> {
        // No gradient step and no start jitter: after K steps each coordinate
        // moved by the sum of K normals of scale sigma, variance K sigma^2.
        let dev = Device::Cpu;
        let m = model(1, 0);
        let ctx = Tensor::zeros((1, 1, 5), DType::F32, &dev)?;
        let mut rc = settings(400, 0.0, 0.0, 0.1);
        rc.horizon = 1;
        let r = rollout(&m, &ctx, None, &rc, &mut Rng::new(5))?;
        let v: Vec<f32> = r.states.flatten_all()?.to_vec1()?;
        let (mean, var) = crate::test_util::mean_and_variance(&v);
        let want = 6.0 * 0.01;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - want).abs() < 0.1 * want, "variance {var} vs {want}");
        Ok(())
    }
}
