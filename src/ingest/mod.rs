//! What producers (the HTTP edge) and the writer share: the bounded queue, the shutdown
//! gate, the writer's idle flag and parker, its progress marker and its durable cuts.
//!
//! The protocols over these fields (park / unpark, shutdown, progress, durable cuts) are
//! walked through in the [`writer`](crate::writer) module's doc, with both halves side by
//! side; the producer halves live here, the writer halves in `Writer::run`.

use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::event::Event;
use crate::queue::Queue;
use crate::sync::Parker;
use crate::sync::{fence, yield_thread, AtomicBool, AtomicU64, AtomicUsize, Ordering};

mod refusals;

pub use refusals::Refusals;

/// Gate bit: set once shutdown has begun.
pub(crate) const CLOSED: usize = 1;
/// Gate unit: one producer inside.
const INSIDE: usize = 2;

/// Why a push was refused. The event was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The queue is full: the writer cannot keep up.
    #[error("queue full")]
    Full,
    /// Shutdown has begun; no more events are taken.
    #[error("shutting down")]
    Closed,
}

/// What producers and the writer share.
#[derive(Debug)]
pub struct Ingest {
    /// Accepted events, oldest first.
    pub(crate) queue: Queue<Event>,
    /// `INSIDE` × producers inside `push`, plus `CLOSED` once shutdown began. Padded: every
    /// producer writes it.
    pub(crate) gate: CachePadded<AtomicUsize>,
    /// True while the writer is parked or about to park. Padded: every producer reads it, and
    /// it changes only when the writer goes idle or wakes.
    pub(crate) idle: CachePadded<AtomicBool>,
    /// Set by shutdown once the gate is closed and empty: the writer drains and exits.
    pub(crate) stop: AtomicBool,
    /// Where the writer sleeps.
    pub(crate) parker: Parker,
    /// Progress marker: events taken off the queue and applied (counted, dropped as sealed, or
    /// refused: `Refusals`),
    /// stored after the ring was published.
    pub(crate) applied: CachePadded<AtomicU64>,
    /// The durable cut the writer has announced (module doc). Padded: producers read it.
    pub(crate) cut: CachePadded<AtomicU64>,
    /// The highest cut whose events are all durable.
    pub(crate) durable: CachePadded<AtomicU64>,
    /// Set by a producer waiting for a cut; the writer takes it and makes one (module doc).
    pub(crate) want_cut: CachePadded<AtomicBool>,
    /// With `--fsync always`: what the writer refused of each connection slot's events.
    pub refusals: Option<Refusals>,
}

impl Ingest {
    /// A new ingest path with a queue of `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: Queue::new(capacity),
            gate: CachePadded::new(AtomicUsize::new(0)),
            idle: CachePadded::new(AtomicBool::new(false)),
            stop: AtomicBool::new(false),
            parker: Parker::new(),
            applied: CachePadded::new(AtomicU64::new(0)),
            cut: CachePadded::new(AtomicU64::new(0)),
            durable: CachePadded::new(AtomicU64::new(0)),
            want_cut: CachePadded::new(AtomicBool::new(false)),
            refusals: None,
        }
    }

    /// Keeps [`Refusals`] for connection slots `1..slots` (`--fsync always`).
    pub fn with_refusals(mut self, slots: usize) -> Self {
        self.refusals = Some(Refusals::new(slots));
        self
    }

    /// Queues `event` for the writer. `Ok` means it will be applied, even if shutdown follows.
    #[inline]
    pub fn push(&self, event: Event) -> Result<(), PushError> {
        self.producer()?.push(event)
    }

    /// Negative control for the loom models: `push` without the producer's SeqCst fence in
    /// the park handshake. Wrong; compiled only under `--cfg hourtally_loom`.
    #[cfg(hourtally_loom)]
    #[doc(hidden)]
    pub fn push_without_fence(&self, event: Event) -> Result<(), PushError> {
        self.producer_impl::<false>()?.push(event)
    }

    /// Enters the shutdown gate for a run of pushes (a connection's batch of POSTs): the
    /// gate's two read-modify-writes and the park handshake's fence are paid once per run
    /// instead of once per event. `Err(Closed)` once shutdown has begun.
    ///
    /// While a [`Producer`] lives, shutdown waits for it (`close` spins until the gate is
    /// empty): hold one only across work that never waits, and drop it before anything
    /// that could (a coroutine's yield, a read, a disk or log wait).
    #[inline]
    pub fn producer(&self) -> Result<Producer<'_>, PushError> {
        self.producer_impl::<true>()
    }

    /// [`producer`](Self::producer) whose events carry source `src` ([`Refusals`]).
    #[inline]
    pub fn producer_for(&self, src: u16) -> Result<Producer<'_>, PushError> {
        let mut producer = self.producer_impl::<true>()?;
        producer.src = src;
        Ok(producer)
    }

    /// `producer`; `FENCE == false` only for the loom negative control.
    #[inline(always)]
    fn producer_impl<const FENCE: bool>(&self) -> Result<Producer<'_, FENCE>, PushError> {
        // Relaxed: a fast path for refusals after shutdown, so that a stream of them does
        // not keep the gate count from reaching zero; the RMW below has the last word.
        if self.gate.load(Ordering::Relaxed) & CLOSED != 0 {
            return Err(PushError::Closed);
        }
        // SeqCst: the gate's increments and shutdown's `fetch_or(CLOSED)` are RMWs on one
        // location, so they are totally ordered anyway; SeqCst keeps the argument short.
        // Either shutdown's RMW comes first and we see CLOSED, or ours does and shutdown
        // waits for our decrement.
        let gate = self.gate.fetch_add(INSIDE, Ordering::SeqCst);
        if gate & CLOSED != 0 {
            // Release: pairs with shutdown's Acquire wait; nothing was pushed, but keep
            // every exit from the gate alike.
            self.gate.fetch_sub(INSIDE, Ordering::Release);
            return Err(PushError::Closed);
        }
        Ok(Producer {
            ingest: self,
            pushed: false,
            src: 0,
        })
    }

    /// Begins shutdown: refuses new pushes, waits for pushes in flight, then tells the writer
    /// to drain the queue and exit. Call from an OS thread (it spins, then yields).
    pub fn close(&self) {
        // SeqCst: see `push`.
        self.gate.fetch_or(CLOSED, Ordering::SeqCst);
        // Acquire: pairs with each producer's Release decrement, so every push that got in
        // happens-before the `stop` store below.
        while self.gate.load(Ordering::Acquire) != CLOSED {
            yield_thread();
        }
        // Release: a writer that sees `stop` (Acquire) sees every push.
        self.stop.store(true, Ordering::Release);
        // The token makes this wake-up impossible to lose, whatever the writer is doing.
        self.parker.unpark();
    }

    /// Whether shutdown has begun.
    pub fn is_closed(&self) -> bool {
        // Relaxed: a hint for metrics and readiness; push() decides with its own RMW.
        self.gate.load(Ordering::Relaxed) & CLOSED != 0
    }

    /// The progress marker: events the writer has applied (counted, dropped, or refused). A ring read
    /// after this load includes at least that many events.
    pub fn applied(&self) -> u64 {
        // Acquire: pairs with the writer's Release store after it published the ring.
        self.applied.load(Ordering::Acquire)
    }

    /// After a successful push: the durable cut that will cover it (module doc). The event is
    /// durable once [`durable_cut`](Self::durable_cut) reaches this.
    pub fn durability_ticket(&self) -> u64 {
        // SeqCst fence: the producer half of the durable-cut handshake (module doc), between
        // the push and the load of `cut`.
        fence(Ordering::SeqCst);
        // Relaxed: ordered after the push by the fence.
        self.cut.load(Ordering::Relaxed) + 1
    }

    /// Asks the popper (the writer, or the cluster's publisher) for a durable cut after this
    /// instant, and wakes it (`writer` module doc). Call after taking a ticket, before
    /// waiting for it.
    pub fn request_cut(&self) {
        // Release: the ticket's load of `cut` happens before the popper's next announcement,
        // once its Acquire swap reads this (module doc).
        self.want_cut.store(true, Ordering::Release);
        // Always unpark (not only when `idle` says so): the parker's lock orders this store
        // before whatever the popper does after its next park returns, so the request cannot
        // be missed whatever the popper was doing. A wait for a cut costs a sync or a log
        // round trip; one lock more per wait is nothing beside it.
        self.parker.unpark();
    }

    /// The highest cut whose events are all durable.
    pub fn durable_cut(&self) -> u64 {
        // Acquire: pairs with the writer's Release store, made after the sink's sync.
        self.durable.load(Ordering::Acquire)
    }

    /// The popper's half of the durable-cut handshake (`writer` module doc): announces the
    /// next cut and returns it with the number of queued events it covers. Only the one
    /// thread that pops the queue calls this.
    pub(crate) fn announce_cut(&self) -> (u64, usize) {
        // Relaxed: the popper is the cut's only writer; it reads its own last store.
        let k = self.cut.load(Ordering::Relaxed) + 1;
        // Relaxed: ordered before the length read by the fence.
        self.cut.store(k, Ordering::Relaxed);
        // SeqCst fence: the popper half of the durable-cut handshake (module doc).
        fence(Ordering::SeqCst);
        (k, self.queue.len())
    }

    /// Cut `k` is complete: every event it covers was popped and made durable (or, in a
    /// cluster, is in the log). Only the popping thread calls this, in increasing `k`.
    pub(crate) fn complete_cut(&self, k: u64) {
        // Release: pairs with `durable_cut`'s Acquire; the sink's sync (or the log's ack)
        // came before.
        self.durable.store(k, Ordering::Release);
    }

    /// Takes a producer's request for a cut (`writer` module doc), if one is pending.
    pub(crate) fn take_cut_request(&self) -> bool {
        // Relaxed: a look before the swap, so that an idle popper does not write the line
        // producers read on every turn. A request it misses here is seen after the next
        // park: `request_cut` unparks, and the parker's lock orders its store before it.
        if !self.want_cut.load(Ordering::Relaxed) {
            return false;
        }
        // Acquire: pairs with `request_cut`'s Release store, which follows the producer's
        // read of `cut`; the cut announced after this swap is therefore a later one.
        self.want_cut.swap(false, Ordering::Acquire)
    }

    /// The popper's half of the park handshake (`writer` module doc): announces itself
    /// idle and sleeps unless the queue has events, `stop` is set, or (when `cuts`) a
    /// producer asked for a cut. With `timeout`, the sleep ends after it at the latest (the
    /// popper re-checks the queue as after any wake-up). `FENCE == false` only for the loom
    /// negative control.
    #[inline(always)]
    pub(crate) fn park_when_idle<const FENCE: bool>(&self, cuts: bool, timeout: Option<Duration>) {
        // Relaxed: ordered before the emptiness check by the SeqCst fence.
        self.idle.store(true, Ordering::Relaxed);
        if FENCE {
            fence(Ordering::SeqCst);
        }
        // Acquire on `stop`: pairs with `close`'s Release store; a `close` that set it after
        // this load leaves a token in the parker, so park returns at once.
        // Relaxed on `want_cut`: ordered after `idle` by the fence (module doc).
        if self.queue.is_empty()
            && !self.stop.load(Ordering::Acquire)
            && !(cuts && self.want_cut.load(Ordering::Relaxed))
        {
            match timeout {
                Some(timeout) => self.parker.park_timeout(timeout),
                None => self.parker.park(),
            }
        }
        // Relaxed: a stale `true` seen by a producer costs one spare unpark, nothing more.
        self.idle.store(false, Ordering::Relaxed);
    }

    /// Wakes the popping thread if it sleeps, or makes its next sleep return at once (the
    /// parker keeps a token). For the popper's other sources of work: the log's outcomes
    /// and timer ticks of a publisher, a skipped message of the writer's feed, a frozen hour
    /// to install (`freezer`).
    pub fn wake_popper(&self) {
        self.parker.unpark();
    }

    /// Whether shutdown has told the popper to drain and stop.
    pub(crate) fn stop_requested(&self) -> bool {
        // Acquire: pairs with `close`'s Release store; every push happened before it.
        self.stop.load(Ordering::Acquire)
    }

    /// Events queued and not yet applied.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }
}

/// A producer inside the shutdown gate ([`Ingest::producer`]). Its events are queued as it
/// pushes them; the writer is woken, if it sleeps, when the producer leaves (is dropped).
#[derive(Debug)]
pub struct Producer<'a, const FENCE: bool = true> {
    ingest: &'a Ingest,
    /// Whether any push went in, so that leaving must check whether the writer sleeps.
    pushed: bool,
    /// The source its events carry (`Event::src`; 0: none).
    src: u16,
}

impl<const FENCE: bool> Producer<'_, FENCE> {
    /// Queues `event`. `Ok` means it will be applied, even if shutdown follows; `Full` means
    /// it was not taken.
    #[inline]
    pub fn push(&mut self, event: Event) -> Result<(), PushError> {
        let event = Event {
            src: self.src,
            ..event
        };
        if self.ingest.queue.push(event).is_err() {
            // A run longer than the free room in the queue: the writer may be asleep with
            // the run's earlier events, which it must drain for any room to come back. Wake
            // it now, not only when the run ends, or the rest of the run is refused against
            // an idle writer.
            if self.pushed {
                self.wake_writer();
            }
            return Err(PushError::Full);
        }
        self.pushed = true;
        Ok(())
    }

    /// The producer half of the park handshake (`writer` module doc), over every push of
    /// the run so far.
    #[inline]
    fn wake_writer(&self) {
        // SeqCst fence: orders the run's pushes before the look at `idle`, against the
        // writer's fence between its `idle` store and its look at the queue.
        if FENCE {
            fence(Ordering::SeqCst);
        }
        // Relaxed: ordered after the pushes by the fence above, which is all it needs.
        if self.ingest.idle.load(Ordering::Relaxed) {
            self.ingest.parker.unpark();
        }
    }
}

impl<const FENCE: bool> Drop for Producer<'_, FENCE> {
    /// Leaves the gate. Where the writer can be meanwhile: busy (it will pop our events);
    /// about to park, between its `idle` store and its look at the queue (the two fences
    /// order its store and our pushes: either it sees our events and does not park, or we
    /// see `idle` and unpark it); or parked (we see `idle` and unpark it). The events pushed
    /// early in a run wait for the wake-up at its end, a few microseconds at most: a run
    /// never waits (see [`Ingest::producer`]).
    #[inline]
    fn drop(&mut self) {
        if self.pushed {
            self.wake_writer();
        }
        // Release: every push of the run happens-before shutdown's Acquire load that sees the
        // gate empty, hence before `stop` is set and before the writer's final drain.
        self.ingest.gate.fetch_sub(INSIDE, Ordering::Release);
    }
}
