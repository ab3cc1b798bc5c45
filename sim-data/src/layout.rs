//! The simulated hand's state and action layout: the only place that knows
//! its sizes. Everything downstream (recordings, training, the daemon) reads
//! them from the [`robot_spec`] this writes into every recording's header.

use ebm_msgs::RobotSpec;

use crate::hand::{actuators, links, NUM_ACTUATORS, NUM_JOINTS};

/// Robot kind named in the hand's recordings.
pub const HAND_KIND: &str = "shadow-hand-cube";
/// Hand joint angles in a state (Shadow hand order, see [`crate::hand`]).
pub const JOINT_DIM: usize = NUM_JOINTS;
/// State: 24 joint angles, cube position (3), cube quaternion `[x, y, z, w]` (4).
pub const STATE_DIM: usize = JOINT_DIM + 3 + 4;
/// Action: 20 actuator position targets (rad).
pub const ACTION_DIM: usize = NUM_ACTUATORS;

/// The hand's layout with each dimension's name and unit.
pub fn robot_spec() -> RobotSpec {
    let mut state_names: Vec<String> = links().iter().map(|l| l.joint.to_owned()).collect();
    let mut state_units = vec!["rad".to_owned(); JOINT_DIM];
    for (name, unit) in [
        ("cube.x", "m"),
        ("cube.y", "m"),
        ("cube.z", "m"),
        ("cube.qx", "1"),
        ("cube.qy", "1"),
        ("cube.qz", "1"),
        ("cube.qw", "1"),
    ] {
        state_names.push(name.to_owned());
        state_units.push(unit.to_owned());
    }
    RobotSpec {
        kind: HAND_KIND.to_owned(),
        state_dim: STATE_DIM,
        action_dim: ACTION_DIM,
        state_names,
        state_units,
        action_names: actuators().iter().map(|a| a.name.to_owned()).collect(),
        action_units: vec!["rad".to_owned(); ACTION_DIM],
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_spec_names_every_dimension() {
        let s = super::robot_spec();
        s.validate().unwrap();
        assert_eq!(s.state_names.len(), 31);
        assert_eq!(s.state_names[0], "WRJ2");
        assert_eq!(s.state_names[24], "cube.x");
        assert_eq!(s.action_names[4], "FFJ0");
    }
}
