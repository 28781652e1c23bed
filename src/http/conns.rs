//! The open connections: a bounded registry that enforces `--max-connections` and lets a
//! stopping server wake every connection, including those asleep in a read.
//!
//! Each open connection holds a [`Ticket`]: a cell of the registry holding its socket's fd.
//! [`Connections::drain`] sets the draining flag and shuts the read side of every registered
//! socket, so that a read in progress returns at once; each connection then writes out the
//! answers of the requests it has taken, closes cleanly and gives its ticket back.
//!
//! The one race worth a protocol: a connection closing its socket (after which the fd number
//! may be reused by an unrelated file) while the drain shuts it. A cell is therefore locked
//! by the drain ([`BUSY`]) around its `shutdown`, and a ticket gives its cell back with a
//! compare-and-swap that waits out a `BUSY`; the connection closes its socket only after
//! that, so the drain never touches a closed fd.

use std::os::unix::io::RawFd;

use crossbeam_queue::ArrayQueue;

use crate::sync::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

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
    free: ArrayQueue<u32>,
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
        let free = ArrayQueue::new(max);
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
        if self.draining() {
            return None;
        }
        let cell = self.free.pop()?;
        debug_assert!((cell as usize) < self.cells.len());
        // SeqCst: pairs with `drain`, which stores `draining` and then reads every cell. Either
        // the drain sees this fd, or this connection sees `draining` below and closes itself.
        self.cells[cell as usize].store(fd, Ordering::SeqCst);
        // Relaxed: a statistic.
        self.open.fetch_add(1, Ordering::Relaxed);
        let ticket = Ticket {
            registry: self,
            cell,
            fd,
        };
        if self.draining() {
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
        // SeqCst: see `admit`.
        self.draining.load(Ordering::SeqCst)
    }

    /// Begins the drain: no new connection is admitted, and every open one is woken with its
    /// read side shut (a read returns what was already received, then end of stream). Call
    /// from an OS thread.
    pub fn drain(&self) {
        // SeqCst: see `admit`.
        self.draining.store(true, Ordering::SeqCst);
        for cell in self.cells.iter() {
            // SeqCst: see `admit`.
            let fd = cell.load(Ordering::SeqCst);
            if fd < 0 {
                continue;
            }
            // Acquire on success: the fd's owner stored it before; nothing else to see.
            // Lock the cell so its connection cannot close the fd under us.
            if cell
                .compare_exchange(fd, BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                // SAFETY: `shutdown` takes any integer; `fd` is an open socket, because its
                // connection closes it only after taking its cell back from `BUSY`.
                unsafe {
                    libc::shutdown(fd, libc::SHUT_RD);
                }
                // Release: hands the cell back to its connection.
                cell.store(fd, Ordering::Release);
            }
        }
    }
}

impl Ticket<'_> {
    /// Whether the server has begun to stop.
    pub fn draining(&self) -> bool {
        self.registry.draining()
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let cell = &self.registry.cells[self.cell as usize];
        // Acquire: the drain's Release store of the fd after its `shutdown` happens before
        // our close of the socket. Wait out a drain that holds the cell (a system call).
        while cell
            .compare_exchange(self.fd, FREE, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            debug_assert_eq!(cell.load(Ordering::Relaxed), BUSY);
            may::coroutine::yield_now();
        }
        // Relaxed: a statistic.
        self.registry.open.fetch_sub(1, Ordering::Relaxed);
        // The queue has a place for every cell, and this cell is not in it.
        let _ = self.registry.free.push(self.cell);
    }
}

#[cfg(test)]
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
        let a = conns.admit(-5).expect("admitted"); // not a real fd: shutdown fails harmlessly
        conns.drain();
        assert!(a.draining());
        assert!(conns.admit(20).is_none());
        drop(a);
        assert_eq!(conns.open(), 0);
    }
}
