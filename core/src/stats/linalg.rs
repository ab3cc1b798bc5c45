//! Small dense linear algebra in f64 on row-major slices: Cholesky
//! factorisation and solves, for the fits done once at export time (the
//! linear prior's normal equations, the Stein window test's covariance).

/// A matrix that should have been symmetric positive definite was not: its
/// Cholesky factorisation met a pivot `<= 0` (or NaN) at row `pivot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPositiveDefinite {
    pub pivot: usize,
}

/// Solves `A X = B` in place (`A` symmetric positive definite `p x p`, `B`
/// `p x d`, both row-major; `B` becomes `X`, `A` its Cholesky factor).
pub fn cholesky_solve(
    a: &mut [f64],
    b: &mut [f64],
    p: usize,
    d: usize,
) -> Result<(), NotPositiveDefinite> {
    cholesky_in_place(a, p)?;
    for c in 0..d {
        for i in 0..p {
            let mut v = b[i * d + c];
            for k in 0..i {
                v -= a[i * p + k] * b[k * d + c];
            }
            b[i * d + c] = v / a[i * p + i];
        }
        for i in (0..p).rev() {
            let mut v = b[i * d + c];
            for k in i + 1..p {
                v -= a[k * p + i] * b[k * d + c];
            }
            b[i * d + c] = v / a[i * p + i];
        }
    }
    Ok(())
}

/// The lower Cholesky factor of `a` (symmetric positive definite `p x p`)
/// into its lower triangle; the upper triangle is left as it was.
pub fn cholesky_in_place(a: &mut [f64], p: usize) -> Result<(), NotPositiveDefinite> {
    for j in 0..p {
        let mut diag = a[j * p + j];
        for k in 0..j {
            diag -= a[j * p + k] * a[j * p + k];
        }
        if !(diag > 0.0) {
            return Err(NotPositiveDefinite { pivot: j });
        }
        let l = diag.sqrt();
        a[j * p + j] = l;
        for i in j + 1..p {
            let mut v = a[i * p + j];
            for k in 0..j {
                v -= a[i * p + k] * a[j * p + k];
            }
            a[i * p + j] = v / l;
        }
    }
    Ok(())
}

/// The inverse of `a` (symmetric positive definite `p x p`, row-major).
pub fn spd_inverse(a: &[f64], p: usize) -> Result<Vec<f64>, NotPositiveDefinite> {
    assert_eq!(
        a.len(),
        p * p,
        "spd_inverse: {} entries for {p} x {p}",
        a.len()
    );
    let mut factor = a.to_vec();
    let mut inv: Vec<f64> = (0..p * p)
        .map(|k| if k / p == k % p { 1.0 } else { 0.0 })
        .collect();
    cholesky_solve(&mut factor, &mut inv, p, p)?;
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_a_known_matrix_and_indefinite_ones_are_refused() {
        // [[4, 2], [2, 3]]^-1 = [[3, -2], [-2, 4]] / 8.
        let inv = spd_inverse(&[4.0, 2.0, 2.0, 3.0], 2).unwrap();
        let want = [0.375, -0.25, -0.25, 0.5];
        for (a, b) in inv.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{inv:?}");
        }
        // Eigenvalues 3 and -1.
        assert_eq!(
            spd_inverse(&[1.0, 2.0, 2.0, 1.0], 2),
            Err(NotPositiveDefinite { pivot: 1 })
        );
        assert!(spd_inverse(&[f64::NAN], 1).is_err());
    }
}
