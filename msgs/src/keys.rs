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
//! | `ebm/<robot>/error` | [`crate::ErrorReply`] out: a state the daemon refused (wrong size, unknown robot) |
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

/// A glob over robot ids: `*` stands for any run of characters (`arm-*`,
/// `*-left`, `*`); every other character is one a robot id may hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RobotPattern(String);

impl RobotPattern {
    pub fn new(pattern: impl Into<String>) -> Result<Self, MsgsError> {
        let pattern = pattern.into();
        let bad = |reason| MsgsError::InvalidRobotPattern {
            pattern: pattern.clone(),
            reason,
        };
        if pattern.is_empty() || pattern.len() > MAX_ROBOT_ID {
            return Err(bad("1-64 characters"));
        }
        if !pattern
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
        {
            return Err(bad(
                "only ASCII letters, digits, '-', '_' and '*' are allowed",
            ));
        }
        // Runs of `*` mean the same as one.
        let mut canonical = String::with_capacity(pattern.len());
        for c in pattern.chars() {
            if !(c == '*' && canonical.ends_with('*')) {
                canonical.push(c);
            }
        }
        Ok(Self(canonical))
    }

    /// Matches every robot.
    pub fn any() -> Self {
        Self("*".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `robot` matches the glob.
    pub fn matches(&self, robot: &RobotId) -> bool {
        glob_match(self.0.as_bytes(), robot.as_str().as_bytes())
    }

    /// The pattern as one Zenoh key chunk: `*` alone, else each `*` as the
    /// sub-chunk wildcard `$*` (`arm-$*`).
    pub fn key_chunk(&self) -> String {
        if self.0 == "*" {
            "*".into()
        } else {
            self.0.replace('*', "$*")
        }
    }
}

impl fmt::Display for RobotPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Glob matching with `*` only (iterative, with one backtrack point).
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
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
    pub fn error(&self, robot: &RobotId) -> String {
        self.robot_key(robot, "error")
    }
    /// States of the robots matching `pattern`: `ebm/arm-$*/state`.
    pub fn states_of(&self, pattern: &RobotPattern) -> String {
        format!("{}/{}/state", self.prefix, pattern.key_chunk())
    }
    /// Forecast queryables of the robots matching `pattern`.
    pub fn forecast_queries_of(&self, pattern: &RobotPattern) -> String {
        format!("{}/{}/forecast_query", self.prefix, pattern.key_chunk())
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
    fn robot_patterns_match_globs_and_make_key_chunks() {
        let id = |s: &str| RobotId::new(s).unwrap();
        let p = RobotPattern::new("arm-*").unwrap();
        assert!(p.matches(&id("arm-1")) && p.matches(&id("arm-")));
        assert!(!p.matches(&id("xarm-1")) && !p.matches(&id("arm")));
        let p = RobotPattern::new("*-left*").unwrap();
        assert!(p.matches(&id("a-left")) && p.matches(&id("b-left-2")));
        assert!(!p.matches(&id("a-right")));
        let exact = RobotPattern::new("hand-1").unwrap();
        assert!(exact.matches(&id("hand-1")) && !exact.matches(&id("hand-10")));
        assert!(RobotPattern::any().matches(&id("anything")));
        assert_eq!(RobotPattern::new("a**b").unwrap().as_str(), "a*b");
        let ks = KeySpace::default();
        assert_eq!(
            ks.states_of(&RobotPattern::new("arm-*").unwrap()),
            "ebm/arm-$*/state"
        );
        assert_eq!(
            ks.states_of(&RobotPattern::new("**").unwrap()),
            "ebm/*/state"
        );
        assert_eq!(ks.forecast_queries_of(&exact), "ebm/hand-1/forecast_query");
        assert_eq!(ks.error(&id("x")), "ebm/x/error");
        for bad in ["", "a/b", "a?", "$*", "a b", &"x".repeat(65)] {
            assert!(RobotPattern::new(bad).is_err(), "{bad}");
        }
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
