//! Images as positive data for Algorithm 1: dequantised into [0, 1] as in the
//! official code (`x * 255/256 + U(0, 1/256)` on `x = byte / 255`), with
//! one-hot labels for class-conditional models.

use candle_core::{Device, Tensor};
use ebm_core::{PositiveSource, Rng};

use super::loaders::ImageSet;

pub const NUM_CLASSES: usize = 10;

pub struct ImageData {
    pub set: ImageSet,
    pub conditional: bool,
}

impl ImageData {
    /// One-hot rows `[n, 10]` for `labels`.
    pub fn one_hot(labels: &[u8], device: &Device) -> candle_core::Result<Tensor> {
        let mut v = vec![0f32; labels.len() * NUM_CLASSES];
        for (i, &l) in labels.iter().enumerate() {
            v[i * NUM_CLASSES + usize::from(l)] = 1.0;
        }
        Tensor::from_vec(v, (labels.len(), NUM_CLASSES), device)
    }

    /// Images `idx` as `[n, D]` in [0, 1] (`byte / 255`, no noise).
    pub fn clean(&self, idx: &[usize], device: &Device) -> candle_core::Result<Tensor> {
        let d = self.set.image_len();
        let mut v = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            v.extend(self.set.image(i).iter().map(|&b| f32::from(b) / 255.0));
        }
        Tensor::from_vec(v, (idx.len(), d), device)
    }
}

impl PositiveSource for ImageData {
    fn sample_dim(&self) -> usize {
        self.set.image_len()
    }

    fn cond_dim(&self) -> usize {
        if self.conditional {
            NUM_CLASSES
        } else {
            0
        }
    }

    fn batch(
        &self,
        n: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let d = self.set.image_len();
        let mut v = Vec::with_capacity(n * d);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let i = rng.below(self.set.len());
            labels.push(self.set.labels[i]);
            v.extend(
                self.set
                    .image(i)
                    .iter()
                    .map(|&b| ((f64::from(b) + rng.uniform()) / 256.0) as f32),
            );
        }
        let x = Tensor::from_vec(v, (n, d), device)?;
        let cond = if self.conditional {
            Some(Self::one_hot(&labels, device)?)
        } else {
            None
        };
        Ok((x, cond))
    }
}
