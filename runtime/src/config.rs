//! The daemon's configuration: `configs/runtime.toml` (commented reference,
//! built into the binary), parsed strictly and validated.

use std::path::{Path, PathBuf};

use ebm_core::langevin::LangevinConfig;
use ebm_core::rollout::RolloutConfig;
use serde::{Deserialize, Serialize};

use crate::RuntimeError;

/// The reference config, also the built-in default.
pub const DEFAULT_RUNTIME_TOML: &str = include_str!("../../configs/runtime.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    pub daemon_id: String,
    pub key_prefix: String,
    pub device: String,
    pub seed: u64,
    pub model: ModelConfig,
    pub forecast: ForecastConfig,
    pub query: QueryConfig,
    pub ood: OodConfig,
    pub denoise: DenoiseConfig,
    pub engine: EngineConfig,
    pub zenoh: ZenohConfig,
    pub status: StatusConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Checkpoint directory; relative paths are resolved by [`RuntimeConfig::load`].
    pub checkpoint: PathBuf,
    pub allow_untrained: bool,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OodConfig {
    pub flag_percentile: f64,
    pub online_calibration: usize,
    /// Models whose energies compose into the OOD score (see
    /// [`crate::ood_score`]), each with its own context length;
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZenohConfig {
    pub mode: String,
    pub listen: Vec<String>,
    pub connect: Vec<String>,
    pub multicast_scouting: bool,
    /// How long (microseconds) an output, sent with congestion control
    /// `Drop`, may wait for a free batch in the link's queue before it is
    /// dropped (zenoh's `wait_before_drop`; its default is 1,000).
    #[serde(default = "default_drop_wait_us")]
    pub drop_wait_us: u64,
}

fn default_drop_wait_us() -> u64 {
    1_000
}

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
        cfg.model.checkpoint = Path::new("configs").join(&cfg.model.checkpoint);
        for c in &mut cfg.ood.checkpoints {
            *c = Path::new("configs").join(&*c);
        }
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
        let base = path.parent().unwrap_or(Path::new("."));
        if cfg.model.checkpoint.is_relative() {
            cfg.model.checkpoint = base.join(&cfg.model.checkpoint);
        }
        for c in &mut cfg.ood.checkpoints {
            if c.is_relative() {
                *c = base.join(&*c);
            }
        }
        Ok(cfg)
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
        if self.query.queue == 0 {
            return bad("query.queue", "at least 1");
        }
        if !(0.0..=100.0).contains(&self.ood.flag_percentile) {
            return bad("ood.flag_percentile", "in [0, 100]");
        }
        let d = &self.denoise;
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
        let e = &self.engine;
        if e.max_batch == 0 || e.max_robots == 0 || e.output_queue == 0 {
            return bad(
                "engine",
                "max_batch, max_robots and output_queue at least 1",
            );
        }
        if !matches!(self.zenoh.mode.as_str(), "peer" | "client") {
            return bad("zenoh.mode", "peer or client");
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
        assert_eq!(d.model.checkpoint, Path::new("configs/models/traj_uncond"));
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
