//! Loom models of hourtally's concurrent protocols; see `tests/`.
//!
//! Every model runs through [`model`] or [`model_outcomes`]: [`loom::model`] (so
//! `LOOM_MAX_PREEMPTIONS`, `LOOM_MAX_BRANCHES`, `LOOM_LOG`, … apply as usual) plus a count of
//! the interleavings explored and the wall time, printed to stderr (`cargo test --
//! --nocapture` shows them; `LOOM_TESTS_PROGRESS=1` also prints a line every 100 000
//! interleavings).

#[cfg(not(hourtally_loom))]
compile_error!(
    "loom-tests must be built with RUSTFLAGS=\"--cfg hourtally_loom\" (see README, Verification)"
);

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Runs `f` under [`loom::model`] and reports how many interleavings loom explored.
pub fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    model_outcomes(f);
}

/// Runs `f` under [`loom::model`], reports how many interleavings loom explored, and returns
/// the set of outcomes the interleavings ended in (what `f` returned). Tests compare it with
/// the outcomes they expect, to show that the model reaches every case its assertions are
/// about, rather than passing because loom never got there.
///
/// The counter and the set are plain `std` objects, outside the model: loom neither sees nor
/// permutes them, and they are touched only outside any loom operation.
pub fn model_outcomes<T, F>(f: F) -> BTreeSet<T>
where
    T: Ord + Debug + Send + 'static,
    F: Fn() -> T + Sync + Send + 'static,
{
    let iterations = Arc::new(AtomicU64::new(0));
    let outcomes = Arc::new(Mutex::new(BTreeSet::new()));
    let start = Instant::now();
    let progress = std::env::var_os("LOOM_TESTS_PROGRESS").is_some();
    {
        let (iterations, outcomes) = (iterations.clone(), outcomes.clone());
        loom::model(move || {
            let i = iterations.fetch_add(1, Ordering::Relaxed) + 1;
            if progress && i % 100_000 == 0 {
                eprintln!("  ... {i} interleavings, {:.2?}", start.elapsed());
            }
            let outcome = f();
            outcomes
                .lock()
                .expect("outcome set poisoned")
                .insert(outcome);
        });
    }
    let name = std::thread::current()
        .name()
        .unwrap_or("loom model")
        .to_owned();
    let outcomes = std::mem::take(&mut *outcomes.lock().expect("outcome set poisoned"));
    eprintln!(
        "{name}: {} interleavings in {:.2?} (LOOM_MAX_PREEMPTIONS={}); outcomes {outcomes:?}",
        iterations.load(Ordering::Relaxed),
        start.elapsed(),
        std::env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| "unbounded".into()),
    );
    outcomes
}

/// The sink of the durable-cut models: records which users' events it made durable (bit
/// `user`, set with Release before `batch` returns, as the journal syncs before it returns),
/// and refuses, when the batch may be refused, any batch holding `refuse_user`'s event.
#[derive(Debug)]
pub struct RecordingSink {
    pub durable: loom::sync::Arc<loom::sync::atomic::AtomicU64>,
    pub refuse_user: Option<u64>,
}

impl hourtally::writer::Sink for RecordingSink {
    fn batch(&mut self, events: &[hourtally::event::Event], refusable: bool) -> bool {
        if refusable && events.iter().any(|e| Some(e.user) == self.refuse_user) {
            return false;
        }
        let bits = events.iter().fold(0, |b, e| b | 1u64 << e.user);
        // Release: "durable" before `batch` returns, as the journal's sync is.
        self.durable
            .fetch_or(bits, loom::sync::atomic::Ordering::Release);
        true
    }
    fn idle(&mut self, _deep: bool) {}
    fn finish(&mut self) {}
    fn snapshot_due(&mut self, _stopping: bool) -> Option<u64> {
        None
    }
    fn snapshot(&mut self, _image: hourtally::ring::RingImage) {}
    fn durable(&mut self, _k: u64) {}
    fn stalled(&self) -> bool {
        false
    }
}

/// The producer of the durable-cut models: pushes events of users 1 and 2, takes a ticket
/// (before the pushes when `ticket_before_push`, the negative control), asks for a cut when
/// `request`, and waits until the cut is durable. Returns the bits of `durable_users`
/// (loaded with Acquire, pairing with the Release of whoever sets them) once released.
pub fn push_two_and_wait_for_cut(
    ingest: &hourtally::writer::Ingest,
    durable_users: &loom::sync::atomic::AtomicU64,
    ticket_before_push: bool,
    request: bool,
) -> u64 {
    use hourtally::event::{Event, Kind};
    let early = ingest.durability_ticket();
    for user in [1, 2] {
        ingest
            .push(Event::new(7, user, Kind::Click))
            .expect("the queue has room and is open");
    }
    let ticket = if ticket_before_push {
        early
    } else {
        ingest.durability_ticket()
    };
    if request {
        ingest.request_cut();
    }
    while ingest.durable_cut() < ticket {
        loom::thread::yield_now();
    }
    // Acquire: pairs with the Release of the sink or log that marked the events durable.
    durable_users.load(loom::sync::atomic::Ordering::Acquire)
}

/// A queue of `capacity` events and a one-slot ring, with a writer thread applying from the
/// queue that parks as soon as the queue looks empty (`spin_limit(0)`): the set-up of the
/// models where producers race a parking writer.
pub fn parking_writer(
    capacity: usize,
) -> (
    loom::sync::Arc<hourtally::writer::Ingest>,
    loom::sync::Arc<hourtally::ring::Ring>,
    loom::thread::JoinHandle<hourtally::ring::RingWriter>,
) {
    use hourtally::ring::{Ring, RingWriter};
    use hourtally::writer::{Ingest, Writer};
    use loom::sync::Arc;
    let ingest = Arc::new(Ingest::new(capacity));
    let ring = Arc::new(Ring::new(1));
    let writer = Writer::new(ingest.clone(), RingWriter::new(ring.clone())).with_spin_limit(0);
    let writer = loom::thread::spawn(move || writer.run());
    (ingest, ring, writer)
}

/// Yields until the writer has applied `n` events. Only the calling thread may spin while it
/// waits (two spinning threads give loom unbounded executions), and a lost wake-up leaves it
/// here for good, which loom reports through its branch limit.
pub fn wait_applied(ingest: &hourtally::writer::Ingest, n: u64) {
    while ingest.applied() < n {
        loom::thread::yield_now();
    }
}
