//! `ebm-core`: the engine of igebm-rs, after "Implicit Generation and Modeling
//! with Energy-Based Models" (Du & Mordatch, 2019). Safe code only; the CPU
//! kernels under its fused paths live in `ebm-kernels`.
//!
//! Where it sits: on candle and `ebm-kernels`; `ebm-train` trains and
//! evaluates with it, `ebm-runtime` serves its exports.
//!
//! - [`energy`]: the interface every model, the sampler and the trainer
//!   share ([`EnergyFunction`], [`EnergyModel`], the [`FusedEnergy`]
//!   capability), and weighted sums of energies (composition).
//! - [`models`]: `MlpEnergy`, `ResNetEnergy`, the FC baseline and the linear
//!   prior; [`models::spectral`] (spectral normalisation); `models/fused/`
//!   (their CPU forms on plain buffers).
//! - [`sampling`]: the Langevin sampler ([`sampling::langevin`]).
//! - [`training`]: Algorithm 1 ([`training::trainer`]), the replay buffer,
//!   Adam.
//! - [`rollout`]: multi-step trajectory forecasts by Langevin dynamics.
//! - [`stats`]: Frechet distance, forecast errors over a horizon, AUROC and
//!   percentiles, the Stein window test, small linear algebra.
//! - [`checkpoint`]: safetensors + manifest written atomically, runs of
//!   checkpoints, what an export says about its robot and OOD calibration.
//! - [`params`] (named parameters), [`device`] (CPU / CUDA), [`error`];
//!   [`Rng`] and [`Activation`] come from `ebm-kernels`.

#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod device;
pub mod energy;
pub mod error;
pub mod models;
pub mod params;
pub mod rollout;
pub mod sampling;
pub mod stats;
pub mod training;

pub use ebm_kernels::{Activation, Rng};
pub use energy::{
    energy_and_grad, total_energy, EnergyFunction, EnergyModel, EnergyTerm, FusedEnergy,
};
pub use error::{CoreError, Result};
pub use models::{
    FcBaseline, FcBaselineConfig, MlpEnergy, MlpEnergyConfig, ResNetEnergy, ResNetEnergyConfig,
    Summed, SummedConfig, SummedMember,
};
pub use params::ParamStore;
pub use sampling::langevin::{LangevinConfig, LangevinSampler};
pub use training::replay_buffer::{ReplayBuffer, ReplayConfig};
pub use training::trainer::{PositiveSource, StepStats, Trainer, TrainerConfig};

#[cfg(test)]
mod test_util;
