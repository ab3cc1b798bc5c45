//! Sampling from energies: Langevin dynamics over any weighted sum of
//! energies ([`langevin`]), with masks (inpainting), gradient clipping,
//! clamping and time budgets.

pub mod langevin;
