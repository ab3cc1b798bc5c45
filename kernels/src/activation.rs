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
        if act == Activation::Silu {
            let n = x.len();
            // SAFETY: AVX-512F is enabled here; the three slices hold `n`
            // floats each (checked by the callers).
            return silu512::run(x.as_ptr(), a.as_mut_ptr(), s.as_mut_ptr(), n);
        }
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
        if act == Activation::Silu {
            let (n, zp) = (z.len(), z.as_mut_ptr());
            // SAFETY: as in `slopes_avx512`; `z` is both the input and the
            // slopes, each 16-lane block read before it is written.
            return silu512::run(zp, a.as_mut_ptr(), zp, n);
        }
        in_place_generic(act, z, a)
    }

    /// SiLU and its slope, 16 lanes at a time: the branch-free `exp` of
    /// [`super::fast_exp`] in AVX-512, and the sigmoid's reciprocal from
    /// `rcp14` and one Newton step (relative error about 1e-8) instead of a
    /// division, the slowest instruction of the loop.
    #[cfg(target_arch = "x86_64")]
    mod silu512 {
        use std::arch::x86_64::*;

        #[target_feature(enable = "avx512f")]
        pub(super) unsafe fn run(x: *const f32, a: *mut f32, s: *mut f32, n: usize) {
            let mut i = 0;
            while i + 16 <= n {
                let v = _mm512_loadu_ps(x.add(i));
                let (av, sv) = value_and_slope(v);
                _mm512_storeu_ps(a.add(i), av);
                _mm512_storeu_ps(s.add(i), sv);
                i += 16;
            }
            if i < n {
                let m: __mmask16 = ((1u32 << (n - i)) - 1) as __mmask16;
                let v = _mm512_maskz_loadu_ps(m, x.add(i));
                let (av, sv) = value_and_slope(v);
                _mm512_mask_storeu_ps(a.add(i), m, av);
                _mm512_mask_storeu_ps(s.add(i), m, sv);
            }
        }

        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn value_and_slope(x: __m512) -> (__m512, __m512) {
            let one = _mm512_set1_ps(1.0);
            let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), x));
            let d = _mm512_add_ps(one, e);
            let r = _mm512_rcp14_ps(d);
            // Newton: r (2 - d r).
            let sg = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)));
            let value = _mm512_mul_ps(x, sg);
            // sg (1 + x (1 - sg))
            let slope = _mm512_mul_ps(sg, _mm512_fmadd_ps(x, _mm512_sub_ps(one, sg), one));
            (value, slope)
        }

        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn exp(x: __m512) -> __m512 {
            let x = _mm512_min_ps(
                _mm512_max_ps(x, _mm512_set1_ps(-87.0)),
                _mm512_set1_ps(88.0),
            );
            let round = _mm512_set1_ps(12_582_912.0);
            let shifted = _mm512_fmadd_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E), round);
            let nf = _mm512_sub_ps(shifted, round);
            let n = _mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_castps_si512(round));
            let r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(0.693_145_75), x);
            let r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(1.428_606_8e-6), r);
            let c = |v: f32| _mm512_set1_ps(v);
            let mut p = c(1.0 / 720.0);
            p = _mm512_fmadd_ps(p, r, c(1.0 / 120.0));
            p = _mm512_fmadd_ps(p, r, c(1.0 / 24.0));
            p = _mm512_fmadd_ps(p, r, c(1.0 / 6.0));
            p = _mm512_fmadd_ps(p, r, c(0.5));
            p = _mm512_fmadd_ps(p, r, c(1.0));
            p = _mm512_fmadd_ps(p, r, c(1.0));
            let scale = _mm512_slli_epi32::<23>(_mm512_add_epi32(n, _mm512_set1_epi32(127)));
            _mm512_mul_ps(p, _mm512_castsi512_ps(scale))
        }
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
pub fn fast_exp(x: f32) -> f32 {
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
        // An odd length (a partial last vector) and extremes (the clamped `exp`).
        let mut x: Vec<f32> = (-400..403).map(|i| i as f32 * 0.037).collect();
        x.extend([-200.0, -90.0, 90.0, 200.0, 0.0]);
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
