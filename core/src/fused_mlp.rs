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

use crate::activation::Activation;
use crate::models::MlpEnergy;
use crate::packed_gemm::PackedB;
use crate::sgemm::{matmul, MatRef};

/// Rows per parallel task: below this, one thread does the whole batch.
pub(crate) const ROWS_PER_TASK: usize = 32;

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
    /// Copies the model's current (normalised) weights.
    pub fn from_model(m: &MlpEnergy) -> Result<Self> {
        let cfg = m.config();
        let mut dense_layers = m
            .layers()
            .map(|l| dense(l.weight().effective(), l.bias()))
            .collect::<Result<Vec<_>>>()?;
        let head = dense_layers.pop().expect("an MLP has a head");
        let (c, d) = (cfg.cond_dim(), cfg.state_dim);
        let into_x = PackedB::new(dense_layers[0].w().columns(c..c + d));
        Ok(Self {
            layers: dense_layers,
            into_x,
            head_w: head.w,
            head_b: head.b[0],
            act: cfg.activation,
            cond_dim: cfg.cond_dim(),
            state_dim: cfg.state_dim,
            base_weight: cfg.base_weight,
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
                WORKSPACE.with(|ws| self.rows(x, cond, e, g, &mut ws.borrow_mut()));
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
        let n = energy.len();
        self.check(x, cond, n);
        assert_eq!(
            grad.len(),
            n * self.state_dim,
            "fused mlp: grad is not [n, state_dim]"
        );
        WORKSPACE.with(|ws| self.rows(x, cond, energy, grad, &mut ws.borrow_mut()));
    }

    /// Energies only, on the calling thread.
    pub(crate) fn energy_serial(&self, x: &[f32], cond: Option<&[f32]>, energy: &mut [f32]) {
        self.check(x, cond, energy.len());
        WORKSPACE.with(|ws| self.forward(x, cond, energy, &mut ws.borrow_mut()));
    }

    fn rows(
        &self,
        x: &[f32],
        cond: Option<&[f32]>,
        energy: &mut [f32],
        grad: &mut [f32],
        ws: &mut Workspace,
    ) {
        self.forward(x, cond, energy, ws);
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
                    self.forward(&x[a * d..b * d], cv, &mut e, ws);
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
    fn forward(&self, x: &[f32], cond: Option<&[f32]>, energy: &mut [f32], ws: &mut Workspace) {
        let (d, c, n) = (self.state_dim, self.cond_dim, energy.len());
        let layers = &self.layers;
        ws.ensure(n, c + d, layers);
        // Input rows [c, x].
        for r in 0..n {
            let row = &mut ws.input[r * (c + d)..(r + 1) * (c + d)];
            if let Some(cv) = cond {
                row[..c].copy_from_slice(&cv[r * c..(r + 1) * c]);
            }
            row[c..].copy_from_slice(&x[r * d..(r + 1) * d]);
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
            for r in 0..n {
                z[r * out..(r + 1) * out].copy_from_slice(&layer.b);
            }
            layer.forward.mul(z, prev, width, n, true);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::{energy_and_grad, EnergyFunction, EnergyModel, EnergyTerm};
    use crate::models::MlpEnergyConfig;
    use crate::params::ParamStore;
    use crate::rng::Rng;
    use crate::test_util::{assert_param_grads_match, rel_err};
    use candle_core::Device;

    /// Fused energies and gradients equal candle autograd's on the same
    /// frozen model: every activation, with and without conditioning, one
    /// thread (small batch) and many (large batch).
    #[test]
    fn fused_path_matches_autograd() -> Result<()> {
        let dev = Device::Cpu;
        for (act, k, a, n, base) in [
            (Activation::LeakyRelu, 1, 20, 64, 0.0),
            (Activation::Silu, 2, 0, 7, 0.7),
            (Activation::Relu, 0, 3, 5, 0.0),
            (Activation::LeakyRelu, 1, 0, 1500, 2.0),
        ] {
            let mut cfg = MlpEnergyConfig::new(31);
            cfg.context_len = k;
            cfg.action_dim = a;
            cfg.activation = act;
            cfg.hidden = vec![128, 96, 128];
            cfg.base_weight = base;
            let m = MlpEnergy::init(&cfg, &ParamStore::new(3, &dev))?.frozen();
            let plain = m.without_fused_path();
            let mut rng = Rng::new(5);
            let x = Tensor::from_vec(rng.normal_vec(n * 31), (n, 31), &dev)?;
            let c = (cfg.cond_dim() > 0)
                .then(|| {
                    Tensor::from_vec(
                        rng.normal_vec(n * cfg.cond_dim()),
                        (n, cfg.cond_dim()),
                        &dev,
                    )
                })
                .transpose()?;
            let (ef, gf) = m
                .fast_energy_and_grad(&x, c.as_ref())
                .expect("a frozen CPU model has the fused path")?;
            let (ea, ga) = energy_and_grad(&[EnergyTerm::new(&plain, c.clone())], &x)?;
            assert!(
                rel_err(&ef, &ea) < 1e-5,
                "{act:?}: energy {}",
                rel_err(&ef, &ea)
            );
            assert!(
                rel_err(&gf, &ga) < 1e-5,
                "{act:?}: grad {}",
                rel_err(&gf, &ga)
            );
            assert!(ga.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
            if base > 0.0 {
                // The base term is exactly base * sum_j (sqrt(1 + x_j^2) - 1)
                // on top of the network.
                let net_cfg = MlpEnergyConfig {
                    base_weight: 0.0,
                    ..cfg.clone()
                };
                let net = MlpEnergy::init(&net_cfg, &ParamStore::new(3, &dev))?;
                let pseudo_huber = ((x.sqr()? + 1.0)?.sqrt()? - 1.0)?.sum(1)?;
                let by_hand = (net.energy(&x, c.as_ref())? + (pseudo_huber * f64::from(base))?)?;
                assert!(
                    rel_err(&ef, &by_hand) < 1e-5,
                    "base term {}",
                    rel_err(&ef, &by_hand)
                );
            }
            // Through energy_and_grad (weighted sum with a second term too).
            let terms = [
                EnergyTerm::new(&m, c.clone()).weighted(0.5),
                EnergyTerm::new(&plain, c.clone()).weighted(2.0),
            ];
            let (e2, g2) = energy_and_grad(&terms, &x)?;
            assert!(rel_err(&e2, &(&ea * 2.5)?) < 1e-5);
            assert!(rel_err(&g2, &(&ga * 2.5)?) < 1e-5);
        }
        Ok(())
    }

    /// The fused parameter gradient of `sum_i w_i E_i` (through spectral
    /// normalisation) equals autograd's for every trainable parameter.
    #[test]
    fn fused_parameter_gradients_match_autograd() -> Result<()> {
        let dev = Device::Cpu;
        for (act, a, n, base) in [
            (Activation::Silu, 20, 70, 0.0),
            (Activation::LeakyRelu, 0, 9, 1.3),
        ] {
            let mut cfg = MlpEnergyConfig::new(31);
            cfg.context_len = 1;
            cfg.action_dim = a;
            cfg.activation = act;
            cfg.base_weight = base;
            let params = ParamStore::new(6, &dev);
            let model = MlpEnergy::init(&cfg, &params)?;
            let mut rng = Rng::new(8);
            let x = Tensor::from_vec(rng.normal_vec(n * 31), (n, 31), &dev)?;
            let cd = cfg.cond_dim();
            let c = Tensor::from_vec(rng.normal_vec(n * cd), (n, cd), &dev)?;
            let weight = |i: usize, e: f32| {
                if i < n / 2 {
                    2.0 * e + 1.0
                } else {
                    2.0 * e - 1.0
                }
            };
            let (ef, surrogate) = model
                .fused_energy_vjp(&x, Some(&c), &weight)
                .expect("a CPU model has the fused path")?;
            let gf = surrogate.backward()?;
            let ea = model.energy(&x, Some(&c))?;
            assert!(rel_err(&ef, &ea) < 1e-5, "energies {}", rel_err(&ef, &ea));
            let w: Vec<f32> = ea
                .to_vec1::<f32>()?
                .iter()
                .enumerate()
                .map(|(i, &e)| weight(i, e))
                .collect();
            let ga = (ea * Tensor::from_vec(w, n, &dev)?)?
                .sum_all()?
                .backward()?;
            let checked = assert_param_grads_match(&params, &gf, &ga, 1e-4, &format!("{act:?}"));
            assert_eq!(checked, 8, "four layers, weight and bias each");
        }
        Ok(())
    }

    /// A whole Langevin chain on the fused buffers equals the tensor chain
    /// (same random stream), with gradient clipping, clamping and a weight.
    #[test]
    fn fused_langevin_chain_matches_the_tensor_chain() -> Result<()> {
        let dev = Device::Cpu;
        let mut cfg = MlpEnergyConfig::new(31);
        cfg.context_len = 1;
        cfg.activation = Activation::LeakyRelu;
        let m = MlpEnergy::init(&cfg, &ParamStore::new(4, &dev))?.frozen();
        let plain = m.without_fused_path();
        let sampler = crate::langevin::LangevinSampler::new(crate::LangevinConfig {
            steps: 15,
            step_size: 0.1,
            noise_scale: 0.01,
            grad_clip: Some(0.5),
            clamp: Some([-2.0, 2.0]),
        })
        .expect("valid config");
        // 70 rows: each thread runs whole chains for its rows; 9: one thread.
        for rows in [70, 9] {
            let mut rng = Rng::new(9);
            let x0 = Tensor::from_vec(rng.normal_vec(rows * 31), (rows, 31), &dev)?;
            let c = Tensor::from_vec(rng.normal_vec(rows * 31), (rows, 31), &dev)?;
            let run = |f: &MlpEnergy| {
                let terms = [EnergyTerm::new(f, Some(c.clone())).weighted(3.0)];
                sampler.run(&terms, &x0, None, &mut Rng::new(1), Default::default())
            };
            let (a, b) = (run(&m)?, run(&plain)?);
            assert_eq!((a.steps_run, b.steps_run), (15, 15));
            assert!(
                rel_err(&a.x, &b.x) < 1e-5,
                "{rows}: {}",
                rel_err(&a.x, &b.x)
            );
            let (ea, eb) = (a.energy.expect("energies"), b.energy.expect("energies"));
            assert!(rel_err(&ea, &eb) < 1e-4, "{rows}: {}", rel_err(&ea, &eb));
            assert!(rel_err(&a.x, &x0) > 1e-3, "the chain moved");
        }
        Ok(())
    }

    #[test]
    fn unfrozen_models_and_wrong_shapes_take_the_autograd_path() -> Result<()> {
        let dev = Device::Cpu;
        let mut cfg = MlpEnergyConfig::new(4);
        cfg.context_len = 1;
        let m = MlpEnergy::init(&cfg, &ParamStore::new(3, &dev))?;
        let x = Tensor::zeros((2, 4), candle_core::DType::F32, &dev)?;
        let c = Tensor::zeros((2, 4), candle_core::DType::F32, &dev)?;
        assert!(m.fast_energy_and_grad(&x, Some(&c)).is_none());
        let f = m.frozen();
        assert!(f.fast_energy_and_grad(&x, Some(&c)).is_some());
        assert!(f.fast_energy_and_grad(&x, None).is_none());
        assert!(energy_and_grad(&[EnergyTerm::new(&f, None)], &x).is_err());
        Ok(())
    }
}
