//! The configuration of the cross-product experiment (`cross`): its
//! models, each trained on some of the `cross_data` sets, and its panels,
//! each a sum of models asked for combinations none of them saw.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use candle_core::Device;
use ebm_core::models::HeadKind;
use ebm_core::{ResNetEnergyConfig, TrainerConfig};
use serde::{Deserialize, Serialize};

use super::compose::Models;
use super::cross_data::{Space, Subset};
use super::data::Concept;
use super::render::SIZE;

/// One trained model of the experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossModel {
    /// Its directory under `--out`.
    pub name: String,
    pub concept: Concept,
    /// The training sets, drawn from equally often.
    pub data: Vec<Subset>,
    /// The network's head, if not `[model].head`.
    #[serde(default)]
    pub head: Option<HeadKind>,
}

/// One test: the composed models' summed energy against each baseline on
/// the combinations of `space` that no composed model was trained on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    pub name: String,
    pub space: Space,
    /// Names of the models summed.
    pub composed: Vec<String>,
    /// Names of the single models compared.
    pub baselines: Vec<String>,
    /// Weights of the composed models' energies in the sum (all 1 if
    /// absent).
    #[serde(default)]
    pub weights: Option<Vec<f64>>,
    /// Steps of training the composed models further as one sum on the
    /// union of their training sets (the paper's fine-tuning,
    /// `finetune.rs`); the panel then also samples that sum.
    #[serde(default)]
    pub finetune: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossConfig {
    /// Training steps per model.
    pub steps: u64,
    pub models: Vec<CrossModel>,
    pub panels: Vec<Panel>,
    /// The network; `num_classes` is set per model, `head` per model if
    /// given there.
    pub model: ResNetEnergyConfig,
    pub trainer: TrainerConfig,
    /// Weight of the paper's KL term (`trainer.kl`) in the fine-tuning of
    /// a sum only; the models themselves train with `[trainer]` as given.
    /// 0 (the default): none.
    #[serde(default)]
    pub finetune_kl: f64,
}

impl CrossConfig {
    pub fn load(path: &Path) -> Result<Self> {
        crate::config_file::load_toml(path, Self::validate)
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(!self.models.is_empty(), "models: at least one");
        ensure!(
            self.model.image_size == SIZE && self.model.in_channels == 1,
            "model: dSprites images are 1 x {SIZE} x {SIZE}"
        );
        for (i, m) in self.models.iter().enumerate() {
            ensure!(
                !m.data.is_empty(),
                "models.{}: data: at least one set",
                m.name
            );
            ensure!(
                !self.models[..i].iter().any(|o| o.name == m.name),
                "models: `{}` named twice",
                m.name
            );
            self.network(m).validate()?;
        }
        for p in &self.panels {
            ensure!(
                !p.name.is_empty()
                    && p.name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "panels: name `{}` names a picture: letters, digits, - and _ only",
                p.name
            );
            ensure!(
                !p.composed.is_empty(),
                "panels.{}: composed: at least one model",
                p.name
            );
            ensure!(
                p.finetune != Some(0),
                "panels.{}: finetune: a positive number of steps",
                p.name
            );
            if let Some(w) = &p.weights {
                ensure!(
                    w.len() == p.composed.len() && w.iter().all(|w| w.is_finite() && *w > 0.0),
                    "panels.{}: weights: one positive weight per composed model",
                    p.name
                );
            }
            for name in p.composed.iter().chain(&p.baselines) {
                self.model_named(name)
                    .with_context(|| format!("panels.{}", p.name))?;
            }
        }
        self.trainer.validate()?;
        self.trainer
            .with_kl(self.finetune_kl)
            .validate()
            .context("finetune_kl: the KL term's weight in fine-tuning")?;
        Ok(())
    }

    pub fn model_named(&self, name: &str) -> Result<&CrossModel> {
        match self.models.iter().find(|m| m.name == name) {
            Some(m) => Ok(m),
            None => bail!("no model named `{name}` in [[models]]"),
        }
    }

    /// The network of one model.
    pub fn network(&self, m: &CrossModel) -> ResNetEnergyConfig {
        ResNetEnergyConfig {
            num_classes: m.concept.dim(),
            head: m.head.unwrap_or(self.model.head),
            ..self.model.clone()
        }
    }

    /// The training sets of a panel's composed models together.
    pub fn trained_sets(&self, p: &Panel) -> Result<Vec<Subset>> {
        let mut sets = Vec::new();
        for name in &p.composed {
            sets.extend(self.model_named(name)?.data.iter().copied());
        }
        Ok(sets)
    }

    pub(super) fn load_models(
        &self,
        out: &Path,
        names: &[String],
        device: &Device,
    ) -> Result<Models> {
        let dirs = names
            .iter()
            .map(|n| Ok((self.model_named(n)?.concept, out.join(n))))
            .collect::<Result<Vec<(Concept, PathBuf)>>>()?;
        Models::load_dirs(&dirs, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed config parses, and a panel naming a model that is not
    /// configured is refused with its name.
    #[test]
    fn configs_name_their_models() -> Result<()> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/dsprites_cross.toml");
        let cfg = CrossConfig::load(&path)?;
        let panel = &cfg.panels[0];
        let sets = cfg.trained_sets(panel)?;
        assert!(!sets.is_empty());
        let scale = cfg.model_named("scale")?;
        assert_eq!(cfg.network(scale).head, HeadKind::Sum);
        assert_eq!(
            cfg.network(cfg.model_named("position")?).head,
            HeadKind::Spatial
        );

        let mut bad = cfg.clone();
        bad.panels[0].baselines.push("nowhere".into());
        let err = format!("{:#}", bad.validate().unwrap_err());
        assert!(err.contains("nowhere"), "{err}");
        let mut spaced = cfg.clone();
        spaced.panels[0].name = "a, b".into();
        let err = format!("{:#}", spaced.validate().unwrap_err());
        assert!(err.contains("a, b"), "{err}");
        let mut weighted = cfg.clone();
        weighted.panels[0].weights = Some(vec![1.0]);
        let err = format!("{:#}", weighted.validate().unwrap_err());
        assert!(err.contains("weights"), "{err}");
        let mut untuned = cfg.clone();
        untuned.panels[0].finetune = Some(0);
        let err = format!("{:#}", untuned.validate().unwrap_err());
        assert!(err.contains("finetune"), "{err}");
        let mut kl = cfg.clone();
        kl.finetune_kl = f64::NAN;
        let err = format!("{:#}", kl.validate().unwrap_err());
        assert!(err.contains("finetune_kl") && err.contains("kl"), "{err}");
        let mut twice = cfg;
        let first = twice.models[0].clone();
        twice.models.push(first);
        let err = format!("{:#}", twice.validate().unwrap_err());
        assert!(err.contains("named twice"), "{err}");
        Ok(())
    }
}
