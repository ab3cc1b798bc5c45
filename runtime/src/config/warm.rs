//! Warm starts of a model's forecasts (`[forecast] warm`, a `[[models]]`
//! entry's `warm`); the starts themselves are built in
//! `engine/warm_start.rs`.

use ebm_core::rollout::WarmSteps;
use serde::{Deserialize, Serialize};

/// Warm starts of a model's forecasts: `[forecast.warm]`, or a `[[models]]`
/// entry's `warm` (docs/runtime.md#warm-starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmStartConfig {
    /// Langevin steps per warm-started prediction; 0 (the default): every
    /// forecast starts cold.
    #[serde(default)]
    pub steps: usize,
    /// The first this many predictions start cold and run `langevin.steps`
    /// (they see the newly observed state). Default 0.
    #[serde(default)]
    pub cold_head: usize,
    /// So do the last this many (the previous forecast holds only an
    /// extrapolation for its last step). Default 1.
    #[serde(default = "one")]
    pub cold_tail: usize,
    /// A forecast still starts from the robot's previous one up to this many
    /// states later (shifted as many steps; under load the daemon skips
    /// superseded states: with several robots cold at first, gaps of a few
    /// states are the rule until warm forecasts catch up); a longer gap
    /// starts cold. Default 10.
    #[serde(default = "ten")]
    pub max_gap: usize,
}

fn one() -> usize {
    1
}

fn ten() -> usize {
    10
}

impl Default for WarmStartConfig {
    fn default() -> Self {
        Self {
            steps: 0,
            cold_head: 0,
            cold_tail: one(),
            max_gap: ten(),
        }
    }
}

impl WarmStartConfig {
    /// How warm-started forecasts run; `None` where every forecast starts
    /// cold (`steps = 0`).
    pub fn warm_steps(&self) -> Option<WarmSteps> {
        (self.steps > 0).then_some(WarmSteps {
            steps: self.steps,
            cold_head: self.cold_head,
            cold_tail: self.cold_tail,
        })
    }

    /// The rule broken for a forecast of `horizon` steps of `langevin_steps`.
    pub fn check(&self, horizon: usize, langevin_steps: usize) -> Result<(), &'static str> {
        if self.steps > langevin_steps {
            return Err("steps at most forecast.langevin.steps");
        }
        if self.cold_head + self.cold_tail > horizon {
            return Err("cold_head + cold_tail at most forecast.horizon");
        }
        Ok(())
    }
}
