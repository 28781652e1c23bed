//! The open connections: a bounded registry that enforces `--max-connections` and lets a
//! stopping server wake every connection, including those asleep in a read.
//!
//! Each open connection holds a [`Ticket`]: a cell of the registry holding its socket's fd.
//! [`Connections::drain`] sets the draining flag and hands every registered fd to a `shut`
//! function (the server shuts the socket's read side, so that a read in progress returns at
//! once); each connection then writes out the answers of the requests it has taken, closes
//! cleanly and gives its ticket back.
//!
//! Two races, two small protocols (`loom-tests/tests/loom_drain_vs_connection.rs`):
//!
//! - **Admit vs drain** (Dekker, as the writer's park handshake): a connection stores its
//!   fd, then reads `draining`; the drain stores `draining`, then reads every cell; each side
//!   has a SeqCst fence between its store and its load. The two fences are totally ordered:
//!   if the connection's comes first, the drain's loads (after its fence) see the fd; if the
//!   drain's comes first, the connection's load (after its fence) sees `draining`, and it
//!   closes by itself. Either way no connection is left asleep in a read.
//! - **Close vs shut**: a connection closes its socket (after which the fd number may be
//!   reused by an unrelated file) while the drain shuts it. The drain locks the cell
//!   ([`BUSY`]) around `shut`, and a ticket gives its cell back with a compare-and-swap
//!   that waits out a `BUSY`; the connection closes its socket only after that, so `shut`
//!   never sees a closed fd.

use crate::queue::Queue;
use crate::sync::{fence, spin_loop, AtomicBool, AtomicI32, AtomicUsize, Ordering};

/// A socket's file descriptor, as the registry keeps it.
pub type RawFd = i32;

/// A cell with no connection.
const FREE: i32 = -1;
/// A cell the drain is shutting right now.
const BUSY: i32 = -2;

/// The registry of open connections.
#[derive(Debug)]
pub struct Connections {
    /// One cell per possible connection: its fd, [`FREE`] or [`BUSY`].
    cells: Box<[AtomicI32]>,
    /// Indexes of free cells.
    free: Queue<u32>,
    /// Connections open now.
    open: AtomicUsize,
    /// Set once the server has begun to stop.
    draining: AtomicBool,
}

/// One open connection's place in the registry; gives it back when dropped.
#[derive(Debug)]
pub struct Ticket<'a> {
    registry: &'a Connections,
    cell: u32,
    fd: RawFd,
}

impl Connections {
    /// A registry of at most `max` connections.
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        let free = Queue::new(max);
        for i in 0..max {
            // The queue has exactly `max` places.
            let _ = free.push(i as u32);
        }
        Self {
            cells: (0..max).map(|_| AtomicI32::new(FREE)).collect(),
            free,
            open: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
        }
    }

    /// Registers the connection on `fd`; `None` when `max` are open already or the server is
    /// draining.
    pub fn admit(&self, fd: RawFd) -> Option<Ticket<'_>> {
        self.admit_impl::<true>(fd)
    }

    /// Negative control for the loom models: `admit` without its SeqCst fence. Wrong;
    /// compiled only under `--cfg hourtally_loom`.
    #[cfg(hourtally_loom)]
    #[doc(hidden)]
    pub fn admit_without_fence(&self, fd: RawFd) -> Option<Ticket<'_>> {
        self.admit_impl::<false>(fd)
    }

    /// `admit`; `FENCE == false` only for the loom negative control.
    #[inline(always)]
    fn admit_impl<const FENCE: bool>(&self, fd: RawFd) -> Option<Ticket<'_>> {
        // Relaxed: a fast path only; the fenced load below decides.
        if self.draining.load(Ordering::Relaxed) {
            return None;
        }
        let cell = self.free.pop()?;
        debug_assert!((cell as usize) < self.cells.len());
        // Relaxed: ordered before the `draining` load below by the SeqCst fence (module doc).
        self.cells[cell as usize].store(fd, Ordering::Relaxed);
        if FENCE {
            fence(Ordering::SeqCst);
        }
        // Relaxed: a statistic.
        self.open.fetch_add(1, Ordering::Relaxed);
        let ticket = Ticket {
            registry: self,
            cell,
            fd,
        };
        // Relaxed: after the fence; see above.
        if self.draining.load(Ordering::Relaxed) {
            return None; // the ticket's drop gives the cell back
        }
        Some(ticket)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        // Relaxed: a statistic.
        self.open.load(Ordering::Relaxed)
    }

    /// Whether the server has begun to stop.
    pub fn draining(&self) -> bool {
        // Acquire: a connection asks after `shut` woke it; the drain stored `draining` before
        // it called `shut`, and the wake-up (a system call on the same socket, ordered by the
        // kernel's socket lock; in the loom model a Release/Acquire flag) carries that store.
        self.draining.load(Ordering::Acquire)
    }

    /// Begins the drain: no new connection is admitted, and `shut` is called with the fd of
    /// every open one, while that fd is guaranteed open. Call from an OS thread.
    pub fn drain(&self, shut: impl FnMut(RawFd)) {
        self.drain_impl::<true>(shut)
    }

    /// Negative control for the loom models: `drain` without its SeqCst fence. Wrong;
    /// compiled only under `--cfg hourtally_loom`.
    #[cfg(hourtally_loom)]
    #[doc(hidden)]
    pub fn drain_without_fence(&self, shut: impl FnMut(RawFd)) {
        self.drain_impl::<false>(shut)
    }

    /// `drain`; `FENCE == false` only for the loom negative control.
    fn drain_impl<const FENCE: bool>(&self, mut shut: impl FnMut(RawFd)) {
        // Release: for `draining()` (see there). The fence orders it before the cell loads.
        self.draining.store(true, Ordering::Release);
        if FENCE {
            fence(Ordering::SeqCst);
        }
        for cell in self.cells.iter() {
            // Relaxed: after the fence (module doc); the value is only an fd number.
            let fd = cell.load(Ordering::Relaxed);
            if fd < 0 {
                continue;
            }
            // Lock the cell so its connection cannot close the fd under us. Relaxed: the CAS
            // itself is the lock; nothing else is read under it but the fd it holds.
            if cell
                .compare_exchange(fd, BUSY, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                // `fd` is open: its connection closes it only after taking its cell back from
                // `BUSY`.
                shut(fd);
                // Release: hands the cell back to its connection; its Acquire CAS then sees
                // everything `shut` did.
                cell.store(fd, Ordering::Release);
            }
        }
    }
}

impl Ticket<'_> {
    /// The connection's cell: an index below the registry's `max`, unique among open
    /// connections (other per-connection tables, as `alarms::Alarms`, use it too).
    pub fn index(&self) -> usize {
        self.cell as usize
    }

    /// Whether the server has begun to stop.
    pub fn draining(&self) -> bool {
        self.registry.draining()
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let cell = &self.registry.cells[self.cell as usize];
        // Acquire: the drain's Release store of the fd after `shut` happens before our close
        // of the socket. Wait out a drain that holds the cell: one `shutdown` system call, and
        // only ever while the server stops, so a short spin (not a coroutine yield: this
        // module is below the `may` layer) costs nothing that matters.
        // Relaxed on failure: we only learn that the drain holds the cell, and try again.
        while cell
            .compare_exchange(self.fd, FREE, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spin_loop();
        }
        // Relaxed: a statistic.
        self.registry.open.fetch_sub(1, Ordering::Relaxed);
        // The queue has a place for every cell, and this cell is not in it.
        let _ = self.registry.free.push(self.cell);
    }
}

#[cfg(all(test, not(hourtally_loom)))]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_max_and_gives_places_back() {
        let conns = Connections::new(2);
        let a = conns.admit(10).expect("first");
        let b = conns.admit(11).expect("second");
        assert!(conns.admit(12).is_none());
        assert_eq!(conns.open(), 2);
        drop(a);
        let c = conns.admit(13).expect("a place came back");
        assert_eq!(conns.open(), 2);
        drop((b, c));
        assert_eq!(conns.open(), 0);
    }

    #[test]
    fn a_draining_registry_admits_nothing() {
        let conns = Connections::new(4);
        let a = conns.admit(7).expect("admitted");
        let mut shut = Vec::new();
        conns.drain(|fd| shut.push(fd));
        assert_eq!(shut, [7]);
        assert!(a.draining());
        assert!(conns.admit(20).is_none());
        drop(a);
        assert_eq!(conns.open(), 0);
    }
}
