//! Prints resident memory while running training-step pieces in a loop, to
//! find what grows. `cargo run --release -p ebm-core --example leak_probe -- MODE`
use candle_core::{Device, Tensor};
use ebm_core::training::adam::{Adam, AdamConfig};
use ebm_core::{FcBaseline, FcBaselineConfig, ParamStore, Rng};

fn rss_mb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    s.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
        / 1_000_000
}

fn main() -> anyhow::Result<()> {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let dev = Device::Cpu;
    let cfg = FcBaselineConfig {
        state_dim: 31,
        context_len: 1,
        action_dim: 20,
        hidden: vec![128; 3],
        activation: ebm_core::Activation::LeakyRelu,
        spectral_norm: true,
        residual: true,
    };
    let params = ParamStore::new(0, &dev);
    let mut m = FcBaseline::new(&cfg, params.var_builder())?;
    let mut adam = Adam::new(AdamConfig::with_lr(1e-3))?;
    let mut rng = Rng::new(0);
    for step in 0..3001 {
        let x = Tensor::from_vec(rng.normal_vec(128 * 51), (128, 51), &dev)?;
        let y = Tensor::from_vec(rng.normal_vec(128 * 31), (128, 31), &dev)?;
        if mode.contains('p') {
            m.power_iteration()?;
        }
        let loss = m.mse(&x, &y)?;
        let grads = loss.backward()?;
        if mode.contains('a') {
            adam.step(&params, &grads)?;
        }
        if mode.contains('r') {
            m.refresh()?;
        }
        if step % 1000 == 0 {
            println!("{mode} step {step}: {} MB", rss_mb());
        }
    }
    Ok(())
}
