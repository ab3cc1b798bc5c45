//! The fused CPU forms of the energy models: the MLP ([`mlp`]) and the
//! ResNet ([`resnet`]) on plain buffers, built from `ebm-kernels`, with their
//! energies, input gradients and parameter vector-Jacobian products computed
//! without an autograd graph. The models switch to them on their own (frozen
//! CPU f32 copies); callers see them only through
//! [`crate::energy::FusedEnergy`].
//!
//! This file holds the tensor side they share: whether inputs qualify, copies
//! to host rows, and results back as tensors, so that both models agree on
//! what falls back to autograd.

pub(crate) mod mlp;
pub(crate) mod resnet;

use candle_core::{DType, Result, Tensor};

/// Whether `x` holds `B` rows of `d` f32 values (any shape with that count)
/// and `cond` is `[B, cond_dim]` f32 (absent exactly when `cond_dim` is 0).
pub(crate) fn inputs_ok(x: &Tensor, cond: Option<&Tensor>, d: usize, cond_dim: usize) -> bool {
    let Ok(b) = x.dim(0) else { return false };
    x.dtype() == DType::F32
        && x.elem_count() == b * d
        && match (cond, cond_dim) {
            (None, 0) => true,
            (Some(c), k) => k > 0 && c.dims() == [b, k] && c.dtype() == DType::F32,
            _ => false,
        }
}

/// Whether a model whose weights include `w` can take a fused path at all.
pub(crate) fn on_cpu_f32(w: &Tensor) -> bool {
    w.device().is_cpu() && w.dtype() == DType::F32
}

/// Row count and host copies of `x` and `cond`.
pub(crate) fn host_rows(
    x: &Tensor,
    cond: Option<&Tensor>,
) -> Result<(usize, Vec<f32>, Option<Vec<f32>>)> {
    let n = x.dim(0)?;
    let xv = x.flatten_all()?.to_vec1::<f32>()?;
    let cv = cond
        .map(|c| c.flatten_all()?.to_vec1::<f32>())
        .transpose()?;
    Ok((n, xv, cv))
}

/// Energies `[B]` and `dE/dx` (shaped as `x`) from `run(x, cond, energy, grad)`.
pub(crate) fn energy_and_grad_tensors(
    x: &Tensor,
    cond: Option<&Tensor>,
    run: impl FnOnce(&[f32], Option<&[f32]>, &mut [f32], &mut [f32]),
) -> Result<(Tensor, Tensor)> {
    let (n, xv, cv) = host_rows(x, cond)?;
    let mut e = vec![0.0f32; n];
    let mut g = vec![0.0f32; xv.len()];
    run(&xv, cv.as_deref(), &mut e, &mut g);
    Ok((
        Tensor::from_vec(e, n, x.device())?,
        Tensor::from_vec(g, x.shape(), x.device())?,
    ))
}
