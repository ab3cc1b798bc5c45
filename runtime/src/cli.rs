//! Command-line interface of `ebm-runtime`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use ebm_runtime::RuntimeConfig;

#[derive(Parser)]
#[command(
    name = "ebm-runtime",
    version,
    about = "Serves trajectory EBMs over Zenoh: forecasts, OOD scores and denoised states"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Overrides of `configs/runtime.toml`.
#[derive(Args, Clone, Debug, Default)]
pub struct Overrides {
    /// Runtime config (TOML, see configs/runtime.toml); the built-in default otherwise.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Checkpoint directory to serve.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
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
}

impl Overrides {
    pub fn resolve(&self) -> Result<RuntimeConfig> {
        let mut cfg = match &self.config {
            Some(p) => RuntimeConfig::load(p).with_context(|| format!("in {}", p.display()))?,
            None => RuntimeConfig::default(),
        };
        if let Some(c) = &self.checkpoint {
            cfg.model.checkpoint = c.clone();
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
        cfg.validate()?;
        Ok(cfg)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon until SIGINT or SIGTERM.
    Serve {
        #[command(flatten)]
        overrides: Overrides,
    },
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime> {
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

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve { overrides } => {
            let cfg = overrides.resolve()?;
            tokio_runtime()?.block_on(ebm_runtime::run(cfg, shutdown_signal()))?;
            Ok(())
        }
    }
}
