//! Activation functions selectable from config.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x * sigmoid(x)`; smooth, the stable default for Langevin gradients.
    #[default]
    Silu,
    /// `max(x, 0.2 x)`, as in the official IGEBM code.
    LeakyRelu,
    Relu,
}

impl Activation {
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Silu => x.silu(),
            Self::LeakyRelu => x.maximum(&(x * 0.2)?),
            Self::Relu => x.relu(),
        }
    }
}
