//! `ebm-train continual`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::Device;
use ebm_train::continual::{run_continual, ContinualConfig};

#[derive(clap::Args, Debug)]
pub struct ContinualArgs {
    /// TOML config.
    #[arg(long, default_value = "configs/continual_mnist.toml")]
    config: PathBuf,
    /// Output folder: report.json, table.md, accuracy.svg.
    #[arg(long, default_value = "out/continual")]
    out: PathBuf,
    /// `test` (the 1,000 test digits) or `validation` (the held-out training
    /// digits, where settings are chosen).
    #[arg(long, default_value = "test")]
    split: String,
    /// Run only the first N seeds of the config.
    #[arg(long)]
    seeds: Option<usize>,
}

pub fn run(args: ContinualArgs, device: Device) -> Result<()> {
    let (mut cfg, base) = ContinualConfig::load(&args.config)?;
    if let Some(n) = args.seeds {
        cfg.seeds.truncate(n.max(1));
    }
    let on_validation = match args.split.as_str() {
        "test" => false,
        "validation" => true,
        other => anyhow::bail!("--split {other}: expected `test` or `validation`"),
    };
    let report = run_continual(&cfg, &base, on_validation, &device)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    std::fs::write(
        args.out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let table = report.table();
    std::fs::write(args.out.join("table.md"), &table)?;
    report.figure(&args.out.join("accuracy.svg"))?;
    println!("{table}");
    Ok(())
}
