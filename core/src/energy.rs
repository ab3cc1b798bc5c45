//! The energy-function interface shared by every model, the sampler and the
//! trainer, and weighted sums of energies (the paper's compositionality, 4.4).

use candle_core::{Result, Tensor, Var};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::models::spectral::SnWeight;
use crate::params::ParamStore;

/// A scalar energy per sample.
pub trait EnergyFunction {
    /// # Shapes
    /// `x: [B, ...]` (the sampled variable), `cond: [B, C]` (conditioning,
    /// `None` for unconditional models) to energies `[B]`.
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor>;

    /// Energies and `dE/dx` as tensors computed without autograd, where a
    /// model has such a path (its fused CPU form); `None` falls back to
    /// autograd.
    fn fast_energy_and_grad(
        &self,
        _x: &Tensor,
        _cond: Option<&Tensor>,
    ) -> Option<Result<(Tensor, Tensor)>> {
        None
    }

    /// The plain-buffer form of this energy, where it has one (a frozen
    /// MLP on the CPU): Langevin chains over a single such term then run
    /// without tensors. `None` for everything else.
    fn fused(&self) -> Option<&dyn FusedEnergy> {
        None
    }
}

/// The plain-buffer form of an energy (a model's fused CPU path): rows of
/// `f32` in, energies and `dE/dx` out, no tensors and no autograd. Samplers
/// and rollouts run whole chains on it; models hand it out through
/// [`EnergyFunction::fused`], so no caller names a concrete kernel.
pub trait FusedEnergy: Sync {
    /// `D`: values per sample row.
    fn state_dim(&self) -> usize;

    /// `C`: values per conditioning row (0 for an unconditional energy).
    fn cond_dim(&self) -> usize;

    /// The fewest rows worth a parallel task: callers that split rows
    /// across threads give each task at least this many.
    fn rows_per_task(&self) -> usize;

    /// Energies `[n]` and `dE/dx` `[n, D]` of `x: [n, D]` under `cond:
    /// [n, C]`, split across threads for large batches.
    fn energy_and_grad(
        &self,
        x: &[f32],
        cond: Option<&[f32]>,
        energy: &mut [f32],
        grad: &mut [f32],
    );

    /// The part of the energy's computation that depends on the
    /// conditioning alone, for `n` rows, into `pre`: fixed while a chain
    /// moves `x`, so computed once per chain.
    fn cond_preactivation(&self, cond: Option<&[f32]>, n: usize, pre: &mut Vec<f32>);

    /// As [`Self::energy_and_grad`] on the calling thread, the conditioning
    /// given as its [`Self::cond_preactivation`].
    fn energy_and_grad_pre(&self, x: &[f32], pre: &[f32], energy: &mut [f32], grad: &mut [f32]);

    /// As [`Self::energy_and_grad_pre`], energies only.
    fn energy_pre(&self, x: &[f32], pre: &[f32], energy: &mut [f32]);
}

/// A trainable energy model: built from its config and a parameter store.
pub trait EnergyModel: EnergyFunction + Sized {
    type Config: Clone + Serialize + DeserializeOwned;
    /// Name written to checkpoint manifests, checked on load.
    const KIND: &'static str;

    fn new(cfg: &Self::Config, vb: candle_nn::VarBuilder) -> Result<Self>;

    /// Every spectrally normalised weight of the model.
    fn spectral_weights(&mut self) -> Vec<&mut SnWeight>;

    /// One spectral-norm power iteration on every layer (once per training step).
    fn power_iteration(&mut self) -> Result<()> {
        self.spectral_weights()
            .into_iter()
            .try_for_each(SnWeight::power_iteration)
    }

    /// Recomputes the normalised weights after the raw weights changed (an
    /// optimiser step), without advancing the power iteration.
    fn refresh(&mut self) -> Result<()> {
        self.spectral_weights()
            .into_iter()
            .try_for_each(SnWeight::refresh)
    }

    /// A copy whose forward passes build no gradient path to parameters: used
    /// for Langevin sampling, so that sampling builds no parameter gradients.
    fn frozen(&self) -> Self;

    /// Training copies of models with dropout draw their masks from `seed`
    /// (set by the trainer for one step); `None` (the default, and what every
    /// loaded model has) turns dropout off. Models without dropout ignore it.
    fn set_dropout_seed(&mut self, _seed: Option<u64>) {}

    /// Energies `E` of `x: [B, ...]` and a scalar whose gradient with respect
    /// to the parameters is `sum_i w_i dE_i/dtheta`, `w_i = weight(i, E_i)`
    /// (for a loss whose terms are per sample, `w_i = dL/dE_i`), from a fused path with no autograd graph
    /// through the network: the scalar's graph covers only each parameter's
    /// own transform (spectral normalisation). `None` where the model has no
    /// such path (or the inputs are unusual); training then uses autograd.
    fn fused_energy_vjp(
        &self,
        _x: &Tensor,
        _cond: Option<&Tensor>,
        _weight: &(dyn Fn(usize, f32) -> f32 + Sync),
    ) -> Option<Result<(Tensor, Tensor)>> {
        None
    }

    /// Builds a model with fresh, seeded parameters.
    fn init(cfg: &Self::Config, params: &ParamStore) -> Result<Self> {
        Self::new(cfg, params.var_builder())
    }
}

/// One term of a summed energy: `weight * E(x | cond)`.
pub struct EnergyTerm<'a> {
    pub energy: &'a dyn EnergyFunction,
    pub cond: Option<Tensor>,
    pub weight: f64,
}

impl<'a> EnergyTerm<'a> {
    pub fn new(energy: &'a dyn EnergyFunction, cond: Option<Tensor>) -> Self {
        Self {
            energy,
            cond,
            weight: 1.0,
        }
    }

    pub fn weighted(mut self, weight: f64) -> Self {
        self.weight = weight;
        self
    }
}

/// `sum_i w_i E_i(x | c_i)`, `[B]`.
pub fn total_energy(terms: &[EnergyTerm], x: &Tensor) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for t in terms {
        let e = (t.energy.energy(x, t.cond.as_ref())? * t.weight)?;
        total = Some(match total {
            Some(acc) => (acc + e)?,
            None => e,
        });
    }
    total.ok_or_else(|| candle_core::Error::Msg("an energy needs at least one term".into()))
}

/// The summed energy `[B]` and its gradient with respect to `x` (same shape as
/// `x`). Only `x` is a variable here; for no parameter gradients, pass frozen
/// models.
pub fn energy_and_grad(terms: &[EnergyTerm], x: &Tensor) -> Result<(Tensor, Tensor)> {
    let mut fast: Option<(Tensor, Tensor)> = None;
    let mut slow: Vec<&EnergyTerm> = Vec::new();
    for t in terms {
        match t.energy.fast_energy_and_grad(x, t.cond.as_ref()) {
            Some(r) => {
                let (e, g) = r?;
                let (e, g) = if t.weight == 1.0 {
                    (e, g)
                } else {
                    ((e * t.weight)?, (g * t.weight)?)
                };
                fast = Some(match fast {
                    Some((e0, g0)) => ((e0 + e)?, (g0 + g)?),
                    None => (e, g),
                });
            }
            None => slow.push(t),
        }
    }
    if slow.is_empty() {
        return fast
            .ok_or_else(|| candle_core::Error::Msg("an energy needs at least one term".into()));
    }
    let (e, g) = autograd_energy_and_grad(&slow, x)?;
    match fast {
        Some((e0, g0)) => Ok(((e0 + e)?, (g0 + g)?)),
        None => Ok((e, g)),
    }
}

fn autograd_energy_and_grad(terms: &[&EnergyTerm], x: &Tensor) -> Result<(Tensor, Tensor)> {
    let xv = Var::from_tensor(&x.detach())?;
    let mut e = (terms[0]
        .energy
        .energy(xv.as_tensor(), terms[0].cond.as_ref())?
        * terms[0].weight)?;
    for t in &terms[1..] {
        e = (e + (t.energy.energy(xv.as_tensor(), t.cond.as_ref())? * t.weight)?)?;
    }
    let grads = e.sum_all()?.backward()?;
    let g = grads
        .get(xv.as_tensor())
        .cloned()
        .map_or_else(|| xv.as_tensor().zeros_like(), Ok)?;
    Ok((e.detach(), g))
}
