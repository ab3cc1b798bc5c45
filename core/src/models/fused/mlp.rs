//! A fused CPU path for `MlpEnergy`'s energy and its input gradient: forward
//! and backward written out by hand over plain buffers, with no autograd graph
//! and no per-op tensor allocation. Langevin sampling of small MLPs spends its
//! time in per-op overhead otherwise (the runtime's forecasts, trajectory
//! training's negative chains).
//!
//! For rows `u = [c, x]`: `z_l = a_{l-1} W_l^T + b_l`, `a_l = act(z_l)`,
//! `E = a_L . w + b`. Backward: `g_L = w * act'(z_L)`,
//! `g_{l-1} = (g_l W_l) * act'(z_{l-1})`, `dE/dx = g_1 W_1[:, C..]`.
//! The weights are the spectrally normalised ones, fixed at construction.

use candle_core::{Result, Tensor};
use std::cell::RefCell;

use rayon::prelude::*;

use crate::energy::FusedEnergy;
use crate::Activation;
use ebm_kernels::packed_gemm::PackedB;
use ebm_kernels::sgemm::{matmul, MatRef};

/// Rows per parallel task: below this, one thread does the whole batch.
const ROWS_PER_TASK: usize = 32;

thread_local! {
    /// Scratch buffers of the calling thread, reused across calls.
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

#[derive(Debug, Clone)]
struct Dense {
    /// `[out, in]`, row-major.
    w: Vec<f32>,
    out: usize,
    inp: usize,
    b: Vec<f32>,
    /// `W^T` and `W`, packed for the forward and backward products.
    forward: PackedB,
    backward: PackedB,
}

impl Dense {
    fn w(&self) -> MatRef<'_> {
        MatRef::row_major(&self.w, self.out, self.inp)
    }
}

/// One layer's `(weight [out, in], bias [out])` gradient.
pub(crate) type LayerGrads = (Vec<f32>, Vec<f32>);

/// The frozen weights of an `MlpEnergy`, ready for the fused path.
#[derive(Debug, Clone)]
pub struct FusedMlp {
    layers: Vec<Dense>,
    /// The first layer's columns that multiply `x`, packed: `dE/dx = g_1 W_1[:, C..]`.
    into_x: PackedB,
    /// The same columns transposed, and the conditioning's (`None` without
    /// conditioning): the first layer split into the part Langevin moves and
    /// the part it does not ([`Self::cond_preactivation`]).
    from_x: PackedB,
    from_cond: Option<PackedB>,
    head_w: Vec<f32>,
    head_b: f32,
    act: Activation,
    cond_dim: usize,
    state_dim: usize,
    /// The base term `base_weight * sum_j (sqrt(1 + x_j^2) - 1)` (see the config).
    base_weight: f32,
}

fn dense(w: &Tensor, b: Option<&Tensor>) -> Result<Dense> {
    let (out, inp) = w.dims2()?;
    let w = w.flatten_all()?.to_vec1::<f32>()?;
    let b = match b {
        Some(b) => b.to_vec1::<f32>()?,
        None => vec![0.0; out],
    };
    let forward = PackedB::new(MatRef::row_major(&w, out, inp).t());
    let backward = PackedB::new(MatRef::row_major(&w, out, inp));
    Ok(Dense {
        w,
        out,
        inp,
        b,
        forward,
        backward,
    })
}

impl FusedMlp {
    /// From an MLP energy's current (normalised) weights: `layers` are the
    /// `(weight [out, in], bias [out])` pairs from the first layer (whose
    /// inputs are `[cond (C), x (D)]`) to the scalar head.
    pub fn new(
        layers: &[(&Tensor, Option<&Tensor>)],
        act: Activation,
        cond_dim: usize,
        state_dim: usize,
        base_weight: f32,
    ) -> Result<Self> {
        let mut dense_layers = layers
            .iter()
            .map(|(w, b)| dense(w, *b))
            .collect::<Result<Vec<_>>>()?;
        let Some(head) = dense_layers.pop().filter(|_| !dense_layers.is_empty()) else {
            candle_core::bail!("fused mlp: needs a hidden layer and a head");
        };
        let (c, d) = (cond_dim, state_dim);
        let into_x = PackedB::new(dense_layers[0].w().columns(c..c + d));
        let from_x = PackedB::new(dense_layers[0].w().columns(c..c + d).t());
        let from_cond = (c > 0).then(|| PackedB::new(dense_layers[0].w().columns(0..c).t()));
        Ok(Self {
            layers: dense_layers,
            into_x,
            from_x,
            from_cond,
            head_w: head.w,
            head_b: head.b[0],
            act,
            cond_dim,
            state_dim,
            base_weight,
        })
    }

    pub fn state_dim(&self) -> usize {
        self.state_dim
    }

    pub fn cond_dim(&self) -> usize {
        self.cond_dim
    }

    /// Energies `[n]` and `dE/dx` `[n, D]` of the rows `x: [n, D]` under `cond: [n, C]`.
    pub fn energy_and_grad(
        &self,
        x: &[f32],
        cond: Option<&[f32]>,
        energy: &mut [f32],
        grad: &mut [f32],
    ) {
        let (d, c, n) = (self.state_dim, self.cond_dim, energy.len());
        if n <= ROWS_PER_TASK || rayon::current_num_threads() < 2 {
            return self.energy_and_grad_serial(x, cond, energy, grad);
        }
        self.check(x, cond, n);
        assert_eq!(grad.len(), n * d, "fused mlp: grad is not [n, state_dim]");
        let chunk = ROWS_PER_TASK.max(n.div_ceil(rayon::current_num_threads()));
        x.par_chunks(chunk * d)
            .zip(energy.par_chunks_mut(chunk))
            .zip(grad.par_chunks_mut(chunk * d))
            .enumerate()
            .for_each(|(i, ((x, e), g))| {
                let cond = cond.map(|cv| &cv[i * chunk * c..(i * chunk + e.len()) * c]);
                WORKSPACE.with(|ws| self.rows(x, Input::Cond(cond), e, g, &mut ws.borrow_mut()));
            });
    }

    /// `x` is `[n, state_dim]` and `cond` `[n, cond_dim]`.
    fn check(&self, x: &[f32], cond: Option<&[f32]>, n: usize) {
        assert_eq!(
            x.len(),
            n * self.state_dim,
            "fused mlp: x is not [n, state_dim]"
        );
        assert_eq!(
            cond.map_or(0, <[f32]>::len),
            n * self.cond_dim,
            "fused mlp: cond is not [n, cond_dim]"
        );
    }

    /// As [`Self::energy_and_grad`], on the calling thread only (for callers
    /// that already split rows across threads).
    pub(crate) fn energy_and_grad_serial(
        &self,
        x: &[f32],
        cond: Option<&[f32]>,
        energy: &mut [f32],
        grad: &mut [f32],
    ) {
        self.serial(x, Input::Cond(cond), energy, grad);
    }

    /// The first layer's pre-activation from the conditioning alone, `b_1 +
    /// W_1[:, ..C] c` for each of the `n` rows of `cond`, into `pre`: what
    /// stays fixed while Langevin moves `x` ([`Self::energy_and_grad_pre`]).
    pub(crate) fn cond_preactivation(&self, cond: Option<&[f32]>, n: usize, pre: &mut Vec<f32>) {
        assert_eq!(
            cond.map_or(0, <[f32]>::len),
            n * self.cond_dim,
            "fused mlp: cond is not [n, cond_dim]"
        );
        let l0 = &self.layers[0];
        pre.clear();
        pre.extend((0..n).flat_map(|_| l0.b.iter().copied()));
        if let (Some(pc), Some(cv)) = (&self.from_cond, cond) {
            pc.mul(pre, cv, self.cond_dim, n, true);
        }
    }

    /// As [`Self::energy_and_grad_serial`], the conditioning given as its
    /// pre-activation `pre: [n, hidden_1]` ([`Self::cond_preactivation`]).
    pub(crate) fn energy_and_grad_pre(
        &self,
        x: &[f32],
        pre: &[f32],
        energy: &mut [f32],
        grad: &mut [f32],
    ) {
        self.serial(x, Input::Pre(pre), energy, grad);
    }

    /// As [`Self::energy_and_grad_pre`], energies only.
    pub(crate) fn energy_pre(&self, x: &[f32], pre: &[f32], energy: &mut [f32]) {
        self.check_input(x, Input::Pre(pre), energy.len());
        WORKSPACE.with(|ws| self.forward(x, Input::Pre(pre), energy, &mut ws.borrow_mut()));
    }

    /// Energies and `dE/dx` of the rows on the calling thread.
    fn serial(&self, x: &[f32], input: Input, energy: &mut [f32], grad: &mut [f32]) {
        let n = energy.len();
        self.check_input(x, input, n);
        assert_eq!(
            grad.len(),
            n * self.state_dim,
            "fused mlp: grad is not [n, state_dim]"
        );
        WORKSPACE.with(|ws| self.rows(x, input, energy, grad, &mut ws.borrow_mut()));
    }

    /// `x` is `[n, state_dim]`, and the conditioning `[n, cond_dim]` or its
    /// pre-activation `[n, hidden_1]`.
    fn check_input(&self, x: &[f32], input: Input, n: usize) {
        match input {
            Input::Cond(cond) => self.check(x, cond, n),
            Input::Pre(pre) => {
                assert_eq!(
                    x.len(),
                    n * self.state_dim,
                    "fused mlp: x is not [n, state_dim]"
                );
                assert_eq!(
                    pre.len(),
                    n * self.layers[0].out,
                    "fused mlp: conditioning pre-activation is not [n, hidden_1]"
                );
            }
        }
    }

    fn rows(
        &self,
        x: &[f32],
        input: Input,
        energy: &mut [f32],
        grad: &mut [f32],
        ws: &mut Workspace,
    ) {
        self.forward(x, input, energy, ws);
        self.backward(None, ws, Some(grad), None);
        if self.base_weight != 0.0 {
            for (g, v) in grad.iter_mut().zip(x) {
                *g += self.base_weight * v / (1.0 + v * v).sqrt();
            }
        }
    }

    /// Energies `E` of the rows and the gradient of `sum_i w_i E_i` with
    /// respect to every layer's (effective) weight `[out, in]` and bias
    /// `[out]`, head last, `w_i = weight(i, E_i)`.
    pub(crate) fn energy_vjp(
        &self,
        x: &[f32],
        cond: Option<&[f32]>,
        weight: &(dyn Fn(usize, f32) -> f32 + Sync),
    ) -> (Vec<f32>, Vec<LayerGrads>) {
        let (d, c) = (self.state_dim, self.cond_dim);
        let n = x.len() / d;
        self.check(x, cond, n);
        let zeros = || {
            let mut g: Vec<LayerGrads> = self
                .layers
                .iter()
                .map(|l| (vec![0.0; l.w.len()], vec![0.0; l.out]))
                .collect();
            g.push((vec![0.0; self.head_w.len()], vec![0.0]));
            g
        };
        let chunk = ROWS_PER_TASK.max(n.div_ceil(rayon::current_num_threads().max(1)));
        let parts: Vec<(usize, Vec<f32>, Vec<LayerGrads>)> = (0..n.div_ceil(chunk))
            .into_par_iter()
            .map(|t| {
                let (a, b) = (t * chunk, ((t + 1) * chunk).min(n));
                let mut e = vec![0f32; b - a];
                let mut g = zeros();
                WORKSPACE.with(|ws| {
                    let ws = &mut ws.borrow_mut();
                    let cv = cond.map(|cv| &cv[a * c..b * c]);
                    self.forward(&x[a * d..b * d], Input::Cond(cv), &mut e, ws);
                    let up: Vec<f32> = e
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| weight(a + i, v))
                        .collect();
                    self.backward(Some(&up), ws, None, Some(&mut g));
                });
                (a, e, g)
            })
            .collect();
        let mut energy = vec![0f32; n];
        let mut total = zeros();
        for (a, e, g) in parts {
            energy[a..a + e.len()].copy_from_slice(&e);
            for ((tw, tb), (gw, gb)) in total.iter_mut().zip(&g) {
                tw.iter_mut().zip(gw).for_each(|(t, v)| *t += v);
                tb.iter_mut().zip(gb).for_each(|(t, v)| *t += v);
            }
        }
        (energy, total)
    }

    /// Energies of the rows; `ws` keeps the activations and their slopes.
    /// Energies of the rows; with [`Input::Cond`] the input rows `[c, x]`
    /// stay in `ws.input` for the parameter gradient.
    fn forward(&self, x: &[f32], input: Input, energy: &mut [f32], ws: &mut Workspace) {
        let (d, c, n) = (self.state_dim, self.cond_dim, energy.len());
        let layers = &self.layers;
        ws.ensure(n, c + d, layers);
        if let Input::Cond(cond) = input {
            // Input rows [c, x].
            for r in 0..n {
                let row = &mut ws.input[r * (c + d)..(r + 1) * (c + d)];
                if let Some(cv) = cond {
                    row[..c].copy_from_slice(&cv[r * c..(r + 1) * c]);
                }
                row[c..].copy_from_slice(&x[r * d..(r + 1) * d]);
            }
        }
        // ws.a[l] holds activations; ws.z[l] pre-activations, then (after
        // activating) the activation's slopes, all backward needs.
        for (l, layer) in layers.iter().enumerate() {
            let out = layer.out;
            let (before, after) = ws.a.split_at_mut(l);
            let (prev, width) = if l == 0 {
                (&ws.input[..], c + d)
            } else {
                (&before[l - 1][..], layers[l - 1].out)
            };
            let z = &mut ws.z[l];
            match input {
                Input::Pre(pre) if l == 0 => {
                    z.copy_from_slice(pre);
                    self.from_x.mul(z, x, d, n, true);
                }
                _ => {
                    for r in 0..n {
                        z[r * out..(r + 1) * out].copy_from_slice(&layer.b);
                    }
                    layer.forward.mul(z, prev, width, n, true);
                }
            }
            self.act.activate_in_place(z, &mut after[0]);
        }
        let width = layers[layers.len() - 1].out;
        let last = &ws.a[layers.len() - 1];
        for (r, e) in energy.iter_mut().enumerate() {
            let a = &last[r * width..(r + 1) * width];
            *e = self.head_b + a.iter().zip(&self.head_w).map(|(p, q)| p * q).sum::<f32>();
        }
        if self.base_weight != 0.0 {
            for (e, xr) in energy.iter_mut().zip(x.chunks_exact(d)) {
                *e += self.base_weight * xr.iter().map(|v| (1.0 + v * v).sqrt() - 1.0).sum::<f32>();
            }
        }
    }

    /// Backward from `sum_i up_i E_i` (`up` all ones when `None`) after
    /// [`Self::forward`]: `dE/dx` into `grad`, parameter gradients added into
    /// `params` (layers then head, `(weight, bias)`).
    fn backward(
        &self,
        up: Option<&[f32]>,
        ws: &mut Workspace,
        grad: Option<&mut [f32]>,
        mut params: Option<&mut [LayerGrads]>,
    ) {
        let layers = &self.layers;
        let (c, d) = (self.cond_dim, self.state_dim);
        let last = layers.len() - 1;
        let width = layers[last].out;
        let n = ws.a[last].len() / width;
        let u = |r: usize| up.map_or(1.0, |v| v[r]);
        if let Some(p) = params.as_deref_mut() {
            let (hw, hb) = &mut p[layers.len()];
            for r in 0..n {
                let a = &ws.a[last][r * width..(r + 1) * width];
                hw.iter_mut().zip(a).for_each(|(g, a)| *g += u(r) * a);
                hb[0] += u(r);
            }
        }
        for r in 0..n {
            let z = &ws.z[last][r * width..(r + 1) * width];
            let g = &mut ws.g[last][r * width..(r + 1) * width];
            for ((g, &slope), &w) in g.iter_mut().zip(z).zip(&self.head_w) {
                *g = u(r) * w * slope;
            }
        }
        for l in (0..layers.len()).rev() {
            if let Some(p) = params.as_deref_mut() {
                let (gw, gb) = &mut p[l];
                let prev = if l == 0 {
                    MatRef::row_major(&ws.input, n, c + d)
                } else {
                    MatRef::row_major(&ws.a[l - 1], n, layers[l - 1].out)
                };
                let g = MatRef::row_major(&ws.g[l], n, layers[l].out);
                matmul(gw, g.t(), prev, true);
                for row in ws.g[l].chunks(layers[l].out) {
                    gb.iter_mut().zip(row).for_each(|(b, v)| *b += v);
                }
            }
            if l == 0 {
                break;
            }
            let (lower, upper) = ws.g.split_at_mut(l);
            let g_prev = &mut lower[l - 1];
            layers[l]
                .backward
                .mul(g_prev, &upper[0], layers[l].out, n, false);
            for (g, &slope) in g_prev.iter_mut().zip(&ws.z[l - 1]) {
                *g *= slope;
            }
        }
        // Into x: only the columns of W_1 that multiply x.
        if let Some(grad) = grad {
            self.into_x.mul(grad, &ws.g[0], layers[0].out, n, false);
        }
    }
}

/// What the first layer reads besides `x`.
#[derive(Clone, Copy)]
enum Input<'a> {
    /// The conditioning rows `[n, C]` (`None` without conditioning).
    Cond(Option<&'a [f32]>),
    /// Their pre-activation `b_1 + W_1[:, ..C] c`, `[n, hidden_1]`.
    Pre(&'a [f32]),
}

/// Scratch buffers, grown on demand and reused across calls.
#[derive(Debug, Default)]
struct Workspace {
    input: Vec<f32>,
    z: Vec<Vec<f32>>,
    a: Vec<Vec<f32>>,
    g: Vec<Vec<f32>>,
}

impl Workspace {
    fn ensure(&mut self, n: usize, in_dim: usize, layers: &[Dense]) {
        self.input.resize(n * in_dim, 0.0);
        for bufs in [&mut self.z, &mut self.a, &mut self.g] {
            bufs.resize_with(layers.len(), Vec::new);
            for (b, l) in bufs.iter_mut().zip(layers) {
                b.resize(n * l.out, 0.0);
            }
        }
    }
}

impl FusedEnergy for FusedMlp {
    fn state_dim(&self) -> usize {
        self.state_dim
    }

    fn cond_dim(&self) -> usize {
        self.cond_dim
    }

    fn rows_per_task(&self) -> usize {
        ROWS_PER_TASK
    }

    fn energy_and_grad(
        &self,
        x: &[f32],
        cond: Option<&[f32]>,
        energy: &mut [f32],
        grad: &mut [f32],
    ) {
        FusedMlp::energy_and_grad(self, x, cond, energy, grad)
    }

    fn cond_preactivation(&self, cond: Option<&[f32]>, n: usize, pre: &mut Vec<f32>) {
        FusedMlp::cond_preactivation(self, cond, n, pre)
    }

    fn energy_and_grad_pre(&self, x: &[f32], pre: &[f32], energy: &mut [f32], grad: &mut [f32]) {
        FusedMlp::energy_and_grad_pre(self, x, pre, energy, grad)
    }

    fn energy_pre(&self, x: &[f32], pre: &[f32], energy: &mut [f32]) {
        FusedMlp::energy_pre(self, x, pre, energy)
    }
}

#[cfg(test)]
#[path = "mlp_tests.rs"]
mod tests;
