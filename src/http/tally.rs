//! The HTTP edge's counters and latency histograms, for `GET /metrics`.
//!
//! The hot path never touches a lock and rarely a shared cache line: a connection counts
//! into a private [`Tally`] while it answers a batch of requests (one read's worth), and adds
//! it to the shared [`Metrics`] once per batch, with the batch's latency. The shared counters
//! are split in [`SHARDS`] cache-padded shards, which connections take in turn (each
//! [`Tally`] keeps its shard), so two workers adding their batches seldom bounce one line
//! between cores; a scrape adds the shards up. The page is encoded by the `prometheus-client` crate
//! (`metrics::exposition`), at scrape time only: the crate's own metric types (an `Arc` and
//! an atomic per label set, a lock around each family's map) would sit on the hot path, so
//! hourtally keeps its own cells and hands the crate their values through a collector.

use crossbeam_utils::CachePadded;

use super::error::{ApiError, Reason, REASON_COUNT};
use super::route::{Route, ROUTE_COUNT};
use super::status::{Status, COUNT as STATUS_COUNT};
use crate::histogram::{BatchStats, Histogram, NANOS_BOUNDS};
use crate::metrics::ENABLED;
use crate::sync::{Arc, AtomicU64, AtomicUsize, Ordering};

/// Shards of the shared counters: at least the HTTP worker threads on the machines this runs
/// on, so that connections on different workers seldom share one; more only costs memory
/// (about 4 KiB each) and scrape time.
pub const SHARDS: usize = 8;

/// What one connection counted since its last flush.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Answers sent, by [`Status::index`].
    pub responses: [u64; STATUS_COUNT],
    /// Refusals, by [`Reason::index`].
    pub rejections: [u64; REASON_COUNT],
    /// POSTs whose event was queued.
    pub accepted: u64,
    /// Requests answered by each route since the last flush (timed at the flush).
    routes: [u32; ROUTE_COUNT],
    /// Bit `i` set when `responses[i]` is not zero, bit `32 + r` when `routes[r]` is not: a
    /// batch uses one or two statuses and routes, and the flush visits only those.
    touched: u64,
    /// Whether `rejections` holds anything: most batches refuse nothing, and the flush then
    /// skips the table.
    refused: bool,
    /// The shard this tally is flushed into, chosen when it is made.
    shard: u8,
}

// The touched bits above have room for every status and route.
const _: () = assert!(STATUS_COUNT <= 32 && ROUTE_COUNT <= 32);

impl Default for Tally {
    fn default() -> Self {
        Self {
            responses: [0; STATUS_COUNT],
            rejections: [0; REASON_COUNT],
            accepted: 0,
            routes: [0; ROUTE_COUNT],
            touched: 0,
            refused: false,
            shard: next_shard(),
        }
    }
}

impl Tally {
    #[inline]
    pub fn respond(&mut self, status: Status) {
        if ENABLED {
            self.responses[status.index()] += 1;
            self.touched |= 1 << status.index();
        }
    }

    #[inline]
    pub fn reject(&mut self, err: &ApiError) {
        if ENABLED {
            self.rejections[err.reason().index()] += 1;
            self.refused = true;
        }
    }

    /// An answer refusing with `err`: counted by its status and by its reason.
    pub fn refuse(&mut self, err: &ApiError) {
        self.respond(err.status());
        self.reject(err);
    }

    /// An accepted POST (counted as `204`, its event queued) whose event the writer refused
    /// afterwards (`--fsync always`, a group the disk would not take): it is answered with
    /// `err` instead, and counted so.
    pub fn accepted_then_refused(&mut self, err: &ApiError) {
        self.accepted = self.accepted.saturating_sub(1);
        if ENABLED {
            let i = Status::NoContent.index();
            self.responses[i] = self.responses[i].saturating_sub(1);
            if self.responses[i] == 0 {
                self.touched &= !(1 << i);
            }
        }
        self.refuse(err);
    }

    /// A request answered by `route` (its latency is taken when the batch is flushed).
    #[inline]
    pub fn route(&mut self, route: Route) {
        if ENABLED {
            self.routes[route as usize] += 1;
            self.touched |= 1 << (32 + route as usize);
        }
    }
}

/// The start of a batch, for its latency; nothing without `request-metrics`.
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch(#[cfg(feature = "request-metrics")] u64);

impl Stopwatch {
    /// Now (one vDSO clock read).
    #[inline]
    pub fn start() -> Self {
        Stopwatch(
            #[cfg(feature = "request-metrics")]
            crate::clock::monotonic_nanos(),
        )
    }

    /// Nanoseconds since [`start`](Self::start).
    #[inline]
    fn nanos(&self) -> u64 {
        #[cfg(feature = "request-metrics")]
        return crate::clock::monotonic_nanos().saturating_sub(self.0);
        #[cfg(not(feature = "request-metrics"))]
        0
    }
}

/// One shard of the shared per-request counters.
#[derive(Debug)]
struct Shard {
    responses: [AtomicU64; STATUS_COUNT],
    rejections: [AtomicU64; REASON_COUNT],
    accepted: AtomicU64,
    /// Nanoseconds from the read that completed a request to the write of its answer, by
    /// route.
    latency: [Histogram<{ NANOS_BOUNDS.len() }>; ROUTE_COUNT],
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            responses: std::array::from_fn(|_| AtomicU64::new(0)),
            rejections: std::array::from_fn(|_| AtomicU64::new(0)),
            accepted: AtomicU64::new(0),
            latency: std::array::from_fn(|_| Histogram::new(&NANOS_BOUNDS)),
        }
    }
}

/// Process-wide counters. Every ordering here is Relaxed: these are statistics, each read
/// on its own; no other memory is published through them.
#[derive(Debug)]
pub struct Metrics {
    shards: Box<[CachePadded<Shard>]>,
    connections_accepted: AtomicU64,
    connections_refused: AtomicU64,
    /// Connections the sweeper woke because a deadline had passed (`alarms`).
    connections_woken: AtomicU64,
    /// The writer's batches: events each and time from taking to publishing.
    writer: Arc<BatchStats>,
    /// In a cluster, the publisher's batches: events each and time from send to the log's
    /// acknowledgement.
    publisher: Arc<BatchStats>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(Shard::default()))
                .collect(),
            connections_accepted: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            connections_woken: AtomicU64::new(0),
            writer: Arc::new(BatchStats::default()),
            publisher: Arc::new(BatchStats::default()),
        }
    }
}

/// The indexes of the set bits of a word, lowest first.
struct Bits(u64);

impl Iterator for Bits {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(i)
    }
}

/// The next connection's shard: connections take the shards in turn. Per connection, never
/// per OS thread: a coroutine moves between worker threads (`http::counts_answers` says why
/// a thread-local is wrong there). Two connections on one shard only share its atomics.
fn next_shard() -> u8 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    // Relaxed: only hands out numbers; nothing is published through it.
    (NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS) as u8
}

impl Metrics {
    /// Adds a connection's tally to this thread's shard and zeroes it. The requests it
    /// routed are dropped untimed: [`flush_timed`](Self::flush_timed) times them.
    pub fn flush(&self, tally: &mut Tally) {
        if !ENABLED {
            tally.accepted = 0;
            return;
        }
        let routed = self.add(tally).1;
        for r in Bits(routed) {
            tally.routes[r] = 0;
        }
    }

    /// Adds a connection's tally and zeroes it; each request it routed took as long as the
    /// batch since `since` (the read that completed them: every answer of a batch is written
    /// at once, at the end).
    pub fn flush_timed(&self, tally: &mut Tally, since: Stopwatch) {
        if !ENABLED {
            tally.accepted = 0;
            return;
        }
        let (shard, routed) = self.add(tally);
        if routed == 0 {
            return;
        }
        let nanos = since.nanos();
        for r in Bits(routed) {
            let n = std::mem::take(&mut tally.routes[r]);
            debug_assert!(n != 0 && r < ROUTE_COUNT);
            shard.latency[r].observe_n(nanos, u64::from(n));
        }
    }

    /// Adds the counts of a tally (not its routes) to its shard; returns the shard
    /// and the bits of the routes the tally holds requests of.
    fn add(&self, tally: &mut Tally) -> (&Shard, u64) {
        let shard = &self.shards[usize::from(tally.shard)];
        debug_assert!(self.shards.len() == SHARDS);
        let touched = std::mem::take(&mut tally.touched);
        for i in Bits(touched & u64::from(u32::MAX)) {
            let local = std::mem::take(&mut tally.responses[i]);
            debug_assert!(local != 0);
            // Relaxed: a statistic (see the type doc).
            shard.responses[i].fetch_add(local, Ordering::Relaxed);
        }
        if std::mem::take(&mut tally.refused) {
            for (shared, local) in shard.rejections.iter().zip(tally.rejections.iter_mut()) {
                if *local != 0 {
                    // Relaxed: a statistic.
                    shared.fetch_add(std::mem::take(local), Ordering::Relaxed);
                }
            }
        }
        if tally.accepted != 0 {
            // Relaxed: a statistic.
            shard
                .accepted
                .fetch_add(std::mem::take(&mut tally.accepted), Ordering::Relaxed);
        }
        (shard, touched >> 32)
    }

    pub fn connection_accepted(&self) {
        // Relaxed: a statistic.
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_refused(&self) {
        // Relaxed: a statistic.
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The sweeper woke `n` connections whose deadline had passed.
    pub fn connections_woken(&self, n: usize) {
        // Relaxed: a statistic.
        self.connections_woken
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The sum over the shards of one of their counters.
    fn total(&self, cell: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            // Relaxed: a statistic.
            .map(|s| cell(s).load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    /// POSTs accepted so far (as flushed).
    pub fn accepted(&self) -> u64 {
        self.total(|s| &s.accepted)
    }

    /// Answers sent with `status` so far (as flushed).
    pub fn responses(&self, status: Status) -> u64 {
        self.total(|s| &s.responses[status.index()])
    }

    /// Refusals for `reason` so far (as flushed).
    pub fn rejections(&self, reason: Reason) -> u64 {
        self.total(|s| &s.rejections[reason.index()])
    }

    /// Latency of the requests `route` answered, over every shard.
    pub fn latency(&self, route: Route) -> crate::histogram::HistogramSnapshot {
        let mut snap = crate::histogram::HistogramSnapshot::default();
        for shard in self.shards.iter() {
            shard.latency[route as usize].add_to(&mut snap);
        }
        snap
    }

    pub(super) fn connections(&self) -> (u64, u64, u64) {
        // Relaxed: statistics.
        (
            self.connections_accepted.load(Ordering::Relaxed),
            self.connections_refused.load(Ordering::Relaxed),
            self.connections_woken.load(Ordering::Relaxed),
        )
    }

    /// Shows the writer's and the publisher's batches (made where the threads are started)
    /// on the page.
    pub fn with_batch_stats(mut self, writer: Arc<BatchStats>, publisher: Arc<BatchStats>) -> Self {
        self.writer = writer;
        self.publisher = publisher;
        self
    }

    /// The writer's batches.
    pub fn writer(&self) -> &Arc<BatchStats> {
        &self.writer
    }

    /// The publisher's batches.
    pub fn publisher(&self) -> &Arc<BatchStats> {
        &self.publisher
    }
}

// The tests count requests: they need the counting compiled in.
#[cfg(all(test, feature = "request-metrics"))]
#[path = "tally_tests.rs"]
mod tests;
