/// mimalloc keeps freed pages for reuse: candle allocates a fresh buffer per
/// tensor op (the tensor paths of forecasts and denoising), and the system
/// allocator's page faults and zeroing of those cost a large share of
/// inference time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    ebm_runtime::cli_support::init_logging();
    match cli::run(cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
