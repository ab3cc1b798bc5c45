//! grad_x E against central finite differences, for every model kind.

use candle_core::{Device, Tensor};

use crate::energy::{energy_and_grad, EnergyFunction, EnergyModel, EnergyTerm};
use crate::models::*;
use crate::params::ParamStore;
use crate::Activation;
use crate::Rng;

/// Central-difference step for smooth energies (large enough for f32 sums).
const EPS: f64 = 1e-2;
/// For piecewise-linear activations: small enough that no kink falls inside
/// a difference for these seeds.
const EPS_KINKED: f64 = 2e-3;

/// Relative error `||g_fd - g||_2 / ||g||_2` over `coords` of sample 0, where
/// `f` maps a batch `[n, D]` to one scalar per row.
fn fd_relative_error(
    eps: f64,
    f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
    x: &Tensor,
    grad: &Tensor,
    coords: &[usize],
) -> candle_core::Result<f64> {
    let d = x.elem_count();
    let base: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let mut rows = Vec::with_capacity(2 * coords.len() * d);
    for &c in coords {
        for sign in [1.0f32, -1.0] {
            let mut r = base.clone();
            r[c] += sign * eps as f32;
            rows.extend(r);
        }
    }
    let mut shape = x.dims().to_vec();
    shape[0] = 2 * coords.len();
    let batch = Tensor::from_vec(rows, shape, x.device())?;
    let vals: Vec<f32> = f(&batch)?.to_vec1()?;
    let g: Vec<f32> = grad.flatten_all()?.to_vec1()?;
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (i, &c) in coords.iter().enumerate() {
        let fd = (f64::from(vals[2 * i]) - f64::from(vals[2 * i + 1])) / (2.0 * eps);
        num += (fd - f64::from(g[c])).powi(2);
        den += f64::from(g[c]).powi(2);
    }
    Ok(num.sqrt() / den.sqrt().max(1e-12))
}

fn random(shape: &[usize], seed: u64, scale: f64) -> candle_core::Result<Tensor> {
    let n = shape.iter().product();
    let v: Vec<f32> = Rng::new(seed)
        .normal_vec(n)
        .into_iter()
        .map(|z| z * scale as f32)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
}

fn check_energy<M: EnergyFunction>(
    eps: f64,
    m: &M,
    x: &Tensor,
    cond: Option<&Tensor>,
    coords: &[usize],
) -> candle_core::Result<f64> {
    let terms = [EnergyTerm::new(m as &dyn EnergyFunction, cond.cloned())];
    let (_, g) = energy_and_grad(&terms, x)?;
    let n = 2 * coords.len();
    let cond_rep = match cond {
        Some(c) => Some(c.repeat((n, 1))?),
        None => None,
    };
    let f = |b: &Tensor| m.energy(b, cond_rep.as_ref());
    fd_relative_error(eps, &f, x, &g, coords)
}

#[test]
fn mlp_energy_gradient_matches_finite_differences() -> candle_core::Result<()> {
    for act in [Activation::Silu, Activation::LeakyRelu] {
        let mut cfg = MlpEnergyConfig::new(31);
        cfg.context_len = 1;
        cfg.action_dim = 20;
        cfg.activation = act;
        let m = MlpEnergy::init(&cfg, &ParamStore::new(1, &Device::Cpu))?.frozen();
        let x = random(&[1, 31], 2, 1.0)?;
        let c = random(&[1, 51], 3, 1.0)?;
        let coords: Vec<usize> = (0..31).collect();
        let eps = if act == Activation::Silu {
            EPS
        } else {
            EPS_KINKED
        };
        let err = check_energy(eps, &m, &x, Some(&c), &coords)?;
        assert!(err < 1e-2, "{act:?}: relative error {err}");
    }
    Ok(())
}

#[test]
fn resnet_energy_gradient_matches_finite_differences() -> candle_core::Result<()> {
    // MNIST-shaped unconditional, and CIFAR-shaped class-conditional.
    let mnist = ResNetEnergyConfig::mnist_small(1);
    let mut cifar = ResNetEnergyConfig::mnist_small(10);
    cifar.in_channels = 3;
    cifar.image_size = 32;
    cifar.stem_channels = 16;
    for (i, cfg) in [mnist, cifar].iter().enumerate() {
        let m = ResNetEnergy::init(cfg, &ParamStore::new(4, &Device::Cpu))?.frozen();
        let s = cfg.image_size;
        let x = (random(&[1, cfg.in_channels, s, s], 5, 0.3)? + 0.5)?;
        let cond = if cfg.num_classes > 1 {
            let mut y = vec![0f32; cfg.num_classes];
            y[3] = 1.0;
            Some(Tensor::from_vec(y, (1, cfg.num_classes), &Device::Cpu)?)
        } else {
            None
        };
        let mut rng = Rng::new(6);
        let coords: Vec<usize> = (0..40).map(|_| rng.below(x.elem_count())).collect();
        let err = check_energy(EPS, &m, &x, cond.as_ref(), &coords)?;
        assert!(err < 1e-2, "model {i}: relative error {err}");
    }
    Ok(())
}

#[test]
fn fc_baseline_input_gradient_matches_finite_differences() -> candle_core::Result<()> {
    let cfg = FcBaselineConfig {
        state_dim: 31,
        context_len: 1,
        action_dim: 20,
        hidden: vec![128, 128, 128],
        activation: Activation::Silu,
        spectral_norm: true,
        residual: true,
    };
    let m = FcBaseline::new(&cfg, ParamStore::new(7, &Device::Cpu).var_builder())?;
    let r = random(&[1, 31], 8, 1.0)?;
    let x = random(&[1, 51], 9, 1.0)?;
    // Scalar f(x) = <predict(x), r>.
    let f = |b: &Tensor| m.predict(b)?.broadcast_mul(&r)?.sum(1);
    let xv = candle_core::Var::from_tensor(&x)?;
    let grads = f(xv.as_tensor())?.sum_all()?.backward()?;
    let g = grads.get(xv.as_tensor()).expect("input gradient").clone();
    let coords: Vec<usize> = (0..51).collect();
    let err = fd_relative_error(EPS, &f, &x, &g, &coords)?;
    assert!(err < 1e-2, "relative error {err}");
    assert_eq!(m.predict(&x)?.dims(), &[1, 31]);
    Ok(())
}
