//! Transitions of recorded trajectories as positive data: conditioning
//! `[s_{t-k+1}, ..., s_t (, a_t)]`, sample `s_{t+1}`, all z-scored with
//! statistics fitted on the training split (states and actions separately).

use candle_core::{Device, Tensor};
use ebm_core::checkpoint::Normalization;
use ebm_core::models::{LinearPrior, RidgeFit};
use ebm_core::{PositiveSource, Rng};
use ndarray::{Array3, Axis};

/// Per-dimension z-scoring; the standard deviation has a floor so that
/// constant dimensions do not blow up.
pub fn fit_normalization(arr: &Array3<f32>, ids: &[usize]) -> Normalization {
    let d = arr.len_of(Axis(2));
    let mut sum = vec![0.0f64; d];
    let mut sq = vec![0.0f64; d];
    let mut n = 0.0f64;
    for &i in ids {
        for row in arr.index_axis(Axis(0), i).rows() {
            for (j, &v) in row.iter().enumerate() {
                sum[j] += f64::from(v);
                sq[j] += f64::from(v) * f64::from(v);
            }
            n += 1.0;
        }
    }
    let n = n.max(1.0);
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| Normalization::floored_std((q / n - m * m).max(0.0).sqrt() as f32))
        .collect();
    Normalization {
        mean: mean.into_iter().map(|m| m as f32).collect(),
        std,
    }
}

/// Applies `z = (x - mean) / std` along the last axis.
pub fn normalize(arr: &Array3<f32>, norm: &Normalization) -> Array3<f32> {
    let mut out = arr.clone();
    for mut row in out.rows_mut() {
        for ((v, m), s) in row.iter_mut().zip(&norm.mean).zip(&norm.std) {
            *v = (*v - m) / s;
        }
    }
    out
}

/// Per-dimension standard deviation of one step's change `s_{t+1} - s_t`
/// over the given trajectories (normalised units), floored at `floor`: the
/// `delta_scale` of change-space models.
pub fn fit_delta_scale(states: &Array3<f32>, ids: &[usize], floor: f32) -> Vec<f32> {
    let (t_len, d) = (states.len_of(Axis(1)), states.len_of(Axis(2)));
    let mut sq = vec![0.0f64; d];
    let mut n = 0.0f64;
    for &i in ids {
        let tr = states.index_axis(Axis(0), i);
        for t in 0..t_len.saturating_sub(1) {
            for j in 0..d {
                sq[j] += f64::from(tr[[t + 1, j]] - tr[[t, j]]).powi(2);
            }
            n += 1.0;
        }
    }
    sq.iter()
        .map(|q| ((q / n.max(1.0)).sqrt() as f32).max(floor))
        .collect()
}

/// At most this many transitions feed the linear prior's fit (evenly spread).
const PRIOR_FIT_TRANSITIONS: usize = 400_000;
/// Added to the diagonal of the residual's correlation before whitening: the
/// quaternion's components are nearly dependent.
const WHITEN_SHRINK: f64 = 1e-3;

/// The linear prior of the change of state (ridge regression on `data`'s
/// conditioning rows, `ridge` on the covariance diagonal of the normalised
/// inputs, with the whitening of its residual's correlation) and the spread
/// of its residual per dimension (floored at `floor`): the `prior` and
/// `delta_scale` of a residual-space model.
pub fn fit_prior(
    data: &TransitionData,
    ridge: f64,
    floor: f32,
) -> Result<(LinearPrior, Vec<f32>), ebm_core::CoreError> {
    let (_, t_len, d) = data.dims();
    let k = data.context_len;
    let rows: Vec<(usize, usize)> = data
        .ids
        .iter()
        .flat_map(|&i| (k - 1..t_len.saturating_sub(1)).map(move |t| (i, t)))
        .collect();
    let stride = rows.len().div_ceil(PRIOR_FIT_TRANSITIONS).max(1);
    // The conditioning row and the raw change (not the model's sample, see
    // `TransitionData::transition`: the prior is what is being fitted).
    let cond_and_change = |&(i, t): &(usize, usize)| {
        let mut c = Vec::new();
        data.cond_row(i, t, &mut c);
        let tr = data.states.index_axis(Axis(0), i);
        let change: Vec<f32> = (0..d).map(|j| tr[[t + 1, j]] - tr[[t, j]]).collect();
        (c, change)
    };
    let mut fit = RidgeFit::new(data.cond_dim(), d);
    for r in rows.iter().step_by(stride) {
        let (c, y) = cond_and_change(r);
        fit.add(&c, &y);
    }
    let mut prior = fit.solve(ridge)?;
    // The residual's covariance, for its spreads and whitening.
    let mut cov = vec![0.0f64; d * d];
    let mut n = 0.0f64;
    for r in rows.iter().step_by(stride) {
        let (c, y) = cond_and_change(r);
        let res: Vec<f64> = y
            .iter()
            .zip(prior.predict_row(&c))
            .map(|(yj, pj)| f64::from(yj - pj))
            .collect();
        for (i, ri) in res.iter().enumerate() {
            for (q, rj) in cov[i * d..(i + 1) * d].iter_mut().zip(&res) {
                *q += ri * rj;
            }
        }
        n += 1.0;
    }
    cov.iter_mut().for_each(|q| *q /= n.max(1.0));
    let scale = prior.whiten_with(&cov, floor, WHITEN_SHRINK)?;
    Ok((prior, scale))
}

/// Normalised trajectories and which of them to draw from.
pub struct TransitionData {
    /// `[N, T, D]`, normalised.
    pub states: Array3<f32>,
    /// `[N, T, A]`, normalised; `None` for unconditional models.
    pub actions: Option<Array3<f32>>,
    pub ids: Vec<usize>,
    pub context_len: usize,
    /// Half-width of the uniform noise around the last context state where
    /// fresh chains start (the rollout's `init_noise`), in sample units.
    pub start_noise: f64,
    /// Where warm-started forecasts begin: this share of the fresh chains
    /// starts at its positive (the true next state) plus uniform noise of
    /// half-width `data_start_noise`, so that chains begun near the answer
    /// learn to stay there (0: every chain starts at the last state).
    pub data_start_share: f64,
    pub data_start_noise: f64,
    /// Change-space models: samples are `(s_{t+1} - s_t) / delta_scale`.
    pub delta_scale: Option<Vec<f32>>,
    /// With `delta_scale`: samples are `(s_{t+1} - s_t - prior(c)) /
    /// delta_scale`, `c` the clean conditioning row.
    pub prior: Option<LinearPrior>,
    /// Standard deviation of Gaussian noise added to the context states of
    /// training transitions (not to the target, nor to actions): models then
    /// learn to pull slightly-off contexts back, which keeps long rollouts
    /// from their own predictions on the data (0: off).
    pub context_noise: f32,
}

impl TransitionData {
    fn dims(&self) -> (usize, usize, usize) {
        let s = self.states.shape();
        (s[0], s[1], s[2])
    }

    /// Conditioning row for trajectory `i` predicting step `t + 1`.
    pub fn cond_row(&self, i: usize, t: usize, out: &mut Vec<f32>) {
        let k = self.context_len;
        for tt in t + 1 - k..=t {
            out.extend(self.states.index_axis(Axis(0), i).row(tt).iter());
        }
        if let Some(a) = &self.actions {
            out.extend(a.index_axis(Axis(0), i).row(t).iter());
        }
    }
}

impl TransitionData {
    /// The sample of trajectory `i`'s transition `t -> t + 1` (the next
    /// state, or in change space its scaled, whitened residual), its clean
    /// conditioning row appended to `cond`.
    pub fn transition(&self, i: usize, t: usize, cond: &mut Vec<f32>) -> Vec<f32> {
        let d = self.dims().2;
        let at = cond.len();
        self.cond_row(i, t, cond);
        let tr = self.states.index_axis(Axis(0), i);
        let Some(sc) = &self.delta_scale else {
            return tr.row(t + 1).to_vec();
        };
        let predicted = self.prior.as_ref().map(|p| p.predict_row(&cond[at..]));
        let mut r: Vec<f32> = (0..d)
            .map(|j| {
                let change = tr[[t + 1, j]] - tr[[t, j]];
                (change - predicted.as_ref().map_or(0.0, |p| p[j])) / sc[j]
            })
            .collect();
        if let Some(prior) = &self.prior {
            prior.whiten_row(&mut r);
        }
        r
    }
}

impl PositiveSource for TransitionData {
    fn sample_dim(&self) -> usize {
        self.dims().2
    }

    fn cond_dim(&self) -> usize {
        self.context_len * self.dims().2 + self.actions.as_ref().map_or(0, |a| a.len_of(Axis(2)))
    }

    fn batch(
        &self,
        n: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let (_, t_len, d) = self.dims();
        let k = self.context_len;
        if t_len < k + 1 || self.ids.is_empty() {
            candle_core::bail!(
                "trajectories of {t_len} steps cannot give transitions with context {k}"
            );
        }
        let mut x: Vec<f32> = Vec::with_capacity(n * d);
        let mut c = Vec::with_capacity(n * self.cond_dim());
        for _ in 0..n {
            let i = self.ids[rng.below(self.ids.len())];
            let t = k - 1 + rng.below(t_len - k);
            let at = c.len();
            let sample = self.transition(i, t, &mut c);
            x.extend(sample);
            if self.context_noise > 0.0 {
                let noise = rng.normal_vec(k * d);
                for (v, z) in c[at..at + k * d].iter_mut().zip(noise) {
                    *v += self.context_noise * z;
                }
            }
        }
        let cd = self.cond_dim();
        Ok((
            Tensor::from_vec(x, (n, d), device)?,
            Some(Tensor::from_vec(c, (n, cd), device)?),
        ))
    }

    fn fresh_starts(
        &self,
        positives: &Tensor,
        cond: Option<&Tensor>,
        rng: &mut Rng,
    ) -> candle_core::Result<Option<Tensor>> {
        let Some(cond) = cond else { return Ok(None) };
        let d = self.dims().2;
        let n = cond.dim(0)?;
        let jitter = Tensor::from_vec(
            rng.uniform_vec(n * d, -self.start_noise, self.start_noise),
            (n, d),
            cond.device(),
        )?;
        let starts = if self.delta_scale.is_some() {
            // The last state is the zero change.
            jitter
        } else {
            (cond.narrow(1, (self.context_len - 1) * d, d)? + jitter)?
        };
        // Positives come in random order: the first rows are a random share.
        let m = ((self.data_start_share * n as f64).round() as usize).min(n);
        if m == 0 {
            return Ok(Some(starts));
        }
        let noise = self.data_start_noise;
        let near = (positives.narrow(0, 0, m)?
            + Tensor::from_vec(rng.uniform_vec(m * d, -noise, noise), (m, d), cond.device())?)?;
        Ok(Some(Tensor::cat(
            &[&near, &starts.narrow(0, m, n - m)?],
            0,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_pair_context_and_action_with_the_next_state() -> anyhow::Result<()> {
        // One trajectory, states s_t = [t, 10 t], actions a_t = [100 t].
        let states = Array3::from_shape_fn((1, 4, 2), |(_, t, j)| {
            (t * if j == 0 { 1 } else { 10 }) as f32
        });
        let actions = Array3::from_shape_fn((1, 4, 1), |(_, t, _)| (100 * t) as f32);
        let data = TransitionData {
            states,
            actions: Some(actions),
            ids: vec![0],
            context_len: 2,
            start_noise: 0.0,
            data_start_share: 0.0,
            data_start_noise: 0.0,
            delta_scale: None,
            prior: None,
            context_noise: 0.0,
        };
        assert_eq!(data.cond_dim(), 5);
        let (x, c) = data.batch(50, &mut Rng::new(1), &Device::Cpu)?;
        let x: Vec<Vec<f32>> = x.to_vec2()?;
        let c: Vec<Vec<f32>> = c.expect("conditioning").to_vec2()?;
        for (x, c) in x.iter().zip(&c) {
            let t = c[2]; // s_t[0] = t
            assert_eq!(c, &vec![t - 1.0, 10.0 * (t - 1.0), t, 10.0 * t, 100.0 * t]);
            assert_eq!(x, &vec![t + 1.0, 10.0 * (t + 1.0)]);
        }
        // In change space the samples are the scaled step: [1, 10] / [2, 5].
        let scale = fit_delta_scale(&data.states, &[0], 1e-3);
        assert_eq!(scale, vec![1.0, 10.0]);
        let data = TransitionData {
            delta_scale: Some(vec![2.0, 5.0]),
            ..data
        };
        let (x, _) = data.batch(5, &mut Rng::new(2), &Device::Cpu)?;
        let x: Vec<Vec<f32>> = x.to_vec2()?;
        assert!(x.iter().all(|r| r == &vec![0.5, 2.0]), "{x:?}");
        Ok(())
    }

    #[test]
    fn residual_space_samples_what_the_fitted_linear_prior_leaves() -> anyhow::Result<()> {
        // s_{t+1} = s_t + 0.5 a_t + 0.1 + e_t with e_t = +-0.01 alternating.
        let (n, t_len) = (3, 60);
        let mut rng = Rng::new(3);
        let a: Vec<f32> = rng.normal_vec(n * t_len);
        let mut states = Array3::zeros((n, t_len, 1));
        for i in 0..n {
            for t in 1..t_len {
                let e = if t % 2 == 0 { 0.01 } else { -0.01 };
                states[[i, t, 0]] = states[[i, t - 1, 0]] + 0.5 * a[i * t_len + t - 1] + 0.1 + e;
            }
        }
        let actions = Array3::from_shape_vec((n, t_len, 1), a)?;
        let data = TransitionData {
            states,
            actions: Some(actions),
            ids: (0..n).collect(),
            context_len: 1,
            start_noise: 0.0,
            data_start_share: 0.0,
            data_start_noise: 0.0,
            delta_scale: None,
            prior: None,
            context_noise: 0.0,
        };
        let (prior, scale) = fit_prior(&data, 1e-9, 1e-6)?;
        assert!((prior.weight[1] - 0.5).abs() < 1e-3, "{prior:?}");
        assert!((prior.bias[0] - 0.1).abs() < 5e-3, "{prior:?}");
        assert!((scale[0] - 0.01).abs() < 1e-3, "{scale:?}");
        let data = TransitionData {
            delta_scale: Some(scale),
            prior: Some(prior),
            ..data
        };
        let (x, _) = data.batch(200, &mut Rng::new(4), &Device::Cpu)?;
        for v in x.flatten_all()?.to_vec1::<f32>()? {
            assert!(
                (v.abs() - 1.0).abs() < 0.2,
                "a residual of +-1 scale, got {v}"
            );
        }
        Ok(())
    }

    #[test]
    fn normalization_gives_zero_mean_unit_variance_on_the_fitted_rows() {
        let arr = Array3::from_shape_fn((2, 3, 2), |(i, t, j)| {
            (i * 3 + t) as f32 * if j == 0 { 1.0 } else { 0.0 }
        });
        let norm = fit_normalization(&arr, &[0, 1]);
        assert!((norm.mean[0] - 2.5).abs() < 1e-6);
        assert_eq!(norm.std[1], 1e-3); // constant dimension: floored
        let z = normalize(&arr, &norm);
        let col: Vec<f32> = z.index_axis(Axis(2), 0).iter().copied().collect();
        let mean: f32 = col.iter().sum::<f32>() / 6.0;
        let var: f32 = col.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 6.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
    }
}
