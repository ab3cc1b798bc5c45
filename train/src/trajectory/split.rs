//! Which trajectories a run fits and is scored on: the recording's training
//! and test splits, and a validation split carved from the training split
//! for choosing settings (`traj tune`), so that no setting is ever chosen by
//! the test split.

use ebm_core::Rng;
use ebm_msgs::recording::Dataset;

use super::config::TrajectoryConfig;

/// The trajectory ids of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    /// Ids the models are trained on (and normalisation fitted on).
    pub fit: Vec<usize>,
    /// Ids the evaluation rolls out: the test split, or the validation split
    /// in a tuning run.
    pub scored: Vec<usize>,
}

/// The splits of `cfg`'s run on `ds`: with `cfg.validation_run`, the
/// validation split (`tune.validation_share` of the training split, the
/// same ids for every seed and candidate) is held out of training and
/// scored; otherwise the models fit the training split and the test split is
/// scored.
pub fn splits(ds: &Dataset, cfg: &TrajectoryConfig) -> Splits {
    let train: Vec<usize> = ds.train_ids().iter().map(|&i| i as usize).collect();
    let test: Vec<usize> = ds.test_ids().iter().map(|&i| i as usize).collect();
    let tune = cfg.tune.as_ref().filter(|_| cfg.validation_run);
    let (fit, scored, limit) = match tune {
        None => (train, test, cfg.eval.test_trajectories),
        Some(t) => {
            let (fit, val) = carve_validation(&train, t.validation_share);
            (fit, val, t.validation_trajectories)
        }
    };
    Splits {
        fit: take(fit, cfg.train_trajectories),
        scored: take(scored, limit),
    }
}

/// `(rest, validation)`: `round(share * n)` ids of `train` drawn by a fixed
/// seed (at least one, and at least one left), both sorted.
pub fn carve_validation(train: &[usize], share: f64) -> (Vec<usize>, Vec<usize>) {
    let n = train.len();
    let k = ((share * n as f64).round() as usize).clamp(1.min(n), n.saturating_sub(1));
    let mut perm = train.to_vec();
    let mut rng = Rng::derived(0x5eed_7a1d, "validation-split");
    for i in (1..n).rev() {
        perm.swap(i, rng.below(i + 1));
    }
    let mut val = perm[..k].to_vec();
    let mut rest = perm[k..].to_vec();
    val.sort_unstable();
    rest.sort_unstable();
    (rest, val)
}

fn take(mut v: Vec<usize>, limit: usize) -> Vec<usize> {
    if limit > 0 {
        v.truncate(limit);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_is_a_fixed_disjoint_share_of_training() {
        let train: Vec<usize> = (0..200).filter(|i| i % 10 != 3).collect();
        let (rest, val) = carve_validation(&train, 0.1);
        assert_eq!(val.len(), 18);
        assert_eq!(rest.len() + val.len(), train.len());
        assert!(val.iter().all(|v| train.contains(v) && !rest.contains(v)));
        // Drawn, not the first ids; and the same every time.
        assert_ne!(val, train[..18].to_vec());
        assert_eq!(carve_validation(&train, 0.1), (rest, val));
        // Tiny splits keep one of each.
        assert_eq!(carve_validation(&[4, 9], 0.01).1.len(), 1);
        assert_eq!(carve_validation(&[4, 9], 0.99).0.len(), 1);
    }
}
