//! One residual block's frozen parameters for the fused image path.

use candle_core::{Result, Tensor};
use ebm_kernels::conv::ConvMats;

/// One residual block's frozen parameters.
#[derive(Debug, Clone)]
pub(crate) struct FusedBlock {
    /// The official block: the skip path takes the activated input.
    pub(super) post_activation: bool,
    pub(super) conv1: ConvMats,
    pub(super) conv2: ConvMats,
    pub(super) skip: Option<ConvMats>,
    /// `[classes, in]`, `[classes, out]`, `[classes, out]`.
    pub(super) bias1: Vec<f32>,
    pub(super) bias2: Vec<f32>,
    pub(super) gain2: Vec<f32>,
    pub(super) downsample: bool,
}

/// The tensors of one block, as `ResNetEnergy` holds them.
pub(crate) struct BlockTensors<'a> {
    pub post_activation: bool,
    pub conv1: &'a Tensor,
    pub conv2: &'a Tensor,
    pub skip: Option<&'a Tensor>,
    pub bias1: &'a Tensor,
    pub bias2: &'a Tensor,
    pub gain2: &'a Tensor,
    pub downsample: bool,
}

impl FusedBlock {
    pub(crate) fn new(t: BlockTensors) -> Result<Self> {
        let flat = |x: &Tensor| x.flatten_all()?.to_vec1::<f32>();
        Ok(Self {
            post_activation: t.post_activation,
            conv1: ConvMats::new(t.conv1)?,
            conv2: ConvMats::new(t.conv2)?,
            skip: t.skip.map(ConvMats::new).transpose()?,
            bias1: flat(t.bias1)?,
            bias2: flat(t.bias2)?,
            gain2: flat(t.gain2)?,
            downsample: t.downsample,
        })
    }
}
