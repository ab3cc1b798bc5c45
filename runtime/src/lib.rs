//! `ebm-runtime`: the daemon that subscribes to robot state over Zenoh and
//! publishes multistep Langevin forecasts, OOD scores and denoised states,
//! using `ebm-core`'s models and sampler. Filled by the runtime issue; until
//! then it holds no code.
