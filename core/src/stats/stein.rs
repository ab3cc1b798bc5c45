//! A window test for OOD scores from Stein's identity.
//!
//! For a density `p(x) ∝ exp(-E(x))` and a smooth `f` that vanishes fast
//! enough, integration by parts gives `E_p[f(x) ∂_j E(x)] = E_p[∂_j f(x)]`;
//! with `f(x) = x_j`, `E_p[x_j ∂_j E(x)] = 1` for every dimension `j` (for a
//! conditional model, given any context). The **Stein features**
//! `x_j ∂_j E(x)` need only the energy's gradient, which the sampler computes
//! anyway, never its normalising constant, and they react to a change of the
//! data's spread or shape in any single dimension, where a transition's
//! energy sums all dimensions into one number. Under a heavy-tailed energy
//! they grow like `|x_j|`, so a few outliers do not swamp a window.
//!
//! A window's mean feature vector `m` is compared with those of training
//! windows by a Hotelling statistic `(m - mu)^T S^-1 (m - mu)`, the
//! **discrepancy**: `mu` and `S` fitted on one set of training windows, its
//! percentiles taken on another. The fitted `mu` stands in for the identity's
//! ones: a learned energy is not the data's exact density, and the test asks
//! whether a window is unlike the training windows under *this* model.

use serde::{Deserialize, Serialize};

use crate::stats::linalg::spd_inverse;
use crate::CoreError;

/// The covariance is shrunk towards its diagonal, `S + SHRINKAGE diag(S)`,
/// so that directions the fitting windows barely explore do not dominate.
pub const SHRINKAGE: f64 = 0.1;

/// The fitted test: what a checkpoint stores (manifest key
/// [`crate::checkpoint::STEIN_WINDOW`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SteinWindow {
    /// Transitions per window.
    pub window: usize,
    /// Mean over the fitting windows of their mean features (`D`).
    pub mean: Vec<f32>,
    /// Inverse of the shrunk covariance of those means (`D x D`, row-major).
    pub precision: Vec<f32>,
    /// 0th to 100th percentiles of the discrepancy of the calibration
    /// windows (none of them used in the fit).
    pub percentiles: Vec<f32>,
}

/// Stein features of transitions: `x_j * g_j` for samples `x` and the
/// energy's gradient `g` there (same row-major layout in and out).
pub fn features(x: &[f32], grad: &[f32]) -> Vec<f32> {
    assert_eq!(
        x.len(),
        grad.len(),
        "Stein features: samples and gradients differ in length"
    );
    x.iter().zip(grad).map(|(a, b)| a * b).collect()
}

/// Column means of `rows` (at least one, each `dim` long).
pub fn mean_of<'a>(rows: impl IntoIterator<Item = &'a [f32]>, dim: usize) -> Vec<f32> {
    let mut sum = vec![0.0f64; dim];
    let mut n = 0usize;
    for r in rows {
        assert_eq!(
            r.len(),
            dim,
            "Stein features: a row of {} for {dim} dimensions",
            r.len()
        );
        for (s, v) in sum.iter_mut().zip(r) {
            *s += f64::from(*v);
        }
        n += 1;
    }
    assert!(n > 0, "the mean of no rows");
    sum.into_iter().map(|s| (s / n as f64) as f32).collect()
}

impl SteinWindow {
    /// Fits `mu` and the shrunk covariance on the window means `fit`, and the
    /// discrepancy's percentiles on the window means `calibrate`.
    pub fn fit(window: usize, fit: &[Vec<f32>], calibrate: &[Vec<f32>]) -> Result<Self, CoreError> {
        let bad = |m: String| Err(CoreError::config(format!("Stein window test: {m}")));
        if window == 0 || fit.len() < 2 || calibrate.is_empty() {
            return bad(format!(
                "needs a window of at least one transition, two fitting windows and one to calibrate (window {window}, {} and {})",
                fit.len(),
                calibrate.len()
            ));
        }
        let d = fit[0].len();
        if fit
            .iter()
            .chain(calibrate)
            .any(|m| m.len() != d || m.iter().any(|v| !v.is_finite()))
        {
            return bad(format!("window means must all have {d} finite entries"));
        }
        let n = fit.len() as f64;
        let mu: Vec<f64> = (0..d)
            .map(|j| fit.iter().map(|m| f64::from(m[j])).sum::<f64>() / n)
            .collect();
        let mut cov = vec![0.0f64; d * d];
        for m in fit {
            for i in 0..d {
                let di = f64::from(m[i]) - mu[i];
                for j in 0..d {
                    cov[i * d + j] += di * (f64::from(m[j]) - mu[j]);
                }
            }
        }
        let scale = (0..d).map(|i| cov[i * d + i]).sum::<f64>() / (d as f64 * (n - 1.0));
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] /= n - 1.0;
            }
            // A feature constant over the fitting windows keeps a finite, large weight.
            cov[i * d + i] = cov[i * d + i] * (1.0 + SHRINKAGE) + 1e-9 * scale.max(1e-30);
        }
        let precision = match spd_inverse(&cov, d) {
            Ok(p) => p,
            Err(e) => return bad(format!("the covariance is singular at row {}", e.pivot)),
        };
        let mut test = Self {
            window,
            mean: mu.iter().map(|&v| v as f32).collect(),
            precision: precision.iter().map(|&v| v as f32).collect(),
            percentiles: Vec::new(),
        };
        let scores = calibrate.iter().map(|m| test.discrepancy(m)).collect();
        test.percentiles = crate::stats::metrics::percentiles(scores);
        Ok(test)
    }

    /// Feature dimensions.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// `(m - mu)^T S^-1 (m - mu)` of a window's mean features `m`.
    pub fn discrepancy(&self, m: &[f32]) -> f32 {
        let d = self.dim();
        assert_eq!(
            m.len(),
            d,
            "Stein discrepancy: {} features for {d}",
            m.len()
        );
        let diff: Vec<f64> = m
            .iter()
            .zip(&self.mean)
            .map(|(a, b)| f64::from(a - b))
            .collect();
        let mut q = 0.0;
        for i in 0..d {
            let row = &self.precision[i * d..(i + 1) * d];
            q += diff[i]
                * row
                    .iter()
                    .zip(&diff)
                    .map(|(p, v)| f64::from(*p) * v)
                    .sum::<f64>();
        }
        q as f32
    }

    /// The percentile of a discrepancy among the calibration windows.
    pub fn percentile(&self, discrepancy: f32) -> f32 {
        crate::stats::metrics::percentile_in(&self.percentiles, discrepancy)
    }

    /// Whether a stored test fits a model with `dim` features: the sizes,
    /// finite numbers and sorted percentiles; the error names what is wrong.
    pub fn check(&self, dim: usize) -> Result<(), String> {
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if self.window == 0 {
            return Err("a window of 0 transitions".into());
        }
        if self.mean.len() != dim || self.precision.len() != dim * dim {
            return Err(format!(
                "{} means and {} precision entries for a model with {dim} dimensions",
                self.mean.len(),
                self.precision.len()
            ));
        }
        if self.percentiles.len() != 101 || !self.percentiles.windows(2).all(|w| w[0] <= w[1]) {
            return Err("percentiles must be 101 sorted numbers".into());
        }
        if !(finite(&self.mean) && finite(&self.precision) && finite(&self.percentiles)) {
            return Err("a non-finite number".into());
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "stein_tests.rs"]
mod tests;
