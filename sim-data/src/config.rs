//! Simulator configuration: control timing, physics and the hand's actuation.
//!
//! The reference file is `configs/sim.toml` (commented); every field has a
//! default, so an empty file is the default config.

use serde::{Deserialize, Serialize};

use crate::SimError;

/// Everything that shapes a simulated episode. Units are in the names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Time between two recorded frames (one action per frame).
    pub control_period_s: f32,
    /// Physics steps per control period.
    pub physics_substeps: u32,
    /// Rapier solver iterations per physics step (its TGS-soft substeps;
    /// each recomputes the multibodies' dynamics).
    pub solver_iterations: u32,
    /// Constraint (PGS) iterations within each solver iteration: cheap, and
    /// what keeps joint limits and contacts tight.
    pub pgs_iterations: u32,

    /// Drive the wrist as a kinematic servo and solve each finger chain as its
    /// own multibody rooted at the palm (about 3x faster), instead of the
    /// whole hand as one 24-dof multibody (see `wrist`).
    pub kinematic_wrist: bool,
    /// Unrecorded steps at the start, while the hand reaches its random initial
    /// pose and the cube settles on the palm.
    pub settle_steps: u32,
    /// Every `random_action_every`-th action (steps `k-1, 2k-1, ...`) is drawn
    /// uniformly from the actuators' range; 0 disables it.
    pub random_action_every: u32,
    /// Frames per behaviour segment: a new behaviour is drawn at each segment.
    pub segment_steps: u32,
    pub cube: CubeConfig,
    pub actuators: ActuatorConfig,
    /// The cube has left the hand when its centre is further than this from
    /// the palm's centre ...
    pub drop_distance_m: f32,
    /// ... or lower than this above the palm surface (palm frame).
    pub drop_height_m: f32,
    /// Attempts per trajectory before generation gives up (see `episode`).
    pub max_attempts: u32,
}

/// The free cube.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CubeConfig {
    pub size_m: f32,
    pub mass_kg: f32,
    pub friction: f32,
    /// Uniform noise on the initial position in the palm plane.
    pub position_noise_m: f32,
}

/// Position-controlled actuators (rapier joint motors, acceleration based).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActuatorConfig {
    pub stiffness: f32,
    pub damping: f32,
    /// Per-joint motor force limit (N m for revolute joints).
    pub max_torque_nm: f32,
    pub hand_friction: f32,
    /// Uniform noise (fraction of each actuator's range) on the initial pose.
    pub initial_pose_noise: f32,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            control_period_s: 0.04,
            physics_substeps: 1,
            solver_iterations: 4,
            pgs_iterations: 8,
            kinematic_wrist: true,
            settle_steps: 10,
            random_action_every: 4,
            segment_steps: 50,
            cube: CubeConfig::default(),
            actuators: ActuatorConfig::default(),
            drop_distance_m: 0.15,
            drop_height_m: 0.0,
            max_attempts: 20,
        }
    }
}

impl Default for CubeConfig {
    fn default() -> Self {
        Self {
            size_m: 0.05,
            mass_kg: 0.1,
            friction: 1.0,
            position_noise_m: 0.008,
        }
    }
}

impl Default for ActuatorConfig {
    fn default() -> Self {
        Self {
            stiffness: 400.0,
            damping: 40.0,
            max_torque_nm: 2.0,
            hand_friction: 1.0,
            initial_pose_noise: 0.1,
        }
    }
}

impl SimConfig {
    /// Parses TOML and validates it.
    pub fn from_toml(text: &str) -> Result<Self, SimError> {
        let cfg: Self = toml::from_str(text).map_err(SimError::ConfigParse)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config as TOML (stored in every recording's header).
    pub fn to_toml(&self) -> Result<String, SimError> {
        toml::to_string(self).map_err(SimError::ConfigSerialize)
    }

    /// Physics step length.
    pub fn dt_s(&self) -> f32 {
        self.control_period_s / self.physics_substeps as f32
    }

    /// The control period in ns, rounded to whole microseconds (so 0.04 s,
    /// not exactly representable as f32, is 40,000,000 ns).
    pub fn control_period_ns(&self) -> u64 {
        (f64::from(self.control_period_s) * 1e6).round() as u64 * 1000
    }

    /// Checks ranges; physics with these values is stable.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad =
            |field: &'static str, rule: &'static str| Err(SimError::InvalidConfig { field, rule });
        let pos = |x: f32| x.is_finite() && x > 0.0;
        if !pos(self.control_period_s) || self.control_period_s > 0.5 {
            return bad("control_period_s", "in (0, 0.5]");
        }
        if !(1..=100).contains(&self.physics_substeps) {
            return bad("physics_substeps", "in 1..=100");
        }
        if self.dt_s() > 0.05 {
            return bad(
                "physics_substeps",
                "control_period_s / physics_substeps <= 0.05 s",
            );
        }
        if !(1..=50).contains(&self.solver_iterations) {
            return bad("solver_iterations", "in 1..=50");
        }
        if !(1..=50).contains(&self.pgs_iterations) {
            return bad("pgs_iterations", "in 1..=50");
        }
        if self.segment_steps == 0 {
            return bad("segment_steps", "at least 1");
        }
        if !(pos(self.cube.size_m) && self.cube.size_m <= 0.08) {
            return bad("cube.size_m", "in (0, 0.08]");
        }
        if !pos(self.cube.mass_kg) {
            return bad("cube.mass_kg", "positive");
        }
        if !(self.cube.friction.is_finite() && self.cube.friction >= 0.0) {
            return bad("cube.friction", "non-negative");
        }
        if !(self.cube.position_noise_m.is_finite()
            && (0.0..=0.02).contains(&self.cube.position_noise_m))
        {
            return bad("cube.position_noise_m", "in [0, 0.02]");
        }
        let a = &self.actuators;
        if !(pos(a.stiffness) && a.damping.is_finite() && a.damping >= 0.0 && pos(a.max_torque_nm))
        {
            return bad(
                "actuators",
                "stiffness and max_torque_nm positive, damping non-negative",
            );
        }
        if !(a.hand_friction.is_finite() && a.hand_friction >= 0.0) {
            return bad("actuators.hand_friction", "non-negative");
        }
        if !(0.0..=0.5).contains(&a.initial_pose_noise) {
            return bad("actuators.initial_pose_noise", "in [0, 0.5]");
        }
        if !pos(self.drop_distance_m) || !self.drop_height_m.is_finite() {
            return bad("drop_distance_m", "positive (and drop_height_m finite)");
        }
        if self.max_attempts == 0 {
            return bad("max_attempts", "at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_file_is_the_default_and_valid() {
        let text = include_str!("../../configs/sim.toml");
        assert_eq!(SimConfig::from_toml(text).unwrap(), SimConfig::default());
        assert_eq!(SimConfig::from_toml("").unwrap(), SimConfig::default());
        let round = SimConfig::from_toml(&SimConfig::default().to_toml().unwrap()).unwrap();
        assert_eq!(round, SimConfig::default());
    }

    #[test]
    fn control_period_is_whole_microseconds() {
        assert_eq!(SimConfig::default().control_period_ns(), 40_000_000);
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values() {
        assert!(SimConfig::from_toml("control_period = 0.04").is_err());
        assert!(SimConfig::from_toml("[cube]\nsize = 1").is_err());
        assert!(SimConfig::from_toml("physics_substeps = 0").is_err());
        assert!(SimConfig::from_toml("control_period_s = 0.2\nphysics_substeps = 2").is_err());
        assert!(SimConfig::from_toml("[cube]\nmass_kg = -1.0").is_err());
    }
}
