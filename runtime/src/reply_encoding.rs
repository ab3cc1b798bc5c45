//! The encoding each robot's outputs go out in: the one its last state came
//! in (bincode or JSON). Remembered where states are decoded and read where
//! outputs are encoded, so the wire never travels through the inference
//! thread. A robot never heard over Zenoh (a ROS 2 robot) gets bincode.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ebm_msgs::{Encoding, RobotId};

/// Shared between the state subscribers and the output publisher; one entry
/// per robot that has sent a state (as the publisher's own per-robot map).
#[derive(Debug, Clone, Default)]
pub struct ReplyEncodings(Arc<Mutex<HashMap<RobotId, Encoding>>>);

impl ReplyEncodings {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<RobotId, Encoding>> {
        // Every update is a single insert: the map stays consistent even if
        // a holder panicked.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `robot`'s latest state came in `encoding`.
    pub fn remember(&self, robot: &RobotId, encoding: Encoding) {
        let mut map = self.map();
        if map.get(robot) != Some(&encoding) {
            map.insert(robot.clone(), encoding);
        }
    }

    /// The encoding of `robot`'s outputs.
    pub fn of(&self, robot: &RobotId) -> Encoding {
        self.map().get(robot).copied().unwrap_or(Encoding::Bincode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_follow_the_latest_state_and_default_to_bincode() {
        let e = ReplyEncodings::default();
        let (a, b) = (RobotId::new("a").unwrap(), RobotId::new("b").unwrap());
        assert_eq!(e.of(&a), Encoding::Bincode);
        e.remember(&a, Encoding::Json);
        let shared = e.clone();
        assert_eq!(shared.of(&a), Encoding::Json);
        assert_eq!(shared.of(&b), Encoding::Bincode);
        e.remember(&a, Encoding::Bincode);
        assert_eq!(shared.of(&a), Encoding::Bincode);
    }
}
