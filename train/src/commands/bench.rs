//! `ebm-train bench`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use clap::Args;
use ebm_train::bench_workloads::{
    build_workload, f1_flops, matmul_ceilings, peak_rss_kb, run_workload, WORKLOADS,
};

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
    /// Serve one workload to `bench/compare.py`'s paired timing: set it up,
    /// run one warm-up unit, print `ready`, then for each line `K` on stdin
    /// run K units and print their total seconds; at the end of stdin print
    /// `peak_rss_kb N`.
    #[arg(long, value_name = "ID", conflicts_with_all = ["only", "ceiling", "json"])]
    serve: Option<String>,
}

pub fn run(args: BenchArgs, device: Device) -> Result<()> {
    if let Some(id) = &args.serve {
        return serve(&id.trim().to_uppercase(), &device);
    }
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

/// The `--serve` loop: units on request, timed here so that process start
/// and pipe latency stay outside the figure.
fn serve(id: &str, device: &Device) -> Result<()> {
    let (_, mut unit_fn) = build_workload(id, device)?;
    unit_fn()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let k: usize = line
            .trim()
            .parse()
            .with_context(|| format!("bench --serve: expected a unit count, got {line:?}"))?;
        let t0 = Instant::now();
        for _ in 0..k {
            unit_fn()?;
        }
        writeln!(out, "{}", t0.elapsed().as_secs_f64())?;
        out.flush()?;
    }
    writeln!(out, "peak_rss_kb {}", peak_rss_kb().unwrap_or(0))?;
    Ok(())
}
