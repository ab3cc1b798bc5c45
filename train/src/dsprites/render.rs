//! dSprites (Higgins et al., 2017), rendered procedurally: 64 x 64 binary
//! images of one shape on black, fully determined by five latents.
//!
//! | latent | values |
//! | --- | --- |
//! | shape | square, ellipse, heart |
//! | scale | 6 values, 0.5 to 1 |
//! | orientation | 40 values, 0 to 2 pi (radians) |
//! | x, y position | 32 values each, 0 to 1 |
//!
//! A pixel is on when its centre lies inside the shape: the shape's
//! outline in its own unit frame (square `|u|, |v| <= 1`; ellipse
//! `u^2 + (v / 0.5)^2 <= 1`; heart `(u^2 + v^2 - 1)^3 <= u^2 v^3` on
//! `v` flipped so it points down), scaled by `scale * HALF_SIZE` pixels,
//! rotated by the orientation about its centre, centred at
//! `MARGIN + pos * (size - 2 MARGIN)` pixels (x to the right, y down), so
//! that every shape stays inside the image. The released files were drawn
//! by another renderer; sizes and margins here were chosen to look like them
//! (largest shapes about a third of the image wide), not copied.

use serde::{Deserialize, Serialize};

/// Image height and width.
pub const SIZE: usize = 64;
/// Half the width of a scale-1 shape, in pixels.
pub const HALF_SIZE: f64 = 10.0;
/// The shape centre's distance from the border at position 0 or 1, pixels.
pub const MARGIN: f64 = 15.0;
pub const SCALES: usize = 6;
pub const ORIENTATIONS: usize = 40;
pub const POSITIONS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    Square,
    Ellipse,
    Heart,
}

impl Shape {
    pub const ALL: [Shape; 3] = [Shape::Square, Shape::Ellipse, Shape::Heart];

    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the point `(u, v)` of the shape's unit frame is inside.
    fn contains(self, u: f64, v: f64) -> bool {
        match self {
            Shape::Square => u.abs() <= 1.0 && v.abs() <= 1.0,
            Shape::Ellipse => u * u + (v / 0.5).powi(2) <= 1.0,
            Shape::Heart => {
                // The classic heart curve spans about [-1.14, 1.14] x [-1, 1.25]:
                // scaled to the unit box and centred.
                let (x, y) = (u * 1.14, -(v * 1.12) + 0.12);
                (x * x + y * y - 1.0).powi(3) <= x * x * y * y * y
            }
        }
    }
}

/// The latents of one image, as indices into each latent's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latents {
    pub shape: Shape,
    pub scale: usize,
    pub orientation: usize,
    pub x: usize,
    pub y: usize,
}

impl Latents {
    /// The scale, 0.5 to 1.
    pub fn scale_value(&self) -> f64 {
        0.5 + 0.5 * self.scale as f64 / (SCALES - 1) as f64
    }

    /// The orientation in radians, 0 to 2 pi (exclusive of 2 pi itself).
    pub fn angle(&self) -> f64 {
        std::f64::consts::TAU * self.orientation as f64 / ORIENTATIONS as f64
    }

    /// The position, each coordinate 0 to 1.
    pub fn position(&self) -> (f64, f64) {
        let v = |i: usize| i as f64 / (POSITIONS - 1) as f64;
        (v(self.x), v(self.y))
    }

    /// The shape's centre in pixels (x to the right, y down).
    pub fn centre(&self) -> (f64, f64) {
        let (px, py) = self.position();
        let span = SIZE as f64 - 2.0 * MARGIN;
        (MARGIN + px * span, MARGIN + py * span)
    }
}

/// The image of `l`: `SIZE * SIZE` values, 1 inside the shape, 0 outside,
/// row by row from the top.
pub fn render(l: &Latents) -> Vec<f32> {
    let (cx, cy) = l.centre();
    let r = l.scale_value() * HALF_SIZE;
    let (s, c) = l.angle().sin_cos();
    let mut img = vec![0f32; SIZE * SIZE];
    for (i, p) in img.iter_mut().enumerate() {
        let (dx, dy) = ((i % SIZE) as f64 + 0.5 - cx, (i / SIZE) as f64 + 0.5 - cy);
        // Rotate the pixel back into the shape's frame.
        let (u, v) = ((c * dx + s * dy) / r, (-s * dx + c * dy) / r);
        if l.shape.contains(u, v) {
            *p = 1.0;
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latents(shape: Shape, scale: usize, orientation: usize, x: usize, y: usize) -> Latents {
        Latents {
            shape,
            scale,
            orientation,
            x,
            y,
        }
    }

    fn area(img: &[f32]) -> f64 {
        img.iter().map(|&v| f64::from(v)).sum()
    }

    fn centroid(img: &[f32]) -> (f64, f64) {
        let a = area(img);
        let (mut sx, mut sy) = (0.0, 0.0);
        for (i, &v) in img.iter().enumerate() {
            sx += f64::from(v) * ((i % SIZE) as f64 + 0.5);
            sy += f64::from(v) * ((i / SIZE) as f64 + 0.5);
        }
        (sx / a, sy / a)
    }

    /// Areas against the shapes' own: a square of side 2r, an ellipse of
    /// semi-axes r and r/2, to within the pixel grid's error.
    #[test]
    fn areas_match_the_shapes_by_hand() {
        let r = HALF_SIZE; // scale index 5: scale 1
        let sq = area(&render(&latents(Shape::Square, 5, 0, 16, 16)));
        assert!(
            (sq - 4.0 * r * r).abs() / (4.0 * r * r) < 0.03,
            "square {sq}"
        );
        let el = area(&render(&latents(Shape::Ellipse, 5, 0, 16, 16)));
        let want = std::f64::consts::PI * r * r / 2.0;
        assert!((el - want).abs() / want < 0.05, "ellipse {el} vs {want}");
        let small = area(&render(&latents(Shape::Square, 0, 0, 16, 16)));
        assert!(
            (small / sq - 0.25).abs() < 0.03,
            "scale 0.5 quarters the area: {small} / {sq}"
        );
    }

    /// Rotation keeps the area and the centroid; position moves the
    /// centroid to the documented pixel.
    #[test]
    fn rotation_and_position_by_hand() {
        for shape in Shape::ALL {
            let a0 = render(&latents(shape, 5, 0, 10, 20));
            let a7 = render(&latents(shape, 5, 7, 10, 20));
            assert!(
                (area(&a0) - area(&a7)).abs() / area(&a0) < 0.05,
                "{shape:?}"
            );
            assert_ne!(a0, a7, "{shape:?}: orientation 7 changes the image");
            if shape != Shape::Heart {
                // Symmetric shapes: the centroid is the centre.
                let (cx, cy) = latents(shape, 5, 7, 10, 20).centre();
                let (gx, gy) = centroid(&a7);
                assert!(
                    (gx - cx).abs() < 0.5 && (gy - cy).abs() < 0.5,
                    "{shape:?}: ({gx}, {gy})"
                );
            }
        }
        let left_top = centroid(&render(&latents(Shape::Square, 2, 0, 0, 0)));
        assert!((left_top.0 - MARGIN).abs() < 0.5 && (left_top.1 - MARGIN).abs() < 0.5);
        let right = centroid(&render(&latents(Shape::Square, 2, 0, 31, 0)));
        assert!((right.0 - (SIZE as f64 - MARGIN)).abs() < 0.5);
    }

    /// Every shape at its largest, any orientation, at the corners stays
    /// inside the image (nothing on the border rows and columns).
    #[test]
    fn shapes_stay_inside_the_image() {
        for shape in Shape::ALL {
            for o in 0..ORIENTATIONS {
                for (x, y) in [(0, 0), (31, 31), (0, 31), (31, 0)] {
                    let img = render(&latents(shape, 5, o, x, y));
                    let border = (0..SIZE).any(|i| {
                        img[i] > 0.0
                            || img[(SIZE - 1) * SIZE + i] > 0.0
                            || img[i * SIZE] > 0.0
                            || img[i * SIZE + SIZE - 1] > 0.0
                    });
                    assert!(
                        !border,
                        "{shape:?} orientation {o} at ({x}, {y}) touches the border"
                    );
                }
            }
        }
    }

    /// The heart is a heart: wider at the top than at the bottom, and not a
    /// square or an ellipse.
    #[test]
    fn the_heart_points_down() {
        let img = render(&latents(Shape::Heart, 5, 0, 16, 16));
        let (_, cy) = latents(Shape::Heart, 5, 0, 16, 16).centre();
        let row = |y: f64| {
            (0..SIZE)
                .filter(|&x| img[(y as usize) * SIZE + x] > 0.0)
                .count()
        };
        assert!(
            row(cy - 5.0) > row(cy + 7.0) + 4,
            "top {} bottom {}",
            row(cy - 5.0),
            row(cy + 7.0)
        );
        assert_ne!(img, render(&latents(Shape::Ellipse, 5, 0, 16, 16)));
    }
}
