//! Fair scheduling: a client that keeps the query queue full of
//! maximum-size queries takes at most `query.max_share` of the inference
//! thread while a robot streams, so the robot keeps getting its forecasts
//! (with queries always first, it would get none), and the queries are
//! still answered.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use ebm_msgs::{Encoding, ForecastRequest};

use crate::harness::{put, query, receive_until, state, Harness, Received};

/// States the robot streams at `RATE_HZ` during the flood.
const STATES: u64 = 30;
const RATE_HZ: f64 = 10.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_query_flood_cannot_starve_streaming_robots() -> Result<()> {
    let h = Arc::new(
        Harness::start(|cfg| {
            cfg.forecast.rate_hz = RATE_HZ;
            // Queries as large as allowed, each many streaming forecasts'
            // worth of compute (but small replies, so the client keeps up).
            cfg.forecast.langevin.steps = 20;
            cfg.query.max_horizon = 40;
            cfg.query.max_particles = 256;
            cfg.query.max_share = 0.5;
        })
        .await?,
    );
    let mut outputs = h.outputs("streamer").await?;
    let p = h.publisher("streamer").await?;
    put(&p, &state("streamer", 0, 0.0), Encoding::Bincode).await?;
    let mut rec = Received::default();
    receive_until(&mut outputs, &mut rec, |r| !r.forecasts.is_empty()).await?;
    // The asker's robot must have a state for its queries to be computed.
    let asker = h.publisher("asker").await?;
    put(&asker, &state("asker", 0, 0.0), Encoding::Bincode).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut flood = Vec::new();
    for _ in 0..4 {
        let (h, stop, answered) = (Arc::clone(&h), Arc::clone(&stop), Arc::clone(&answered));
        flood.push(tokio::spawn(async move {
            let req = ForecastRequest {
                robot_id: "asker".into(),
                horizon: 40,
                particles: 256,
                deadline_ms: None,
            };
            while !stop.load(Ordering::Relaxed) {
                match query(&h, &req, Encoding::Bincode).await {
                    Ok((Ok(_), _)) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    other => eprintln!("query: {other:?}"),
                }
            }
        }));
    }
    // Let the flood fill the queue, then stream.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = answered.load(Ordering::Relaxed);
    let start = Instant::now();
    for seq in 1..=STATES {
        let at = start + Duration::from_secs_f64(seq as f64 / RATE_HZ);
        tokio::time::sleep_until(at.into()).await;
        put(
            &p,
            &state("streamer", seq, 0.01 * seq as f32),
            Encoding::Bincode,
        )
        .await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let during = answered.load(Ordering::Relaxed) - before;
    for f in flood {
        f.await?;
    }
    while outputs.try_take(&mut rec)? {}
    let streamed = rec.forecasts.iter().filter(|f| f.seq >= 1).count() as u64;
    eprintln!("flood: {during} queries answered; streamer: {streamed} of {STATES} forecasts");
    assert!(during >= 5, "the flood was not served: {during} queries");
    assert!(
        streamed >= STATES / 2,
        "a query flood starved the streaming robot: {streamed} of {STATES} forecasts"
    );
    let h = Arc::into_inner(h).expect("the flood tasks have ended");
    h.stop().await
}
