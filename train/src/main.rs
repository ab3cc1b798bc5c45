//! `ebm-train`: command-line entry point.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ebm_train::toy::{ToyConfig, ToyRun};

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
}

fn run(cli: Cli) -> Result<()> {
    let device = ebm_core::device::select(&cli.device)?;
    match cli.command {
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
