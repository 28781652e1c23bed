//! Deadlines of connections asleep in `wait_io`, and the sweeper that wakes them.
//!
//! A connection that waits for bytes has a deadline (the rest of a request head or body, or
//! the idle timeout); so has one that waits for room to write its answers, or lingers before
//! a close (`http::conn`). `may` could keep it: a read timeout registers a timer in the worker's
//! timer list on every read that would block, and removes it when the read returns, which is
//! about 335 instructions on each request at pipeline depth 1 (BENCHMARKS.md). Instead each
//! connection writes its deadline into its cell here ([`Alarms::arm`], a plain store that
//! only changes when the deadline does), and one sweeper thread looks at every cell a few
//! times a second ([`Alarms::sweep`]) and wakes the connections whose deadline has passed.
//! A woken connection checks its deadline against its own clock: a wake-up is only ever a
//! hint, so a late, early or spurious one costs a look and nothing else.
//!
//! Cells are the connection registry's (`conns::Ticket::index`), so the table has one per
//! possible connection. The waker of a cell is behind a reader-writer lock: the sweeper reads
//! it to wake, the connection writes it when it starts and when it ends; a connection takes
//! the lock with `try` and a spin, never parking its worker thread.

use crate::sync::{spin_loop, AtomicU64, Ordering, RwLock};

/// How a sleeping connection is woken (for `may`, a `WaitIoWaker`).
pub trait Wake: Send + Sync {
    fn wake(&self);
}

/// A cell's deadline that says "none".
const UNARMED: u64 = 0;

/// Per-connection deadlines and wakers.
#[derive(Debug)]
pub struct Alarms<W> {
    /// Per cell: when to wake its connection (milliseconds of the caller's clock), or
    /// [`UNARMED`].
    due: Box<[AtomicU64]>,
    /// Per cell: how to wake its connection, while one holds the cell.
    wakers: Box<[RwLock<Option<W>>]>,
}

impl<W: Wake> Alarms<W> {
    /// A table of `cells` cells, none armed.
    pub fn new(cells: usize) -> Self {
        Self {
            due: (0..cells).map(|_| AtomicU64::new(UNARMED)).collect(),
            wakers: (0..cells).map(|_| RwLock::new(None)).collect(),
        }
    }

    /// The connection in cell `i` is woken through `waker` from now on.
    pub fn register(&self, i: usize, waker: W) {
        debug_assert!(i < self.wakers.len());
        let mut waker = Some(waker);
        // The sweeper holds the read lock only while it wakes one connection.
        while self.wakers[i]
            .try_with_write(|slot| *slot = waker.take())
            .is_none()
        {
            spin_loop();
        }
    }

    /// The connection in cell `i` has ended: no deadline, no waker. After this returns the
    /// sweeper does not wake through its waker again.
    pub fn unregister(&self, i: usize) {
        debug_assert!(i < self.due.len());
        // Relaxed: a hint (module doc); the lock below is what keeps the old waker unused.
        self.due[i].store(UNARMED, Ordering::Relaxed);
        while self.wakers[i].try_with_write(|slot| *slot = None).is_none() {
            spin_loop();
        }
    }

    /// The connection in cell `i` wants to be woken at `at` (not before; [`UNARMED`] is
    /// never a deadline: `at` is at least 1).
    /// Stores only when the cell holds something else (another deadline, or none since the
    /// sweeper disarmed it), so that a connection that waits many times for one deadline
    /// writes its cell once.
    #[inline]
    pub fn arm(&self, i: usize, at: u64) {
        debug_assert!(i < self.due.len());
        let at = at.max(1);
        // Relaxed (both): the cell publishes nothing but itself; the sweeper acts on
        // whatever value it reads, and the woken connection checks its own clock. A sweep
        // that disarms the cell between the two only makes this store it again.
        if self.due[i].load(Ordering::Relaxed) != at {
            self.due[i].store(at, Ordering::Relaxed);
        }
    }

    /// Wakes every connection whose deadline is at or before `now`, once (its cell is
    /// disarmed). Returns how many were woken. Call from an OS thread: it may wait for a
    /// connection that is registering.
    pub fn sweep(&self, now: u64) -> usize {
        let mut woken = 0;
        for (due, waker) in self.due.iter().zip(self.wakers.iter()) {
            // Relaxed: see `arm`.
            let at = due.load(Ordering::Relaxed);
            if at == UNARMED || at > now {
                continue;
            }
            // Relaxed: disarms only the deadline just read; one the connection stored since
            // (a later one) makes this fail and waits for its own time.
            if due
                .compare_exchange(at, UNARMED, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            waker.with_read(|w| {
                if let Some(w) = w {
                    w.wake();
                    woken += 1;
                }
            });
        }
        woken
    }
}

#[cfg(all(test, not(hourtally_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Count(Arc<AtomicUsize>);

    impl Wake for Count {
        fn wake(&self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    impl Count {
        fn get(&self) -> usize {
            self.0.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    #[test]
    fn a_deadline_wakes_once_when_it_has_passed() {
        let alarms = Alarms::new(3);
        let (a, b) = (Count::default(), Count::default());
        alarms.register(0, a.clone());
        alarms.register(2, b.clone());
        alarms.arm(0, 100);
        alarms.arm(2, 200);
        assert_eq!(alarms.sweep(99), 0);
        assert_eq!(alarms.sweep(100), 1);
        assert_eq!((a.get(), b.get()), (1, 0));
        // Disarmed: not again until armed again.
        assert_eq!(alarms.sweep(150), 0);
        alarms.arm(0, 160);
        assert_eq!(alarms.sweep(300), 2);
        assert_eq!((a.get(), b.get()), (2, 1));
    }

    #[test]
    fn an_unregistered_cell_is_not_woken() {
        let alarms = Alarms::new(1);
        let a = Count::default();
        alarms.register(0, a.clone());
        alarms.arm(0, 10);
        alarms.unregister(0);
        assert_eq!(alarms.sweep(1000), 0);
        // Armed without a waker (a connection between two registrations): nothing to wake.
        alarms.arm(0, 10);
        assert_eq!(alarms.sweep(1000), 0);
        assert_eq!(a.get(), 0);
    }
}
