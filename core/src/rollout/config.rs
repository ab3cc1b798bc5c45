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
    /// Each predicted step from given states, `[B, P, H, D]` in state space
    /// (a robot's previous forecast shifted by a step: warm starts), run for
    /// `steps` Langevin steps per prediction.
    Warm { states: &'a Tensor, steps: usize },
}
