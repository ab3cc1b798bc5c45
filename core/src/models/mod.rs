//! Energy models and the feed-forward baseline.

pub mod fc_baseline;
pub mod mlp;
pub mod resnet;

pub use fc_baseline::{FcBaseline, FcBaselineConfig};
pub use mlp::{MlpEnergy, MlpEnergyConfig};
pub use resnet::{ResNetEnergy, ResNetEnergyConfig, StageConfig};

fn default_true() -> bool {
    true
}

fn default_hidden() -> Vec<usize> {
    vec![128, 128, 128]
}

#[cfg(test)]
mod gradcheck_tests;
