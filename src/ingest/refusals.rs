//! With `--fsync always`, what the writer refused of each connection slot's events, so that
//! each connection answers `503` to exactly the POSTs whose events a refused group held.

use crate::sync::{AtomicBool, AtomicU64, Ordering};

/// With `--fsync always`, what the writer refused of each connection slot's events: a group
/// the disk would not take is not applied, and the POSTs whose events were in it get `503`
/// (`writer` module doc, "Refused groups").
///
/// A connection bumps its slot's `run` before each run of pushes (a read's batch of
/// requests) and reads `refused`; its events carry the slot (`Event::src`). Once the writer
/// refuses one event of a run, it refuses every later event of that run too (it remembers the
/// run as poisoned), so a run's refused events are always its last: the connection, once its
/// durable cut is complete, learns how many from `refused` and answers exactly those `503`.
#[derive(Debug)]
pub struct Refusals {
    slots: Box<[RefusalSlot]>,
}

/// One connection slot's side of [`Refusals`].
#[derive(Debug, Default)]
struct RefusalSlot {
    /// The slot's current run, bumped by its connection before the run's pushes (64 bits: it
    /// never wraps back to 0, which the writer reads as "no run poisoned").
    run: AtomicU64,
    /// Events of this slot the writer refused, ever; only the writer adds to it.
    refused: AtomicU64,
    /// Set by a connection that gave up waiting for its events (a sync that hangs): some may
    /// still be unresolved, so no later connection may take the slot's counts for its own.
    retired: AtomicBool,
}

impl Refusals {
    /// Room for sources `1..slots` (source 0 is untagged), at most `1..=u16::MAX`.
    pub fn new(slots: usize) -> Self {
        let slots = slots.min(usize::from(u16::MAX) + 1);
        Self {
            slots: (0..slots).map(|_| RefusalSlot::default()).collect(),
        }
    }

    /// Sources this holds (`1..len()`).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether it holds no source.
    pub fn is_empty(&self) -> bool {
        self.slots.len() <= 1
    }

    /// The connection of slot `src` begins a run of pushes: returns the refused count so far,
    /// to subtract from [`refused`](Self::refused) once the run's cut is complete. Call only
    /// once every event of the slot's earlier runs is resolved (their cut complete).
    pub fn begin_run(&self, src: u16) -> u64 {
        let slot = &self.slots[usize::from(src)];
        // Relaxed: the new run number reaches the writer with the run's events: the queue's
        // push (Release) follows this, and the writer reads it after its pop (Acquire).
        slot.run.fetch_add(1, Ordering::Relaxed);
        // Relaxed: every refusal of the earlier runs happened before their cut completed,
        // which this connection saw (Acquire, `Ingest::durable_cut`) before coming here.
        slot.refused.load(Ordering::Relaxed)
    }

    /// Events of slot `src` refused so far. Read after [`Ingest::durable_cut`] reached the
    /// run's ticket: the writer adds before it completes a cut (Release), so every refusal of
    /// the run is seen.
    pub fn refused(&self, src: u16) -> u64 {
        // Relaxed: ordered by the durable cut's Acquire load, as said above.
        self.slots[usize::from(src)].refused.load(Ordering::Relaxed)
    }

    /// Whether slot `src` may tag a new connection's events (not retired).
    pub fn usable(&self, src: u16) -> bool {
        // Relaxed: set by a connection that left the slot (its cell then went back to the
        // registry, and the next admission into it synchronises with that).
        usize::from(src) < self.slots.len()
            && !self.slots[usize::from(src)].retired.load(Ordering::Relaxed)
    }

    /// A connection leaves slot `src` with events possibly unresolved: the slot tags nothing
    /// more (its later connections go untagged).
    pub fn retire(&self, src: u16) {
        // Relaxed: see `usable`.
        self.slots[usize::from(src)]
            .retired
            .store(true, Ordering::Relaxed);
    }

    /// The writer: the run slot `src` is in (read after popping one of its events).
    pub(crate) fn run(&self, src: u16) -> u64 {
        // Relaxed: the connection's bump came before its pushes, and the pop that brought this
        // event synchronised with its push.
        self.slots[usize::from(src)].run.load(Ordering::Relaxed)
    }

    /// The writer refuses one event of slot `src`.
    pub(crate) fn refuse(&self, src: u16) {
        let slot = &self.slots[usize::from(src)];
        // Relaxed: the writer is the only writer of it (a plain store of its own count); the
        // completion of the cut (Release) publishes it.
        slot.refused
            .store(slot.refused.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}
