//! The daemon's configuration: `configs/runtime.toml` (commented reference,
//! built into the binary), parsed strictly and validated.

use std::path::{Path, PathBuf};

use ebm_core::rollout::RolloutConfig;
use ebm_core::sampling::langevin::LangevinConfig;
use serde::{Deserialize, Serialize};

use crate::RuntimeError;

mod warm;
pub use warm::WarmStartConfig;

/// The reference config, also the built-in default.
pub const DEFAULT_RUNTIME_TOML: &str = include_str!("../../../configs/runtime.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    pub daemon_id: String,
    pub key_prefix: String,
    pub device: String,
    pub seed: u64,
    /// What to do with robots that match no served model: `reply` (listen
    /// to every robot's keys and answer those with `UnknownRobot`) or
    /// `ignore` (listen only to the served patterns: for a fleet split
    /// across daemons, each leaving the others' robots alone).
    #[serde(default)]
    pub unknown_robots: UnknownRobots,
    /// The default model: serves robots that match no `[[models]]` entry.
    #[serde(default)]
    pub model: Option<ModelConfig>,
    /// Models bound to robot-id patterns, tried in order before the default.
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    pub forecast: ForecastConfig,
    pub query: QueryConfig,
    pub ood: OodConfig,
    pub denoise: DenoiseConfig,
    pub engine: EngineConfig,
    pub zenoh: ZenohConfig,
    pub status: StatusConfig,
    /// ROS 2 robots served over rmw_zenoh (see [`crate::ros2`]).
    #[serde(default)]
    pub ros2: Vec<crate::ros2::Ros2Robot>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownRobots {
    #[default]
    Reply,
    Ignore,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Checkpoint directory; relative paths are resolved by [`RuntimeConfig::load`].
    pub checkpoint: PathBuf,
    /// Serve a seeded untrained model when the checkpoint is missing.
    #[serde(default)]
    pub allow_untrained: bool,
    /// The state size of that untrained model (the robot's; required with
    /// `allow_untrained`: the daemon knows no robot's size).
    #[serde(default)]
    pub untrained_state_dim: usize,
}

/// A `[[models]]` entry: the robots matching `robots` are served by
/// `checkpoint`, scored by `ood_checkpoints` (empty: by `checkpoint`) and
/// denoised with `denoise` (unset: the top-level `[denoise]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// A robot-id glob: `arm-*`, `*-left`, `fetch-0`.
    pub robots: String,
    pub checkpoint: PathBuf,
    #[serde(default)]
    pub ood_checkpoints: Vec<PathBuf>,
    #[serde(default)]
    pub denoise: Option<DenoiseConfig>,
    /// Warm starts of these robots' forecasts (unset: `[forecast.warm]`):
    /// whether they keep the forecast error depends on the model, so each
    /// model's are chosen on its own replayed episodes.
    #[serde(default)]
    pub warm: Option<WarmStartConfig>,
}

/// One served model as the daemon runs it: the pattern of its robots, its
/// checkpoints and denoiser (the default model's pattern is `*`, last).
#[derive(Debug, Clone, PartialEq)]
pub struct Serving {
    pub robots: ebm_msgs::RobotPattern,
    pub model: ModelConfig,
    pub ood_checkpoints: Vec<PathBuf>,
    pub denoise: DenoiseConfig,
    pub warm: WarmStartConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecastConfig {
    pub rate_hz: f64,
    pub horizon: usize,
    pub particles: usize,
    pub init_noise: f64,
    /// 0: no deadline.
    pub deadline_ms: u64,
    pub langevin: LangevinConfig,
    /// Warm starts of the default model and of `[[models]]` entries without
    /// their own (off by default).
    #[serde(default)]
    pub warm: WarmStartConfig,
}

impl ForecastConfig {
    pub fn rollout(&self) -> RolloutConfig {
        RolloutConfig {
            horizon: self.horizon,
            particles: self.particles,
            init_noise: self.init_noise,
            langevin: self.langevin.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    pub max_horizon: usize,
    pub max_particles: usize,
    pub queue: usize,
    /// While streaming robots' forecasts are due, queries get at most this
    /// share of the inference thread's time (1: queries always first);
    /// with nothing else to do they get all of it.
    #[serde(default = "default_query_max_share")]
    pub max_share: f64,
}

fn default_query_max_share() -> f64 {
    0.5
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OodConfig {
    pub flag_percentile: f64,
    pub online_calibration: usize,
    /// A state more than this many training standard deviations from the
    /// training mean in any dimension (or not finite once normalised) is
    /// outside the model's range: it gets a flagged OOD score at the 100th
    /// percentile with the reason, and no forecast or denoised state.
    #[serde(default = "default_max_sigma")]
    pub max_sigma: f64,
    /// Models whose energies compose into the OOD score (see
    /// [`crate::ood`]), each with its own context length;
    /// empty: the forecast model scores transitions too.
    #[serde(default)]
    pub checkpoints: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenoiseConfig {
    pub sigma: f64,
    pub dynamics_weight: f64,
    pub langevin: LangevinConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    pub max_batch: usize,
    pub max_robots: usize,
    pub output_queue: usize,
    /// A robot that sent no state for this long gives its slot back (its
    /// history, pending state, denoiser prior and OOD window are dropped), so
    /// ids published once cannot lock later robots out; 0: never.
    #[serde(default = "default_robot_idle_s")]
    pub robot_idle_s: f64,
}

fn default_max_sigma() -> f64 {
    50.0
}

fn default_robot_idle_s() -> f64 {
    60.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZenohConfig {
    /// A standard zenoh JSON5 config file (TLS, authentication, access
    /// control, ...) taken as the base; every other field here overrides the
    /// file's key of the same meaning. Relative to the runtime config's folder.
    #[serde(default)]
    pub config: Option<PathBuf>,
    pub mode: String,
    pub listen: Vec<String>,
    pub connect: Vec<String>,
    pub multicast_scouting: bool,
    /// How long (microseconds) an output, sent with congestion control
    /// `Drop`, may wait for a free batch in the link's queue before it is
    /// dropped (zenoh's `wait_before_drop`; its default is 1,000).
    #[serde(default = "default_drop_wait_us")]
    pub drop_wait_us: u64,
    /// The largest message zenoh reassembles from a link (its
    /// `transport/link/rx/max_message_size`, 1 GiB by default): the daemon
    /// receives only states and queries, at most 256 KiB each.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
}

fn default_drop_wait_us() -> u64 {
    1_000
}

fn default_max_message_bytes() -> usize {
    512 << 10
}

/// The smallest `max_message_bytes`: a state or query of the largest
/// accepted size with room for zenoh's framing.
pub const MIN_MAX_MESSAGE_BYTES: usize = ebm_msgs::MAX_SMALL_MESSAGE_BYTES + (16 << 10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    pub period_ms: u64,
}

impl Default for RuntimeConfig {
    /// The reference file, checkpoint relative to `./configs`.
    fn default() -> Self {
        // The built-in file is checked by a test, so this cannot fail.
        let mut cfg: RuntimeConfig = match toml::from_str(DEFAULT_RUNTIME_TOML) {
            Ok(c) => c,
            Err(e) => unreachable!("built-in runtime config: {e}"),
        };
        cfg.rebase(Path::new("configs"));
        cfg
    }
}

impl RuntimeConfig {
    /// Parses TOML and validates it (paths left as written).
    pub fn parse(text: &str) -> Result<Self, RuntimeError> {
        let cfg: Self = toml::from_str(text).map_err(RuntimeError::ConfigParse)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a config file; a relative checkpoint path is taken relative to
    /// the file's folder.
    pub fn load(path: &Path) -> Result<Self, RuntimeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RuntimeError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Self::parse(&text)?;
        cfg.rebase(path.parent().unwrap_or(Path::new(".")));
        Ok(cfg)
    }

    /// Takes every relative path (checkpoints, the zenoh config file) as
    /// relative to `base`.
    fn rebase(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(m) = &mut self.model {
            fix(&mut m.checkpoint);
        }
        self.ood.checkpoints.iter_mut().for_each(fix);
        if let Some(c) = &mut self.zenoh.config {
            fix(c);
        }
        for e in &mut self.models {
            fix(&mut e.checkpoint);
            e.ood_checkpoints.iter_mut().for_each(fix);
        }
    }

    /// The default model (`[model]`), which the single-model tools (demo,
    /// replay-eval, bench, ood-eval) run on.
    pub fn default_model(&self) -> Result<&ModelConfig, RuntimeError> {
        self.model.as_ref().ok_or(RuntimeError::InvalidConfig {
            field: "model",
            rule: "this command runs on the default [model]",
        })
    }

    /// The served models in matching order: the `[[models]]` entries, then
    /// the default `[model]` (pattern `*`, OOD models `[ood] checkpoints`).
    /// Patterns were checked by [`RuntimeConfig::validate`].
    pub fn serving(&self) -> Vec<Serving> {
        let mut out: Vec<Serving> = self
            .models
            .iter()
            .filter_map(|e| {
                Some(Serving {
                    robots: ebm_msgs::RobotPattern::new(e.robots.as_str()).ok()?,
                    model: ModelConfig {
                        checkpoint: e.checkpoint.clone(),
                        allow_untrained: false,
                        untrained_state_dim: 0,
                    },
                    ood_checkpoints: e.ood_checkpoints.clone(),
                    denoise: e.denoise.clone().unwrap_or_else(|| self.denoise.clone()),
                    warm: e.warm.unwrap_or(self.forecast.warm),
                })
            })
            .collect();
        if let Some(m) = &self.model {
            out.push(Serving {
                robots: ebm_msgs::RobotPattern::any(),
                model: m.clone(),
                ood_checkpoints: self.ood.checkpoints.clone(),
                denoise: self.denoise.clone(),
                warm: self.forecast.warm,
            });
        }
        out
    }

    pub fn validate(&self) -> Result<(), RuntimeError> {
        let bad = |field: &'static str, rule: &'static str| {
            Err(RuntimeError::InvalidConfig { field, rule })
        };
        if ebm_msgs::RobotId::new(self.daemon_id.as_str()).is_err() {
            return bad("daemon_id", "1-64 ASCII letters, digits, '-' or '_'");
        }
        if ebm_msgs::KeySpace::new(&self.key_prefix).is_err() {
            return bad(
                "key_prefix",
                "'/'-separated chunks of letters, digits, '-' or '_'",
            );
        }
        if self.model.is_none() && self.models.is_empty() {
            return bad(
                "models",
                "at least one: a [[models]] entry or the default [model]",
            );
        }
        if self
            .models
            .iter()
            .any(|e| ebm_msgs::RobotPattern::new(e.robots.as_str()).is_err())
        {
            return bad(
                "models.robots",
                "a robot-id glob: ASCII letters, digits, '-', '_' and '*'",
            );
        }
        if let Some(i) = self
            .models
            .iter()
            .position(|e| e.robots.trim_matches('*').is_empty())
        {
            if i + 1 < self.models.len() {
                return bad(
                    "models.robots",
                    "an entry matching every robot (`*`) must be the last: later entries could never serve",
                );
            }
        }
        if self
            .model
            .as_ref()
            .is_some_and(|m| m.allow_untrained && m.untrained_state_dim == 0)
        {
            return bad(
                "model.untrained_state_dim",
                "the robot's state size, needed by allow_untrained",
            );
        }
        let f = &self.forecast;
        if !(f.rate_hz.is_finite() && f.rate_hz > 0.0) {
            return bad("forecast.rate_hz", "positive");
        }
        if f.horizon == 0 || f.particles == 0 {
            return bad("forecast", "horizon and particles at least 1");
        }
        if f.horizon > self.query.max_horizon || f.particles > self.query.max_particles {
            return bad("forecast", "horizon and particles within query.max_*");
        }
        if !(f.init_noise.is_finite() && f.init_noise >= 0.0) {
            return bad("forecast.init_noise", "finite and >= 0");
        }
        if f.langevin.validate().is_err() {
            return bad(
                "forecast.langevin",
                "step_size and noise_scale finite and >= 0",
            );
        }
        for w in self.models.iter().filter_map(|m| m.warm).chain([f.warm]) {
            if let Err(rule) = w.check(f.horizon, f.langevin.steps) {
                return bad("forecast.warm (or a [[models]] entry's warm)", rule);
            }
        }
        if self.query.queue == 0 {
            return bad("query.queue", "at least 1");
        }
        if !(0.0..=1.0).contains(&self.query.max_share) {
            return bad("query.max_share", "in [0, 1]");
        }
        if !(self.ood.max_sigma.is_finite() && self.ood.max_sigma > 0.0) {
            return bad("ood.max_sigma", "finite and positive");
        }
        if !(0.0..=100.0).contains(&self.ood.flag_percentile) {
            return bad("ood.flag_percentile", "in [0, 100]");
        }
        let denoisers = std::iter::once(&self.denoise)
            .chain(self.models.iter().filter_map(|e| e.denoise.as_ref()));
        for d in denoisers {
            if !(d.sigma.is_finite() && d.sigma > 0.0) {
                return bad("denoise.sigma", "positive");
            }
            if !(d.dynamics_weight.is_finite() && d.dynamics_weight >= 0.0) {
                return bad("denoise.dynamics_weight", "finite and >= 0");
            }
            if d.langevin.validate().is_err() {
                return bad(
                    "denoise.langevin",
                    "step_size and noise_scale finite and >= 0",
                );
            }
        }
        let e = &self.engine;
        if !(e.robot_idle_s.is_finite() && e.robot_idle_s >= 0.0) {
            return bad("engine.robot_idle_s", "finite and >= 0 (0: never)");
        }
        if e.max_batch == 0 || e.max_robots == 0 || e.output_queue == 0 {
            return bad(
                "engine",
                "max_batch, max_robots and output_queue at least 1",
            );
        }
        if !matches!(self.zenoh.mode.as_str(), "peer" | "client") {
            return bad("zenoh.mode", "peer or client");
        }
        if self.zenoh.max_message_bytes < MIN_MAX_MESSAGE_BYTES {
            return bad(
                "zenoh.max_message_bytes",
                "at least 278528 (a 256 KiB state or query and zenoh's framing)",
            );
        }
        if let Some((field, rule)) = self.ros2.iter().find_map(|r| r.problem()) {
            return bad(field, rule);
        }
        if self.status.period_ms == 0 {
            return bad("status.period_ms", "at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_file_parses_and_is_the_default() {
        let cfg = RuntimeConfig::parse(DEFAULT_RUNTIME_TOML).unwrap();
        assert_eq!(cfg.forecast.horizon, 50);
        assert_eq!(cfg.forecast.particles, 64);
        assert_eq!(cfg.forecast.langevin.steps, 20);
        assert!(!cfg.zenoh.multicast_scouting);
        assert!(cfg.zenoh.listen.iter().all(|e| e.contains("127.0.0.1")));
        let d = RuntimeConfig::default();
        let serving = d.serving();
        let default = serving.last().unwrap();
        assert_eq!(
            default.model.checkpoint,
            Path::new("configs/models/traj_uncond")
        );
        assert_eq!(default.robots.as_str(), "*");
    }

    #[test]
    fn model_entries_bind_patterns_before_the_default() {
        let text = DEFAULT_RUNTIME_TOML.to_owned()
            + "\n[[models]]\nrobots = \"arm-*\"\ncheckpoint = \"models/arm\"\nood_checkpoints = [\"models/arm_ood\"]\n\n[[models]]\nrobots = \"gripper-1\"\ncheckpoint = \"/abs/gripper\"\ndenoise = { sigma = 0.5, dynamics_weight = 0.0, langevin = { steps = 1, step_size = 0.1, noise_scale = 0.0 } }\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet.toml");
        std::fs::write(&path, &text).unwrap();
        let cfg = RuntimeConfig::load(&path).unwrap();
        let mut s = cfg.serving();
        let pats: Vec<&str> = s.iter().map(|m| m.robots.as_str()).collect();
        assert_eq!(
            pats,
            ["fetch-*", "shadow-hand-*", "arm-*", "gripper-1", "*"]
        );
        assert_eq!(
            s[0].model.checkpoint,
            dir.path().join("models/fetch_uncond")
        );
        assert_eq!(
            s[1].model.checkpoint,
            dir.path().join("models/shadow_uncond")
        );
        s.drain(..2); // the reference file's own entries
        assert_eq!(s[0].model.checkpoint, dir.path().join("models/arm"));
        assert_eq!(s[0].ood_checkpoints, [dir.path().join("models/arm_ood")]);
        assert_eq!(s[0].denoise, cfg.denoise);
        assert_eq!(s[1].model.checkpoint, Path::new("/abs/gripper"));
        assert_eq!(s[1].denoise.sigma, 0.5);
        // Warm starts: the Fetch entry's own, the others `[forecast.warm]`'s
        // (off); a setting that breaks a rule is refused by name.
        let fetch = &cfg.serving()[0];
        assert_eq!((fetch.warm.steps, fetch.warm.cold_head), (1, 3));
        assert!(s
            .iter()
            .all(|m| m.warm == cfg.forecast.warm && m.warm.steps == 0));
        let bad = text.replace(
            "cold_head = 3, cold_tail = 1",
            "cold_head = 50, cold_tail = 1",
        );
        let err = RuntimeConfig::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("warm") && err.contains("cold_head"), "{err}");
        let bad = text.replace("\"arm-*\"", "\"arm/*\"");
        let err = RuntimeConfig::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("models.robots"), "{err}");
        // An entry for every robot before others would hide them.
        let hiding = text.replace("\"arm-*\"", "\"**\"");
        let err = RuntimeConfig::parse(&hiding).unwrap_err().to_string();
        assert!(err.contains("must be the last"), "{err}");
        let no_dim = DEFAULT_RUNTIME_TOML.replace("untrained_state_dim = 31", "");
        let err = RuntimeConfig::parse(&no_dim).unwrap_err().to_string();
        assert!(err.contains("untrained_state_dim"), "{err}");
    }

    #[test]
    fn refuses_unknown_fields_and_bad_values() {
        let unknown = DEFAULT_RUNTIME_TOML.replace("seed = 0", "seed = 0\nsede = 1");
        let err = RuntimeConfig::parse(&unknown).unwrap_err();
        assert!(format!("{err:#}").contains("sede") || err.to_string().contains("config"));
        let bad = DEFAULT_RUNTIME_TOML.replace("rate_hz = 10.0", "rate_hz = -1.0");
        let err = RuntimeConfig::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("rate_hz"), "{err}");
        let bad = DEFAULT_RUNTIME_TOML.replace("mode = \"peer\"", "mode = \"router\"");
        assert!(RuntimeConfig::parse(&bad).is_err());
    }
}
