//! `ebm-train dsprites train`: one conditional image EBM per concept
//! (position, scale, orientation, shape) and the single model conditioned on
//! every latent (the baseline), each by Algorithm 1 on freshly rendered
//! sprites, with held-out combinations kept out of training.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use candle_core::Device;
use ebm_core::{
    checkpoint, LangevinConfig, PositiveSource, ResNetEnergy, ResNetEnergyConfig, Trainer,
    TrainerConfig,
};
use serde::{Deserialize, Serialize};

use super::data::{Concept, Holdout, SpriteData};
use super::render::SIZE;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DspritesConfig {
    /// Training steps per model.
    pub steps: u64,
    /// The models trained, one per concept.
    pub concepts: Vec<Concept>,
    /// Combinations never shown in training (the zero-shot test).
    #[serde(default)]
    pub holdout: Option<Holdout>,
    /// The network; `num_classes` is set per concept (its conditioning width).
    pub model: ResNetEnergyConfig,
    pub trainer: TrainerConfig,
    /// How `dsprites compose` samples; the training chain's settings if
    /// absent.
    #[serde(default)]
    pub compose: Option<ComposeConfig>,
    /// Steps of `dsprites finetune`: the concept models' sum trained
    /// further as one energy on the same data (the paper's fine-tuning of
    /// a sum); `compose` then also samples that sum. None: not done.
    #[serde(default)]
    pub finetune: Option<u64>,
    /// Weight of the paper's KL term (`trainer.kl`) in the fine-tuning of
    /// a sum only; the models themselves train with `[trainer]` as given.
    /// 0 (the default): none.
    #[serde(default)]
    pub finetune_kl: f64,
}

/// Sampling for `dsprites compose`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeConfig {
    /// Langevin on the summed energy, from uniform noise in the range
    /// training chains start from (`[trainer.replay] init_low..init_high`).
    pub langevin: LangevinConfig,
}

impl DspritesConfig {
    pub fn load(path: &Path) -> Result<Self> {
        crate::config_file::load_toml(path, Self::validate)
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(!self.concepts.is_empty(), "concepts: at least one");
        ensure!(
            self.model.image_size == SIZE && self.model.in_channels == 1,
            "model: dSprites images are 1 x {SIZE} x {SIZE}"
        );
        for c in &self.concepts {
            self.model_for(*c).validate()?;
        }
        self.trainer.validate()?;
        self.trainer
            .with_kl(self.finetune_kl)
            .validate()
            .context("finetune_kl: the KL term's weight in fine-tuning")?;
        self.compose_langevin().validate()?;
        ensure!(
            self.finetune != Some(0),
            "finetune: a positive number of steps"
        );
        Ok(())
    }

    /// The Langevin settings of `dsprites compose`.
    pub fn compose_langevin(&self) -> LangevinConfig {
        self.compose
            .as_ref()
            .map_or_else(|| self.trainer.langevin.clone(), |c| c.langevin.clone())
    }

    /// The network of one concept's model.
    pub fn model_for(&self, c: Concept) -> ResNetEnergyConfig {
        ResNetEnergyConfig {
            num_classes: c.dim(),
            ..self.model.clone()
        }
    }
}

/// Where one concept's model lives under `out`.
pub fn run_dir(out: &Path, c: Concept) -> PathBuf {
    out.join(format!("{c:?}").to_lowercase())
}

/// Trains (or resumes) every configured concept's model to `cfg.steps`.
pub fn train_concepts(cfg: &DspritesConfig, out: &Path, device: &Device) -> Result<()> {
    for &c in &cfg.concepts {
        let data = SpriteData {
            concept: c,
            holdout: cfg.holdout,
        };
        let name = format!("{c:?}");
        let model = cfg.model_for(c);
        train_model(
            &run_dir(out, c),
            &name,
            &model,
            &cfg.trainer,
            &data,
            cfg.steps,
            device,
        )?;
    }
    Ok(())
}

/// Trains (or resumes) one conditional sprite model in `dir` to `steps`.
pub fn train_model(
    dir: &Path,
    name: &str,
    model: &ResNetEnergyConfig,
    trainer: &TrainerConfig,
    data: &dyn PositiveSource,
    steps: u64,
    device: &Device,
) -> Result<()> {
    let mut run = if checkpoint::latest(dir)?.is_some() {
        Trainer::<ResNetEnergy>::resume(dir, device)
            .with_context(|| format!("resuming {}", dir.display()))?
    } else {
        Trainer::<ResNetEnergy>::new(
            model.clone(),
            trainer.clone(),
            SIZE * SIZE,
            data.cond_dim(),
            device,
        )?
    };
    let left = steps.saturating_sub(run.step_count());
    run.train(data, left, Some(dir), |s| {
        if s.step % 50 == 0 {
            tracing::info!(
                model = name,
                step = s.step,
                e_pos = s.e_pos,
                e_neg = s.e_neg,
                "dsprites training"
            );
        }
    })?;
    checkpoint::latest(dir)?.with_context(|| {
        format!(
            "{}: no checkpoint written (checkpoint_every 0?)",
            dir.display()
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ebm_core::{EnergyFunction, EnergyModel, Rng};

    const CONFIG: &str = r#"
steps = 60
concepts = ["position"]
holdout = { large_scales = 2 }
[model]
in_channels = 1
image_size = 64
stem_channels = 4
stages = [
  { channels = 4, downsample = true },
  { channels = 8, downsample = true },
  { channels = 8, downsample = true },
]
activation = "leaky_relu"
block = "official"
[trainer]
batch_size = 8
seed = 2
checkpoint_every = 30
keep_checkpoints = 2
[trainer.langevin]
steps = 5
step_size = 10.0
noise_scale = 0.005
grad_clip = 0.01
clamp = [0.0, 1.0]
[trainer.replay]
capacity = 200
replay_prob = 0.95
init_low = 0.0
init_high = 1.0
[trainer.adam]
lr = 0.001
beta1 = 0.0
beta2 = 0.999
"#;

    #[test]
    fn zero_fine_tuning_steps_are_refused() -> Result<()> {
        let with = |steps: u64| -> Result<DspritesConfig> {
            let text = CONFIG.replacen("[model]", &format!("finetune = {steps}\n[model]"), 1);
            Ok(toml::from_str(&text)?)
        };
        with(400)?.validate()?;
        let err = with(0)?.validate().unwrap_err().to_string();
        assert!(err.contains("finetune"), "{err}");
        Ok(())
    }

    /// A short run of a tiny position model lowers rendered sprites' energy
    /// below uniform noise's under the same conditioning, and resumes.
    #[test]
    fn a_short_run_separates_sprites_from_noise() -> Result<()> {
        let cfg: DspritesConfig = toml::from_str(CONFIG)?;
        cfg.validate()?;
        let out = std::env::temp_dir().join(format!("ebm-dsprites-{}", std::process::id()));
        let dev = Device::Cpu;
        train_concepts(&cfg, &out, &dev)?;
        let dir = run_dir(&out, Concept::Position);
        let model = Trainer::<ResNetEnergy>::resume(&dir, &dev)?;
        assert_eq!(model.step_count(), 60);
        let m = model.model().frozen();
        let data = SpriteData {
            concept: Concept::Position,
            holdout: None,
        };
        let mut rng = Rng::new(9);
        let (x, c) = data.batch(32, &mut rng, &dev)?;
        let noise = candle_core::Tensor::from_vec(
            rng.uniform_vec(32 * SIZE * SIZE, 0.0, 1.0),
            x.dims(),
            &dev,
        )?;
        let mean = |t: candle_core::Tensor| -> Result<f32> { Ok(t.mean_all()?.to_scalar()?) };
        let (e_data, e_noise) = (
            mean(m.energy(&x, c.as_ref())?)?,
            mean(m.energy(&noise, c.as_ref())?)?,
        );
        assert!(e_data < e_noise, "sprites {e_data}, noise {e_noise}");
        std::fs::remove_dir_all(&out)?;
        Ok(())
    }
}
