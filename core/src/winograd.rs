//! 3x3 convolutions by Winograd's minimal filtering F(2x2, 3x3) (Lavin &
//! Gray, 2016): each 2x2 block of outputs is `A^T [U ⊙ (B^T d B)] A` for the
//! 4x4 input patch `d` and the transformed kernel `U = G g G^T`, so the
//! channel sums become 16 matrix products `[tiles, cin] x [cin, cout]`
//! with 16 multiply-adds per 4 outputs instead of 36 (2.25x less arithmetic).
//! Tiles go through in blocks small enough that a block's transformed input
//! and output stay in the core's cache between the transforms and the
//! products. Channels last (`[n, H, W, C]`), padding 1 (size-preserving).

use crate::packed_gemm::PackedB;
use crate::sgemm::MatRef;

/// Floats per transform vector: channels go through 16 at a time.
const LANES: usize = 16;

/// Tiles (2x2 output blocks) per block of the transform-product-transform
/// pipeline: with 64 channels in and out a block's buffers take 1 MiB.
const TILE_BLOCK: usize = 128;

thread_local! {
    /// This thread's transformed inputs and products of one tile block.
    static BLOCK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A 3x3 convolution's 16 transformed kernels.
#[derive(Debug, Clone)]
pub(crate) struct Winograd3 {
    cin: usize,
    cout: usize,
    /// `U_xi = (G g G^T)_xi` as `[cin, cout]`, packed, for the 16 positions
    /// `xi` of a 4x4 tile.
    u: Vec<PackedB>,
}

impl Winograd3 {
    /// Whether a `k x k` convolution from `cin` to `cout` channels runs here:
    /// 3x3 with whole 16-lane channel vectors.
    pub(crate) fn applies(k: usize, cin: usize, cout: usize) -> bool {
        k == 3 && cin > 0 && cout > 0 && cin.is_multiple_of(LANES) && cout.is_multiple_of(LANES)
    }

    /// From a 3x3 convolution's matrix `[(kh, kw, c), o]` (`9 cin x cout`).
    pub(crate) fn new(w: &[f32], cin: usize, cout: usize) -> Self {
        assert_eq!(w.len(), 9 * cin * cout, "winograd: kernel is not 3x3");
        let mut u = vec![0f32; 16 * cin * cout];
        for c in 0..cin {
            for o in 0..cout {
                let g = |kh: usize, kw: usize| w[((kh * 3 + kw) * cin + c) * cout + o];
                // G g (4x3), then (G g) G^T (4x4).
                let mut gg = [[0f32; 3]; 4];
                for (v, col) in (0..3).map(|v| (v, [g(0, v), g(1, v), g(2, v)])) {
                    for (r, x) in kernel_rows(col).into_iter().enumerate() {
                        gg[r][v] = x;
                    }
                }
                for (r, row) in gg.iter().enumerate() {
                    for (s, x) in kernel_rows(*row).into_iter().enumerate() {
                        u[(r * 4 + s) * cin * cout + c * cout + o] = x;
                    }
                }
            }
        }
        let u = u
            .chunks_exact(cin * cout)
            .map(|m| PackedB::new(MatRef::row_major(m, cin, cout)))
            .collect();
        Self { cin, cout, u }
    }

    /// `out = conv(x)` (or `+=` with `accumulate`), `x: [n, H, W, cin]`,
    /// zero outside the image.
    pub(crate) fn conv(
        &self,
        x: &[f32],
        [n, h, w]: [usize; 3],
        out: &mut [f32],
        accumulate: bool,
    ) {
        let (cin, cout) = (self.cin, self.cout);
        let tiles = Tiles {
            n,
            th: h.div_ceil(2),
            tw: w.div_ceil(2),
            h,
            w,
        };
        assert!(x.len() >= n * h * w * cin, "winograd: input too short");
        assert!(out.len() >= n * h * w * cout, "winograd: output too short");
        let total = n * tiles.th * tiles.tw;
        BLOCK.with(|buf| {
            let mut buf = buf.borrow_mut();
            let need = 16 * (stride(TILE_BLOCK, cin) + stride(TILE_BLOCK, cout));
            if buf.len() < need {
                buf.resize(need, 0.0);
            }
            let (v, m) = buf.split_at_mut(16 * stride(TILE_BLOCK, cin));
            for t0 in (0..total).step_by(TILE_BLOCK) {
                let tb = TILE_BLOCK.min(total - t0);
                transforms::input(x, cin, &tiles, t0..t0 + tb, v);
                for (xi, u) in self.u.iter().enumerate() {
                    u.mul(
                        &mut m[xi * stride(tb, cout)..],
                        &v[xi * stride(tb, cin)..],
                        cin,
                        tb,
                        false,
                    );
                }
                transforms::output(m, cout, &tiles, t0..t0 + tb, out, accumulate);
            }
        });
    }
}

/// Floats between the blocks of consecutive positions `xi` in the
/// transformed buffers (`tb` tiles of `c` channels each): one vector more
/// than the block, so that the 16 blocks' rows at the same tile do not all
/// fall in the same set of the L1 cache (a power-of-two stride would).
fn stride(tb: usize, c: usize) -> usize {
    tb * c + LANES
}

/// `G x` for one column (or row) `x` of a 3x3 kernel.
fn kernel_rows([a, b, c]: [f32; 3]) -> [f32; 4] {
    [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c]
}

/// The tiling of one convolution: `n` images of `th x tw` tiles.
struct Tiles {
    n: usize,
    th: usize,
    tw: usize,
    h: usize,
    w: usize,
}

impl Tiles {
    /// Image, tile row and tile column of tile number `t`.
    fn at(&self, t: usize) -> (usize, usize, usize) {
        let per = self.th * self.tw;
        (t / per, t % per / self.tw, t % self.tw)
    }
}

/// The input and output transforms on 16-lane arrays, compiled twice:
/// generically and, on x86-64, for AVX-512.
#[allow(unsafe_code)]
mod transforms {
    use super::{stride, Tiles, LANES};
    use std::ops::Range;

    /// 16 floats with the arithmetic the transforms need.
    pub(super) trait Lanes: Copy {
        /// The 16 floats from `src`.
        ///
        /// # Safety
        /// `src` points to 16 readable floats.
        unsafe fn load(src: *const f32) -> Self;
        /// Into the 16 floats from `dst`.
        ///
        /// # Safety
        /// `dst` points to 16 writable floats.
        unsafe fn store(self, dst: *mut f32);
        fn add(self, o: Self) -> Self;
        fn sub(self, o: Self) -> Self;
        fn zero() -> Self;
    }

    impl Lanes for [f32; LANES] {
        #[inline(always)]
        fn zero() -> Self {
            [0.0; LANES]
        }
        #[inline(always)]
        unsafe fn load(src: *const f32) -> Self {
            // SAFETY: the caller's contract.
            unsafe { std::ptr::read_unaligned(src.cast()) }
        }
        #[inline(always)]
        unsafe fn store(self, dst: *mut f32) {
            // SAFETY: the caller's contract.
            unsafe { std::ptr::write_unaligned(dst.cast(), self) }
        }
        #[inline(always)]
        fn add(mut self, o: Self) -> Self {
            for (a, b) in self.iter_mut().zip(o) {
                *a += b;
            }
            self
        }
        #[inline(always)]
        fn sub(mut self, o: Self) -> Self {
            for (a, b) in self.iter_mut().zip(o) {
                *a -= b;
            }
            self
        }
    }

    /// The same loops compiled with AVX-512F, where a 16-lane array is one
    /// register.
    #[cfg(target_arch = "x86_64")]
    mod avx512 {
        type Zmm = [f32; super::LANES];

        #[target_feature(enable = "avx512f")]
        pub(in super::super) unsafe fn input(
            x: &[f32],
            cin: usize,
            t: &super::Tiles,
            tiles: std::ops::Range<usize>,
            v: &mut [f32],
        ) {
            // SAFETY: the caller checked the bounds (`super::input`).
            unsafe { super::input_body::<Zmm>(x, cin, t, tiles, v) }
        }

        #[target_feature(enable = "avx512f")]
        pub(in super::super) unsafe fn output(
            m: &[f32],
            cout: usize,
            t: &super::Tiles,
            tiles: std::ops::Range<usize>,
            out: &mut [f32],
            accumulate: bool,
        ) {
            // SAFETY: the caller checked the bounds (`super::output`).
            unsafe { super::output_body::<Zmm>(m, cout, t, tiles, out, accumulate) }
        }
    }

    /// `v[xi][j] = (B^T d_j B)[xi]` for the tiles `tiles` (`j` counted from
    /// the block's first), `v` laid out `[16][tiles][cin]`.
    pub(super) fn input(x: &[f32], cin: usize, t: &Tiles, tiles: Range<usize>, v: &mut [f32]) {
        // Every tile inside the images (its patch's pixels outside are not
        // read), every transformed vector inside `v`.
        assert!(
            cin.is_multiple_of(LANES)
                && tiles.end <= t.n * t.th * t.tw
                && t.th == t.h.div_ceil(2)
                && t.tw == t.w.div_ceil(2)
                && x.len() >= t.n * t.h * t.w * cin
                && v.len() >= 16 * stride(tiles.len(), cin),
            "winograd input transform: bounds"
        );
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above); bounds
            // checked above.
            return unsafe { avx512::input(x, cin, t, tiles, v) };
        }
        // SAFETY: bounds checked above.
        unsafe { input_body::<[f32; LANES]>(x, cin, t, tiles, v) }
    }

    /// `out[2x2 block of tile j] (+)= A^T m_j A`, `m` laid out `[16][tiles][cout]`.
    pub(super) fn output(
        m: &[f32],
        cout: usize,
        t: &Tiles,
        tiles: Range<usize>,
        out: &mut [f32],
        accumulate: bool,
    ) {
        // Every tile's 2x2 outputs inside the images (those past an odd edge
        // are not written), every product vector inside `m`.
        assert!(
            cout.is_multiple_of(LANES)
                && tiles.end <= t.n * t.th * t.tw
                && t.th == t.h.div_ceil(2)
                && t.tw == t.w.div_ceil(2)
                && out.len() >= t.n * t.h * t.w * cout
                && m.len() >= 16 * stride(tiles.len(), cout),
            "winograd output transform: bounds"
        );
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above); bounds
            // checked above.
            return unsafe { avx512::output(m, cout, t, tiles, out, accumulate) };
        }
        // SAFETY: bounds checked above.
        unsafe { output_body::<[f32; LANES]>(m, cout, t, tiles, out, accumulate) }
    }

    /// `B^T x` for a column `x` of four vectors (also `x B` for a row).
    #[inline(always)]
    fn b_t<L: Lanes>([d0, d1, d2, d3]: [L; 4]) -> [L; 4] {
        [d0.sub(d2), d1.add(d2), d2.sub(d1), d1.sub(d3)]
    }

    /// `A^T x` for a column `x` of four vectors (also `x A` for a row).
    #[inline(always)]
    fn a_t<L: Lanes>([m0, m1, m2, m3]: [L; 4]) -> [L; 2] {
        [m0.add(m1).add(m2), m1.sub(m2).sub(m3)]
    }

    /// # Safety
    /// The bounds [`input`] checks.
    /// # Safety
    /// The bounds [`input`] checks.
    #[inline(always)]
    unsafe fn input_body<L: Lanes>(
        x: &[f32],
        cin: usize,
        t: &Tiles,
        tiles: Range<usize>,
        v: &mut [f32],
    ) {
        let (sv, first) = (stride(tiles.len(), cin), tiles.start);
        let (src, dst) = (x.as_ptr(), v.as_mut_ptr());
        let row = t.w * cin;
        for tile in tiles {
            let (img, ty, tx) = t.at(tile);
            let out = dst.add((tile - first) * cin);
            // The patch covers rows 2ty-1 .. 2ty+2 and columns 2tx-1 .. 2tx+2.
            if ty > 0 && tx > 0 && 2 * ty + 2 < t.h && 2 * tx + 2 < t.w {
                // SAFETY: the whole patch is inside image `img`.
                let p = unsafe { src.add(((img * t.h + 2 * ty - 1) * t.w + 2 * tx - 1) * cin) };
                // SAFETY: as above, and `v` holds 16 strides of `tb cin` floats.
                unsafe { transform_patch::<L>(cin, sv, out, |r, s, c0| L::load(p.add(r * row + s * cin + c0))) };
            } else {
                let inside = |r: usize, s: usize| {
                    let (y, xx) = (2 * ty + r, 2 * tx + s);
                    (1..=t.h).contains(&y) && (1..=t.w).contains(&xx)
                };
                let zero = L::zero();
                // SAFETY: only pixels inside image `img` are read, and `v`
                // holds 16 strides of `tb cin` floats.
                unsafe {
                    transform_patch::<L>(cin, sv, out, |r, s, c0| {
                        if inside(r, s) {
                            let (y, xx) = (2 * ty + r - 1, 2 * tx + s - 1);
                            L::load(src.add(((img * t.h + y) * t.w + xx) * cin + c0))
                        } else {
                            zero
                        }
                    })
                };
            }
        }
    }

    /// `B^T d B` of one tile's patch `d(r, s, c0)` (16 channels from `c0`),
    /// every channel vector, into `out + xi * stride`.
    ///
    /// # Safety
    /// `d` reads only valid memory for `r, s < 4`, `c0 < cin`, and `out`
    /// has 16 strides of writable floats past it (less its tile's offset).
    #[allow(clippy::needless_range_loop)] // `r` picks a row across four columns
    #[inline(always)]
    unsafe fn transform_patch<L: Lanes>(
        cin: usize,
        stride: usize,
        out: *mut f32,
        d: impl Fn(usize, usize, usize) -> L,
    ) {
        for c0 in (0..cin).step_by(LANES) {
            // Columns first (B^T d), then rows ((B^T d) B).
            let mut cols = [[d(0, 0, c0); 4]; 4];
            for (s, col) in cols.iter_mut().enumerate() {
                *col = b_t([d(0, s, c0), d(1, s, c0), d(2, s, c0), d(3, s, c0)]);
            }
            for r in 0..4 {
                let vals = b_t([cols[0][r], cols[1][r], cols[2][r], cols[3][r]]);
                for (s, x) in vals.into_iter().enumerate() {
                    // SAFETY: the caller's contract.
                    unsafe { x.store(out.add((r * 4 + s) * stride + c0)) };
                }
            }
        }
    }

    /// # Safety
    /// The bounds [`output`] checks.
    #[allow(clippy::needless_range_loop)] // as in `input_body`
    #[inline(always)]
    unsafe fn output_body<L: Lanes>(
        m: &[f32],
        cout: usize,
        t: &Tiles,
        tiles: Range<usize>,
        out: &mut [f32],
        accumulate: bool,
    ) {
        let (sm, first) = (stride(tiles.len(), cout), tiles.start);
        let (src, dst) = (m.as_ptr(), out.as_mut_ptr());
        for tile in tiles {
            let (img, ty, tx) = t.at(tile);
            let at = (tile - first) * cout;
            for o0 in (0..cout).step_by(LANES) {
                // SAFETY: `m` holds 16 strides of `tb cout` floats, and only outputs
                // inside the image are written (the bounds).
                unsafe {
                    let x = |r: usize, s: usize| L::load(src.add((r * 4 + s) * sm + at + o0));
                    let mut cols = [[x(0, 0); 2]; 4];
                    for (s, col) in cols.iter_mut().enumerate() {
                        *col = a_t([x(0, s), x(1, s), x(2, s), x(3, s)]);
                    }
                    for r in 0..2 {
                        let y = 2 * ty + r;
                        if y >= t.h {
                            break;
                        }
                        let vals = a_t([cols[0][r], cols[1][r], cols[2][r], cols[3][r]]);
                        for (s, val) in vals.into_iter().enumerate() {
                            let xx = 2 * tx + s;
                            if xx >= t.w {
                                break;
                            }
                            let d = dst.add(((img * t.h + y) * t.w + xx) * cout + o0);
                            let val = if accumulate { val.add(L::load(d)) } else { val };
                            val.store(d);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The size-preserving 3x3 convolution by its definition, `x: [n, H, W,
    /// cin]`, `w: [(kh, kw, c), o]`.
    fn direct(x: &[f32], w: &[f32], [n, h, wd, cin, cout]: [usize; 5]) -> Vec<f32> {
        let mut out = vec![0f32; n * h * wd * cout];
        for img in 0..n {
            for y in 0..h {
                for xx in 0..wd {
                    for o in 0..cout {
                        let mut s = 0f64;
                        for kh in 0..3 {
                            for kw in 0..3 {
                                let (yy, xc) = (y + kh, xx + kw);
                                if yy < 1 || yy > h || xc < 1 || xc > wd {
                                    continue;
                                }
                                for c in 0..cin {
                                    let xv = x[((img * h + yy - 1) * wd + xc - 1) * cin + c];
                                    s += (xv * w[((kh * 3 + kw) * cin + c) * cout + o]) as f64;
                                }
                            }
                        }
                        out[((img * h + y) * wd + xx) * cout + o] = s as f32;
                    }
                }
            }
        }
        out
    }

    /// Every tile shape (odd and even sides, a partial last tile, more tiles
    /// than one block, several images, interior and border tiles), overwrite
    /// and accumulate, against the definition.
    #[test]
    fn winograd_convolutions_match_the_definition() {
        let mut rng = Rng::new(3);
        for (n, h, w, cin, cout) in [
            (2, 7, 7, 16, 16),
            (1, 4, 6, 32, 48),
            (3, 28, 28, 16, 32),
            (1, 1, 3, 16, 16),
            (2, 5, 9, 64, 16),
        ] {
            assert!(Winograd3::applies(3, cin, cout));
            let x = rng.normal_vec(n * h * w * cin);
            let wt = rng.normal_vec(9 * cin * cout);
            let want = direct(&x, &wt, [n, h, w, cin, cout]);
            // Past the images: never read (it would poison the outputs).
            let mut x = x;
            x.extend(std::iter::repeat_n(f32::NAN, 3 * w * cin));
            let wino = Winograd3::new(&wt, cin, cout);
            let mut got = vec![7f32; n * h * w * cout + 5];
            wino.conv(&x, [n, h, w], &mut got, false);
            let scale = (cin as f32 * 9.0).sqrt();
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - e).abs() <= 2e-5 * scale * (1.0 + e.abs()),
                    "{n}x{h}x{w}x{cin}->{cout} at {i}: {g} vs {e}"
                );
            }
            assert_eq!(&got[want.len()..], &[7.0; 5], "nothing written past the output");
            wino.conv(&x, [n, h, w], &mut got, true);
            for (g, e) in got.iter().zip(&want) {
                assert!((g - 2.0 * e).abs() <= 4e-5 * scale * (1.0 + e.abs()), "accumulate");
            }
        }
        assert!(!Winograd3::applies(3, 1, 32) && !Winograd3::applies(1, 32, 32));
        assert!(!Winograd3::applies(3, 32, 24) && !Winograd3::applies(5, 16, 16));
    }
}
