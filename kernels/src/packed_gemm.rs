//! Small matrix products against a constant right-hand side packed once: the
//! fused MLP multiplies 32-64 rows by the same weights thousands of times per
//! forecast, where a general gemm repacks the weights on every call.
//!
//! `B` (`k x n`) is stored as panels of 16 columns, each `k x 16` contiguous
//! and zero-padded; the AVX-512 kernel keeps an 8 x 32 block of the product in
//! registers and streams `A`'s rows and two panels. Without AVX-512 the
//! product goes to the `gemm` crate ([`crate::sgemm`]) on the unpacked copy.

#![allow(unsafe_code)]

use crate::sgemm::{matmul, MatRef};

/// Columns per panel: one AVX-512 register of f32.
const LANES: usize = 16;

/// A `k x n` matrix packed for [`PackedB::mul`].
#[derive(Debug, Clone)]
pub struct PackedB {
    k: usize,
    n: usize,
    /// `ceil(n / 16)` panels of `k x 16` (read by the AVX-512 kernel only).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    panels: Vec<f32>,
    /// Row-major `k x n` copy, for the fallback.
    plain: Vec<f32>,
}

impl PackedB {
    /// Packs `b` (any strides).
    pub fn new(b: MatRef) -> Self {
        let (k, n) = (b.rows(), b.cols());
        let plain = b.to_row_major();
        let np = n.div_ceil(LANES);
        let mut panels = vec![0f32; np * k * LANES];
        for (p, panel) in panels.chunks_exact_mut(k * LANES).enumerate() {
            let cols = p * LANES..(p * LANES + LANES).min(n);
            for (i, dst) in panel.chunks_exact_mut(LANES).enumerate() {
                dst[..cols.len()].copy_from_slice(&plain[i * n + cols.start..i * n + cols.end]);
            }
        }
        Self {
            k,
            n,
            panels,
            plain,
        }
    }

    pub fn rows(&self) -> usize {
        self.k
    }

    pub fn cols(&self) -> usize {
        self.n
    }

    /// The unpacked matrix.
    pub fn plain(&self) -> MatRef<'_> {
        MatRef::row_major(&self.plain, self.k, self.n)
    }

    /// `dst = a B` (or `dst += a B`), `a` row-major `m x k` with row stride
    /// `lda`, `dst` row-major `m x n`.
    pub fn mul(&self, dst: &mut [f32], a: &[f32], lda: usize, m: usize, accumulate: bool) {
        self.mul_taps(dst, a, lda, &[0], m, accumulate);
    }

    /// `dst = sum_t a_t B_t` (or `+=`), `B` being `T = offsets.len()` blocks
    /// of `k / T` rows stacked, and `a_t` the row-major `m x (k / T)` matrix
    /// starting `offsets[t]` floats into `a` with row stride `lda`: a
    /// convolution's product over its taps read straight from a padded input,
    /// without an im2col copy. `mul` is the one-tap case.
    pub fn mul_taps(
        &self,
        dst: &mut [f32],
        a: &[f32],
        lda: usize,
        offsets: &[usize],
        m: usize,
        accumulate: bool,
    ) {
        let (k, n, taps) = (self.k, self.n, offsets.len());
        assert!(
            taps > 0 && k % taps == 0,
            "packed gemm: k is not a whole number of taps"
        );
        let kt = k / taps;
        assert!(lda >= kt, "packed gemm: row stride below the tap width");
        assert!(
            m == 0 || offsets.iter().all(|&o| a.len() >= o + (m - 1) * lda + kt),
            "packed gemm: a too short"
        );
        assert!(dst.len() >= m * n, "packed gemm: destination too small");
        if m == 0 || n == 0 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is present (checked above); the asserts above
            // bound every row of every tap of `a` and of `dst` the kernel
            // touches, and the panels hold `ceil(n/16) * k * 16` floats by
            // construction.
            unsafe { avx512::mul(self, dst, a, lda, offsets, m, accumulate) };
            return;
        }
        for (t, &off) in offsets.iter().enumerate() {
            let at = MatRef::strided(&a[off..], m, kt, lda);
            let bt = MatRef::row_major(&self.plain[t * kt * n..], kt, n);
            matmul(dst, at, bt, accumulate || t > 0);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PackedB, LANES};
    use std::arch::x86_64::*;

    /// Rows per register block.
    const MR: usize = 8;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn mul(
        b: &PackedB,
        dst: &mut [f32],
        a: &[f32],
        lda: usize,
        offsets: &[usize],
        m: usize,
        accumulate: bool,
    ) {
        let (k, n) = (b.k, b.n);
        let np = n.div_ceil(LANES);
        let mut p = 0;
        while p < np {
            let two = p + 1 < np;
            let mut r = 0;
            while r + MR <= m {
                block::<MR>(b, dst, a, lda, offsets, r, p, two, k, n, accumulate);
                r += MR;
            }
            // The remaining rows, each count its own unrolled kernel.
            match m - r {
                0 => {}
                1 => block::<1>(b, dst, a, lda, offsets, r, p, two, k, n, accumulate),
                2 => block::<2>(b, dst, a, lda, offsets, r, p, two, k, n, accumulate),
                3 => block::<3>(b, dst, a, lda, offsets, r, p, two, k, n, accumulate),
                4 => block::<4>(b, dst, a, lda, offsets, r, p, two, k, n, accumulate),
                5 => block::<5>(b, dst, a, lda, offsets, r, p, two, k, n, accumulate),
                6 => block::<6>(b, dst, a, lda, offsets, r, p, two, k, n, accumulate),
                _ => block::<7>(b, dst, a, lda, offsets, r, p, two, k, n, accumulate),
            }
            p += if two { 2 } else { 1 };
        }
    }

    /// Mask of the valid lanes of panel `p`.
    #[inline(always)]
    fn lane_mask(p: usize, n: usize) -> __mmask16 {
        let valid = (n - p * LANES).min(LANES);
        if valid == LANES {
            0xFFFF
        } else {
            ((1u32 << valid) - 1) as __mmask16
        }
    }

    /// `ROWS` rows from `r0` times panels `p` (and `p + 1` when `two`).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const ROWS: usize>(
        b: &PackedB,
        dst: &mut [f32],
        a: &[f32],
        lda: usize,
        offsets: &[usize],
        r0: usize,
        p: usize,
        two: bool,
        k: usize,
        n: usize,
        accumulate: bool,
    ) {
        let mut acc0 = [_mm512_setzero_ps(); ROWS];
        let mut acc1 = [_mm512_setzero_ps(); ROWS];
        let panel0 = b.panels.as_ptr().add(p * k * LANES);
        let panel1 = if two {
            b.panels.as_ptr().add((p + 1) * k * LANES)
        } else {
            panel0
        };
        let kt = k / offsets.len();
        for (t, &off) in offsets.iter().enumerate() {
            let ap = a.as_ptr().add(off + r0 * lda);
            let (p0, p1) = (panel0.add(t * kt * LANES), panel1.add(t * kt * LANES));
            for i in 0..kt {
                let b0 = _mm512_loadu_ps(p0.add(i * LANES));
                let b1 = _mm512_loadu_ps(p1.add(i * LANES));
                for r in 0..ROWS {
                    let x = _mm512_set1_ps(*ap.add(r * lda + i));
                    acc0[r] = _mm512_fmadd_ps(x, b0, acc0[r]);
                    acc1[r] = _mm512_fmadd_ps(x, b1, acc1[r]);
                }
            }
        }
        let (m0, m1) = (lane_mask(p, n), if two { lane_mask(p + 1, n) } else { 0 });
        let out = dst.as_mut_ptr();
        for r in 0..ROWS {
            let row = out.add((r0 + r) * n + p * LANES);
            let (mut v0, mut v1) = (acc0[r], acc1[r]);
            if accumulate {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, row));
                if two {
                    v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, row.add(LANES)));
                }
            }
            _mm512_mask_storeu_ps(row, m0, v0);
            if two {
                _mm512_mask_storeu_ps(row.add(LANES), m1, v1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Every shape class (row remainders, one or two panels, partial last
    /// panel, strided rows, accumulation) against the plain definition.
    #[test]
    fn packed_products_match_the_definition() {
        let mut rng = Rng::new(1);
        for (m, k, n, lda) in [
            (32, 62, 128, 62),
            (7, 128, 31, 130),
            (1, 5, 16, 5),
            (13, 82, 48, 82),
            (64, 128, 128, 128),
            (3, 1, 1, 1),
        ] {
            let a = rng.normal_vec(m * lda);
            let bt = rng.normal_vec(n * k); // n x k, used transposed
            let packed = PackedB::new(MatRef::row_major(&bt, n, k).t());
            let want = |i: usize, j: usize| -> f32 {
                (0..k).map(|q| a[i * lda + q] * bt[j * k + q]).sum()
            };
            let mut dst = vec![0.5f32; m * n + 3];
            packed.mul(&mut dst, &a, lda, m, false);
            for i in 0..m {
                for j in 0..n {
                    let w = want(i, j);
                    assert!(
                        (dst[i * n + j] - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{m}x{k}x{n} at {i},{j}"
                    );
                }
            }
            assert_eq!(&dst[m * n..], &[0.5; 3], "nothing written past the product");
            packed.mul(&mut dst, &a, lda, m, true);
            for i in 0..m {
                for j in 0..n {
                    let w = 2.0 * want(i, j);
                    assert!(
                        (dst[i * n + j] - w).abs() <= 2e-4 * (1.0 + w.abs()),
                        "accumulate {i},{j}"
                    );
                }
            }
        }
    }

    /// The tap-wise product equals the product with the gathered rows.
    #[test]
    fn tap_products_gather_their_rows() {
        let mut rng = Rng::new(2);
        for (m, kt, taps, n, lda) in [(7, 4, 3, 33, 5), (16, 32, 9, 32, 32), (3, 2, 2, 16, 2)] {
            let a = rng.normal_vec(200 + m * lda + kt);
            let offsets: Vec<usize> = (0..taps).map(|t| (t * 37) % 150).collect();
            let b = rng.normal_vec(taps * kt * n);
            let packed = PackedB::new(MatRef::row_major(&b, taps * kt, n));
            // The gathered (im2col) rows: tap t's columns from offset t.
            let gathered: Vec<f32> = (0..m)
                .flat_map(|r| {
                    offsets
                        .iter()
                        .flat_map(move |&o| (0..kt).map(move |c| (r, o, c)))
                        .map(|(r, o, c)| a[o + r * lda + c])
                        .collect::<Vec<_>>()
                })
                .collect();
            let mut want = vec![0f32; m * n];
            packed.mul(&mut want, &gathered, taps * kt, m, false);
            let mut got = vec![1f32; m * n];
            packed.mul_taps(&mut got, &a, lda, &offsets, m, false);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{m}x{kt}x{taps}x{n}: {g} vs {w}"
                );
            }
            packed.mul_taps(&mut got, &a, lda, &offsets, m, true);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - 2.0 * w).abs() <= 2e-4 * (1.0 + w.abs()), "accumulate");
            }
        }
    }
}
