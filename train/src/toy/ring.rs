//! A mixture of Gaussians on a ring, as positive data, and the mode statistics
//! used to judge samples.

use candle_core::{Device, Tensor};
use ebm_core::{PositiveSource, Rng};

/// `modes` isotropic Gaussians of standard deviation `sigma`, centred evenly on
/// a circle of `radius`; `active` chooses which modes the data comes from.
#[derive(Debug, Clone)]
pub struct RingMixture {
    pub modes: usize,
    pub radius: f64,
    pub sigma: f64,
    pub active: Vec<usize>,
}

impl RingMixture {
    pub fn new(modes: usize, radius: f64, sigma: f64) -> Self {
        Self {
            modes,
            radius,
            sigma,
            active: (0..modes).collect(),
        }
    }

    /// The same ring restricted to `active` modes.
    pub fn subset(&self, active: &[usize]) -> Self {
        Self {
            active: active.to_vec(),
            ..self.clone()
        }
    }

    /// Centre of mode `i` (angle `2 pi i / modes`).
    pub fn center(&self, i: usize) -> [f64; 2] {
        let a = std::f64::consts::TAU * i as f64 / self.modes as f64;
        [self.radius * a.cos(), self.radius * a.sin()]
    }

    /// Index of the nearest mode and the distance to it.
    pub fn nearest(&self, p: [f64; 2]) -> (usize, f64) {
        (0..self.modes)
            .map(|i| {
                let c = self.center(i);
                (i, ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)).sqrt())
            })
            .fold(
                (0, f64::INFINITY),
                |best, cur| if cur.1 < best.1 { cur } else { best },
            )
    }
}

impl PositiveSource for RingMixture {
    fn sample_dim(&self) -> usize {
        2
    }

    fn cond_dim(&self) -> usize {
        0
    }

    fn batch(
        &self,
        n: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let mut v = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let c = self.center(self.active[rng.below(self.active.len())]);
            v.push((c[0] + self.sigma * rng.normal()) as f32);
            v.push((c[1] + self.sigma * rng.normal()) as f32);
        }
        Ok((Tensor::from_vec(v, (n, 2), device)?, None))
    }
}

/// Where samples fell relative to the ring's modes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModeReport {
    /// Fraction of samples within `3 sigma` of each mode.
    pub per_mode: Vec<f64>,
    /// Fraction farther than `3 sigma` from every mode.
    pub off_mode: f64,
}

impl ModeReport {
    pub fn of(points: &[[f64; 2]], ring: &RingMixture) -> Self {
        let n = points.len().max(1) as f64;
        let mut per_mode = vec![0.0; ring.modes];
        let mut off = 0.0;
        for &p in points {
            let (i, d) = ring.nearest(p);
            if d <= 3.0 * ring.sigma {
                per_mode[i] += 1.0 / n;
            } else {
                off += 1.0 / n;
            }
        }
        Self {
            per_mode,
            off_mode: off,
        }
    }

    /// Fraction of samples within `3 sigma` of any of `modes`.
    pub fn fraction_in(&self, modes: &[usize]) -> f64 {
        modes.iter().map(|&m| self.per_mode[m]).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_counts_points_by_nearest_mode() {
        let ring = RingMixture::new(4, 1.0, 0.1);
        // Mode 0 at (1, 0), mode 1 at (0, 1).
        let pts = [[1.0, 0.0], [1.05, 0.0], [0.0, 0.95], [0.0, 0.0]];
        let r = ModeReport::of(&pts, &ring);
        assert!((r.per_mode[0] - 0.5).abs() < 1e-12);
        assert!((r.per_mode[1] - 0.25).abs() < 1e-12);
        assert!((r.off_mode - 0.25).abs() < 1e-12);
        assert!((r.fraction_in(&[0, 1]) - 0.75).abs() < 1e-12);
    }
}
