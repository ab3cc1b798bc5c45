//! `ebm-train device-check`: a device's arithmetic against the CPU's
//! reference path. The same seeded models are built on the device and on
//! the CPU; energies and their input gradients (a trajectory MLP of the
//! paper's size, the image ResNet) and a noise-free forecast are compared.
//! On a GPU this checks candle's CUDA kernels against our fused CPU kernels;
//! on the CPU, candle's tensor path against the same fused kernels.

use anyhow::Result;
use candle_core::{Device, Tensor};
use ebm_core::energy::energy_and_grad;
use ebm_core::rollout::{rollout, RolloutConfig};
use ebm_core::{
    Activation, EnergyModel, EnergyTerm, LangevinConfig, MlpEnergy, MlpEnergyConfig, ParamStore,
    ResNetEnergy, ResNetEnergyConfig, Rng,
};

/// The largest relative difference a check allows: f32 sums in another
/// order (or another kernel) differ by a few units of 1e-6 per layer.
pub const TOLERANCE: f64 = 2e-3;

/// One comparison of the device against the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: &'static str,
    /// `max |device - reference| / max(1, max |reference|)`.
    pub rel_err: f64,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.rel_err.is_finite() && self.rel_err <= TOLERANCE
    }
}

/// Every comparison on `device`.
pub fn run_checks(device: &Device) -> Result<Vec<Check>> {
    let cpu = Device::Cpu;
    let mut checks = Vec::new();

    // A trajectory energy E(s_{t+1} | s_t) of the paper's size.
    let (d, n) = (31, 64);
    let mut cfg = MlpEnergyConfig::new(d);
    cfg.context_len = 1;
    cfg.hidden = vec![128, 128, 128];
    cfg.activation = Activation::LeakyRelu;
    let reference = MlpEnergy::init(&cfg, &ParamStore::new(0, &cpu))?.frozen();
    let mut tested = MlpEnergy::init(&cfg, &ParamStore::new(0, device))?.frozen();
    if device.is_cpu() {
        tested = tested.without_fused_path();
    }
    let mut rng = Rng::new(1);
    let x = rng.normal_vec(n * d);
    let c = rng.normal_vec(n * d);
    let on = |v: &[f32], dev: &Device| Tensor::from_vec(v.to_vec(), (n, d), dev);
    let (e_ref, g_ref) = energy_and_grad(
        &[EnergyTerm::new(&reference, Some(on(&c, &cpu)?))],
        &on(&x, &cpu)?,
    )?;
    let (e_dev, g_dev) = energy_and_grad(
        &[EnergyTerm::new(&tested, Some(on(&c, device)?))],
        &on(&x, device)?,
    )?;
    checks.push(compare("trajectory MLP: energies", &e_dev, &e_ref)?);
    checks.push(compare("trajectory MLP: input gradients", &g_dev, &g_ref)?);

    // A noise-free forecast: 16 particles, 10 steps of 10 Langevin steps.
    let rc = RolloutConfig {
        horizon: 10,
        particles: 16,
        init_noise: 0.0,
        langevin: LangevinConfig {
            steps: 10,
            step_size: 0.1,
            noise_scale: 0.0,
            grad_clip: None,
            clamp: Some([-4.0, 4.0]),
            tolerance: None,
        },
    };
    let s0 = &c[..d];
    let ctx = |dev: &Device| Tensor::from_vec(s0.to_vec(), (1, 1, d), dev);
    let f_ref = rollout(&reference, &ctx(&cpu)?, None, &rc, &mut Rng::new(2))?;
    let f_dev = rollout(&tested, &ctx(device)?, None, &rc, &mut Rng::new(2))?;
    checks.push(compare(
        "forecast (no noise): states",
        &f_dev.states,
        &f_ref.states,
    )?);

    // The image ResNet on 8 MNIST-sized images.
    let rcfg = ResNetEnergyConfig::mnist_small(1);
    let reference = ResNetEnergy::init(&rcfg, &ParamStore::new(0, &cpu))?.frozen();
    let mut tested = ResNetEnergy::init(&rcfg, &ParamStore::new(0, device))?.frozen();
    if device.is_cpu() {
        tested = tested.without_fused_path();
    }
    let images = rng.uniform_vec(8 * 784, 0.0, 1.0);
    let img = |dev: &Device| Tensor::from_vec(images.clone(), (8, 784), dev);
    let (e_ref, g_ref) = energy_and_grad(&[EnergyTerm::new(&reference, None)], &img(&cpu)?)?;
    let (e_dev, g_dev) = energy_and_grad(&[EnergyTerm::new(&tested, None)], &img(device)?)?;
    checks.push(compare("image ResNet: energies", &e_dev, &e_ref)?);
    checks.push(compare("image ResNet: input gradients", &g_dev, &g_ref)?);
    Ok(checks)
}

/// `max |a - b| / max(1, max |b|)` over all entries (infinite where the
/// shapes differ or a value is not finite).
fn compare(name: &'static str, a: &Tensor, b: &Tensor) -> Result<Check> {
    let flat = |t: &Tensor| -> Result<Vec<f32>> {
        Ok(t.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?)
    };
    let (a, b) = (flat(a)?, flat(b)?);
    let rel_err = if a.len() != b.len() {
        f64::INFINITY
    } else {
        let scale = b.iter().fold(1f64, |m, v| m.max(f64::from(v.abs())));
        let worst = a.iter().zip(&b).fold(0f64, |m, (x, y)| {
            let diff = f64::from(x - y).abs();
            if diff.is_finite() {
                m.max(diff)
            } else {
                f64::INFINITY
            }
        });
        worst / scale
    };
    Ok(Check { name, rel_err })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the CPU, candle's tensor path agrees with the fused kernels; and
    /// the comparison itself sees a difference of the tolerance's size.
    #[test]
    fn the_cpu_tensor_path_agrees_with_the_fused_kernels() -> Result<()> {
        let checks = run_checks(&Device::Cpu)?;
        assert_eq!(checks.len(), 5);
        for c in &checks {
            assert!(c.passed(), "{c:?}");
        }
        let b = Tensor::new(&[2f32, -4.0], &Device::Cpu)?;
        let a = Tensor::new(&[2f32, -4.0 + 0.01 * 4.0], &Device::Cpu)?;
        let off = compare("off", &a, &b)?;
        assert!((off.rel_err - 0.01).abs() < 1e-6 && !off.passed());
        let nan = Tensor::new(&[f32::NAN, -4.0], &Device::Cpu)?;
        assert!(!compare("nan", &nan, &b)?.passed());
        Ok(())
    }
}
