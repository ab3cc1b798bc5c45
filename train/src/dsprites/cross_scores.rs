//! How Figure 16's samples are scored, from the latent reader's readings.
//!
//! Three scores, from the strictest to the paper's own claims:
//! - **hits**: the asked shape, within `HIT_PX` of the asked place and
//!   `HIT_SCALE` of the asked scale: the asked combination, drawn;
//! - **placed and sized**: the same without the shape. The paper's
//!   size-position claim is that the sum generalises "to different sizes
//!   at different position (albeit with loss in sample quality)";
//! - **shape information**: the mutual information, in bits, between the
//!   asked and the read shape. The paper's shape-position claim is "a
//!   distinctive shape for each conditioned shape latent at different
//!   positions (though the generated shape doesn't match the shape of the
//!   original shape latent)": a sampler that draws one fixed wrong shape
//!   for each asked one scores as much as one that draws the right ones,
//!   one that ignores the asked shape scores 0. Read through the reader,
//!   it is a lower bound on what the images carry (what the reader cannot
//!   tell apart counts as the same); the plug-in estimate is biased up by
//!   about `(a - 1)(r - 1) / (2 n ln 2)` bits (0.007 for 2 asked and 3 read
//!   shapes in 200 samples).

use serde::Serialize;

use super::reader::{place_error_px, Reading};
use super::render::{Latents, Shape};

/// A sample is a hit when the reader finds the asked shape within this
/// many pixels of the asked place ...
pub const HIT_PX: f64 = 4.0;
/// ... and within this of the asked scale (scales are 0.1 apart).
pub const HIT_SCALE: f64 = 0.05;

/// A sampler's scores on one panel's asked combinations.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PanelScores {
    /// Share of samples showing the asked combination (shape, place, size).
    pub hits: f64,
    /// Share within `HIT_PX` of the asked place and `HIT_SCALE` of the
    /// asked scale, whatever the shape.
    pub placed_and_sized: f64,
    /// Mutual information between asked and read shape, in bits.
    pub shape_bits: f64,
}

/// The scores of `readings` of samples asked for `want`.
pub fn panel_scores(readings: &[Reading], want: &[Latents]) -> PanelScores {
    let n = want.len().max(1) as f64;
    let (mut hits, mut placed_and_sized) = (0usize, 0usize);
    for (r, l) in readings.iter().zip(want) {
        if place_error_px(r, l) <= HIT_PX && (r.scale - l.scale_value()).abs() <= HIT_SCALE {
            placed_and_sized += 1;
            if r.shape == l.shape {
                hits += 1;
            }
        }
    }
    let pairs: Vec<(usize, usize)> = want
        .iter()
        .zip(readings)
        .map(|(l, r)| (shape_index(l.shape), shape_index(r.shape)))
        .collect();
    PanelScores {
        hits: hits as f64 / n,
        placed_and_sized: placed_and_sized as f64 / n,
        shape_bits: mutual_information_bits(&pairs, Shape::ALL.len()),
    }
}

fn shape_index(s: Shape) -> usize {
    Shape::ALL.iter().position(|&t| t == s).unwrap_or(0)
}

/// The plug-in mutual information, in bits, between the two sides of
/// `pairs`, each a category below `k`.
pub fn mutual_information_bits(pairs: &[(usize, usize)], k: usize) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    let n = pairs.len() as f64;
    let mut joint = vec![0.0; k * k];
    let (mut left, mut right) = (vec![0.0; k], vec![0.0; k]);
    for &(a, b) in pairs {
        joint[a * k + b] += 1.0 / n;
        left[a] += 1.0 / n;
        right[b] += 1.0 / n;
    }
    let mut bits = 0.0;
    for a in 0..k {
        for b in 0..k {
            let p = joint[a * k + b];
            if p > 0.0 {
                bits += p * (p / (left[a] * right[b])).log2();
            }
        }
    }
    bits.max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsprites::render::{MARGIN, SIZE};

    #[test]
    fn mutual_information_matches_hand_computed_tables() {
        // Independent: every asked shape read as every shape equally often.
        let independent = [(0, 0), (0, 1), (1, 0), (1, 1)];
        assert!(mutual_information_bits(&independent, 3).abs() < 1e-12);
        // One fixed shape per asked one, even a wrong one: 1 bit of 2.
        let distinct = [(1, 0), (1, 0), (2, 2), (2, 2)];
        assert!((mutual_information_bits(&distinct, 3) - 1.0).abs() < 1e-12);
        // The asked shape ignored: always read as the same.
        let ignored = [(1, 0), (2, 0), (1, 0), (2, 0)];
        assert!(mutual_information_bits(&ignored, 3).abs() < 1e-12);
        // p(0,0) = 1/2, p(0,1) = p(1,1) = 1/4:
        // 1/2 log2(4/3) + 1/4 log2(2/3) + 1/4 log2(2) = 0.311278 bits.
        let mixed = [(0, 0), (0, 0), (0, 1), (1, 1)];
        assert!((mutual_information_bits(&mixed, 2) - 0.311_278).abs() < 1e-6);
    }

    fn reading(l: &Latents, shape: Shape, dx_px: f64, scale: f64) -> Reading {
        let (x, y) = l.position();
        Reading {
            shape,
            position: (x + dx_px / (SIZE as f64 - 2.0 * MARGIN), y),
            scale,
            turned: 0.0,
        }
    }

    #[test]
    fn hits_need_the_shape_placed_and_sized_does_not() {
        let l = |shape, scale, x| Latents {
            shape,
            scale,
            orientation: 0,
            x,
            y: 16,
        };
        let want = [
            l(Shape::Ellipse, 5, 3),
            l(Shape::Heart, 5, 20),
            l(Shape::Ellipse, 0, 10),
            l(Shape::Heart, 2, 28),
        ];
        let readings = [
            // the asked combination: a hit
            reading(&want[0], Shape::Ellipse, 3.0, 1.0),
            // placed and sized, the wrong shape
            reading(&want[1], Shape::Square, -3.9, 0.97),
            // the right shape, 5 px off
            reading(&want[2], Shape::Ellipse, 5.0, 0.5),
            // the right shape and place, 0.1 too large
            reading(&want[3], Shape::Heart, 0.0, want[3].scale_value() + 0.1),
        ];
        let s = panel_scores(&readings, &want);
        assert_eq!(s.hits, 0.25);
        assert_eq!(s.placed_and_sized, 0.5);
        // asked (E, H, E, H) read (E, S, E, H): every read shape names one
        // asked shape, so all of its bit: H(asked) - H(asked | read) = 1 - 0.
        assert!((s.shape_bits - 1.0).abs() < 1e-12, "{}", s.shape_bits);
    }
}
