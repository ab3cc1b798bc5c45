//! A fused CPU path for `ResNetEnergy`'s energy and its input gradient, the
//! image counterpart of [`crate::fused_mlp`]: every convolution is an im2col
//! into a reused buffer and one matrix product (the gemm crate's kernels),
//! the backward pass into the input is written out by hand (a convolution
//! with the flipped, transposed kernel), and there is no autograd graph and no
//! per-op tensor allocation. Image Langevin sampling (60 input gradients per
//! training step) spends its time in candle's per-op overhead otherwise.
//!
//! Images are independent, so a batch is split across threads by image and
//! each thread works through its share a few images at a time, which keeps
//! the im2col buffers small. Channels last (`[n, H, W, C]`) inside.

use candle_core::{Result, Tensor};
use rayon::prelude::*;
use std::cell::RefCell;

use crate::activation::Activation;
use crate::sgemm::{matmul, MatRef};

/// Images per forward/backward pass of one thread.
const IMAGES_PER_GROUP: usize = 8;

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

/// A size-preserving stride-1 convolution as matrices.
#[derive(Debug, Clone)]
struct ConvMats {
    k: usize,
    cin: usize,
    cout: usize,
    /// `[k*k*cin, cout]`, rows ordered `(kh, kw, c)`: the forward.
    w: Vec<f32>,
    /// `[k*k*cout, cin]`, the kernel flipped in space with channels swapped:
    /// the gradient into the input is the convolution of the output's gradient
    /// with this.
    w_back: Vec<f32>,
}

impl ConvMats {
    /// From a kernel `[out, in, k, k]`.
    fn new(kernel: &Tensor) -> Result<Self> {
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
        Ok(Self {
            k,
            cin,
            cout,
            w,
            w_back,
        })
    }
}

/// One residual block's frozen parameters.
#[derive(Debug, Clone)]
pub(crate) struct FusedBlock {
    conv1: ConvMats,
    conv2: ConvMats,
    skip: Option<ConvMats>,
    /// `[classes, in]`, `[classes, out]`, `[classes, out]`.
    bias1: Vec<f32>,
    bias2: Vec<f32>,
    gain2: Vec<f32>,
    downsample: bool,
}

/// The tensors of one block, as `ResNetEnergy` holds them.
pub(crate) struct BlockTensors<'a> {
    pub conv1: &'a Tensor,
    pub conv2: &'a Tensor,
    pub skip: Option<&'a Tensor>,
    pub bias1: &'a Tensor,
    pub bias2: &'a Tensor,
    pub gain2: &'a Tensor,
    pub downsample: bool,
}

impl FusedBlock {
    pub(crate) fn new(t: BlockTensors) -> Result<Self> {
        let flat = |x: &Tensor| x.flatten_all()?.to_vec1::<f32>();
        Ok(Self {
            conv1: ConvMats::new(t.conv1)?,
            conv2: ConvMats::new(t.conv2)?,
            skip: t.skip.map(ConvMats::new).transpose()?,
            bias1: flat(t.bias1)?,
            bias2: flat(t.bias2)?,
            gain2: flat(t.gain2)?,
            downsample: t.downsample,
        })
    }
}

/// The frozen weights of a `ResNetEnergy`, ready for the fused path.
#[derive(Debug, Clone)]
pub struct FusedResNet {
    in_channels: usize,
    size: usize,
    classes: usize,
    act: Activation,
    stem: ConvMats,
    blocks: Vec<FusedBlock>,
    head_w: Vec<f32>,
    head_b: f32,
}

impl FusedResNet {
    /// `stem: [S, C, 3, 3]`, the head `[1, width]` and `[1]`.
    pub(crate) fn new(
        in_channels: usize,
        size: usize,
        classes: usize,
        act: Activation,
        stem: &Tensor,
        blocks: Vec<FusedBlock>,
        head_w: &Tensor,
        head_b: Option<&Tensor>,
    ) -> Result<Self> {
        Ok(Self {
            in_channels,
            size,
            classes,
            act,
            stem: ConvMats::new(stem)?,
            blocks,
            head_w: head_w.flatten_all()?.to_vec1::<f32>()?,
            head_b: match head_b {
                Some(b) => b.flatten_all()?.to_vec1::<f32>()?[0],
                None => 0.0,
            },
        })
    }

    /// Floats in one image.
    pub fn image_len(&self) -> usize {
        self.in_channels * self.size * self.size
    }

    /// Width of the label rows (0 when unconditional).
    pub fn cond_dim(&self) -> usize {
        if self.classes > 1 {
            self.classes
        } else {
            0
        }
    }

    /// Energies `[n]` and `dE/dx` `[n, C*H*W]` of the images `x: [n, C, H, W]`
    /// (channels first, as the model takes them) under labels `cond: [n, classes]`.
    pub fn energy_and_grad(
        &self,
        x: &[f32],
        cond: Option<&[f32]>,
        energy: &mut [f32],
        grad: &mut [f32],
    ) {
        let (d, c, n) = (self.image_len(), self.cond_dim(), energy.len());
        assert_eq!(x.len(), n * d, "fused resnet: x is not [n, C, H, W]");
        assert_eq!(grad.len(), n * d, "fused resnet: grad is not [n, C, H, W]");
        assert_eq!(
            cond.map_or(0, <[f32]>::len),
            n * c,
            "fused resnet: labels are not [n, classes]"
        );
        let threads = rayon::current_num_threads().max(1);
        let chunk = n.div_ceil(threads).max(1);
        x.par_chunks(chunk * d)
            .zip(energy.par_chunks_mut(chunk))
            .zip(grad.par_chunks_mut(chunk * d))
            .enumerate()
            .for_each(|(i, ((x, e), g))| {
                WORKSPACE.with(|ws| {
                    let ws = &mut ws.borrow_mut();
                    for (j, e) in e.chunks_mut(IMAGES_PER_GROUP).enumerate() {
                        let first = i * chunk + j * IMAGES_PER_GROUP;
                        let range = j * IMAGES_PER_GROUP * d..(j * IMAGES_PER_GROUP + e.len()) * d;
                        let labels = cond.map(|cv| &cv[first * c..(first + e.len()) * c]);
                        self.group(&x[range.clone()], labels, e, &mut g[range], ws);
                    }
                });
            });
    }

    /// Per-image rows of a `[classes, width]` table: `labels . table`, or its
    /// first row when unconditional.
    fn per_image(&self, table: &[f32], labels: Option<&[f32]>, n: usize, out: &mut Vec<f32>) {
        let width = table.len() / self.classes;
        out.clear();
        out.resize(n * width, 0.0);
        for (i, row) in out.chunks_mut(width).enumerate() {
            match labels {
                Some(y) => {
                    for (k, &yk) in y[i * self.classes..(i + 1) * self.classes].iter().enumerate() {
                        if yk != 0.0 {
                            for (r, t) in row.iter_mut().zip(&table[k * width..(k + 1) * width]) {
                                *r += yk * t;
                            }
                        }
                    }
                }
                None => row.copy_from_slice(&table[..width]),
            }
        }
    }

    /// Forward and backward for `n <= IMAGES_PER_GROUP` images.
    fn group(
        &self,
        x: &[f32],
        labels: Option<&[f32]>,
        energy: &mut [f32],
        grad: &mut [f32],
        ws: &mut Workspace,
    ) {
        let n = energy.len();
        let (cin, s) = (self.in_channels, self.size);
        ws.prepare(n, self);
        // [n, C, H, W] -> [n, H, W, C]
        nchw_to_nhwc(x, &mut ws.h, n, cin, s * s);
        let (mut hh, mut ww) = (s, s);
        conv(&self.stem, &ws.h, n, hh, ww, &mut ws.cols, &mut ws.out, false);
        std::mem::swap(&mut ws.h, &mut ws.out);
        for (bi, b) in self.blocks.iter().enumerate() {
            let px = n * hh * ww;
            let (a, o) = (b.conv1.cin, b.conv1.cout);
            let mut pi = std::mem::take(&mut ws.per_image);
            // t = act(h) + bias1[y]; slopes of act at h kept for backward.
            let slope_in = &mut ws.slope_in[bi];
            slope_in[..px * a].copy_from_slice(&ws.h[..px * a]);
            self.act
                .activate_in_place(&mut slope_in[..px * a], &mut ws.t[..px * a]);
            self.per_image(&b.bias1, labels, n, &mut pi);
            add_per_image(&mut ws.t[..px * a], &pi, n);
            conv(&b.conv1, &ws.t, n, hh, ww, &mut ws.cols, &mut ws.out, false);
            // t = act(c1) + bias2[y]
            let slope_mid = &mut ws.slope_mid[bi];
            slope_mid[..px * o].copy_from_slice(&ws.out[..px * o]);
            self.act
                .activate_in_place(&mut slope_mid[..px * o], &mut ws.t[..px * o]);
            self.per_image(&b.bias2, labels, n, &mut pi);
            add_per_image(&mut ws.t[..px * o], &pi, n);
            conv(&b.conv2, &ws.t, n, hh, ww, &mut ws.cols, &mut ws.out, false);
            self.per_image(&b.gain2, labels, n, &mut pi);
            mul_per_image(&mut ws.out[..px * o], &pi, n);
            ws.per_image = pi;
            // + skip(h)
            match &b.skip {
                Some(sk) => conv(sk, &ws.h, n, hh, ww, &mut ws.cols, &mut ws.out, true),
                None => {
                    for (y, h) in ws.out[..px * o].iter_mut().zip(&ws.h[..px * o]) {
                        *y += h;
                    }
                }
            }
            std::mem::swap(&mut ws.h, &mut ws.out);
            if b.downsample {
                avg_pool2(&ws.h, &mut ws.out, n, hh, ww, o);
                std::mem::swap(&mut ws.h, &mut ws.out);
                (hh, ww) = (hh / 2, ww / 2);
            }
        }
        // Energy: act(h) summed over space, then the head.
        let width = self.head_w.len();
        let hw = hh * ww;
        let px = n * hw;
        ws.slope_out[..px * width].copy_from_slice(&ws.h[..px * width]);
        self.act
            .activate_in_place(&mut ws.slope_out[..px * width], &mut ws.t[..px * width]);
        for (i, e) in energy.iter_mut().enumerate() {
            let img = &ws.t[i * hw * width..(i + 1) * hw * width];
            let mut sum = 0f32;
            for p in img.chunks(width) {
                sum += p.iter().zip(&self.head_w).map(|(a, w)| a * w).sum::<f32>();
            }
            *e = sum + self.head_b;
        }
        // Backward: g = dE/dh, starting at the head.
        for (g, sl) in ws.g[..px * width]
            .chunks_mut(width)
            .zip(ws.slope_out[..px * width].chunks(width))
        {
            for ((g, s), w) in g.iter_mut().zip(sl).zip(&self.head_w) {
                *g = w * s;
            }
        }
        for (bi, b) in self.blocks.iter().enumerate().rev() {
            let (a, o) = (b.conv1.cin, b.conv1.cout);
            if b.downsample {
                let (h2, w2) = (hh, ww);
                (hh, ww) = ws.block_size[bi];
                unpool2(&ws.g, &mut ws.out, n, hh, ww, h2, w2, o);
                std::mem::swap(&mut ws.g, &mut ws.out);
            }
            let px = n * hh * ww;
            // Through the gain: into conv2's output.
            let mut pi = std::mem::take(&mut ws.per_image);
            self.per_image(&b.gain2, labels, n, &mut pi);
            ws.t[..px * o].copy_from_slice(&ws.g[..px * o]);
            mul_per_image(&mut ws.t[..px * o], &pi, n);
            ws.per_image = pi;
            back(&b.conv2, &ws.t, n, hh, ww, &mut ws.cols, &mut ws.out);
            mul_in_place(&mut ws.out[..px * o], &ws.slope_mid[bi][..px * o]);
            back(&b.conv1, &ws.out, n, hh, ww, &mut ws.cols, &mut ws.t);
            mul_in_place(&mut ws.t[..px * a], &ws.slope_in[bi][..px * a]);
            match &b.skip {
                Some(sk) => {
                    let gm = MatRef::row_major(&ws.g[..px * o], px, o);
                    let wb = MatRef::row_major(&sk.w_back, o, a);
                    matmul(&mut ws.t[..px * a], gm, wb, true);
                }
                None => {
                    for (t, g) in ws.t[..px * a].iter_mut().zip(&ws.g[..px * a]) {
                        *t += g;
                    }
                }
            }
            std::mem::swap(&mut ws.g, &mut ws.t);
        }
        back(&self.stem, &ws.g, n, hh, ww, &mut ws.cols, &mut ws.out);
        nhwc_to_nchw(&ws.out, grad, n, cin, s * s);
    }
}

/// `out = conv(x)` (or `out += conv(x)` with `accumulate`), `x: [n, H, W, cin]`.
#[allow(clippy::too_many_arguments)]
fn conv(
    c: &ConvMats,
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    cols: &mut [f32],
    out: &mut [f32],
    accumulate: bool,
) {
    let px = n * h * w;
    run_conv(c.k, c.cin, c.cout, &c.w, x, n, h, w, cols, &mut out[..px * c.cout], accumulate);
}

/// `out = dL/dx` of `conv(x)` given `g = dL/dy: [n, H, W, cout]`.
fn back(c: &ConvMats, g: &[f32], n: usize, h: usize, w: usize, cols: &mut [f32], out: &mut [f32]) {
    let px = n * h * w;
    run_conv(c.k, c.cout, c.cin, &c.w_back, g, n, h, w, cols, &mut out[..px * c.cin], false);
}

#[allow(clippy::too_many_arguments)]
fn run_conv(
    k: usize,
    cin: usize,
    cout: usize,
    wmat: &[f32],
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    cols: &mut [f32],
    out: &mut [f32],
    accumulate: bool,
) {
    let px = n * h * w;
    let wm = MatRef::row_major(wmat, k * k * cin, cout);
    if k == 1 {
        matmul(out, MatRef::row_major(&x[..px * cin], px, cin), wm, accumulate);
        return;
    }
    let width = k * k * cin;
    im2col(&x[..px * cin], n, h, w, cin, k, &mut cols[..px * width]);
    matmul(out, MatRef::row_major(&cols[..px * width], px, width), wm, accumulate);
}

/// Patches `[n*H*W, k*k*C]` of `x: [n, H, W, C]`, ordered `(kh, kw, c)`, zero
/// outside the image.
fn im2col(x: &[f32], n: usize, h: usize, w: usize, c: usize, k: usize, cols: &mut [f32]) {
    let p = k / 2;
    let width = k * k * c;
    let kc = k * c;
    for img in 0..n {
        for y in 0..h {
            for xx in 0..w {
                let row = &mut cols[((img * h + y) * w + xx) * width..][..width];
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
    }
}

/// 2x2 average pooling of `[n, H, W, C]` to `[n, H/2, W/2, C]` (an odd last
/// row or column is dropped).
fn avg_pool2(x: &[f32], out: &mut [f32], n: usize, h: usize, w: usize, c: usize) {
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
fn unpool2(g: &[f32], out: &mut [f32], n: usize, h: usize, w: usize, h2: usize, w2: usize, c: usize) {
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

/// Adds row `i` of `per: [n, C]` to every pixel of image `i` of `x: [n, HW, C]`.
fn add_per_image(x: &mut [f32], per: &[f32], n: usize) {
    let c = per.len() / n;
    let img = x.len() / n;
    for (xi, pi) in x.chunks_mut(img).zip(per.chunks(c)) {
        for p in xi.chunks_mut(c) {
            for (v, b) in p.iter_mut().zip(pi) {
                *v += b;
            }
        }
    }
}

/// Multiplies every pixel of image `i` by row `i` of `per: [n, C]`.
fn mul_per_image(x: &mut [f32], per: &[f32], n: usize) {
    let c = per.len() / n;
    let img = x.len() / n;
    for (xi, pi) in x.chunks_mut(img).zip(per.chunks(c)) {
        for p in xi.chunks_mut(c) {
            for (v, b) in p.iter_mut().zip(pi) {
                *v *= b;
            }
        }
    }
}

fn mul_in_place(x: &mut [f32], by: &[f32]) {
    for (v, s) in x.iter_mut().zip(by) {
        *v *= s;
    }
}

fn nchw_to_nhwc(x: &[f32], out: &mut [f32], n: usize, c: usize, hw: usize) {
    for img in 0..n {
        for ch in 0..c {
            for p in 0..hw {
                out[(img * hw + p) * c + ch] = x[(img * c + ch) * hw + p];
            }
        }
    }
}

fn nhwc_to_nchw(x: &[f32], out: &mut [f32], n: usize, c: usize, hw: usize) {
    for img in 0..n {
        for ch in 0..c {
            for p in 0..hw {
                out[(img * c + ch) * hw + p] = x[(img * hw + p) * c + ch];
            }
        }
    }
}

/// Scratch buffers of one thread, grown on demand and reused across calls.
#[derive(Debug, Default)]
struct Workspace {
    h: Vec<f32>,
    t: Vec<f32>,
    out: Vec<f32>,
    g: Vec<f32>,
    cols: Vec<f32>,
    per_image: Vec<f32>,
    /// Per block: the activation's slopes at its input and at conv1's output.
    slope_in: Vec<Vec<f32>>,
    slope_mid: Vec<Vec<f32>>,
    slope_out: Vec<f32>,
    /// Per block: the height and width it works at.
    block_size: Vec<(usize, usize)>,
}

impl Workspace {
    fn prepare(&mut self, n: usize, net: &FusedResNet) {
        let (mut hh, mut ww) = (net.size, net.size);
        let mut widest = net.in_channels.max(net.stem.cout);
        let mut cols = net.stem.k * net.stem.k * net.stem.cin.max(net.stem.cout);
        self.slope_in.resize_with(net.blocks.len(), Vec::new);
        self.slope_mid.resize_with(net.blocks.len(), Vec::new);
        self.block_size.clear();
        for (i, b) in net.blocks.iter().enumerate() {
            let px = n * hh * ww;
            self.block_size.push((hh, ww));
            self.slope_in[i].resize(px * b.conv1.cin, 0.0);
            self.slope_mid[i].resize(px * b.conv1.cout, 0.0);
            widest = widest.max(b.conv1.cin).max(b.conv1.cout);
            cols = cols.max(9 * b.conv1.cin.max(b.conv1.cout));
            if b.downsample {
                (hh, ww) = (hh / 2, ww / 2);
            }
        }
        let px = n * net.size * net.size;
        for buf in [&mut self.h, &mut self.t, &mut self.out, &mut self.g] {
            buf.resize(px * widest, 0.0);
        }
        self.cols.resize(px * cols, 0.0);
        self.slope_out.resize(n * hh * ww * net.head_w.len(), 0.0);
    }
}

/// Energies and input gradients as tensors, for `EnergyFunction`'s fast path.
pub fn energy_and_grad_tensors(
    f: &FusedResNet,
    x: &Tensor,
    cond: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let n = x.dim(0)?;
    let xv = x.flatten_all()?.to_vec1::<f32>()?;
    let cv = match cond {
        Some(c) => Some(c.flatten_all()?.to_vec1::<f32>()?),
        None => None,
    };
    let mut e = vec![0.0f32; n];
    let mut g = vec![0.0f32; xv.len()];
    f.energy_and_grad(&xv, cv.as_deref(), &mut e, &mut g);
    Ok((
        Tensor::from_vec(e, n, x.device())?,
        Tensor::from_vec(g, x.shape(), x.device())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::{energy_and_grad, EnergyFunction, EnergyModel, EnergyTerm};
    use crate::models::{ResNetEnergy, ResNetEnergyConfig, StageConfig};
    use crate::params::ParamStore;
    use crate::rng::Rng;
    use candle_core::Device;

    fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
        let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        let num: f32 = a.iter().zip(&b).map(|(p, q)| (p - q).powi(2)).sum();
        let den: f32 = b.iter().map(|q| q * q).sum();
        (num / den.max(1e-30)).sqrt()
    }

    fn config(act: Activation, classes: usize, size: usize, channels: usize) -> ResNetEnergyConfig {
        let stage = |c, d| StageConfig {
            channels: c,
            downsample: d,
        };
        ResNetEnergyConfig {
            in_channels: channels,
            image_size: size,
            num_classes: classes,
            stem_channels: 8,
            stages: vec![stage(8, true), stage(12, true), stage(12, false)],
            activation: act,
            spectral_norm: true,
        }
    }

    /// Fused energies and input gradients equal candle autograd's on the same
    /// frozen model: odd sizes (pooling drops a row), one and three channels,
    /// class tables away from their initial values, batches of one image and
    /// of several groups over several threads.
    #[test]
    fn fused_path_matches_autograd() -> Result<()> {
        let dev = Device::Cpu;
        for (act, classes, size, ch, n) in [
            (Activation::LeakyRelu, 10, 12, 1, 21),
            (Activation::Silu, 1, 11, 3, 5),
            (Activation::Relu, 3, 9, 1, 1),
            (Activation::Silu, 10, 28, 1, 17),
        ] {
            let cfg = config(act, classes, size, ch);
            let params = ParamStore::new(7, &dev);
            let model = ResNetEnergy::init(&cfg, &params)?;
            let mut rng = Rng::new(11);
            for (name, var) in params.vars() {
                if name.contains("class_") {
                    let t = (var.as_tensor()
                        + Tensor::from_vec(rng.normal_vec(var.elem_count()), var.shape(), &dev)?
                            * 0.3)?;
                    var.set(&t)?;
                }
            }
            let m = model.frozen();
            let plain = m.without_fused_path();
            let d = ch * size * size;
            let x = Tensor::from_vec(rng.normal_vec(n * d), (n, ch, size, size), &dev)?;
            let y = (classes > 1)
                .then(|| {
                    let mut v = vec![0f32; n * classes];
                    for i in 0..n {
                        v[i * classes + (i * 7) % classes] = 1.0;
                    }
                    Tensor::from_vec(v, (n, classes), &dev)
                })
                .transpose()?;
            let (ef, gf) = m
                .fast_energy_and_grad(&x, y.as_ref())
                .expect("a frozen CPU model has the fused path")?;
            let (ea, ga) = energy_and_grad(&[EnergyTerm::new(&plain, y.clone())], &x)?;
            let (re, rg) = (rel_err(&ef, &ea), rel_err(&gf, &ga));
            assert!(re < 1e-5, "{act:?} {size}x{size}: energy {re}");
            assert!(rg < 1e-5, "{act:?} {size}x{size}: grad {rg}");
            assert_eq!(gf.dims(), x.dims());
            assert!(ga.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
        }
        Ok(())
    }

    /// Labels pick different class tables, so energies differ by label; the
    /// wrong label width takes the autograd path, which names the problem.
    #[test]
    fn labels_matter_and_bad_shapes_fall_back() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = config(Activation::LeakyRelu, 4, 8, 1);
        let params = ParamStore::new(3, &dev);
        let model = ResNetEnergy::init(&cfg, &params)?;
        for (name, var) in params.vars() {
            if name.contains("class_bias1") {
                let r = Rng::new(5).normal_vec(var.elem_count());
                var.set(&Tensor::from_vec(r, var.shape(), &dev)?)?;
            }
        }
        let m = model.frozen();
        let x = Tensor::from_vec(Rng::new(1).normal_vec(2 * 64), (2, 1, 8, 8), &dev)?;
        let x = Tensor::cat(&[&x.narrow(0, 0, 1)?, &x.narrow(0, 0, 1)?], 0)?;
        let y = Tensor::from_vec(vec![1f32, 0., 0., 0., 0., 0., 1., 0.], (2, 4), &dev)?;
        let (e, _) = m.fast_energy_and_grad(&x, Some(&y)).expect("fused")?;
        let e: Vec<f32> = e.to_vec1()?;
        assert!((e[0] - e[1]).abs() > 1e-4, "same image, labels 0 and 2: {e:?}");
        let bad = Tensor::zeros((2, 3), candle_core::DType::F32, &dev)?;
        assert!(m.fast_energy_and_grad(&x, Some(&bad)).is_none());
        assert!(m.fast_energy_and_grad(&x, None).is_none());
        let err = m.energy(&x, Some(&bad)).unwrap_err().to_string();
        assert!(err.contains("labels"), "{err}");
        Ok(())
    }
}
