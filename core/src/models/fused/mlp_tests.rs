//! Tests of the fused MLP path against candle autograd.

use super::*;
use crate::energy::{energy_and_grad, EnergyFunction, EnergyModel, EnergyTerm};
use crate::models::{MlpEnergy, MlpEnergyConfig};
use crate::params::ParamStore;
use crate::test_util::{assert_param_grads_match, rel_err, rel_err_slices};
use crate::Rng;
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
    let sampler = crate::sampling::langevin::LangevinSampler::new(crate::LangevinConfig {
        steps: 15,
        step_size: 0.1,
        noise_scale: 0.01,
        grad_clip: Some(0.5),
        clamp: Some([-2.0, 2.0]),
        tolerance: None,
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

/// The conditioning given as its first-layer pre-activation gives the
/// energies and gradients of the conditioning given as rows, with and
/// without conditioning.
#[test]
fn conditioning_preactivation_gives_the_same_energies_and_gradients() -> Result<()> {
    let dev = Device::Cpu;
    for (k, a) in [(1, 20), (0, 0), (2, 0)] {
        let mut cfg = MlpEnergyConfig::new(31);
        cfg.context_len = k;
        cfg.action_dim = a;
        cfg.activation = Activation::Silu;
        let m = MlpEnergy::init(&cfg, &ParamStore::new(4, &dev))?.frozen();
        let f = m.fused_form()?;
        let (n, c) = (9, cfg.cond_dim());
        let mut rng = Rng::new(6);
        let x = rng.normal_vec(n * 31);
        let cond = (c > 0).then(|| rng.normal_vec(n * c));
        let (mut e1, mut g1) = (vec![0f32; n], vec![0f32; n * 31]);
        f.energy_and_grad_serial(&x, cond.as_deref(), &mut e1, &mut g1);
        let mut pre = Vec::new();
        f.cond_preactivation(cond.as_deref(), n, &mut pre);
        let (mut e2, mut g2, mut e3) = (vec![0f32; n], vec![0f32; n * 31], vec![0f32; n]);
        f.energy_and_grad_pre(&x, &pre, &mut e2, &mut g2);
        f.energy_pre(&x, &pre, &mut e3);
        assert!(
            rel_err_slices(&e2, &e1) < 1e-5,
            "energies {}",
            rel_err_slices(&e2, &e1)
        );
        assert!(
            rel_err_slices(&g2, &g1) < 1e-5,
            "gradients {}",
            rel_err_slices(&g2, &g1)
        );
        assert_eq!(e3, e2, "energies alone");
        // The conditioning matters (so the test would see it ignored).
        if let Some(cv) = &cond {
            let other: Vec<f32> = cv.iter().map(|v| v + 1.0).collect();
            f.cond_preactivation(Some(&other), n, &mut pre);
            f.energy_pre(&x, &pre, &mut e3);
            assert!(
                rel_err_slices(&e3, &e1) > 1e-3,
                "other conditioning, same energies"
            );
        }
    }
    Ok(())
}
