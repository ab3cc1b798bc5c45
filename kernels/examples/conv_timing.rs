//! Times one 3x3 convolution (64 x 28 x 28 x 32 -> 32) forward and forward +
//! input gradient: candle's NCHW conv2d against `ebm_kernels::im2col::conv2d_nhwc`.
//! `cargo run --release -p ebm-kernels --example conv_timing`

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use ebm_kernels::im2col::conv2d_nhwc;

fn time(label: &str, mut f: impl FnMut() -> candle_core::Result<()>) -> candle_core::Result<()> {
    f()?;
    let t = Instant::now();
    for _ in 0..5 {
        f()?;
    }
    println!("{label}: {:?}", t.elapsed() / 5);
    Ok(())
}

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::rand(0f32, 1., (64, 32, 28, 28), &dev)?;
    let w = Tensor::rand(-0.1f32, 0.1, (32, 32, 3, 3), &dev)?;
    let xn = x.permute((0, 2, 3, 1))?.contiguous()?;
    let wm = w.permute((2, 3, 1, 0))?.reshape((288, 32))?;
    let xv = Var::from_tensor(&x)?;
    let xnv = Var::from_tensor(&xn)?;
    time("candle conv2d forward", || {
        x.conv2d(&w, 1, 1, 1, 1).map(|_| ())
    })?;
    time("candle conv2d forward + grad x", || {
        xv.as_tensor()
            .conv2d(&w, 1, 1, 1, 1)?
            .sum_all()?
            .backward()
            .map(|_| ())
    })?;
    time("im2col conv forward", || {
        conv2d_nhwc(&xn, &wm, 3).map(|_| ())
    })?;
    time("im2col conv forward + grad x", || {
        conv2d_nhwc(xnv.as_tensor(), &wm, 3)?
            .sum_all()?
            .backward()
            .map(|_| ())
    })?;
    Ok(())
}
