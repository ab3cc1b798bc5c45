//! What the daemon's and the tools' command lines share: logging, overrides
//! of `configs/runtime.toml`, the tokio runtime, and the shutdown signal.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::RuntimeConfig;

/// Overrides of `configs/runtime.toml`.
#[derive(Args, Clone, Debug, Default)]
pub struct Overrides {
    /// Runtime config (TOML, see configs/runtime.toml); the built-in default otherwise.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Checkpoint directory of the default model (robots no `[[models]]` entry matches).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// OOD model checkpoint of the default model (repeatable; replaces the config's `[ood] checkpoints`).
    #[arg(long)]
    ood_checkpoint: Vec<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long)]
    device: Option<String>,
    /// Zenoh endpoints to listen on (repeatable; replaces the config's).
    #[arg(long)]
    listen: Vec<String>,
    /// Zenoh endpoints to connect to (repeatable; replaces the config's).
    #[arg(long)]
    connect: Vec<String>,
    /// Forecasts per robot per second.
    #[arg(long)]
    rate_hz: Option<f64>,
    #[arg(long)]
    horizon: Option<usize>,
    #[arg(long)]
    particles: Option<usize>,
    /// Langevin steps per predicted step.
    #[arg(long)]
    langevin_steps: Option<usize>,
    /// Warm starts of the default model (`[forecast.warm]`) as
    /// `STEPS,COLD_HEAD,COLD_TAIL` (0: off; docs/runtime.md#warm-starts).
    #[arg(long, value_name = "STEPS,COLD_HEAD,COLD_TAIL")]
    warm: Option<String>,
}

impl Overrides {
    pub fn resolve(&self) -> Result<RuntimeConfig> {
        let mut cfg = match &self.config {
            Some(p) => RuntimeConfig::load(p).with_context(|| format!("in {}", p.display()))?,
            None => RuntimeConfig::default(),
        };
        if let Some(c) = &self.checkpoint {
            match &mut cfg.model {
                // A checkpoint named on the command line must exist.
                Some(m) => {
                    m.checkpoint = c.clone();
                    m.allow_untrained = false;
                }
                None => {
                    cfg.model = Some(crate::config::ModelConfig {
                        checkpoint: c.clone(),
                        allow_untrained: false,
                        untrained_state_dim: 0,
                    })
                }
            }
        }
        if !self.ood_checkpoint.is_empty() {
            cfg.ood.checkpoints = self.ood_checkpoint.clone();
        }
        if let Some(d) = &self.device {
            cfg.device = d.clone();
        }
        if !self.listen.is_empty() {
            cfg.zenoh.listen = self.listen.clone();
        }
        if !self.connect.is_empty() {
            cfg.zenoh.connect = self.connect.clone();
        }
        if let Some(r) = self.rate_hz {
            cfg.forecast.rate_hz = r;
        }
        if let Some(h) = self.horizon {
            cfg.forecast.horizon = h;
        }
        if let Some(p) = self.particles {
            cfg.forecast.particles = p;
        }
        if let Some(k) = self.langevin_steps {
            cfg.forecast.langevin.steps = k;
        }
        if let Some(w) = &self.warm {
            let v: Vec<usize> = w
                .split(',')
                .map(|s| s.trim().parse())
                .collect::<Result<_, _>>()
                .with_context(|| format!("--warm {w}: expected STEPS,COLD_HEAD,COLD_TAIL"))?;
            let [steps, cold_head, cold_tail] = v[..] else {
                anyhow::bail!("--warm {w}: expected STEPS,COLD_HEAD,COLD_TAIL");
            };
            let warm = &mut cfg.forecast.warm;
            (warm.steps, warm.cold_head, warm.cold_tail) = (steps, cold_head, cold_tail);
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Pins the thread count and logs to stderr, filtered by `RUST_LOG`
/// (default `info`).
pub fn init_logging() {
    ebm_core::device::pin_thread_count();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// A multi-threaded tokio runtime with every driver enabled.
pub fn tokio_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
