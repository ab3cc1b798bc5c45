//! Throughput measurement for `ebm-sim bench` (not a test: no timing asserts).

use std::time::Instant;

use rayon::prelude::*;

use crate::config::SimConfig;
use crate::episode::trajectory;

/// Paper-scale dataset size: 200,000 trajectories x 100 frames.
pub const PAPER_FRAMES: f64 = 200_000.0 * 100.0;

/// Frames per second of the simulator alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimThroughput {
    pub single_thread_fps: f64,
    /// Frames per second of the thread's own CPU time (Linux), which does not
    /// drop when other processes share the cores.
    pub single_thread_cpu_fps: Option<f64>,
    pub parallel_fps: f64,
    pub threads: usize,
}

impl SimThroughput {
    /// Hours for the paper-scale set at the parallel rate.
    pub fn paper_scale_hours(&self) -> f64 {
        PAPER_FRAMES / self.parallel_fps / 3600.0
    }
}

/// CPU time of the calling thread in ns (Linux `schedstat`), if available.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn frames(cfg: &SimConfig, steps: u32, seed: u64, ids: &[u64], parallel: bool) -> (u64, f64) {
    let start = Instant::now();
    let run = |&id: &u64| {
        trajectory(cfg, steps, seed, id)
            .0
            .map_or(0, |_| u64::from(steps))
    };
    let n: u64 = if parallel {
        ids.par_iter().map(run).sum()
    } else {
        ids.iter().map(run).sum()
    };
    (n, start.elapsed().as_secs_f64())
}

/// Simulates `trajectories` trajectories on one thread, then on all of
/// rayon's threads (rejected attempts cost time but count no frames).
pub fn sim_throughput(cfg: &SimConfig, trajectories: u64, steps: u32, seed: u64) -> SimThroughput {
    let ids: Vec<u64> = (0..trajectories).collect();
    let single = ids.len().div_ceil(4).max(1);
    let cpu0 = thread_cpu_ns();
    let (n1, t1) = frames(cfg, steps, seed, &ids[..single], false);
    let cpu = thread_cpu_ns()
        .zip(cpu0)
        .map(|(b, a)| b.saturating_sub(a) as f64 * 1e-9);
    let (n2, t2) = frames(cfg, steps, seed, &ids, true);
    SimThroughput {
        single_thread_fps: n1 as f64 / t1.max(1e-9),
        single_thread_cpu_fps: cpu.map(|c| n1 as f64 / c.max(1e-9)),
        parallel_fps: n2 as f64 / t2.max(1e-9),
        threads: rayon::current_num_threads(),
    }
}
