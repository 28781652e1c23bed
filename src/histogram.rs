//! A fixed-bucket histogram of `u64` observations (nanoseconds, events) in atomic cells: no
//! lock, one relaxed add per bucket hit and one for the sum, so it can sit on a hot path.
//!
//! Each observation adds to exactly one cell, the first whose upper bound is at least the
//! value (or the overflow cell); Prometheus's cumulative `le` buckets are the running sum of
//! the cells, which the exposition encoder adds up. The count is
//! the sum of the cells, so there is no third counter to keep in step with the other two.
//!
//! Every ordering here is Relaxed: a histogram is a statistic. Each cell is read on its own,
//! nothing else is published through them, and a reader that races a writer may see the
//! sum of an observation without its bucket (or the reverse) for an instant — which the
//! exposition format tolerates (scrapes are not atomic in any Prometheus client).

use crate::sync::{AtomicU64, Ordering};

/// `N` finite upper bounds (inclusive, ascending) and an overflow cell.
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    /// Upper bounds of the finite buckets, ascending.
    bounds: &'static [u64; N],
    /// Observations per bucket: `cells[i]` counts values in `(bounds[i-1], bounds[i]]`.
    cells: [AtomicU64; N],
    /// Observations above the last bound (the `+Inf` bucket less the finite ones).
    overflow: AtomicU64,
    /// The sum of every observed value (wrapping, as Prometheus counters may reset).
    sum: AtomicU64,
}

/// A histogram as read: counts per bucket, the total count and the sum.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// `(upper bound, observations in (previous bound, bound])` for every finite bound,
    /// ascending (not cumulative: the exposition encoder adds them up).
    pub buckets: Vec<(u64, u64)>,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
    /// The sum of the observed values.
    pub sum: u64,
}

impl<const N: usize> Histogram<N> {
    /// An empty histogram over `bounds`, which must ascend strictly.
    pub fn new(bounds: &'static [u64; N]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds must ascend");
        Self {
            bounds,
            cells: std::array::from_fn(|_| AtomicU64::new(0)),
            overflow: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    /// The cell a value falls in: `N` for the overflow cell.
    #[inline]
    pub fn bucket_of(&self, value: u64) -> usize {
        // N is small (≤ 32): a linear scan beats a binary search's unpredictable branches,
        // and the common values sit in the first few buckets.
        self.bounds.iter().position(|&b| value <= b).unwrap_or(N)
    }

    /// Records `n` observations of `value`.
    #[inline]
    pub fn observe_n(&self, value: u64, n: u64) {
        let i = self.bucket_of(value);
        let cell = if i < N {
            &self.cells[i]
        } else {
            &self.overflow
        };
        // Relaxed: a statistic (module doc).
        cell.fetch_add(n, Ordering::Relaxed);
        // Relaxed: a statistic.
        self.sum.fetch_add(value.wrapping_mul(n), Ordering::Relaxed);
    }

    /// Records one observation of `value`.
    #[inline]
    pub fn observe(&self, value: u64) {
        self.observe_n(value, 1);
    }

    /// Adds this histogram's cells into `into` (which covers the same bounds, or is empty).
    pub fn add_to(&self, into: &mut HistogramSnapshot) {
        if into.buckets.is_empty() {
            into.buckets = self.bounds.iter().map(|&b| (b, 0)).collect();
        }
        debug_assert_eq!(into.buckets.len(), N, "snapshots of one kind of histogram");
        let mut finite = 0u64;
        for (cell, (_, total)) in self.cells.iter().zip(into.buckets.iter_mut()) {
            // Relaxed: a statistic.
            let n = cell.load(Ordering::Relaxed);
            finite += n;
            *total += n;
        }
        // Relaxed: a statistic.
        into.count += finite + self.overflow.load(Ordering::Relaxed);
        // Relaxed: a statistic.
        into.sum = into.sum.wrapping_add(self.sum.load(Ordering::Relaxed));
    }

    /// The histogram as read now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut s = HistogramSnapshot::default();
        self.add_to(&mut s);
        s
    }
}

/// Powers of four from 1 to 4096: events per batch (the writer's batches hold at most 1024,
/// `--fsync always` ones and the cluster's log batches up to 4000).
pub const BATCH_EVENTS_BOUNDS: [u64; 7] = [1, 4, 16, 64, 256, 1024, 4096];

/// 1 µs to 1 s in 1-2.5-5 steps, in nanoseconds: request latency and batch apply time.
pub const NANOS_BOUNDS: [u64; 19] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// What a thread that works in batches (the writer, the cluster's publisher) records per
/// batch, for `/metrics`: its size and how long it took.
#[derive(Debug)]
pub struct BatchStats {
    /// Events per batch.
    pub events: Histogram<7>,
    /// Nanoseconds from taking the batch to being done with it.
    pub nanos: Histogram<19>,
}

impl Default for BatchStats {
    fn default() -> Self {
        Self {
            events: Histogram::new(&BATCH_EVENTS_BOUNDS),
            nanos: Histogram::new(&NANOS_BOUNDS),
        }
    }
}

impl BatchStats {
    /// One batch of `events` events that took `took`.
    pub fn record(&self, events: usize, took: std::time::Duration) {
        self.events.observe(events as u64);
        // Under loom, time is outside the model: loom replays an execution's prefix and
        // needs every branch to follow from the schedule alone, and a clock reading would
        // pick a different cell in each replay. So models see a fixed time.
        #[cfg(hourtally_loom)]
        let took = {
            let _ = took;
            std::time::Duration::ZERO
        };
        self.nanos
            .observe(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
    }
}

#[cfg(all(test, not(hourtally_loom)))]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_that_holds_them() {
        static B: [u64; 3] = [1, 4, 16];
        let h = Histogram::new(&B);
        for v in [0, 1, 2, 4, 5, 16, 17, u64::MAX / 2] {
            h.observe(v);
        }
        h.observe_n(3, 10);
        let s = h.snapshot();
        // <=1: 0, 1; (1, 4]: 2, 4, ten 3s; (4, 16]: 5, 16; the rest overflow.
        assert_eq!(s.buckets, vec![(1, 2), (4, 12), (16, 2)]);
        assert_eq!(s.count, 18);
        assert_eq!(
            s.sum,
            (1u64 + 2 + 4 + 5 + 16 + 17 + u64::MAX / 2).wrapping_add(30)
        );
    }

    #[test]
    fn snapshots_of_several_histograms_add_up() {
        let a = Histogram::new(&BATCH_EVENTS_BOUNDS);
        let b = Histogram::new(&BATCH_EVENTS_BOUNDS);
        a.observe(1);
        b.observe(1000);
        b.observe(5000);
        let mut s = HistogramSnapshot::default();
        a.add_to(&mut s);
        b.add_to(&mut s);
        assert_eq!(s.count, 3);
        assert_eq!(s.sum, 6001);
        assert_eq!(s.buckets[0], (1, 1));
        assert_eq!(s.buckets[5], (1024, 1));
        assert_eq!(s.buckets[6], (4096, 0));
    }

    #[test]
    fn the_bounds_ascend() {
        assert!(NANOS_BOUNDS.windows(2).all(|w| w[0] < w[1]));
        assert!(BATCH_EVENTS_BOUNDS.windows(2).all(|w| w[0] < w[1]));
    }
}
