//! How the inference thread shares its time between on-demand queries and
//! streaming robots: while robots' forecasts wait, queries may take at most
//! `query.max_share` of the thread's busy time (a deficit counter: streaming
//! work earns queries credit, a query run while robots waited spends it).
//! With no streaming work due, queries run freely (idle time is not
//! charged), so a lone client still gets the whole thread.

use std::time::Duration;

/// Credit is kept within +-this many seconds: a long quiet spell cannot buy
/// a long burst of queries later, nor a long query a long lock-out of them.
const CAP_S: f64 = 1.0;

#[derive(Debug, Clone)]
pub(crate) struct QueryShare {
    /// Seconds of query time earned per second of streaming time.
    rate: f64,
    /// 1: queries always go first.
    always: bool,
    credit_s: f64,
}

impl QueryShare {
    /// `share` in [0, 1] (checked by the config); 0: queries only when no
    /// streaming work is due.
    pub(crate) fn new(share: f64) -> Self {
        let always = share >= 1.0;
        Self {
            rate: if always { 0.0 } else { share / (1.0 - share) },
            always,
            credit_s: 0.0,
        }
    }

    /// Whether a waiting query goes before due streaming work.
    pub(crate) fn query_first(&self) -> bool {
        self.always || (self.rate > 0.0 && self.credit_s >= 0.0)
    }

    /// Streaming work ran for `busy`.
    pub(crate) fn streamed(&mut self, busy: Duration) {
        self.credit_s = (self.credit_s + busy.as_secs_f64() * self.rate).min(CAP_S);
    }

    /// A query ran for `busy`; `contended`: streaming work was due when it
    /// was taken.
    pub(crate) fn queried(&mut self, busy: Duration, contended: bool) {
        if contended {
            self.credit_s = (self.credit_s - busy.as_secs_f64()).max(-CAP_S);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a thread that always has both kinds of work: a query costs `q`
    /// ms, a streaming batch `s` ms; returns the queries' share of the time.
    fn contended_share(share: f64, q: u64, s: u64) -> f64 {
        let mut sched = QueryShare::new(share);
        let (mut tq, mut ts) = (0u64, 0u64);
        for _ in 0..10_000 {
            if sched.query_first() {
                sched.queried(Duration::from_millis(q), true);
                tq += q;
            } else {
                sched.streamed(Duration::from_millis(s));
                ts += s;
            }
        }
        tq as f64 / (tq + ts) as f64
    }

    #[test]
    fn queries_get_their_share_whatever_their_cost() {
        for share in [0.1, 0.25, 0.5, 0.8] {
            for (q, s) in [(1, 1), (16, 1), (1, 16), (300, 7)] {
                let got = contended_share(share, q, s);
                assert!(
                    (got - share).abs() < 0.03,
                    "share {share}, q {q} s {s}: {got}"
                );
            }
        }
        assert_eq!(contended_share(1.0, 16, 1), 1.0);
        assert_eq!(contended_share(0.0, 16, 1), 0.0);
    }

    #[test]
    fn uncontended_queries_cost_no_credit_and_credit_is_capped() {
        let mut sched = QueryShare::new(0.5);
        sched.queried(Duration::from_secs(100), false);
        assert!(sched.query_first());
        sched.streamed(Duration::from_secs(100));
        sched.queried(Duration::from_millis(1500), true);
        assert!(!sched.query_first(), "credit above the cap was kept");
        sched.queried(Duration::from_secs(100), true);
        sched.streamed(Duration::from_millis(1001));
        assert!(sched.query_first(), "debt below the cap was kept");
    }
}
