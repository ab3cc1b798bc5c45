//! Buffers of the fused image path: parameter gradients (plain and as
//! tensors) and each thread's reused scratch space.

use candle_core::Tensor;

use super::{FusedResNet, TILE_ROWS, WEIGHT_TILE_ROWS};

/// Gradients of `sum_i w_i E_i` with respect to each block's parameters, in
/// each parameter's own shape.
pub(crate) struct BlockGrads {
    pub conv1: Tensor,
    pub conv2: Tensor,
    pub skip: Option<Tensor>,
    pub bias1: Tensor,
    pub bias2: Tensor,
    pub gain2: Tensor,
}

/// Gradients of `sum_i w_i E_i` with respect to every (effective) parameter.
pub(crate) struct ParamGrads {
    pub stem: Tensor,
    pub blocks: Vec<BlockGrads>,
    /// `[1, width]` (or `[1, H * W * width]`, spatial) and `[1]`, as the
    /// head's weight and bias.
    pub head_w: Tensor,
    pub head_b: Tensor,
}

/// The same gradients in plain buffers (forward matrix layouts), summed over
/// groups of images.
#[derive(Debug, Clone)]
pub(super) struct GradBufs {
    pub(super) stem: Vec<f32>,
    /// Per block: conv1, conv2, skip, bias1, bias2, gain2.
    pub(super) blocks: Vec<[Vec<f32>; 6]>,
    pub(super) head_w: Vec<f32>,
    pub(super) head_b: f32,
}

impl GradBufs {
    pub(super) fn zeros(net: &FusedResNet) -> Self {
        let z = |n: usize| vec![0f32; n];
        Self {
            stem: z(net.stem.w.len()),
            blocks: net
                .blocks
                .iter()
                .map(|b| {
                    [
                        z(b.conv1.w.len()),
                        z(b.conv2.w.len()),
                        z(b.skip.as_ref().map_or(0, |s| s.w.len())),
                        z(b.bias1.len()),
                        z(b.bias2.len()),
                        z(b.gain2.len()),
                    ]
                })
                .collect(),
            head_w: z(net.head_w.len()),
            head_b: 0.0,
        }
    }

    pub(super) fn add(mut self, other: Self) -> Self {
        let add = |a: &mut Vec<f32>, b: &[f32]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        add(&mut self.stem, &other.stem);
        for (a, b) in self.blocks.iter_mut().zip(&other.blocks) {
            for (x, y) in a.iter_mut().zip(b) {
                add(x, y);
            }
        }
        add(&mut self.head_w, &other.head_w);
        self.head_b += other.head_b;
        self
    }
}

/// What the backward pass needs of one block's forward pass.
#[derive(Debug, Default)]
pub(super) struct BlockStore {
    pub(super) size: (usize, usize),
    pub(super) h_in: Vec<f32>,
    pub(super) t1: Vec<f32>,
    pub(super) t2: Vec<f32>,
    pub(super) c2: Vec<f32>,
    pub(super) slope_in: Vec<f32>,
    pub(super) slope_mid: Vec<f32>,
}

/// Scratch buffers of one thread, grown on demand and reused across calls.
#[derive(Debug, Default)]
pub(super) struct Workspace {
    pub(super) x_in: Vec<f32>,
    pub(super) h: Vec<f32>,
    pub(super) t: Vec<f32>,
    pub(super) out: Vec<f32>,
    pub(super) g: Vec<f32>,
    pub(super) cols: Vec<f32>,
    pub(super) per_image: Vec<f32>,
    pub(super) blocks: Vec<BlockStore>,
    pub(super) t_out: Vec<f32>,
    pub(super) slope_out: Vec<f32>,
    pub(super) final_size: (usize, usize),
}

impl Workspace {
    pub(super) fn prepare(&mut self, n: usize, net: &FusedResNet) {
        let (mut hh, mut ww) = (net.size, net.size);
        let stem = &net.stem;
        let mut widest = net.in_channels.max(stem.cout);
        let mut cols = stem.k * stem.k * stem.cin.max(stem.cout);
        self.blocks
            .resize_with(net.blocks.len(), BlockStore::default);
        for (b, st) in net.blocks.iter().zip(&mut self.blocks) {
            let px = n * hh * ww;
            let (a, o) = (b.conv1.cin, b.conv1.cout);
            for (buf, c) in [
                (&mut st.h_in, a),
                (&mut st.t1, a),
                (&mut st.slope_in, a),
                (&mut st.t2, o),
                (&mut st.c2, o),
                (&mut st.slope_mid, o),
            ] {
                buf.resize(px * c, 0.0);
            }
            widest = widest.max(a).max(o);
            let k2 = b.conv1.k * b.conv1.k;
            cols = cols.max(k2 * a.max(o));
            if b.downsample {
                (hh, ww) = (hh / 2, ww / 2);
            }
        }
        let px = n * net.size * net.size;
        self.x_in.resize(px * net.in_channels, 0.0);
        for buf in [&mut self.h, &mut self.t, &mut self.out, &mut self.g] {
            buf.resize(px * widest, 0.0);
        }
        self.cols
            .resize(px.min(TILE_ROWS.max(WEIGHT_TILE_ROWS)) * cols, 0.0);
        let last = n * hh * ww * net.width;
        self.t_out.resize(last, 0.0);
        self.slope_out.resize(last, 0.0);
    }
}
