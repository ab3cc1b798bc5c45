//! The paper's KL term (its appendix; the official code's `loss_energy`,
//! dropped by `--zero_kl` in every README run but kept by the dSprites
//! fine-tuning `gentest`): `mean_i E_stop(x_K,i(theta))`, the energy of the
//! chain's end under weights held fixed, differentiated through the chain
//! itself, so that training also makes the sampler's own steps land lower.
//!
//! Truncated here to the last Langevin step (the earlier steps are taken as
//! constants), and computed without second-order autograd, which Candle
//! does not give: with `x' = x_{K-1} + noise` and
//! `x_K = clamp(x' - step * clip(grad_x E_theta(x')))`,
//!
//! `d/dtheta mean_i E(x_K,i) = -step * d/dtheta sum_i a_i . grad_x E_theta(x'_i)`,
//! `a_i = m_i * grad_x E(x_K,i) / B`
//!
//! (`m_i`: 1 where neither the clamp nor the clip was active), and the mixed
//! derivative on the right is a directional difference of parameter
//! gradients: `[grad_theta E(x' + h a) - grad_theta E(x' - h a)] / (2 h)`.
//! So the term is two more rows per negative in the weighted parameter
//! gradient the trainer already computes: `x' + h a` at weight
//! `-coeff step / (2 h)`, `x' - h a` at `+coeff step / (2 h)`.

use candle_core::{Result, Tensor};

use crate::energy::{energy_and_grad, EnergyTerm};
use crate::sampling::langevin::LangevinConfig;
use crate::Rng;

/// The largest entry of the finite-difference offset `h a`: small against
/// the samples' scale, large against f32 rounding of the gradients.
const OFFSET: f64 = 1e-3;

/// The chain's last step, kept: its noisy start `x'`, its end `x_K`, and 1
/// where the step's output depends on the gradient (no clip, no clamp).
pub struct LastStep {
    pub start: Tensor,
    pub end: Tensor,
    pub free: Tensor,
}

/// One Langevin step from `x` as [`crate::sampling::langevin`] takes it
/// (noise, gradient at the noisy point, clip, step, clamp), keeping what the
/// KL term needs.
pub fn last_step(
    cfg: &LangevinConfig,
    terms: &[EnergyTerm],
    x: &Tensor,
    rng: &mut Rng,
) -> Result<LastStep> {
    let start = if cfg.noise_scale > 0.0 {
        let noise = Tensor::from_vec(rng.normal_vec(x.elem_count()), x.shape(), x.device())?;
        (x + (noise * cfg.noise_scale)?)?
    } else {
        x.clone()
    };
    let (_, mut g) = energy_and_grad(terms, &start)?;
    let mut free = g.ones_like()?;
    if let Some(clip) = cfg.grad_clip {
        free = (free * g.abs()?.lt(clip)?.to_dtype(g.dtype())?)?;
        g = g.clamp(-clip, clip)?;
    }
    let mut end = (&start - (g * cfg.step_size)?)?;
    if let Some([lo, hi]) = cfg.clamp {
        let dt = end.dtype();
        free = ((free * end.gt(lo)?.to_dtype(dt)?)? * end.lt(hi)?.to_dtype(dt)?)?;
        end = end.clamp(lo, hi)?;
    }
    Ok(LastStep { start, end, free })
}

/// Rows and their weights in a weighted parameter gradient `sum_j w_j
/// grad_theta E(rows_j)`, with the chains' conditioning repeated for both
/// offsets.
pub struct KlRows {
    pub x: Tensor,
    pub cond: Option<Tensor>,
    pub weights: Vec<f32>,
}

/// The rows that add `coeff` times the KL term's gradient for the chains
/// whose last step is `step`, conditioned on `cond`; `None` when the term's
/// gradient is zero (every entry clamped or clipped).
pub fn kl_rows(
    cfg: &LangevinConfig,
    terms: &[EnergyTerm],
    step: &LastStep,
    cond: Option<&Tensor>,
    coeff: f64,
) -> Result<Option<KlRows>> {
    let b = step.end.dim(0)?;
    let (_, g_end) = energy_and_grad(terms, &step.end)?;
    let a = ((g_end * &step.free)? / b as f64)?;
    let largest = f64::from(a.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?);
    if !(largest > 0.0 && largest.is_finite()) {
        return Ok(None);
    }
    let h = OFFSET / largest;
    let offset = (a * h)?;
    let x = Tensor::cat(&[(&step.start + &offset)?, (&step.start - &offset)?], 0)?;
    let cond = match cond {
        Some(c) => Some(Tensor::cat(&[c, c], 0)?),
        None => None,
    };
    let w = (coeff * cfg.step_size / (2.0 * h)) as f32;
    let mut weights = vec![-w; b];
    weights.extend(std::iter::repeat_n(w, b));
    Ok(Some(KlRows { x, cond, weights }))
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::energy::{EnergyFunction, EnergyModel};
    use crate::models::{MlpEnergy, MlpEnergyConfig};
    use crate::params::ParamStore;

    /// `mean_i E_fixed(x_K,i(theta))` for the model's current parameters,
    /// the outer energy under `fixed`.
    fn kl_value(
        cfg: &LangevinConfig,
        model: &MlpEnergy,
        fixed: &MlpEnergy,
        x: &Tensor,
        c: &Tensor,
    ) -> Result<f64> {
        let frozen = model.frozen();
        let terms = [EnergyTerm::new(
            &frozen as &dyn EnergyFunction,
            Some(c.clone()),
        )];
        let step = last_step(cfg, &terms, x, &mut Rng::new(0))?;
        let e = fixed.energy(&step.end, Some(c))?.mean_all()?;
        Ok(f64::from(e.to_scalar::<f32>()?))
    }

    /// The weighted rows' parameter gradient is the KL term's gradient
    /// through the last step, against central differences in every
    /// parameter of a small conditional MLP, with some entries clamped.
    #[test]
    fn kl_rows_give_the_gradient_through_the_last_step() -> anyhow::Result<()> {
        check_kl_gradient(false)
    }

    /// As above with the gradient clipped (at its median, so that half the
    /// entries are) instead of clamped.
    #[test]
    fn kl_rows_give_the_gradient_through_a_clipped_step() -> anyhow::Result<()> {
        check_kl_gradient(true)
    }

    fn check_kl_gradient(clip: bool) -> anyhow::Result<()> {
        let dev = Device::Cpu;
        let mut mcfg = MlpEnergyConfig::new(3);
        mcfg.action_dim = 2;
        mcfg.hidden = vec![16, 16];
        mcfg.activation = crate::Activation::Silu;
        let params = ParamStore::new(7, &dev);
        let mut model = MlpEnergy::init(&mcfg, &params)?;
        let mut rng = Rng::new(3);
        let x = Tensor::from_vec(rng.normal_vec(8 * 3), (8, 3), &dev)?;
        let c = Tensor::from_vec(rng.normal_vec(8 * 2), (8, 2), &dev)?;
        let coeff = 1.5;

        let frozen = model.frozen();
        let terms = [EnergyTerm::new(
            &frozen as &dyn EnergyFunction,
            Some(c.clone()),
        )];
        let mut g: Vec<f32> = energy_and_grad(&terms, &x)?.1.flatten_all()?.to_vec1()?;
        g.iter_mut().for_each(|v| *v = v.abs());
        g.sort_by(f32::total_cmp);
        let cfg = LangevinConfig {
            steps: 1,
            step_size: 4.0,
            noise_scale: 0.0,
            // Halfway between two entries: none sits on the kink.
            grad_clip: clip.then_some(f64::from(g[g.len() / 2 - 1] + g[g.len() / 2]) / 2.0),
            clamp: (!clip).then_some([-1.0, 1.0]),
            tolerance: None,
        };
        let step = last_step(&cfg, &terms, &x, &mut Rng::new(0))?;
        let free = step.free.sum_all()?.to_scalar::<f32>()?;
        assert!(free < 24.0 && free > 0.0, "{free} of 24 free");
        let rows = kl_rows(&cfg, &terms, &step, Some(&c), coeff)?.expect("a gradient");
        let w = Tensor::from_vec(rows.weights.clone(), rows.weights.len(), &dev)?;
        let surrogate = (model.energy(&rows.x, rows.cond.as_ref())? * w)?.sum_all()?;
        let grads = surrogate.backward()?;

        // A copy of its own: the frozen model shares the biases' storage.
        let copies = params
            .tensors()
            .into_iter()
            .map(|(k, t)| Ok((k, t.copy()?)));
        let copies = copies.collect::<candle_core::Result<_>>()?;
        let fixed = MlpEnergy::init(&mcfg, &ParamStore::from_tensors(copies, &dev)?)?;
        let h = 1e-3;
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for (name, var) in params.trainable() {
            let g: Vec<f32> = grads
                .get(var.as_tensor())
                .expect(&name)
                .flatten_all()?
                .to_vec1()?;
            let base = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            for (i, &gi) in g.iter().enumerate() {
                let mut f = [0.0; 2];
                for (k, sign) in [1.0f32, -1.0].into_iter().enumerate() {
                    let mut v = base.clone();
                    v[i] += sign * h as f32;
                    set(&var, v)?;
                    model.refresh()?;
                    f[k] = kl_value(&cfg, &model, &fixed, &x, &c)?;
                }
                set(&var, base.clone())?;
                model.refresh()?;
                let fd = coeff * (f[0] - f[1]) / (2.0 * h);
                num += (fd - f64::from(gi)).powi(2);
                den += fd.powi(2);
            }
        }
        let rel = num.sqrt() / den.sqrt();
        assert!(den > 1e-8, "a KL gradient to check");
        assert!(rel < 0.05, "relative error {rel:.4}");
        Ok(())
    }

    fn set(var: &Var, v: Vec<f32>) -> candle_core::Result<()> {
        let shape = var.as_tensor().shape().clone();
        var.set(&Tensor::from_vec(v, shape, var.device())?)
    }
}
