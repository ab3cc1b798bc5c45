//! The OOD score of observed transitions under one or more models.
//!
//! Each model ("expert") sees different evidence: the action-conditional
//! model in state space notices a joint that ignores its command, the
//! residual-space model (a linear prior and an EBM on what it leaves)
//! notices small dynamic changes and off-manifold observations. Their
//! energies compose by addition, the paper's compositionality, after each
//! is put on a common scale: centred on its median training energy and
//! divided by its interquartile range (both from the checkpoint's stored
//! percentiles). With a single expert the score is its raw energy.
//!
//! Small changes of the dynamics move single transitions little but
//! consistently, so the daemon also scores a window of a robot's recent
//! transitions ([`OodScorer::window`]): their mean score, and a test of the
//! window against training windows of the same length stored in the
//! checkpoints: the Stein window test ([`ebm_core::stats::stein`]) on the mean of
//! the transitions' features `x_j dE/dx_j`, which sees a change of spread or
//! shape in any one dimension (a heavier cube, less friction) where the mean
//! energy averages it away; checkpoints without it fall back to the
//! percentile of the mean energy.

use ebm_core::stats::stein;

use crate::model::{RobotModel, Transition};
use crate::RuntimeError;

/// One model's contribution.
pub struct Expert {
    pub model: RobotModel,
    /// Median training energy (0 without stored percentiles).
    center: f32,
    /// Interquartile range of training energies (1 without).
    spread: f32,
}

impl Expert {
    pub fn new(model: RobotModel) -> Self {
        let (center, spread) = match model.percentiles.as_deref() {
            Some(p) if p.len() == 101 && p[75] > p[25] => (p[50], p[75] - p[25]),
            _ => (0.0, 1.0),
        };
        Self {
            model,
            center,
            spread,
        }
    }
}

/// The score of one transition.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionScore {
    /// The raw energy (one expert) or the sum of scaled energies.
    pub energy: f32,
    /// Percentile among training transitions: the expert's own, or with
    /// several the highest over experts (the most surprised one); `None`
    /// when an expert has no stored percentiles.
    pub percentile: Option<f32>,
    /// Each expert's raw energy, for window scores.
    pub expert_energies: Vec<f32>,
    /// Each expert's Stein features of the transition (`x_j dE/dx_j`).
    pub expert_features: Vec<Vec<f32>>,
}

/// The score of a window of recent transitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowScore {
    /// Mean [`TransitionScore::energy`] over the window.
    pub energy: f32,
    pub len: usize,
    /// Once the window is full: the highest over experts of its percentile
    /// among training windows, of the Stein discrepancy for experts that
    /// store the test, else of the mean energy; `None` before, or when an
    /// expert stores neither.
    pub percentile: Option<f32>,
    /// The Stein discrepancy of the expert that gave `percentile`, when it
    /// came from the Stein test.
    pub discrepancy: Option<f32>,
}

/// Window length when the checkpoints store none.
pub const DEFAULT_WINDOW: usize = 50;

pub struct OodScorer {
    experts: Vec<Expert>,
    /// The experts' ids joined by `+`, put on every score message.
    model_id: String,
    /// Problems a user should see (OOD models that could not be used).
    warnings: Vec<String>,
}

impl OodScorer {
    /// At least one model.
    pub fn new(models: Vec<RobotModel>) -> Self {
        assert!(!models.is_empty(), "an OOD scorer needs a model");
        let ids: Vec<&str> = models.iter().map(|b| b.model_id.as_str()).collect();
        let model_id = ids.join("+");
        Self {
            experts: models.into_iter().map(Expert::new).collect(),
            model_id,
            warnings: Vec::new(),
        }
    }

    /// The same scorer carrying `warnings`.
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }

    /// Its warnings and its experts' (missing statistics...).
    pub fn warnings(&self) -> Vec<String> {
        let own = self.warnings.iter().cloned();
        let experts = self.experts.iter().flat_map(|e| {
            e.model
                .warnings
                .iter()
                .map(move |w| format!("OOD model {}: {w}", e.model.model_id))
        });
        own.chain(experts).collect()
    }

    pub fn experts(&self) -> &[Expert] {
        &self.experts
    }

    /// `model_id` of the one expert, or `a+b` of several.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The longest context an expert takes: transitions are scored once
    /// this many states precede them (each expert reads its own last `k`).
    pub fn context_len(&self) -> usize {
        self.experts
            .iter()
            .map(|e| e.model.context_len())
            .max()
            .unwrap_or(1)
    }

    /// Transitions per window: the experts' stored window length when they
    /// agree, else [`DEFAULT_WINDOW`].
    pub fn window_len(&self) -> usize {
        self.stored_window().unwrap_or(DEFAULT_WINDOW)
    }

    fn stored_window(&self) -> Option<usize> {
        let mut lens = self.experts.iter().map(|e| {
            let b = &e.model;
            match (&b.stein_window, &b.window_percentiles) {
                (Some(t), _) => Some(t.window),
                (None, Some(w)) => Some(w.window),
                (None, None) => None,
            }
        });
        let first = lens.next()??;
        lens.all(|l| l == Some(first)).then_some(first)
    }

    /// The window score of `recent` transitions (oldest first; the last
    /// [`Self::window_len`] count).
    pub fn window(&self, recent: &[TransitionScore]) -> WindowScore {
        let w = self.window_len();
        let recent = &recent[recent.len().saturating_sub(w)..];
        let len = recent.len();
        let energy = recent.iter().map(|v| v.energy).sum::<f32>() / len.max(1) as f32;
        let full = len == w && self.stored_window() == Some(w);
        let tests = self.experts.iter().enumerate().filter_map(|(i, ex)| {
            let b = &ex.model;
            if let Some(test) = &b.stein_window {
                let rows = recent.iter().map(|v| v.expert_features[i].as_slice());
                let d = test.discrepancy(&stein::mean_of(rows, test.dim()));
                return Some((test.percentile(d), Some(d)));
            }
            let table = &b.window_percentiles.as_ref()?.percentiles;
            let mean = recent.iter().map(|v| v.expert_energies[i]).sum::<f32>() / len as f32;
            Some((ebm_core::stats::metrics::percentile_in(table, mean), None))
        });
        // NaN (a non-finite window) counts as the most surprising.
        let highest = full
            .then(|| {
                tests
                    .map(|(p, d)| (if p.is_nan() { 100.0 } else { p }, d))
                    .reduce(|a, b| if b.0 > a.0 { b } else { a })
            })
            .flatten();
        WindowScore {
            energy,
            len,
            percentile: highest.map(|h| h.0),
            discrepancy: highest.and_then(|h| h.1),
        }
    }

    /// True when every expert has stored training percentiles.
    pub fn calibrated(&self) -> bool {
        self.experts.iter().all(|e| e.model.percentiles.is_some())
    }

    /// Scores of observed `transitions` (wire units): every expert reads
    /// its own context and units from them.
    pub fn score(&self, transitions: &[Transition]) -> Result<Vec<TransitionScore>, RuntimeError> {
        let n = transitions.len();
        let single = self.experts.len() == 1;
        let mut out = vec![
            TransitionScore {
                energy: 0.0,
                percentile: Some(0.0),
                expert_energies: Vec::with_capacity(self.experts.len()),
                expert_features: Vec::with_capacity(self.experts.len()),
            };
            n
        ];
        if n == 0 {
            return Ok(out);
        }
        for ex in &self.experts {
            let d = ex.model.state_dim();
            let (energies, features) = ex.model.transition_scores(transitions)?;
            if energies.len() != n {
                return Err(RuntimeError::Model(format!(
                    "OOD model {} scored {} of {n} transitions",
                    ex.model.model_id,
                    energies.len()
                )));
            }
            for ((o, e), f) in out.iter_mut().zip(energies).zip(features.chunks(d)) {
                o.expert_energies.push(e);
                o.expert_features.push(f.to_vec());
                o.energy += if single {
                    e
                } else {
                    (e - ex.center) / ex.spread
                };
                o.percentile = match (o.percentile, ex.model.percentile(e)) {
                    (Some(a), Some(b)) => Some(if b.is_nan() { 100.0 } else { a.max(b) }),
                    _ => None,
                };
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    const DIM: usize = 8;

    /// An untrained model with percentiles `p_i = offset + i * step`.
    fn expert(seed: u64, offset: f32, step: f32) -> RobotModel {
        let mut b = RobotModel::untrained(seed, DIM, vec![16], &Device::Cpu).unwrap();
        b.percentiles = Some((0..101).map(|i| offset + i as f32 * step).collect());
        b
    }

    /// Three transitions' states before and after, in wire units.
    fn states() -> (Vec<Vec<Vec<f32>>>, Vec<Vec<f32>>) {
        let before = (0..3).map(|i| vec![vec![0.1 * i as f32; DIM]]).collect();
        let next = (0..3).map(|i| vec![0.2 - 0.3 * i as f32; DIM]).collect();
        (before, next)
    }

    fn transitions<'a>(before: &'a [Vec<Vec<f32>>], next: &'a [Vec<f32>]) -> Vec<Transition<'a>> {
        before
            .iter()
            .zip(next)
            .map(|(b, n)| Transition {
                before: b,
                action: None,
                next: n,
            })
            .collect()
    }

    #[test]
    fn one_expert_gives_its_energy_and_percentile() {
        let b = expert(1, -1.0, 0.02);
        let (before, next) = states();
        let ts = transitions(&before, &next);
        let (raw, features) = b.transition_scores(&ts).unwrap();
        let scorer = OodScorer::new(vec![b]);
        let s = scorer.score(&ts).unwrap();
        for (i, (v, e)) in s.iter().zip(&raw).enumerate() {
            assert_eq!(v.energy, *e);
            assert_eq!(v.percentile, scorer.experts()[0].model.percentile(*e));
            assert_eq!(
                v.expert_features,
                [features[i * DIM..(i + 1) * DIM].to_vec()]
            );
        }
        assert_eq!(scorer.model_id(), "untrained-seed1");
    }

    #[test]
    fn several_experts_add_their_scaled_energies_and_report_the_highest_percentile() {
        // Medians 0 and 10; interquartile ranges 1 and 10.
        let (a, b) = (expert(1, -1.0, 0.02), expert(2, 0.0, 0.2));
        let (before, next) = states();
        let ts = transitions(&before, &next);
        let ea = a.transition_scores(&ts).unwrap().0;
        let eb = b.transition_scores(&ts).unwrap().0;
        let (pa, pb): (Vec<f32>, Vec<f32>) = ea
            .iter()
            .zip(&eb)
            .map(|(x, y)| (a.percentile(*x).unwrap(), b.percentile(*y).unwrap()))
            .unzip();
        let scorer = OodScorer::new(vec![a, b]);
        assert_eq!(scorer.model_id(), "untrained-seed1+untrained-seed2");
        let s = scorer.score(&ts).unwrap();
        for i in 0..3 {
            let want = ea[i] / 1.0 + (eb[i] - 10.0) / 10.0;
            assert!(
                (s[i].energy - want).abs() < 1e-4,
                "{} vs {want}",
                s[i].energy
            );
            assert_eq!(s[i].percentile, Some(pa[i].max(pb[i])));
        }
        // An expert without percentiles: no percentile, raw energy scale.
        let mut c = expert(3, 0.0, 1.0);
        c.percentiles = None;
        let scorer = OodScorer::new(vec![expert(1, -1.0, 0.02), c]);
        assert!(!scorer.calibrated());
        assert!(scorer
            .score(&ts)
            .unwrap()
            .iter()
            .all(|v| v.percentile.is_none()));
    }

    #[test]
    fn windows_average_recent_scores_and_take_stored_window_percentiles() {
        use ebm_core::checkpoint::WindowPercentiles;
        let mut a = expert(1, -1.0, 0.02);
        let mut b = expert(2, 0.0, 0.2);
        let table = |offset: f32| WindowPercentiles {
            window: 3,
            percentiles: (0..101).map(|i| offset + i as f32 * 0.01).collect(),
        };
        a.window_percentiles = Some(table(0.0));
        b.window_percentiles = Some(table(10.0));
        let scorer = OodScorer::new(vec![a, b]);
        assert_eq!(scorer.window_len(), 3);
        let v = |energy: f32, ea: f32, eb: f32| TransitionScore {
            energy,
            percentile: Some(50.0),
            expert_energies: vec![ea, eb],
            expert_features: vec![vec![0.0; DIM]; 2],
        };
        // Not full yet: a mean, no percentile.
        let w = scorer.window(&[v(1.0, 0.2, 10.0), v(3.0, 0.4, 10.0)]);
        assert_eq!(
            (w.energy, w.len, w.percentile, w.discrepancy),
            (2.0, 2, None, None)
        );
        // Full (the oldest of four drops out): expert a's mean 0.5 is its
        // 50th percentile, b's 10.2 its 20th; the window takes the highest.
        let recent = [
            v(9.0, 9.0, 9.0),
            v(1.0, 0.2, 10.1),
            v(2.0, 0.6, 10.2),
            v(3.0, 0.7, 10.3),
        ];
        let w = scorer.window(&recent);
        assert_eq!((w.energy, w.len), (2.0, 3));
        let p = w.percentile.expect("a full window has a percentile");
        assert!((p - 50.0).abs() < 1e-3, "{p}");
        assert_eq!(w.discrepancy, None, "mean energies only");
        // Experts that disagree on the window length: the default, no percentile.
        let mut c = expert(3, 0.0, 1.0);
        c.window_percentiles = Some(WindowPercentiles {
            window: 4,
            ..table(0.0)
        });
        let mut a = expert(1, -1.0, 0.02);
        a.window_percentiles = Some(table(0.0));
        let scorer = OodScorer::new(vec![a, c]);
        assert_eq!(scorer.window_len(), DEFAULT_WINDOW);
        let full: Vec<TransitionScore> = (0..DEFAULT_WINDOW).map(|_| v(1.0, 0.5, 0.5)).collect();
        assert_eq!(scorer.window(&full).percentile, None);
    }

    #[test]
    fn stein_windows_test_the_mean_features_and_take_precedence() {
        use ebm_core::checkpoint::WindowPercentiles;
        use ebm_core::stats::stein::SteinWindow;
        // Training window means: feature j near 1, spread 0.1 in every dimension.
        let means = |k: usize, shift: f32| -> Vec<Vec<f32>> {
            (0..k)
                .map(|i| {
                    (0..DIM)
                        .map(|j| 1.0 + shift + 0.1 * ((i * 7 + j * 3) % 5) as f32 - 0.2)
                        .collect()
                })
                .collect()
        };
        let test = SteinWindow::fit(2, &means(40, 0.0), &means(41, 0.0)).unwrap();
        let mut a = expert(1, -1.0, 0.02);
        a.stein_window = Some(test.clone());
        // A mean-energy table that would put these windows at the 0th percentile.
        a.window_percentiles = Some(WindowPercentiles {
            window: 2,
            percentiles: (0..101).map(|i| 100.0 + i as f32).collect(),
        });
        let scorer = OodScorer::new(vec![a]);
        assert_eq!(scorer.window_len(), 2);
        let v = |f: f32| TransitionScore {
            energy: 0.0,
            percentile: Some(50.0),
            expert_energies: vec![0.0],
            expert_features: vec![vec![f; DIM]],
        };
        // The window's mean features are 1.2 in every dimension.
        let w = scorer.window(&[v(1.0), v(1.4)]);
        let d = test.discrepancy(&[1.2; DIM]);
        assert_eq!(w.discrepancy, Some(d));
        assert_eq!(w.percentile, Some(test.percentile(d)));
        // Far from every training window: the top percentile.
        let w = scorer.window(&[v(3.0), v(3.0)]);
        assert!(w.discrepancy.unwrap() > test.percentiles[100]);
        assert_eq!(w.percentile, Some(100.0));
        // A NaN feature counts as the most surprising window.
        let w = scorer.window(&[v(f32::NAN), v(1.0)]);
        assert_eq!(w.percentile, Some(100.0));
    }
}
