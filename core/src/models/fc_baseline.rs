//! The paper's feed-forward baseline (Section 5): a predictor
//! `s_t [, a_t] -> s_{t+1}` of the same width and depth as the energy MLP, with
//! spectral norm, trained by mean squared error.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::{default_hidden, default_true};
use crate::error::CoreError;
use crate::models::spectral::SnLinear;
use crate::Activation;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcBaselineConfig {
    pub state_dim: usize,
    /// Context states `k` fed to the predictor (at least 1).
    #[serde(default = "one")]
    pub context_len: usize,
    #[serde(default)]
    pub action_dim: usize,
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "default_true")]
    pub spectral_norm: bool,
    /// Predict the change from the last context state (`s_t + f(..)`) rather
    /// than the next state itself. With spectral norm on every layer a plain
    /// predictor struggles to even copy its input; the residual form is the
    /// stronger, fairer baseline.
    #[serde(default = "default_true")]
    pub residual: bool,
}

fn one() -> usize {
    1
}

impl FcBaselineConfig {
    pub fn input_dim(&self) -> usize {
        self.context_len * self.state_dim + self.action_dim
    }

    pub fn validate(&self) -> std::result::Result<(), CoreError> {
        if self.state_dim == 0 || self.context_len == 0 {
            return Err(CoreError::config(
                "fc_baseline needs state_dim > 0 and context_len > 0",
            ));
        }
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err(CoreError::config(
                "fc_baseline.hidden needs at least one layer of positive width",
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct FcBaseline {
    cfg: FcBaselineConfig,
    layers: Vec<SnLinear>,
    out: SnLinear,
}

impl FcBaseline {
    pub const KIND: &'static str = "fc_baseline";

    /// Parameters `layer{i}.*` and `out.*`.
    pub fn new(cfg: &FcBaselineConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let (layers, width) =
            super::hidden_stack(cfg.input_dim(), &cfg.hidden, cfg.spectral_norm, &vb)?;
        let out = SnLinear::new(width, cfg.state_dim, true, cfg.spectral_norm, vb.pp("out"))?;
        Ok(Self {
            cfg: cfg.clone(),
            layers,
            out,
        })
    }

    pub fn config(&self) -> &FcBaselineConfig {
        &self.cfg
    }

    /// One spectral-norm power iteration on every layer (once per training step).
    pub fn power_iteration(&mut self) -> Result<()> {
        self.layers
            .iter_mut()
            .chain(std::iter::once(&mut self.out))
            .try_for_each(|l| l.weight_mut().power_iteration())
    }

    /// Recomputes the normalised weights after an optimiser step.
    pub fn refresh(&mut self) -> Result<()> {
        self.layers
            .iter_mut()
            .chain(std::iter::once(&mut self.out))
            .try_for_each(|l| l.weight_mut().refresh())
    }

    /// Predicted next state.
    ///
    /// # Shapes
    /// `input: [B, context_len * state_dim + action_dim]` (context states oldest
    /// first, then the action) to `[B, state_dim]`.
    pub fn predict(&self, input: &Tensor) -> Result<Tensor> {
        let h = super::forward_hidden(&self.layers, self.cfg.activation, input)?;
        let out = self.out.forward(&h)?;
        if self.cfg.residual {
            let d = self.cfg.state_dim;
            out + input.narrow(1, (self.cfg.context_len - 1) * d, d)?
        } else {
            Ok(out)
        }
    }

    /// Mean squared error of the prediction against `target: [B, state_dim]`.
    pub fn mse(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        (self.predict(input)? - target)?.sqr()?.mean_all()
    }
}
