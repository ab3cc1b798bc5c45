//! A fast CPU convolution for the image energies: im2col as a custom op, then
//! one matrix product, in channels-last (NHWC) layout.
//!
//! Candle's CPU `conv2d` backward with respect to its input goes through a
//! direct `conv_transpose2d`, several times slower than the forward pass;
//! Langevin sampling needs exactly that gradient, 60 times per training step.
//! Here `y = im2col(x) W` with `W: [k*k*C, O]`; the backward of `im2col` is a
//! scatter-add (`col2im`), and both products use candle's matmul (gemm). On
//! other devices the same function falls back to candle's `conv2d`.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Patches of a `[B, H, W, C]` tensor: `[B*H*W, k*k*C]`, ordered `(kh, kw, c)`,
/// zero outside the image (size-preserving padding `k / 2`).
struct Im2Col {
    k: usize,
    dims: [usize; 4],
}

/// The adjoint of [`Im2Col`]: sums patch gradients back onto pixels.
struct Col2Im {
    k: usize,
    dims: [usize; 4],
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("im2col needs a contiguous input"),
    }
}

/// Calls `f(row, kh_kw_index, pixel_offset)` for each in-image tap of image
/// `bi`; `row` counts from that image's first pixel, `pixel_offset` from the
/// batch's first pixel.
fn for_each_tap(
    k: usize,
    bi: usize,
    [_, h, w, c]: [usize; 4],
    mut f: impl FnMut(usize, usize, usize),
) {
    let p = k / 2;
    {
        for y in 0..h {
            for x in 0..w {
                let row = y * w + x;
                for kh in 0..k {
                    let yy = y + kh;
                    if yy < p || yy - p >= h {
                        continue;
                    }
                    for kw in 0..k {
                        let xx = x + kw;
                        if xx < p || xx - p >= w {
                            continue;
                        }
                        f(row, kh * k + kw, ((bi * h + yy - p) * w + xx - p) * c);
                    }
                }
            }
        }
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col-nhwc"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l)?;
        let [b, h, w, c] = self.dims;
        let width = self.k * self.k * c;
        let mut out = vec![0f32; b * h * w * width];
        out.par_chunks_mut(h * w * width)
            .enumerate()
            .for_each(|(bi, img)| {
                for_each_tap(self.k, bi, self.dims, |row, tap, src| {
                    let dst = row * width + tap * c;
                    img[dst..dst + c].copy_from_slice(&x[src..src + c]);
                });
            });
        Ok((CpuStorage::F32(out), Shape::from((b * h * w, width))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad.contiguous()?;
        Ok(Some(g.apply_op1_no_bwd(&Col2Im {
            k: self.k,
            dims: self.dims,
        })?))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im-nhwc"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let cols = contiguous_f32(s, l)?;
        let [b, h, w, c] = self.dims;
        let width = self.k * self.k * c;
        let mut out = vec![0f32; b * h * w * c];
        let image = h * w * c;
        out.par_chunks_mut(image).enumerate().for_each(|(bi, img)| {
            let cols = &cols[bi * h * w * width..(bi + 1) * h * w * width];
            for_each_tap(self.k, bi, self.dims, |row, tap, dst| {
                let src = row * width + tap * c;
                let dst = dst - bi * image;
                for (o, i) in img[dst..dst + c].iter_mut().zip(&cols[src..src + c]) {
                    *o += i;
                }
            });
        });
        Ok((CpuStorage::F32(out), Shape::from((b, h, w, c))))
    }
}

/// Size-preserving stride-1 convolution of `x: [B, H, W, C]` (channels last)
/// with `w_mat: [k*k*C, O]` (rows ordered `(kh, kw, c)`), to `[B, H, W, O]`.
pub fn conv2d_nhwc(x: &Tensor, w_mat: &Tensor, k: usize) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    let o = w_mat.dim(1)?;
    if w_mat.dim(0)? != k * k * c {
        candle_core::bail!(
            "conv weight has {} rows, expected {}",
            w_mat.dim(0)?,
            k * k * c
        );
    }
    if !x.device().is_cpu() {
        // [k*k*C, O] -> [O, C, k, k] for candle's NCHW conv2d.
        let kernel = w_mat
            .reshape((k, k, c, o))?
            .permute((3, 2, 0, 1))?
            .contiguous()?;
        let y = x.permute((0, 3, 1, 2))?.conv2d(&kernel, k / 2, 1, 1, 1)?;
        return y.permute((0, 2, 3, 1))?.contiguous();
    }
    let cols = if k == 1 {
        x.reshape((b * h * w, c))?
    } else {
        x.contiguous()?.apply_op1(Im2Col {
            k,
            dims: [b, h, w, c],
        })?
    };
    cols.matmul(w_mat)?.reshape((b, h, w, o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Result<Tensor> {
        let n = shape.iter().product();
        Tensor::from_vec(
            crate::rng::Rng::new(seed).normal_vec(n),
            shape,
            &Device::Cpu,
        )
    }

    #[test]
    fn matches_candle_conv2d_forward_and_gradients() -> Result<()> {
        let (b, h, w, c, o, k) = (2, 5, 6, 3, 4, 3);
        let x = rand(&[b, h, w, c], 1)?;
        let kernel = rand(&[o, c, k, k], 2)?; // candle layout [O, C, kh, kw]
        let w_mat = kernel.permute((2, 3, 1, 0))?.reshape((k * k * c, o))?;
        let r = rand(&[b, h, w, o], 3)?;

        let xv = Var::from_tensor(&x)?;
        let wv = Var::from_tensor(&w_mat)?;
        let ours = conv2d_nhwc(xv.as_tensor(), wv.as_tensor(), k)?;
        let g1 = (&ours * &r)?.sum_all()?.backward()?;

        let xv2 = Var::from_tensor(&x)?;
        let kv = Var::from_tensor(&kernel)?;
        let theirs = xv2
            .as_tensor()
            .permute((0, 3, 1, 2))?
            .conv2d(kv.as_tensor(), 1, 1, 1, 1)?
            .permute((0, 2, 3, 1))?;
        let g2 = (&theirs * &r)?.sum_all()?.backward()?;

        let max_diff = |a: &Tensor, b: &Tensor| -> Result<f32> {
            (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar()
        };
        assert!(max_diff(&ours, &theirs)? < 1e-4);
        let gx1 = g1.get(xv.as_tensor()).expect("x grad");
        let gx2 = g2.get(xv2.as_tensor()).expect("x grad");
        assert!(max_diff(gx1, gx2)? < 1e-4);
        let gw1 = g1.get(wv.as_tensor()).expect("w grad");
        let gk2 = g2
            .get(kv.as_tensor())
            .expect("kernel grad")
            .permute((2, 3, 1, 0))?
            .reshape((k * k * c, o))?;
        assert!(max_diff(gw1, &gk2)? < 1e-4);
        Ok(())
    }
}
