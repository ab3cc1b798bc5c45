//! A small, seedable, serialisable random number generator.
//!
//! Candle's CPU RNG cannot be seeded, and exact resume needs the generator's
//! state in the checkpoint, so every random draw in training and sampling
//! (initial weights, noise, replay choices) comes from this xoshiro256++.

use serde::{Deserialize, Serialize};

/// xoshiro256++ (Blackman & Vigna) with a SplitMix64 seeder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    state: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose whole stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut s = seed;
        let state = [
            splitmix64(&mut s),
            splitmix64(&mut s),
            splitmix64(&mut s),
            splitmix64(&mut s),
        ];
        Self { state }
    }

    /// An independent generator derived from this seed and a label (for example
    /// a parameter name), so that draws do not depend on construction order.
    pub fn derived(seed: u64, label: &str) -> Self {
        let mut h: u64 = 0xCBF2_9CE4_8422_2325;
        for b in label.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
        Self::new(seed ^ h.rotate_left(17))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n); `n` must be positive.
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        // Lemire's multiply-shift; the bias is below 2^-64 * n, negligible here.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Standard normal by Box-Muller.
    #[inline]
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// `n` standard normals as f32, two per Box-Muller draw (24-bit uniforms,
    /// so `|z| <= 5.8`), computed in f32 blocks that vectorise.
    pub fn normal_vec(&mut self, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; n];
        self.fill_normal(&mut out);
        out
    }

    /// Fills `out` with standard normals (the stream of [`Self::normal_vec`]).
    pub fn fill_normal(&mut self, out: &mut [f32]) {
        let mut bits = [0u64; NORMAL_BLOCK];
        let mut block = [0f32; 2 * NORMAL_BLOCK];
        for chunk in out.chunks_mut(2 * NORMAL_BLOCK) {
            for b in &mut bits[..chunk.len().div_ceil(2)] {
                *b = self.next_u64();
            }
            box_muller_dispatch(&bits, &mut block);
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }

    /// `n` uniforms in [lo, hi) as f32.
    pub fn uniform_vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n)
            .map(|_| (lo + (hi - lo) * self.uniform()) as f32)
            .collect()
    }
}

/// Box-Muller pairs per block of [`Rng::fill_normal`].
const NORMAL_BLOCK: usize = 64;

/// [`box_muller`] compiled for AVX-512 or AVX2 where the CPU has them.
#[allow(unsafe_code)]
fn box_muller_dispatch(bits: &[u64; NORMAL_BLOCK], out: &mut [f32; 2 * NORMAL_BLOCK]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512(bits: &[u64; NORMAL_BLOCK], out: &mut [f32; 2 * NORMAL_BLOCK]) {
            box_muller(bits, out)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(bits: &[u64; NORMAL_BLOCK], out: &mut [f32; 2 * NORMAL_BLOCK]) {
            box_muller(bits, out)
        }
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { avx512(bits, out) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { avx2(bits, out) };
        }
    }
    box_muller(bits, out)
}

/// Two normals from each 64-bit draw: `u1` from its top 24 bits (in (0, 1]),
/// `u2` from bits 8..32.
#[inline(always)]
fn box_muller(bits: &[u64; NORMAL_BLOCK], out: &mut [f32; 2 * NORMAL_BLOCK]) {
    const SCALE: f32 = 1.0 / 16_777_216.0;
    for (b, pair) in bits.iter().zip(out.chunks_exact_mut(2)) {
        let u1 = 1.0 - (b >> 40) as f32 * SCALE;
        let u2 = ((b >> 8) & 0xFF_FFFF) as f32 * SCALE;
        let r = (-2.0 * ln_unit(u1)).sqrt();
        let (s, c) = sin_cos_turns(u2);
        pair[0] = r * c;
        pair[1] = r * s;
    }
}

/// `ln(x)` for `x` in (0, 1], branch-free: `x = 2^e m` with `m` in
/// [sqrt(1/2), sqrt(2)), `ln m = 2 atanh((m - 1) / (m + 1))` to t^9
/// (absolute error below 1e-7).
#[inline(always)]
fn ln_unit(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xFF) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007F_FFFF) | 0x3F80_0000);
    let big = m > std::f32::consts::SQRT_2;
    m = if big { 0.5 * m } else { m };
    e += i32::from(big);
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let ln_m = 2.0 * t * (1.0 + t2 * (1.0 / 3.0 + t2 * (0.2 + t2 * (1.0 / 7.0 + t2 / 9.0))));
    e as f32 * std::f32::consts::LN_2 + ln_m
}

/// `(sin 2 pi u, cos 2 pi u)` for `u` in [0, 1), branch-free: the nearest
/// quarter turn, then Taylor polynomials on |phi| <= pi/4 (error below 1e-7).
#[inline(always)]
fn sin_cos_turns(u: f32) -> (f32, f32) {
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: round to nearest
    let shifted = 4.0 * u + ROUND;
    let q = shifted - ROUND;
    let phi = std::f32::consts::TAU * (u - 0.25 * q);
    let p2 = phi * phi;
    let s = phi * (1.0 - p2 / 6.0 * (1.0 - p2 / 20.0 * (1.0 - p2 / 42.0 * (1.0 - p2 / 72.0))));
    let c = 1.0
        - p2 / 2.0 * (1.0 - p2 / 12.0 * (1.0 - p2 / 30.0 * (1.0 - p2 / 56.0 * (1.0 - p2 / 90.0))));
    // The quarter count from the mantissa bits (an `as` cast would not vectorise).
    let quadrant = shifted.to_bits().wrapping_sub(ROUND.to_bits()) & 3;
    let (s1, c1) = if quadrant & 1 == 1 { (c, -s) } else { (s, c) };
    if quadrant & 2 == 2 {
        (-s1, -c1)
    } else {
        (s1, c1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_state_round_trips() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let json = serde_json::to_string(&a).expect("serialise");
        let mut c: Rng = serde_json::from_str(&json).expect("parse");
        assert_eq!(a.next_u64(), c.next_u64());
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn normals_have_unit_moments() {
        let mut r = Rng::new(3);
        let v = r.normal_vec(200_000);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

    /// The f32 pieces of Box-Muller against libm, and the normals' mass
    /// within 1, 2 and 3 sigma against the normal distribution's.
    #[test]
    fn fast_normals_follow_the_normal_distribution() {
        for i in 1..=100_000 {
            let u = i as f32 / 100_000.0;
            assert!(
                (ln_unit(u) - u.ln()).abs() < 2e-7 * (1.0 + u.ln().abs()),
                "ln {u}"
            );
            let (s, c) = sin_cos_turns(u - 1e-5);
            let a = std::f64::consts::TAU * f64::from(u - 1e-5);
            assert!((f64::from(s) - a.sin()).abs() < 3e-7, "sin {u}");
            assert!((f64::from(c) - a.cos()).abs() < 3e-7, "cos {u}");
        }
        let v = Rng::new(11).normal_vec(400_001);
        assert_eq!(v.len(), 400_001);
        let n = v.len() as f64;
        for (k, want) in [(1.0f32, 0.682_689), (2.0, 0.954_500), (3.0, 0.997_300)] {
            let got = v.iter().filter(|x| x.abs() < k).count() as f64 / n;
            assert!(
                (got - want).abs() < 0.003,
                "within {k} sigma: {got} vs {want}"
            );
        }
        let pairs = v
            .chunks_exact(2)
            .map(|p| f64::from(p[0] * p[1]))
            .sum::<f64>()
            / (n / 2.0);
        assert!(pairs.abs() < 0.01, "pair correlation {pairs}");
        let mut a = Rng::new(4);
        let mut b = Rng::new(4);
        let mut filled = vec![0f32; 301];
        a.fill_normal(&mut filled);
        assert_eq!(filled, b.normal_vec(301));
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = Rng::new(9);
        let mut seen = [0usize; 5];
        for _ in 0..5000 {
            seen[r.below(5)] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
    }
}
