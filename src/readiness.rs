//! Whether the server is ready, and where one that is not yet stands: the phases of its
//! start, each with the reason its 503s and `/readyz` give. The writer thread moves it on
//! (once it has recovered the journal, or caught up with the cluster's log); the HTTP edge
//! reads it on every `/analytics` request.

use crate::sync::{AtomicU32, Ordering};

/// What a server that is not ready yet is doing: the reason its 503s and `/readyz` give.
/// In the order a server goes through them (a server goes on to [`Readiness::set_ready`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Starting {
    /// A single server replays its journal (after its newest snapshot).
    ReplayingJournal = 0,
    /// A cluster server waits for NATS: to connect, then to find the stream, the snapshot
    /// bucket and the stream's last sequence.
    WaitingForNats = 1,
    /// A cluster server applies the stream, from its snapshot up to the stream's last
    /// sequence as read at its start.
    CatchingUp = 2,
}

/// The readiness word once the server is ready (past every [`Starting`] phase).
const READY: u32 = 3;

impl Starting {
    /// `/readyz`'s answer during this phase: one line.
    pub const fn readyz(self) -> &'static [u8] {
        match self {
            Starting::ReplayingJournal => b"not ready: replaying the journal\n",
            Starting::WaitingForNats => b"not ready: waiting for NATS\n",
            Starting::CatchingUp => b"not ready: catching up with the log\n",
        }
    }

    fn from_word(word: u32) -> Option<Self> {
        match word {
            0 => Some(Starting::ReplayingJournal),
            1 => Some(Starting::WaitingForNats),
            2 => Some(Starting::CatchingUp),
            _ => None,
        }
    }
}

/// A [`Starting`] phase, or ready once the server has its state (replayed its journal, or
/// caught up with the cluster's log) and serves reads and writes. Only ever moves forward.
#[derive(Debug)]
pub struct Readiness(AtomicU32);

impl Default for Readiness {
    fn default() -> Self {
        Readiness(AtomicU32::new(Starting::ReplayingJournal as u32))
    }
}

impl Readiness {
    /// Marks the state recovered: `/analytics` is served and `/readyz` answers 200.
    pub fn set_ready(&self) {
        // Release: pairs with `starting`'s Acquire; a request that sees READY reads the ring
        // the recovery published (the ring's own seqlock orders it too; this keeps the
        // argument local). `fetch_max`: readiness only moves forward.
        self.0.fetch_max(READY, Ordering::Release);
    }

    /// Moves a server that is not ready yet on to `phase` (never back, never out of ready).
    pub fn set_starting(&self, phase: Starting) {
        // Release: as `set_ready`.
        self.0.fetch_max(phase as u32, Ordering::Release);
    }

    /// What the server is doing before it is ready; `None` once it is.
    pub fn starting(&self) -> Option<Starting> {
        // Acquire: see `set_ready`.
        Starting::from_word(self.0.load(Ordering::Acquire))
    }
}
