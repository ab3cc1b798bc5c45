//! What a robot's vectors mean: its kind, the sizes of its state and action,
//! and, where known, each dimension's name and unit. Recordings carry it in
//! their header, trained models in their manifest; no code outside a
//! simulator knows a robot's sizes.

use serde::{Deserialize, Serialize};

use crate::MsgsError;

/// Most floats in one state or action vector: a robot with more dimensions
/// is refused (by the codec on the wire, by the header in recordings).
pub const MAX_DIM: usize = 4096;
/// Longest dimension name or unit, and longest robot kind.
const MAX_NAME: usize = 128;

/// A robot's state and action layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotSpec {
    /// What kind of robot (`shadow-hand`, `fetch`, ...): free text, 1-128 characters.
    pub kind: String,
    pub state_dim: usize,
    /// 0: the robot records no actions.
    pub action_dim: usize,
    /// One name per state dimension, or empty when unknown.
    #[serde(default)]
    pub state_names: Vec<String>,
    /// One unit per state dimension (`rad`, `m`, `1`), or empty.
    #[serde(default)]
    pub state_units: Vec<String>,
    #[serde(default)]
    pub action_names: Vec<String>,
    #[serde(default)]
    pub action_units: Vec<String>,
}

impl RobotSpec {
    /// A spec with sizes only (no names or units).
    pub fn unnamed(kind: impl Into<String>, state_dim: usize, action_dim: usize) -> Self {
        Self {
            kind: kind.into(),
            state_dim,
            action_dim,
            state_names: Vec::new(),
            state_units: Vec::new(),
            action_names: Vec::new(),
            action_units: Vec::new(),
        }
    }

    /// Checks sizes (state 1..=[`MAX_DIM`], action 0..=[`MAX_DIM`]) and that
    /// every name and unit list is empty or has one entry per dimension.
    pub fn validate(&self) -> Result<(), MsgsError> {
        let bad = |field: &'static str, value: String| Err(MsgsError::BadMetadata { field, value });
        if self.kind.is_empty() || self.kind.len() > MAX_NAME {
            return bad("robot_kind", self.kind.chars().take(80).collect());
        }
        if !(1..=MAX_DIM).contains(&self.state_dim) {
            return bad("state_dim", format!("{} (1..={MAX_DIM})", self.state_dim));
        }
        if self.action_dim > MAX_DIM {
            return bad("action_dim", format!("{} (0..={MAX_DIM})", self.action_dim));
        }
        let lists: [(&'static str, &[String], usize); 4] = [
            ("state_names", &self.state_names, self.state_dim),
            ("state_units", &self.state_units, self.state_dim),
            ("action_names", &self.action_names, self.action_dim),
            ("action_units", &self.action_units, self.action_dim),
        ];
        for (field, list, dim) in lists {
            if !(list.is_empty() || list.len() == dim) {
                return bad(
                    field,
                    format!("{} entries for {dim} dimensions", list.len()),
                );
            }
            if let Some(n) = list.iter().find(|n| n.len() > MAX_NAME) {
                return bad(field, n.chars().take(80).collect());
            }
        }
        Ok(())
    }

    /// The name of state dimension `i`: its given name, else `s<i>`.
    pub fn state_name(&self, i: usize) -> String {
        self.state_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("s{i}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_sizes_and_name_lists() {
        let mut s = RobotSpec::unnamed("arm", 5, 2);
        s.validate().unwrap();
        assert_eq!(s.state_name(3), "s3");
        s.state_names = (0..5).map(|i| format!("j{i}")).collect();
        s.validate().unwrap();
        assert_eq!(s.state_name(3), "j3");
        s.action_units = vec!["rad".into()];
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.contains("action_units") && err.contains("1 entries for 2"),
            "{err}"
        );
        for (state, action) in [(0, 0), (MAX_DIM + 1, 0), (3, MAX_DIM + 1)] {
            assert!(RobotSpec::unnamed("x", state, action).validate().is_err());
        }
        assert!(RobotSpec::unnamed("", 3, 0).validate().is_err());
        RobotSpec::unnamed("x", MAX_DIM, 0).validate().unwrap();
    }
}
