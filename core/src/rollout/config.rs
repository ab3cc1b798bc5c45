//! What a rollout is asked for ([`RolloutConfig`], [`Starts`]) and what it
//! gives back ([`Rollout`]).

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::sampling::langevin::LangevinConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    /// Predicted steps.
    pub horizon: usize,
    /// Particles per start state.
    pub particles: usize,
    /// Half-width of the uniform noise added to the last state to start each step.
    pub init_noise: f64,
    /// Langevin settings of each predicted step (K = `langevin.steps`).
    pub langevin: LangevinConfig,
}

/// Forecast particles and their energies.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// `[B, P, H, D]`.
    pub states: Tensor,
    /// Energy of each predicted transition, `[B, P, H]`.
    pub energies: Tensor,
    /// Langevin steps run over the whole horizon (`H * K` without a deadline).
    pub langevin_steps: usize,
}

/// Where a forecast's chains start.
#[derive(Debug, Clone, Copy)]
pub enum Starts<'a> {
    /// Each predicted step from the last (predicted) state plus uniform
    /// jitter of `init_noise`, run for `langevin.steps` steps.
    Cold,
    /// Each predicted step from the last (predicted) state plus the change
    /// a given trajectory makes at that step, run for `warm.steps` Langevin
    /// steps per prediction (the first `warm.cold_head` and the last
    /// `warm.cold_tail` start cold): `states` is `[B, P, H, D]` in state space (a robot's
    /// previous forecast shifted by a step: warm starts), its change at the
    /// first step measured from the context's last state. The chains thus
    /// start as cold ones do, from their own last prediction, displaced by
    /// the previous forecast's motion instead of by jitter.
    Warm { states: &'a Tensor, warm: WarmSteps },
}

/// How warm-started chains run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmSteps {
    /// Langevin steps per warm-started prediction.
    pub steps: usize,
    /// The first `cold_head` predictions start cold instead and run
    /// `langevin.steps` steps: they are conditioned on the newly observed
    /// state, and their particles have been refined over the most forecasts.
    pub cold_head: usize,
    /// So do the last `cold_tail`: a previous forecast holds nothing for its
    /// last step but an extrapolation.
    pub cold_tail: usize,
}

impl WarmSteps {
    /// Whether prediction `t` of `horizon` starts warm.
    pub fn is_warm(&self, t: usize, horizon: usize) -> bool {
        t >= self.cold_head && t + self.cold_tail < horizon
    }
}
