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
