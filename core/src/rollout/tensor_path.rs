//! The rollout on tensors: every predicted step is a Langevin chain of
//! [`LangevinSampler::run`] over all particles at once.

use std::time::Instant;

use candle_core::{Result, Tensor};

use super::config::{Rollout, RolloutConfig, WarmSteps};
use crate::energy::{EnergyFunction, EnergyTerm};
use crate::models::MlpEnergy;
use crate::sampling::langevin::{LangevinSampler, StepBudget};
use crate::Rng;

/// The rollout of [`super::rollout_from`], shapes already checked.
#[allow(clippy::too_many_arguments)]
pub(super) fn rollout(
    model: &MlpEnergy,
    context: &Tensor,
    actions: Option<&Tensor>,
    cfg: &RolloutConfig,
    warm: Option<(&Tensor, WarmSteps)>,
    sampler: &LangevinSampler,
    rng: &mut Rng,
    deadline: Option<Instant>,
) -> Result<Rollout> {
    let mc = model.config();
    let (b, k, d) = context.dims3()?;
    let (h, p) = (cfg.horizon, cfg.particles.max(1));
    let n = b * p;
    // Particle i of start j is row j * P + i.
    let mut ctx = context
        .unsqueeze(1)?
        .repeat((1, p, 1, 1))?
        .reshape((n, k, d))?;
    let actions = match actions {
        Some(a) => Some(
            a.unsqueeze(1)?
                .repeat((1, p, 1, 1))?
                .reshape((n, h, mc.action_dim))?,
        ),
        None => None,
    };
    let warm_sampler = match warm {
        Some((_, w)) => {
            let mut c = sampler.config().clone();
            c.steps = w.steps;
            Some(LangevinSampler::new(c).map_err(|e| candle_core::Error::Msg(e.to_string()))?)
        }
        None => None,
    };
    let mut states = Vec::with_capacity(h);
    let mut energies = Vec::with_capacity(h);
    let mut langevin_steps = 0;
    for t in 0..h {
        let mut parts = vec![ctx.reshape((n, k * d))?];
        if let Some(a) = &actions {
            parts.push(a.narrow(1, t, 1)?.squeeze(1)?);
        }
        let cond = Tensor::cat(&parts, 1)?;
        let last = ctx.narrow(1, k - 1, 1)?.squeeze(1)?;
        let warm_t = warm.filter(|(_, w)| w.is_warm(t, h)).map(|(w, _)| w);
        let x0 = match warm_t {
            // The last state plus the change the given trajectory makes at
            // this step (from the context's last state at the first step),
            // in the model's sample space.
            Some(w) => {
                let at = |t: usize| w.narrow(2, t, 1)?.reshape((n, d));
                let before = if t == 0 { last.clone() } else { at(t - 1)? };
                let start = (&last + (at(t)? - before)?)?;
                model.to_sample(&start, Some(&cond))?
            }
            None => {
                let jitter = Tensor::from_vec(
                    rng.uniform_vec(n * d, -cfg.init_noise, cfg.init_noise),
                    (n, d),
                    last.device(),
                )?;
                // The start is the last state (or the prior's prediction),
                // in the model's sample space.
                (model.chain_start(&last, Some(&cond))? + jitter)?
            }
        };
        let terms = [EnergyTerm::new(
            model as &dyn EnergyFunction,
            Some(cond.clone()),
        )];
        let budget = StepBudget {
            deadline: deadline.map(|d| {
                let now = Instant::now();
                now + d.saturating_duration_since(now) / (h - t) as u32
            }),
        };
        let chain = match (&warm_sampler, warm_t) {
            (Some(s), Some(_)) => s.run(&terms, &x0, None, rng, budget)?,
            _ => sampler.run(&terms, &x0, None, rng, budget)?,
        };
        langevin_steps += chain.steps_run;
        energies.push(model.energy(&chain.x, Some(&cond))?);
        let x = model.from_sample(&chain.x, Some(&cond))?;
        ctx = if k > 1 {
            Tensor::cat(&[ctx.narrow(1, 1, k - 1)?, x.unsqueeze(1)?], 1)?
        } else {
            x.unsqueeze(1)?
        };
        states.push(x);
    }
    Ok(Rollout {
        states: Tensor::stack(&states, 1)?.reshape((b, p, h, d))?,
        energies: Tensor::stack(&energies, 1)?.reshape((b, p, h))?,
        langevin_steps,
    })
}
