//! Command-line interface of `ebm-sim`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ebm_msgs::{Encoding, RobotId};
use ebm_sim_data::episode::{mix, simulate, Control, Seeds};
use ebm_sim_data::generate::{generate, GenerateOptions};
use ebm_sim_data::inspect::{inspect, DimStats};
use ebm_sim_data::plot::write_svg;
use ebm_sim_data::policy::Behaviour;
use ebm_sim_data::sim_speed::{sim_throughput, PAPER_FRAMES};
use ebm_sim_data::SimConfig;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "ebm-sim",
    version,
    about = "Hand-cube simulator: datasets as MCAP recordings, their inspection and conversion, and ROS 2 bag import"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate trajectories in parallel into an MCAP recording (90/10 split in its header).
    Generate {
        #[arg(long, default_value_t = 1000)]
        trajectories: u64,
        #[arg(long, default_value_t = 100)]
        steps: u32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        /// Record JSON (with JSON schemas, opens in Foxglove) instead of bincode.
        #[arg(long)]
        json: bool,
        /// Simulator config (TOML, see configs/sim.toml); built-in default otherwise.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "sim")]
        robot: String,
        /// Worker threads (default: all cores); the output does not depend on it.
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Counts, split and per-dimension statistics of a recording.
    Inspect {
        file: PathBuf,
        /// Also load it into [N, T, 31] / [N, T, 20] arrays (the training
        /// loader) and report shapes and time.
        #[arg(long)]
        arrays: bool,
    },
    /// Re-write a recording in another message encoding (bincode loads
    /// several times faster than JSON; JSON opens in Foxglove).
    Convert {
        input: PathBuf,
        output: PathBuf,
        /// Write JSON instead of bincode.
        #[arg(long)]
        json: bool,
    },
    /// SVG of several futures of one start state, coloured by behaviour.
    Plot {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Trajectories per behaviour.
        #[arg(long, default_value_t = 4)]
        per_behaviour: u32,
        #[arg(long, default_value_t = 100)]
        steps: u32,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// A ROS 2 bag (rosbag2 MCAP) to a recording: joint states and commands
    /// resampled to a fixed rate, episodes cut at gaps.
    #[command(name = "import-ros2")]
    ImportRos2(crate::cli_ros2::ImportRos2),
    /// Frames per second and the implied time for 200,000 x 100 frames.
    Bench {
        #[arg(long, default_value_t = 48)]
        trajectories: u64,
        #[arg(long, default_value_t = 100)]
        steps: u32,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn load_config(path: Option<&Path>) -> Result<SimConfig> {
    match path {
        None => Ok(SimConfig::default()),
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            SimConfig::from_toml(&text).with_context(|| format!("in {}", p.display()))
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate {
            trajectories,
            steps,
            seed,
            out,
            json,
            config,
            robot,
            threads,
        } => {
            let cfg = load_config(config.as_deref())?;
            if let Some(n) = threads {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build_global()
                    .context("starting the thread pool")?;
            }
            let opts = GenerateOptions {
                trajectories,
                steps,
                seed,
                encoding: if json {
                    Encoding::Json
                } else {
                    Encoding::Bincode
                },
                robot_id: RobotId::new(robot)?,
                batch: 256,
            };
            let bar = ProgressBar::new(trajectories).with_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} trajectories [{elapsed_precise} < {eta_precise}] {per_sec}")
                    .context("progress style")?,
            );
            let report = generate(&cfg, &opts, &out, &bar)?;
            bar.finish();
            println!(
                "wrote {} trajectories x {} frames to {} in {:.1} s ({:.0} frames/s); rejected attempts: {} dropped the cube, {} non-finite",
                report.trajectories, steps, out.display(), report.elapsed.as_secs_f64(), report.frames_per_s(),
                report.rejected.dropped, report.rejected.non_finite
            );
            Ok(())
        }
        Command::Convert {
            input,
            output,
            json,
        } => {
            let encoding = if json {
                Encoding::Json
            } else {
                Encoding::Bincode
            };
            let n = ebm_msgs::recording::convert(&input, &output, encoding)
                .with_context(|| format!("converting {}", input.display()))?;
            println!(
                "wrote {} ({encoding:?}): {} states, {} actions",
                output.display(),
                n.states,
                n.actions
            );
            Ok(())
        }
        Command::Inspect { file, arrays } => {
            print_inspection(&file)?;
            if arrays {
                let start = std::time::Instant::now();
                let ds = ebm_msgs::recording::load(&file)?;
                let secs = start.elapsed().as_secs_f64();
                let frames = ds.states.shape()[0] * ds.states.shape()[1];
                println!(
                    "loaded states {:?} and actions {:?} ({:.1} MB) in {secs:.2} s: {:.0} frames/s, {:.1} min for 200,000 x 100",
                    ds.states.shape(),
                    ds.actions.shape(),
                    ((ds.states.len() + ds.actions.len()) * 4) as f64 / 1e6,
                    frames as f64 / secs,
                    PAPER_FRAMES / (frames as f64 / secs) / 60.0
                );
            }
            Ok(())
        }
        Command::Plot {
            out,
            seed,
            per_behaviour,
            steps,
            config,
        } => plot(&out, seed, per_behaviour, steps, config.as_deref()),
        Command::ImportRos2(args) => crate::cli_ros2::run(args),
        Command::Bench {
            trajectories,
            steps,
            config,
        } => {
            let cfg = load_config(config.as_deref())?;
            let t = sim_throughput(&cfg, trajectories, steps, 1);
            println!(
                "simulator, 1 thread: {:.0} frames/s (wall clock)",
                t.single_thread_fps
            );
            if let Some(cpu_fps) = t.single_thread_cpu_fps {
                println!(
                    "simulator, 1 thread: {cpu_fps:.0} frames per CPU-second; with {} idle cores: {:.2} h for 200,000 x 100",
                    t.threads,
                    PAPER_FRAMES / (cpu_fps * t.threads as f64) / 3600.0
                );
            }
            println!(
                "simulator, {} threads: {:.0} frames/s",
                t.threads, t.parallel_fps
            );
            let dir = std::env::temp_dir().join(format!("ebm-sim-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let path = dir.join("bench.mcap");
            let opts = GenerateOptions {
                trajectories,
                steps,
                seed: 2,
                encoding: Encoding::Bincode,
                robot_id: RobotId::new("sim")?,
                batch: 256,
            };
            let report = generate(&cfg, &opts, &path, &ProgressBar::hidden())?;
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            std::fs::remove_dir_all(&dir).ok();
            let fps = report.frames_per_s();
            println!("generate (simulate + encode + write), {} threads: {:.0} frames/s, {:.0} bytes/frame", t.threads, fps, bytes as f64 / report.frames.max(1) as f64);
            println!(
                "implied for 200,000 x 100 frames: {:.2} h ({:.1} GB)",
                PAPER_FRAMES / fps / 3600.0,
                PAPER_FRAMES * bytes as f64 / report.frames.max(1) as f64 / 1e9
            );
            Ok(())
        }
    }
}

fn print_inspection(file: &Path) -> Result<()> {
    let ins = inspect(file)?;
    if let Some(h) = &ins.header {
        println!(
            "robot {}  encoding {}  generator {}",
            h.robot_id,
            h.encoding.mcap_name(),
            h.generator
        );
        println!(
            "header: {} trajectories x {} steps, control period {} ns, seed {}",
            h.trajectories, h.steps, h.control_period_ns, h.seed
        );
        println!(
            "split: {} train, {} test",
            h.split.train.len(),
            h.split.test.len()
        );
    } else {
        println!("no ebm-recording header");
    }
    println!(
        "read: {} states, {} actions, {} episodes",
        ins.states, ins.actions, ins.episodes
    );
    for (k, v) in &ins.summary {
        if k != "behaviours" {
            println!("summary {k}: {v}");
        }
    }
    // Names from the header (version 2), else numbered.
    let robot = ins.header.as_ref().and_then(|h| h.robot.clone());
    let name = |names: Option<&Vec<String>>, prefix: &str, i: usize| {
        names
            .and_then(|n| n.get(i).cloned())
            .unwrap_or_else(|| format!("{prefix}{i}"))
    };
    let row = |name: &str, s: &DimStats| {
        println!(
            "  {name:<24} mean {:>9.4}  std {:>8.4}  min {:>9.4}  max {:>9.4}",
            s.mean,
            s.std(),
            s.min,
            s.max
        )
    };
    if let Some(r) = &robot {
        println!(
            "robot: {} ({} state, {} action floats)",
            r.kind, r.state_dim, r.action_dim
        );
    }
    println!("state ({} dims):", ins.state_stats.len());
    for (i, s) in ins.state_stats.iter().enumerate() {
        row(&name(robot.as_ref().map(|r| &r.state_names), "s", i), s);
    }
    println!("action ({} dims):", ins.action_stats.len());
    for (i, s) in ins.action_stats.iter().enumerate() {
        row(&name(robot.as_ref().map(|r| &r.action_names), "a", i), s);
    }
    Ok(())
}

fn plot(
    out: &Path,
    seed: u64,
    per_behaviour: u32,
    steps: u32,
    config: Option<&Path>,
) -> Result<()> {
    let cfg = load_config(config)?;
    let mut trajectories = Vec::new();
    let mut failed = 0;
    for b in Behaviour::ALL {
        for k in 0..per_behaviour {
            let seeds = Seeds {
                init: seed,
                policy: mix(seed, 1000 + (b.index() as u64) * 100 + u64::from(k)),
            };
            match simulate(&cfg, steps, seeds, &Control::Scripted { force: Some(b) }) {
                Ok(t) => trajectories.push((b, t.states)),
                Err(_) => failed += 1,
            }
        }
    }
    write_svg(out, &trajectories, cfg.control_period_s)?;
    println!(
        "wrote {} ({} trajectories from one start state; {} dropped the cube and are not drawn)",
        out.display(),
        trajectories.len(),
        failed
    );
    Ok(())
}
