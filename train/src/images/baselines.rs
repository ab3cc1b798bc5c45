//! What trivial methods score on the restoration tasks, beside the EBM's
//! restorations: the gap to them is what the model adds. Images are rows of
//! `D` floats in [0, 1]; `region` marks (1) the entries a method must fill.

/// The mean of `train`'s rows.
pub fn mean_image(train: &[f32], d: usize) -> Vec<f32> {
    let n = train.len() / d.max(1);
    let mut m = vec![0f32; d];
    for row in train.chunks_exact(d) {
        m.iter_mut().zip(row).for_each(|(a, v)| *a += v);
    }
    m.iter_mut().for_each(|a| *a /= n.max(1) as f32);
    m
}

/// Each row of `images` with its `region` entries taken from `fill`
/// (one row for all, or a row per image).
pub fn filled(images: &[f32], region: &[f32], fill: &[f32], d: usize) -> Vec<f32> {
    let mut out = images.to_vec();
    let per_image = fill.len() > d;
    for (i, row) in out.chunks_exact_mut(d).enumerate() {
        let f = if per_image {
            &fill[i * d..(i + 1) * d]
        } else {
            fill
        };
        for ((v, &r), &fv) in row.iter_mut().zip(region).zip(f) {
            if r != 0.0 {
                *v = fv;
            }
        }
    }
    out
}

/// For each row of `queries`, the row of `train` nearest to it in squared
/// distance over the entries where `visible` is 1.
pub fn nearest_rows(train: &[f32], queries: &[f32], visible: &[f32], d: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(queries.len());
    for q in queries.chunks_exact(d) {
        let best = train
            .chunks_exact(d)
            .map(|t| {
                t.iter()
                    .zip(q)
                    .zip(visible)
                    .map(|((a, b), w)| w * (a - b) * (a - b))
                    .sum::<f32>()
            })
            .enumerate()
            .fold(
                (0, f32::INFINITY),
                |b, (i, v)| if v < b.1 { (i, v) } else { b },
            )
            .0;
        out.extend_from_slice(&train[best * d..(best + 1) * d]);
    }
    out
}

/// A 3 x 3 median filter of each channel of each `c x size x size` image
/// (edges replicate): the textbook remedy for salt-and-pepper noise.
pub fn median_3x3(images: &[f32], c: usize, size: usize) -> Vec<f32> {
    let plane = size * size;
    let mut out = vec![0f32; images.len()];
    for (img, o) in images
        .chunks_exact(c * plane)
        .zip(out.chunks_exact_mut(c * plane))
    {
        for ch in 0..c {
            let p = &img[ch * plane..(ch + 1) * plane];
            for y in 0..size {
                for x in 0..size {
                    let mut w = [0f32; 9];
                    let mut k = 0;
                    for dy in [-1i64, 0, 1] {
                        for dx in [-1i64, 0, 1] {
                            let yy = (y as i64 + dy).clamp(0, size as i64 - 1) as usize;
                            let xx = (x as i64 + dx).clamp(0, size as i64 - 1) as usize;
                            w[k] = p[yy * size + xx];
                            k += 1;
                        }
                    }
                    w.sort_by(f32::total_cmp);
                    o[ch * plane + y * size + x] = w[4];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_by_hand() {
        // Two training rows of 3; the mean is (1, 2, 3).
        let train = [0f32, 2.0, 4.0, 2.0, 2.0, 2.0];
        assert_eq!(mean_image(&train, 3), vec![1.0, 2.0, 3.0]);
        // Fill entry 2 of two images from one row, then from one row each.
        let imgs = [9f32, 9.0, 9.0, 8.0, 8.0, 8.0];
        let region = [0f32, 0.0, 1.0];
        assert_eq!(
            filled(&imgs, &region, &[1.0, 2.0, 3.0], 3),
            vec![9.0, 9.0, 3.0, 8.0, 8.0, 3.0]
        );
        assert_eq!(
            filled(&imgs, &region, &[0.0, 0.0, 5.0, 0.0, 0.0, 6.0], 3),
            vec![9.0, 9.0, 5.0, 8.0, 8.0, 6.0]
        );
        // Nearest by the visible entries only: (2, 2, _) is nearer to
        // (2.1, 1.9, 100) than (0, 2, _) is, whatever the hidden entry.
        let visible = [1f32, 1.0, 0.0];
        assert_eq!(
            nearest_rows(&train, &[2.1, 1.9, 100.0, -0.1, 2.0, -50.0], &visible, 3),
            vec![2.0, 2.0, 2.0, 0.0, 2.0, 4.0]
        );
        // One salt pixel in a 3 x 3 image of 0.5 goes; a corner keeps its value.
        let mut img = vec![0.5f32; 9];
        img[4] = 1.0;
        assert_eq!(median_3x3(&img, 1, 3), vec![0.5; 9]);
    }
}
