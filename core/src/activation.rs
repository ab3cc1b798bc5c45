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

    /// The activation of one value (the fused CPU path).
    #[inline]
    pub fn value(self, z: f32) -> f32 {
        match self {
            Self::Silu => z / (1.0 + (-z).exp()),
            Self::LeakyRelu => z.max(0.2 * z),
            Self::Relu => z.max(0.0),
        }
    }

    /// Its derivative at `z` (at 0 the right-hand slope for the kinked ones,
    /// as candle's `maximum` and `relu` give).
    #[inline]
    pub fn slope(self, z: f32) -> f32 {
        match self {
            Self::Silu => {
                let s = 1.0 / (1.0 + (-z).exp());
                s * (1.0 + z * (1.0 - s))
            }
            Self::LeakyRelu => {
                if z >= 0.0 {
                    1.0
                } else {
                    0.2
                }
            }
            Self::Relu => {
                if z > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}
