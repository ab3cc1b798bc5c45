//! The classification term of conditional training on one-hot labels
//! (`TrainerConfig::label_contrast`): the cross-entropy of each positive's
//! label under `softmax_y(-E(x, y) / T)` over every label, as a conditional EBM
//! read as a classifier (JEM's `p(y | x)`; the continual-learning EBMs of Li,
//! Du and Mordatch contrast labels the same way). Its parameter gradient is
//! that of the surrogate `sum_i w_i E(x_i, y_i)` with fixed weights
//! `w = (onehot - p) / (B T)`, so it joins any loss by addition.

use candle_core::Tensor;

use crate::energy::{EnergyFunction, EnergyModel};
use crate::error::Result;

/// One batch's classification term.
pub struct LabelContrast {
    /// Each positive once per label, `[B * C, D]`, and those labels `[B * C, C]`.
    x: Tensor,
    labels: Tensor,
    /// `dCE / dE` of each row, over the batch size: `(onehot - p) / (B T)`.
    weights: Vec<f32>,
    /// Mean cross-entropy of the batch's labels.
    pub cross_entropy: f64,
    /// Share of the batch whose lowest-energy label is its own.
    pub accuracy: f64,
}

impl LabelContrast {
    /// The term for positives `x: [B, D]` with one-hot labels `cond: [B, C]`
    /// at `temperature`, energies by `model` (a frozen copy: no graph is
    /// kept here).
    pub fn new(
        model: &dyn EnergyFunction,
        x: &Tensor,
        cond: &Tensor,
        temperature: f64,
    ) -> Result<Self> {
        let (b, c) = cond.dims2()?;
        let d = x.dim(1)?;
        let x = x.unsqueeze(1)?.repeat((1, c, 1))?.reshape((b * c, d))?;
        let eye: Vec<f32> = (0..b * c)
            .flat_map(|r| (0..c).map(move |k| if k == r % c { 1.0 } else { 0.0 }))
            .collect();
        let labels = Tensor::from_vec(eye, (b * c, c), x.device())?;
        let e: Vec<f32> = model
            .energy(&x, Some(&labels))?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1()?;
        let truth: Vec<Vec<f32>> = cond.to_dtype(candle_core::DType::F32)?.to_vec2()?;
        let mut weights = vec![0f32; b * c];
        let (mut ce, mut hits) = (0f64, 0usize);
        for (i, t) in truth.iter().enumerate() {
            let y = argmax(t);
            let row = &e[i * c..(i + 1) * c];
            // p = softmax(-E / t), stably.
            let lo = row.iter().copied().fold(f32::INFINITY, f32::min);
            let z: Vec<f64> = row
                .iter()
                .map(|&v| (f64::from(lo - v) / temperature).exp())
                .collect();
            let sum: f64 = z.iter().sum();
            ce -= (z[y] / sum).ln();
            if argmax(&row.iter().map(|v| -v).collect::<Vec<_>>()) == y {
                hits += 1;
            }
            for (k, zk) in z.iter().enumerate() {
                let onehot = if k == y { 1.0 } else { 0.0 };
                weights[i * c + k] = ((onehot - zk / sum) / (b as f64 * temperature)) as f32;
            }
        }
        Ok(Self {
            x,
            labels,
            weights,
            cross_entropy: ce / b.max(1) as f64,
            accuracy: hits as f64 / b.max(1) as f64,
        })
    }

    /// A scalar whose parameter gradient is `scale` times that of the mean
    /// cross-entropy, with `model` the trainable model.
    pub fn surrogate<M: EnergyModel>(&self, model: &M, scale: f64) -> Result<Tensor> {
        let w: Vec<f32> = self.weights.iter().map(|v| v * scale as f32).collect();
        if let Some(r) = model.fused_energy_vjp(&self.x, Some(&self.labels), &|i, _| w[i]) {
            return Ok(r?.1);
        }
        let e = model.energy(&self.x, Some(&self.labels))?;
        let w = Tensor::from_vec(w, e.dims(), e.device())?.to_dtype(e.dtype())?;
        Ok((e * w)?.sum_all()?)
    }
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
        )
        .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{MlpEnergy, MlpEnergyConfig};
    use crate::params::ParamStore;
    use crate::Rng;
    use candle_core::Device;

    /// The surrogate's parameter gradient is the cross-entropy's, computed by
    /// autograd through `log_softmax(-E / T)`; the reported cross-entropy and
    /// accuracy are those of the same energies.
    #[test]
    fn the_surrogate_has_the_cross_entropy_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let (b, c, d) = (6, 3, 4);
        let mut cfg = MlpEnergyConfig::new(d);
        cfg.action_dim = c; // the one-hot label as the conditioning
        cfg.hidden = vec![16, 16];
        let params = ParamStore::new(3, &dev);
        let model = MlpEnergy::init(&cfg, &params)?;
        let mut rng = Rng::new(7);
        let x = Tensor::from_vec(rng.normal_vec(b * d), (b, d), &dev)?;
        let ys: Vec<usize> = (0..b).map(|i| i % c).collect();
        let onehot: Vec<f32> = ys
            .iter()
            .flat_map(|&y| (0..c).map(move |k| if k == y { 1.0 } else { 0.0 }))
            .collect();
        let cond = Tensor::from_vec(onehot, (b, c), &dev)?;
        let t = 0.5;
        let term = LabelContrast::new(&model.frozen(), &x, &cond, t)?;

        let e = model.energy(&term.x, Some(&term.labels))?.reshape((b, c))?;
        let logp = candle_nn::ops::log_softmax(&(e.neg()? / t)?, 1)?;
        let picked = logp.gather(
            &Tensor::from_vec(
                ys.iter().map(|&y| y as u32).collect::<Vec<_>>(),
                (b, 1),
                &dev,
            )?,
            1,
        )?;
        let ce = (picked.sum_all()? / -(b as f64))?;
        assert!((f64::from(ce.to_scalar::<f32>()?) - term.cross_entropy).abs() < 1e-5);
        let e_rows: Vec<Vec<f32>> = e.to_vec2()?;
        let hits = e_rows
            .iter()
            .zip(&ys)
            .filter(|(r, &y)| r.iter().all(|&v| v >= r[y]))
            .count();
        assert_eq!(term.accuracy, hits as f64 / b as f64);

        let want = ce.backward()?;
        let got = term.surrogate(&model, 1.0)?.backward()?;
        for (name, var) in params.trainable() {
            let (Some(a), Some(g)) = (want.get(var.as_tensor()), got.get(var.as_tensor())) else {
                continue;
            };
            let a: Vec<f32> = a.flatten_all()?.to_vec1()?;
            let g: Vec<f32> = g.flatten_all()?.to_vec1()?;
            let scale = a.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            for (x, y) in a.iter().zip(&g) {
                assert!(
                    (x - y).abs() <= 1e-4 * scale + 1e-6,
                    "{name}: {x} against {y}"
                );
            }
        }
        Ok(())
    }
}
