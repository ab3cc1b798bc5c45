//! 3x3 convolutions by Winograd's minimal filtering F(4x4, 3x3) (Lavin &
//! Gray, 2016, interpolation points 0, ±1, ±2): each 4x4 block of outputs is
//! `A^T [U ⊙ (B^T d B)] A` for the 6x6 input patch `d` and the transformed
//! kernel `U = G g G^T`, so the channel sums become 36 matrix products
//! `[tiles, cin] x [cin, cout]` with 36 multiply-adds per 16 outputs instead
//! of 144 (4x less arithmetic where the tiles fit the image).
//! Tiles go through in blocks small enough that a block's transformed input
//! and output stay in the core's cache between the transforms and the
//! products. Channels last (`[n, H, W, C]`), padding 1 (size-preserving).

use crate::packed_gemm::PackedB;
use crate::sgemm::MatRef;

/// Floats per transform vector: channels go through 16 at a time.
const LANES: usize = 16;

/// Output tile side: each tile is a `T x T` block of outputs.
const T: usize = 4;
/// Input patch side of a tile.
const P: usize = T + 2;
/// Positions of the transformed patch: one matrix product each.
const POS: usize = P * P;

/// Tiles per block of the transform-product-transform pipeline: with 64
/// channels in and out a block's buffers take 1.2 MB, inside the L2 cache.
const TILE_BLOCK: usize = 64;

thread_local! {
    /// This thread's transformed inputs and products of one tile block.
    static BLOCK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A 3x3 convolution's 36 transformed kernels.
#[derive(Debug, Clone)]
pub struct Winograd3 {
    cin: usize,
    cout: usize,
    /// `U_xi = (G g G^T)_xi` as `[cin, cout]`, packed, for the 36 positions
    /// `xi` of a 6x6 patch.
    u: Vec<PackedB>,
}

impl Winograd3 {
    /// Whether a `k x k` convolution from `cin` to `cout` channels runs here:
    /// 3x3 with whole 16-lane channel vectors.
    pub fn applies(k: usize, cin: usize, cout: usize) -> bool {
        k == 3 && cin > 0 && cout > 0 && cin.is_multiple_of(LANES) && cout.is_multiple_of(LANES)
    }

    /// From a 3x3 convolution's matrix `[(kh, kw, c), o]` (`9 cin x cout`).
    pub fn new(w: &[f32], cin: usize, cout: usize) -> Self {
        assert_eq!(w.len(), 9 * cin * cout, "winograd: kernel is not 3x3");
        let mut u = vec![0f32; POS * cin * cout];
        for c in 0..cin {
            for o in 0..cout {
                let g = |kh: usize, kw: usize| w[((kh * 3 + kw) * cin + c) * cout + o];
                // G g (6x3), then (G g) G^T (6x6).
                let mut gg = [[0f32; 3]; P];
                for (v, col) in (0..3).map(|v| (v, [g(0, v), g(1, v), g(2, v)])) {
                    for (r, x) in kernel_rows(col).into_iter().enumerate() {
                        gg[r][v] = x;
                    }
                }
                for (r, row) in gg.iter().enumerate() {
                    for (s, x) in kernel_rows(*row).into_iter().enumerate() {
                        u[(r * P + s) * cin * cout + c * cout + o] = x;
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
    pub fn conv(&self, x: &[f32], [n, h, w]: [usize; 3], out: &mut [f32], accumulate: bool) {
        let (cin, cout) = (self.cin, self.cout);
        let tiles = Tiles::new(n, h, w);
        assert!(x.len() >= n * h * w * cin, "winograd: input too short");
        assert!(out.len() >= n * h * w * cout, "winograd: output too short");
        let total = tiles.count();
        BLOCK.with(|buf| {
            let mut buf = buf.borrow_mut();
            let need = POS * (stride(TILE_BLOCK, cin) + stride(TILE_BLOCK, cout));
            if buf.len() < need {
                buf.resize(need, 0.0);
            }
            let (v, m) = buf.split_at_mut(POS * stride(TILE_BLOCK, cin));
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
/// than the block, so that the 36 blocks' rows at the same tile do not all
/// fall in the same set of the L1 cache (a power-of-two stride would).
fn stride(tb: usize, c: usize) -> usize {
    tb * c + LANES
}

/// `G x` for one column (or row) `x` of a 3x3 kernel.
fn kernel_rows([a, b, c]: [f32; 3]) -> [f32; P] {
    [
        a / 4.0,
        -(a + b + c) / 6.0,
        -(a - b + c) / 6.0,
        a / 24.0 + b / 12.0 + c / 6.0,
        a / 24.0 - b / 12.0 + c / 6.0,
        c,
    ]
}

/// The tiling of one convolution: `n` images of `th x tw` tiles, built by
/// [`Tiles::new`] only, so the tiles cover each `h x w` image exactly (the
/// transforms' bounds rely on it).
struct Tiles {
    n: usize,
    th: usize,
    tw: usize,
    h: usize,
    w: usize,
}

impl Tiles {
    fn new(n: usize, h: usize, w: usize) -> Self {
        Self {
            n,
            th: h.div_ceil(T),
            tw: w.div_ceil(T),
            h,
            w,
        }
    }

    /// Tiles over all images.
    fn count(&self) -> usize {
        self.n * self.th * self.tw
    }

    /// Image, tile row and tile column of tile number `t`.
    fn at(&self, t: usize) -> (usize, usize, usize) {
        let per = self.th * self.tw;
        (t / per, t % per / self.tw, t % self.tw)
    }
}

/// The input and output transforms, written once over a 16-lane vector
/// ([`transforms::Lanes`]): plain arrays everywhere, AVX-512 registers where
/// the CPU has them.
#[allow(unsafe_code)]
mod transforms {
    use super::{stride, Tiles, LANES, P, POS, T};
    use std::ops::Range;

    /// 16 floats with the arithmetic the transforms need.
    ///
    /// # Safety
    /// Every method may need a CPU feature of its implementation (AVX-512F
    /// for `avx512::Zmm`); `load` and `store` need 16 valid floats at their
    /// pointer.
    pub(super) trait Lanes: Copy {
        unsafe fn load(src: *const f32) -> Self;
        unsafe fn store(self, dst: *mut f32);
        unsafe fn add(self, o: Self) -> Self;
        unsafe fn sub(self, o: Self) -> Self;
        unsafe fn scale(self, k: f32) -> Self;
        unsafe fn zero() -> Self;
    }

    impl Lanes for [f32; LANES] {
        #[inline(always)]
        unsafe fn zero() -> Self {
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
        unsafe fn add(mut self, o: Self) -> Self {
            for (a, b) in self.iter_mut().zip(o) {
                *a += b;
            }
            self
        }
        #[inline(always)]
        unsafe fn sub(mut self, o: Self) -> Self {
            for (a, b) in self.iter_mut().zip(o) {
                *a -= b;
            }
            self
        }
        #[inline(always)]
        unsafe fn scale(mut self, k: f32) -> Self {
            for a in self.iter_mut() {
                *a *= k;
            }
            self
        }
    }

    /// The transforms on AVX-512 registers: each method is compiled with
    /// AVX-512F, and the entry points below inline them into loops compiled
    /// with it too.
    #[cfg(target_arch = "x86_64")]
    mod avx512 {
        use super::Lanes;
        use std::arch::x86_64::*;

        #[derive(Clone, Copy)]
        pub(super) struct Zmm(__m512);

        impl Lanes for Zmm {
            #[inline]
            #[target_feature(enable = "avx512f")]
            unsafe fn zero() -> Self {
                Zmm(_mm512_setzero_ps())
            }
            #[inline]
            #[target_feature(enable = "avx512f")]
            unsafe fn load(src: *const f32) -> Self {
                // SAFETY: the caller's contract (16 floats at `src`).
                Zmm(unsafe { _mm512_loadu_ps(src) })
            }
            #[inline]
            #[target_feature(enable = "avx512f")]
            unsafe fn store(self, dst: *mut f32) {
                // SAFETY: the caller's contract (16 floats at `dst`).
                unsafe { _mm512_storeu_ps(dst, self.0) }
            }
            #[inline]
            #[target_feature(enable = "avx512f")]
            unsafe fn add(self, o: Self) -> Self {
                Zmm(_mm512_add_ps(self.0, o.0))
            }
            #[inline]
            #[target_feature(enable = "avx512f")]
            unsafe fn sub(self, o: Self) -> Self {
                Zmm(_mm512_sub_ps(self.0, o.0))
            }
            #[inline]
            #[target_feature(enable = "avx512f")]
            unsafe fn scale(self, k: f32) -> Self {
                Zmm(_mm512_mul_ps(self.0, _mm512_set1_ps(k)))
            }
        }

        #[target_feature(enable = "avx512f")]
        pub(in super::super) unsafe fn input(
            x: &[f32],
            cin: usize,
            t: &super::Tiles,
            tiles: std::ops::Range<usize>,
            v: &mut [f32],
        ) {
            // SAFETY: the caller checked the bounds (`super::input`) and
            // the CPU.
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
            // SAFETY: the caller checked the bounds (`super::output`) and
            // the CPU.
            unsafe { super::output_body::<Zmm>(m, cout, t, tiles, out, accumulate) }
        }
    }

    /// `v[xi][j] = (B^T d_j B)[xi]` for the tiles `tiles` (`j` counted from
    /// the block's first), `v` laid out `[POS][tiles][cin]` (blocks a
    /// [`stride`] apart).
    pub(super) fn input(x: &[f32], cin: usize, t: &Tiles, tiles: Range<usize>, v: &mut [f32]) {
        // Every tile inside the images (its patch's pixels outside are not
        // read), every transformed vector inside `v`.
        assert!(
            cin.is_multiple_of(LANES)
                && tiles.end <= t.count()
                && x.len() >= t.n * t.h * t.w * cin
                && v.len() >= POS * stride(tiles.len(), cin),
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

    /// `out[T x T block of tile j] (+)= A^T m_j A`, `m` laid out
    /// `[POS][tiles][cout]` (blocks a [`stride`] apart).
    pub(super) fn output(
        m: &[f32],
        cout: usize,
        t: &Tiles,
        tiles: Range<usize>,
        out: &mut [f32],
        accumulate: bool,
    ) {
        // Every tile's outputs inside the images (those past the images'
        // edges are not written), every product vector inside `m`.
        assert!(
            cout.is_multiple_of(LANES)
                && tiles.end <= t.count()
                && out.len() >= t.n * t.h * t.w * cout
                && m.len() >= POS * stride(tiles.len(), cout),
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

    /// `B^T x` for a column `x` of six vectors (also `x B` for a row).
    ///
    /// # Safety
    /// As [`Lanes`].
    #[inline(always)]
    unsafe fn b_t<L: Lanes>([d0, d1, d2, d3, d4, d5]: [L; P]) -> [L; P] {
        let (d42, d31) = (d4.sub(d2), d3.sub(d1).scale(2.0));
        [
            d4.add(d0.scale(4.0)).sub(d2.scale(5.0)),
            d3.add(d4).sub(d1.add(d2).scale(4.0)),
            d4.sub(d3).add(d1.sub(d2).scale(4.0)),
            d42.add(d31),
            d42.sub(d31),
            d5.add(d1.scale(4.0)).sub(d3.scale(5.0)),
        ]
    }

    /// `A^T x` for a column `x` of six vectors (also `x A` for a row).
    ///
    /// # Safety
    /// As [`Lanes`].
    #[inline(always)]
    unsafe fn a_t<L: Lanes>([m0, m1, m2, m3, m4, m5]: [L; P]) -> [L; T] {
        let (p12, m12, p34, m34) = (m1.add(m2), m1.sub(m2), m3.add(m4), m3.sub(m4));
        [
            m0.add(p12).add(p34),
            m12.add(m34.scale(2.0)),
            p12.add(p34.scale(4.0)),
            m12.add(m34.scale(8.0)).add(m5),
        ]
    }

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
            // The patch covers rows T ty - 1 .. T ty + T and the same columns.
            if ty > 0 && tx > 0 && T * ty + T < t.h && T * tx + T < t.w {
                // SAFETY: the whole patch is inside image `img`.
                let p = unsafe { src.add(((img * t.h + T * ty - 1) * t.w + T * tx - 1) * cin) };
                // SAFETY: as above, and `v` holds `POS` strides of `tb cin` floats.
                unsafe {
                    transform_patch::<L>(cin, sv, out, |r, s, c0| {
                        L::load(p.add(r * row + s * cin + c0))
                    })
                };
            } else {
                let inside = |r: usize, s: usize| {
                    let (y, xx) = (T * ty + r, T * tx + s);
                    (1..=t.h).contains(&y) && (1..=t.w).contains(&xx)
                };
                let zero = L::zero();
                // SAFETY: only pixels inside image `img` are read, and `v`
                // holds `POS` strides of `tb cin` floats.
                unsafe {
                    transform_patch::<L>(cin, sv, out, |r, s, c0| {
                        if inside(r, s) {
                            let (y, xx) = (T * ty + r - 1, T * tx + s - 1);
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
    /// `d` reads only valid memory for `r, s < P`, `c0 < cin`, and `out`
    /// has `POS` strides of writable floats past it (less its tile's offset).
    #[allow(clippy::needless_range_loop)] // `r` picks a row across the columns
    #[inline(always)]
    unsafe fn transform_patch<L: Lanes>(
        cin: usize,
        stride: usize,
        out: *mut f32,
        d: impl Fn(usize, usize, usize) -> L,
    ) {
        for c0 in (0..cin).step_by(LANES) {
            // Columns first (B^T d), then rows ((B^T d) B).
            let mut cols = [[L::zero(); P]; P];
            for (s, col) in cols.iter_mut().enumerate() {
                *col = b_t(std::array::from_fn(|r| d(r, s, c0)));
            }
            for r in 0..P {
                let vals = b_t([
                    cols[0][r], cols[1][r], cols[2][r], cols[3][r], cols[4][r], cols[5][r],
                ]);
                for (s, x) in vals.into_iter().enumerate() {
                    // SAFETY: the caller's contract.
                    unsafe { x.store(out.add((r * P + s) * stride + c0)) };
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
                // SAFETY: `m` holds `POS` strides of `tb cout` floats, and only outputs
                // inside the image are written (the bounds).
                unsafe {
                    let x = |r: usize, s: usize| L::load(src.add((r * P + s) * sm + at + o0));
                    let mut cols = [[L::zero(); T]; P];
                    for (s, col) in cols.iter_mut().enumerate() {
                        *col = a_t([x(0, s), x(1, s), x(2, s), x(3, s), x(4, s), x(5, s)]);
                    }
                    for r in 0..T {
                        let y = T * ty + r;
                        if y >= t.h {
                            break;
                        }
                        let vals = a_t([
                            cols[0][r], cols[1][r], cols[2][r], cols[3][r], cols[4][r], cols[5][r],
                        ]);
                        for (s, val) in vals.into_iter().enumerate() {
                            let xx = T * tx + s;
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
            assert_eq!(
                &got[want.len()..],
                &[7.0; 5],
                "nothing written past the output"
            );
            wino.conv(&x, [n, h, w], &mut got, true);
            for (g, e) in got.iter().zip(&want) {
                assert!(
                    (g - 2.0 * e).abs() <= 4e-5 * scale * (1.0 + e.abs()),
                    "accumulate"
                );
            }
        }
        assert!(!Winograd3::applies(3, 1, 32) && !Winograd3::applies(1, 32, 32));
        assert!(!Winograd3::applies(3, 32, 24) && !Winograd3::applies(5, 16, 16));
    }
}
