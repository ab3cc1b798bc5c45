//! `ebm-train toy`: the 2-D ring of Gaussians and the composition of energies.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ebm_train::toy::{ToyConfig, ToyRun};

pub fn run(
    config: Option<PathBuf>,
    out: PathBuf,
    steps: Option<u64>,
    device: candle_core::Device,
) -> Result<()> {
    let mut cfg = match &config {
        Some(p) => ToyConfig::parse(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
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
