//! A served model of one robot, in the robot's own (wire) units:
//! [`RobotModel`] holds a frozen trajectory `MlpEnergy`, the robot it was
//! trained for, its normalisation ([`Units`]) and its OOD calibration, and
//! it is the one place where wire units become model units and back and
//! where conditioning rows are built. Everything the daemon computes goes
//! through it: states and actions in as robots send them, forecasts,
//! energies and denoised states out as robots read them.
//!
//! - [`load`]: from a checkpoint (any robot: every size comes from its
//!   manifest), or a seeded untrained stand-in.
//! - [`units`]: normalisation and the training range ([`StateRange`]).
//! - [`compute`]: forecasts, transition energies and Stein features, and
//!   denoising, batched over robots.

use candle_core::Device;
use ebm_core::checkpoint::WindowPercentiles;
use ebm_core::stats::stein::SteinWindow;
use ebm_core::MlpEnergy;
use ebm_msgs::RobotSpec;

pub mod compute;
pub mod load;
pub mod units;

pub use compute::{DenoiseInput, ForecastOut, ObservationEnergy, Transition};
pub use units::{StateRange, Units};

/// A model ready to serve, in its robot's units.
#[derive(Clone)]
pub struct RobotModel {
    /// Frozen: sampling builds no parameter gradients.
    pub model: MlpEnergy,
    pub model_id: String,
    /// The robot the model was trained for: what its robots must send.
    pub robot: RobotSpec,
    /// Sorted energies at the 0th..100th percentile of training transitions.
    pub percentiles: Option<Vec<f32>>,
    /// The same for mean energies over windows of consecutive transitions.
    pub window_percentiles: Option<WindowPercentiles>,
    /// The Stein window test fitted on training windows.
    pub stein_window: Option<SteinWindow>,
    /// Problems a user should see (untrained model, missing statistics).
    pub warnings: Vec<String>,
    pub device: Device,
    /// Wire units to the model's and back.
    pub units: Units,
}

impl RobotModel {
    pub fn context_len(&self) -> usize {
        self.model.config().context_len
    }

    pub fn conditional(&self) -> bool {
        self.model.config().action_dim > 0
    }

    /// Floats in one state of the served robot.
    pub fn state_dim(&self) -> usize {
        self.model.config().state_dim
    }

    /// Floats in the action the model is conditioned on (0: unconditional).
    pub fn action_dim(&self) -> usize {
        self.model.config().action_dim
    }

    /// Width of the conditioning: `k * state_dim (+ action_dim)`.
    pub fn cond_dim(&self) -> usize {
        self.model.config().cond_dim()
    }

    /// The check of states against the training range (see [`StateRange`]).
    pub fn state_range(&self, max_sigma: f64) -> StateRange {
        self.units.state_range(max_sigma)
    }

    /// Percentile (0-100) of `energy` among training transitions, linearly
    /// interpolated between the stored percentiles; `None` without them.
    pub fn percentile(&self, energy: f32) -> Option<f32> {
        self.percentiles
            .as_deref()
            .map(|p| ebm_core::stats::metrics::percentile_in(p, energy))
    }

    /// The conditioning row of a transition from the last `k` of `before`
    /// (oldest first) and `action`, in model units: the one place a
    /// conditioning row is built.
    pub(crate) fn cond_row(&self, before: &[Vec<f32>], action: Option<&[f32]>) -> Vec<f32> {
        let k = self.context_len();
        let before = &before[before.len().saturating_sub(k)..];
        let mut row: Vec<f32> = before
            .iter()
            .flat_map(|s| self.units.normalize_state(s))
            .collect();
        if self.conditional() {
            row.extend(self.units.normalize_action(action, self.action_dim()));
        }
        row
    }
}
