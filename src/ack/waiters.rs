//! POSTs waiting for their events to be durable: on disk (`--fsync always`) or in the
//! cluster's log (`--ack log`).
//!
//! A connection that took POSTs asks the ingest path for a durability ticket (the durable
//! cut that will cover them, `writer` module doc) and parks its coroutine, never its OS
//! thread, until the cut is reported complete: by the journal after each sync, or by the
//! cluster's outbox after the log's acknowledgement; either wakes every waiter whose cut is
//! done.
//!
//! The race between a waiter registering and the writer completing the cut is Dekker's
//! pattern again: the waiter pushes itself, then (SeqCst fence) reads `durable`; the writer
//! stores `durable`, then (SeqCst fence, in `wake`) scans the waiters. One of the two sees
//! the other. A park also times out after [`RECHECK`], so even a lost wake-up costs only a
//! little latency, never an answer.

use std::time::{Duration, Instant};

use crossbeam_queue::SegQueue;
use may::sync::Blocker;

use crate::ingest::Ingest;
use crate::sync::{fence, Arc, Ordering};

/// A parked waiter re-checks at least this often.
pub const RECHECK: Duration = Duration::from_millis(50);
/// The shortest park (see `wait`).
pub const MIN_PARK: Duration = Duration::from_millis(2);

/// The coroutines waiting for a durable cut.
#[derive(Debug, Default)]
pub struct DurableWaiters {
    waiting: SegQueue<(u64, Arc<Blocker>)>,
}

impl DurableWaiters {
    /// Parks the calling coroutine until cut `ticket` is durable (true), or `timeout` passes
    /// (false).
    pub fn wait(&self, ingest: &Ingest, ticket: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if ingest.durable_cut() >= ticket {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let blocker = Arc::new(Blocker::new(false));
            self.waiting.push((ticket, blocker.clone()));
            // The cut may still have to be made: ask for it (and wake an idle writer).
            ingest.request_cut();
            // SeqCst fence: the waiter half of the handshake (module doc).
            fence(Ordering::SeqCst);
            if ingest.durable_cut() >= ticket {
                return true;
            }
            // Never a very short park: may 0.3.51 arms the timer before it registers the
            // coroutine, so a timer that fires in between (seen with 155 µs left) wakes
            // nobody, and the coroutine sleeps until an unpark that, with the disk or the log
            // down, never comes.
            let _ = blocker.park(Some(left.clamp(MIN_PARK, RECHECK)));
        }
    }

    /// Wakes every waiter whose cut is at most `durable` (the writer, after storing it).
    pub fn wake(&self, durable: u64) {
        // SeqCst fence: the writer half of the handshake (module doc).
        fence(Ordering::SeqCst);
        for _ in 0..self.waiting.len() {
            let Some((ticket, blocker)) = self.waiting.pop() else {
                break;
            };
            if ticket <= durable {
                blocker.unpark();
            } else {
                self.waiting.push((ticket, blocker));
            }
        }
    }
}
