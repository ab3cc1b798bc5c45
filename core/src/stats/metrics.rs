//! Evaluation metrics shared by training and serving.

/// Area under the ROC curve for scores where higher means "positive", computed
/// as the Mann-Whitney U statistic with mid-ranks, so tied scores count one
/// half. Returns `None` when either class is empty or a score is NaN.
pub fn auroc(positive: &[f64], negative: &[f64]) -> Option<f64> {
    if positive.is_empty() || negative.is_empty() {
        return None;
    }
    if positive.iter().chain(negative).any(|v| v.is_nan()) {
        return None;
    }
    let mut all: Vec<(f64, bool)> = positive
        .iter()
        .map(|&v| (v, true))
        .chain(negative.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the positives' ranks (1-based), ties sharing their mean rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid * all[i..=j].iter().filter(|(_, p)| *p).count() as f64;
        i = j + 1;
    }
    let (np, nn) = (positive.len() as f64, negative.len() as f64);
    Some((rank_sum - np * (np + 1.0) / 2.0) / (np * nn))
}

/// The 0th to 100th percentiles of `v` (any order; each the value at rank
/// `p (n - 1) / 100`, rounded down). `v` must not be empty.
pub fn percentiles(mut v: Vec<f32>) -> Vec<f32> {
    assert!(!v.is_empty(), "percentiles of no values");
    v.sort_by(f32::total_cmp);
    (0..=100).map(|p| v[(p * (v.len() - 1)) / 100]).collect()
}

/// Percentile of `e` in a sorted table of the 0th..100th percentiles.
pub fn percentile_in(p: &[f32], e: f32) -> f32 {
    let n = p.len();
    if n < 2 || e.is_nan() {
        return f32::NAN;
    }
    let scale = 100.0 / (n - 1) as f32;
    if e <= p[0] {
        return 0.0;
    }
    if e >= p[n - 1] {
        return 100.0;
    }
    // p[i] <= e < p[i + 1]
    let i = p.partition_point(|&v| v <= e) - 1;
    let (lo, hi) = (p[i], p[i + 1]);
    let frac = if hi > lo { (e - lo) / (hi - lo) } else { 0.0 };
    (i as f32 + frac) * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_scores_give_one_and_zero() {
        assert_eq!(auroc(&[3.0, 4.0], &[1.0, 2.0]), Some(1.0));
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 4.0]), Some(0.0));
    }

    #[test]
    fn hand_computed_case_with_ties() {
        // Pairs (p, n): (1,1) tie 0.5, (1,0) 1, (1,2) 0, (3,1) 1, (3,0) 1, (3,2) 1
        // = 4.5 of 6.
        let a = auroc(&[1.0, 3.0], &[1.0, 0.0, 2.0]).expect("defined");
        assert!((a - 0.75).abs() < 1e-12, "{a}");
        // All tied: chance.
        assert_eq!(auroc(&[5.0, 5.0], &[5.0]), Some(0.5));
    }

    #[test]
    fn undefined_cases() {
        assert_eq!(auroc(&[], &[1.0]), None);
        assert_eq!(auroc(&[f64::NAN], &[1.0]), None);
    }

    #[test]
    fn percentiles_interpolate_and_saturate() {
        let p: Vec<f32> = (0..=100).map(|i| i as f32 * 2.0).collect();
        assert_eq!(percentile_in(&p, -5.0), 0.0);
        assert_eq!(percentile_in(&p, 500.0), 100.0);
        assert!((percentile_in(&p, 50.0) - 25.0).abs() < 1e-5);
        assert!((percentile_in(&p, 51.0) - 25.5).abs() < 1e-5);
        // Ties: a flat stretch maps to its last index.
        let flat = [0.0, 1.0, 1.0, 1.0, 2.0];
        assert!((percentile_in(&flat, 1.0) - 75.0).abs() < 1e-5);
    }

    #[test]
    fn percentile_table_of_a_range() {
        let p = percentiles((0..=200).rev().map(|i| i as f32).collect());
        assert_eq!(p.len(), 101);
        assert_eq!((p[0], p[50], p[100]), (0.0, 100.0, 200.0));
        assert!((percentile_in(&p, 150.0) - 75.0).abs() < 1e-5);
    }
}
