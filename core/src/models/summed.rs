//! A sum of energy models trained as one: `E(x | c) = sum_k E_k(x | c_k)`,
//! each member reading its own columns `c_k` of the conditioning. Training
//! it fine-tunes independently trained energies together on their joint
//! data (the paper's fine-tuning of the summation energy before zero-shot
//! composition, Section 7).

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::energy::{EnergyFunction, EnergyModel};
use crate::models::spectral::SnWeight;

/// One member: its name (its parameters' prefix), network and the first
/// conditioning column it reads (it reads as many as its own config says).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummedMember<C> {
    pub name: String,
    pub cond_start: usize,
    pub cond_dim: usize,
    pub model: C,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummedConfig<C> {
    pub members: Vec<SummedMember<C>>,
}

impl<C> SummedConfig<C> {
    /// Columns of conditioning the sum reads: up to its widest member's end.
    pub fn cond_dim(&self) -> usize {
        self.members
            .iter()
            .map(|m| m.cond_start + m.cond_dim)
            .max()
            .unwrap_or(0)
    }
}

pub struct Summed<M> {
    members: Vec<M>,
    /// `(start, width)` of each member's conditioning columns.
    slices: Vec<(usize, usize)>,
}

impl<M> Summed<M> {
    /// The members, in config order.
    pub fn members(&self) -> &[M] {
        &self.members
    }

    fn cond_of(&self, k: usize, cond: Option<&Tensor>) -> Result<Option<Tensor>> {
        let (start, width) = self.slices[k];
        match (cond, width) {
            (_, 0) => Ok(None),
            (Some(c), w) => Ok(Some(c.narrow(1, start, w)?.contiguous()?)),
            (None, _) => candle_core::bail!("summed energy: member {k} needs conditioning"),
        }
    }
}

impl<M: EnergyFunction> EnergyFunction for Summed<M> {
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        let mut total: Option<Tensor> = None;
        for (k, m) in self.members.iter().enumerate() {
            let e = m.energy(x, self.cond_of(k, cond)?.as_ref())?;
            total = Some(match total {
                Some(t) => (t + e)?,
                None => e,
            });
        }
        total.ok_or_else(|| candle_core::Error::Msg("a summed energy needs a member".into()))
    }

    fn fast_energy_and_grad(
        &self,
        x: &Tensor,
        cond: Option<&Tensor>,
    ) -> Option<Result<(Tensor, Tensor)>> {
        let mut total: Option<(Tensor, Tensor)> = None;
        for (k, m) in self.members.iter().enumerate() {
            let c = match self.cond_of(k, cond) {
                Ok(c) => c,
                Err(e) => return Some(Err(e)),
            };
            let (e, g) = match m.fast_energy_and_grad(x, c.as_ref())? {
                Ok(eg) => eg,
                Err(e) => return Some(Err(e)),
            };
            total = Some(match total {
                None => (e, g),
                Some((e0, g0)) => match ((e0 + e), (g0 + g)) {
                    (Ok(e), Ok(g)) => (e, g),
                    (Err(err), _) | (_, Err(err)) => return Some(Err(err)),
                },
            });
        }
        total.map(Ok)
    }
}

impl<M: EnergyModel> EnergyModel for Summed<M> {
    type Config = SummedConfig<M::Config>;
    const KIND: &'static str = "summed";

    fn new(cfg: &Self::Config, vb: VarBuilder) -> Result<Self> {
        if cfg.members.is_empty() {
            candle_core::bail!("summed: at least one member");
        }
        let members = cfg
            .members
            .iter()
            .map(|m| M::new(&m.model, vb.pp(&m.name)))
            .collect::<Result<_>>()?;
        let slices = cfg
            .members
            .iter()
            .map(|m| (m.cond_start, m.cond_dim))
            .collect();
        Ok(Self { members, slices })
    }

    fn spectral_weights(&mut self) -> Vec<&mut SnWeight> {
        self.members
            .iter_mut()
            .flat_map(|m| m.spectral_weights())
            .collect()
    }

    fn frozen(&self) -> Self {
        Self {
            members: self.members.iter().map(M::frozen).collect(),
            slices: self.slices.clone(),
        }
    }

    fn set_dropout_seed(&mut self, seed: Option<u64>) {
        for (k, m) in self.members.iter_mut().enumerate() {
            m.set_dropout_seed(seed.map(|s| s ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9)));
        }
    }

    /// Each member's fused product, weighted by the loss's derivative at
    /// the summed energy (`dL/dE_k = dL/dE` for every member of a sum).
    fn fused_energy_vjp(
        &self,
        x: &Tensor,
        cond: Option<&Tensor>,
        weight: &(dyn Fn(usize, f32) -> f32 + Sync),
    ) -> Option<Result<(Tensor, Tensor)>> {
        let run = || -> Result<Option<(Tensor, Tensor)>> {
            let conds = (0..self.members.len())
                .map(|k| self.cond_of(k, cond))
                .collect::<Result<Vec<_>>>()?;
            // The summed energies first (frozen copies take the fused path;
            // a member with dropout reads them without this step's masks).
            let mut total: Option<Tensor> = None;
            for (m, c) in self.members.iter().zip(&conds) {
                let e = m.frozen().energy(&x.detach(), c.as_ref())?;
                total = Some(match total {
                    Some(t) => (t + e)?,
                    None => e,
                });
            }
            let Some(total) = total else {
                return Ok(None);
            };
            let energies: Vec<f32> = total.to_vec1()?;
            let at_sum = |i: usize, _member_energy: f32| weight(i, energies[i]);
            let mut scalar: Option<Tensor> = None;
            for (m, c) in self.members.iter().zip(&conds) {
                let Some(r) = m.fused_energy_vjp(x, c.as_ref(), &at_sum) else {
                    return Ok(None);
                };
                let (_, s) = r?;
                scalar = Some(match scalar {
                    Some(acc) => (acc + s)?,
                    None => s,
                });
            }
            Ok(scalar.map(|s| (total, s)))
        };
        run().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::{energy_and_grad, EnergyTerm};
    use crate::models::{ResNetEnergy, ResNetEnergyConfig, StageConfig};
    use crate::params::ParamStore;
    use crate::test_util::{assert_param_grads_match, rel_err};
    use crate::Rng;
    use candle_core::Device;

    fn member(name: &str, cond_start: usize, classes: usize) -> SummedMember<ResNetEnergyConfig> {
        let stage = |channels, downsample| StageConfig {
            channels,
            downsample,
        };
        SummedMember {
            name: name.into(),
            cond_start,
            cond_dim: classes,
            model: ResNetEnergyConfig {
                in_channels: 1,
                image_size: 10,
                num_classes: classes,
                stem_channels: 8,
                stages: vec![stage(8, true), stage(12, false)],
                ..ResNetEnergyConfig::mnist_small(classes)
            },
        }
    }

    /// Two ResNets reading different columns: the sum's energies, input
    /// gradients and fused parameter gradients (weighted at the summed
    /// energy) equal candle autograd's on the sum of the members.
    #[test]
    fn sum_gradients_match_autograd() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = SummedConfig {
            members: vec![member("a", 0, 3), member("b", 3, 4)],
        };
        assert_eq!(cfg.cond_dim(), 7);
        let params = ParamStore::new(3, &dev);
        let mut sum = Summed::<ResNetEnergy>::init(&cfg, &params)?;
        let mut rng = Rng::new(6);
        for (name, var) in params.vars() {
            if name.contains("class_") || name.contains("conv2.weight") && !name.ends_with("_u") {
                let noise = rng.normal_vec(var.elem_count());
                let noise = Tensor::from_vec(noise, var.shape(), &dev)?;
                var.set(&(var.as_tensor() + noise * 0.3)?)?;
            }
        }
        sum.refresh()?;
        let n = 5;
        let x = Tensor::from_vec(rng.normal_vec(n * 100), (n, 100), &dev)?;
        let c: Vec<f32> = (0..n * 7)
            .map(|j| f32::from((j % 7 < 3 && j % 7 == (j / 7) % 3) || j % 7 == 3 + (j / 7) % 4))
            .collect();
        let c = Tensor::from_vec(c, (n, 7), &dev)?;

        // Energies and input gradients, fused against autograd.
        let frozen = sum.frozen();
        let (ef, gf) = frozen.fast_energy_and_grad(&x, Some(&c)).expect("fused")?;
        let plain = [
            frozen.members()[0].without_fused_path(),
            frozen.members()[1].without_fused_path(),
        ];
        let terms = [
            EnergyTerm::new(&plain[0], Some(c.narrow(1, 0, 3)?.contiguous()?)),
            EnergyTerm::new(&plain[1], Some(c.narrow(1, 3, 4)?.contiguous()?)),
        ];
        let (ea, ga) = energy_and_grad(&terms, &x)?;
        assert!(rel_err(&ef, &ea) < 1e-5, "energy {}", rel_err(&ef, &ea));
        assert!(rel_err(&gf, &ga) < 1e-5, "grad {}", rel_err(&gf, &ga));

        // Parameter gradients of sum_i w(i, E_i) E_i.
        let weight = |i: usize, e: f32| {
            if i.is_multiple_of(2) {
                2.0 * e + 1.0
            } else {
                0.5 * e - 1.0
            }
        };
        let (e_vjp, surrogate) = sum
            .fused_energy_vjp(&x, Some(&c), &weight)
            .expect("fused")?;
        let g_fused = surrogate.backward()?;
        let e = sum.energy(&x, Some(&c))?;
        assert!(
            rel_err(&e_vjp, &e) < 1e-5,
            "vjp energies {}",
            rel_err(&e_vjp, &e)
        );
        let w: Vec<f32> = e
            .to_vec1::<f32>()?
            .iter()
            .enumerate()
            .map(|(i, &e)| weight(i, e))
            .collect();
        let g_auto = (e * Tensor::from_vec(w, n, &dev)?)?.sum_all()?.backward()?;
        let checked = assert_param_grads_match(&params, &g_fused, &g_auto, 1e-4, "summed");
        assert!(checked >= 20, "only {checked} parameters");
        Ok(())
    }
}
