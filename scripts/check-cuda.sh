#!/usr/bin/env bash
# Compile-checks the CUDA build (`--features cuda`) on a machine without a GPU
# or a CUDA installation: installs the CUDA compiler and headers from PyPI
# wheels into a local folder, then builds every library of the workspace with
# the feature on (candle's CUDA kernels compiled to PTX by nvcc) and
# type-checks every binary and test. Linking needs the CUDA libraries
# (libcuda comes with the driver, in no wheel), so binaries are linked on a
# GPU machine, not here.
#
#   scripts/check-cuda.sh            # about 30 min on 2 cores from scratch
#
# Settings (environment): CUDA_COMPUTE_CAP (default 87: Jetson Orin; 90 for
# H100 / H200), CUDA_WHEELS (default target/cuda-wheels), CARGO_TARGET_DIR
# (default target/cuda, so the CPU build is left alone). nvcc 13.5 comes from
# the `nvidia-cuda-nvcc` 13.x wheel (the `-cu12` one ships only ptxas);
# cudarc 0.19 knows CUDA up to 13.4 by name, hence CUDARC_CUDA_VERSION=13040.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=${CUDA_WHEELS:-target/cuda-wheels}
if [ ! -x "$wheels/nvidia/cu13/nvvm/bin/cicc" ]; then
  python3 -m pip install --quiet --no-deps --target "$wheels" \
    "nvidia-cuda-nvcc==13.*" "nvidia-cuda-crt==13.*" "nvidia-nvvm==13.*" \
    "nvidia-cuda-runtime==13.*" "nvidia-cuda-cccl==13.*"
fi
cuda=$(cd "$wheels/nvidia/cu13" && pwd)
export PATH="$cuda/bin:$PATH"
export CUDA_PATH="$cuda" CUDA_ROOT="$cuda" CUDA_HOME="$cuda" CUDA_TOOLKIT_ROOT_DIR="$cuda"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-87}
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13040}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
nvcc --version | tail -2
features=ebm-core/cuda,ebm-train/cuda,ebm-runtime/cuda,ebm-tools/cuda
echo "== libraries with CUDA (compute capability $CUDA_COMPUTE_CAP)"
cargo build --release --workspace --lib --features "$features"
echo "== binaries and tests, type-checked"
cargo check --release --workspace --all-targets --features "$features"
echo "CUDA build: every crate compiles with --features cuda"
