//! dSprites as positive data: latents drawn uniformly (some combinations
//! held out for zero-shot tests), rendered on demand, each model
//! conditioned on one latent (or all of them, the baseline), encoded as the
//! official code encodes dSprites latents for its linear FiLM conditioning:
//! position as `(x, y)` in `[0, 1]`, scale `s` in `[0, 1]` as `(s, 1 - s)`
//! (the network's per-class tables need two columns to tell a conditioned
//! model from an unconditional one; the second is the first's complement, so
//! the FiLM is still linear in `s`), orientation as `(cos, sin)`, shape
//! one-hot.

use candle_core::{Device, Tensor};
use ebm_core::{PositiveSource, Rng};
use serde::{Deserialize, Serialize};

use super::render::{render, Latents, Shape, ORIENTATIONS, POSITIONS, SCALES, SIZE};

/// Which latent conditions a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Concept {
    Position,
    Scale,
    Orientation,
    Shape,
    /// Every latent at once: the single-model baseline.
    All,
    /// Position on a grid of bumps (`GRID` x `GRID` Gaussian bumps one cell
    /// wide, normalised to sum to 1): a linear FiLM of `(x, y)` can only
    /// tilt the energy across the image, one of the bumps can single out
    /// a place.
    PositionGrid,
    /// Position on the grid and scale: the baseline of the size-position
    /// cross product (`cross`).
    PositionScale,
    /// Position on the grid and shape: the baseline of the shape-position
    /// cross product.
    PositionShape,
}

/// Bumps per side of the `PositionGrid` encoding.
pub const GRID: usize = 8;

/// The `PositionGrid` encoding of a position in `[0, 1]^2`.
fn position_grid((x, y): (f64, f64), out: &mut Vec<f32>) {
    let centre = |i: usize| (i as f64 + 0.5) / GRID as f64;
    let width = 1.0 / GRID as f64;
    let bump = |d: f64| (-0.5 * (d / width).powi(2)).exp();
    let (bx, by): (Vec<f64>, Vec<f64>) = (0..GRID)
        .map(|i| (bump(x - centre(i)), bump(y - centre(i))))
        .unzip();
    let total: f64 = bx.iter().sum::<f64>() * by.iter().sum::<f64>();
    for b in &by {
        out.extend(bx.iter().map(|a| (a * b / total) as f32));
    }
}

impl Concept {
    pub const PARTS: [Concept; 4] = [
        Concept::Position,
        Concept::Scale,
        Concept::Orientation,
        Concept::Shape,
    ];

    /// Width of the conditioning.
    pub fn dim(self) -> usize {
        match self {
            Concept::Position | Concept::Orientation | Concept::Scale => 2,
            Concept::Shape => 3,
            Concept::All => 9,
            Concept::PositionGrid => GRID * GRID,
            Concept::PositionScale => GRID * GRID + 2,
            Concept::PositionShape => GRID * GRID + 3,
        }
    }

    /// The conditioning row of `l`, appended to `out`.
    pub fn encode(self, l: &Latents, out: &mut Vec<f32>) {
        match self {
            Concept::Position => {
                let (x, y) = l.position();
                out.extend([x as f32, y as f32]);
            }
            Concept::Scale => {
                let s = l.scale as f32 / (SCALES - 1) as f32;
                out.extend([s, 1.0 - s]);
            }
            Concept::Orientation => {
                let (s, c) = l.angle().sin_cos();
                out.extend([c as f32, s as f32]);
            }
            Concept::Shape => {
                out.extend(
                    Shape::ALL
                        .iter()
                        .map(|&s| f32::from(u8::from(s == l.shape))),
                );
            }
            Concept::All => {
                for c in Concept::PARTS {
                    c.encode(l, out);
                }
            }
            Concept::PositionGrid => position_grid(l.position(), out),
            Concept::PositionScale => {
                Concept::PositionGrid.encode(l, out);
                Concept::Scale.encode(l, out);
            }
            Concept::PositionShape => {
                Concept::PositionGrid.encode(l, out);
                Concept::Shape.encode(l, out);
            }
        }
    }
}

/// Combinations kept out of training, for zero-shot composition: the
/// largest `scales` scales never in the left half of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holdout {
    /// How many of the largest scales are held out on the left.
    pub large_scales: usize,
}

impl Holdout {
    /// Whether `l` is one of the held-out combinations.
    pub fn holds_out(&self, l: &Latents) -> bool {
        l.scale + self.large_scales >= SCALES && l.x < POSITIONS / 2
    }
}

/// Uniformly drawn latents, each combination allowed by `holdout`.
pub fn draw_latents(rng: &mut Rng, holdout: Option<Holdout>) -> Latents {
    loop {
        let l = Latents {
            shape: Shape::ALL[rng.below(3)],
            scale: rng.below(SCALES),
            orientation: rng.below(ORIENTATIONS),
            x: rng.below(POSITIONS),
            y: rng.below(POSITIONS),
        };
        if !holdout.is_some_and(|h| h.holds_out(&l)) {
            return l;
        }
    }
}

/// Training data for one concept's model: every batch freshly drawn and
/// rendered (the data set is all combinations, 737,280 images).
pub struct SpriteData {
    pub concept: Concept,
    pub holdout: Option<Holdout>,
}

impl PositiveSource for SpriteData {
    fn sample_dim(&self) -> usize {
        SIZE * SIZE
    }

    fn cond_dim(&self) -> usize {
        self.concept.dim()
    }

    fn batch(
        &self,
        n: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        sprite_batch(&[self.concept], n, device, || {
            draw_latents(rng, self.holdout)
        })
    }
}

/// `n` sprites of the latents `draw` gives, rendered (`[n, SIZE * SIZE]`),
/// with their conditioning on each of `concepts` in turn.
pub fn sprite_batch(
    concepts: &[Concept],
    n: usize,
    device: &Device,
    mut draw: impl FnMut() -> Latents,
) -> candle_core::Result<(Tensor, Option<Tensor>)> {
    let (mut x, mut c) = (Vec::with_capacity(n * SIZE * SIZE), Vec::new());
    for _ in 0..n {
        let l = draw();
        x.extend(render(&l));
        for concept in concepts {
            concept.encode(&l, &mut c);
        }
    }
    let width = concepts.iter().map(|c| c.dim()).sum::<usize>();
    Ok((
        Tensor::from_vec(x, (n, SIZE * SIZE), device)?,
        Some(Tensor::from_vec(c, (n, width), device)?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_by_hand() {
        let l = Latents {
            shape: Shape::Heart,
            scale: 5,
            orientation: 10,
            x: 31,
            y: 0,
        };
        let mut v = Vec::new();
        Concept::All.encode(&l, &mut v);
        // Position (1, 0), scale 1, a quarter turn (cos 0, sin 1), heart.
        let want = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        assert_eq!(v.len(), Concept::All.dim());
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{v:?}");
        }
    }

    /// The grid encoding sums to 1 and peaks at the bump nearest the
    /// position (row by row from the top left).
    #[test]
    fn the_position_grid_peaks_where_the_sprite_is() {
        for (x, y) in [(0, 0), (31, 0), (10, 25), (31, 31)] {
            let l = Latents {
                shape: Shape::Square,
                scale: 0,
                orientation: 0,
                x,
                y,
            };
            let mut v = Vec::new();
            Concept::PositionGrid.encode(&l, &mut v);
            assert_eq!(v.len(), GRID * GRID);
            assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            let peak = (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
            let (px, py) = l.position();
            let cell = |p: f64| ((p * GRID as f64) as usize).min(GRID - 1);
            assert_eq!(peak, cell(py) * GRID + cell(px), "({x}, {y}): {v:?}");
        }
    }

    #[test]
    fn held_out_combinations_never_reach_training() {
        let h = Holdout { large_scales: 2 };
        let mut rng = Rng::new(1);
        let drawn: Vec<Latents> = (0..4000).map(|_| draw_latents(&mut rng, Some(h))).collect();
        assert!(drawn.iter().all(|l| !h.holds_out(l)));
        // Large shapes still appear on the right, small ones on the left.
        assert!(drawn
            .iter()
            .any(|l| l.scale == SCALES - 1 && l.x >= POSITIONS / 2));
        assert!(drawn.iter().any(|l| l.scale == 0 && l.x < POSITIONS / 2));
        let free: Vec<Latents> = (0..4000).map(|_| draw_latents(&mut rng, None)).collect();
        let share = free.iter().filter(|l| h.holds_out(l)).count() as f64 / 4000.0;
        assert!((share - 1.0 / 6.0).abs() < 0.03, "{share}");
    }

    #[test]
    fn batches_have_the_concepts_shapes() -> candle_core::Result<()> {
        for c in [
            Concept::Position,
            Concept::Shape,
            Concept::All,
            Concept::PositionScale,
            Concept::PositionShape,
        ] {
            let data = SpriteData {
                concept: c,
                holdout: None,
            };
            let (x, y) = data.batch(3, &mut Rng::new(2), &Device::Cpu)?;
            assert_eq!(x.dims(), [3, SIZE * SIZE]);
            assert_eq!(y.expect("conditioned").dims(), [3, c.dim()]);
        }
        Ok(())
    }
}
