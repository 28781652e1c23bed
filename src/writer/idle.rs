//! The writer's turn with an empty queue: the stop, a cut over nothing, a freeze to install,
//! the sink's idle work, then spin, yield and park ([`Idle`](super::Idle); the park handshake
//! is in the parent's module doc).

use super::{Ingest, Writer, CAPTURE_BUDGET, QUIET, STALLED_NAP};
use crate::sync::{sleep_thread, spin_loop, yield_thread};

/// The writer's state between turns with an empty queue; a batch resets it.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    /// Turns with an empty queue so far: spins up to `spin_limit`, then as many yields, then
    /// a park (or a nap).
    turns: u32,
    /// The queue stayed empty for [`QUIET`]: the next sleep first makes writes durable.
    quiet: bool,
}

impl Writer {
    /// One turn with an empty queue. `true` once the stop is complete (the queue drained,
    /// the last snapshot taken, the sink finished): the loop returns the ring.
    pub(super) fn idle_turn<const FENCE: bool>(
        &mut self,
        ingest: &Ingest,
        w: &mut Waiting,
    ) -> bool {
        if ingest.stop_requested() {
            if ingest.queue.is_empty() {
                if self.sink.is_some() {
                    // Finish a capture under way, then take the stopping one.
                    self.snapshot_turn(usize::MAX, true);
                    self.snapshot_turn(usize::MAX, true);
                }
                if let Some(sink) = self.sink.as_mut() {
                    sink.finish();
                }
                return true;
            }
            return false;
        }
        if w.turns == 0 && self.cuts {
            // Everything popped so far is durable: a cut over an empty queue completes at
            // once and releases producers whose events went out in the last batch.
            // Takes a waiting producer's request (module doc) before announcing.
            ingest.take_cut_request();
            self.open_cut(ingest);
            self.advance_cut(ingest, 0);
        }
        if w.turns == 0 {
            // A freeze finished while the queue is empty (its thread woke us): install it.
            if let Some(freezer) = self.freezer.as_mut() {
                freezer.turn(&mut self.ring);
            }
        }
        if w.turns == 0 && self.sink.is_some() {
            self.snapshot_turn(CAPTURE_BUDGET, false);
            if let Some(sink) = self.sink.as_mut() {
                sink.idle(false);
            }
        }
        if w.turns < self.spin_limit {
            w.turns += 1;
            // Exponential backoff: 2, 4 … 64 pause hints between two looks at the queue,
            // so an idle writer does not keep pulling the queue's cache lines away from
            // producers on other cores (about 25 µs in all before it starts yielding).
            for _ in 0..1u32 << w.turns.min(6) {
                spin_loop();
            }
            return false;
        }
        if w.turns < 2 * self.spin_limit {
            w.turns += 1;
            yield_thread();
            return false;
        }
        // About to sleep: finish a capture under way (nothing else is waiting), then
        // install a freeze that waited for it: its thread woke us already, and nothing
        // else may come to wake us again.
        self.snapshot_turn(usize::MAX, false);
        if let Some(freezer) = self.freezer.as_mut() {
            freezer.turn(&mut self.ring);
        }
        let mut nap = None;
        if let Some(sink) = self.sink.as_mut() {
            sink.idle(w.quiet);
            w.quiet = false;
            if sink.stalled() {
                // Parking could wait forever (POSTs are refused meanwhile, so nothing may
                // come to wake it): nap, then retry. Producers see `idle == false`.
                sleep_thread(STALLED_NAP);
                w.turns = 0;
                return false;
            }
            if sink.unsynced() {
                // Sleep at most QUIET: if the queue is still empty then, sync.
                nap = Some(QUIET);
            }
        }
        // The writer half of the park handshake (module doc).
        let slept = nap.map(|_| std::time::Instant::now());
        ingest.park_when_idle::<FENCE>(self.cuts, nap);
        w.quiet = slept.is_some_and(|t| t.elapsed() >= QUIET) && ingest.queue.is_empty();
        w.turns = 0;
        false
    }
}
