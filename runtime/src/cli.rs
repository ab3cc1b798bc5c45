//! Command-line interface of `ebm-runtime`: the daemon. The demo and the
//! evaluation tools are `ebm-tools` (they link the simulator; this does not).

use anyhow::Result;
use clap::{Parser, Subcommand};
use ebm_runtime::cli_support::{shutdown_signal, tokio_runtime, Overrides};

#[derive(Parser)]
#[command(
    name = "ebm-runtime",
    version,
    about = "Serves trajectory EBMs of any robot over Zenoh: forecasts, OOD scores and denoised states"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon until SIGINT or SIGTERM.
    Serve {
        #[command(flatten)]
        overrides: Overrides,
    },
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
