//! Time series of one topic and their resampling onto a fixed-rate grid:
//! samples out of order are skipped, the series is cut into spans at gaps,
//! and values between two samples of a span are interpolated linearly.

/// The samples of one topic: strictly increasing times, `width` values each.
#[derive(Debug, Clone)]
pub struct Series {
    times_ns: Vec<u64>,
    values: Vec<f64>,
    width: usize,
    /// Samples skipped for a time not after their predecessor's.
    pub out_of_order: u64,
}

impl Series {
    pub fn new(width: usize) -> Self {
        Self {
            times_ns: Vec::new(),
            values: Vec::new(),
            width,
            out_of_order: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.times_ns.len()
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// Appends a sample, or skips (and counts) it when `t_ns` is not after
    /// the last sample's time. `values` has `width` entries.
    pub fn push(&mut self, t_ns: u64, values: &[f64]) {
        debug_assert_eq!(values.len(), self.width);
        if self.times_ns.last().is_some_and(|&last| t_ns <= last) {
            self.out_of_order += 1;
            return;
        }
        self.times_ns.push(t_ns);
        self.values.extend_from_slice(values);
    }

    /// Time intervals `[first, last]` of the runs of samples with no gap
    /// longer than `max_gap_ns` between neighbours.
    pub fn spans(&self, max_gap_ns: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let Some(&first) = self.times_ns.first() else {
            return out;
        };
        let mut start = first;
        for w in self.times_ns.windows(2) {
            if w[1] - w[0] > max_gap_ns {
                out.push((start, w[0]));
                start = w[1];
            }
        }
        out.push((start, *self.times_ns.last().unwrap_or(&first)));
        out
    }

    /// The values at `t_ns`, linear between the samples around it, into
    /// `out` (`width` entries). `t_ns` must lie within the series' times.
    pub fn interpolate(&self, t_ns: u64, out: &mut [f64]) {
        let n = self.times_ns.len();
        if n == 0 {
            return;
        }
        // The first sample at or after t (1..n-1 once clamped), and the one before.
        let hi = self
            .times_ns
            .partition_point(|&t| t < t_ns)
            .clamp(1, n.max(2) - 1);
        let lo = hi - 1;
        let row = |i: usize| &self.values[i * self.width..(i + 1) * self.width];
        if n == 1 {
            out.copy_from_slice(row(0));
            return;
        }
        let (t0, t1) = (self.times_ns[lo], self.times_ns[hi]);
        let w = (t_ns.saturating_sub(t0)) as f64 / (t1 - t0) as f64;
        for ((o, a), b) in out.iter_mut().zip(row(lo)).zip(row(hi)) {
            *o = a + (b - a) * w;
        }
    }
}

/// The intervals where both span lists cover time (each list sorted and
/// disjoint).
pub fn intersect(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let start = a[i].0.max(b[j].0);
        let end = a[i].1.min(b[j].1);
        if start <= end {
            out.push((start, end));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Grid points `start + k * period_ns` within `[start, end]`.
pub fn grid_len(span: (u64, u64), period_ns: u64) -> u64 {
    (span.1 - span.0) / period_ns + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_out_of_order_and_interpolates_linearly() {
        let mut s = Series::new(2);
        s.push(100, &[0.0, 10.0]);
        s.push(200, &[1.0, 20.0]);
        s.push(150, &[9.0, 9.0]); // before its predecessor: skipped
        s.push(200, &[9.0, 9.0]); // same time: skipped
        s.push(400, &[3.0, 0.0]);
        assert_eq!((s.len(), s.out_of_order), (3, 2));
        let mut out = [0.0; 2];
        for (t, expected) in [
            (100, [0.0, 10.0]),
            (150, [0.5, 15.0]),
            (200, [1.0, 20.0]),
            (250, [1.5, 15.0]),
            (400, [3.0, 0.0]),
        ] {
            s.interpolate(t, &mut out);
            assert_eq!(out, expected, "t = {t}");
        }
    }

    #[test]
    fn spans_split_at_gaps_and_intersect() {
        let mut s = Series::new(1);
        for t in [0, 10, 20, 50, 60, 200] {
            s.push(t, &[0.0]);
        }
        assert_eq!(s.spans(20), vec![(0, 20), (50, 60), (200, 200)]);
        assert_eq!(s.spans(30), vec![(0, 60), (200, 200)]);
        let b = [(5, 55), (190, 300)];
        assert_eq!(
            intersect(&s.spans(20), &b),
            vec![(5, 20), (50, 55), (200, 200)]
        );
        assert_eq!(grid_len((5, 20), 10), 2);
        assert_eq!(grid_len((0, 20), 10), 3);
    }
}
