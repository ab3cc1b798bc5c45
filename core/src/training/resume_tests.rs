//! Exact resume of the models the trainers use: a run stopped, saved and
//! resumed ends with the same weights and replay buffer, bit for bit, as the
//! run that never stopped.
//!
//! Guaranteed: the same bits at the same worker-thread count (each test runs
//! at 1 and at 2 threads). Not guaranteed: the same bits at another thread
//! count. The fused parameter gradients sum per-thread partial sums over rows
//! (`FusedMlp::energy_vjp`) or image groups (`FusedResNet`'s groups), split by
//! the thread count, so the f32 rounding of a training step depends on it
//! (after six steps of these tests' models, 1 and 2 threads give different
//! bits in most weight tensors); a checkpoint resumed at another thread count
//! continues the run, but not bit for bit. (Forecasts are independent of the
//! thread count: every particle row has its own random stream, see
//! `rollout::fused_path`.)

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};

use crate::energy::EnergyModel;
use crate::models::{
    BlockKind, LinearPrior, MlpEnergy, MlpEnergyConfig, ResNetEnergy, ResNetEnergyConfig,
    StageConfig,
};
use crate::sampling::langevin::LangevinConfig;
use crate::training::replay_buffer::ReplayConfig;
use crate::training::trainer::{PositiveSource, Trainer, TrainerConfig};
use crate::Rng;

/// Every tensor of the weights (with spectral-norm vectors) and of the replay
/// buffer, as bits.
type Snapshot = BTreeMap<String, Vec<u32>>;

fn snapshot<M: EnergyModel>(t: &Trainer<M>) -> anyhow::Result<Snapshot> {
    let mut all = t.params().tensors();
    all.extend(t.buffer().to_tensors(&Device::Cpu)?);
    all.into_iter()
        .map(|(name, v)| {
            let v: Vec<f32> = v.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            Ok((name, v.into_iter().map(f32::to_bits).collect()))
        })
        .collect()
}

/// Trains `steps` steps straight, and `steps / 2`, saves, resumes from the
/// run directory and trains the rest; asserts that both end bit for bit
/// alike and that training moved the weights.
fn assert_resume_is_exact<M: EnergyModel>(
    model: &M::Config,
    cfg: &TrainerConfig,
    data: &(impl PositiveSource + Sync),
    steps: u64,
) -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let new = || {
        Trainer::<M>::new(
            model.clone(),
            cfg.clone(),
            data.sample_dim(),
            data.cond_dim(),
            &dev,
        )
    };
    let mut straight = new()?;
    straight.train(data, steps, None, |_| {})?;

    let tmp = tempfile::tempdir()?;
    let mut first = new()?;
    first.train(data, steps / 2, Some(tmp.path()), |_| {})?;
    drop(first);
    let mut resumed = Trainer::<M>::resume(tmp.path(), &dev)?;
    assert_eq!(resumed.step_count(), steps / 2);
    resumed.train(data, steps - steps / 2, None, |_| {})?;

    let (a, b) = (snapshot(&straight)?, snapshot(&resumed)?);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, x) in &a {
        let differ = x.iter().zip(&b[name]).filter(|(p, q)| p != q).count();
        assert!(
            x.len() == b[name].len() && differ == 0,
            "{name}: {differ} of {} values differ after resume ({} threads)",
            x.len(),
            rayon::current_num_threads()
        );
    }
    // The comparison is not vacuous: training moved every weight tensor.
    let fresh = snapshot(&new()?)?;
    for (name, x) in a.iter().filter(|(n, _)| n.ends_with("weight")) {
        assert_ne!(x, &fresh[name], "{name} did not train");
    }
    Ok(())
}

/// Runs `f` on a rayon pool of `threads` workers (the fused paths split
/// their work by its size).
fn at_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
        .install(f)
}

fn trainer_config(
    langevin_steps: usize,
    batch_size: usize,
    replay: ReplayConfig,
    seed: u64,
) -> TrainerConfig {
    let langevin = LangevinConfig {
        steps: langevin_steps,
        step_size: 0.1,
        noise_scale: 0.01,
        grad_clip: Some(0.5),
        clamp: None,
        tolerance: None,
    };
    let mut t = TrainerConfig::quick(langevin, replay, 1e-3);
    t.batch_size = batch_size;
    t.seed = seed;
    t
}

/// Transitions as the trajectory trainer's data gives them to a
/// residual-space model: conditioning `[s_{t-1}, s_t, a_t]` (3-D states, a
/// 1-D action), samples the scaled residual around the prior's prediction,
/// fresh chains starting at jitter around the zero residual.
struct Transitions;

impl PositiveSource for Transitions {
    fn sample_dim(&self) -> usize {
        3
    }
    fn cond_dim(&self) -> usize {
        7
    }
    fn batch(
        &self,
        n: usize,
        rng: &mut Rng,
        dev: &Device,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let c = rng.normal_vec(n * 7);
        // A residual that depends on the context, so conditioning matters.
        let x: Vec<f32> = c
            .chunks(7)
            .flat_map(|c| [0.5 * c[3] + 0.3 * c[6], -0.4 * c[4], 0.2 * c[0]])
            .zip(rng.normal_vec(n * 3))
            .map(|(m, z)| m + 0.3 * z)
            .collect();
        Ok((
            Tensor::from_vec(x, (n, 3), dev)?,
            Some(Tensor::from_vec(c, (n, 7), dev)?),
        ))
    }
    fn fresh_starts(
        &self,
        _positives: &Tensor,
        cond: Option<&Tensor>,
        rng: &mut Rng,
    ) -> candle_core::Result<Option<Tensor>> {
        let Some(c) = cond else { return Ok(None) };
        let n = c.dim(0)?;
        Tensor::from_vec(rng.uniform_vec(n * 3, -0.5, 0.5), (n, 3), c.device()).map(Some)
    }
}

/// The trajectory EBM (action-conditional, residual space with a linear prior
/// and a base measure, as `ebm-train traj` builds it, at small sizes). Batch
/// 48 (96 rows in the loss: several row blocks of the fused gradient at two
/// threads); a 64-sample buffer that has wrapped before the save.
#[test]
fn trajectory_ebm_resumes_exactly_at_one_and_two_threads() -> anyhow::Result<()> {
    let mut m = MlpEnergyConfig::new(3);
    m.context_len = 2;
    m.action_dim = 1;
    m.hidden = vec![32, 32];
    m.delta_scale = vec![0.5, 1.0, 2.0];
    m.prior = Some(LinearPrior {
        weight: (0..21).map(|i| 0.05 * (i % 5) as f32 - 0.1).collect(),
        bias: vec![0.1, 0.0, -0.1],
        correlation_cholesky: vec![1.0, 0.0, 0.0, 0.3, 0.9, 0.0, 0.0, 0.2, 0.95],
    });
    m.base_weight = 0.1;
    let replay = ReplayConfig {
        capacity: 64,
        replay_prob: 0.95,
        init_low: -1.0,
        init_high: 1.0,
        quantize_u8: false,
        labels: Default::default(),
    };
    let t = trainer_config(8, 48, replay, 11);
    for threads in [1, 2] {
        at_threads(threads, || {
            assert_resume_is_exact::<MlpEnergy>(&m, &t, &Transitions, 6)
        })?;
    }
    Ok(())
}

/// Random 8x8 one-channel images with one of three labels, in `[0, 1]`.
struct Images;

impl PositiveSource for Images {
    fn sample_dim(&self) -> usize {
        64
    }
    fn cond_dim(&self) -> usize {
        3
    }
    fn batch(
        &self,
        n: usize,
        rng: &mut Rng,
        dev: &Device,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let x = rng.uniform_vec(n * 64, 0.0, 1.0);
        let labels: Vec<f32> = (0..n)
            .flat_map(|_| {
                let k = rng.below(3);
                (0..3).map(move |j| f32::from(u8::from(j == k)))
            })
            .collect();
        Ok((
            Tensor::from_vec(x, (n, 64), dev)?,
            Some(Tensor::from_vec(labels, (n, 3), dev)?),
        ))
    }
}

/// A tiny conditional image EBM (16-channel stem and block, so the fused
/// ResNet's Winograd convolutions run), with a u8-quantised buffer as the
/// image configs use.
#[test]
fn image_ebm_resumes_exactly_at_one_and_two_threads() -> anyhow::Result<()> {
    let m = ResNetEnergyConfig {
        in_channels: 1,
        image_size: 8,
        num_classes: 3,
        stem_channels: 16,
        stages: vec![StageConfig {
            channels: 16,
            downsample: true,
        }],
        // The official block with dropout: masks that repeat on resume and
        // do not depend on how a batch is split across threads.
        block: BlockKind::Official,
        dropout: 0.5,
        ..ResNetEnergyConfig::mnist_small(3)
    };
    let replay = ReplayConfig {
        capacity: 16,
        replay_prob: 0.95,
        init_low: 0.0,
        init_high: 1.0,
        quantize_u8: true,
        labels: Default::default(),
    };
    let mut t = trainer_config(4, 6, replay, 12);
    t.langevin.clamp = Some([0.0, 1.0]);
    for threads in [1, 2] {
        at_threads(threads, || {
            assert_resume_is_exact::<ResNetEnergy>(&m, &t, &Images, 6)
        })?;
    }
    Ok(())
}
