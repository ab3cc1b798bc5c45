//! `ResNetEnergy`: the paper's image energy (Section 4, Appendix A), after the
//! official code: bias-free convolutions, a per-class bias added to each
//! convolution's input, a per-class gain on each block's second convolution,
//! average-pool downsampling, a sum over space and a linear head.
//!
//! Two blocks `a -> b` ([`BlockKind`]), both `h = conv1(act(x) + gb1[y])`,
//! `h = conv2(dropout(act(h)) + gb2[y]) * g2[y]`, then
//! - `pre_activation` (the default): `out = h + skip(x)`, `skip` a 1x1
//!   convolution when `a != b`;
//! - `official` (the official code's block, written with its closing
//!   activation moved to the start of the next block, which is the same
//!   network): `out = h + skip(act(x))`, `skip` a 3x3 convolution when
//!   `a != b`, the second convolution drawn near zero with its spectral norm
//!   bounded by 1 instead of fixed to 1.
//!
//! An unconditional model is the one-class case. Dropout (the official
//! unconditional recipe) acts only in training (see [`ResNetEnergy::training_copy`]).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::default_true;
use crate::energy::{EnergyFunction, EnergyModel};
use crate::error::CoreError;
use crate::models::fused::resnet::{
    fused_energies, BlockTensors, Dropout, FusedBlock, FusedResNet,
};
use crate::models::fused::{energy_and_grad_tensors, host_rows, inputs_ok, on_cpu_f32};
use crate::models::spectral::{SnConv2d, SnLinear, SnWeight};
use crate::Activation;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Output channels of this stage's residual block.
    pub channels: usize,
    /// Halve height and width (2x2 average pool) after the block.
    #[serde(default)]
    pub downsample: bool,
}

/// The residual block (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    #[default]
    PreActivation,
    Official,
}

/// How the final feature map becomes one energy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// Summed over space, then a linear map of the channels (the official
    /// image networks): the energy cannot tell where a feature is.
    #[default]
    Sum,
    /// A weight for every pixel and channel of the final map (the official
    /// dSprites network flattens its map into its head): the energy can
    /// depend on where things are, as a position latent needs.
    Spatial,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetEnergyConfig {
    /// Image channels (1 for MNIST, 3 for CIFAR-10).
    pub in_channels: usize,
    /// Image height and width.
    pub image_size: usize,
    /// Classes for conditioning (1 = unconditional).
    #[serde(default = "one")]
    pub num_classes: usize,
    /// Channels of the first 3x3 convolution.
    pub stem_channels: usize,
    /// Residual blocks, in order.
    pub stages: Vec<StageConfig>,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "default_true")]
    pub spectral_norm: bool,
    /// The residual block.
    #[serde(default)]
    pub block: BlockKind,
    /// Dropout rate after each block's first activation, in training only
    /// (the official unconditional recipe: 0.5).
    #[serde(default)]
    pub dropout: f64,
    /// The activation before the sum over space (default: `activation`; the
    /// official unconditional network's is a ReLU).
    #[serde(default)]
    pub final_activation: Option<Activation>,
    /// Spectral norm on the linear head too (default: as `spectral_norm`;
    /// the official head `fc5` has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_spectral_norm: Option<bool>,
    /// The head: sum over space (default) or spatial.
    #[serde(default)]
    pub head: HeadKind,
}

/// The dropout salt of the training loss's pass (see `build_fused`).
const LOSS_MASKS: u64 = 0x5BD1_E995_0000_0001;

fn one() -> usize {
    1
}

impl ResNetEnergyConfig {
    /// The benchmark's MNIST net: conv 1->32, blocks 32 (down), 64 (down), 64.
    pub fn mnist_small(num_classes: usize) -> Self {
        Self {
            in_channels: 1,
            image_size: 28,
            num_classes,
            stem_channels: 32,
            stages: vec![
                StageConfig {
                    channels: 32,
                    downsample: true,
                },
                StageConfig {
                    channels: 64,
                    downsample: true,
                },
                StageConfig {
                    channels: 64,
                    downsample: false,
                },
            ],
            activation: Activation::Silu,
            spectral_norm: true,
            block: BlockKind::PreActivation,
            dropout: 0.0,
            final_activation: None,
            head_spectral_norm: None,
            head: HeadKind::Sum,
        }
    }

    /// Height and width of the final feature map.
    pub fn final_size(&self) -> usize {
        self.image_size >> self.stages.iter().filter(|s| s.downsample).count()
    }

    /// Inputs of the linear head: the final channels, times the final
    /// map's pixels for a spatial head.
    pub fn head_inputs(&self) -> usize {
        let width = self
            .stages
            .last()
            .map_or(self.stem_channels, |s| s.channels);
        match self.head {
            HeadKind::Sum => width,
            HeadKind::Spatial => width * self.final_size() * self.final_size(),
        }
    }

    /// The activation before the sum over space.
    pub fn head_activation(&self) -> Activation {
        self.final_activation.unwrap_or(self.activation)
    }

    pub fn validate(&self) -> std::result::Result<(), CoreError> {
        if self.in_channels == 0 || self.image_size == 0 || self.stem_channels == 0 {
            return Err(CoreError::config(
                "resnet: in_channels, image_size and stem_channels must be positive",
            ));
        }
        if self.num_classes == 0 {
            return Err(CoreError::config(
                "resnet.num_classes must be at least 1 (1 = unconditional)",
            ));
        }
        if self.stages.is_empty() || self.stages.iter().any(|s| s.channels == 0) {
            return Err(CoreError::config(
                "resnet.stages needs at least one stage of positive width",
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(CoreError::config(format!(
                "resnet.dropout {} must be in [0, 1)",
                self.dropout
            )));
        }
        let downs = self.stages.iter().filter(|s| s.downsample).count();
        if self.image_size >> downs == 0 {
            return Err(CoreError::config(format!(
                "resnet: {downs} downsamplings leave nothing of a {}-pixel image",
                self.image_size
            )));
        }
        Ok(())
    }

    /// Width of the one-hot conditioning (0 when unconditional).
    pub fn cond_dim(&self) -> usize {
        if self.num_classes > 1 {
            self.num_classes
        } else {
            0
        }
    }
}

/// Per-class parameters `[classes, channels]` picked by a one-hot (or soft)
/// label `[B, classes]`, returned as `[B, 1, 1, channels]` (channels last).
fn per_class(table: &Tensor, labels: Option<&Tensor>, batch: usize) -> Result<Tensor> {
    let c = table.dim(1)?;
    match labels {
        Some(y) => y.matmul(table)?.reshape((batch, 1, 1, c)),
        None => table.narrow(0, 0, 1)?.reshape((1, 1, 1, c)),
    }
}

/// 2x2 average pooling of `[B, H, W, C]`, dropping an odd last row/column.
fn avg_pool2_nhwc(x: &Tensor) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    let (h2, w2) = (h / 2, w / 2);
    let x = if h % 2 == 1 || w % 2 == 1 {
        x.narrow(1, 0, 2 * h2)?.narrow(2, 0, 2 * w2)?.contiguous()?
    } else {
        x.clone()
    };
    x.reshape((b, h2, 2, w2, 2 * c))?
        .sum(2)?
        .reshape((b, h2, w2, 2, c))?
        .sum(3)?
        / 4.0
}

#[derive(Clone, Debug)]
struct ResBlock {
    kind: BlockKind,
    conv1: SnConv2d,
    conv2: SnConv2d,
    skip: Option<SnConv2d>,
    bias1: Tensor,
    bias2: Tensor,
    gain2: Tensor,
}

impl ResBlock {
    fn new(kind: BlockKind, [a, b, classes]: [usize; 3], sn: bool, vb: VarBuilder) -> Result<Self> {
        let official = kind == BlockKind::Official;
        let conv2 = match official {
            true => SnConv2d::near_zero_bounded(b, b, 3, sn, vb.pp("conv2"))?,
            false => SnConv2d::new(b, b, 3, sn, vb.pp("conv2"))?,
        };
        let skip_kernel = if official { 3 } else { 1 };
        Ok(Self {
            kind,
            conv1: SnConv2d::new(a, b, 3, sn, vb.pp("conv1"))?,
            conv2,
            skip: if a != b {
                Some(SnConv2d::new(a, b, skip_kernel, sn, vb.pp("skip"))?)
            } else {
                None
            },
            bias1: vb.get_with_hints((classes, a), "class_bias1", Init::Const(0.0))?,
            bias2: vb.get_with_hints((classes, b), "class_bias2", Init::Const(0.0))?,
            gain2: vb.get_with_hints((classes, b), "class_gain2", Init::Const(1.0))?,
        })
    }

    /// `dropout`: the rate, in training only.
    fn forward(
        &self,
        x: &Tensor,
        y: Option<&Tensor>,
        act: Activation,
        dropout: Option<f32>,
    ) -> Result<Tensor> {
        let b = x.dim(0)?;
        let ax = act.apply(x)?;
        let h = self
            .conv1
            .forward(&ax.broadcast_add(&per_class(&self.bias1, y, b)?)?)?;
        let mut h = act.apply(&h)?;
        if let Some(rate) = dropout {
            h = candle_nn::ops::dropout(&h, rate)?;
        }
        let h = self
            .conv2
            .forward(&h.broadcast_add(&per_class(&self.bias2, y, b)?)?)?
            .broadcast_mul(&per_class(&self.gain2, y, b)?)?;
        let skip_in = match self.kind {
            BlockKind::PreActivation => x,
            BlockKind::Official => &ax,
        };
        let skip = match &self.skip {
            Some(s) => s.forward(skip_in)?,
            None => skip_in.clone(),
        };
        h + skip
    }

    fn spectral_weights(&mut self) -> Vec<&mut SnWeight> {
        let mut v = vec![self.conv1.weight_mut(), self.conv2.weight_mut()];
        if let Some(s) = &mut self.skip {
            v.push(s.weight_mut());
        }
        v
    }

    fn frozen(&self) -> Self {
        Self {
            kind: self.kind,
            conv1: self.conv1.frozen(),
            conv2: self.conv2.frozen(),
            skip: self.skip.as_ref().map(SnConv2d::frozen),
            bias1: self.bias1.detach(),
            bias2: self.bias2.detach(),
            gain2: self.gain2.detach(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ResNetEnergy {
    cfg: ResNetEnergyConfig,
    stem: SnConv2d,
    blocks: Vec<ResBlock>,
    head: SnLinear,
    /// The fused CPU path: set on frozen copies of CPU models.
    fused: Option<Arc<FusedResNet>>,
    /// Set in training copies of models with dropout: the seed of their
    /// dropout masks (none: no dropout, as at evaluation).
    dropout_seed: Option<u64>,
}

impl ResNetEnergy {
    pub fn config(&self) -> &ResNetEnergyConfig {
        &self.cfg
    }

    /// The stem convolution (for tests of the normalised weights).
    pub fn stem(&self) -> &SnConv2d {
        &self.stem
    }

    /// The same frozen model without the fused path (autograd only), for
    /// checking one against the other.
    pub fn without_fused_path(&self) -> Self {
        Self {
            fused: None,
            ..self.clone()
        }
    }

    /// The dropout rate in force: the configured rate in training copies.
    fn active_dropout(&self) -> Option<f32> {
        let rate = self.cfg.dropout as f32;
        (rate > 0.0 && self.dropout_seed.is_some()).then_some(rate)
    }

    /// See [`EnergyModel::fused_energy_vjp`]: the fused gradients with respect
    /// to the effective parameters, dotted with those parameters' tensors.
    fn vjp(
        &self,
        x: &Tensor,
        cond: Option<&Tensor>,
        weight: &(dyn Fn(usize, f32) -> f32 + Sync),
    ) -> Result<(Tensor, Tensor)> {
        // Masks of their own, not those of the sampling chain's first step.
        let f = self.build_fused(LOSS_MASKS)?;
        let (n, xv, cv) = host_rows(x, cond)?;
        let (e, g) = f.energy_vjp(&xv, cv.as_deref(), n, weight, x.device())?;
        let mut terms = vec![
            (self.stem.weight().effective(), &g.stem),
            (self.head.weight().effective(), &g.head_w),
        ];
        if let Some(hb) = self.head.bias() {
            terms.push((hb, &g.head_b));
        }
        for (blk, bg) in self.blocks.iter().zip(&g.blocks) {
            terms.push((blk.conv1.weight().effective(), &bg.conv1));
            terms.push((blk.conv2.weight().effective(), &bg.conv2));
            if let (Some(s), Some(gs)) = (&blk.skip, &bg.skip) {
                terms.push((s.weight().effective(), gs));
            }
            terms.push((&blk.bias1, &bg.bias1));
            terms.push((&blk.bias2, &bg.bias2));
            terms.push((&blk.gain2, &bg.gain2));
        }
        let mut total = Tensor::zeros((), DType::F32, x.device())?;
        for (p, gp) in terms {
            total = (total + (p * gp)?.sum_all()?)?;
        }
        Ok((Tensor::from_vec(e, n, x.device())?, total))
    }

    /// `salt` varies the dropout masks between uses of one seed.
    fn build_fused(&self, salt: u64) -> Result<FusedResNet> {
        let c = &self.cfg;
        let blocks = self
            .blocks
            .iter()
            .zip(&c.stages)
            .map(|(b, s)| {
                FusedBlock::new(BlockTensors {
                    post_activation: b.kind == BlockKind::Official,
                    conv1: b.conv1.weight().effective(),
                    conv2: b.conv2.weight().effective(),
                    skip: b.skip.as_ref().map(|k| k.weight().effective()),
                    bias1: &b.bias1,
                    bias2: &b.bias2,
                    gain2: &b.gain2,
                    downsample: s.downsample,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let dropout = self
            .active_dropout()
            .zip(self.dropout_seed)
            .map(|(rate, seed)| Dropout::new(rate, seed ^ salt));
        FusedResNet::new(
            c.in_channels,
            c.image_size,
            c.num_classes,
            [c.activation, c.head_activation()],
            self.stem.weight().effective(),
            blocks,
            self.head.weight().effective(),
            self.head.bias(),
            dropout,
        )
    }
}

impl EnergyModel for ResNetEnergy {
    type Config = ResNetEnergyConfig;
    const KIND: &'static str = "resnet_energy";

    /// Parameters `stem.*`, `block{i}.{conv1,conv2,skip}.*`,
    /// `block{i}.class_{bias1,bias2,gain2}` and `head.*`.
    fn new(cfg: &ResNetEnergyConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let sn = cfg.spectral_norm;
        let stem = SnConv2d::new(cfg.in_channels, cfg.stem_channels, 3, sn, vb.pp("stem"))?;
        let mut blocks = Vec::new();
        let mut width = cfg.stem_channels;
        for (i, s) in cfg.stages.iter().enumerate() {
            blocks.push(ResBlock::new(
                cfg.block,
                [width, s.channels, cfg.num_classes],
                sn,
                vb.pp(format!("block{i}")),
            )?);
            width = s.channels;
        }
        let head_sn = cfg.head_spectral_norm.unwrap_or(sn);
        debug_assert_eq!(cfg.head_inputs() % width, 0);
        let head = SnLinear::new(cfg.head_inputs(), 1, true, head_sn, vb.pp("head"))?;
        Ok(Self {
            cfg: cfg.clone(),
            stem,
            blocks,
            head,
            fused: None,
            dropout_seed: None,
        })
    }

    fn fused_energy_vjp(
        &self,
        x: &Tensor,
        cond: Option<&Tensor>,
        weight: &(dyn Fn(usize, f32) -> f32 + Sync),
    ) -> Option<Result<(Tensor, Tensor)>> {
        let c = &self.cfg;
        let d = c.in_channels * c.image_size * c.image_size;
        let usable =
            on_cpu_f32(self.head.weight().effective()) && inputs_ok(x, cond, d, c.cond_dim());
        usable.then(|| self.vjp(x, cond, weight))
    }

    fn spectral_weights(&mut self) -> Vec<&mut SnWeight> {
        let mut v = vec![self.stem.weight_mut()];
        for b in &mut self.blocks {
            v.extend(b.spectral_weights());
        }
        v.push(self.head.weight_mut());
        v
    }

    fn set_dropout_seed(&mut self, seed: Option<u64>) {
        self.dropout_seed = seed;
    }

    /// Frozen CPU models in f32 also get the fused energy-gradient path.
    fn frozen(&self) -> Self {
        let mut m = Self {
            cfg: self.cfg.clone(),
            stem: self.stem.frozen(),
            blocks: self.blocks.iter().map(ResBlock::frozen).collect(),
            head: self.head.frozen(),
            fused: None,
            dropout_seed: self.dropout_seed,
        };
        let w = m.head.weight().effective();
        if on_cpu_f32(w) {
            m.fused = m.build_fused(0).ok().map(Arc::new);
        }
        m
    }
}

impl EnergyFunction for ResNetEnergy {
    /// # Shapes
    /// `x: [B, C, H, W]` (or `[B, C*H*W]`), `cond: [B, classes]` one-hot for
    /// conditional models, to `[B]`.
    fn energy(&self, x: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        // Frozen CPU models evaluate inputs that need no gradient on the
        // fused path (evaluation: OOD scores, classification).
        if let (Some(f), false) = (&self.fused, x.track_op()) {
            if inputs_ok(x, cond, f.image_len(), f.cond_dim()) {
                return fused_energies(f, x, cond);
            }
        }
        let c = &self.cfg;
        let b = x.dim(0)?;
        // Channels last inside the network (see `conv`): [B, C, H, W] -> [B, H, W, C].
        let x = x
            .reshape((b, c.in_channels, c.image_size, c.image_size))?
            .permute((0, 2, 3, 1))?
            .contiguous()?;
        match (cond, c.cond_dim()) {
            (None, 0) => {}
            (Some(y), k) if k > 0 && y.dims() == [b, k] => {}
            (y, k) => candle_core::bail!(
                "resnet energy: labels of shape {:?} given, the model expects [{b}, {k}]",
                y.map(|y| y.dims().to_vec())
            ),
        }
        let mut h = self.stem.forward(&x)?;
        let dropout = self.active_dropout();
        for (block, stage) in self.blocks.iter().zip(&c.stages) {
            h = block.forward(&h, cond, c.activation, dropout)?;
            if stage.downsample {
                h = avg_pool2_nhwc(&h)?;
            }
        }
        let h = c.head_activation().apply(&h)?;
        let features = match c.head {
            HeadKind::Sum => h.sum(1)?.sum(1)?,
            // [B, H, W, C] flattened in the fused path's order.
            HeadKind::Spatial => h.flatten_from(1)?,
        };
        self.head.forward(&features)?.squeeze(1)
    }

    fn fast_energy_and_grad(
        &self,
        x: &Tensor,
        cond: Option<&Tensor>,
    ) -> Option<Result<(Tensor, Tensor)>> {
        let f = self.fused.as_ref()?;
        // Anything unusual takes the autograd path, which names the problem.
        inputs_ok(x, cond, f.image_len(), f.cond_dim())
            .then(|| energy_and_grad_tensors(x, cond, |x, c, e, g| f.energy_and_grad(x, c, e, g)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn channels_last_pooling_matches_candle_avg_pool() -> Result<()> {
        for (h, w) in [(4, 6), (7, 7)] {
            let n = 2 * 3 * h * w;
            let x = Tensor::from_vec(crate::Rng::new(1).normal_vec(n), (2, 3, h, w), &Device::Cpu)?;
            let want = x.avg_pool2d(2)?;
            let got =
                avg_pool2_nhwc(&x.permute((0, 2, 3, 1))?.contiguous()?)?.permute((0, 3, 1, 2))?;
            let diff: f32 = (got - want)?.abs()?.flatten_all()?.max(0)?.to_scalar()?;
            assert!(diff < 1e-6, "{h}x{w}: {diff}");
        }
        Ok(())
    }
}
