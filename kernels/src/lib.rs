//! `ebm-kernels`: the CPU kernels under igebm-rs's fused paths, and the only
//! crate of the workspace with `unsafe` code (SIMD dispatch and raw GEMM
//! calls, each behind a safe, bounds-checked function).
//!
//! Where it sits: below `ebm-core`, whose fused MLP and ResNet energies
//! (`core/src/models/fused/`) are built from these pieces; nothing above
//! `ebm-core` uses it directly.
//!
//! - [`sgemm`]: f32 matrix products on strided views ([`sgemm::MatRef`]),
//!   over the `gemm` crate's AVX-512 / AVX2 kernels.
//! - [`packed_gemm`]: a right-hand matrix packed once into register-blocked
//!   panels ([`packed_gemm::PackedB`]), multiplied many times (weights).
//! - [`winograd`]: 3x3 convolutions by Winograd's F(4x4, 3x3).
//! - [`conv`]: size-preserving convolutions as matrices
//!   ([`conv::ConvMats`]: forward, input and weight gradients, Winograd where
//!   it applies), 2x2 average pooling, layout changes, on channels-last
//!   buffers.
//! - [`im2col`]: a channels-last convolution as a candle op
//!   ([`im2col::conv2d_nhwc`]), differentiable, for the tensor path.
//! - [`activation`]: the activations ([`Activation`]) and their slopes,
//!   vectorised.
//! - [`rng`]: the seedable, serialisable generator of every random draw
//!   ([`Rng`]), with vectorised Box-Muller normals.

pub mod activation;
pub mod conv;
pub mod im2col;
pub mod packed_gemm;
pub mod rng;
pub mod sgemm;
pub mod winograd;

pub use activation::Activation;
pub use rng::Rng;
