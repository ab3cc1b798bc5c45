//! `ebm-train device-check`.

use anyhow::Result;
use candle_core::Device;
use ebm_train::device_check::{run_checks, TOLERANCE};

pub fn run(device: Device) -> Result<()> {
    println!("{device:?} against the CPU's fused kernels (tolerance {TOLERANCE:e}):");
    println!("| check | relative difference | |");
    println!("| --- | --- | --- |");
    let checks = run_checks(&device)?;
    for c in &checks {
        let verdict = if c.passed() { "ok" } else { "FAILED" };
        println!("| {} | {:.2e} | {verdict} |", c.name, c.rel_err);
    }
    let failed = checks.iter().filter(|c| !c.passed()).count();
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} device checks failed",
        checks.len()
    );
    println!("all {} device checks passed", checks.len());
    Ok(())
}
