//! `ebm-train bench`: the five workloads of the benchmark (`bench/compare.py`
//! runs them against the PyTorch peer; docs/benchmarks.md) with
//! the peer's exact shapes (F1, F2 forecasts; T1 a trajectory training
//! iteration; I1 an image training iteration; I2 image sampling), timed as
//! the peer times them: one warm-up unit, then the median of `reps` units.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Tensor};
use ebm_core::rollout::{rollout, RolloutConfig};
use ebm_core::sampling::langevin::LangevinSampler;
use ebm_core::training::replay_buffer::ReplayConfig;
use ebm_core::{
    Activation, EnergyModel, EnergyTerm, LangevinConfig, MlpEnergy, MlpEnergyConfig, ParamStore,
    PositiveSource, ResNetEnergy, ResNetEnergyConfig, Rng, Trainer, TrainerConfig,
};
use serde::Serialize;

const STATE: usize = 31;
const ACTION: usize = 20;
const PARTICLES: usize = 64;
const HORIZON: usize = 50;
const K_FORECAST: usize = 20;
/// Per-particle gradient evaluations in one forecast.
pub const GRAD_EVALS_PER_FORECAST: f64 = (PARTICLES * HORIZON * K_FORECAST) as f64;
const DATASET: usize = 10_000;

/// One workload's result, in the peer's JSON vocabulary.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadResult {
    pub median_s: f64,
    pub unit: &'static str,
    pub times_s: Vec<f64>,
    /// The workload's figures (`grad_evals_per_s`, `iterations_per_s`...).
    #[serde(flatten)]
    pub figures: BTreeMap<String, f64>,
    /// Peak resident memory of this process when the workload finished (kB).
    pub peak_rss_kb: Option<u64>,
}

pub const WORKLOADS: [&str; 5] = ["F1", "F2", "T1", "I1", "I2"];

/// One unit of a workload (a forecast, an iteration, a 64-image run).
pub type UnitFn = Box<dyn FnMut() -> Result<()>>;

/// Workload `id`'s unit name and its unit, set up (not yet warmed up).
pub fn build_workload(id: &str, device: &Device) -> Result<(&'static str, UnitFn)> {
    Ok(match id {
        "F1" => ("forecast", forecast(false, device)?),
        "F2" => ("forecast", forecast(true, device)?),
        "T1" => ("iteration", traj_training(device)?),
        "I1" => ("iteration", image_training(device)?),
        "I2" => ("64-image run", image_sampling(device)?),
        other => anyhow::bail!("unknown workload {other}: expected one of {WORKLOADS:?}"),
    })
}

/// Runs workload `id` with `reps` timed repetitions.
pub fn run_workload(id: &str, reps: usize, device: &Device) -> Result<WorkloadResult> {
    let (unit, mut unit_fn) = build_workload(id, device)?;
    unit_fn()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        unit_fn()?;
        times.push(t0.elapsed().as_secs_f64());
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let med = sorted[sorted.len() / 2];
    let figures = match id {
        "F1" | "F2" => BTreeMap::from([
            ("ms_per_forecast".into(), 1e3 * med),
            ("grad_evals_per_s".into(), GRAD_EVALS_PER_FORECAST / med),
        ]),
        "I2" => BTreeMap::from([("images_per_s".into(), 64.0 / med)]),
        _ => BTreeMap::from([("iterations_per_s".into(), 1.0 / med)]),
    };
    Ok(WorkloadResult {
        median_s: med,
        unit,
        times_s: times,
        figures,
        peak_rss_kb: peak_rss_kb(),
    })
}

/// `VmHWM` of this process (Linux), in kB.
pub fn peak_rss_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn traj_net(action_dim: usize) -> MlpEnergyConfig {
    let mut cfg = MlpEnergyConfig::new(STATE);
    cfg.context_len = 1;
    cfg.action_dim = action_dim;
    cfg.hidden = vec![128, 128, 128];
    cfg.activation = Activation::Silu;
    cfg
}

fn randn(rng: &mut Rng, shape: &[usize], device: &Device) -> Result<Tensor> {
    let n = shape.iter().product();
    Ok(Tensor::from_vec(rng.normal_vec(n), shape, device)?)
}

/// F1 / F2: 64 particles from one state, 50 steps of 20 Langevin steps.
fn forecast(conditional: bool, device: &Device) -> Result<Box<dyn FnMut() -> Result<()>>> {
    let cfg = traj_net(if conditional { ACTION } else { 0 });
    let model = MlpEnergy::init(&cfg, &ParamStore::new(0, device))?.frozen();
    let mut rng = Rng::new(0);
    let s0 = randn(&mut rng, &[1, 1, STATE], device)?;
    let actions = if conditional {
        Some(randn(&mut rng, &[1, HORIZON, ACTION], device)?)
    } else {
        None
    };
    let rc = RolloutConfig {
        horizon: HORIZON,
        particles: PARTICLES,
        init_noise: 0.0,
        langevin: LangevinConfig {
            steps: K_FORECAST,
            step_size: 0.01,
            noise_scale: 0.005,
            grad_clip: None,
            clamp: None,
            tolerance: None,
        },
    };
    Ok(Box::new(move || {
        rollout(&model, &s0, actions.as_ref(), &rc, &mut rng)?;
        Ok(())
    }))
}

/// Seeded random positives: rows of `x` with optional conditioning rows.
struct RandomData {
    x: Tensor,
    cond: Option<Tensor>,
}

impl PositiveSource for RandomData {
    fn sample_dim(&self) -> usize {
        self.x.dim(1).unwrap_or(0)
    }

    fn cond_dim(&self) -> usize {
        self.cond.as_ref().map_or(0, |c| c.dim(1).unwrap_or(0))
    }

    fn batch(
        &self,
        n: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let rows = self.x.dim(0)?;
        let idx: Vec<u32> = (0..n).map(|_| rng.below(rows) as u32).collect();
        let idx = Tensor::from_vec(idx, n, device)?;
        let cond = match &self.cond {
            Some(c) => Some(c.index_select(&idx, 0)?),
            None => None,
        };
        Ok((self.x.index_select(&idx, 0)?, cond))
    }
}

fn trainer_config(batch: usize, langevin: LangevinConfig, low: f64, high: f64) -> TrainerConfig {
    let replay = ReplayConfig {
        capacity: 10_000,
        replay_prob: 0.95,
        init_low: low,
        init_high: high,
        quantize_u8: false,
        labels: Default::default(),
    };
    let mut cfg = TrainerConfig::quick(langevin, replay, 1e-4);
    cfg.batch_size = batch;
    cfg.adam.beta1 = 0.9;
    cfg.adam.clip_to_second_moment = false;
    cfg.max_abs_energy = f64::MAX;
    cfg
}

/// T1: batch 128, 20 Langevin steps, replay 10,000 at 95%, Adam.
fn traj_training(device: &Device) -> Result<Box<dyn FnMut() -> Result<()>>> {
    let mut rng = Rng::new(0);
    let data = RandomData {
        x: randn(&mut rng, &[DATASET, STATE], device)?,
        cond: Some(randn(&mut rng, &[DATASET, STATE], device)?),
    };
    let lc = LangevinConfig {
        steps: 20,
        step_size: 0.01,
        noise_scale: 0.005,
        grad_clip: None,
        clamp: None,
        tolerance: None,
    };
    let cfg = trainer_config(128, lc, -1.0, 1.0);
    let mut trainer = Trainer::<MlpEnergy>::new(traj_net(0), cfg, STATE, STATE, device)?;
    Ok(Box::new(move || {
        trainer.step(&data)?;
        Ok(())
    }))
}

fn image_langevin(steps: usize) -> LangevinConfig {
    LangevinConfig {
        steps,
        step_size: 10.0,
        noise_scale: 0.005,
        grad_clip: None,
        clamp: Some([0.0, 1.0]),
        tolerance: None,
    }
}

fn image_net() -> ResNetEnergyConfig {
    let mut cfg = ResNetEnergyConfig::mnist_small(1);
    cfg.activation = Activation::Silu;
    cfg
}

/// I1: 64 images, 20 Langevin steps, replay at 95%, Adam.
fn image_training(device: &Device) -> Result<Box<dyn FnMut() -> Result<()>>> {
    let mut rng = Rng::new(0);
    let data = RandomData {
        x: Tensor::from_vec(
            rng.uniform_vec(DATASET * 784, 0.0, 1.0),
            (DATASET, 784),
            device,
        )?,
        cond: None,
    };
    let cfg = trainer_config(64, image_langevin(20), 0.0, 1.0);
    let mut trainer = Trainer::<ResNetEnergy>::new(image_net(), cfg, 784, 0, device)?;
    Ok(Box::new(move || {
        trainer.step(&data)?;
        Ok(())
    }))
}

/// I2: 64 images from uniform noise, 60 Langevin steps.
fn image_sampling(device: &Device) -> Result<Box<dyn FnMut() -> Result<()>>> {
    let model = ResNetEnergy::init(&image_net(), &ParamStore::new(0, device))?.frozen();
    let sampler = LangevinSampler::new(image_langevin(60))?;
    let mut rng = Rng::new(0);
    let device = device.clone();
    Ok(Box::new(move || {
        let x0 = Tensor::from_vec(rng.uniform_vec(64 * 784, 0.0, 1.0), (64, 784), &device)?;
        let terms = [EnergyTerm::new(&model, None)];
        sampler.sample(&terms, &x0, None, &mut rng)?;
        Ok(())
    }))
}

/// Matmul ceilings of this machine: `[m, k] x [k, n]` through candle (the
/// `gemm` crate, every core) and through the fused path's kernel (ndarray /
/// matrixmultiply, one core), in GFLOP/s.
pub fn matmul_ceilings(reps: usize) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    let dev = Device::Cpu;
    let mut rng = Rng::new(0);
    for (name, m, k, n, calls) in [
        ("sgemm_2048", 2048, 2048, 2048, 1),
        ("sgemm_64x128x128", 64, 128, 128, 2000),
    ] {
        let a = randn(&mut rng, &[m, k], &dev)?;
        let b = randn(&mut rng, &[k, n], &dev)?;
        let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
            f()?;
            let mut t = Vec::new();
            for _ in 0..reps {
                let t0 = Instant::now();
                for _ in 0..calls {
                    f()?;
                }
                t.push(t0.elapsed().as_secs_f64());
            }
            t.sort_by(f64::total_cmp);
            Ok(2.0 * (m * k * n * calls) as f64 / t[t.len() / 2] / 1e9)
        };
        out.insert(
            format!("{name}_candle"),
            time(&mut || {
                a.matmul(&b)?;
                Ok(())
            })?,
        );
        let an = ndarray::Array2::from_shape_vec((m, k), a.flatten_all()?.to_vec1::<f32>()?)?;
        let bn = ndarray::Array2::from_shape_vec((k, n), b.flatten_all()?.to_vec1::<f32>()?)?;
        let mut cn = ndarray::Array2::<f32>::zeros((m, n));
        out.insert(
            format!("{name}_ndarray_1core"),
            time(&mut || {
                ndarray::linalg::general_mat_mul(1.0, &an, &bn, 0.0, &mut cn);
                Ok(())
            })?,
        );
    }
    Ok(out)
}

/// FLOPs of one F1 forecast (2 per multiply-add; a gradient evaluation is a
/// forward plus an input-gradient backward of the same size): the peer's floor.
pub fn f1_flops() -> f64 {
    let row = (2 * STATE * 128 + 2 * 128 * 128 + 128) as f64;
    2.0 * 2.0 * row * GRAD_EVALS_PER_FORECAST
}
