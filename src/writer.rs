//! The writer: one thread that drains the queue and applies events to the ring, in order.
//!
//! [`Ingest`] is everything producers (the HTTP edge) and the writer share: the bounded queue,
//! a gate that shutdown closes, the writer's idle flag and parker, and the writer's progress
//! marker. [`Writer::run`] is the writer's loop.
//!
//! ## Three handshakes
//!
//! **Park / unpark.** An idle writer must not burn a core, and a producer must not pay a
//! system call per event. So the writer spins a little ([`Idle::Spin`], with a core of its
//! own) or not at all ([`Idle::Park`], sharing one), then announces itself idle and parks; a
//! producer unparks it only if it sees the idle flag. This is Dekker's pattern:
//!
//! ```text
//! producer                          writer
//! queue.push(e)                     idle.store(true)
//! fence(SeqCst)                     fence(SeqCst)
//! if idle.load(): unpark()          if queue.is_empty(): park()
//! ```
//!
//! The two SeqCst fences are totally ordered. If the producer's comes first, the writer's
//! emptiness check (after its fence) sees the push and does not park. If the writer's comes
//! first, the producer's load (after its fence) sees `idle == true` and unparks. The parker
//! keeps a token, so an unpark that lands before `park()` is not lost. Either way no event is
//! left in the queue of a sleeping writer. The loom models check this with a port of the real
//! queue's algorithm, and that removing either fence loses a wake-up.
//!
//! A producer may push a run of events (`Ingest::producer`: a connection's batch of POSTs)
//! and run its half once, after the last push: one fence covers every push before it, so
//! the argument is the same with `queue.push(e)` read as "the run's pushes". The writer may
//! park after the run's first push; it is woken when the run ends, microseconds later
//! (`loom_producer_run_vs_park_and_close.rs`).
//!
//! **Shutdown.** Every accepted event must be applied before the process exits. A producer
//! enters a gate (a counter of producers inside, with a closed bit) around its push (or its
//! run of pushes); shutdown
//! closes the gate, waits until no producer is inside, and only then sets `stop`. A writer
//! that sees `stop` therefore sees every push that will ever happen, drains the queue and
//! exits.
//!
//! **Progress.** After each batch the writer publishes the ring and then stores the number of
//! events it has taken off the queue with Release. A thread that loads that marker with
//! Acquire and sees `n` then reads a ring that includes the first `n` events.
//!
//! **Durable cuts** (with `--fsync always`: a 204 only once its event is on disk). A producer
//! cannot know its event's position in the queue, so the writer cuts the stream instead. It
//! announces cut `k` (`cut`), then reads the queue's length `L`: the first `L` events it pops
//! from then on are every event that was in the queue at that instant (one popper, FIFO).
//! Once it has popped them and the sink has made them durable, it stores `durable = k`. A
//! producer pushes, then reads `cut = a`, and waits for `durable ≥ a + 1`:
//!
//! ```text
//! producer                          writer
//! queue.push(e)                     cut.store(k)
//! fence(SeqCst)                     fence(SeqCst)
//! a = cut.load()                    L = queue.len()
//! wait durable ≥ a + 1              pop L, make durable, durable.store(k)
//! ```
//!
//! The two fences are totally ordered. If the producer's comes first, the writer's length
//! read (after its fence) sees the push: it counts `e`, unless `e` was popped already, in an
//! earlier batch made durable before cut `k` began. If the writer's comes first, the
//! producer's load sees `k` or later, so it waits for a later cut. Either way, when
//! `durable ≥ a + 1`, `e` is durable.
//!
//! A cut after the producer's read must also come at all: a writer that goes idle makes one
//! (over whatever is left, often nothing) and may then park. So a waiting producer asks for
//! one ([`Ingest::request_cut`]): it sets `want_cut`, then unparks the writer, whatever it
//! is doing. The parker's lock orders the store before everything the writer does after
//! its next park returns (which a token left by this unpark makes certain to happen), so
//! the writer sees the request on its next idle turn at the latest; and it does not park
//! while `want_cut` is set. (An unpark only when the writer looked idle, through the park
//! handshake's fences, would save a lock per wait; a wait costs a sync, so the simpler
//! argument wins.) The cluster's publisher takes requests the same way. A writer that takes the request
//! (an Acquire swap that reads the producer's Release store, which follows its read of
//! `cut`) announces its next cut after it, so the producer's read happens before that store
//! and cannot have seen it: the new cut is at least `a + 1`.
//!
//! **Refused groups** (`--fsync always`, with [`Refusals`](crate::ingest::Refusals)). A
//! ticket bounds a producer's cut from above only (its events may sit in an earlier cut),
//! so "cut `k` failed" cannot say whose events failed. Instead each event carries its
//! connection's slot (`Event::src`), and when the sink refuses a batch (the journal could
//! not make it durable, and took it back whole) the writer counts each of its events
//! refused for its slot, does not apply them, and remembers the slot's current run as
//! poisoned: the run's later events are refused too, so a run's refused events are its last.
//! It counts before it completes the cut (Release), and a connection reads the count once its
//! ticket's cut is complete (Acquire), so it sees every refusal of its run, and answers
//! `503` for exactly that many of its last POSTs (`loom_refused_group_vs_waiter.rs`, with a
//! control that reads the count too early). A connection begins a run (bumps its slot's run
//! number) only once its earlier runs are resolved, so the run number the writer reads for
//! an event is that event's run; one that gives up waiting retires its slot (`retire`), so no
//! later connection takes a late refusal of its events for its own (connections in a retired
//! slot go untagged). A batch holding an untagged event cannot be refused: the journal holds
//! and retries it as before.

mod idle;

use crate::event::Event;
use crate::freezer::Freezer;
use crate::histogram::BatchStats;
pub use crate::ingest::{Ingest, PushError};
use crate::ring::{RingImage, RingWriter};
use crate::sync::Ordering;
use idle::Waiting;

/// Default queue capacity (`--queue-capacity`): 1 Mi events, 24 MiB.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1 << 20;

/// Most events applied between two publishes of the ring.
pub const BATCH: usize = 1024;

/// Where the writer hands every batch before applying it: the journal, in a server with a
/// data directory. Called on the writer thread only.
pub trait Sink: Send + std::fmt::Debug {
    /// A batch taken off the queue, in queue order, before it is applied. `refusable`: every
    /// event carries a source whose connection can be told (`ingest::Refusals`), so a sink
    /// that cannot make the batch durable may refuse it: return `false` having kept nothing of
    /// it, and the writer neither applies it nor lets it be answered `204`. Otherwise `true`.
    fn batch(&mut self, events: &[Event], refusable: bool) -> bool;
    /// The queue is empty: the writer is about to idle; `deep` when it is about to park (it
    /// may sleep for long: make what was written durable now).
    fn idle(&mut self, deep: bool);
    /// The writer stops after its last batch: make everything durable.
    fn finish(&mut self);
    /// Whether to begin capturing the ring for a snapshot now; if so, the journal position
    /// the capture covers. `stopping`: the writer is about to stop.
    fn snapshot_due(&mut self, stopping: bool) -> Option<u64>;
    /// A finished capture, to be written.
    fn snapshot(&mut self, image: RingImage);
    /// Durable cut `k` is complete (with `with_durable_cuts`): wake whoever waits for it.
    fn durable(&mut self, k: u64);
    /// The batch last handed to [`batch`](Sink::batch) is applied and the ring published.
    fn published(&mut self) {}
    /// Whether the sink has work it could not do (a failed write to retry): the writer then
    /// naps instead of parking, and calls [`idle`](Sink::idle) again after each nap.
    fn stalled(&self) -> bool;
    /// Whether a deep [`idle`](Sink::idle) would have work (writes to sync): the writer then
    /// parks for at most [`QUIET`] and, if no event came meanwhile, calls `idle(true)`.
    fn unsynced(&self) -> bool {
        false
    }
}

/// How long the queue must stay empty before the writer counts as idle and makes what it
/// wrote durable (`Sink::idle(true)`). A busy writer syncs every `--fsync-interval` instead:
/// it goes idle for microseconds between events, and a sync each time would be thousands a
/// second (BENCHMARKS.md, "Writer idle").
pub const QUIET: std::time::Duration = std::time::Duration::from_millis(1);

/// Fingerprints a capture copies between two batches: the writer's extra work per turn while
/// a snapshot is taken.
pub use crate::ring::capture::CAPTURE_BUDGET;

/// How the writer waits when the queue is empty (`--writer-idle`; ARCHITECTURE.md, "Writer
/// idle").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// Spin with backoff, then yield, then park. For a writer with a core of its own: events
    /// arriving while it spins cost their producer no wake-up.
    Spin,
    /// Park as soon as the queue is empty. For a writer that shares a core with an HTTP
    /// worker: spinning or yielding there takes the core from a thread that would fill the
    /// queue (on one core, the only one).
    Park,
}

impl Idle {
    /// `Park` when the writer cannot have a core of its own: when the HTTP workers are at
    /// least as many as the CPUs the process may use.
    pub fn auto(workers: usize, cpus: usize) -> Self {
        if workers >= cpus {
            Idle::Park
        } else {
            Idle::Spin
        }
    }
}

/// Spin turns of [`Idle::Spin`] (then as many yields).
const SPIN_TURNS: u32 = 16;

/// How long a writer with a stalled sink naps between retries.
pub const STALLED_NAP: std::time::Duration = std::time::Duration::from_millis(50);

/// The writer's loop and its state.
#[derive(Debug)]
pub struct Writer {
    ingest: crate::sync::Arc<Ingest>,
    ring: RingWriter,
    /// Where batches go before they are applied (the journal), if anywhere.
    sink: Option<Box<dyn Sink>>,
    /// The batch being applied (reused).
    batch: Vec<Event>,
    /// Most events in one batch.
    batch_max: usize,
    /// Whether the writer keeps durable cuts (module doc): `--fsync always`.
    cuts: bool,
    /// The cut under way: its number and the events still to pop before it is complete.
    open_cut: Option<(u64, usize)>,
    /// Spin turns (with backoff) with an empty queue before yielding, then as many yields
    /// before parking.
    spin_limit: u32,
    /// Where each batch's size and time go, for `/metrics` (if anywhere).
    stats: Option<crate::sync::Arc<BatchStats>>,
    /// With refusals: by source, the run the writer refused an event of (0: none); its later
    /// events are refused too.
    poisoned: Vec<u64>,
    /// Freezes the hours that are over, if given (`ring::freeze`).
    freezer: Option<Freezer>,
}

impl Writer {
    pub fn new(ingest: crate::sync::Arc<Ingest>, ring: RingWriter) -> Self {
        Self {
            ingest,
            ring,
            sink: None,
            batch: Vec::with_capacity(BATCH),
            batch_max: BATCH,
            cuts: false,
            open_cut: None,
            spin_limit: SPIN_TURNS,
            stats: None,
            poisoned: Vec::new(),
            freezer: None,
        }
    }

    /// Freezes the ring's hours that are over on `freezer`'s thread, a turn after each batch.
    pub fn with_freezer(mut self, freezer: Freezer) -> Self {
        self.freezer = Some(freezer);
        self
    }

    /// Records every batch's size and the time from taking it to publishing it in `stats`.
    pub fn with_stats(mut self, stats: crate::sync::Arc<BatchStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Hands every batch to `sink` before it is applied.
    pub fn with_sink(mut self, sink: Box<dyn Sink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Keeps durable cuts (module doc), for a sink that makes each batch durable before
    /// `batch` returns, with batches of up to `batch_max` events (one sync covers a batch).
    pub fn with_durable_cuts(mut self, batch_max: usize) -> Self {
        self.cuts = true;
        self.batch_max = batch_max.max(1);
        self
    }

    /// With [`Refusals`](crate::ingest::Refusals): takes out of the batch, refused, the events
    /// of runs the writer has refused an event of (so that a run's refused events are its
    /// last). Returns whether the rest may be refused (every event carries a source).
    fn refuse_poisoned(&mut self, ingest: &Ingest) -> bool {
        let Some(refusals) = ingest.refusals.as_ref() else {
            return false;
        };
        let poisoned = &mut self.poisoned;
        if poisoned.len() != refusals.len() {
            poisoned.resize(refusals.len(), 0);
        }
        let mut tagged = true;
        self.batch.retain(|e| {
            let src = usize::from(e.src);
            if e.src == 0 || src >= poisoned.len() {
                tagged = false;
                return true;
            }
            if poisoned[src] != 0 && poisoned[src] == refusals.run(e.src) {
                refusals.refuse(e.src);
                return false;
            }
            true
        });
        tagged
    }

    /// The sink refused the batch: every event in it is refused, and its run poisoned.
    fn refuse_batch(&mut self, ingest: &Ingest) {
        if let Some(refusals) = ingest.refusals.as_ref() {
            for e in &self.batch {
                debug_assert!(e.src != 0, "refused a batch with an untagged event");
                refusals.refuse(e.src);
                self.poisoned[usize::from(e.src)] = refusals.run(e.src);
            }
        }
        self.batch.clear();
    }

    /// Announces the next cut and reads what it covers (module doc).
    fn open_cut(&mut self, ingest: &Ingest) {
        if !self.cuts || self.open_cut.is_some() {
            return;
        }
        self.open_cut = Some(ingest.announce_cut());
    }

    /// `popped` more events were made durable: completes the cut under way if they were
    /// the last it covers.
    fn advance_cut(&mut self, ingest: &Ingest, popped: usize) {
        let Some((k, left)) = self.open_cut else {
            return;
        };
        let left = left.saturating_sub(popped);
        self.open_cut = Some((k, left));
        // A stalled sink has not made them durable: the cut completes once it recovers.
        if left > 0 || self.sink.as_ref().is_some_and(|s| s.stalled()) {
            return;
        }
        self.open_cut = None;
        ingest.complete_cut(k);
        if let Some(sink) = self.sink.as_mut() {
            sink.durable(k);
        }
    }

    /// Sets how the writer waits for work ([`Idle::Spin`] unless told).
    pub fn with_idle(self, idle: Idle) -> Self {
        self.with_spin_limit(match idle {
            Idle::Spin => SPIN_TURNS,
            Idle::Park => 0,
        })
    }

    /// Sets how long an idle writer spins before it parks (loom models use 0 or 1 to keep the
    /// state space small; 0 is [`Idle::Park`]).
    pub fn with_spin_limit(mut self, spin_limit: u32) -> Self {
        self.spin_limit = spin_limit;
        self
    }

    /// Drains the queue and applies events until shutdown has closed the ingest path and the
    /// queue is empty. Returns the ring writer, with every accepted event applied.
    pub fn run(self) -> RingWriter {
        self.run_impl::<true>()
    }

    /// Negative control for the loom models: `run` without the writer's SeqCst fence in the
    /// park handshake. Wrong; compiled only under `--cfg hourtally_loom`.
    #[cfg(hourtally_loom)]
    #[doc(hidden)]
    pub fn run_without_fence(self) -> RingWriter {
        self.run_impl::<false>()
    }

    /// Between batches: begins a capture when the sink says one is due, then copies about
    /// `budget` more fingerprints of the capture under way and hands the image over once
    /// complete.
    fn snapshot_turn(&mut self, budget: usize, stopping: bool) {
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        if !self.ring.is_capturing() {
            match sink.snapshot_due(stopping) {
                Some(covered) => self.ring.begin_capture(covered),
                None => return,
            }
        }
        if let Some(image) = self.ring.capture_step(budget) {
            sink.snapshot(image);
        }
    }

    /// `run`; `FENCE == false` only for the loom negative control.
    fn run_impl<const FENCE: bool>(mut self) -> RingWriter {
        // A handle of our own, so that `self` stays free for `snapshot_turn`.
        let ingest = self.ingest.clone();
        let ingest = &*ingest;
        let mut applied: u64 = 0;
        let mut waiting = Waiting::default();
        loop {
            self.batch.clear();
            if !ingest.queue.is_empty() {
                self.open_cut(ingest);
            }
            while self.batch.len() < self.batch_max {
                let Some(event) = ingest.queue.pop() else {
                    break;
                };
                self.batch.push(event);
            }
            let n = self.batch.len();
            if n > 0 {
                let started = self.stats.as_ref().map(|_| std::time::Instant::now());
                let refusable = self.refuse_poisoned(ingest);
                // Journal first: the journal order is the apply order.
                if let Some(sink) = self.sink.as_mut() {
                    if !self.batch.is_empty() && !sink.batch(&self.batch, refusable) {
                        self.refuse_batch(ingest);
                    }
                }
                self.advance_cut(ingest, n);
                // A sealed drop is counted by the ring (`Ring::sealed_drops`).
                self.ring.apply_batch(&self.batch);
                self.ring.publish();
                if let (Some(stats), Some(started)) = (&self.stats, started) {
                    stats.record(n, started.elapsed());
                }
                self.snapshot_turn(CAPTURE_BUDGET, false);
                if let Some(freezer) = self.freezer.as_mut() {
                    freezer.turn(&mut self.ring);
                }
                applied += n as u64;
                // Release: the progress marker; see the module doc. Single writer: a plain
                // store of our own count, no RMW needed.
                ingest.applied.store(applied, Ordering::Release);
                if let Some(sink) = self.sink.as_mut() {
                    sink.published();
                }
                waiting = Waiting::default();
                continue;
            }
            // The queue was empty.
            if self.idle_turn::<FENCE>(ingest, &mut waiting) {
                return self.ring;
            }
        }
    }
}

#[cfg(all(test, not(hourtally_loom)))]
#[path = "writer_tests.rs"]
mod tests;
