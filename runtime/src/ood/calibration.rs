//! Online OOD calibration, for models whose checkpoints store no training
//! energy percentiles: the percentile of an energy among the energies seen
//! so far, learnt from the first `cap` finite ones; flags are trusted only
//! once that many have been seen.

/// The sorted energies seen so far (at most `cap`).
#[derive(Debug, Clone)]
pub struct OnlineCalibration {
    seen: Vec<f32>,
    cap: usize,
}

impl OnlineCalibration {
    pub fn new(cap: usize) -> Self {
        Self {
            seen: Vec::new(),
            cap,
        }
    }

    /// The percentile (0-100, mid-rank for ties; 50 before anything was
    /// seen) of `energy` among the energies seen, and whether the
    /// calibration is complete (`cap` seen); then learns `energy` if there
    /// is room and it is finite.
    pub fn percentile_then_learn(&mut self, energy: f32) -> (f32, bool) {
        let seen = &mut self.seen;
        let p = if seen.is_empty() {
            50.0
        } else {
            let below = seen.partition_point(|&v| v < energy);
            let upto = seen.partition_point(|&v| v <= energy);
            100.0 * (below + upto) as f32 / (2 * seen.len()) as f32
        };
        if seen.len() < self.cap && energy.is_finite() {
            let at = seen.partition_point(|&v| v < energy);
            seen.insert(at, energy);
        }
        (p, seen.len() >= self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_mid_ranks_among_the_energies_seen_until_full() {
        let mut c = OnlineCalibration::new(4);
        assert_eq!(c.percentile_then_learn(2.0), (50.0, false));
        assert_eq!(c.percentile_then_learn(f32::INFINITY), (100.0, false));
        assert_eq!(c.percentile_then_learn(1.0), (0.0, false));
        // Seen {1, 2}: 2 is above one and tied with the other.
        assert_eq!(c.percentile_then_learn(2.0), (75.0, false));
        assert_eq!(c.percentile_then_learn(3.0), (100.0, true));
        // Full at {1, 2, 2, 3}: nothing more is learnt.
        assert_eq!(c.percentile_then_learn(0.0), (0.0, true));
        assert_eq!(c.percentile_then_learn(0.0), (0.0, true));
    }
}
