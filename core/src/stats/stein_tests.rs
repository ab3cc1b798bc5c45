use super::*;
use crate::Rng;

/// Window means of the Stein features of `n` windows of `w` samples from
/// `N(0, (widen sigma_j)^2)` under the Gaussian energy
/// `sum_j x_j^2 / (2 sigma_j^2)` (gradient `x_j / sigma_j^2`).
fn gaussian_windows(rng: &mut Rng, n: usize, w: usize, sigma: &[f32], widen: f32) -> Vec<Vec<f32>> {
    let d = sigma.len();
    (0..n)
        .map(|_| {
            let x: Vec<f32> = (0..w * d)
                .map(|k| rng.normal() as f32 * sigma[k % d] * widen)
                .collect();
            let g: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(k, v)| v / (sigma[k % d] * sigma[k % d]))
                .collect();
            let f = features(&x, &g);
            mean_of(f.chunks(d), d)
        })
        .collect()
}

#[test]
fn exact_samples_satisfy_steins_identity_and_a_wider_spread_is_flagged() {
    let mut rng = Rng::new(7);
    let sigma = [0.5, 1.0, 3.0];
    let fit = gaussian_windows(&mut rng, 2000, 50, &sigma, 1.0);
    let calibrate = gaussian_windows(&mut rng, 2000, 50, &sigma, 1.0);
    let test = SteinWindow::fit(50, &fit, &calibrate).unwrap();
    // E[x_j dE/dx_j] = 1 in every dimension, whatever its scale.
    for m in &test.mean {
        assert!((m - 1.0).abs() < 0.02, "{:?}", test.mean);
    }
    // A window mean's variance is 2 / 50 per dimension; the shrunk
    // precision's diagonal is 1 / (1.1 * 0.04).
    for j in 0..3 {
        let p = test.precision[j * 3 + j];
        assert!((p - 1.0 / (1.1 * 0.04)).abs() < 2.5, "{p}");
    }
    let share_flagged = |windows: &[Vec<f32>]| {
        let flagged = windows
            .iter()
            .filter(|m| test.percentile(test.discrepancy(m)) >= 99.0);
        flagged.count() as f64 / windows.len() as f64
    };
    let fresh = gaussian_windows(&mut rng, 500, 50, &sigma, 1.0);
    assert!(share_flagged(&fresh) < 0.03, "{}", share_flagged(&fresh));
    // 30% wider: feature means 1.69 instead of 1.
    let wider = gaussian_windows(&mut rng, 500, 50, &sigma, 1.3);
    assert!(share_flagged(&wider) > 0.9, "{}", share_flagged(&wider));
    // A matched window sits in the middle: its mean discrepancy is about
    // the dimension count (a chi-square with 3 degrees of freedom, shrunk).
    let mean_d = fresh.iter().map(|m| test.discrepancy(m)).sum::<f32>() / 500.0;
    assert!((2.0..3.5).contains(&mean_d), "{mean_d}");
}

#[test]
fn discrepancy_and_percentile_by_hand() {
    // Means (1, 1); variances 4/3, no covariance; shrunk: 4/3 * 1.1.
    let fit = vec![
        vec![0.0, 0.0],
        vec![2.0, 0.0],
        vec![0.0, 2.0],
        vec![2.0, 2.0],
    ];
    let calibrate: Vec<Vec<f32>> = (1..=5).map(|i| vec![i as f32, 1.0]).collect();
    let test = SteinWindow::fit(4, &fit, &calibrate).unwrap();
    assert_eq!(test.mean, vec![1.0, 1.0]);
    let p = 1.0 / (4.0 / 3.0 * 1.1);
    assert!((test.precision[0] - p).abs() < 1e-6 && test.precision[1].abs() < 1e-9);
    assert!((test.discrepancy(&[2.0, 1.0]) - p).abs() < 1e-6);
    assert!((test.discrepancy(&[0.0, 3.0]) - 5.0 * p).abs() < 1e-5);
    // Calibration discrepancies 0, p, 4p, 9p, 16p: the table holds p from
    // the 25th to the 49th percentile and 4p from the 50th to the 74th.
    assert_eq!(test.percentiles[0], 0.0);
    assert!(
        (test.percentiles[49] - p).abs() < 1e-6 && (test.percentiles[50] - 4.0 * p).abs() < 1e-5
    );
    assert!((test.percentile(2.5 * p) - 49.5).abs() < 1e-3);
    assert_eq!(test.percentile(100.0), 100.0);
    assert!(test.check(2).is_ok());
}

#[test]
fn bad_windows_and_stored_tests_are_refused_by_name() {
    let ok = vec![vec![0.0, 1.0], vec![1.0, 0.0], vec![2.0, 3.0]];
    let msg = |r: Result<SteinWindow, CoreError>| r.unwrap_err().to_string();
    assert!(msg(SteinWindow::fit(5, &ok[..1], &ok)).contains("two fitting windows"));
    assert!(msg(SteinWindow::fit(0, &ok, &ok)).contains("window"));
    let ragged = vec![vec![0.0, 1.0], vec![1.0]];
    assert!(msg(SteinWindow::fit(5, &ok, &ragged)).contains("2 finite entries"));
    let nan = vec![vec![0.0, f32::NAN], vec![1.0, 0.0]];
    assert!(msg(SteinWindow::fit(5, &nan, &ok)).contains("finite"));
    let good = SteinWindow::fit(5, &ok, &ok).unwrap();
    assert!(good.check(3).unwrap_err().contains("3 dimensions"));
    let mut t = good.clone();
    t.precision[1] = f32::INFINITY;
    assert!(t.check(2).unwrap_err().contains("non-finite"));
    let mut t = good.clone();
    t.percentiles.swap(0, 100);
    assert!(t.check(2).unwrap_err().contains("sorted"));
    let mut t = good;
    t.window = 0;
    assert!(t.check(2).is_err());
}
