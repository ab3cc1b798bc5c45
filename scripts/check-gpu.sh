#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (driver, and the CUDA toolkit: nvcc and
# the libraries), checks the CUDA build end to end and prints the same tables
# as on the CPU:
#   1. builds the binaries with --features cuda for this GPU's compute
#      capability (into target/cuda, the CPU build is left alone);
#   2. `ebm-train --device cuda device-check`: energies, input gradients and a
#      noise-free forecast on the GPU against the CPU's fused kernels (fails
#      on a relative difference above 2e-3);
#   3. the test suite with the feature on;
#   4. the benchmark workloads on the GPU and on the CPU (`ebm-train bench`),
#      and the daemon's latency and robots served at 10 Hz on each
#      (`ebm-tools bench`, the Fetch model, batches of 1 to 16 robots).
# Stops at the first failure. Takes about as long as the CPU build and test
# suite plus a few minutes.
#
#   scripts/check-gpu.sh                     # all of the above
#   CHECK_GPU_SKIP_TESTS=1 scripts/check-gpu.sh   # without step 3
#
# Settings (environment): CUDA_COMPUTE_CAP (default: asked of nvidia-smi;
# 87 on Jetson Orin), CARGO_TARGET_DIR (default target/cuda). Without a GPU,
# scripts/check-cuda.sh compile-checks the same build.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "check-gpu: no NVIDIA GPU here (nvidia-smi); scripts/check-cuda.sh compile-checks without one" >&2
  exit 2
fi
nvidia-smi -L
if [ -z "${CUDA_COMPUTE_CAP:-}" ]; then
  CUDA_COMPUTE_CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
fi
export CUDA_COMPUTE_CAP
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
features=ebm-core/cuda,ebm-train/cuda,ebm-runtime/cuda,ebm-tools/cuda
bin="$CARGO_TARGET_DIR/release"

echo "== 1. build (compute capability $CUDA_COMPUTE_CAP)"
cargo build --release --workspace --bins --features "$features"

echo "== 2. the GPU against the CPU's fused kernels"
"$bin/ebm-train" --device cuda device-check

if [ -z "${CHECK_GPU_SKIP_TESTS:-}" ]; then
  echo "== 3. tests with --features cuda"
  cargo test --release --workspace --features "$features"
fi

echo "== 4. benchmarks, GPU then CPU"
for device in cuda cpu; do
  echo "-- ebm-train bench --device $device"
  "$bin/ebm-train" --device "$device" bench --reps 5
done
for device in cuda cpu; do
  echo "-- ebm-tools bench --device $device (configs/models/fetch_uncond)"
  "$bin/ebm-tools" bench --device "$device" --checkpoint configs/models/fetch_uncond \
    --batches 1,2,4,8,16
done
echo "check-gpu: the CUDA build passed every check"
