//! How well forecasts match what happened, step by step over the horizon:
//! the Frechet distance between the predicted particles and the true states
//! (the paper's trajectory metric, Figure 13) and the mean squared error of
//! each start's particle mean. Offline evaluation (`ebm-train traj eval`)
//! and the daemon's replay evaluation (`ebm-tools replay-eval`) both score
//! with it, so their numbers compare.

use super::frechet::{frechet_distance, GaussianFit};

/// Per-step errors of a set of forecasts.
#[derive(Debug, Clone, PartialEq)]
pub struct StepErrors {
    /// Frechet distance at each step (NaN where a fit is impossible).
    pub fd: Vec<f64>,
    /// Mean squared error of the particle mean at each step, per dimension.
    pub mse: Vec<f64>,
}

impl StepErrors {
    /// `pred[h]`: the predicted states at step `h`, the particles of each
    /// start in consecutive rows (the same count for every start);
    /// `truth[h]`: the true state of each start, in the same order. Rows
    /// hold `d` floats.
    pub fn of(pred: &[Vec<Vec<f32>>], truth: &[Vec<Vec<f32>>], d: usize) -> Self {
        let mut fd = Vec::with_capacity(truth.len());
        let mut mse = Vec::with_capacity(truth.len());
        for (p, t) in pred.iter().zip(truth) {
            let gp = GaussianFit::of_rows(p.iter().map(Vec::as_slice), d);
            let gt = GaussianFit::of_rows(t.iter().map(Vec::as_slice), d);
            fd.push(match (gp, gt) {
                (Some(a), Some(b)) => frechet_distance(&a, &b),
                _ => f64::NAN,
            });
            let per = p.len() / t.len().max(1);
            let mut err = 0.0;
            for (j, tr) in t.iter().enumerate() {
                for k in 0..d {
                    let m: f64 =
                        (0..per).map(|q| f64::from(p[j * per + q][k])).sum::<f64>() / per as f64;
                    err += (m - f64::from(tr[k])).powi(2);
                }
            }
            mse.push(err / (t.len() * d).max(1) as f64);
        }
        Self { fd, mse }
    }

    /// The mean Frechet distance over the horizon.
    pub fn average_fd(&self) -> f64 {
        self.fd.iter().sum::<f64>() / self.fd.len().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two starts, two particles each, one dimension, by hand: step 1
    /// predicts {0, 2} and {4, 6} for truths 1 and 5 (means right, spread
    /// 5 against 4: FD = 5 + 4 - 2 sqrt(20)); step 2 predicts {1, 1} and
    /// {3, 3} for truths 0 and 2 (one off: FD = 1 + 1 + 1 - 2, MSE 1).
    #[test]
    fn errors_match_hand_computed_values() {
        let rows = |v: &[f32]| v.iter().map(|&x| vec![x]).collect::<Vec<_>>();
        let pred = vec![rows(&[0.0, 2.0, 4.0, 6.0]), rows(&[1.0, 1.0, 3.0, 3.0])];
        let truth = vec![rows(&[1.0, 5.0]), rows(&[0.0, 2.0])];
        let e = StepErrors::of(&pred, &truth, 1);
        assert!((e.fd[0] - (9.0 - 2.0 * 20f64.sqrt())).abs() < 1e-9, "{e:?}");
        assert!((e.fd[1] - 1.0).abs() < 1e-9, "{e:?}");
        assert_eq!(e.mse, vec![0.0, 1.0]);
        assert!((e.average_fd() - (e.fd[0] + 1.0) / 2.0).abs() < 1e-12);
    }
}
