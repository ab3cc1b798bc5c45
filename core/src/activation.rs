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
    /// element for SiLU, in loops the compiler vectorises (with AVX-512 or
    /// AVX2 where the CPU has them).
    pub fn activate_in_place(self, z: &mut [f32], a: &mut [f32]) {
        assert_eq!(z.len(), a.len(), "activate: lengths differ");
        simd::dispatch_in_place(self, z, a);
    }

    /// `a = act(x)` and `slope = act'(x)`.
    pub fn activate_with_slopes(self, x: &[f32], a: &mut [f32], slope: &mut [f32]) {
        assert!(
            x.len() == a.len() && x.len() == slope.len(),
            "activate: lengths differ"
        );
        simd::dispatch(self, x, a, slope);
    }
}

/// The value and slope of `act` at `x`, written so that loops over it vectorise.
#[inline(always)]
fn value_and_slope(act: Activation, x: f32) -> (f32, f32) {
    match act {
        Activation::Silu => {
            let sg = 1.0 / (1.0 + fast_exp(-x));
            (x * sg, sg * (1.0 + x * (1.0 - sg)))
        }
        Activation::LeakyRelu => {
            let pos = x >= 0.0;
            (if pos { x } else { 0.2 * x }, if pos { 1.0 } else { 0.2 })
        }
        Activation::Relu => {
            let pos = x > 0.0;
            (if pos { x } else { 0.0 }, if pos { 1.0 } else { 0.0 })
        }
    }
}

#[inline(always)]
fn slopes_generic(act: Activation, x: &[f32], a: &mut [f32], s: &mut [f32]) {
    for ((x, a), s) in x.iter().zip(a.iter_mut()).zip(s.iter_mut()) {
        (*a, *s) = value_and_slope(act, *x);
    }
}

#[inline(always)]
fn in_place_generic(act: Activation, z: &mut [f32], a: &mut [f32]) {
    for (z, a) in z.iter_mut().zip(a.iter_mut()) {
        (*a, *z) = value_and_slope(act, *z);
    }
}

/// Runtime dispatch to copies of the loops compiled for wider vector units.
#[allow(unsafe_code)]
mod simd {
    use super::{in_place_generic, slopes_generic, Activation};

    pub(super) fn dispatch(act: Activation, x: &[f32], a: &mut [f32], s: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked just above).
                return unsafe { slopes_avx512(act, x, a, s) };
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                return unsafe { slopes_avx2(act, x, a, s) };
            }
        }
        slopes_generic(act, x, a, s)
    }

    pub(super) fn dispatch_in_place(act: Activation, z: &mut [f32], a: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked just above).
                return unsafe { in_place_avx512(act, z, a) };
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                return unsafe { in_place_avx2(act, z, a) };
            }
        }
        in_place_generic(act, z, a)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn slopes_avx512(act: Activation, x: &[f32], a: &mut [f32], s: &mut [f32]) {
        slopes_generic(act, x, a, s)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn slopes_avx2(act: Activation, x: &[f32], a: &mut [f32], s: &mut [f32]) {
        slopes_generic(act, x, a, s)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn in_place_avx512(act: Activation, z: &mut [f32], a: &mut [f32]) {
        in_place_generic(act, z, a)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn in_place_avx2(act: Activation, z: &mut [f32], a: &mut [f32]) {
        in_place_generic(act, z, a)
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
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    // The rounded integer sits in the low mantissa bits of `shifted`: reading
    // it from there keeps the loop vectorised (an `as i32` cast saturates and
    // compiles to scalar code).
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let r = x - n * LN2_HI - n * LN2_LO;
    // e^r on |r| <= ln2 / 2, Taylor coefficients to r^6.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(n_int.wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every dispatch path gives the scalar `value` and `slope`.
    #[test]
    fn vector_loops_match_the_scalar_definitions() {
        let x: Vec<f32> = (-400..400).map(|i| i as f32 * 0.037).collect();
        for act in [Activation::Silu, Activation::LeakyRelu, Activation::Relu] {
            let (mut a, mut s) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            act.activate_with_slopes(&x, &mut a, &mut s);
            let (mut z, mut a2) = (x.clone(), vec![0.0; x.len()]);
            act.activate_in_place(&mut z, &mut a2);
            for i in 0..x.len() {
                let (v, d) = (act.value(x[i]), act.slope(x[i]));
                assert!(
                    (a[i] - v).abs() <= 1e-6 * (1.0 + v.abs()),
                    "{act:?} value at {}",
                    x[i]
                );
                assert!((s[i] - d).abs() <= 1e-6, "{act:?} slope at {}", x[i]);
                assert_eq!((a2[i], z[i]), (a[i], s[i]));
            }
        }
    }

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
