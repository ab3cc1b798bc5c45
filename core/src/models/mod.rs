//! Energy models and the feed-forward baseline, every layer spectrally
//! normalised ([`spectral`]); [`fused`] holds their plain-buffer CPU forms,
//! which the models use on their own where they apply.

pub mod fc_baseline;
pub(crate) mod fused;
pub mod linear_prior;
pub mod mlp;
pub mod resnet;
pub mod spectral;
pub mod summed;

pub use fc_baseline::{FcBaseline, FcBaselineConfig};
pub use linear_prior::{LinearPrior, RidgeFit};
pub use mlp::{MlpEnergy, MlpEnergyConfig};
pub use resnet::{BlockKind, HeadKind, ResNetEnergy, ResNetEnergyConfig, StageConfig};
pub use summed::{Summed, SummedConfig, SummedMember};

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::models::spectral::SnLinear;
use crate::Activation;

/// The hidden layers `layer{i}` of an MLP from `in_dim` through `hidden`,
/// and the width they end at.
fn hidden_stack(
    in_dim: usize,
    hidden: &[usize],
    sn: bool,
    vb: &VarBuilder,
) -> Result<(Vec<SnLinear>, usize)> {
    let mut layers = Vec::with_capacity(hidden.len());
    let mut width = in_dim;
    for (i, &h) in hidden.iter().enumerate() {
        layers.push(SnLinear::new(
            width,
            h,
            true,
            sn,
            vb.pp(format!("layer{i}")),
        )?);
        width = h;
    }
    Ok((layers, width))
}

/// `act(L_n(... act(L_1(x))))`.
fn forward_hidden(layers: &[SnLinear], act: Activation, x: &Tensor) -> Result<Tensor> {
    layers
        .iter()
        .try_fold(x.clone(), |h, l| act.apply(&l.forward(&h)?))
}

fn default_true() -> bool {
    true
}

fn default_hidden() -> Vec<usize> {
    vec![128, 128, 128]
}

#[cfg(test)]
mod gradcheck_tests;
