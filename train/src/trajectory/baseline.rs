//! The feed-forward baseline: training by MSE, checkpoints, deterministic
//! multi-step rollouts from its own predictions.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use ebm_core::checkpoint::{self, Manifest, Normalization};
use ebm_core::training::adam::{Adam, AdamConfig};
use ebm_core::{FcBaseline, FcBaselineConfig, ParamStore, PositiveSource, Rng};

use super::config::BaselineConfig;
use super::data::TransitionData;

/// Trains the baseline on `data` (inputs = conditioning, targets = next state).
pub fn train_baseline(
    cfg: &FcBaselineConfig,
    bcfg: &BaselineConfig,
    data: &dyn PositiveSource,
    seed: u64,
    device: &Device,
) -> Result<(FcBaseline, ParamStore, f64)> {
    let params = ParamStore::new(seed, device);
    let mut model = FcBaseline::new(cfg, params.var_builder())?;
    let mut adam = Adam::new(AdamConfig {
        beta1: 0.9,
        clip_to_second_moment: false,
        ..AdamConfig::with_lr(bcfg.lr)
    })?;
    let mut rng = Rng::derived(seed, "fc-baseline");
    let mut last = f64::NAN;
    for step in 0..bcfg.steps {
        let (target, input) = data.batch(bcfg.batch_size, &mut rng, device)?;
        let input = input.context("the baseline needs conditioning inputs")?;
        model.power_iteration()?;
        let loss = model.mse(&input, &target)?;
        last = f64::from(loss.to_scalar::<f32>()?);
        anyhow::ensure!(
            last.is_finite(),
            "baseline training diverged at step {step}: loss {last}"
        );
        adam.step(&params, &loss.backward()?)?;
        model.refresh()?;
        if (step + 1) % 1000 == 0 {
            tracing::info!(step = step + 1, mse = last, "baseline training");
        }
    }
    Ok((model, params, last))
}

/// Saves the baseline with its normalisation and the spread of its
/// training residuals (the noisy baseline's noise).
pub fn save_baseline(
    dir: &Path,
    cfg: &FcBaselineConfig,
    params: &ParamStore,
    norm: &Normalization,
    steps: u64,
    residual_spread: &[f32],
    context_noise: f32,
) -> Result<()> {
    let mut m = Manifest::for_kind(FcBaseline::KIND, cfg, steps)?;
    m.normalization = Some(norm.clone());
    m.extra.insert(
        "residual_spread".into(),
        serde_json::to_value(residual_spread)?,
    );
    m.extra
        .insert("context_noise".into(), f64::from(context_noise).into());
    checkpoint::save_model(dir, m, params)?;
    Ok(())
}

/// The baseline of `dir` and the spread of its training residuals.
pub fn load_baseline(dir: &Path, device: &Device) -> Result<(FcBaseline, Vec<f32>)> {
    let loaded = checkpoint::load(dir, device)?;
    anyhow::ensure!(
        loaded.manifest.kind == FcBaseline::KIND,
        "{} holds a {} model, not the FC baseline",
        dir.display(),
        loaded.manifest.kind
    );
    let cfg: FcBaselineConfig = serde_json::from_value(loaded.manifest.model_config.clone())?;
    let spread: Vec<f32> = serde_json::from_value(
        loaded
            .manifest
            .extra
            .get("residual_spread")
            .cloned()
            .with_context(|| {
                format!(
                    "{} has no residual_spread (trained by an older version: train it again)",
                    dir.display()
                )
            })?,
    )?;
    let store = ParamStore::from_tensors(loaded.weights()?.clone(), device)?;
    Ok((FcBaseline::new(&cfg, store.var_builder())?, spread))
}

/// How the baseline is rolled out: the box its predictions are clamped to
/// (the EBM's, for a fair comparison), and for the noisy baseline the
/// Gaussian spread added to every prediction, with its particle count.
pub struct FcRollout<'a> {
    pub horizon: usize,
    pub clamp: Option<[f64; 2]>,
    /// `(per-dimension standard deviation, particles)`.
    pub noise: Option<(&'a [f32], usize)>,
}

/// Rollout `[B, P, H, D]` from `context: [B, k, D]` (P = 1 without noise),
/// with `actions: [B, H, A]` when the baseline takes them; every prediction
/// (plus noise) is clamped, then conditions the next.
pub fn rollout_baseline(
    model: &FcBaseline,
    context: &Tensor,
    actions: Option<&Tensor>,
    how: &FcRollout,
    rng: &mut Rng,
) -> Result<Tensor> {
    let (b, k, d) = context.dims3()?;
    let p = how.noise.map_or(1, |(_, p)| p.max(1));
    // Particles of one start are consecutive rows.
    let repeat = |t: &Tensor| -> Result<Tensor> {
        let idx: Vec<u32> = (0..b as u32)
            .flat_map(|i| std::iter::repeat_n(i, p))
            .collect();
        Ok(t.index_select(&Tensor::new(idx, t.device())?, 0)?)
    };
    let mut ctx = repeat(context)?;
    let actions = actions.map(repeat).transpose()?;
    let sd = match how.noise {
        Some((sd, _)) => {
            anyhow::ensure!(
                sd.len() == d,
                "residual spread has {} dims, states {d}",
                sd.len()
            );
            Some(Tensor::new(sd, context.device())?.unsqueeze(0)?)
        }
        None => None,
    };
    let mut out = Vec::with_capacity(how.horizon);
    for t in 0..how.horizon {
        let mut parts = vec![ctx.reshape((b * p, k * d))?];
        if let Some(a) = &actions {
            parts.push(a.narrow(1, t, 1)?.squeeze(1)?);
        }
        let mut next = model.predict(&Tensor::cat(&parts, 1)?)?.detach();
        if let Some(sd) = &sd {
            let z = Tensor::from_vec(rng.normal_vec(b * p * d), (b * p, d), context.device())?;
            next = (next + z.broadcast_mul(sd)?)?;
        }
        if let Some([lo, hi]) = how.clamp {
            next = next.clamp(lo, hi)?;
        }
        ctx = if k > 1 {
            Tensor::cat(&[ctx.narrow(1, 1, k - 1)?, next.unsqueeze(1)?], 1)?
        } else {
            next.unsqueeze(1)?
        };
        out.push(next);
    }
    Ok(Tensor::stack(&out, 1)?.reshape((b, p, how.horizon, d))?)
}

/// Root-mean-square one-step residual `s_{t+1} - FC(c)` per dimension on
/// `n` transitions of `data` (its clean contexts): the spread of the noisy
/// baseline.
pub fn residual_spread(
    model: &FcBaseline,
    data: &TransitionData,
    n: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<f32>> {
    anyhow::ensure!(
        data.delta_scale.is_none(),
        "the baseline predicts next states, not changes"
    );
    let (t_len, k) = (data.states.shape()[1], data.context_len);
    anyhow::ensure!(
        t_len > k && !data.ids.is_empty(),
        "no transitions to measure residuals on"
    );
    let mut rng = Rng::derived(seed, "fc-residual");
    let (mut x, mut c) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let i = data.ids[rng.below(data.ids.len())];
        let t = k - 1 + rng.below(t_len - k);
        x.extend(data.transition(i, t, &mut c));
    }
    let d = data.states.shape()[2];
    let target = Tensor::from_vec(x, (n, d), device)?;
    let input = Tensor::from_vec(c, (n, model.config().input_dim()), device)?;
    let r = (target - model.predict(&input)?)?;
    let ms: Vec<f32> = r.sqr()?.mean(0)?.to_vec1()?;
    Ok(ms.into_iter().map(f32::sqrt).collect())
}
