//! `ebm-train bench`.

use std::path::PathBuf;

use anyhow::Result;
use candle_core::Device;
use clap::Args;
use ebm_train::bench::{f1_flops, matmul_ceilings, run_workload, WORKLOADS};

#[derive(Args)]
pub struct BenchArgs {
    /// Comma-separated workload ids.
    #[arg(long, default_value = "F1,F2,T1,I1,I2")]
    only: String,
    /// Timed repetitions per workload (after one warm-up).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Also measure this machine's matmul ceilings and F1's floor.
    #[arg(long)]
    ceiling: bool,
    /// Write the results as JSON (the peer's layout).
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(args: BenchArgs, device: Device) -> Result<()> {
    anyhow::ensure!(args.reps >= 1, "--reps must be at least 1");
    let mut results = serde_json::Map::new();
    println!(
        "ebm-train {} bench, {} threads",
        env!("CARGO_PKG_VERSION"),
        rayon::current_num_threads()
    );
    for id in args.only.split(',').map(|s| s.trim().to_uppercase()) {
        anyhow::ensure!(
            WORKLOADS.contains(&id.as_str()),
            "unknown workload {id}: expected some of {WORKLOADS:?}"
        );
        let r = run_workload(&id, args.reps, &device)?;
        let figs: Vec<String> = r
            .figures
            .iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        println!(
            "{id}: median {:.4} s per {} ({}); peak RSS {} kB",
            r.median_s,
            r.unit,
            figs.join(", "),
            r.peak_rss_kb.unwrap_or(0)
        );
        results.insert(id, serde_json::to_value(&r)?);
    }
    if args.ceiling {
        let c = matmul_ceilings(args.reps)?;
        for (k, v) in &c {
            println!("{k}: {v:.1} GFLOP/s");
        }
        let flops = f1_flops();
        let best = c.values().copied().fold(0.0, f64::max);
        println!(
            "F1 FLOPs per forecast: {flops:.0}; floor {:.1} ms at the best rate above",
            1e3 * flops / (best * 1e9)
        );
        let mut cj = serde_json::to_value(&c)?;
        cj["F1_flops"] = flops.into();
        results.insert("_ceiling".into(), cj);
    }
    if let Some(p) = args.json {
        std::fs::write(&p, serde_json::to_vec_pretty(&results)?)?;
    }
    Ok(())
}
