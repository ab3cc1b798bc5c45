//! `ebm-train`: command-line entry point.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ebm_train::images::{classify, ood, restore, sample_grid, train_images, ImageConfig};
use ebm_train::toy::{ToyConfig, ToyRun};
use ebm_train::trajectory::{evaluate, train_trajectory, TrajectoryConfig};

#[derive(Parser)]
#[command(
    name = "ebm-train",
    version,
    about = "Train energy-based models (IGEBM, Du & Mordatch 2019)"
)]
struct Cli {
    /// cpu, cuda or cuda:N
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train energies on a 2-D ring of Gaussians; write landscapes, samples and
    /// the composition of two energies (the paper's Figure 14).
    Toy {
        /// TOML config (default: the built-in configs/toy.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Output directory for checkpoints, figures and report.json.
        #[arg(long, default_value = "out/toy")]
        out: PathBuf,
        /// Override the number of training steps per model.
        #[arg(long)]
        steps: Option<u64>,
    },
    /// Image EBMs: train, sample, restore, OOD scores, classification.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// Trajectory EBMs and the FC baseline on a hand-cube recording.
    Traj {
        #[command(subcommand)]
        command: TrajCommand,
    },
}

#[derive(Subcommand)]
enum TrajCommand {
    /// Train the EBM (Algorithm 1) and the FC baseline of one setting.
    Train {
        /// configs/traj_uncond.toml or configs/traj_cond.toml
        #[arg(long)]
        config: PathBuf,
        /// Run directory: `ebm/` checkpoints and `fc/`.
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        steps: Option<u64>,
    },
    /// Roll both models out on the test split; Frechet distance per step.
    Eval {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

fn run_traj(command: TrajCommand, device: candle_core::Device) -> Result<()> {
    let load = |p: &std::path::Path| -> Result<(TrajectoryConfig, PathBuf)> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let cfg =
            TrajectoryConfig::parse(&text).with_context(|| format!("config {}", p.display()))?;
        Ok((
            cfg,
            p.parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default(),
        ))
    };
    match command {
        TrajCommand::Train { config, run, steps } => {
            let (mut cfg, base) = load(&config)?;
            if let Some(s) = steps {
                cfg.steps = s;
            }
            let s = train_trajectory(&cfg, &base, &run, &device)?;
            println!(
                "trained on {} trajectories: EBM {:.0} s, FC baseline {:.0} s (final MSE {:.4})",
                s.train_trajectories, s.ebm_seconds, s.fc_seconds, s.fc_final_mse
            );
            Ok(())
        }
        TrajCommand::Eval { config, run, out } => {
            let (cfg, base) = load(&config)?;
            let r = evaluate(&cfg, &base, &run, &out, &device)?;
            println!(
                "| model | avg FD over {} steps | MSE at step 1 | MSE at step {} |\n|---|---|---|---|",
                r.horizon, r.horizon
            );
            let last = r.horizon - 1;
            println!(
                "| EBM ({} particles) | {:.3} | {:.4} | {:.4} |",
                r.particles, r.avg_fd_ebm, r.mse_ebm[0], r.mse_ebm[last]
            );
            println!(
                "| FC baseline | {:.3} | {:.4} | {:.4} |",
                r.avg_fd_fc, r.mse_fc[0], r.mse_fc[last]
            );
            println!(
                "EBM / FC average FD: {:.3} on {} test trajectories ({:.0} s)",
                r.ratio, r.test_trajectories, r.seconds
            );
            Ok(())
        }
    }
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Train (or resume) with Algorithm 1.
    Train {
        /// TOML config (configs/mnist_uncond.toml, configs/mnist_cond.toml).
        #[arg(long)]
        config: PathBuf,
        /// Run directory for checkpoints (resumes when it holds one).
        #[arg(long)]
        run: PathBuf,
        /// Override the total number of training steps.
        #[arg(long)]
        steps: Option<u64>,
    },
    /// Sample a 10 x 10 grid from uniform noise (one class per row when conditional).
    Sample {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        run: PathBuf,
        /// Output directory for the PNG.
        #[arg(long)]
        out: PathBuf,
        /// Historical ensemble: sample with the last N checkpoints in turn.
        #[arg(long, default_value_t = 1)]
        ensemble: usize,
    },
    /// Salt-and-pepper denoising, inpainting, cross-class sampling: PNGs and MSE.
    Restore {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// AUROC of the energy score against OOD sets, and an energy histogram.
    Ood {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        run: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Test accuracy of classification by the lowest conditional energy.
    Classify {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        run: PathBuf,
    },
}

fn load_image_config(path: &std::path::Path) -> Result<(ImageConfig, PathBuf)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cfg = ImageConfig::parse(&text).with_context(|| format!("config {}", path.display()))?;
    let base = path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    Ok((cfg, base))
}

fn run_images(command: ImagesCommand, device: candle_core::Device) -> Result<()> {
    match command {
        ImagesCommand::Train { config, run, steps } => {
            let (mut cfg, base) = load_image_config(&config)?;
            if let Some(s) = steps {
                cfg.steps = s;
            }
            let s = train_images(&cfg, &base, &run, &device)?;
            println!(
                "trained {} steps in {:.0} s: {:.1} images/s, {} parameters; last E+ {:.4}, E- {:.4}",
                s.steps, s.seconds, s.images_per_second, s.parameters, s.last_e_pos, s.last_e_neg
            );
            Ok(())
        }
        ImagesCommand::Sample {
            config,
            run,
            out,
            ensemble,
        } => {
            let (cfg, _) = load_image_config(&config)?;
            let path = sample_grid(&cfg, &run, &out, ensemble, &device)?;
            println!("wrote {}", path.display());
            Ok(())
        }
        ImagesCommand::Restore { config, run, out } => {
            let (cfg, base) = load_image_config(&config)?;
            let rows = restore(&cfg, &base, &run, &out, &device)?;
            println!("| task | images | MSE corrupted | MSE restored |\n|---|---|---|---|");
            for r in rows {
                println!(
                    "| {} | {} | {:.4} | {:.4} |",
                    r.task, r.images, r.mse_corrupted, r.mse_restored
                );
            }
            println!("PNGs in {}", out.display());
            Ok(())
        }
        ImagesCommand::Ood { config, run, out } => {
            let (cfg, base) = load_image_config(&config)?;
            let rows = ood(&cfg, &base, &run, &out, &device)?;
            println!("| OOD set | images | AUROC |\n|---|---|---|");
            for r in rows {
                println!("| {} | {} | {:.3} |", r.ood_set, r.images, r.auroc);
            }
            println!("histogram: {}", out.join("energy_histogram.png").display());
            Ok(())
        }
        ImagesCommand::Classify { config, run } => {
            let (cfg, base) = load_image_config(&config)?;
            let (n, acc) = classify(&cfg, &base, &run, &device)?;
            println!(
                "classification by lowest energy: {:.1}% of {n} test digits",
                100.0 * acc
            );
            Ok(())
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let device = ebm_core::device::select(&cli.device)?;
    match cli.command {
        Command::Images { command } => run_images(command, device),
        Command::Traj { command } => run_traj(command, device),
        Command::Toy { config, out, steps } => {
            let mut cfg = match &config {
                Some(p) => ToyConfig::parse(
                    &std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?,
                )
                .with_context(|| format!("config {}", p.display()))?,
                None => ToyConfig::default_config()?,
            };
            if let Some(s) = steps {
                cfg.steps = s;
            }
            let o = ToyRun { cfg, device }.run(&out)?;
            println!("toy run: trained 3 energies in {:.1} s", o.train_seconds);
            let pct = |v: &[f64]| {
                v.iter()
                    .map(|f| format!("{:.1}", 100.0 * f))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!("| samples of | % per mode | % off-mode |");
            println!("|---|---|---|");
            for (name, r) in [
                ("ring", &o.ring),
                ("subset A", &o.subset_a),
                ("subset B", &o.subset_b),
                ("E_A + E_B", &o.sum),
            ] {
                println!(
                    "| {name} | {} | {:.1} |",
                    pct(&r.per_mode),
                    100.0 * r.off_mode
                );
            }
            println!(
                "E_A + E_B: {:.1}% of samples in the intersection (modes {:?})",
                100.0 * o.sum_in_intersection,
                o.intersection
            );
            for f in &o.figures {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
