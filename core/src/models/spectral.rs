//! Spectral normalisation (Miyato et al. 2018) for linear and convolution layers.
//!
//! The weight `W` (reshaped to `[out, in*k*k]`) is divided by its largest
//! singular value, estimated by power iteration with a persistent vector `u`
//! stored beside the weight as `<layer>.sn_u`:
//!
//! `v = normalise(W^T u)`, `u = normalise(W v)`, `sigma = u^T W v`, `W_sn = W / sigma`.
//!
//! Training runs one iteration per optimiser step ([`SnWeight::power_iteration`]);
//! `u` and `v` carry no gradient, `sigma` does (through `W`). At inference the
//! normalised weight is computed once, when the layer is built.

use candle_core::{Module, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::params::BUFFER_SUFFIX;

/// Power iterations run when a layer's `u` is freshly initialised, so that the
/// very first normalised weight already has a spectral norm close to 1.
const WARMUP_ITERATIONS: usize = 30;
const EPS: f64 = 1e-12;

fn normalise(v: &Tensor) -> Result<Tensor> {
    let norm = v.sqr()?.sum_all()?.sqrt()?;
    v.broadcast_div(&(norm + EPS)?)
}

/// A weight with optional spectral normalisation and its effective value.
#[derive(Clone, Debug)]
pub struct SnWeight {
    /// The raw parameter, any shape with the output dimension first.
    raw: Tensor,
    /// Power-iteration vector `[out]`, `None` when normalisation is off.
    u: Option<Tensor>,
    /// The weight used in forward passes: `raw / sigma`, or `raw`.
    effective: Tensor,
    /// Bounded normalisation (the official code's second convolution of a
    /// residual block): `raw / max(sigma, 1)`, the norm capped at 1 rather
    /// than fixed to 1.
    bounded: bool,
}

impl SnWeight {
    /// Takes the raw weight of `shape` from `vb` under `name`, and its `u`
    /// vector when `spectral_norm` is on.
    pub fn new(
        vb: &VarBuilder,
        name: &str,
        shape: &[usize],
        init: Init,
        spectral_norm: bool,
    ) -> Result<Self> {
        let raw = vb.get_with_hints(shape, name, init)?;
        if !spectral_norm {
            return Ok(Self {
                effective: raw.clone(),
                raw,
                u: None,
                bounded: false,
            });
        }
        let u_name = format!("{name}_{BUFFER_SUFFIX}");
        let fresh = !vb.contains_tensor(&u_name);
        let u = vb.get_with_hints(
            shape[0],
            &u_name,
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        let mut w = Self {
            effective: raw.clone(),
            raw,
            u: Some(u),
            bounded: false,
        };
        if fresh {
            for _ in 0..WARMUP_ITERATIONS {
                w.power_iteration()?;
            }
        } else {
            w.refresh()?;
        }
        Ok(w)
    }

    /// The same weight with its spectral norm capped at 1 instead of fixed
    /// to 1 (no effect without normalisation).
    pub fn bounded(mut self) -> Result<Self> {
        self.bounded = true;
        self.refresh()?;
        Ok(self)
    }

    fn matrix(&self) -> Result<Tensor> {
        let out = self.raw.dim(0)?;
        self.raw.reshape((out, ()))
    }

    /// One power iteration: updates `u` in place and recomputes the effective
    /// weight (with a gradient path to the raw weight).
    pub fn power_iteration(&mut self) -> Result<()> {
        let Some(u) = &self.u else { return Ok(()) };
        let w = self.matrix()?.detach();
        let v = normalise(&w.t()?.matmul(&u.unsqueeze(1)?)?.squeeze(1)?)?;
        let u_new = normalise(&w.matmul(&v.unsqueeze(1)?)?.squeeze(1)?)?;
        Var::from_tensor(u)?.set(&u_new)?;
        self.refresh()
    }

    /// Recomputes the effective weight from the current `u` without updating it.
    pub fn refresh(&mut self) -> Result<()> {
        let Some(u) = &self.u else {
            self.effective = self.raw.clone();
            return Ok(());
        };
        let u = u.detach();
        let w = self.matrix()?;
        let v = normalise(&w.detach().t()?.matmul(&u.unsqueeze(1)?)?.squeeze(1)?)?;
        let sigma = u
            .unsqueeze(0)?
            .matmul(&w)?
            .matmul(&v.unsqueeze(1)?)?
            .reshape(())?;
        let sigma = if self.bounded {
            sigma.maximum(1f32)?
        } else {
            sigma
        };
        self.effective = self.raw.broadcast_div(&sigma)?;
        Ok(())
    }

    /// The current spectral-norm estimate `sigma` (1 when normalisation is off).
    pub fn sigma(&self) -> Result<f32> {
        let ratio =
            (self.raw.sqr()?.sum_all()?.sqrt()? / self.effective.sqr()?.sum_all()?.sqrt()?)?;
        ratio.to_scalar::<f32>()
    }

    /// The weight used in forward passes.
    pub fn effective(&self) -> &Tensor {
        &self.effective
    }

    /// A copy with no gradient path to any parameter (for sampling).
    pub fn frozen(&self) -> Self {
        Self {
            raw: self.raw.detach(),
            u: self.u.as_ref().map(Tensor::detach),
            effective: self.effective.detach(),
            bounded: self.bounded,
        }
    }
}

/// `y = x W^T + b` with a spectrally normalised `W: [out, in]`.
#[derive(Clone, Debug)]
pub struct SnLinear {
    weight: SnWeight,
    bias: Option<Tensor>,
}

impl SnLinear {
    /// Parameters `<vb>.weight`, `<vb>.weight_sn_u` and `<vb>.bias`.
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        spectral_norm: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let std = (1.0 / in_dim as f64).sqrt();
        let weight = SnWeight::new(
            &vb,
            "weight",
            &[out_dim, in_dim],
            Init::Randn {
                mean: 0.0,
                stdev: std,
            },
            spectral_norm,
        )?;
        let bias = if bias {
            Some(vb.get_with_hints(out_dim, "bias", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    pub fn weight(&self) -> &SnWeight {
        &self.weight
    }

    pub fn weight_mut(&mut self) -> &mut SnWeight {
        &mut self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn frozen(&self) -> Self {
        Self {
            weight: self.weight.frozen(),
            bias: self.bias.as_ref().map(Tensor::detach),
        }
    }
}

impl Module for SnLinear {
    /// # Shapes
    /// `x: [B, in]` to `[B, out]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight.effective().t()?)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// A bias-free `k x k` convolution (stride 1, size-preserving padding) with a
/// spectrally normalised kernel `[out, in, k, k]`, applied channels-last.
#[derive(Clone, Debug)]
pub struct SnConv2d {
    weight: SnWeight,
    kernel: usize,
}

impl SnConv2d {
    /// Parameters `<vb>.weight` and `<vb>.weight_sn_u`; `kernel` must be odd.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        spectral_norm: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let fan_in = in_channels * kernel * kernel;
        Self::with_init(
            [in_channels, out_channels, kernel],
            (1.0 / fan_in as f64).sqrt(),
            spectral_norm,
            vb,
        )
    }

    /// The official code's second convolution of a residual block: weights
    /// drawn with standard deviation 1e-10 and a spectral norm bounded by 1
    /// rather than fixed to 1, so that the block starts as its skip path.
    pub fn near_zero_bounded(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        spectral_norm: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        let conv = Self::with_init(
            [in_channels, out_channels, kernel],
            1e-10,
            spectral_norm,
            vb,
        )?;
        Ok(Self {
            weight: conv.weight.bounded()?,
            kernel,
        })
    }

    fn with_init(
        [in_channels, out_channels, kernel]: [usize; 3],
        stdev: f64,
        spectral_norm: bool,
        vb: VarBuilder,
    ) -> Result<Self> {
        if kernel.is_multiple_of(2) {
            candle_core::bail!("conv kernel size {kernel} must be odd");
        }
        let weight = SnWeight::new(
            &vb,
            "weight",
            &[out_channels, in_channels, kernel, kernel],
            Init::Randn { mean: 0.0, stdev },
            spectral_norm,
        )?;
        Ok(Self { weight, kernel })
    }

    pub fn weight(&self) -> &SnWeight {
        &self.weight
    }

    pub fn weight_mut(&mut self) -> &mut SnWeight {
        &mut self.weight
    }

    pub fn frozen(&self) -> Self {
        Self {
            weight: self.weight.frozen(),
            kernel: self.kernel,
        }
    }
}

impl Module for SnConv2d {
    /// # Shapes
    /// `x: [B, H, W, in]` (channels last) to `[B, H, W, out]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (o, c, k, _) = self.weight.effective().dims4()?;
        // [O, C, kh, kw] -> [kh * kw * C, O], the im2col column order.
        let mat = self
            .weight
            .effective()
            .permute((2, 3, 1, 0))?
            .reshape((k * k * c, o))?;
        ebm_kernels::im2col::conv2d_nhwc(x, &mat, self.kernel)
    }
}

/// Largest singular value of a matrix by many power iterations in f64 on the
/// host: an estimate independent of the layer's own persistent `u`.
pub fn spectral_norm_estimate(w: &Tensor, iterations: usize) -> Result<f64> {
    let out = w.dim(0)?;
    let m: Vec<Vec<f64>> = w
        .reshape((out, ()))?
        .to_dtype(candle_core::DType::F64)?
        .to_vec2()?;
    let cols = m.first().map_or(0, Vec::len);
    // Deterministic non-degenerate start.
    let mut v: Vec<f64> = (0..cols).map(|i| 1.0 + (i as f64 * 0.37).sin()).collect();
    let mut sigma = 0.0;
    for _ in 0..iterations {
        let wv: Vec<f64> = m
            .iter()
            .map(|r| r.iter().zip(&v).map(|(a, b)| a * b).sum())
            .collect();
        let mut wtwv = vec![0.0; cols];
        for (r, s) in m.iter().zip(&wv) {
            for (acc, a) in wtwv.iter_mut().zip(r) {
                *acc += a * s;
            }
        }
        let norm = wtwv.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Ok(0.0);
        }
        sigma = norm.sqrt(); // ||W^T W v|| -> sigma^2 for unit v
        v = wtwv.into_iter().map(|x| x / norm).collect();
    }
    Ok(sigma)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ParamStore;
    use crate::Rng;
    use candle_core::Device;

    fn assert_unit(w: &SnWeight, what: &str) -> Result<()> {
        let sigma = spectral_norm_estimate(w.effective(), 2000)?;
        assert!((sigma - 1.0).abs() < 0.02, "{what}: spectral norm {sigma}");
        Ok(())
    }

    #[test]
    fn normalised_weights_have_unit_spectral_norm() -> Result<()> {
        let store = ParamStore::new(11, &Device::Cpu);
        let vb = store.var_builder();
        let lin = SnLinear::new(82, 128, true, true, vb.pp("lin"))?;
        let conv = SnConv2d::new(32, 64, 3, true, vb.pp("conv"))?;
        assert_unit(lin.weight(), "linear at init")?;
        assert_unit(conv.weight(), "conv at init")?;
        // The raw weights are far from unit norm, so this is not vacuous.
        assert!(spectral_norm_estimate(&lin.weight().raw, 2000)? > 1.5);
        Ok(())
    }

    /// A bounded weight keeps a small norm as it is and scales a large one
    /// down to 1, with the gradient of `raw / max(sigma, 1)` in both regimes.
    #[test]
    fn bounded_normalisation_caps_the_norm_at_one() -> Result<()> {
        let store = ParamStore::new(13, &Device::Cpu);
        let conv = SnConv2d::near_zero_bounded(4, 6, 3, true, store.var_builder())?;
        let w = conv.weight();
        let raw = spectral_norm_estimate(&w.raw, 2000)?;
        assert!(raw < 1e-8, "near-zero init: raw norm {raw}");
        let diff = (w.effective() - &w.raw)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert_eq!(diff, 0.0, "a norm below 1 is kept");
        let (_, var) = store.trainable().into_iter().next().expect("one weight");
        let big = Tensor::from_vec(Rng::new(3).normal_vec(216), (6, 4, 3, 3), &Device::Cpu)?;
        var.set(&big)?;
        let mut w = conv.weight().clone();
        for _ in 0..30 {
            w.power_iteration()?;
        }
        assert_unit(&w, "bounded weight with a raw norm above 1")?;
        assert!(spectral_norm_estimate(&w.raw, 2000)? > 2.0);
        Ok(())
    }

    #[test]
    fn power_iteration_tracks_a_changing_weight() -> Result<()> {
        let store = ParamStore::new(12, &Device::Cpu);
        let mut lin = SnLinear::new(16, 8, false, true, store.var_builder())?;
        let (_, var) = store.trainable().into_iter().next().expect("one weight");
        // Perturb the weight by a small step each "training step", as Adam would.
        for step in 0..20 {
            let noise =
                Tensor::from_vec(crate::Rng::new(step).normal_vec(128), (8, 16), &Device::Cpu)?;
            var.set(&(var.as_tensor() + (noise * 0.01)?)?)?;
            lin.weight_mut().power_iteration()?;
        }
        assert_unit(lin.weight(), "linear after 20 steps")?;
        Ok(())
    }
}
