//! Command-line interface of `ebm-tools`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ebm_msgs::{Encoding, KeySpace};
use ebm_runtime::cli_support::{shutdown_signal, tokio_runtime, Overrides};
use ebm_runtime::config::ZenohConfig;
use ebm_tools::replay::{replay, Pace, ReplayOptions};

#[derive(Parser)]
#[command(
    name = "ebm-tools",
    version,
    about = "Around the runtime daemon: live demo, replay of recordings, replay evaluation, OOD evaluation, latency benchmark, soak"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The daemon serving two robots of different kinds, each by its own
    /// model: the live simulated hand and a replayed recording of another
    /// robot (the committed Fetch recording); a live table of each one's
    /// forecast error and OOD score.
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
        /// A recording replayed as the second robot (all its episodes), served
        /// by the config's model for its robot id (`<kind>-replay`).
        #[arg(long, default_value = "configs/recordings/fetch_demo.mcap")]
        replay: PathBuf,
        /// The simulated hand alone, no replayed robot.
        #[arg(long)]
        hand_only: bool,
    },
    /// Publish a recording's states over Zenoh on `ebm/<robot>/state`, as
    /// its robot would send them (`last_action` filled in), at the recorded
    /// rate or as fast as possible.
    Replay {
        file: PathBuf,
        /// Time scale of the recorded rate (2 = twice as fast).
        #[arg(long, default_value_t = 1.0, conflicts_with = "as_fast_as_possible")]
        rate: f64,
        #[arg(long)]
        as_fast_as_possible: bool,
        /// Zenoh endpoints to listen on (repeatable), e.g. tcp/127.0.0.1:7448.
        #[arg(long)]
        listen: Vec<String>,
        /// Zenoh endpoints to connect to (repeatable).
        #[arg(long, default_value = "tcp/127.0.0.1:7447")]
        connect: Vec<String>,
        /// A zenoh JSON5 file as the session's base (TLS, login), as the
        /// daemon's `zenoh.config`.
        #[arg(long)]
        zenoh_config: Option<PathBuf>,
        /// Publish JSON instead of bincode.
        #[arg(long)]
        json: bool,
        /// Only episodes in FIRST..END (end exclusive).
        #[arg(long, value_parser = parse_range)]
        episodes: Option<std::ops::Range<u64>>,
        /// Wait this long for a subscriber before publishing (0: do not wait).
        #[arg(long, default_value_t = 10_000)]
        wait_for_subscriber_ms: u64,
    },
    /// Replay test episodes of a recording into the daemon and score its
    /// forecasts against the recording (per-step Frechet distance and MSE of
    /// the particle mean, as `ebm-train traj eval`).
    ReplayEval {
        #[command(flatten)]
        overrides: Overrides,
        /// A recording from `ebm-sim generate` (its header's test split is used).
        #[arg(long)]
        recording: PathBuf,
        /// Test episodes to replay.
        #[arg(long, default_value_t = 20)]
        episodes: usize,
        /// Test episodes to pass over before them (settings chosen on the
        /// first N episodes are then reported on others).
        #[arg(long, default_value_t = 0)]
        skip_episodes: usize,
        /// States each episode goes on for after its first forecast, one at
        /// a time, each forecast scored (warm starts need them).
        #[arg(long, default_value_t = 0)]
        follow: usize,
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
        #[arg(long, default_value_t = ebm_tools::ood_eval::OodEvalOptions::default().seed)]
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
    /// The daemon under mixed traffic for a while (streaming robots that
    /// restart, queries, malformed states); reports lost outputs (expected
    /// 0 beyond counted drops) and memory at warm-up and end.
    Soak {
        #[command(flatten)]
        overrides: Overrides,
        #[arg(long, default_value_t = 300.0)]
        seconds: f64,
        #[arg(long, default_value_t = 20)]
        robots: usize,
        /// States per robot per second (`--rate-hz` is the daemon's
        /// forecast rate).
        #[arg(long, default_value_t = 10.0)]
        state_hz: f64,
        #[arg(long, default_value_t = 5.0)]
        queries_per_s: f64,
        #[arg(long, default_value_t = 50.0)]
        malformed_per_s: f64,
        /// One robot restarts (sequence back to 0) this often.
        #[arg(long, default_value_t = 2.0)]
        restart_every_s: f64,
        /// The robots replay this recording's test episodes instead of
        /// random walks (robot r plays episodes r, r + robots, ...).
        #[arg(long)]
        recording: Option<PathBuf>,
        /// With --recording: how many test episodes to load.
        #[arg(long, default_value_t = 200)]
        episodes: usize,
        /// report.json written here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo {
            overrides,
            seconds,
            robot_hz,
            episode_steps,
            seed,
            replay,
            hand_only,
        } => {
            let cfg = overrides.resolve()?;
            let opts = ebm_tools::demo::DemoOptions {
                seconds,
                robot_hz,
                episode_steps,
                seed,
                replay: (!hand_only).then_some(replay),
            };
            tokio_runtime()?.block_on(ebm_tools::demo::demo(cfg, opts, shutdown_signal()))?;
            Ok(())
        }
        Command::Replay {
            file,
            rate,
            as_fast_as_possible,
            listen,
            connect,
            zenoh_config,
            json,
            episodes,
            wait_for_subscriber_ms,
        } => {
            if !(rate.is_finite() && rate > 0.0) {
                anyhow::bail!("--rate must be positive");
            }
            let opts = ReplayOptions {
                pace: if as_fast_as_possible {
                    Pace::AsFastAsPossible
                } else {
                    Pace::Recorded { rate }
                },
                encoding: if json {
                    Encoding::Json
                } else {
                    Encoding::Bincode
                },
                keys: KeySpace::default(),
                wait_for_subscriber: (wait_for_subscriber_ms > 0)
                    .then(|| Duration::from_millis(wait_for_subscriber_ms)),
                episodes,
            };
            let zenoh = ZenohConfig {
                config: zenoh_config,
                ..ebm_runtime::transport::loopback(listen, connect)
            };
            tokio_runtime()?.block_on(async {
                let session = ebm_runtime::transport::open(&zenoh).await?;
                let report = replay(&session, &file, &opts).await?;
                session
                    .close()
                    .await
                    .map_err(|e| anyhow::anyhow!("closing the zenoh session: {e}"))?;
                println!(
                    "published {} states of {} robot(s)",
                    report.published, report.robots
                );
                Ok::<(), anyhow::Error>(())
            })
        }
        Command::ReplayEval {
            overrides,
            recording,
            episodes,
            skip_episodes,
            follow,
            out,
        } => {
            let cfg = overrides.resolve()?;
            let r = tokio_runtime()?.block_on(ebm_tools::replay_eval::replay_eval(
                cfg,
                &recording,
                skip_episodes..skip_episodes + episodes,
                follow,
                out.as_deref(),
            ))?;
            println!(
                "model {}: {} test episodes, {} forecasts, horizon {}, {} particles, {:.0} Langevin steps per forecast (mean), {:.1} ms per forecast",
                r.model_id, r.episodes, r.forecasts, r.horizon, r.particles, r.langevin_steps, r.mean_compute_ms
            );
            println!("{:>5} {:>10} {:>10}", "step", "mse", "frechet");
            for (i, (e, f)) in r.mse.iter().zip(&r.fd).enumerate() {
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
            let served =
                ebm_runtime::RobotModel::from_config(cfg.default_model()?, cfg.seed, &device)?;
            let opts = ebm_tools::ood_eval::OodEvalOptions {
                trajectories,
                steps,
                seed,
                mass_factor,
                friction_factor,
                noise_std,
                flag_percentile: cfg.ood.flag_percentile,
                ..Default::default()
            };
            let scorer = ebm_runtime::ood::load_ood_scorer(&cfg.ood.checkpoints, &served);
            let report = ebm_tools::ood_eval::ood_eval(&scorer, &opts)?;
            let md = report.markdown();
            print!("{md}");
            for w in scorer.experts().iter().flat_map(|e| &e.model.warnings) {
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
            let r = tokio_runtime()?.block_on(ebm_tools::latency_bench::bench(
                cfg, samples, &batches, target_hz,
            ))?;
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
            if let Some(w) = &r.warm {
                for (b, s) in &w.batch_seconds {
                    println!(
                        "warm ({} steps per prediction, the first {} and the last {} cold), batch of {b:>3} robots: {:.1} ms per batched forecast",
                        w.langevin_steps,
                        w.cold_head,
                        w.cold_tail,
                        s * 1e3
                    );
                }
                println!(
                    "robots served at {} Hz by one inference thread, warm: {:.2}",
                    r.rate_hz, w.robots_at_rate
                );
            }
            Ok(())
        }
        Command::Soak {
            overrides,
            seconds,
            robots,
            state_hz,
            queries_per_s,
            malformed_per_s,
            restart_every_s,
            recording,
            episodes,
            out,
        } => {
            let cfg = overrides.resolve()?;
            let episodes = match &recording {
                Some(r) => Some(std::sync::Arc::new(
                    ebm_tools::replay_eval::test_episodes(r, &(0..episodes))?.1,
                )),
                None => None,
            };
            let plan = ebm_tools::soak::SoakPlan {
                duration: std::time::Duration::from_secs_f64(seconds),
                robots,
                rate_hz: state_hz,
                queries_per_s,
                malformed_per_s,
                restart_every: std::time::Duration::from_secs_f64(restart_every_s),
                episodes,
            };
            let r = tokio_runtime()?.block_on(async {
                let device = ebm_core::device::select(&cfg.device)?;
                let served =
                    ebm_runtime::RobotModel::from_config(cfg.default_model()?, cfg.seed, &device)?;
                ebm_tools::soak::soak(cfg, served, &plan).await
            })?;
            let json = serde_json::to_string_pretty(&r)?;
            println!("{json}");
            if let Some(out) = out {
                std::fs::write(&out, json).with_context(|| format!("writing {}", out.display()))?;
            }
            if r.lost_forecasts != 0 || r.lost_queries != 0 || r.uncounted_malformed != 0 {
                anyhow::bail!("outputs were lost: see the report");
            }
            Ok(())
        }
    }
}

fn parse_range(s: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = s.split_once("..").ok_or("expected FIRST..END")?;
    Ok(a.parse().map_err(|_| "bad FIRST")?..b.parse().map_err(|_| "bad END")?)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// Every command without required arguments parses with its defaults
    /// (two arguments of one name, say a command's own and a flattened
    /// override, make clap refuse every run of that command; clap's own
    /// `debug_assert` checks nothing in a release build).
    #[test]
    fn commands_parse_with_their_defaults() {
        for cmd in ["demo", "ood-eval", "bench", "soak"] {
            if let Err(e) = super::Cli::try_parse_from(["ebm-tools", cmd]) {
                panic!("`ebm-tools {cmd}` does not parse: {e}");
            }
        }
    }
}
