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
}

impl Overrides {
    pub fn resolve(&self) -> Result<RuntimeConfig> {
        let mut cfg = match &self.config {
            Some(p) => RuntimeConfig::load(p).with_context(|| format!("in {}", p.display()))?,
            None => RuntimeConfig::default(),
        };
        if let Some(c) = &self.checkpoint {
            match &mut cfg.model {
                Some(m) => m.checkpoint = c.clone(),
                None => {
                    cfg.model = Some(ebm_runtime::config::ModelConfig {
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
    /// The daemon on the default model, a simulated robot publishing its
    /// state, and a live table of forecast error and OOD score.
    Demo {
        #[command(flatten)]
        overrides: Overrides,
        /// Stop after this many seconds (Ctrl-C stops earlier).
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        /// States per second from the simulated robot.
        #[arg(long, default_value_t = 10.0)]
        robot_hz: f64,
        #[arg(long, default_value_t = 100)]
        episode_steps: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Replay test episodes of a recording into the daemon and score its
    /// forecasts against the recording (per-step RMSE and Frechet distance).
    ReplayEval {
        #[command(flatten)]
        overrides: Overrides,
        /// A recording from `ebm-sim generate` (its header's test split is used).
        #[arg(long)]
        recording: PathBuf,
        /// Test episodes to replay.
        #[arg(long, default_value_t = 20)]
        episodes: usize,
        /// Where report.json goes.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// AUROC of the OOD score: held-out states of perturbed simulators
    /// (heavier cube, lower friction, stuck joint, sensor noise) vs nominal.
    OodEval {
        #[command(flatten)]
        overrides: Overrides,
        #[arg(long, default_value_t = 16)]
        trajectories: usize,
        #[arg(long, default_value_t = 60)]
        steps: u32,
        /// Seed of the held-out trajectories (the default is unused by `ebm-sim generate`).
        #[arg(long, default_value_t = ebm_runtime::ood_eval::OodEvalOptions::default().seed)]
        seed: u64,
        /// Heavier cube: its mass times this.
        #[arg(long, default_value_t = 5.0)]
        mass_factor: f32,
        /// Lower friction: cube and hand friction times this.
        #[arg(long, default_value_t = 0.1)]
        friction_factor: f32,
        /// Sensor noise, in units of each state dimension's spread.
        #[arg(long, default_value_t = 0.5)]
        noise_std: f32,
        /// Markdown table written here (and printed).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// State-to-forecast latency (p50, p99) through the daemon, and robots served at a rate.
    Bench {
        #[command(flatten)]
        overrides: Overrides,
        /// Forecasts timed for the latency figures.
        #[arg(long, default_value_t = 30)]
        samples: usize,
        /// Batch sizes (robots per batched forecast) to time.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
        batches: Vec<usize>,
        /// Forecasts per robot per second the robot count is for.
        #[arg(long, default_value_t = 10.0)]
        target_hz: f64,
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
        Command::Demo {
            overrides,
            seconds,
            robot_hz,
            episode_steps,
            seed,
        } => {
            let cfg = overrides.resolve()?;
            let opts = ebm_runtime::demo::DemoOptions {
                seconds,
                robot_hz,
                episode_steps,
                seed,
            };
            tokio_runtime()?.block_on(ebm_runtime::demo::demo(cfg, opts, shutdown_signal()))?;
            Ok(())
        }
        Command::ReplayEval {
            overrides,
            recording,
            episodes,
            out,
        } => {
            let cfg = overrides.resolve()?;
            let r = tokio_runtime()?.block_on(ebm_runtime::replay_eval::replay_eval(
                cfg,
                &recording,
                episodes,
                out.as_deref(),
            ))?;
            println!(
                "model {}: {} test episodes, horizon {}, {} particles, {} Langevin steps per forecast, {:.1} ms per forecast",
                r.model_id, r.episodes, r.horizon, r.particles, r.langevin_steps, r.mean_compute_ms
            );
            println!("{:>5} {:>10} {:>10}", "step", "rmse", "frechet");
            for (i, (e, f)) in r.rmse.iter().zip(&r.fd).enumerate() {
                println!("{:>5} {e:>10.4} {f:>10.4}", i + 1);
            }
            println!("average Frechet distance: {:.4}", r.avg_fd);
            Ok(())
        }
        Command::OodEval {
            overrides,
            trajectories,
            steps,
            seed,
            mass_factor,
            friction_factor,
            noise_std,
            out,
        } => {
            let cfg = overrides.resolve()?;
            let device = ebm_core::device::select(&cfg.device)?;
            let bundle =
                ebm_runtime::ModelBundle::from_config(cfg.default_model()?, cfg.seed, &device)?;
            let opts = ebm_runtime::ood_eval::OodEvalOptions {
                trajectories,
                steps,
                seed,
                mass_factor,
                friction_factor,
                noise_std,
                flag_percentile: cfg.ood.flag_percentile,
                ..Default::default()
            };
            let scorer = ebm_runtime::model::load_ood_scorer(&cfg.ood.checkpoints, &bundle);
            let report = ebm_runtime::ood_eval::ood_eval(&scorer, &opts)?;
            let md = report.markdown();
            print!("{md}");
            for w in scorer.experts().iter().flat_map(|e| &e.bundle.warnings) {
                println!("warning: {w}");
            }
            if let Some(out) = out {
                if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&out, md).with_context(|| format!("writing {}", out.display()))?;
            }
            Ok(())
        }
        Command::Bench {
            overrides,
            samples,
            batches,
            target_hz,
        } => {
            let cfg = overrides.resolve()?;
            let r = tokio_runtime()?
                .block_on(ebm_runtime::bench::bench(cfg, samples, &batches, target_hz))?;
            println!(
                "model {}: {} particles x horizon {} x {} Langevin steps",
                r.model_id, r.particles, r.horizon, r.langevin_steps
            );
            println!(
                "state-to-forecast latency over {} forecasts: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                r.samples, r.latency_p50_ms, r.latency_p99_ms, r.latency_max_ms
            );
            for (b, s) in &r.batch_seconds {
                println!(
                    "batch of {b:>3} robots: {:.1} ms per batched forecast",
                    s * 1e3
                );
            }
            println!(
                "robots served at {} Hz by one inference thread: {:.2}",
                r.rate_hz, r.robots_at_rate
            );
            Ok(())
        }
    }
}
