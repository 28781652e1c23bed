//! What the cluster's threads and the HTTP edge share: how far this server has applied the
//! stream, whether the log takes events, and the figures `/metrics` reports.

use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Counters and positions of cluster mode. Each is written by one thread (named on the
/// field) and read by any.
#[derive(Debug, Default)]
pub struct ClusterState {
    /// The highest stream sequence whose events are all applied and published in the ring
    /// (writer thread, `feed`).
    applied_seq: AtomicU64,
    /// The stream's last sequence as this server last learned it: from each message's count
    /// of messages after it, or a stream info request (nats thread).
    stream_last_seq: AtomicU64,
    /// Set while the oldest unacknowledged batch has waited longer than `--log-timeout`:
    /// POSTs get 503 meanwhile (publisher thread).
    log_failing: AtomicBool,
    /// Batches the stream acknowledged, and of those, acknowledged as duplicates of an
    /// earlier publish of the same id (nats thread).
    pub batches_acked: AtomicU64,
    pub batches_duplicate: AtomicU64,
    /// Publish attempts that failed or timed out and were retried (nats thread).
    pub publish_retries: AtomicU64,
    /// Events of batches given up after retrying for the whole de-duplication window
    /// (publisher thread). With `--ack log` none of them was answered 204.
    pub events_abandoned: AtomicU64,
    /// Batches sent and not yet acknowledged or given up (publisher thread).
    pub batches_in_flight: AtomicUsize,
    /// Times the consumer was created again (after a gap, a stall or an error; nats thread).
    pub consumer_restarts: AtomicU64,
    /// Stream messages skipped because they do not decode as a batch (nats thread).
    pub messages_skipped: AtomicU64,
    /// Snapshots put into the object store, and attempts that failed (nats thread).
    pub snapshots_stored: AtomicU64,
    pub snapshot_failures: AtomicU64,
    /// A capture was handed to the nats thread and is not stored (or given up) yet: the
    /// writer begins no other (`ClusterSink::snapshot_due`), as a store may wait a while
    /// for the cold tier and upload its files.
    pub snapshot_in_flight: AtomicBool,
    /// Markers published through the stream for fresh reads, acknowledged (nats thread).
    pub fresh_markers: AtomicU64,
    /// When a failed publish, and a consumer's trouble, were last logged (ms since `since`):
    /// at most one line a second each, however many batches fail at once and however often
    /// the consumer is created again during an outage (nats thread).
    publish_logged_ms: AtomicU64,
    consumer_logged_ms: AtomicU64,
    /// The last message the consumer fed to the writer: its sequence and identity
    /// (`nats::consume`), for the stream watch to read back (nats thread).
    last_fed: LastFed,
    /// The instant the figures count from.
    since: OnceInstant,
}

/// A sequence and an identity written together by one thread and read together by another,
/// never torn: the writer clears the sequence, stores the identity, then stores the
/// sequence; a reader keeps a pair only if it read the same non-zero sequence before and
/// after the identity. Sequences only grow, so an equal sequence means no write in between.
/// SeqCst throughout: the three stores and three loads must be seen in one order, and this
/// runs once a stream message and once per watch, far from any hot path.
#[derive(Debug, Default)]
struct LastFed {
    seq: AtomicU64,
    identity: AtomicU64,
}

impl LastFed {
    fn set(&self, seq: u64, identity: u64) {
        self.seq.store(0, Ordering::SeqCst);
        self.identity.store(identity, Ordering::SeqCst);
        self.seq.store(seq, Ordering::SeqCst);
    }

    fn get(&self) -> Option<(u64, u64)> {
        let seq = self.seq.load(Ordering::SeqCst);
        let identity = self.identity.load(Ordering::SeqCst);
        (seq != 0 && self.seq.load(Ordering::SeqCst) == seq).then_some((seq, identity))
    }
}

/// An `Instant` taken when the state is made (a `Default` for it).
#[derive(Debug)]
struct OnceInstant(std::time::Instant);

impl Default for OnceInstant {
    fn default() -> Self {
        Self(std::time::Instant::now())
    }
}

/// The figures `/metrics` shows, read at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterFigures {
    pub applied_seq: u64,
    pub stream_last_seq: u64,
    pub log_failing: bool,
    pub batches_acked: u64,
    pub batches_duplicate: u64,
    pub publish_retries: u64,
    pub events_abandoned: u64,
    pub batches_in_flight: usize,
    pub consumer_restarts: u64,
    pub messages_skipped: u64,
    pub snapshots_stored: u64,
    pub snapshot_failures: u64,
    pub fresh_markers: u64,
}

impl ClusterState {
    /// Stream sequence `seq` is applied and the ring that holds it published (writer).
    pub fn set_applied(&self, seq: u64) {
        // Release: pairs with `applied`'s Acquire: a reader that sees `seq` reads a ring
        // holding every event up to it (the ring's own publish came before this store).
        self.applied_seq.store(seq, Ordering::Release);
    }

    /// A capture goes to the nats thread (writer): no other begins until it is done.
    pub fn snapshot_sent(&self) {
        // SeqCst: a flag between two threads, set and read once a snapshot; no ordering
        // argument needed at this rate.
        self.snapshot_in_flight.store(true, Ordering::SeqCst);
    }

    /// The capture handed over last is stored, or given up (nats thread).
    pub fn snapshot_done(&self) {
        // SeqCst: as in `snapshot_sent`.
        self.snapshot_in_flight.store(false, Ordering::SeqCst);
    }

    /// Whether a capture handed over is still being stored.
    pub fn snapshot_pending(&self) -> bool {
        // SeqCst: as in `snapshot_sent`.
        self.snapshot_in_flight.load(Ordering::SeqCst)
    }

    /// The consumer fed the writer message `seq`, of identity `identity`.
    pub fn set_last_fed(&self, seq: u64, identity: u64) {
        self.last_fed.set(seq, identity);
    }

    /// The last message the consumer fed the writer, `(sequence, identity)`, if any (and
    /// not being replaced at this instant).
    pub fn last_fed(&self) -> Option<(u64, u64)> {
        self.last_fed.get()
    }

    /// The highest stream sequence applied and published in the ring.
    pub fn applied(&self) -> u64 {
        // Acquire: see `set_applied`.
        self.applied_seq.load(Ordering::Acquire)
    }

    /// The stream holds at least `seq` messages (raises the known last sequence).
    pub fn saw_stream_last(&self, seq: u64) {
        // Relaxed: a figure for /metrics (the lag); nothing is published through it.
        self.stream_last_seq.fetch_max(seq, Ordering::Relaxed);
    }

    /// Sets or clears "the log does not take events".
    pub fn set_log_failing(&self, failing: bool) {
        // Relaxed: an advisory flag; a POST that misses the change by an instant is one more
        // queued (and retried) or one more refused, both correct answers.
        self.log_failing.store(failing, Ordering::Relaxed);
    }

    /// Whether POSTs are refused because the log does not take events.
    pub fn log_failing(&self) -> bool {
        // Relaxed: see `set_log_failing`.
        self.log_failing.load(Ordering::Relaxed)
    }

    /// Whether a failed publish should be logged now: true at most once a second.
    pub fn publish_log_due(&self) -> bool {
        self.log_due(&self.publish_logged_ms)
    }

    /// Whether the consumer's trouble should be logged now: true at most once a second.
    pub fn consumer_log_due(&self) -> bool {
        self.log_due(&self.consumer_logged_ms)
    }

    fn log_due(&self, last_logged_ms: &AtomicU64) -> bool {
        let now = self.since.0.elapsed().as_millis() as u64 + 1_000;
        // Relaxed: an advisory rate limit; two tasks racing at worst both log one line.
        let last = last_logged_ms.load(Ordering::Relaxed);
        now >= last + 1_000
            && last_logged_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Every figure, for `/metrics`.
    pub fn figures(&self) -> ClusterFigures {
        // Relaxed loads: independent counters for a report; none orders anything else.
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClusterFigures {
            applied_seq: self.applied(),
            stream_last_seq: r(&self.stream_last_seq),
            log_failing: self.log_failing(),
            batches_acked: r(&self.batches_acked),
            batches_duplicate: r(&self.batches_duplicate),
            publish_retries: r(&self.publish_retries),
            events_abandoned: r(&self.events_abandoned),
            batches_in_flight: self.batches_in_flight.load(Ordering::Relaxed),
            consumer_restarts: r(&self.consumer_restarts),
            messages_skipped: r(&self.messages_skipped),
            snapshots_stored: r(&self.snapshots_stored),
            snapshot_failures: r(&self.snapshot_failures),
            fresh_markers: r(&self.fresh_markers),
        }
    }
}

/// Adds one to a counter (Relaxed: a figure for /metrics, ordering nothing).
pub fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl ClusterFigures {
    /// Writes the cluster's series through `metric(name, type, help, value)`.
    pub fn render(&self, metric: &mut impl FnMut(&'static str, &'static str, &'static str, u64)) {
        let rows: [(&'static str, &'static str, &'static str, u64); 12] = [
            ("hourtally_cluster_applied_sequence", "gauge", "The last stream sequence this server has applied.", self.applied_seq),
            ("hourtally_cluster_stream_last_sequence", "gauge", "The stream's last sequence, as this server last learned it.", self.stream_last_seq),
            ("hourtally_cluster_lag_messages", "gauge", "Stream messages not yet applied here (stream last - applied).", self.stream_last_seq.saturating_sub(self.applied_seq)),
            ("hourtally_cluster_log_failing", "gauge", "1 while the log has not acknowledged a batch within --log-timeout (POSTs get 503).", u64::from(self.log_failing)),
            ("hourtally_cluster_batches_acked_total", "counter", "Batches the stream acknowledged.", self.batches_acked),
            ("hourtally_cluster_batches_duplicate_total", "counter", "Of those, acknowledged as duplicates of an earlier publish (counted once).", self.batches_duplicate),
            ("hourtally_cluster_publish_retries_total", "counter", "Publishes retried with the same de-duplication id.", self.publish_retries),
            ("hourtally_cluster_events_abandoned_total", "counter", "Events of batches given up after retrying for the whole duplicate window.", self.events_abandoned),
            ("hourtally_cluster_batches_in_flight", "gauge", "Batches sent and not yet acknowledged.", self.batches_in_flight as u64),
            ("hourtally_cluster_consumer_restarts_total", "counter", "Times the stream consumer was created again (gap, stall, error).", self.consumer_restarts),
            ("hourtally_cluster_messages_skipped_total", "counter", "Stream messages that were not batches of events (skipped by every server).", self.messages_skipped),
            ("hourtally_cluster_snapshots_stored_total", "counter", "Snapshots stored in the object store.", self.snapshots_stored),
        ];
        for (name, kind, help, value) in rows {
            metric(name, kind, help, value);
        }
        metric(
            "hourtally_cluster_snapshot_failures_total",
            "counter",
            "Snapshots that could not be stored.",
            self.snapshot_failures,
        );
        metric(
            "hourtally_cluster_fresh_markers_total",
            "counter",
            "Markers this server published through the stream to learn its position for fresh reads (each serves every fresh read that waited for it).",
            self.fresh_markers,
        );
    }
}
