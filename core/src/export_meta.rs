//! What a trajectory model's inference export says about itself, as typed
//! manifest fields: the robot it models ([`RobotSpec`]: kind, sizes,
//! dimension names and units, from the training recording) and its OOD
//! calibration ([`OodCalibration`]: training energy percentiles, window
//! statistics, the Stein window test).
//!
//! Exports written before these fields kept the calibration under free-form
//! `extra` keys; [`migrate_legacy_extras`] (run by every
//! [`crate::checkpoint::load`]) moves them into the typed field, so old
//! exports load unchanged and are rewritten in the new form when saved.

use serde::{Deserialize, Serialize};

use crate::checkpoint::{Manifest, WindowPercentiles};
use crate::stein::SteinWindow;

/// Legacy `Manifest::extra` key of the energy percentiles.
pub const ENERGY_PERCENTILES: &str = "energy_percentiles";
/// Legacy `Manifest::extra` key of the [`WindowPercentiles`].
pub const WINDOW_ENERGY_PERCENTILES: &str = "window_energy_percentiles";
/// Legacy `Manifest::extra` key of the [`SteinWindow`].
pub const STEIN_WINDOW: &str = "stein_window";

/// The robot a model was trained for (the same fields as the recording
/// header's robot description in `ebm-msgs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotSpec {
    pub kind: String,
    pub state_dim: usize,
    pub action_dim: usize,
    #[serde(default)]
    pub state_names: Vec<String>,
    #[serde(default)]
    pub state_units: Vec<String>,
    #[serde(default)]
    pub action_names: Vec<String>,
    #[serde(default)]
    pub action_units: Vec<String>,
}

/// A trajectory model's statistics on its training transitions, for OOD scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OodCalibration {
    /// 0th to 100th percentiles of training transitions' energies (101).
    pub energy_percentiles: Vec<f32>,
    /// Percentiles of the mean energy of windows of consecutive transitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_energy_percentiles: Option<WindowPercentiles>,
    /// The Stein window test fitted on training windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stein_window: Option<SteinWindow>,
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
