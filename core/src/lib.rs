//! `ebm-core`: the engine of igebm-rs, after "Implicit Generation and Modeling
//! with Energy-Based Models" (Du & Mordatch, 2019).
//!
//! - [`models`]: energy models (`MlpEnergy`, `ResNetEnergy`) and the
//!   feed-forward baseline, every layer spectrally normalised ([`spectral`]).
//! - [`langevin`]: Langevin sampling over any weighted sum of energies
//!   ([`energy`]), with masks, clipping and clamping.
//! - [`replay`], [`adam`], [`trainer`]: Algorithm 1 with exact resume.
//! - [`checkpoint`]: safetensors + manifest, written atomically.

pub mod activation;
pub mod adam;
pub mod checkpoint;
mod checkpoint_disk;
mod checkpoint_run;
pub mod conv;
pub mod device;
pub mod energy;
pub mod error;
pub mod export_meta;
pub mod frechet;
pub mod fused_conv;
mod fused_io;
pub mod fused_mlp;
pub mod fused_resnet;
pub mod langevin;
pub mod linalg;
pub mod metrics;
pub mod models;
pub mod packed_gemm;
pub mod params;
pub mod replay;
pub mod rng;
pub mod rollout;
mod rollout_fused;
pub mod sgemm;
pub mod spectral;
pub mod stein;
pub mod trainer;
mod winograd;

pub use activation::Activation;
pub use energy::{energy_and_grad, total_energy, EnergyFunction, EnergyModel, EnergyTerm};
pub use error::{CoreError, Result};
pub use langevin::{LangevinConfig, LangevinSampler};
pub use models::{
    FcBaseline, FcBaselineConfig, MlpEnergy, MlpEnergyConfig, ResNetEnergy, ResNetEnergyConfig,
};
pub use params::ParamStore;
pub use replay::{ReplayBuffer, ReplayConfig};
pub use rng::Rng;
pub use trainer::{PositiveSource, StepStats, Trainer, TrainerConfig};

#[cfg(test)]
mod resume_tests;
#[cfg(test)]
mod test_util;
#[cfg(test)]
mod trainer_tests;
