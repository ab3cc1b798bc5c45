//! What a trajectory model's export stores for the daemon's OOD scores: the
//! percentiles of the energy of training transitions and, from windows of
//! consecutive training transitions (one window at a random offset per
//! trajectory), the percentiles of their mean energy and the Stein window
//! test ([`ebm_core::stats::stein`]) fitted on every other window and calibrated on
//! the rest.

use anyhow::Result;
use candle_core::{Device, Tensor};
use ebm_core::checkpoint::{Manifest, OodCalibration, WindowPercentiles};
use ebm_core::stats::stein::{self, SteinWindow};
use ebm_core::{EnergyTerm, MlpEnergy, PositiveSource, Rng};
use ndarray::Axis;

use super::data::TransitionData;

/// Transitions per window of the daemon's windowed OOD score.
pub const OOD_WINDOW: usize = 50;
/// Training trajectories (at most) whose windows give the window statistics.
const OOD_WINDOW_TRAJECTORIES: usize = 4000;

/// Training transitions whose energies give the energy percentiles.
const ENERGY_SAMPLES: usize = 20_000;

/// The statistics, computed by [`OodStatistics::compute`].
pub struct OodStatistics {
    /// 0th to 100th percentiles of training transitions' energies.
    pub energy: Vec<f32>,
    pub windows: Option<WindowPercentiles>,
    pub stein: Option<SteinWindow>,
}

impl OodStatistics {
    /// The statistics of `model` (frozen) on `data`'s trajectories; random
    /// draws from a stream derived from `seed`.
    pub fn compute(
        model: &MlpEnergy,
        data: &TransitionData,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let mut rng = Rng::derived(seed, "energy-percentiles");
        let mut energies: Vec<f32> = Vec::with_capacity(ENERGY_SAMPLES);
        for _ in 0..ENERGY_SAMPLES / 1000 {
            let (x, c) = data.batch(1000, &mut rng, device)?;
            let e = ebm_core::EnergyFunction::energy(model, &x, c.as_ref())?;
            energies.extend(e.to_vec1::<f32>()?);
        }
        let (windows, stein) = window_statistics(model, data, &mut rng, device)?;
        Ok(Self {
            energy: ebm_core::stats::metrics::percentiles(energies),
            windows,
            stein,
        })
    }

    /// Writes the statistics into the manifest's typed OOD calibration,
    /// replacing stale ones.
    pub fn record(&self, m: &mut Manifest) {
        m.ood = Some(OodCalibration {
            energy_percentiles: self.energy.clone(),
            window_energy_percentiles: self.windows.clone(),
            stein_window: self.stein.clone(),
        });
    }
}

/// The window statistics of `model` on `data`'s trajectories; `None` when
/// they are shorter than a window (and no Stein test with fewer than three).
fn window_statistics(
    model: &MlpEnergy,
    data: &TransitionData,
    rng: &mut Rng,
    device: &Device,
) -> Result<(Option<WindowPercentiles>, Option<SteinWindow>)> {
    let t_len = data.states.len_of(Axis(1));
    let (k, d) = (data.context_len, data.states.len_of(Axis(2)));
    let count = t_len.saturating_sub(k);
    if count < OOD_WINDOW || data.ids.is_empty() {
        return Ok((None, None));
    }
    let stride = (data.ids.len() / OOD_WINDOW_TRAJECTORIES).max(1);
    let mut energies = Vec::new();
    let (mut fit, mut calibrate) = (Vec::new(), Vec::new());
    let windows = data
        .ids
        .iter()
        .step_by(stride)
        .take(OOD_WINDOW_TRAJECTORIES);
    for (n, &i) in windows.enumerate() {
        let start = k - 1 + rng.below(count - OOD_WINDOW + 1);
        let (mut x, mut c) = (Vec::new(), Vec::new());
        for t in start..start + OOD_WINDOW {
            x.extend(data.transition(i, t, &mut c));
        }
        let cd = c.len() / OOD_WINDOW;
        let cond = (cd > 0)
            .then(|| Tensor::from_vec(c, (OOD_WINDOW, cd), device))
            .transpose()?;
        let xt = Tensor::from_vec(x.clone(), (OOD_WINDOW, d), device)?;
        let (e, g) = ebm_core::energy_and_grad(&[EnergyTerm::new(model, cond)], &xt)?;
        energies.push(e.mean_all()?.to_scalar::<f32>()?);
        let f = stein::features(&x, &g.flatten_all()?.to_vec1()?);
        let m = stein::mean_of(f.chunks(d), d);
        if n % 2 == 0 {
            fit.push(m)
        } else {
            calibrate.push(m)
        }
    }
    let stein = if !calibrate.is_empty() && fit.len() >= 2 {
        Some(SteinWindow::fit(OOD_WINDOW, &fit, &calibrate)?)
    } else {
        None
    };
    let percentiles = WindowPercentiles {
        window: OOD_WINDOW,
        percentiles: ebm_core::stats::metrics::percentiles(energies),
    };
    Ok((Some(percentiles), stein))
}
