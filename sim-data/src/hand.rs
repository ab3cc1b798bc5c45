//! The hand's kinematic description: a Shadow-hand-like tree of 24 revolute
//! joints and 20 actuators, palm up.
//!
//! World frame at the reference pose (all joints 0): the wrist at the origin,
//! fingers along +x, palm normal +z (upturned), thumb on the -y side (a right
//! hand). Every link's body frame is at its joint's anchor with identity
//! rotation, so a joint angle is the rotation of a link relative to its parent
//! about the joint axis. Lengths follow the Shadow hand (proximal, middle and
//! distal phalanges 45, 25, 26 mm); limits are the Shadow hand's.
//!
//! Joint order (the first 24 floats of the state): WRJ2 WRJ1, FFJ4..FFJ1,
//! MFJ4..MFJ1, RFJ4..RFJ1, LFJ5..LFJ1, THJ5..THJ1.

use rapier3d::na::{Unit, Vector3};

/// Number of joints.
pub const NUM_JOINTS: usize = 24;
/// Number of actuators.
pub const NUM_ACTUATORS: usize = 20;

/// Collision geometry of a link, in its body frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Geometry {
    /// A massive hub without collider (between two joints at one point).
    Hub,
    /// A capsule from the body origin along `dir` for `length` metres.
    Capsule {
        dir: [f32; 3],
        length: f32,
        radius: f32,
    },
    /// A box centred at `center` with half extents `half`.
    Cuboid { center: [f32; 3], half: [f32; 3] },
}

/// One joint and the link it moves.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSpec {
    pub joint: &'static str,
    /// Parent link index; `None` for the fixed forearm.
    pub parent: Option<usize>,
    /// Joint anchor (= this link's body origin) at the reference pose.
    pub anchor: [f32; 3],
    pub axis: [f32; 3],
    pub lower: f32,
    pub upper: f32,
    pub geometry: Geometry,
    pub mass_kg: f32,
}

impl LinkSpec {
    pub fn unit_axis(&self) -> Unit<Vector3<f32>> {
        Unit::new_normalize(Vector3::from(self.axis))
    }
}

/// How an actuator drives joints: one joint, or the coupled PIP+DIP pair
/// (target split evenly, as the Shadow hand's tendon couples J1 and J2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Drive {
    Single(usize),
    Coupled(usize, usize),
}

/// One actuator: name, what it drives and its target range (rad).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActuatorSpec {
    pub name: &'static str,
    pub drive: Drive,
    pub lower: f32,
    pub upper: f32,
}

const FINGER_FLEX: [f32; 3] = [0.0, -1.0, 0.0];
const UP: [f32; 3] = [0.0, 0.0, 1.0];
const THUMB_DIR: [f32; 3] = [0.6, -0.8, 0.0];
/// Flexion axis of the thumb: THUMB_DIR x UP.
const THUMB_FLEX: [f32; 3] = [-0.8, -0.6, 0.0];

fn at(base: [f32; 3], dir: [f32; 3], s: f32) -> [f32; 3] {
    [
        base[0] + dir[0] * s,
        base[1] + dir[1] * s,
        base[2] + dir[2] * s,
    ]
}

/// The four links (J4 hub, proximal, middle, distal) of a finger whose
/// knuckle is at `base`, attached to `parent`; `first` is the index of J4.
fn finger(names: [&'static str; 4], parent: usize, first: usize, base: [f32; 3]) -> [LinkSpec; 4] {
    let x = [1.0, 0.0, 0.0];
    let capsule = |length, radius| Geometry::Capsule {
        dir: x,
        length,
        radius,
    };
    let half_pi = std::f32::consts::FRAC_PI_2;
    [
        LinkSpec {
            joint: names[0],
            parent: Some(parent),
            anchor: base,
            axis: UP,
            lower: -0.349,
            upper: 0.349,
            geometry: Geometry::Hub,
            mass_kg: 0.008,
        },
        LinkSpec {
            joint: names[1],
            parent: Some(first),
            anchor: base,
            axis: FINGER_FLEX,
            lower: -0.262,
            upper: half_pi,
            geometry: capsule(0.045, 0.0095),
            mass_kg: 0.03,
        },
        LinkSpec {
            joint: names[2],
            parent: Some(first + 1),
            anchor: at(base, x, 0.045),
            axis: FINGER_FLEX,
            lower: 0.0,
            upper: half_pi,
            geometry: capsule(0.025, 0.009),
            mass_kg: 0.015,
        },
        LinkSpec {
            joint: names[3],
            parent: Some(first + 2),
            anchor: at(base, x, 0.070),
            axis: FINGER_FLEX,
            lower: 0.0,
            upper: half_pi,
            geometry: capsule(0.026, 0.0085),
            mass_kg: 0.01,
        },
    ]
}

/// The 24 links in joint order.
pub fn links() -> Vec<LinkSpec> {
    let o = [0.0, 0.0, 0.0];
    let mut v = vec![
        LinkSpec {
            joint: "WRJ2",
            parent: None,
            anchor: o,
            axis: UP,
            lower: -0.524,
            upper: 0.175,
            geometry: Geometry::Hub,
            mass_kg: 0.1,
        },
        // Palm without the little finger's metacarpal strip (y > 0.012).
        LinkSpec {
            joint: "WRJ1",
            parent: Some(0),
            anchor: o,
            axis: FINGER_FLEX,
            lower: -0.698,
            upper: 0.489,
            geometry: Geometry::Cuboid {
                center: [0.05, -0.0155, 0.0],
                half: [0.05, 0.0275, 0.0125],
            },
            mass_kg: 0.3,
        },
    ];
    v.extend(finger(
        ["FFJ4", "FFJ3", "FFJ2", "FFJ1"],
        1,
        2,
        [0.1, -0.033, 0.0],
    ));
    v.extend(finger(
        ["MFJ4", "MFJ3", "MFJ2", "MFJ1"],
        1,
        6,
        [0.1, -0.011, 0.0],
    ));
    v.extend(finger(
        ["RFJ4", "RFJ3", "RFJ2", "RFJ1"],
        1,
        10,
        [0.1, 0.011, 0.0],
    ));
    // LFJ5 lifts the metacarpal strip along the palm's little-finger edge
    // (cupping), which tips an object on the palm towards the thumb.
    v.push(LinkSpec {
        joint: "LFJ5",
        parent: Some(1),
        anchor: [0.03, 0.012, 0.0],
        axis: [1.0, 0.0, 0.0],
        lower: 0.0,
        upper: 0.785,
        geometry: Geometry::Cuboid {
            center: [0.035, 0.0155, 0.0],
            half: [0.035, 0.0155, 0.0125],
        },
        mass_kg: 0.05,
    });
    v.extend(finger(
        ["LFJ4", "LFJ3", "LFJ2", "LFJ1"],
        14,
        15,
        [0.1, 0.033, 0.0],
    ));
    let tb = [0.04, -0.036, 0.014];
    let capsule = |length, radius| Geometry::Capsule {
        dir: THUMB_DIR,
        length,
        radius,
    };
    v.extend([
        LinkSpec {
            joint: "THJ5",
            parent: Some(1),
            anchor: tb,
            axis: [-1.0, 0.0, 0.0],
            lower: -1.047,
            upper: 1.047,
            geometry: Geometry::Hub,
            mass_kg: 0.01,
        },
        LinkSpec {
            joint: "THJ4",
            parent: Some(19),
            anchor: tb,
            axis: UP,
            lower: 0.0,
            upper: 1.222,
            geometry: capsule(0.038, 0.011),
            mass_kg: 0.03,
        },
        LinkSpec {
            joint: "THJ3",
            parent: Some(20),
            anchor: at(tb, THUMB_DIR, 0.038),
            axis: THUMB_FLEX,
            lower: -0.209,
            upper: 0.209,
            geometry: Geometry::Hub,
            mass_kg: 0.008,
        },
        LinkSpec {
            joint: "THJ2",
            parent: Some(21),
            anchor: at(tb, THUMB_DIR, 0.038),
            axis: UP,
            lower: -0.524,
            upper: 0.524,
            geometry: capsule(0.032, 0.01),
            mass_kg: 0.02,
        },
        LinkSpec {
            joint: "THJ1",
            parent: Some(22),
            anchor: at(tb, THUMB_DIR, 0.070),
            axis: THUMB_FLEX,
            lower: -0.262,
            upper: 1.571,
            geometry: capsule(0.0275, 0.0095),
            mass_kg: 0.015,
        },
    ]);
    v
}

/// The 20 actuators (order of the action vector): WRJ2 WRJ1, FFJ4 FFJ3 FFJ0,
/// MFJ4 MFJ3 MFJ0, RFJ4 RFJ3 RFJ0, LFJ5 LFJ4 LFJ3 LFJ0, THJ5..THJ1. `xFJ0`
/// drives the coupled PIP+DIP pair over `[0, pi]`.
pub fn actuators() -> Vec<ActuatorSpec> {
    let l = links();
    let single = |name, j: usize| ActuatorSpec {
        name,
        drive: Drive::Single(j),
        lower: l[j].lower,
        upper: l[j].upper,
    };
    let coupled = |name, j: usize| ActuatorSpec {
        name,
        drive: Drive::Coupled(j, j + 1),
        lower: 0.0,
        upper: l[j].upper + l[j + 1].upper,
    };
    vec![
        single("WRJ2", 0),
        single("WRJ1", 1),
        single("FFJ4", 2),
        single("FFJ3", 3),
        coupled("FFJ0", 4),
        single("MFJ4", 6),
        single("MFJ3", 7),
        coupled("MFJ0", 8),
        single("RFJ4", 10),
        single("RFJ3", 11),
        coupled("RFJ0", 12),
        single("LFJ5", 14),
        single("LFJ4", 15),
        single("LFJ3", 16),
        coupled("LFJ0", 17),
        single("THJ5", 19),
        single("THJ4", 20),
        single("THJ3", 21),
        single("THJ2", 22),
        single("THJ1", 23),
    ]
}

/// Joint position targets (24) for an action (20), clamped to each joint's
/// limits; a coupled target `t` gives `t / 2` to each of the pair.
pub fn joint_targets(
    actuators: &[ActuatorSpec],
    links: &[LinkSpec],
    action: &[f32],
) -> [f32; NUM_JOINTS] {
    let mut out = [0.0; NUM_JOINTS];
    for (a, &u) in actuators.iter().zip(action) {
        let u = u.clamp(a.lower, a.upper);
        match a.drive {
            Drive::Single(j) => out[j] = u,
            Drive::Coupled(j, k) => {
                out[j] = (0.5 * u).clamp(links[j].lower, links[j].upper);
                out[k] = (0.5 * u).clamp(links[k].lower, links[k].upper);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_structure() {
        let l = links();
        assert_eq!(l.len(), NUM_JOINTS);
        let a = actuators();
        assert_eq!(a.len(), NUM_ACTUATORS);
        // Every joint is driven exactly once.
        let mut driven = [0; NUM_JOINTS];
        for act in &a {
            match act.drive {
                Drive::Single(j) => driven[j] += 1,
                Drive::Coupled(j, k) => {
                    driven[j] += 1;
                    driven[k] += 1;
                }
            }
        }
        assert_eq!(driven, [1; NUM_JOINTS]);
        // Parents come first; names are unique.
        for (i, link) in l.iter().enumerate() {
            assert!(link.parent.is_none_or(|p| p < i), "{}", link.joint);
            assert!(link.lower < link.upper);
            assert_eq!(l.iter().filter(|o| o.joint == link.joint).count(), 1);
        }
        let t = joint_targets(&a, &l, &[3.0; NUM_ACTUATORS]);
        assert_eq!(t[4], t[5]); // FFJ2 = FFJ1 under the coupling
        assert!((t[4] - 1.5).abs() < 1e-6);
    }
}
