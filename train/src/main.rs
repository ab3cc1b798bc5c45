//! `ebm-train`: command-line entry point.

/// mimalloc keeps freed pages for reuse: candle allocates a fresh buffer per
/// tensor op, and the system allocator's page faults and zeroing of those took
/// a third of image sampling's time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod commands;

use commands::images::ImagesCommand;
use commands::traj::TrajCommand;

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
    /// Continual class learning on split MNIST (the paper's Table 1): the
    /// EBM, a softmax classifier and the softmax with task labels, every
    /// seed; writes report.json, table.md and accuracy.svg.
    Continual(commands::continual::ContinualArgs),
    /// Compositional generation on dSprites (the paper's Section 7): one
    /// EBM per latent, sampled jointly by summing energies (in progress).
    Dsprites {
        #[command(subcommand)]
        command: commands::dsprites::DspritesCommand,
    },
    /// Trajectory EBMs and the FC baseline on a hand-cube recording.
    Traj {
        #[command(subcommand)]
        command: TrajCommand,
    },
    /// The benchmark workloads (F1 F2 T1 I1 I2; docs/benchmarks.md);
    /// `bench/compare.py` runs them beside the PyTorch peer.
    Bench(commands::bench::BenchArgs),
    /// The device's arithmetic against the CPU's fused kernels: energies,
    /// input gradients and a noise-free forecast of the same seeded models;
    /// fails on a difference above the tolerance (`scripts/check-gpu.sh`
    /// runs it with `--device cuda`).
    DeviceCheck,
}

fn run(cli: Cli) -> Result<()> {
    let device = ebm_core::device::select(&cli.device)?;
    match cli.command {
        Command::Toy { config, out, steps } => commands::toy::run(config, out, steps, device),
        Command::Images { command } => commands::images::run(command, device),
        Command::Traj { command } => commands::traj::run(command, device),
        Command::Bench(args) => commands::bench::run(args, device),
        Command::Continual(args) => commands::continual::run(args, device),
        Command::Dsprites { command } => commands::dsprites::run(command, device),
        Command::DeviceCheck => commands::device_check::run(device),
    }
}

fn main() -> ExitCode {
    ebm_core::device::pin_thread_count();
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
