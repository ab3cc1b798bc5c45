//! Device selection: the CPU by default, CUDA when built with the `cuda`
//! feature and asked for.

use candle_core::Device;

use crate::error::{CoreError, Result};

/// `"cpu"`, `"cuda"` or `"cuda:N"`.
pub fn select(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        _ if name == "cuda" || name.starts_with("cuda:") => {
            let ordinal = match name.strip_prefix("cuda:") {
                Some(n) => n
                    .parse::<usize>()
                    .map_err(|_| CoreError::config(format!("device {name}: bad CUDA ordinal")))?,
                None => 0,
            };
            if !candle_core::utils::cuda_is_available() {
                return Err(CoreError::config(format!(
                    "device {name}: this build has no CUDA support (build with --features cuda)"
                )));
            }
            Ok(Device::new_cuda(ordinal)?)
        }
        other => Err(CoreError::config(format!(
            "unknown device {other:?}: use cpu, cuda or cuda:N"
        ))),
    }
}

/// Fixes the worker-thread count for the process: sets `RAYON_NUM_THREADS`
/// to the available parallelism unless the user set it. Call first thing in
/// `main`, before any thread exists. Candle 0.11 looks the count up on every
/// parallel CPU op, and without the variable that lookup reads
/// `/proc/cpuinfo` each time (about 9% of a trajectory training step).
pub fn pin_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}
