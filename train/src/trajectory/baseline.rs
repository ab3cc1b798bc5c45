//! The feed-forward baseline: training by MSE, checkpoints, deterministic
//! multi-step rollouts from its own predictions.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use ebm_core::adam::{Adam, AdamConfig};
use ebm_core::checkpoint::{self, Manifest, Normalization};
use ebm_core::{FcBaseline, FcBaselineConfig, ParamStore, PositiveSource, Rng};

use super::config::BaselineConfig;

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

pub fn save_baseline(
    dir: &Path,
    cfg: &FcBaselineConfig,
    params: &ParamStore,
    norm: &Normalization,
    steps: u64,
) -> Result<()> {
    let mut m = Manifest::for_kind(FcBaseline::KIND, cfg, steps)?;
    m.normalization = Some(norm.clone());
    checkpoint::save_model(dir, m, params)?;
    Ok(())
}

pub fn load_baseline(dir: &Path, device: &Device) -> Result<FcBaseline> {
    let loaded = checkpoint::load(dir, device)?;
    anyhow::ensure!(
        loaded.manifest.kind == FcBaseline::KIND,
        "{} holds a {} model, not the FC baseline",
        dir.display(),
        loaded.manifest.kind
    );
    let cfg: FcBaselineConfig = serde_json::from_value(loaded.manifest.model_config.clone())?;
    let store = ParamStore::from_tensors(loaded.weights()?.clone(), device)?;
    Ok(FcBaseline::new(&cfg, store.var_builder())?)
}

/// Deterministic rollout `[B, H, D]` from `context: [B, k, D]`, with
/// `actions: [B, H, A]` when the baseline takes them.
pub fn rollout_baseline(
    model: &FcBaseline,
    context: &Tensor,
    actions: Option<&Tensor>,
    horizon: usize,
) -> Result<Tensor> {
    let (b, k, d) = context.dims3()?;
    let mut ctx = context.clone();
    let mut out = Vec::with_capacity(horizon);
    for t in 0..horizon {
        let mut parts = vec![ctx.reshape((b, k * d))?];
        if let Some(a) = actions {
            parts.push(a.narrow(1, t, 1)?.squeeze(1)?);
        }
        let next = model.predict(&Tensor::cat(&parts, 1)?)?.detach();
        ctx = if k > 1 {
            Tensor::cat(&[ctx.narrow(1, 1, k - 1)?, next.unsqueeze(1)?], 1)?
        } else {
            next.unsqueeze(1)?
        };
        out.push(next);
    }
    Ok(Tensor::stack(&out, 1)?)
}
