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

    /// `a = act(z)`, then `z` is overwritten with `act'(z)`; one exponential per
    /// element for SiLU, in loops the compiler vectorises.
    pub fn activate_in_place(self, z: &mut [f32], a: &mut [f32]) {
        match self {
            Activation::Silu => {
                for (zv, av) in z.iter_mut().zip(a.iter_mut()) {
                    let x = *zv;
                    let sg = 1.0 / (1.0 + fast_exp(-x));
                    *av = x * sg;
                    *zv = sg * (1.0 + x * (1.0 - sg));
                }
            }
            Activation::LeakyRelu => {
                for (zv, av) in z.iter_mut().zip(a.iter_mut()) {
                    let x = *zv;
                    let pos = x >= 0.0;
                    *av = if pos { x } else { 0.2 * x };
                    *zv = if pos { 1.0 } else { 0.2 };
                }
            }
            Activation::Relu => {
                for (zv, av) in z.iter_mut().zip(a.iter_mut()) {
                    let x = *zv;
                    let pos = x > 0.0;
                    *av = if pos { x } else { 0.0 };
                    *zv = if pos { 1.0 } else { 0.0 };
                }
            }
        }
    }
}

/// `e^x` in f32 without branches (Cody-Waite range reduction and a degree-6
/// polynomial, relative error about 2e-7 over the clamped range), so that
/// loops over it vectorise; libm's `expf` is a call per element.
#[inline(always)]
pub(crate) fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Round to nearest by the 1.5 * 2^23 trick: `f32::round` is a libm call
    // on baseline x86-64, which would stop the loop from vectorising.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    // e^r on |r| <= ln2 / 2, Taylor coefficients to r^6.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_matches_libm() {
        let mut worst = 0.0f32;
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let (a, b) = (fast_exp(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
    }
}
