//! The wrist as a kinematic servo (when `kinematic_wrist` is set): the two
//! wrist joints follow their targets with the same law as the joint motors,
//! `accel = stiffness * (target - q) - damping * dq`, integrated implicitly
//! (stable at any step) and stopped at the limits. The forearm is treated as
//! infinitely strong, so the palm is a kinematic body and each finger chain
//! is a small multibody rooted at it: the solver's cost grows with the square
//! of a multibody's dofs, and 5 chains of 4-5 dofs cost far less than one
//! chain of 24.

use rapier3d::na::{Isometry3, UnitQuaternion, Vector3};

use crate::hand::LinkSpec;

/// State of the two wrist joints (WRJ2, WRJ1).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WristServo {
    pub q: [f32; 2],
    pub dq: [f32; 2],
    pub target: [f32; 2],
}

impl WristServo {
    /// Advances `dt` seconds; `links` are the WRJ2 and WRJ1 link specs.
    pub fn advance(&mut self, dt: f32, stiffness: f32, damping: f32, links: &[LinkSpec]) {
        for (i, link) in links.iter().take(2).enumerate() {
            let (q, dq) = (self.q[i], self.dq[i]);
            let mut v = (dq + dt * stiffness * (self.target[i] - q))
                / (1.0 + dt * damping + dt * dt * stiffness);
            let mut next = q + dt * v;
            if next < link.lower || next > link.upper {
                next = next.clamp(link.lower, link.upper);
                v = 0.0;
            }
            self.q[i] = next;
            self.dq[i] = v;
        }
    }

    /// Poses of the wrist hub and the palm (both anchored at the origin).
    pub fn poses(&self, links: &[LinkSpec]) -> (Isometry3<f32>, Isometry3<f32>) {
        let r0 = UnitQuaternion::from_axis_angle(&links[0].unit_axis(), self.q[0]);
        let r1 = r0 * UnitQuaternion::from_axis_angle(&links[1].unit_axis(), self.q[1]);
        let at = |r| Isometry3::from_parts(Vector3::from(links[1].anchor).into(), r);
        (at(r0), at(r1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hand::links;

    #[test]
    fn reaches_targets_and_respects_limits() {
        let l = links();
        let mut w = WristServo {
            target: [-0.3, 2.0],
            ..Default::default()
        };
        for _ in 0..100 {
            w.advance(0.04, 400.0, 40.0, &l);
        }
        assert!((w.q[0] + 0.3).abs() < 1e-3, "{:?}", w.q);
        assert_eq!(w.q[1], l[1].upper);
        let (_, palm) = w.poses(&l);
        assert!(palm.rotation.angle() > 0.3);
    }
}
