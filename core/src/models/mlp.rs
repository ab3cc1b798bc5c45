//! `MlpEnergy`: an MLP over the concatenation of the conditioning inputs and the
//! sampled variable (the paper's trajectory model, Section 5: three hidden
//! layers of 128).
//!
//! `E(x | c) = head(act(L_n(... act(L_1([c, x])))))`, every layer spectrally
//! normalised. For trajectories `c = [s_{t-k+1}, ..., s_t, a_t]`, `x = s_{t+1}`.

use std::sync::Arc;

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::{default_hidden, default_true, LinearPrior};
use crate::energy::{EnergyFunction, EnergyModel, FusedEnergy};
use crate::error::CoreError;
use crate::models::fused::mlp::FusedMlp;
use crate::models::fused::{energy_and_grad_tensors, host_rows, inputs_ok, on_cpu_f32};
use crate::models::spectral::{SnLinear, SnWeight};
use crate::Activation;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpEnergyConfig {
    /// Size of the sampled variable `x` (one state). A trajectory config may
    /// leave it out: training takes it from the recording's robot.
    #[serde(default)]
    pub state_dim: usize,
    /// Number of context states `k` in the conditioning (0 for none).
    #[serde(default)]
    pub context_len: usize,
    /// Size of the action in the conditioning (0 for none).
    #[serde(default)]
    pub action_dim: usize,
    /// Hidden layer widths.
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "default_true")]
    pub spectral_norm: bool,
    /// When set (one positive scale per state dimension), the sampled variable
    /// is the scaled change `x = (s_{t+1} - s_t) / delta_scale` rather than
    /// `s_{t+1}` itself, `s_t` being the last context state: Langevin then
    /// works at the scale of one step's motion (spectral norm caps |dE/dx|
    /// near 1, so wells in `s_{t+1}` itself cannot be narrower than a
    /// Langevin step). Fitted on the training data; empty: absolute states.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delta_scale: Vec<f32>,
    /// With `delta_scale`: the sampled variable is the scaled residual of
    /// this linear prediction of the change, `x = (s_{t+1} - s_t - prior(c))
    /// / delta_scale`, `delta_scale` then being the residual's spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<LinearPrior>,
    /// Adds `base_weight * sum_j (sqrt(1 + x_j^2) - 1)` to the energy: a
    /// base measure on the sampled variable (Gaussian near zero, Laplace-like
    /// tails, so heavy-tailed data keeps bounded energies) that the network
    /// tilts. For a residual-space model, zero is the linear prior's
    /// prediction and one unit its residual's spread: the energy then keeps
    /// rising away from the data, where no training chain went. 0: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub base_weight: f32,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

impl MlpEnergyConfig {
    /// A config for `state_dim` with the paper's defaults (3 x 128, SiLU, SN).
    pub fn new(state_dim: usize) -> Self {
        Self {
            state_dim,
            context_len: 0,
            action_dim: 0,
            hidden: default_hidden(),
            activation: Activation::default(),
            spectral_norm: true,
            delta_scale: Vec::new(),
            prior: None,
            base_weight: 0.0,
        }
    }

    /// Width of the conditioning vector: `context_len * state_dim + action_dim`.
    pub fn cond_dim(&self) -> usize {
        self.context_len * self.state_dim + self.action_dim
    }

    pub fn validate(&self) -> std::result::Result<(), CoreError> {
        if self.state_dim == 0 {
            return Err(CoreError::config("mlp.state_dim must be positive"));
        }
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err(CoreError::config(
                "mlp.hidden needs at least one layer, each of positive width",
            ));
        }
        if !self.delta_scale.is_empty() {
            if self.delta_scale.len() != self.state_dim || self.context_len == 0 {
                return Err(CoreError::config(
                    "mlp.delta_scale needs one scale per state dimension and context_len >= 1",
                ));
            }
            if self
                .delta_scale
                .iter()
                .any(|s| !(s.is_finite() && *s > 0.0))
            {
                return Err(CoreError::config(
                    "mlp.delta_scale must be finite and positive",
                ));
            }
        }
        if !(self.base_weight.is_finite() && self.base_weight >= 0.0) {
            return Err(CoreError::config("mlp.base_weight must be finite and >= 0"));
        }
        if let Some(prior) = &self.prior {
            if self.delta_scale.is_empty() {
                return Err(CoreError::config(
                    "mlp.prior needs mlp.delta_scale (the residual's spread)",
                ));
            }
            prior.validate(self.cond_dim(), self.state_dim)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct MlpEnergy {
    cfg: MlpEnergyConfig,
    layers: Vec<SnLinear>,
    head: SnLinear,
    /// The fused CPU path: set on frozen copies of CPU models.
    fused: Option<Arc<FusedMlp>>,
}

impl MlpEnergy {
    pub fn config(&self) -> &MlpEnergyConfig {
        &self.cfg
    }

    /// The fused CPU form of the current (normalised) weights.
    pub(crate) fn fused_form(&self) -> Result<FusedMlp> {
        let layers: Vec<(&Tensor, Option<&Tensor>)> = self
            .layers()
            .map(|l| (l.weight().effective(), l.bias()))
            .collect();
        let cfg = &self.cfg;
        FusedMlp::new(
            &layers,
            cfg.activation,
            cfg.cond_dim(),
            cfg.state_dim,
            cfg.base_weight,
        )
    }

    /// The same frozen model without the fused path (autograd only), for
    /// checking one against the other.
    pub fn without_fused_path(&self) -> Self {
        Self {
            fused: None,
            ..self.clone()
        }
    }

    /// The state the sampled residual is measured from (the last context
    /// state, plus the prior's predicted change), and the residual's scale.
    fn last_state_and_scale(&self, cond: &Tensor) -> Result<(Tensor, Tensor)> {
        let d = self.cfg.state_dim;
        let mut last = cond.narrow(1, (self.cfg.context_len - 1) * d, d)?;
        if let Some(prior) = &self.cfg.prior {
            last = (last + prior.predict(cond)?)?;
        }
        let scale = Tensor::from_slice(&self.cfg.delta_scale, (1, d), cond.device())?;
        Ok((last, scale))
    }

    /// The sampled variable for next states `[B, D]` under `cond` (the
    /// identity unless `delta_scale` is set).
    pub fn to_sample(&self, next: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        match (self.cfg.delta_scale.is_empty(), cond) {
            (true, _) => Ok(next.clone()),
            (false, Some(c)) => {
                let (last, scale) = self.last_state_and_scale(c)?;
                let r = (next - last)?.broadcast_div(&scale)?;
                match &self.cfg.prior {
                    Some(prior) => prior.whiten(&r),
                    None => Ok(r),
                }
            }
            (false, None) => candle_core::bail!("a change-space model needs its context"),
        }
    }

    /// The next states for sampled variables `x` under `cond` (the inverse of
    /// [`MlpEnergy::to_sample`]).
    pub fn from_sample(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        match (self.cfg.delta_scale.is_empty(), cond) {
            (true, _) => Ok(x.clone()),
            (false, Some(c)) => {
                let (last, scale) = self.last_state_and_scale(c)?;
                let r = match &self.cfg.prior {
                    Some(prior) => prior.unwhiten(x)?,
                    None => x.clone(),
                };
                last + r.broadcast_mul(&scale)?
            }
            (false, None) => candle_core::bail!("a change-space model needs its context"),
        }
    }

    /// Where chains start, before their jitter: the last context state in
    /// sample space, or for a model with a prior its prediction (the zero
    /// residual).
    pub fn chain_start(&self, last: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        if self.cfg.prior.is_some() {
            return last.zeros_like();
        }
        self.to_sample(last, cond)
    }

    /// Energy of observed transitions: next states `[B, D]` after `cond`.
    pub fn transition_energy(&self, next: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        self.energy(&self.to_sample(next, cond)?, cond)
    }

    /// See [`EnergyModel::fused_energy_vjp`]: the fused gradients with respect
    /// to the effective weights and biases, dotted with those tensors.
    fn vjp(
        &self,
        x: &Tensor,
        cond: Option<&Tensor>,
        weight: &(dyn Fn(usize, f32) -> f32 + Sync),
    ) -> Result<(Tensor, Tensor)> {
        let f = self.fused_form()?;
        let (n, xv, cv) = host_rows(x, cond)?;
        let (e, grads) = f.energy_vjp(&xv, cv.as_deref(), weight);
        let dev = x.device();
        let mut total = Tensor::zeros((), DType::F32, dev)?;
        for (layer, (gw, gb)) in self.layers().zip(grads) {
            let w = layer.weight().effective();
            total = (total + (w * Tensor::from_vec(gw, w.shape(), dev)?)?.sum_all()?)?;
            if let Some(bias) = layer.bias() {
                total = (total + (bias * Tensor::from_vec(gb, bias.shape(), dev)?)?.sum_all()?)?;
            }
        }
        Ok((Tensor::from_vec(e, n, dev)?, total))
    }

    /// All linear layers, head last.
    pub fn layers(&self) -> impl Iterator<Item = &SnLinear> {
        self.layers.iter().chain(std::iter::once(&self.head))
    }
}

impl EnergyModel for MlpEnergy {
    type Config = MlpEnergyConfig;
    const KIND: &'static str = "mlp_energy";

    /// Parameters `layer{i}.weight|bias|weight_sn_u` and `head.*`.
    fn new(cfg: &MlpEnergyConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let (layers, width) = super::hidden_stack(
            cfg.cond_dim() + cfg.state_dim,
            &cfg.hidden,
            cfg.spectral_norm,
            &vb,
        )?;
        let head = SnLinear::new(width, 1, true, cfg.spectral_norm, vb.pp("head"))?;
        Ok(Self {
            cfg: cfg.clone(),
            layers,
            head,
            fused: None,
        })
    }

    fn spectral_weights(&mut self) -> Vec<&mut SnWeight> {
        self.layers
            .iter_mut()
            .chain(std::iter::once(&mut self.head))
            .map(SnLinear::weight_mut)
            .collect()
    }

    fn fused_energy_vjp(
        &self,
        x: &Tensor,
        cond: Option<&Tensor>,
        weight: &(dyn Fn(usize, f32) -> f32 + Sync),
    ) -> Option<Result<(Tensor, Tensor)>> {
        let (d, c) = (self.cfg.state_dim, self.cfg.cond_dim());
        let usable = on_cpu_f32(self.head.weight().effective()) && inputs_ok(x, cond, d, c);
        usable.then(|| self.vjp(x, cond, weight))
    }

    /// Frozen CPU models in f32 also get the fused energy-gradient path.
    fn frozen(&self) -> Self {
        let mut m = Self {
            cfg: self.cfg.clone(),
            layers: self.layers.iter().map(SnLinear::frozen).collect(),
            head: self.head.frozen(),
            fused: None,
        };
        let w = m.head.weight().effective();
        if on_cpu_f32(w) {
            m.fused = m.fused_form().ok().map(Arc::new);
        }
        m
    }
}

impl EnergyFunction for MlpEnergy {
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        let b = x.dim(0)?;
        let x = x.reshape((b, ()))?;
        if x.dim(1)? != self.cfg.state_dim {
            candle_core::bail!(
                "mlp energy: x has {} features, the model expects {}",
                x.dim(1)?,
                self.cfg.state_dim
            );
        }
        let input = match (cond, self.cfg.cond_dim()) {
            (None, 0) => x.clone(),
            (Some(c), d) if d > 0 && c.dims() == [b, d] => Tensor::cat(&[c, &x], 1)?,
            (c, d) => candle_core::bail!(
                "mlp energy: conditioning of shape {:?} given, the model expects [{b}, {d}]",
                c.map(|c| c.dims().to_vec())
            ),
        };
        let h = super::forward_hidden(&self.layers, self.cfg.activation, &input)?;
        let e = self.head.forward(&h)?.squeeze(1)?;
        if self.cfg.base_weight == 0.0 {
            return Ok(e);
        }
        let pseudo_huber = ((x.sqr()? + 1.0)?.sqrt()? - 1.0)?.sum(1)?;
        e + (pseudo_huber * f64::from(self.cfg.base_weight))?
    }

    fn fast_energy_and_grad(
        &self,
        x: &Tensor,
        cond: Option<&Tensor>,
    ) -> Option<Result<(Tensor, Tensor)>> {
        let f = self.fused.as_ref()?;
        // Anything unusual takes the autograd path, which names the problem.
        inputs_ok(x, cond, f.state_dim(), f.cond_dim())
            .then(|| energy_and_grad_tensors(x, cond, |x, c, e, g| f.energy_and_grad(x, c, e, g)))
    }

    fn fused(&self) -> Option<&dyn FusedEnergy> {
        self.fused.as_deref().map(|f| f as &dyn FusedEnergy)
    }
}
