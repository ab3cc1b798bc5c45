//! A model's units: the per-dimension normalisation of its robot's states
//! and actions (from the checkpoint; [`ebm_core::checkpoint::Normalization`]
//! owns the std floor and the state / action split), and the training range
//! states are checked against.

use ebm_core::checkpoint::Normalization;

use crate::RuntimeError;

/// Wire units to model units and back: `z = (x - mean) / std`.
#[derive(Debug, Clone, PartialEq)]
pub struct Units {
    state: Normalization,
    action: Normalization,
}

impl Units {
    /// Identity: states and actions used as they come.
    pub fn identity(state_dim: usize, action_dim: usize) -> Self {
        let unit = |n| Normalization {
            mean: vec![0.0; n],
            std: vec![1.0; n],
        };
        Self {
            state: unit(state_dim),
            action: unit(action_dim),
        }
    }

    /// From a checkpoint's normalisation (states, then actions where it has
    /// them; a warning when a conditional model's actions are missing).
    pub fn from_normalization(
        norm: &Normalization,
        state_dim: usize,
        action_dim: usize,
        warnings: &mut Vec<String>,
    ) -> Result<Self, RuntimeError> {
        if norm.mean.len() != norm.std.len() || norm.mean.len() < state_dim {
            return Err(RuntimeError::Model(format!(
                "normalisation has {} means and {} stds, expected {state_dim} (+ the actions)",
                norm.mean.len(),
                norm.std.len()
            )));
        }
        let (mut state, mut action) = norm.split(state_dim);
        if action.mean.len() < action_dim {
            if action_dim > 0 {
                warnings.push(
                    "no action normalisation in the checkpoint; actions are used as they come"
                        .into(),
                );
            }
            action = Self::identity(0, action_dim).action;
        }
        action.mean.truncate(action_dim);
        action.std.truncate(action_dim);
        for s in state.std.iter_mut().chain(action.std.iter_mut()) {
            *s = Normalization::floored_std(*s);
        }
        Ok(Self { state, action })
    }

    /// Wire units to model units; `x` may hold several states in a row.
    pub fn normalize_state(&self, x: &[f32]) -> Vec<f32> {
        let n = &self.state;
        x.iter()
            .zip(n.mean.iter().zip(n.std.iter()).cycle())
            .map(|(v, (m, s))| (v - m) / s)
            .collect()
    }

    /// Model units back to wire units; `z` may hold several states in a row.
    pub fn denormalize_state(&self, z: &[f32]) -> Vec<f32> {
        let n = &self.state;
        z.iter()
            .zip(n.mean.iter().zip(n.std.iter()).cycle())
            .map(|(v, (m, s))| v * s + m)
            .collect()
    }

    /// A normalised action of `action_dim` floats; `None` (unknown) is the
    /// training mean, zero.
    pub fn normalize_action(&self, a: Option<&[f32]>, action_dim: usize) -> Vec<f32> {
        let n = &self.action;
        match a {
            Some(a) => a
                .iter()
                .zip(n.mean.iter().zip(&n.std))
                .map(|(v, (m, s))| (v - m) / s)
                .collect(),
            None => vec![0.0; action_dim],
        }
    }

    /// The check of states against the training range (see [`StateRange`]).
    pub fn state_range(&self, max_sigma: f64) -> StateRange {
        StateRange {
            mean: self.state.mean.clone(),
            std: self.state.std.clone(),
            max_sigma: max_sigma as f32,
        }
    }
}

/// Whether a state lies in a model's trained range: within `max_sigma`
/// training standard deviations of the training mean in every dimension.
#[derive(Debug, Clone)]
pub struct StateRange {
    mean: Vec<f32>,
    std: Vec<f32>,
    max_sigma: f32,
}

impl StateRange {
    /// `None` when `x` is in range, else why not (the first offending dimension).
    pub fn check(&self, x: &[f32]) -> Option<String> {
        x.iter()
            .zip(self.mean.iter().zip(&self.std))
            .enumerate()
            .find_map(|(i, (v, (m, s)))| {
                let z = (v - m) / s;
                (!(z.abs() <= self.max_sigma)).then(|| {
                    format!(
                        "state[{i}] = {v} is {} training standard deviations from the training mean (limit {}): outside the model's range",
                        if z.is_finite() { format!("{:.3e}", z.abs()) } else { "infinitely many".into() },
                        self.max_sigma
                    )
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_range_names_the_first_dimension_outside_it() {
        let norm = Normalization {
            mean: vec![0.0, 1.0, 2.0],
            std: vec![1.0, 0.5, 2.0],
        };
        let u = Units::from_normalization(&norm, 3, 0, &mut Vec::new()).unwrap();
        let r = u.state_range(10.0);
        assert_eq!(r.check(&[9.9, 5.9, -17.9]), None);
        let why = r.check(&[0.0, 6.1, 1e20]).unwrap();
        assert!(why.starts_with("state[1] = 6.1 is 1.020e1"), "{why}");
        assert!(r
            .check(&[0.0, 1.0, f32::INFINITY])
            .unwrap()
            .contains("infinitely many"));
        assert!(r
            .check(&[f32::MAX, 1.0, 2.0])
            .unwrap()
            .starts_with("state[0]"));
    }

    #[test]
    fn normalisation_round_trips_and_floors_a_zero_std() {
        const DIM: usize = 6;
        let mut mean = vec![1.0f32; DIM + 2];
        let mut std = vec![2.0f32; DIM + 2];
        mean[0] = 3.0;
        std[1] = 0.0;
        std[2] = f32::NAN;
        let norm = Normalization { mean, std };
        let mut warnings = Vec::new();
        let u = Units::from_normalization(&norm, DIM, 2, &mut warnings).unwrap();
        assert!(warnings.is_empty());
        let x: Vec<f32> = (0..DIM).map(|i| i as f32).collect();
        let z = u.normalize_state(&x);
        assert_eq!(z[0], -1.5);
        // std 0 floored as in training, NaN left alone (scale 1).
        let one = u.denormalize_state(&[1.0; DIM]);
        assert_eq!(one[1], 1.0 + Normalization::MIN_STD);
        assert_eq!(one[2], 2.0);
        let back = u.denormalize_state(&z);
        for (b, x) in back.iter().zip(&x) {
            assert!((b - x).abs() < 1e-6, "{back:?}");
        }
        assert_eq!(u.normalize_action(Some(&[3.0, 1.0]), 2), vec![1.0, 0.0]);
        assert_eq!(u.normalize_action(None, 2), vec![0.0, 0.0]);
        // Actions the checkpoint does not normalise are used as they come.
        let u = Units::from_normalization(&norm, DIM + 2, 3, &mut warnings).unwrap();
        assert_eq!(warnings.len(), 1);
        assert_eq!(
            u.normalize_action(Some(&[4.0, 5.0, 6.0]), 3),
            vec![4.0, 5.0, 6.0]
        );
        assert!(Units::from_normalization(&norm, DIM + 3, 0, &mut warnings).is_err());
    }
}
