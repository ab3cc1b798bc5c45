//! The data of the paper's zero-shot cross-product test (Section 7,
//! Figure 16), as the paper builds it: three small datasets, each varying
//! one latent with the others fixed, and the combinations none of them
//! shows.
//!
//! - `central_sizes` (the paper's D1): squares of every size at the centre;
//! - `small_positions` (D2): the smallest square at every position;
//! - `central_shapes` (D3): every shape, smallest, at the centre.
//!
//! Every sprite here is unturned (orientation 0). A size-position test asks
//! for squares of the other sizes away from the centre (in neither D1 nor
//! D2); a shape-position test for ellipses and hearts away from the centre
//! (in neither D2 nor D3).

use candle_core::{Device, Tensor};
use ebm_core::{PositiveSource, Rng};
use serde::{Deserialize, Serialize};

use super::data::{sprite_batch, Concept};
use super::render::{Latents, Shape, POSITIONS, SCALES, SIZE};

/// The position index of the centre (both coordinates).
pub const CENTRE: usize = POSITIONS / 2;

/// One of the paper's three training sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subset {
    /// D1: squares of every size at the centre.
    CentralSizes,
    /// D2: the smallest square at every position.
    SmallPositions,
    /// D3: every shape, smallest, at the centre.
    CentralShapes,
}

fn unturned(shape: Shape, scale: usize, x: usize, y: usize) -> Latents {
    Latents {
        shape,
        scale,
        orientation: 0,
        x,
        y,
    }
}

impl Subset {
    /// A uniformly drawn member.
    pub fn draw(self, rng: &mut Rng) -> Latents {
        match self {
            Subset::CentralSizes => unturned(Shape::Square, rng.below(SCALES), CENTRE, CENTRE),
            Subset::SmallPositions => {
                unturned(Shape::Square, 0, rng.below(POSITIONS), rng.below(POSITIONS))
            }
            Subset::CentralShapes => unturned(Shape::ALL[rng.below(3)], 0, CENTRE, CENTRE),
        }
    }

    pub fn contains(self, l: &Latents) -> bool {
        let centre = l.x == CENTRE && l.y == CENTRE;
        let small_square = l.shape == Shape::Square && l.scale == 0;
        l.orientation == 0
            && match self {
                Subset::CentralSizes => l.shape == Shape::Square && centre,
                Subset::SmallPositions => small_square,
                Subset::CentralShapes => l.scale == 0 && centre,
            }
    }
}

/// The combinations a cross-product test asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Space {
    /// Unturned squares of every size at every position.
    SizePosition,
    /// Unturned smallest sprites of every shape at every position.
    ShapePosition,
}

impl Space {
    fn draw(self, rng: &mut Rng) -> Latents {
        let (x, y) = (rng.below(POSITIONS), rng.below(POSITIONS));
        match self {
            Space::SizePosition => unturned(Shape::Square, rng.below(SCALES), x, y),
            Space::ShapePosition => unturned(Shape::ALL[rng.below(3)], 0, x, y),
        }
    }

    /// `n` combinations of this space that none of `trained` contains;
    /// an error if they are too rare to draw (the sets cover the space).
    pub fn novel(
        self,
        n: usize,
        trained: &[Subset],
        rng: &mut Rng,
    ) -> anyhow::Result<Vec<Latents>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..1000 * n.max(1) {
            if out.len() == n {
                break;
            }
            let l = self.draw(rng);
            if !trained.iter().any(|s| s.contains(&l)) {
                out.push(l);
            }
        }
        anyhow::ensure!(
            out.len() == n,
            "{self:?}: the training sets {trained:?} leave (almost) no combination to ask for"
        );
        Ok(out)
    }
}

/// Training data: sprites drawn from `subsets` in turn at random (each
/// equally often), conditioned on `concept`.
pub struct SubsetData {
    pub concept: Concept,
    pub subsets: Vec<Subset>,
}

impl PositiveSource for SubsetData {
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
            self.subsets[rng.below(self.subsets.len())].draw(rng)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsprites::data::GRID;

    const ALL: [Subset; 3] = [
        Subset::CentralSizes,
        Subset::SmallPositions,
        Subset::CentralShapes,
    ];

    #[test]
    fn every_subset_contains_what_it_draws_and_only_that() {
        let mut rng = Rng::new(3);
        for s in ALL {
            let drawn: Vec<Latents> = (0..500).map(|_| s.draw(&mut rng)).collect();
            assert!(drawn.iter().all(|l| s.contains(l)), "{s:?}");
            // Each varies its one latent over every value.
            let distinct = |f: fn(&Latents) -> usize| {
                let mut v: Vec<usize> = drawn.iter().map(f).collect();
                v.sort_unstable();
                v.dedup();
                v.len()
            };
            match s {
                Subset::CentralSizes => assert_eq!(distinct(|l| l.scale), SCALES),
                Subset::SmallPositions => {
                    assert_eq!(distinct(|l| l.x), POSITIONS);
                    assert_eq!(distinct(|l| l.y), POSITIONS);
                }
                Subset::CentralShapes => assert_eq!(distinct(|l| l.shape.index()), 3),
            }
        }
        let big_corner = unturned(Shape::Square, SCALES - 1, 0, 0);
        assert!(ALL.iter().all(|s| !s.contains(&big_corner)));
        let turned = Latents {
            orientation: 5,
            ..unturned(Shape::Square, 0, 3, 4)
        };
        assert!(!Subset::SmallPositions.contains(&turned));
    }

    #[test]
    fn novel_combinations_are_the_cross_product_minus_training() -> anyhow::Result<()> {
        let mut rng = Rng::new(4);
        let trained = [Subset::CentralSizes, Subset::SmallPositions];
        let asked = Space::SizePosition.novel(400, &trained, &mut rng)?;
        assert!(asked.iter().all(|l| l.shape == Shape::Square
            && l.orientation == 0
            && l.scale > 0
            && (l.x, l.y) != (CENTRE, CENTRE)));
        assert!(asked.iter().any(|l| l.scale == SCALES - 1));
        let trained = [Subset::SmallPositions, Subset::CentralShapes];
        let asked = Space::ShapePosition.novel(400, &trained, &mut rng)?;
        assert!(asked
            .iter()
            .all(|l| l.shape != Shape::Square && l.scale == 0 && (l.x, l.y) != (CENTRE, CENTRE)));
        assert!(asked.iter().any(|l| l.shape == Shape::Heart));
        assert!(asked.iter().any(|l| l.shape == Shape::Ellipse));
        Ok(())
    }

    #[test]
    fn a_union_draws_from_each_subset() -> candle_core::Result<()> {
        let data = SubsetData {
            concept: Concept::PositionScale,
            subsets: vec![Subset::CentralSizes, Subset::SmallPositions],
        };
        let (x, c) = data.batch(64, &mut Rng::new(5), &Device::Cpu)?;
        assert_eq!(x.dims(), [64, SIZE * SIZE]);
        let c: Vec<Vec<f32>> = c.expect("conditioned").to_vec2()?;
        // Off-centre rows (D2) and large ones (D1) both appear.
        let grid = GRID * GRID;
        assert!(c.iter().any(|r| r[grid] > 0.0), "no large square");
        let central = |r: &Vec<f32>| {
            let peak = (0..grid).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap();
            (peak / GRID, peak % GRID) == (GRID / 2, GRID / 2)
        };
        assert!(c.iter().any(|r| !central(r)), "no off-centre square");
        assert!(c.iter().any(central), "no central square");
        Ok(())
    }
}
