/// mimalloc keeps freed pages for reuse: candle allocates a fresh buffer per
/// tensor op, and the system allocator's page faults and zeroing of those took
/// a third of image sampling's time.
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
