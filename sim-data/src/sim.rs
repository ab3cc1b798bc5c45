//! The hand-cube world on rapier3d: a fixed forearm, the hand as one
//! reduced-coordinate multibody (24 revolute joints with limits and position
//! motors) and a free cube on the upturned palm.
//!
//! Hand links collide only with the cube (collision groups), so the cube is
//! the only thing contacts act on: it moves only when the hand touches it.

use std::num::NonZeroUsize;

use crate::layout::{JOINT_DIM, STATE_DIM};
use rapier3d::prelude::*;

use crate::config::SimConfig;
use crate::hand::{self, ActuatorSpec, Geometry, LinkSpec, NUM_JOINTS};
use crate::wrist::WristServo;

const HAND: Group = Group::GROUP_1;
const CUBE: Group = Group::GROUP_2;

/// Index of the palm in the link list.
const PALM: usize = 1;

/// Centre of the palm's upper surface at the reference pose (where the cube rests).
pub const PALM_REST: [f32; 3] = [0.065, -0.005, 0.0125];

/// Where the cube is relative to the hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CubeStatus {
    InHand,
    /// Too far from the palm's centre or below its surface.
    Dropped,
}

/// One simulated hand and cube.
pub struct HandCubeSim {
    cfg: SimConfig,
    links: Vec<LinkSpec>,
    actuators: Vec<ActuatorSpec>,
    gravity: Vector<f32>,
    params: IntegrationParameters,
    pipeline: PhysicsPipeline,
    islands: IslandManager,
    broad_phase: DefaultBroadPhase,
    narrow_phase: NarrowPhase,
    bodies: RigidBodySet,
    colliders: ColliderSet,
    impulse_joints: ImpulseJointSet,
    multibody_joints: MultibodyJointSet,
    ccd: CCDSolver,
    link_bodies: Vec<RigidBodyHandle>,
    /// Body each joint angle is measured against (its parent link, or the
    /// kinematic base of a finger chain).
    joint_parents: Vec<RigidBodyHandle>,
    joints: Vec<MultibodyJointHandle>,
    /// With a kinematic wrist: its servo and each chain base with its anchor.
    wrist: Option<WristServo>,
    bases: Vec<(RigidBodyHandle, [f32; 3])>,
    cube: RigidBodyHandle,
}

impl HandCubeSim {
    /// Builds the world at the reference pose, the cube resting on the palm at
    /// `cube_offset` (m, palm plane) from its centre, rotated by `cube_yaw` (rad).
    pub fn new(cfg: &SimConfig, cube_offset: [f32; 2], cube_yaw: f32) -> Self {
        let links = hand::links();
        let actuators = hand::actuators();
        let mut bodies = RigidBodySet::new();
        let mut colliders = ColliderSet::new();
        let mut multibody_joints = MultibodyJointSet::new();
        let forearm = bodies.insert(RigidBodyBuilder::fixed());
        let hand_groups = InteractionGroups::new(HAND, CUBE);
        let a = &cfg.actuators;
        let mut link_bodies: Vec<RigidBodyHandle> = Vec::with_capacity(links.len());
        let mut joints = Vec::with_capacity(links.len());
        let mut joint_parents = Vec::with_capacity(links.len());
        let mut bases = Vec::new();
        let kinematic = cfg.kinematic_wrist;
        for (i, link) in links.iter().enumerate() {
            let origin = vector![link.anchor[0], link.anchor[1], link.anchor[2]];
            let wrist_link = i <= PALM;
            let mut rb = if kinematic && wrist_link {
                RigidBodyBuilder::kinematic_position_based()
            } else {
                RigidBodyBuilder::dynamic()
            }
            .translation(origin)
            .can_sleep(false);
            if link.geometry == Geometry::Hub {
                // Hubs get the inertia of a ring of radius 8 cm (wrist) or 5 cm,
                // far above their physical value, to keep neighbouring
                // inertias within a few orders of magnitude for the solver.
                let r: f32 = if link.parent.is_none() { 0.08 } else { 0.05 };
                let inertia = link.mass_kg * r * r;
                rb = rb.additional_mass_properties(MassProperties::new(
                    Point::origin(),
                    link.mass_kg,
                    vector![inertia, inertia, inertia],
                ));
            }
            let body = bodies.insert(rb);
            if let Some(shape) = collider_for(&link.geometry) {
                let c = shape
                    .mass(link.mass_kg)
                    .friction(a.hand_friction)
                    .collision_groups(hand_groups);
                colliders.insert_with_parent(c, body, &mut bodies);
            }
            let (mut parent, mut parent_origin) = match link.parent {
                Some(p) => (link_bodies[p], links[p].anchor),
                None => (forearm, [0.0; 3]),
            };
            if kinematic && link.parent == Some(PALM) {
                // A kinematic base at the chain's first joint, moved with the palm.
                let base = bodies.insert(
                    RigidBodyBuilder::kinematic_position_based()
                        .translation(origin)
                        .can_sleep(false),
                );
                bases.push((base, link.anchor));
                parent = base;
                parent_origin = link.anchor;
            }
            link_bodies.push(body);
            joint_parents.push(parent);
            if kinematic && wrist_link {
                joints.push(MultibodyJointHandle::invalid());
                continue;
            }
            let local1 = point![
                link.anchor[0] - parent_origin[0],
                link.anchor[1] - parent_origin[1],
                link.anchor[2] - parent_origin[2]
            ];
            let joint = RevoluteJointBuilder::new(link.unit_axis())
                .local_anchor1(local1)
                .local_anchor2(Point::origin())
                .limits([link.lower, link.upper])
                .motor_model(MotorModel::AccelerationBased)
                .motor_position(0.0, a.stiffness, a.damping)
                .motor_max_force(a.max_torque_nm);
            // Bodies are inserted parent first, so every insert extends the tree.
            // (Impulse joints were tried: 20x faster, but their motors only
            // see the two bodies they join and cannot hold the hand up.)
            let handle = multibody_joints
                .insert(parent, body, joint, true)
                .unwrap_or_else(MultibodyJointHandle::invalid);
            joints.push(handle);
        }
        let h = 0.5 * cfg.cube.size_m;
        let cube_pos = vector![
            PALM_REST[0] + cube_offset[0],
            PALM_REST[1] + cube_offset[1],
            PALM_REST[2] + h + 0.0005
        ];
        let cube = bodies.insert(
            RigidBodyBuilder::dynamic()
                .translation(cube_pos)
                .rotation(vector![0.0, 0.0, cube_yaw])
                .can_sleep(false),
        );
        colliders.insert_with_parent(
            ColliderBuilder::cuboid(h, h, h)
                .mass(cfg.cube.mass_kg)
                .friction(cfg.cube.friction)
                .collision_groups(InteractionGroups::new(CUBE, HAND)),
            cube,
            &mut bodies,
        );
        let mut params = IntegrationParameters {
            dt: cfg.dt_s(),
            ..IntegrationParameters::default()
        };
        params.num_internal_pgs_iterations = cfg.pgs_iterations as usize;
        params.num_solver_iterations =
            NonZeroUsize::new(cfg.solver_iterations as usize).unwrap_or(NonZeroUsize::MIN);
        Self {
            cfg: cfg.clone(),
            links,
            actuators,
            gravity: vector![0.0, 0.0, -9.81],
            params,
            pipeline: PhysicsPipeline::new(),
            islands: IslandManager::new(),
            broad_phase: DefaultBroadPhase::new(),
            narrow_phase: NarrowPhase::new(),
            bodies,
            colliders,
            impulse_joints: ImpulseJointSet::new(),
            multibody_joints,
            ccd: CCDSolver::new(),
            link_bodies,
            joint_parents,
            joints,
            wrist: kinematic.then(WristServo::default),
            bases,
            cube,
        }
    }

    pub fn actuators(&self) -> &[ActuatorSpec] {
        &self.actuators
    }

    pub fn links(&self) -> &[LinkSpec] {
        &self.links
    }

    /// Sets the actuators' position targets (20 floats, clamped to range).
    pub fn set_action(&mut self, action: &[f32]) {
        let targets = hand::joint_targets(&self.actuators, &self.links, action);
        let a = &self.cfg.actuators;
        let (k, c) = (a.stiffness, a.damping);
        if let Some(w) = &mut self.wrist {
            w.target = [targets[0], targets[1]];
        }
        for (handle, target) in self.joints.iter().zip(targets) {
            if let Some(link) = self
                .multibody_joints
                .get_mut(*handle)
                .and_then(|(mb, id)| mb.link_mut(id))
            {
                link.joint
                    .data
                    .set_motor_position(JointAxis::AngX, target, k, c);
            }
        }
    }

    /// Advances one control period (`physics_substeps` physics steps).
    pub fn step(&mut self) {
        for _ in 0..self.cfg.physics_substeps {
            self.move_kinematic_wrist();
            self.pipeline.step(
                &self.gravity,
                &self.params,
                &mut self.islands,
                &mut self.broad_phase,
                &mut self.narrow_phase,
                &mut self.bodies,
                &mut self.colliders,
                &mut self.impulse_joints,
                &mut self.multibody_joints,
                &mut self.ccd,
                None,
                &(),
                &(),
            );
        }
    }

    /// Advances the wrist servo one physics step and places the palm (moved
    /// with a velocity, for its contacts) and the chain bases (placed, so the
    /// fingers start the step at the palm's new pose).
    fn move_kinematic_wrist(&mut self) {
        let Some(w) = &mut self.wrist else { return };
        let a = &self.cfg.actuators;
        w.advance(self.params.dt, a.stiffness, a.damping, &self.links);
        let (hub, palm) = w.poses(&self.links);
        for (handle, pose) in [(self.link_bodies[0], hub), (self.link_bodies[PALM], palm)] {
            if let Some(b) = self.bodies.get_mut(handle) {
                b.set_next_kinematic_position(pose);
            }
        }
        for (handle, anchor) in &self.bases {
            let pose = palm * Translation::from(vector![anchor[0], anchor[1], anchor[2]]);
            if let Some(b) = self.bodies.get_mut(*handle) {
                b.set_position(pose, true);
                b.set_next_kinematic_position(pose);
            }
        }
    }

    fn rotation(&self, h: RigidBodyHandle) -> Rotation<f32> {
        self.bodies
            .get(h)
            .map_or_else(Rotation::identity, |b| *b.rotation())
    }

    /// World position of each link's body origin (its joint anchor).
    pub fn link_positions(&self) -> Vec<[f32; 3]> {
        let at = |h: &RigidBodyHandle| {
            self.bodies.get(*h).map_or([f32::NAN; 3], |b| {
                let t = b.translation();
                [t.x, t.y, t.z]
            })
        };
        self.link_bodies.iter().map(at).collect()
    }

    /// Joint angles (rad): each link's rotation relative to its parent about
    /// the joint axis (exact for revolute joints).
    pub fn joint_angles(&self) -> [f32; NUM_JOINTS] {
        let mut q = [0.0; NUM_JOINTS];
        for (i, link) in self.links.iter().enumerate() {
            if let (Some(w), true) = (&self.wrist, i <= PALM) {
                q[i] = w.q[i];
                continue;
            }
            let rel =
                self.rotation(self.joint_parents[i]).inverse() * self.rotation(self.link_bodies[i]);
            let s = rel.imag().dot(&link.unit_axis());
            q[i] = wrap(2.0 * s.atan2(rel.w));
        }
        q
    }

    /// The 31-float state: joint angles, cube position, cube quaternion
    /// `[x, y, z, w]` with `w >= 0` (one representative of +-q).
    pub fn state(&self) -> [f32; STATE_DIM] {
        let mut s = [0.0; STATE_DIM];
        s[..JOINT_DIM].copy_from_slice(&self.joint_angles());
        if let Some(cube) = self.bodies.get(self.cube) {
            let p = cube.translation();
            s[JOINT_DIM..JOINT_DIM + 3].copy_from_slice(&[p.x, p.y, p.z]);
            let q = cube.rotation();
            let sign = if q.w < 0.0 { -1.0 } else { 1.0 };
            s[JOINT_DIM + 3..].copy_from_slice(&[sign * q.i, sign * q.j, sign * q.k, sign * q.w]);
        }
        s
    }

    /// Whether the cube is still on (or in) the hand, judged in the palm frame.
    pub fn cube_status(&self) -> CubeStatus {
        let (Some(palm), Some(cube)) = (
            self.bodies.get(self.link_bodies[PALM]),
            self.bodies.get(self.cube),
        ) else {
            return CubeStatus::Dropped;
        };
        let local = palm
            .position()
            .inverse_transform_point(&Point::from(*cube.translation()));
        let rest = point![PALM_REST[0], PALM_REST[1], PALM_REST[2]];
        let far = (local - rest).norm() > self.cfg.drop_distance_m;
        let below = local.z - PALM_REST[2] < self.cfg.drop_height_m;
        if far || below {
            CubeStatus::Dropped
        } else {
            CubeStatus::InHand
        }
    }
}

fn wrap(a: f32) -> f32 {
    use std::f32::consts::{PI, TAU};
    if a > PI {
        a - TAU
    } else if a < -PI {
        a + TAU
    } else {
        a
    }
}

fn collider_for(g: &Geometry) -> Option<ColliderBuilder> {
    match *g {
        Geometry::Hub => None,
        Geometry::Capsule {
            dir,
            length,
            radius,
        } => {
            let b = point![dir[0] * length, dir[1] * length, dir[2] * length];
            Some(ColliderBuilder::capsule_from_endpoints(
                Point::origin(),
                b,
                radius,
            ))
        }
        Geometry::Cuboid { center, half } => Some(
            ColliderBuilder::cuboid(half[0], half[1], half[2])
                .translation(vector![center[0], center[1], center[2]]),
        ),
    }
}
