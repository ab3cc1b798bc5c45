//! A linear one-step predictor of the change of state, `cond W + b`, fitted
//! by ridge regression. A change-space [`MlpEnergy`](super::MlpEnergy) with a
//! prior samples the scaled residual of this prediction: its energy wells then
//! sit at the scale of what the linear dynamics leave unexplained, which for
//! nearly deterministic joints is 10-30x narrower than one step's change.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::stats::linalg::{cholesky_in_place, cholesky_solve};
use crate::CoreError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearPrior {
    /// `cond_dim x state_dim`, row-major.
    pub weight: Vec<f32>,
    /// `state_dim`.
    pub bias: Vec<f32>,
    /// Lower-triangular `L` (`state_dim x state_dim`, row-major) with `L L^T`
    /// the correlation of the scaled residual `r`: samples are `L^{-1} r`,
    /// uncorrelated with unit spread. Empty: `r` itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub correlation_cholesky: Vec<f32>,
}

impl LinearPrior {
    pub fn state_dim(&self) -> usize {
        self.bias.len()
    }

    pub fn validate(
        &self,
        cond_dim: usize,
        state_dim: usize,
    ) -> std::result::Result<(), CoreError> {
        if self.bias.len() != state_dim || self.weight.len() != cond_dim * state_dim {
            return Err(CoreError::config(format!(
                "mlp.prior needs a {cond_dim} x {state_dim} weight and {state_dim} biases, got {} and {}",
                self.weight.len(),
                self.bias.len()
            )));
        }
        let l = &self.correlation_cholesky;
        if !l.is_empty()
            && (l.len() != state_dim * state_dim
                || (0..state_dim).any(|i| !(l[i * state_dim + i] > 0.0)))
        {
            return Err(CoreError::config(format!(
                "mlp.prior.correlation_cholesky must be a {state_dim} x {state_dim} lower-triangular matrix with a positive diagonal"
            )));
        }
        if self
            .weight
            .iter()
            .chain(&self.bias)
            .chain(l)
            .any(|v| !v.is_finite())
        {
            return Err(CoreError::config("mlp.prior has a non-finite entry"));
        }
        Ok(())
    }

    /// The predicted change for one conditioning row.
    pub fn predict_row(&self, cond: &[f32]) -> Vec<f32> {
        let d = self.state_dim();
        let mut out = self.bias.clone();
        for (c, w) in cond.iter().zip(self.weight.chunks_exact(d)) {
            for (o, wj) in out.iter_mut().zip(w) {
                *o += c * wj;
            }
        }
        out
    }

    /// `L` as a tensor, `None` when the residual is not whitened.
    fn cholesky(&self, dev: &candle_core::Device) -> Result<Option<Tensor>> {
        let d = self.state_dim();
        (!self.correlation_cholesky.is_empty())
            .then(|| Tensor::from_slice(&self.correlation_cholesky, (d, d), dev))
            .transpose()
    }

    /// Samples `L^{-1} r` of scaled residual rows `r: [B, D]`.
    pub fn whiten(&self, r: &Tensor) -> Result<Tensor> {
        if self.correlation_cholesky.is_empty() {
            return Ok(r.clone());
        }
        // Row j of `m` is L^{-1} e_j, so (r m)_i = sum_j (L^{-1})_ij r_j.
        let d = self.state_dim();
        let mut m = vec![0f32; d * d];
        for (j, row) in m.chunks_exact_mut(d).enumerate() {
            row[j] = 1.0;
            self.whiten_row(row);
        }
        let m = Tensor::from_vec(m, (d, d), r.device())?.to_dtype(r.dtype())?;
        r.matmul(&m)
    }

    /// Scaled residual rows `L x` of samples `x: [B, D]`.
    pub fn unwhiten(&self, x: &Tensor) -> Result<Tensor> {
        match self.cholesky(x.device())? {
            None => Ok(x.clone()),
            Some(l) => x.matmul(&l.t()?.to_dtype(x.dtype())?),
        }
    }

    /// `r <- L^{-1} r` for one scaled residual row.
    pub fn whiten_row(&self, r: &mut [f32]) {
        let l = &self.correlation_cholesky;
        if l.is_empty() {
            return;
        }
        let d = r.len();
        for i in 0..d {
            let mut v = r[i];
            for k in 0..i {
                v -= l[i * d + k] * r[k];
            }
            r[i] = v / l[i * d + i];
        }
    }

    /// Whitens with the residual covariance `cov` (`state_dim x state_dim`,
    /// of the unscaled residual): returns the per-dimension spreads (floored
    /// at `floor`) and stores the Cholesky factor of the correlation they
    /// leave, `shrink` added to its diagonal to keep it well conditioned.
    pub fn whiten_with(
        &mut self,
        cov: &[f64],
        floor: f32,
        shrink: f64,
    ) -> std::result::Result<Vec<f32>, CoreError> {
        let d = self.state_dim();
        let scale: Vec<f32> = (0..d)
            .map(|i| (cov[i * d + i].max(0.0).sqrt() as f32).max(floor))
            .collect();
        let mut corr: Vec<f64> = (0..d * d)
            .map(|k| cov[k] / (f64::from(scale[k / d]) * f64::from(scale[k % d])))
            .collect();
        for i in 0..d {
            corr[i * d + i] += shrink;
        }
        cholesky_in_place(&mut corr, d).map_err(|_| {
            CoreError::config("the residual's correlation is not positive definite")
        })?;
        self.correlation_cholesky = (0..d * d)
            .map(|k| if k % d <= k / d { corr[k] as f32 } else { 0.0 })
            .collect();
        Ok(scale)
    }

    /// The predicted changes for conditioning rows `[B, cond_dim]`.
    pub fn predict(&self, cond: &Tensor) -> Result<Tensor> {
        let d = self.state_dim();
        let dev = cond.device();
        let w = Tensor::from_slice(&self.weight, (self.weight.len() / d, d), dev)?;
        let b = Tensor::from_slice(&self.bias, (1, d), dev)?;
        cond.matmul(&w)?.broadcast_add(&b)
    }
}

/// Streaming sums for a ridge regression `y ~ x W + b` (the bias is not
/// penalised): feed rows with [`RidgeFit::add`], then [`RidgeFit::solve`].
pub struct RidgeFit {
    p: usize,
    d: usize,
    n: f64,
    sx: Vec<f64>,
    sy: Vec<f64>,
    /// Upper triangle of `x^T x`, `p x p`.
    xtx: Vec<f64>,
    xty: Vec<f64>,
}

impl RidgeFit {
    pub fn new(p: usize, d: usize) -> Self {
        Self {
            p,
            d,
            n: 0.0,
            sx: vec![0.0; p],
            sy: vec![0.0; d],
            xtx: vec![0.0; p * p],
            xty: vec![0.0; p * d],
        }
    }

    pub fn add(&mut self, x: &[f32], y: &[f32]) {
        assert_eq!(
            (x.len(), y.len()),
            (self.p, self.d),
            "RidgeFit::add: row sizes"
        );
        self.n += 1.0;
        for (i, &xi) in x.iter().enumerate() {
            let xi = f64::from(xi);
            self.sx[i] += xi;
            let row = &mut self.xtx[i * self.p..(i + 1) * self.p];
            for (r, &xj) in row[i..].iter_mut().zip(&x[i..]) {
                *r += xi * f64::from(xj);
            }
            for (r, &yj) in self.xty[i * self.d..(i + 1) * self.d].iter_mut().zip(y) {
                *r += xi * f64::from(yj);
            }
        }
        for (s, &yj) in self.sy.iter_mut().zip(y) {
            *s += f64::from(yj);
        }
    }

    /// Solves `(C_xx + ridge I) W = C_xy` on the centred covariances, with
    /// `b = mean(y) - mean(x) W`.
    pub fn solve(&self, ridge: f64) -> std::result::Result<LinearPrior, CoreError> {
        let (p, d, n) = (self.p, self.d, self.n);
        if n < 2.0 {
            return Err(CoreError::config(
                "a linear prior needs at least two transitions",
            ));
        }
        let mx: Vec<f64> = self.sx.iter().map(|s| s / n).collect();
        let my: Vec<f64> = self.sy.iter().map(|s| s / n).collect();
        let mut a = vec![0.0; p * p];
        for i in 0..p {
            for j in i..p {
                let c = self.xtx[i * p + j] / n - mx[i] * mx[j];
                a[i * p + j] = c;
                a[j * p + i] = c;
            }
            a[i * p + i] += ridge;
        }
        let mut w: Vec<f64> = (0..p * d)
            .map(|k| self.xty[k] / n - mx[k / d] * my[k % d])
            .collect();
        cholesky_solve(&mut a, &mut w, p, d).map_err(|_| {
            CoreError::config("the linear prior's normal equations are singular: raise the ridge")
        })?;
        let bias = (0..d)
            .map(|j| (my[j] - (0..p).map(|i| mx[i] * w[i * d + j]).sum::<f64>()) as f32)
            .collect();
        Ok(LinearPrior {
            weight: w.into_iter().map(|v| v as f32).collect(),
            bias,
            correlation_cholesky: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    #[test]
    fn ridge_fit_recovers_a_linear_map_and_its_bias() {
        let (p, d) = (4, 3);
        let w_true: Vec<f32> = (0..p * d).map(|k| (k as f32 * 0.37).sin()).collect();
        let b_true = [0.5f32, -1.0, 2.0];
        let truth = LinearPrior {
            weight: w_true.clone(),
            bias: b_true.to_vec(),
            correlation_cholesky: Vec::new(),
        };
        let mut rng = Rng::new(7);
        let mut fit = RidgeFit::new(p, d);
        for _ in 0..2000 {
            let x: Vec<f32> = rng.normal_vec(p).iter().map(|v| v * 2.0 + 1.0).collect();
            let noise = rng.normal_vec(d);
            let y: Vec<f32> = truth
                .predict_row(&x)
                .iter()
                .zip(noise)
                .map(|(v, z)| v + 0.01 * z)
                .collect();
            fit.add(&x, &y);
        }
        let got = fit.solve(1e-9).unwrap();
        for (g, t) in got.weight.iter().zip(&w_true) {
            assert!((g - t).abs() < 2e-3, "weight {g} vs {t}");
        }
        for (g, t) in got.bias.iter().zip(&b_true) {
            assert!((g - t).abs() < 5e-3, "bias {g} vs {t}");
        }
    }

    #[test]
    fn ridge_shrinks_towards_zero_and_singular_systems_are_errors() {
        let mut fit = RidgeFit::new(2, 1);
        // x's second column copies the first: singular without a ridge.
        for i in 0..50 {
            let v = i as f32 * 0.1;
            fit.add(&[v, v], &[2.0 * v]);
        }
        assert!(fit.solve(0.0).is_err());
        let loose = fit.solve(1e-6).unwrap();
        // The ridge splits the weight evenly between the copies.
        assert!((loose.weight[0] - 1.0).abs() < 1e-3 && (loose.weight[1] - 1.0).abs() < 1e-3);
        let tight = fit.solve(1e3).unwrap();
        assert!(tight.weight[0].abs() < 0.01, "{:?}", tight.weight);
    }

    #[test]
    fn tensor_and_row_predictions_agree() {
        let prior = LinearPrior {
            weight: vec![1.0, 2.0, -1.0, 0.5, 0.0, 3.0],
            bias: vec![0.1, -0.2],
            correlation_cholesky: Vec::new(),
        };
        prior.validate(3, 2).unwrap();
        assert!(prior.validate(2, 2).is_err());
        let rows = [[1.0f32, 2.0, 3.0], [-1.0, 0.5, 0.0]];
        let t = Tensor::from_slice(rows.as_flattened(), (2, 3), &candle_core::Device::Cpu).unwrap();
        let got = prior.predict(&t).unwrap().to_vec2::<f32>().unwrap();
        for (r, g) in rows.iter().zip(&got) {
            let want = prior.predict_row(r);
            assert!(
                g.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6),
                "{g:?} vs {want:?}"
            );
        }
        let by_hand = [1.0 - 2.0 + 0.0 + 0.1, 2.0 + 1.0 + 9.0 - 0.2];
        assert!(prior
            .predict_row(&rows[0])
            .iter()
            .zip(by_hand)
            .all(|(a, b)| (a - b).abs() < 1e-6));
    }

    #[test]
    fn whitening_decorrelates_and_unwhitening_inverts_it() {
        // Residuals r = [z1, 0.8 z1 + 0.6 z2] * [2, 0.5]: correlation 0.8.
        let mut rng = Rng::new(11);
        let n = 20_000;
        let mut rows = Vec::with_capacity(n * 2);
        let mut cov = [0.0f64; 4];
        for _ in 0..n {
            let z = rng.normal_vec(2);
            let r = [2.0 * z[0], 0.5 * (0.8 * z[0] + 0.6 * z[1])];
            for i in 0..2 {
                for j in 0..2 {
                    cov[i * 2 + j] += f64::from(r[i] * r[j]) / n as f64;
                }
            }
            rows.extend(r);
        }
        let mut prior = LinearPrior {
            weight: vec![0.0; 2],
            bias: vec![0.0; 2],
            correlation_cholesky: Vec::new(),
        };
        let scale = prior.whiten_with(&cov, 1e-6, 0.0).unwrap();
        prior.validate(1, 2).unwrap();
        assert!(
            (scale[0] - 2.0).abs() < 0.05 && (scale[1] - 0.5).abs() < 0.02,
            "{scale:?}"
        );
        let l = &prior.correlation_cholesky;
        assert_eq!(l[1], 0.0, "upper triangle is zero");
        assert!(
            (l[2] - 0.8).abs() < 0.02 && (l[3] - 0.6).abs() < 0.02,
            "{l:?}"
        );
        // Whitened samples: unit variances, no correlation.
        let scaled: Vec<f32> = rows
            .chunks_exact(2)
            .flat_map(|r| [r[0] / scale[0], r[1] / scale[1]])
            .collect();
        let dev = candle_core::Device::Cpu;
        let t = Tensor::from_vec(scaled.clone(), (n, 2), &dev).unwrap();
        let x = prior.whiten(&t).unwrap().to_vec2::<f32>().unwrap();
        let m =
            |f: &dyn Fn(&[f32]) -> f32| x.iter().map(|r| f64::from(f(r))).sum::<f64>() / n as f64;
        assert!((m(&|r| r[0] * r[0]) - 1.0).abs() < 0.05);
        assert!((m(&|r| r[1] * r[1]) - 1.0).abs() < 0.05);
        assert!(m(&|r| r[0] * r[1]).abs() < 0.03);
        // Row and tensor whitening agree; unwhitening inverts.
        let mut row = scaled[..2].to_vec();
        prior.whiten_row(&mut row);
        assert!((row[0] - x[0][0]).abs() < 1e-5 && (row[1] - x[0][1]).abs() < 1e-5);
        let back = prior
            .unwhiten(&prior.whiten(&t).unwrap())
            .unwrap()
            .sub(&t)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(back < 1e-4, "round trip error {back}");
    }
}
