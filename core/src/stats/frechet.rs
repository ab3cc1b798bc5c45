//! The Frechet distance between Gaussians (the paper's trajectory metric,
//! Section 5), with a matrix square root that stays stable for near-singular
//! covariances.
//!
//! `FD = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)`. Both square
//! roots go through symmetric eigendecompositions (cyclic Jacobi, f64) with
//! negative round-off eigenvalues clamped to zero, so no complex parts and no
//! blow-up where `scipy.linalg.sqrtm` of the non-symmetric `S1 S2` struggles.

/// A Gaussian fit: mean and covariance (row-major `d x d`).
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianFit {
    pub mean: Vec<f64>,
    pub cov: Vec<f64>,
}

impl GaussianFit {
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Maximum-likelihood mean and covariance of `rows` (each of length `d`).
    /// Needs at least one row.
    pub fn of_rows<'a>(rows: impl IntoIterator<Item = &'a [f32]>, d: usize) -> Option<Self> {
        let mut n = 0usize;
        let mut sum = vec![0.0; d];
        let mut outer = vec![0.0; d * d];
        for r in rows {
            if r.len() != d {
                return None;
            }
            n += 1;
            for i in 0..d {
                let ri = f64::from(r[i]);
                sum[i] += ri;
                for j in 0..d {
                    outer[i * d + j] += ri * f64::from(r[j]);
                }
            }
        }
        if n == 0 {
            return None;
        }
        let nf = n as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / nf).collect();
        let cov = (0..d * d)
            .map(|k| outer[k] / nf - mean[k / d] * mean[k % d])
            .collect();
        Some(Self { mean, cov })
    }
}

/// Eigenvalues and eigenvectors (columns of `v`, row-major) of a symmetric
/// matrix by cyclic Jacobi rotations.
pub fn symmetric_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j].powi(2))
            .sum();
        let scale: f64 = (0..d)
            .map(|i| a[i * d + i].powi(2))
            .sum::<f64>()
            .max(1e-300);
        if off <= 1e-30 * scale || off == 0.0 {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

/// Square root of a symmetric positive semi-definite matrix.
pub fn psd_sqrt(a: &[f64], d: usize) -> Vec<f64> {
    let sym: Vec<f64> = (0..d * d)
        .map(|k| 0.5 * (a[k] + a[(k % d) * d + k / d]))
        .collect();
    let (w, v) = symmetric_eigen(&sym, d);
    let mut out = vec![0.0; d * d];
    for (k, &lambda) in w.iter().enumerate() {
        let s = lambda.max(0.0).sqrt();
        for i in 0..d {
            for j in 0..d {
                out[i * d + j] += s * v[i * d + k] * v[j * d + k];
            }
        }
    }
    out
}

fn matmul(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut out = vec![0.0; d * d];
    for i in 0..d {
        for k in 0..d {
            let aik = a[i * d + k];
            for j in 0..d {
                out[i * d + j] += aik * b[k * d + j];
            }
        }
    }
    out
}

/// Frechet distance between two Gaussian fits of the same dimension.
pub fn frechet_distance(p: &GaussianFit, q: &GaussianFit) -> f64 {
    let d = p.dim();
    assert_eq!(
        d,
        q.dim(),
        "Frechet distance between fits of different dimension"
    );
    let mean_term: f64 = p
        .mean
        .iter()
        .zip(&q.mean)
        .map(|(a, b)| (a - b).powi(2))
        .sum();
    let s1 = psd_sqrt(&p.cov, d);
    let m = matmul(&matmul(&s1, &q.cov, d), &s1, d);
    let msym: Vec<f64> = (0..d * d)
        .map(|k| 0.5 * (m[k] + m[(k % d) * d + k / d]))
        .collect();
    let (w, _) = symmetric_eigen(&msym, d);
    let tr_sqrt: f64 = w.iter().map(|l| l.max(0.0).sqrt()).sum();
    let tr = |c: &[f64]| (0..d).map(|i| c[i * d + i]).sum::<f64>();
    (mean_term + tr(&p.cov) + tr(&q.cov) - 2.0 * tr_sqrt).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(v: &[f64]) -> Vec<f64> {
        let d = v.len();
        let mut m = vec![0.0; d * d];
        for (i, x) in v.iter().enumerate() {
            m[i * d + i] = *x;
        }
        m
    }

    #[test]
    fn identical_gaussians_are_at_distance_zero() {
        let g = GaussianFit {
            mean: vec![1.0, -2.0, 0.5],
            cov: vec![2.0, 0.3, 0.1, 0.3, 1.0, -0.2, 0.1, -0.2, 0.5],
        };
        assert!(frechet_distance(&g, &g).abs() < 1e-9);
    }

    #[test]
    fn shifted_and_scaled_gaussians_match_the_closed_form() {
        // Same eigenvectors: FD = |dmu|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
        let p = GaussianFit {
            mean: vec![0.0, 0.0],
            cov: diag(&[1.0, 4.0]),
        };
        let q = GaussianFit {
            mean: vec![3.0, 4.0],
            cov: diag(&[9.0, 1.0]),
        };
        let want = 25.0 + (1.0f64 - 3.0).powi(2) + (2.0f64 - 1.0).powi(2);
        assert!((frechet_distance(&p, &q) - want).abs() < 1e-9);
        // Isotropic scaling by s: FD = d (1 - s)^2 sigma^2.
        let r = GaussianFit {
            mean: vec![0.0; 3],
            cov: diag(&[1.0; 3]),
        };
        let s = GaussianFit {
            mean: vec![0.0; 3],
            cov: diag(&[4.0; 3]),
        };
        assert!((frechet_distance(&r, &s) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn rotated_covariances_agree_with_the_commuting_formula() {
        // Rotate both covariances by the same rotation: FD is invariant.
        let (c, s) = (0.6f64, 0.8f64);
        let rot = [c, -s, s, c];
        let rt = [c, s, -s, c];
        let p = diag(&[1.0, 4.0]);
        let q = diag(&[9.0, 1.0]);
        let pr = matmul(&matmul(&rot, &p, 2), &rt, 2);
        let qr = matmul(&matmul(&rot, &q, 2), &rt, 2);
        let a = GaussianFit {
            mean: vec![0.0; 2],
            cov: pr,
        };
        let b = GaussianFit {
            mean: vec![0.0; 2],
            cov: qr,
        };
        assert!((frechet_distance(&a, &b) - 5.0).abs() < 1e-9);
    }

    /// Non-commuting covariances (the case a `tr(sqrt(S1) sqrt(S2))` slip
    /// would get wrong): in 2-D, `tr sqrt(S1^1/2 S2 S1^1/2)` is
    /// `sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2))` (the square root's eigenvalues
    /// are the square roots of that product's), a formula independent of the
    /// eigen-solver.
    #[test]
    fn non_commuting_covariances_match_the_2d_closed_form() {
        let s1 = [2.0, 0.9, 0.9, 1.0];
        let s2 = [1.0, -0.6, -0.6, 3.0];
        assert!(
            matmul(&s1, &s2, 2) != matmul(&s2, &s1, 2),
            "they do not commute"
        );
        let tr_prod = s1[0] * s2[0] + s1[1] * s2[2] + s1[2] * s2[1] + s1[3] * s2[3];
        let det = |m: &[f64; 4]| m[0] * m[3] - m[1] * m[2];
        let cross = (tr_prod + 2.0 * (det(&s1) * det(&s2)).sqrt()).sqrt();
        let dmu2 = 0.5f64.powi(2) + 1.5f64.powi(2);
        let want = dmu2 + (s1[0] + s1[3]) + (s2[0] + s2[3]) - 2.0 * cross;
        let p = GaussianFit {
            mean: vec![0.0, 1.0],
            cov: s1.to_vec(),
        };
        let q = GaussianFit {
            mean: vec![0.5, -0.5],
            cov: s2.to_vec(),
        };
        let got = frechet_distance(&p, &q);
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        // The slip tr(sqrt(S1) sqrt(S2)) differs here by far more than that.
        let slip = {
            let m = matmul(&psd_sqrt(&s1, 2), &psd_sqrt(&s2, 2), 2);
            dmu2 + (s1[0] + s1[3]) + (s2[0] + s2[3]) - 2.0 * (m[0] + m[3])
        };
        assert!((slip - want).abs() > 1e-3, "{slip} vs {want}");
        assert!((frechet_distance(&q, &p) - want).abs() < 1e-9, "symmetric");
    }

    #[test]
    fn near_singular_covariances_stay_finite_and_stable() {
        // Rank-1 covariances (points on a line) plus round-off-sized noise.
        let d = 4;
        let u = [1.0, 2.0, -1.0, 0.5];
        let mut p = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                p[i * d + j] = u[i] * u[j] + if i == j { 1e-14 } else { 0.0 };
            }
        }
        let g = GaussianFit {
            mean: vec![0.0; d],
            cov: p.clone(),
        };
        let fd = frechet_distance(&g, &g);
        assert!(fd.is_finite() && fd.abs() < 1e-6, "{fd}");
        // Scaling the line by 2: FD = (2 - 1)^2 |u|^2.
        let h = GaussianFit {
            mean: vec![0.0; d],
            cov: p.iter().map(|x| 4.0 * x).collect(),
        };
        let norm2: f64 = u.iter().map(|x| x * x).sum();
        assert!((frechet_distance(&g, &h) - norm2).abs() < 1e-6);
    }

    #[test]
    fn fit_of_rows_matches_hand_computed_moments() {
        let rows: [[f32; 2]; 3] = [[1.0, 2.0], [3.0, 2.0], [2.0, 5.0]];
        let g = GaussianFit::of_rows(rows.iter().map(|r| r.as_slice()), 2).expect("rows");
        assert_eq!(g.mean, vec![2.0, 3.0]);
        // var x = 2/3, var y = 2, cov = (-1*-1 + 1*-1 + 0*2)/3 = 0.
        let want = [2.0 / 3.0, 0.0, 0.0, 2.0];
        for (a, b) in g.cov.iter().zip(want) {
            assert!((a - b).abs() < 1e-12);
        }
    }
}
