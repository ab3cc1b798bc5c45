//! Dropout masks of the fused image path's training copies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Dropout after each block's first activation, in training copies: every
/// call (an energy gradient of a Langevin step, a loss gradient) draws fresh
/// masks, each group of images its own, from the seed, the call's number and
/// the group's first image, so a training step is reproducible.
#[derive(Debug, Clone)]
pub(crate) struct Dropout {
    rate: f32,
    seed: u64,
    calls: Arc<AtomicU64>,
}

impl Dropout {
    pub(crate) fn new(rate: f32, seed: u64) -> Self {
        Self {
            rate,
            seed,
            calls: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The mask seed of the next call.
    pub(super) fn next_call(&self) -> u64 {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        self.seed ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// Zeroes each value of `t` and its slope (`[n, pixels, channels]`, the
    /// images from `first` on) with probability `rate` and scales the rest by
    /// `1 / (1 - rate)`; each image's mask depends on its index, not on how
    /// a batch is split across threads.
    pub(super) fn apply(
        &self,
        (call_seed, first, n): (u64, usize, usize),
        block: usize,
        t: &mut [f32],
        slope: &mut [f32],
    ) {
        let len = t.len() / n.max(1);
        let keep = 1.0 / (1.0 - self.rate);
        for (i, (ti, si)) in t.chunks_mut(len).zip(slope.chunks_mut(len)).enumerate() {
            let key = ((first + i) as u64) << 8 | block as u64;
            let mut rng = crate::Rng::new(call_seed ^ key.wrapping_mul(0xD1B5_4A32_D192_ED03));
            for (v, s) in ti.iter_mut().zip(si.iter_mut()) {
                let m = if rng.uniform() < f64::from(self.rate) {
                    0.0
                } else {
                    keep
                };
                *v *= m;
                *s *= m;
            }
        }
    }
}
