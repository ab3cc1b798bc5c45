//! A safe, bounds-checked front to the `gemm` crate's f32 kernels (the ones
//! candle uses; they have AVX-512 paths), for the fused MLP path's small
//! matrices, where going through tensors costs more than the arithmetic.

#![allow(unsafe_code)]

use std::ops::Range;

/// A strided view of a matrix inside a slice.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A contiguous row-major `rows x cols` matrix at the start of `data`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        let m = Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        };
        m.check();
        m
    }

    /// A row-major `rows x cols` matrix whose rows start `row_stride` apart.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        let m = Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        };
        m.check();
        m
    }

    /// Element `(i, j)`.
    #[inline]
    pub fn get(&self, i: usize, j: usize) -> f32 {
        assert!(i < self.rows && j < self.cols, "matrix index out of range");
        self.data[i * self.row_stride + j * self.col_stride]
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// The columns `range` (no copy).
    pub fn columns(self, range: Range<usize>) -> Self {
        assert!(
            range.start <= range.end && range.end <= self.cols,
            "column range out of bounds"
        );
        let m = Self {
            data: &self.data[(range.start * self.col_stride).min(self.data.len())..],
            cols: range.end - range.start,
            ..self
        };
        m.check();
        m
    }

    #[inline]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// A row-major copy: row slices when rows are contiguous, a blocked
    /// gather when columns are (a transposed view), element by element
    /// otherwise.
    pub fn to_row_major(&self) -> Vec<f32> {
        let (r, c, rs, cs) = (self.rows, self.cols, self.row_stride, self.col_stride);
        let mut out = vec![0f32; r * c];
        if r == 0 || c == 0 {
            return out;
        }
        if cs == 1 {
            for (i, row) in out.chunks_exact_mut(c).enumerate() {
                row.copy_from_slice(&self.data[i * rs..i * rs + c]);
            }
        } else if rs == 1 {
            // Column j is contiguous: read 16 columns at a time down the rows.
            for j0 in (0..c).step_by(16) {
                let j1 = (j0 + 16).min(c);
                for (i, row) in out.chunks_exact_mut(c).enumerate() {
                    for (j, v) in row[j0..j1].iter_mut().enumerate() {
                        *v = self.data[(j0 + j) * cs + i];
                    }
                }
            }
        } else {
            for (i, row) in out.chunks_exact_mut(c).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = self.data[i * rs + j * cs];
                }
            }
        }
        out
    }

    #[inline]
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Every element of the view lies inside `data`.
    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride;
            assert!(last < self.data.len(), "matrix view out of its buffer");
        }
    }
}

/// `dst = a b` (or `dst += a b` with `accumulate`), `dst` contiguous row-major
/// `a.rows() x b.cols()`, on the calling thread.
pub fn matmul(dst: &mut [f32], a: MatRef, b: MatRef, accumulate: bool) {
    assert_eq!(a.cols, b.rows, "matmul: inner dimensions differ");
    let (m, n, k) = (a.rows, b.cols, a.cols);
    assert!(dst.len() >= m * n, "matmul: destination too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: the views were bounds-checked on construction (every element
    // index `i * row_stride + j * col_stride` is inside its slice), `dst`
    // holds `m * n` elements with row stride `n`, and `dst` is a unique
    // borrow that cannot alias `a` or `b` (shared borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_of_views_match_the_definition() {
        // a: 2x3, b: 4x3 (used transposed, columns 1..3 of b^T's... ).
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 2.0, 0.0, 1.0, 1.0, 3.0, 1.0, 0.0, 1.0, 1.0, 1.0];
        let (av, bv) = (MatRef::row_major(&a, 2, 3), MatRef::row_major(&b, 4, 3));
        let mut c = [0.0f32; 8];
        matmul(&mut c, av, bv.t(), false); // [2,3] x [3,4]
        let want: Vec<f32> = (0..2)
            .flat_map(|i| (0..4).map(move |j| (0..3).map(|q| a[i * 3 + q] * b[j * 3 + q]).sum()))
            .collect();
        assert_eq!(c.to_vec(), want);
        matmul(&mut c, av, bv.t(), true);
        assert_eq!(c.to_vec(), want.iter().map(|v| 2.0 * v).collect::<Vec<_>>());
        // Columns 1..3 of a (2x2) times rows of b^T restricted: [2,2] x [2,4].
        let mut d = [0.0f32; 8];
        let bt_rows = MatRef::row_major(&b, 4, 3).columns(0..2).t(); // [2, 4]
        matmul(&mut d, av.columns(1..3), bt_rows, false);
        for i in 0..2 {
            for j in 0..4 {
                let v: f32 = (0..2).map(|q| a[i * 3 + 1 + q] * b[j * 3 + q]).sum();
                assert_eq!(d[i * 4 + j], v);
            }
        }
    }

    #[test]
    fn row_major_copies_match_every_view() {
        let data: Vec<f32> = (0..60).map(|v| v as f32).collect();
        let base = MatRef::row_major(&data, 3, 20);
        for view in [
            base,
            base.t(),
            base.columns(2..19),
            base.columns(1..18).t(),
            MatRef::strided(&data, 2, 5, 7).t(),
            base.t().t(),
        ] {
            let copy = view.to_row_major();
            assert_eq!(copy.len(), view.rows() * view.cols());
            for i in 0..view.rows() {
                for j in 0..view.cols() {
                    assert_eq!(copy[i * view.cols() + j], view.get(i, j));
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "out of its buffer")]
    fn views_past_their_buffer_are_refused() {
        MatRef::row_major(&[0.0; 5], 2, 3);
    }
}
