//! Convolution building blocks of the fused image path (the fused ResNet
//! energy in `ebm-core`): kernels as matrices (3x3 ones over 16-channel
//! vectors by Winograd's F(4x4, 3x3), [`crate::winograd`]), their input and
//! weight gradients, 2x2 average pooling and its adjoint, per-image channel
//! vectors and layout changes, all on plain channels-last buffers.

use candle_core::{Device, Result, Tensor};
use std::ops::Range;

use crate::packed_gemm::PackedB;
use crate::sgemm::{matmul, MatRef};
use crate::winograd::Winograd3;

/// Output pixels per im2col tile: the tile (`TILE_ROWS x 9C` floats) stays in
/// the core's cache between being written and being multiplied.
pub const TILE_ROWS: usize = 256;

/// Pixels per tile of a weight gradient `cols^T g`, the inner dimension of
/// that product: longer than [`TILE_ROWS`] so each product does more work
/// per pass over the gradient matrix.
pub const WEIGHT_TILE_ROWS: usize = 2048;

/// A size-preserving stride-1 convolution as matrices.
#[derive(Debug, Clone)]
pub struct ConvMats {
    pub k: usize,
    pub cin: usize,
    pub cout: usize,
    /// `[k*k*cin, cout]`, rows ordered `(kh, kw, c)`: the forward.
    pub w: Vec<f32>,
    /// `w` packed for the register-blocked kernel.
    packed: PackedB,
    /// `[k*k*cout, cin]`, the kernel flipped in space with channels swapped
    /// (the gradient into the input is the convolution of the output's
    /// gradient with this), packed.
    packed_back: PackedB,
    /// The forward and the input gradient by Winograd's F(4x4, 3x3), where
    /// [`Winograd3::applies`].
    wino: Option<Box<[Winograd3; 2]>>,
}

/// Output channels from which a convolution runs tap by tap on the packed
/// kernel (16-lane panels) from a padded copy of its input; narrower ones
/// (the stem's gradient into a 1-channel image) take im2col and the general
/// gemm.
const TAPS_MIN_COLS: usize = 16;

thread_local! {
    /// The zero-padded input of the tap-wise convolution on this thread.
    static PADDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl ConvMats {
    /// From a kernel `[out, in, k, k]`.
    pub fn new(kernel: &Tensor) -> Result<Self> {
        let (cout, cin, k, k2) = kernel.dims4()?;
        if k != k2 || k % 2 == 0 {
            candle_core::bail!("fused conv: kernel {k}x{k2} must be square and odd");
        }
        let raw = kernel.flatten_all()?.to_vec1::<f32>()?;
        let at = |o: usize, c: usize, kh: usize, kw: usize| raw[((o * cin + c) * k + kh) * k + kw];
        let mut w = vec![0f32; k * k * cin * cout];
        let mut w_back = vec![0f32; k * k * cin * cout];
        for kh in 0..k {
            for kw in 0..k {
                for c in 0..cin {
                    for o in 0..cout {
                        let v = at(o, c, kh, kw);
                        w[((kh * k + kw) * cin + c) * cout + o] = v;
                        let (fh, fw) = (k - 1 - kh, k - 1 - kw);
                        w_back[((fh * k + fw) * cout + o) * cin + c] = v;
                    }
                }
            }
        }
        let packed = PackedB::new(MatRef::row_major(&w, k * k * cin, cout));
        let packed_back = PackedB::new(MatRef::row_major(&w_back, k * k * cout, cin));
        let wino = Winograd3::applies(k, cin, cout).then(|| {
            Box::new([
                Winograd3::new(&w, cin, cout),
                Winograd3::new(&w_back, cout, cin),
            ])
        });
        Ok(Self {
            k,
            cin,
            cout,
            w,
            packed,
            packed_back,
            wino,
        })
    }

    /// A gradient in the forward matrix layout `[k*k*cin, cout]` as a kernel
    /// `[out, in, k, k]` tensor.
    pub fn kernel_tensor(&self, grad: &[f32], device: &Device) -> Result<Tensor> {
        let (k, cin, cout) = (self.k, self.cin, self.cout);
        let mut out = vec![0f32; grad.len()];
        for kh in 0..k {
            for kw in 0..k {
                for c in 0..cin {
                    for o in 0..cout {
                        out[((o * cin + c) * k + kh) * k + kw] =
                            grad[((kh * k + kw) * cin + c) * cout + o];
                    }
                }
            }
        }
        Tensor::from_vec(out, (cout, cin, k, k), device)
    }

    /// `out = conv(x)` (or `out += conv(x)` with `accumulate`), `x: [n, H, W, cin]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        cols: &mut [f32],
        out: &mut [f32],
        accumulate: bool,
    ) {
        let px = n * h * w;
        run_conv(
            self.k,
            self.cin,
            self.cout,
            &self.packed,
            self.wino.as_ref().map(|w| &w[0]),
            x,
            n,
            h,
            w,
            cols,
            &mut out[..px * self.cout],
            accumulate,
        );
    }

    /// `out = dL/dx` of `conv(x)` given `g = dL/dy: [n, H, W, cout]`.
    /// With `accumulate`, `out += dL/dx`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        g: &[f32],
        n: usize,
        h: usize,
        w: usize,
        cols: &mut [f32],
        out: &mut [f32],
        accumulate: bool,
    ) {
        let px = n * h * w;
        run_conv(
            self.k,
            self.cout,
            self.cin,
            &self.packed_back,
            self.wino.as_ref().map(|w| &w[1]),
            g,
            n,
            h,
            w,
            cols,
            &mut out[..px * self.cin],
            accumulate,
        );
    }

    /// `dw += dL/dW` of `conv(x)` given its input `x` and `g = dL/dy`
    /// (`dw` in the forward layout).
    #[allow(clippy::too_many_arguments)]
    pub fn weight_grad(
        &self,
        x: &[f32],
        g: &[f32],
        n: usize,
        h: usize,
        w: usize,
        cols: &mut [f32],
        dw: &mut [f32],
    ) {
        let px = n * h * w;
        let gm = MatRef::row_major(&g[..px * self.cout], px, self.cout);
        if self.k == 1 {
            let xm = MatRef::row_major(&x[..px * self.cin], px, self.cin);
            matmul(dw, xm.t(), gm, true);
            return;
        }
        let width = self.k * self.k * self.cin;
        let x = &x[..px * self.cin];
        for r0 in (0..px).step_by(WEIGHT_TILE_ROWS) {
            let r1 = (r0 + WEIGHT_TILE_ROWS).min(px);
            let tile = &mut cols[..(r1 - r0) * width];
            im2col_rows(x, [n, h, w, self.cin], self.k, r0..r1, tile);
            let gt = MatRef::row_major(&g[r0 * self.cout..r1 * self.cout], r1 - r0, self.cout);
            matmul(dw, MatRef::row_major(tile, r1 - r0, width).t(), gt, true);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_conv(
    k: usize,
    cin: usize,
    cout: usize,
    wmat: &PackedB,
    wino: Option<&Winograd3>,
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    cols: &mut [f32],
    out: &mut [f32],
    accumulate: bool,
) {
    let px = n * h * w;
    let x = &x[..px * cin];
    if let Some(wino) = wino {
        wino.conv(x, [n, h, w], out, accumulate);
        return;
    }
    if cout >= TAPS_MIN_COLS {
        if k == 1 {
            wmat.mul(out, x, cin, px, accumulate);
        } else {
            conv_taps(k, cin, cout, wmat, x, [n, h, w], out, accumulate);
        }
        return;
    }
    let wm = wmat.plain();
    if k == 1 {
        matmul(out, MatRef::row_major(x, px, cin), wm, accumulate);
        return;
    }
    let width = k * k * cin;
    for r0 in (0..px).step_by(TILE_ROWS) {
        let r1 = (r0 + TILE_ROWS).min(px);
        let tile = &mut cols[..(r1 - r0) * width];
        im2col_rows(x, [n, h, w, cin], k, r0..r1, tile);
        matmul(
            &mut out[r0 * cout..r1 * cout],
            MatRef::row_major(tile, r1 - r0, width),
            wm,
            accumulate,
        );
    }
}

/// A `k x k` convolution as `k * k` shifted products per output row, read
/// from a zero-padded copy of `x: [n, H, W, cin]` (no im2col).
#[allow(clippy::too_many_arguments)]
fn conv_taps(
    k: usize,
    cin: usize,
    cout: usize,
    wmat: &PackedB,
    x: &[f32],
    [n, h, w]: [usize; 3],
    out: &mut [f32],
    accumulate: bool,
) {
    let p = k / 2;
    let (hp, wp) = (h + 2 * p, w + 2 * p);
    with_padded(x, [n, h, w, cin], p, [hp, wp], |pad| {
        let taps: Vec<usize> = (0..k * k).map(|t| ((t / k) * wp + t % k) * cin).collect();
        let mut offsets = vec![0usize; k * k];
        for img in 0..n {
            for y in 0..h {
                let base = (img * hp + y) * wp * cin;
                for (o, t) in offsets.iter_mut().zip(&taps) {
                    *o = base + t;
                }
                let row = (img * h + y) * w * cout;
                wmat.mul_taps(
                    &mut out[row..row + w * cout],
                    pad,
                    cin,
                    &offsets,
                    w,
                    accumulate,
                );
            }
        }
    });
}

/// Calls `f` with `x: [n, H, W, C]` copied into this thread's `[n, hp, wp, C]`
/// buffer at row and column `p`, zeros around it.
fn with_padded<R>(
    x: &[f32],
    [n, h, w, c]: [usize; 4],
    p: usize,
    [hp, wp]: [usize; 2],
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    assert!(
        hp >= h + p && wp >= w + p,
        "padded buffer smaller than the image"
    );
    PADDED.with(|buf| {
        let mut pad = buf.borrow_mut();
        if pad.len() < n * hp * wp * c {
            pad.resize(n * hp * wp * c, 0.0);
        }
        // Every padded row: its border zeroed (a previous call may have left
        // other data there), its interior copied.
        let row_len = wp * c;
        for img in 0..n {
            for yp in 0..hp {
                let at = (img * hp + yp) * row_len;
                let row = &mut pad[at..at + row_len];
                if yp < p || yp >= h + p {
                    row.fill(0.0);
                    continue;
                }
                let src = ((img * h + yp - p) * w) * c;
                row[..p * c].fill(0.0);
                row[p * c..(p + w) * c].copy_from_slice(&x[src..src + w * c]);
                row[(p + w) * c..].fill(0.0);
            }
        }
        f(&pad[..n * hp * wp * c])
    })
}

/// Rows `rows` of the patch matrix `[n*H*W, k*k*C]` of `x: [n, H, W, C]`,
/// ordered `(kh, kw, c)`, zero outside the image, into `cols`.
fn im2col_rows(
    x: &[f32],
    [_, h, w, c]: [usize; 4],
    k: usize,
    rows: Range<usize>,
    cols: &mut [f32],
) {
    let p = k / 2;
    let width = k * k * c;
    let kc = k * c;
    for (r, row) in rows.zip(cols.chunks_mut(width)) {
        let (img, y, xx) = (r / (h * w), r / w % h, r % w);
        for kh in 0..k {
            let dst = &mut row[kh * kc..(kh + 1) * kc];
            let yy = y + kh;
            if yy < p || yy - p >= h {
                dst.fill(0.0);
                continue;
            }
            let src_row = (img * h + yy - p) * w;
            if xx >= p && xx + k - p <= w {
                // All k taps inside: one contiguous run of k*C floats.
                let start = (src_row + xx - p) * c;
                dst.copy_from_slice(&x[start..start + kc]);
                continue;
            }
            for kw in 0..k {
                let d = &mut dst[kw * c..(kw + 1) * c];
                let xc = xx + kw;
                if xc < p || xc - p >= w {
                    d.fill(0.0);
                } else {
                    let start = (src_row + xc - p) * c;
                    d.copy_from_slice(&x[start..start + c]);
                }
            }
        }
    }
}

/// 2x2 average pooling of `[n, H, W, C]` to `[n, H/2, W/2, C]` (an odd last
/// row or column is dropped).
pub fn avg_pool2(x: &[f32], out: &mut [f32], n: usize, h: usize, w: usize, c: usize) {
    let (h2, w2) = (h / 2, w / 2);
    for img in 0..n {
        for y in 0..h2 {
            for xx in 0..w2 {
                let o = &mut out[((img * h2 + y) * w2 + xx) * c..][..c];
                let at = |dy: usize, dx: usize| ((img * h + 2 * y + dy) * w + 2 * xx + dx) * c;
                let (a, b, cc, d) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1));
                for i in 0..c {
                    o[i] = 0.25 * (x[a + i] + x[b + i] + x[cc + i] + x[d + i]);
                }
            }
        }
    }
}

/// The adjoint of [`avg_pool2`]: `g: [n, H/2, W/2, C]` to `[n, H, W, C]`.
#[allow(clippy::too_many_arguments)]
pub fn unpool2(
    g: &[f32],
    out: &mut [f32],
    n: usize,
    h: usize,
    w: usize,
    h2: usize,
    w2: usize,
    c: usize,
) {
    for img in 0..n {
        for y in 0..h {
            for xx in 0..w {
                let o = &mut out[((img * h + y) * w + xx) * c..][..c];
                if y / 2 >= h2 || xx / 2 >= w2 {
                    o.fill(0.0);
                    continue;
                }
                let src = &g[((img * h2 + y / 2) * w2 + xx / 2) * c..][..c];
                for (o, s) in o.iter_mut().zip(src) {
                    *o = 0.25 * s;
                }
            }
        }
    }
}

/// `op(v, b)` for every value `v` of image `i` of `x: [n, HW, C]` and the
/// matching channel's `b` in row `i` of `per: [n, C]` (per-class biases and
/// gains).
#[inline]
pub fn apply_per_image(x: &mut [f32], per: &[f32], n: usize, op: impl Fn(&mut f32, f32)) {
    let c = per.len() / n;
    let img = x.len() / n;
    for (xi, pi) in x.chunks_mut(img).zip(per.chunks(c)) {
        for p in xi.chunks_mut(c) {
            for (v, &b) in p.iter_mut().zip(pi) {
                op(v, b);
            }
        }
    }
}

pub fn mul_in_place(x: &mut [f32], by: &[f32]) {
    for (v, s) in x.iter_mut().zip(by) {
        *v *= s;
    }
}

pub fn nchw_to_nhwc(x: &[f32], out: &mut [f32], n: usize, c: usize, hw: usize) {
    for img in 0..n {
        for ch in 0..c {
            for p in 0..hw {
                out[(img * hw + p) * c + ch] = x[(img * c + ch) * hw + p];
            }
        }
    }
}

pub fn nhwc_to_nchw(x: &[f32], out: &mut [f32], n: usize, c: usize, hw: usize) {
    for img in 0..n {
        for ch in 0..c {
            for p in 0..hw {
                out[(img * c + ch) * hw + p] = x[(img * hw + p) * c + ch];
            }
        }
    }
}

/// Per-image sums over pixels of `x: [n, HW, C]`, added to `out: [n, C]`.
pub fn sum_pixels_per_image(x: &[f32], out: &mut [f32], n: usize) {
    let c = out.len() / n;
    let img = x.len() / n;
    for (xi, oi) in x.chunks(img).zip(out.chunks_mut(c)) {
        for p in xi.chunks(c) {
            for (o, v) in oi.iter_mut().zip(p) {
                *o += v;
            }
        }
    }
}
