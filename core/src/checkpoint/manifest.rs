//! The manifest of a checkpoint (`manifest.json`): format version, model
//! kind and config, normalisation, robot and OOD calibration, trainer
//! state, free-form facts and the size and CRC-32 of every file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checkpoint::export_meta::{
    OodCalibration, RobotSpec, WindowPercentiles, ENERGY_PERCENTILES, STEIN_WINDOW,
    WINDOW_ENERGY_PERCENTILES,
};
use crate::energy::EnergyModel;
use crate::error::{CoreError, Result};
use crate::stats::stein::SteinWindow;

pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST: &str = "manifest.json";
pub const WEIGHTS: &str = "weights.safetensors";

/// Per-dimension normalisation `z = (x - mean) / std`, fitted on training
/// data: a trajectory model's states, then its actions, in one vector. The
/// one owner of the std floor and of the state / action split, for training
/// and serving alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// The smallest standard deviation divided by: a (near-)constant
    /// dimension is scaled by this instead of blowing up.
    pub const MIN_STD: f32 = 1e-3;

    /// A fitted standard deviation as divided by: at least [`Self::MIN_STD`];
    /// 1 (leave the dimension as it is) where it is not a finite number.
    pub fn floored_std(s: f32) -> f32 {
        if s.is_finite() {
            s.max(Self::MIN_STD)
        } else {
            1.0
        }
    }

    /// The first `state_dim` dimensions (the states) and the rest (the
    /// actions, empty for a model without them).
    pub fn split(&self, state_dim: usize) -> (Normalization, Normalization) {
        let part = |r: std::ops::Range<usize>| Normalization {
            mean: self.mean[r.clone()].to_vec(),
            std: self.std[r].to_vec(),
        };
        let d = state_dim.min(self.mean.len());
        (part(0..d), part(d..self.mean.len()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub bytes: u64,
    pub crc32: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// The model kind (`EnergyModel::KIND`).
    pub kind: String,
    pub model_config: serde_json::Value,
    #[serde(default)]
    pub normalization: Option<Normalization>,
    /// The robot a trajectory model was trained for (from its recording).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub robot: Option<RobotSpec>,
    /// A trajectory model's OOD calibration on its training transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ood: Option<OodCalibration>,
    pub step: u64,
    /// Trainer state needed for exact resume (absent for inference exports).
    #[serde(default)]
    pub trainer: Option<serde_json::Value>,
    /// Free-form facts for users (dataset, metrics...).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub files: BTreeMap<String, FileDigest>,
}

impl Manifest {
    pub fn new<M: EnergyModel>(cfg: &M::Config, step: u64) -> Result<Self> {
        Self::for_kind(M::KIND, cfg, step)
    }

    pub fn for_kind<C: Serialize>(kind: &str, cfg: &C, step: u64) -> Result<Self> {
        Ok(Self {
            format_version: FORMAT_VERSION,
            kind: kind.to_string(),
            model_config: serde_json::to_value(cfg)
                .map_err(|e| CoreError::config(e.to_string()))?,
            normalization: None,
            robot: None,
            ood: None,
            step,
            trainer: None,
            extra: BTreeMap::new(),
            files: BTreeMap::new(),
        })
    }
}

/// Moves a legacy export's calibration from `extra` into [`Manifest::ood`]
/// (when that is empty and the energy percentiles parse); a key that does
/// not parse stays in `extra`, so a reader can say what is wrong with it.
pub fn migrate_legacy_extras(m: &mut Manifest) {
    if m.ood.is_some() {
        return;
    }
    let take = |m: &mut Manifest, key: &str| m.extra.get(key).cloned();
    let Some(energy) =
        take(m, ENERGY_PERCENTILES).and_then(|v| serde_json::from_value::<Vec<f32>>(v).ok())
    else {
        return;
    };
    m.extra.remove(ENERGY_PERCENTILES);
    let windows = take(m, WINDOW_ENERGY_PERCENTILES)
        .and_then(|v| serde_json::from_value::<WindowPercentiles>(v).ok());
    if windows.is_some() {
        m.extra.remove(WINDOW_ENERGY_PERCENTILES);
    }
    let stein = take(m, STEIN_WINDOW).and_then(|v| serde_json::from_value::<SteinWindow>(v).ok());
    if stein.is_some() {
        m.extra.remove(STEIN_WINDOW);
    }
    m.ood = Some(OodCalibration {
        energy_percentiles: energy,
        window_energy_percentiles: windows,
        stein_window: stein,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_extras_move_into_the_typed_field() {
        let mut m = Manifest::for_kind("mlp_energy", &serde_json::json!({}), 1).unwrap();
        let pct: Vec<f32> = (0..101).map(|i| i as f32).collect();
        m.extra.insert(
            ENERGY_PERCENTILES.into(),
            serde_json::to_value(&pct).unwrap(),
        );
        let w = WindowPercentiles {
            window: 50,
            percentiles: pct.clone(),
        };
        m.extra.insert(
            WINDOW_ENERGY_PERCENTILES.into(),
            serde_json::to_value(&w).unwrap(),
        );
        m.extra
            .insert(STEIN_WINDOW.into(), serde_json::json!("not a test"));
        m.extra
            .insert("rollout".into(), serde_json::json!({"horizon": 5}));
        migrate_legacy_extras(&mut m);
        let ood = m.ood.clone().unwrap();
        assert_eq!(ood.energy_percentiles, pct);
        assert_eq!(ood.window_energy_percentiles, Some(w));
        assert_eq!(ood.stein_window, None);
        // What did not parse stays, with the unrelated keys.
        assert!(m.extra.contains_key(STEIN_WINDOW) && m.extra.contains_key("rollout"));
        assert!(!m.extra.contains_key(ENERGY_PERCENTILES));
        // The typed form round-trips through JSON.
        let back: Manifest = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(back.ood, m.ood);
        // Nothing to migrate: unchanged.
        let mut plain = Manifest::for_kind("x", &serde_json::json!({}), 0).unwrap();
        migrate_legacy_extras(&mut plain);
        assert_eq!(plain.ood, None);
    }
}
