//! What a trajectory model's inference export says about itself, as typed
//! manifest fields: the robot it models ([`RobotSpec`]: kind, sizes,
//! dimension names and units, from the training recording) and its OOD
//! calibration ([`OodCalibration`]: training energy percentiles, window
//! statistics, the Stein window test).
//!
//! Exports written before these fields kept the calibration under free-form
//! `extra` keys; `manifest::migrate_legacy_extras` (run by every
//! [`crate::checkpoint::load`]) moves them into the typed field, so old
//! exports load unchanged and are rewritten in the new form when saved.

use serde::{Deserialize, Serialize};

use crate::stats::stein::SteinWindow;

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

/// Percentiles (0th to 100th) of the mean energy of `window` consecutive
/// training transitions of one trajectory, for windowed OOD scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowPercentiles {
    pub window: usize,
    pub percentiles: Vec<f32>,
}
