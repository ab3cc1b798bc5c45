//! `ebm-runtime ood-eval`: how well the daemon's OOD score separates
//! held-out nominal simulator states from states of perturbed simulators.
//!
//! Held-out trajectories (seeds unused by `ebm-sim generate`'s defaults)
//! come from the nominal simulator and from four perturbations: a heavier
//! cube, lower friction, a stuck joint (one actuator ignores its commands)
//! and sensor noise (Gaussian noise on the observed states). Every observed
//! transition is scored by the served model exactly as the daemon scores it
//! (`RobotModel::transition_scores`), and the AUROC of perturbed against nominal
//! is reported per perturbation, per transition and per window (the
//! daemon's window at each trajectory's last state, its last
//! [`OodScorer::window_len`] transitions: the Stein discrepancy where the
//! model stores the test, and the mean energy), with the share of windows
//! the daemon would flag.

use ebm_core::stats::metrics::auroc;
use ebm_core::Rng;
use ebm_sim_data::episode::{mix, simulate_with_stuck_actuator, Control, Seeds};
use ebm_sim_data::SimConfig;
use serde::Serialize;

use ebm_runtime::model::Transition;
use ebm_runtime::ood::{OodScorer, TransitionScore, WindowScore};
use ebm_runtime::RuntimeError;

/// One trajectory: states (`T x 31`) and actions (`T x 20`), row-major.
type Episode = (Vec<f32>, Vec<f32>);

#[derive(Debug, Clone)]
pub struct OodEvalOptions {
    pub trajectories: usize,
    pub steps: u32,
    pub seed: u64,
    /// Heavier cube: mass multiplied by this.
    pub mass_factor: f32,
    /// Lower friction: cube and hand friction multiplied by this.
    pub friction_factor: f32,
    /// Stuck joint: this actuator holds its initial target (1 = WRJ1, the wrist).
    pub stuck_actuator: usize,
    /// Windows at or above this percentile of training windows are flagged.
    pub flag_percentile: f64,
    /// Sensor noise: standard deviation in units of each state dimension's
    /// spread (its normalisation std; 1 for a checkpoint without statistics).
    pub noise_std: f32,
}

impl Default for OodEvalOptions {
    fn default() -> Self {
        Self {
            trajectories: 16,
            steps: 60,
            seed: 0x00D_E7A1,
            mass_factor: 5.0,
            friction_factor: 0.1,
            stuck_actuator: 1,
            noise_std: 0.5,
            flag_percentile: 99.0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OodRow {
    pub perturbation: String,
    pub trajectories: usize,
    pub transitions: usize,
    /// Attempts discarded because the cube fell.
    pub dropped: usize,
    pub mean_energy: f64,
    pub mean_percentile: f64,
    pub auroc_transitions: Option<f64>,
    /// Transitions per window (fewer when trajectories are shorter).
    pub window: usize,
    /// AUROC of the daemon's window statistic: the Stein discrepancy where
    /// the model stores the test, else the mean energy.
    pub auroc_windows: Option<f64>,
    /// AUROC of the window's mean energy.
    pub auroc_window_energy: Option<f64>,
    /// Share of trajectories whose last window is flagged (its percentile
    /// at or above `flag_percentile`); `None` without window percentiles.
    pub windows_flagged: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OodReport {
    pub model_id: String,
    pub percentiles_from: String,
    pub rows: Vec<OodRow>,
}

/// Trajectories (states, actions) of one simulator variant, retrying attempts that drop the cube.
/// Perturbed variants use the same seeds as the nominal one: paired start states.
fn simulate(cfg: &SimConfig, opts: &OodEvalOptions, stuck: Option<usize>) -> (Vec<Episode>, usize) {
    let mut out = Vec::new();
    let mut dropped = 0;
    for i in 0..opts.trajectories as u64 {
        for attempt in 0..cfg.max_attempts {
            let seed = mix(mix(opts.seed, i), u64::from(attempt));
            match simulate_with_stuck_actuator(
                cfg,
                opts.steps,
                Seeds::attempt(seed),
                &Control::Scripted { force: None },
                stuck,
            ) {
                Ok(t) => {
                    out.push((t.states, t.actions));
                    break;
                }
                Err(_) => dropped += 1,
            }
        }
    }
    (out, dropped)
}

/// Per-trajectory OOD scores (daemon scoring).
fn scores(
    scorer: &OodScorer,
    trajs: &[Episode],
) -> Result<Vec<Vec<TransitionScore>>, RuntimeError> {
    let mut all = Vec::with_capacity(trajs.len());
    let d = scorer.experts()[0].model.state_dim();
    for (states, actions) in trajs {
        let t = states.len() / d;
        let a = actions.len() / t.max(1);
        let rows: Vec<Vec<f32>> = states.chunks(d).map(<[f32]>::to_vec).collect();
        let first = scorer.context_len().min(t);
        let transitions: Vec<Transition> = (first..t)
            .map(|i| Transition {
                before: &rows[..i],
                action: (a > 0).then(|| &actions[(i - 1) * a..i * a]),
                next: &rows[i],
            })
            .collect();
        all.push(scorer.score(&transitions)?);
    }
    Ok(all)
}

/// Runs the evaluation.
pub fn ood_eval(scorer: &OodScorer, opts: &OodEvalOptions) -> Result<OodReport, RuntimeError> {
    let model = &scorer.experts()[0].model;
    // The perturbed simulators are the hand's: only its models can score them.
    for e in scorer.experts() {
        let b = &e.model;
        let actions_fit = !b.conditional() || b.action_dim() == ebm_sim_data::HAND_ACTION_DIM;
        if b.state_dim() != ebm_sim_data::HAND_STATE_DIM || !actions_fit {
            return Err(RuntimeError::Model(format!(
                "ood-eval simulates the hand ({}-float states, {}-float actions); {} models {} and {}",
                ebm_sim_data::HAND_STATE_DIM,
                ebm_sim_data::HAND_ACTION_DIM,
                b.model_id,
                b.state_dim(),
                b.action_dim()
            )));
        }
    }
    let nominal_cfg = SimConfig::default();
    let (nominal, nominal_dropped) = simulate(&nominal_cfg, opts, None);
    let mut heavy = nominal_cfg.clone();
    heavy.cube.mass_kg *= opts.mass_factor;
    let mut slippery = nominal_cfg.clone();
    slippery.cube.friction *= opts.friction_factor;
    slippery.actuators.hand_friction *= opts.friction_factor;
    // Sensor noise on the nominal trajectories, scaled per dimension.
    let mut rng = Rng::new(opts.seed ^ 0x5E05);
    let d = model.state_dim();
    let spread = model.units.denormalize_state(&vec![1.0; d]);
    let zero = model.units.denormalize_state(&vec![0.0; d]);
    let noisy: Vec<Episode> = nominal
        .iter()
        .map(|(s, a)| {
            let z = rng.normal_vec(s.len());
            let s = s
                .iter()
                .zip(z)
                .enumerate()
                .map(|(i, (v, n))| v + n * opts.noise_std * (spread[i % d] - zero[i % d]))
                .collect();
            (s, a.clone())
        })
        .collect();
    let variants: Vec<(String, Vec<Episode>, usize)> = vec![
        ("nominal".into(), nominal, nominal_dropped),
        {
            let (t, d) = simulate(&heavy, opts, None);
            (format!("heavier cube (x{})", opts.mass_factor), t, d)
        },
        {
            let (t, d) = simulate(&slippery, opts, None);
            (format!("lower friction (x{})", opts.friction_factor), t, d)
        },
        {
            let (t, d) = simulate(&nominal_cfg, opts, Some(opts.stuck_actuator));
            (
                format!("stuck joint (actuator {})", opts.stuck_actuator),
                t,
                d,
            )
        },
        (format!("sensor noise ({} std)", opts.noise_std), noisy, 0),
    ];
    let mut scored = Vec::with_capacity(variants.len());
    for (name, trajs, dropped) in &variants {
        scored.push((name.clone(), scores(scorer, trajs)?, trajs.len(), *dropped));
    }
    let flat = |e: &[Vec<TransitionScore>]| {
        e.iter()
            .flatten()
            .map(|v| f64::from(v.energy))
            .collect::<Vec<f64>>()
    };
    let windows =
        |e: &[Vec<TransitionScore>]| e.iter().map(|t| scorer.window(t)).collect::<Vec<_>>();
    let window_energies =
        |w: &[WindowScore]| w.iter().map(|w| f64::from(w.energy)).collect::<Vec<f64>>();
    let window_tests = |w: &[WindowScore]| {
        w.iter()
            .map(|w| f64::from(w.discrepancy.unwrap_or(w.energy)))
            .collect::<Vec<f64>>()
    };
    let nom_flat = flat(&scored[0].1);
    let nom_windows = windows(&scored[0].1);
    let (nom_energies, nom_tests) = (window_energies(&nom_windows), window_tests(&nom_windows));
    let rows = scored
        .iter()
        .enumerate()
        .map(|(i, (name, e, n, dropped))| {
            let f = flat(e);
            let w = windows(e);
            let flagged: Option<Vec<bool>> = w
                .iter()
                .map(|w| w.percentile.map(|p| f64::from(p) >= opts.flag_percentile))
                .collect();
            let pct: Vec<f64> = e
                .iter()
                .flatten()
                .filter_map(|v| v.percentile.map(f64::from))
                .collect();
            OodRow {
                perturbation: name.clone(),
                trajectories: *n,
                transitions: f.len(),
                dropped: *dropped,
                mean_energy: f.iter().sum::<f64>() / f.len().max(1) as f64,
                mean_percentile: if pct.is_empty() {
                    f64::NAN
                } else {
                    pct.iter().sum::<f64>() / pct.len() as f64
                },
                auroc_transitions: (i > 0).then(|| auroc(&f, &nom_flat)).flatten(),
                window: w.iter().map(|w| w.len).max().unwrap_or(0),
                auroc_windows: (i > 0)
                    .then(|| auroc(&window_tests(&w), &nom_tests))
                    .flatten(),
                auroc_window_energy: (i > 0)
                    .then(|| auroc(&window_energies(&w), &nom_energies))
                    .flatten(),
                windows_flagged: flagged
                    .filter(|v| !v.is_empty())
                    .map(|v| v.iter().filter(|&&b| b).count() as f64 / v.len() as f64),
            }
        })
        .collect();
    Ok(OodReport {
        model_id: scorer.model_id().to_owned(),
        percentiles_from: if scorer.calibrated() {
            "checkpoint".into()
        } else {
            "none".into()
        },
        rows,
    })
}

impl OodReport {
    /// A markdown table.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "OOD score of model `{}`: AUROC of perturbed against nominal held-out transitions (goal >= 0.9), per transition and per window \
             (the daemon's window at each trajectory's end, its last {} transitions: the Stein window test where the model stores it, and the mean energy), \
             and the share of windows the daemon flags.\n\n\
             | simulator | trajectories | transitions | mean energy | mean percentile | AUROC (transitions) | AUROC (windows) | AUROC (window mean energy) | windows flagged |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            self.model_id,
            self.rows.first().map_or(0, |r| r.window)
        );
        let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        for r in &self.rows {
            s.push_str(&format!(
                "| {} | {} | {} | {:.3} | {} | {} | {} | {} | {} |\n",
                r.perturbation,
                r.trajectories,
                r.transitions,
                r.mean_energy,
                if r.mean_percentile.is_nan() {
                    "-".into()
                } else {
                    format!("{:.1}", r.mean_percentile)
                },
                f(r.auroc_transitions),
                f(r.auroc_windows),
                f(r.auroc_window_energy),
                r.windows_flagged
                    .map_or("-".to_owned(), |v| format!("{:.0}%", 100.0 * v))
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn every_perturbation_is_scored_against_nominal() {
        let d = ebm_sim_data::HAND_STATE_DIM;
        let model = ebm_runtime::RobotModel::untrained(0, d, vec![8], &Device::Cpu).unwrap();
        let opts = OodEvalOptions {
            trajectories: 2,
            steps: 6,
            ..Default::default()
        };
        let r = ood_eval(&OodScorer::new(vec![model]), &opts).unwrap();
        assert_eq!(r.rows.len(), 5);
        assert!(r.rows[0].auroc_transitions.is_none());
        for row in &r.rows {
            assert_eq!(row.transitions, row.trajectories * 5, "{row:?}");
        }
        for row in &r.rows[1..] {
            let a = row.auroc_transitions.unwrap();
            assert!((0.0..=1.0).contains(&a), "{row:?}");
        }
        // Sensor noise changes the observed states, hence the energies.
        assert_ne!(r.rows[4].mean_energy, r.rows[0].mean_energy);
        assert_eq!(
            r.markdown().lines().filter(|l| l.starts_with("| ")).count(),
            7
        ); // header, rule, 5 rows
    }
}
