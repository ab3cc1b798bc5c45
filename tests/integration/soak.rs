//! A bounded soak of the daemon (`ebm-tools soak`, shorter): robots
//! streaming and restarting, queries, malformed states, for
//! `EBM_SOAK_S` seconds (default 60). Every valid state gets a forecast or a
//! counted drop, every query a reply, every malformed state is counted, and
//! memory at the end is what it was after warm-up.

use std::time::Duration;

use anyhow::Result;
use ebm_tools::soak::{soak, SoakPlan};

use crate::harness::{small_config, tiny_checkpoint};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_loses_no_valid_output_and_memory_stays_flat() -> Result<()> {
    let seconds: f64 = std::env::var("EBM_SOAK_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    let dir = tempfile::tempdir()?;
    let ckpt = dir.path().join("tiny");
    tiny_checkpoint(&ckpt)?;
    let mut cfg = small_config(
        Some(ckpt.clone()),
        ebm_runtime::transport::loopback(vec![], vec![]),
    );
    cfg.forecast.rate_hz = 20.0;
    let served = ebm_runtime::RobotModel::load(&ckpt, &candle_core::Device::Cpu)?;
    let plan = SoakPlan {
        duration: Duration::from_secs_f64(seconds),
        robots: 16,
        rate_hz: 10.0,
        queries_per_s: 5.0,
        malformed_per_s: 50.0,
        restart_every: Duration::from_secs(2),
        episodes: None,
    };
    let r = soak(cfg, served, &plan).await?;
    eprintln!("{}", serde_json::to_string_pretty(&r)?);
    let c = &r.counters;
    assert!(r.states_sent as f64 >= 0.8 * seconds * 16.0 * 10.0, "{r:?}");
    assert!(r.forecasts_received > 0 && r.ood_received > 0 && r.denoised_received > 0);
    assert_eq!(r.lost_forecasts, 0, "valid states lost: {r:?}");
    assert_eq!(r.lost_queries, 0, "queries without a reply: {r:?}");
    assert_eq!(
        r.uncounted_malformed, 0,
        "malformed states not counted: {r:?}"
    );
    assert!(r.restarts > 0);
    assert_eq!(
        c["robots_restarted"], r.restarts,
        "a restarted robot was refused: {c:?}"
    );
    assert_eq!(c["states_out_of_order"], 0, "{c:?}");
    assert!(r.queries_answered > 0 && r.queries_refused > 0, "{r:?}");
    assert!(
        r.rss_end_kib <= r.rss_warm_kib + r.rss_warm_kib / 4 + 32 * 1024,
        "memory grew from {} KiB to {} KiB",
        r.rss_warm_kib,
        r.rss_end_kib
    );
    Ok(())
}
