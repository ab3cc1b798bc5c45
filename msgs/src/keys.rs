//! Zenoh key expressions, built in one place.
//!
//! Layout (prefix `ebm` by default), one chunk per robot so wildcards work:
//!
//! | key | what |
//! | --- | --- |
//! | `ebm/<robot>/state` | [`crate::RobotState`] in |
//! | `ebm/<robot>/action` | [`crate::Action`] (recordings, optional live) |
//! | `ebm/<robot>/forecast` | [`crate::Forecast`] out |
//! | `ebm/<robot>/ood` | [`crate::OodScore`] out |
//! | `ebm/<robot>/denoised` | [`crate::DenoisedState`] out |
//! | `ebm/<robot>/forecast_query` | queryable: [`crate::ForecastRequest`] |
//! | `ebm/status` | daemon counters |
//! | `ebm/@alive/<daemon>` | daemon liveliness token (verbatim chunk: never matched by `*`) |

use std::fmt;

use crate::MsgsError;

/// Default first chunk of every key.
pub const DEFAULT_PREFIX: &str = "ebm";
const MAX_ROBOT_ID: usize = 64;

/// A validated robot id: 1-64 ASCII letters, digits, `-` or `_`, starting with
/// a letter or digit. It is one key chunk, so it cannot hold `/`, wildcards or `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RobotId(String);

impl RobotId {
    pub fn new(id: impl Into<String>) -> Result<Self, MsgsError> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("empty")
        } else if id.len() > MAX_ROBOT_ID {
            Some("longer than 64 characters")
        } else if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Some("only ASCII letters, digits, '-' and '_' are allowed")
        } else if !id.as_bytes()[0].is_ascii_alphanumeric() {
            Some("must start with a letter or digit")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(MsgsError::InvalidRobotId { id, reason }),
            None => Ok(Self(id)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RobotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key space under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    prefix: String,
}

impl Default for KeySpace {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }
}

impl KeySpace {
    /// A key space under `prefix` (one or more `/`-separated chunks, each valid
    /// like a robot id).
    pub fn new(prefix: &str) -> Result<Self, MsgsError> {
        let bad = |reason| MsgsError::InvalidKeyPrefix {
            prefix: prefix.to_owned(),
            reason,
        };
        if prefix.is_empty() {
            return Err(bad("empty"));
        }
        for chunk in prefix.split('/') {
            RobotId::new(chunk)
                .map_err(|_| bad("chunks must be non-empty ASCII letters, digits, '-' or '_'"))?;
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn robot_key(&self, robot: &RobotId, leaf: &str) -> String {
        format!("{}/{}/{}", self.prefix, robot, leaf)
    }

    pub fn state(&self, robot: &RobotId) -> String {
        self.robot_key(robot, "state")
    }
    pub fn action(&self, robot: &RobotId) -> String {
        self.robot_key(robot, "action")
    }
    pub fn forecast(&self, robot: &RobotId) -> String {
        self.robot_key(robot, "forecast")
    }
    pub fn ood(&self, robot: &RobotId) -> String {
        self.robot_key(robot, "ood")
    }
    pub fn denoised(&self, robot: &RobotId) -> String {
        self.robot_key(robot, "denoised")
    }
    pub fn forecast_query(&self, robot: &RobotId) -> String {
        self.robot_key(robot, "forecast_query")
    }
    /// Every robot's state: `ebm/*/state`.
    pub fn all_states(&self) -> String {
        format!("{}/*/state", self.prefix)
    }
    /// Every robot's forecast queryable: `ebm/*/forecast_query`.
    pub fn all_forecast_queries(&self) -> String {
        format!("{}/*/forecast_query", self.prefix)
    }
    pub fn status(&self) -> String {
        format!("{}/status", self.prefix)
    }
    pub fn daemon_liveliness(&self, daemon: &RobotId) -> String {
        format!("{}/@alive/{}", self.prefix, daemon)
    }

    /// The robot of a per-robot key under this prefix, e.g. `ebm/hand-1/state`
    /// with leaf `state` gives `hand-1`.
    pub fn robot_of(&self, key: &str, leaf: &str) -> Option<RobotId> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let robot = rest.strip_suffix(leaf)?.strip_suffix('/')?;
        RobotId::new(robot).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_keys() {
        let ks = KeySpace::default();
        let r = RobotId::new("hand-1").unwrap();
        assert_eq!(ks.state(&r), "ebm/hand-1/state");
        assert_eq!(ks.action(&r), "ebm/hand-1/action");
        assert_eq!(ks.forecast(&r), "ebm/hand-1/forecast");
        assert_eq!(ks.ood(&r), "ebm/hand-1/ood");
        assert_eq!(ks.denoised(&r), "ebm/hand-1/denoised");
        assert_eq!(ks.forecast_query(&r), "ebm/hand-1/forecast_query");
        assert_eq!(ks.all_states(), "ebm/*/state");
        assert_eq!(ks.status(), "ebm/status");
        assert_eq!(ks.daemon_liveliness(&r), "ebm/@alive/hand-1");
        let ks = KeySpace::new("lab/cell_2").unwrap();
        assert_eq!(ks.state(&r), "lab/cell_2/hand-1/state");
        assert_eq!(ks.robot_of("lab/cell_2/hand-1/state", "state"), Some(r));
        assert_eq!(ks.robot_of("lab/cell_2/hand-1/ood", "state"), None);
        assert_eq!(ks.robot_of("lab/x/y/state", "state"), None);
    }

    #[test]
    fn validates_robot_ids_and_prefixes() {
        for ok in ["a", "hand_1", "traj-000123", &"x".repeat(64)] {
            assert!(RobotId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a/b",
            "*",
            "a*",
            "$x",
            "a?",
            "a#",
            "@v1",
            "-a",
            "é",
            &"x".repeat(65),
        ] {
            assert!(RobotId::new(bad).is_err(), "{bad}");
        }
        for bad in ["", "/ebm", "ebm/", "ebm//x", "ebm/**", "@"] {
            assert!(KeySpace::new(bad).is_err(), "{bad}");
        }
    }
}
