//! A fused CPU path for `ResNetEnergy`, the image counterpart of
//! [`crate::models::fused::mlp`]: energies, their input gradient (Langevin sampling)
//! and their parameter gradient (training steps), written out by hand over
//! plain buffers with the convolutions as matrix products
//! ([`ebm_kernels::conv`]: Winograd F(4x4, 3x3) for 3x3 kernels over whole
//! 16-channel vectors, tap-wise or im2col products otherwise); no autograd
//! graph and no per-op tensor allocation.
//! Image Langevin sampling (60 input gradients per training step) spends its
//! time in candle's per-op overhead otherwise.
//!
//! Images are independent, so a batch is split across threads by image and
//! each thread works through its share a few images at a time, which keeps
//! the buffers small. Channels last (`[n, H, W, C]`) inside.

use candle_core::{Device, Result, Tensor};
use rayon::prelude::*;
use std::cell::RefCell;

use crate::Activation;
use ebm_kernels::conv::{
    apply_per_image, avg_pool2, mul_in_place, nchw_to_nhwc, nhwc_to_nchw, sum_pixels_per_image,
    unpool2, ConvMats, TILE_ROWS, WEIGHT_TILE_ROWS,
};

/// Images per forward/backward pass of one thread.
const IMAGES_PER_GROUP: usize = 8;

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

/// The frozen weights of a `ResNetEnergy`, ready for the fused path.
#[derive(Debug, Clone)]
pub struct FusedResNet {
    in_channels: usize,
    size: usize,
    classes: usize,
    act: Activation,
    /// The activation before the sum over space.
    head_act: Activation,
    stem: ConvMats,
    blocks: Vec<FusedBlock>,
    /// Channels of the final map.
    width: usize,
    /// `[width]` (summed over space) or `[H, W, width]` (a spatial head).
    head_w: Vec<f32>,
    head_b: f32,
    dropout: Option<Dropout>,
}

impl FusedResNet {
    /// `stem: [S, C, 3, 3]`, the head `[1, width]` or `[1, H * W * width]`
    /// (spatial) and `[1]`; `[act, head_act]`
    /// the blocks' activation and the one before the sum over space.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        in_channels: usize,
        size: usize,
        classes: usize,
        [act, head_act]: [Activation; 2],
        stem: &Tensor,
        blocks: Vec<FusedBlock>,
        head_w: &Tensor,
        head_b: Option<&Tensor>,
        dropout: Option<Dropout>,
    ) -> Result<Self> {
        let stem = ConvMats::new(stem)?;
        let width = blocks.last().map_or(stem.cout, |b| b.conv1.cout);
        Ok(Self {
            in_channels,
            size,
            classes,
            act,
            head_act,
            dropout,
            stem,
            blocks,
            width,
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

    fn check(&self, x: &[f32], cond: Option<&[f32]>, n: usize) {
        let (d, c) = (self.image_len(), self.cond_dim());
        assert_eq!(x.len(), n * d, "fused resnet: x is not [n, C, H, W]");
        assert_eq!(
            cond.map_or(0, <[f32]>::len),
            n * c,
            "fused resnet: labels are not [n, classes]"
        );
    }

    /// Calls `f(x, labels, first, n)` for every group of images, groups split
    /// across threads, and sums what they return.
    fn over_groups<T: Send>(
        &self,
        x: &[f32],
        cond: Option<&[f32]>,
        n: usize,
        f: impl Fn(&[f32], Option<&[f32]>, usize, usize, &mut Workspace) -> T + Sync,
        sum: impl Fn(T, T) -> T + Sync + Send,
    ) -> Option<T> {
        let (d, c) = (self.image_len(), self.cond_dim());
        let threads = rayon::current_num_threads().max(1);
        let chunk = n.div_ceil(threads).max(1);
        (0..n.div_ceil(chunk))
            .into_par_iter()
            .map(|t| {
                WORKSPACE.with(|ws| {
                    let ws = &mut ws.borrow_mut();
                    let end = ((t + 1) * chunk).min(n);
                    let mut acc: Option<T> = None;
                    for first in (t * chunk..end).step_by(IMAGES_PER_GROUP) {
                        let m = IMAGES_PER_GROUP.min(end - first);
                        let labels = cond.map(|cv| &cv[first * c..(first + m) * c]);
                        let r = f(&x[first * d..(first + m) * d], labels, first, m, ws);
                        acc = Some(match acc {
                            Some(a) => sum(a, r),
                            None => r,
                        });
                    }
                    acc
                })
            })
            .reduce(
                || None,
                |a, b| match (a, b) {
                    (Some(a), Some(b)) => Some(sum(a, b)),
                    (a, b) => a.or(b),
                },
            )
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
        let (n, d) = (energy.len(), self.image_len());
        self.check(x, cond, n);
        assert_eq!(grad.len(), n * d, "fused resnet: grad is not [n, C, H, W]");
        let call = self.call_seed();
        let parts = self.over_groups(
            x,
            cond,
            n,
            |x, labels, first, m, ws| {
                let mut e = vec![0f32; m];
                let mut g = vec![0f32; m * d];
                self.forward(x, labels, &mut e, (call, first), ws);
                self.backward(labels, &vec![1.0; m], ws, None, Some(&mut g));
                vec![(first, e, g)]
            },
            |mut a, b| {
                a.extend(b);
                a
            },
        );
        for (first, e, g) in parts.unwrap_or_default() {
            energy[first..first + e.len()].copy_from_slice(&e);
            grad[first * d..first * d + g.len()].copy_from_slice(&g);
        }
    }

    /// Energies `[n]` only.
    pub fn energies(&self, x: &[f32], cond: Option<&[f32]>, energy: &mut [f32]) {
        let n = energy.len();
        self.check(x, cond, n);
        let call = self.call_seed();
        let parts = self.over_groups(
            x,
            cond,
            n,
            |x, labels, first, m, ws| {
                let mut e = vec![0f32; m];
                self.forward(x, labels, &mut e, (call, first), ws);
                vec![(first, e)]
            },
            |mut a, b| {
                a.extend(b);
                a
            },
        );
        for (first, e) in parts.unwrap_or_default() {
            energy[first..first + e.len()].copy_from_slice(&e);
        }
    }

    /// Energies `E` of `n` images and the gradient of `sum_i w_i E_i` with
    /// respect to every parameter, `w_i = weight(i, E_i)` (for a training
    /// loss, `w_i = dL/dE_i`), in one forward and backward pass.
    pub(crate) fn energy_vjp(
        &self,
        x: &[f32],
        cond: Option<&[f32]>,
        n: usize,
        weight: &(dyn Fn(usize, f32) -> f32 + Sync),
        device: &Device,
    ) -> Result<(Vec<f32>, ParamGrads)> {
        self.check(x, cond, n);
        let call = self.call_seed();
        let parts = self.over_groups(
            x,
            cond,
            n,
            |x, labels, first, m, ws| {
                let mut g = GradBufs::zeros(self);
                let mut e = vec![0f32; m];
                self.forward(x, labels, &mut e, (call, first), ws);
                let w: Vec<f32> = e
                    .iter()
                    .enumerate()
                    .map(|(i, &e)| weight(first + i, e))
                    .collect();
                self.backward(labels, &w, ws, Some(&mut g), None);
                (vec![(first, e)], g)
            },
            |(mut ea, ga), (eb, gb)| {
                ea.extend(eb);
                (ea, ga.add(gb))
            },
        );
        let mut energy = vec![0f32; n];
        let grads = match parts {
            Some((es, g)) => {
                for (first, e) in es {
                    energy[first..first + e.len()].copy_from_slice(&e);
                }
                g
            }
            None => GradBufs::zeros(self),
        };
        Ok((energy, self.grad_tensors(grads, device)?))
    }

    fn grad_tensors(&self, g: GradBufs, device: &Device) -> Result<ParamGrads> {
        let table = |v: &[f32]| {
            Tensor::from_vec(v.to_vec(), (self.classes, v.len() / self.classes), device)
        };
        let blocks = self
            .blocks
            .iter()
            .zip(&g.blocks)
            .map(|(b, [c1, c2, sk, b1, b2, g2])| {
                Ok(BlockGrads {
                    conv1: b.conv1.kernel_tensor(c1, device)?,
                    conv2: b.conv2.kernel_tensor(c2, device)?,
                    skip: b
                        .skip
                        .as_ref()
                        .map(|s| s.kernel_tensor(sk, device))
                        .transpose()?,
                    bias1: table(b1)?,
                    bias2: table(b2)?,
                    gain2: table(g2)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ParamGrads {
            stem: self.stem.kernel_tensor(&g.stem, device)?,
            blocks,
            head_w: Tensor::from_vec(g.head_w.clone(), (1, g.head_w.len()), device)?,
            head_b: Tensor::from_vec(vec![g.head_b], 1, device)?,
        })
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
                    let yi = &y[i * self.classes..(i + 1) * self.classes];
                    for (k, &yk) in yi.iter().enumerate().filter(|(_, v)| **v != 0.0) {
                        for (r, t) in row.iter_mut().zip(&table[k * width..(k + 1) * width]) {
                            *r += yk * t;
                        }
                    }
                }
                None => row.copy_from_slice(&table[..width]),
            }
        }
    }

    /// The adjoint of [`Self::per_image`]: adds per-image rows `v: [n, width]`
    /// into a table gradient `[classes, width]`.
    fn table_grad(&self, v: &[f32], labels: Option<&[f32]>, n: usize, table: &mut [f32]) {
        let width = table.len() / self.classes;
        for (i, row) in v.chunks(width).take(n).enumerate() {
            match labels {
                Some(y) => {
                    let yi = &y[i * self.classes..(i + 1) * self.classes];
                    for (k, &yk) in yi.iter().enumerate().filter(|(_, v)| **v != 0.0) {
                        for (t, r) in table[k * width..(k + 1) * width].iter_mut().zip(row) {
                            *t += yk * r;
                        }
                    }
                }
                None => table[..width]
                    .iter_mut()
                    .zip(row)
                    .for_each(|(t, r)| *t += r),
            }
        }
    }

    /// The dropout mask seed of one call (0 without dropout).
    fn call_seed(&self) -> u64 {
        self.dropout.as_ref().map_or(0, Dropout::next_call)
    }

    /// Energies of `n <= IMAGES_PER_GROUP` images (the group from image
    /// `first` of a call, for its dropout masks); keeps in `ws` what the
    /// backward pass needs.
    fn forward(
        &self,
        x: &[f32],
        labels: Option<&[f32]>,
        energy: &mut [f32],
        (call, first): (u64, usize),
        ws: &mut Workspace,
    ) {
        let n = energy.len();
        let (cin, s) = (self.in_channels, self.size);
        ws.prepare(n, self);
        nchw_to_nhwc(x, &mut ws.x_in, n, cin, s * s);
        let (mut hh, mut ww) = (s, s);
        self.stem
            .forward(&ws.x_in, n, hh, ww, &mut ws.cols, &mut ws.h, false);
        let mut pi = std::mem::take(&mut ws.per_image);
        for (bi, (b, st)) in self.blocks.iter().zip(ws.blocks.iter_mut()).enumerate() {
            let px = n * hh * ww;
            let (a, o) = (b.conv1.cin, b.conv1.cout);
            st.size = (hh, ww);
            // t1 = act(h) + bias1[y]; the activation's slopes kept for backward.
            self.act.activate_with_slopes(
                &ws.h[..px * a],
                &mut st.t1[..px * a],
                &mut st.slope_in[..px * a],
            );
            // The skip path's input: h, or act(h) in the official block.
            let skip_in = if b.post_activation { &st.t1 } else { &ws.h };
            st.h_in[..px * a].copy_from_slice(&skip_in[..px * a]);
            self.per_image(&b.bias1, labels, n, &mut pi);
            apply_per_image(&mut st.t1[..px * a], &pi, n, |v, b| *v += b);
            b.conv1
                .forward(&st.t1, n, hh, ww, &mut ws.cols, &mut st.slope_mid, false);
            // t2 = act(c1) + bias2[y]
            self.act
                .activate_in_place(&mut st.slope_mid[..px * o], &mut st.t2[..px * o]);
            if let Some(d) = &self.dropout {
                d.apply(
                    (call, first, n),
                    bi,
                    &mut st.t2[..px * o],
                    &mut st.slope_mid[..px * o],
                );
            }
            self.per_image(&b.bias2, labels, n, &mut pi);
            apply_per_image(&mut st.t2[..px * o], &pi, n, |v, b| *v += b);
            b.conv2
                .forward(&st.t2, n, hh, ww, &mut ws.cols, &mut st.c2, false);
            // out = c2 * gain2[y] + skip(h)
            self.per_image(&b.gain2, labels, n, &mut pi);
            ws.out[..px * o].copy_from_slice(&st.c2[..px * o]);
            apply_per_image(&mut ws.out[..px * o], &pi, n, |v, b| *v *= b);
            match &b.skip {
                Some(sk) => sk.forward(&st.h_in, n, hh, ww, &mut ws.cols, &mut ws.out, true),
                None => ws.out[..px * o]
                    .iter_mut()
                    .zip(&st.h_in[..px * o])
                    .for_each(|(y, h)| *y += h),
            }
            if b.downsample {
                avg_pool2(&ws.out, &mut ws.h, n, hh, ww, o);
                (hh, ww) = (hh / 2, ww / 2);
            } else {
                std::mem::swap(&mut ws.h, &mut ws.out);
            }
        }
        ws.per_image = pi;
        // Energy: act(h) summed over space, then the head; or weighted per
        // pixel and channel by a spatial head.
        let width = self.width;
        let px = n * hh * ww;
        ws.final_size = (hh, ww);
        self.head_act.activate_with_slopes(
            &ws.h[..px * width],
            &mut ws.t_out[..px * width],
            &mut ws.slope_out[..px * width],
        );
        let img = hh * ww * width;
        for (i, e) in energy.iter_mut().enumerate() {
            let sum: f32 = ws.t_out[i * img..(i + 1) * img]
                .chunks(self.head_w.len())
                .map(|p| p.iter().zip(&self.head_w).map(|(a, w)| a * w).sum::<f32>())
                .sum();
            *e = sum + self.head_b;
        }
    }

    /// Backward from `sum_i up_i E_i` after [`Self::forward`]: parameter
    /// gradients into `grads`, the input gradient (channels first) into `dx`.
    fn backward(
        &self,
        labels: Option<&[f32]>,
        up: &[f32],
        ws: &mut Workspace,
        mut grads: Option<&mut GradBufs>,
        dx: Option<&mut [f32]>,
    ) {
        let n = up.len();
        let head = self.head_w.len();
        let (mut hh, mut ww) = ws.final_size;
        let img = hh * ww * self.width;
        for (i, &u) in up.iter().enumerate() {
            let range = i * img..(i + 1) * img;
            if let Some(gr) = grads.as_deref_mut() {
                for p in ws.t_out[range.clone()].chunks(head) {
                    gr.head_w.iter_mut().zip(p).for_each(|(g, a)| *g += u * a);
                }
                gr.head_b += u;
            }
            for (g, s) in ws.g[range.clone()]
                .chunks_mut(head)
                .zip(ws.slope_out[range].chunks(head))
            {
                for ((g, s), w) in g.iter_mut().zip(s).zip(&self.head_w) {
                    *g = u * w * s;
                }
            }
        }
        let mut pi = std::mem::take(&mut ws.per_image);
        for (bi, (b, st)) in self.blocks.iter().zip(&ws.blocks).enumerate().rev() {
            let (a, o) = (b.conv1.cin, b.conv1.cout);
            if b.downsample {
                let (h2, w2) = (hh, ww);
                (hh, ww) = st.size;
                unpool2(&ws.g, &mut ws.out, n, hh, ww, h2, w2, o);
                std::mem::swap(&mut ws.g, &mut ws.out);
            }
            let px = n * hh * ww;
            let mut gr = grads.as_deref_mut().map(|g| &mut g.blocks[bi]);
            if let Some([.., g2]) = gr.as_deref_mut() {
                ws.t[..px * o].copy_from_slice(&ws.g[..px * o]);
                mul_in_place(&mut ws.t[..px * o], &st.c2[..px * o]);
                per_image_sums(&ws.t[..px * o], n, o, &mut pi);
                self.table_grad(&pi, labels, n, g2);
            }
            // Into conv2's output through the gain.
            self.per_image(&b.gain2, labels, n, &mut pi);
            ws.t[..px * o].copy_from_slice(&ws.g[..px * o]);
            apply_per_image(&mut ws.t[..px * o], &pi, n, |v, b| *v *= b);
            if let Some([_, w2, ..]) = gr.as_deref_mut() {
                b.conv2
                    .weight_grad(&st.t2, &ws.t, n, hh, ww, &mut ws.cols, w2);
            }
            b.conv2
                .backward(&ws.t, n, hh, ww, &mut ws.cols, &mut ws.out, false);
            if let Some([_, _, _, _, b2, _]) = gr.as_deref_mut() {
                per_image_sums(&ws.out[..px * o], n, o, &mut pi);
                self.table_grad(&pi, labels, n, b2);
            }
            mul_in_place(&mut ws.out[..px * o], &st.slope_mid[..px * o]);
            if let Some([w1, ..]) = gr.as_deref_mut() {
                b.conv1
                    .weight_grad(&st.t1, &ws.out, n, hh, ww, &mut ws.cols, w1);
            }
            b.conv1
                .backward(&ws.out, n, hh, ww, &mut ws.cols, &mut ws.t, false);
            if let Some([_, _, _, b1, ..]) = gr.as_deref_mut() {
                per_image_sums(&ws.t[..px * a], n, a, &mut pi);
                self.table_grad(&pi, labels, n, b1);
            }
            // The skip path joins before the input activation's slopes in
            // the official block (its skip takes act(h)), after them otherwise.
            if !b.post_activation {
                mul_in_place(&mut ws.t[..px * a], &st.slope_in[..px * a]);
            }
            match &b.skip {
                Some(sk) => {
                    if let Some([_, _, ws_skip, ..]) = gr {
                        sk.weight_grad(&st.h_in, &ws.g, n, hh, ww, &mut ws.cols, ws_skip);
                    }
                    sk.backward(&ws.g, n, hh, ww, &mut ws.cols, &mut ws.t, true);
                }
                None => ws.t[..px * a]
                    .iter_mut()
                    .zip(&ws.g[..px * a])
                    .for_each(|(t, g)| *t += g),
            }
            if b.post_activation {
                mul_in_place(&mut ws.t[..px * a], &st.slope_in[..px * a]);
            }
            std::mem::swap(&mut ws.g, &mut ws.t);
        }
        ws.per_image = pi;
        if let Some(gr) = grads {
            self.stem
                .weight_grad(&ws.x_in, &ws.g, n, hh, ww, &mut ws.cols, &mut gr.stem);
        }
        if let Some(dx) = dx {
            self.stem
                .backward(&ws.g, n, hh, ww, &mut ws.cols, &mut ws.out, false);
            nhwc_to_nchw(&ws.out, dx, n, self.in_channels, hh * ww);
        }
    }
}

/// Per-image sums over pixels of `x: [n, HW, c]` into `out: [n, c]`.
fn per_image_sums(x: &[f32], n: usize, c: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(n * c, 0.0);
    sum_pixels_per_image(x, out, n);
}

/// Energies `[n]` as a tensor (no gradient), for frozen models' `energy`.
pub fn fused_energies(f: &FusedResNet, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
    let (n, xv, cv) = crate::models::fused::host_rows(x, cond)?;
    let mut e = vec![0.0f32; n];
    f.energies(&xv, cv.as_deref(), &mut e);
    Tensor::from_vec(e, n, x.device())
}

#[path = "resnet_block.rs"]
mod block;
#[path = "resnet_buffers.rs"]
mod buffers;
pub(crate) use block::{BlockTensors, FusedBlock};
#[path = "resnet_dropout.rs"]
mod dropout;
pub(crate) use buffers::{BlockGrads, ParamGrads};
use buffers::{GradBufs, Workspace};
pub(crate) use dropout::Dropout;

#[cfg(test)]
#[path = "resnet_tests.rs"]
mod tests;
