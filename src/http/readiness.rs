//! Where a server that is not ready yet stands: the phases of its start, each with the reason
//! its 503s and `/readyz` give. Vocabulary shared by the routes (which keep the phase), the
//! error table (which words the 503) and the cluster's feed (which moves it on).

/// What a server that is not ready yet is doing: the reason its 503s and `/readyz` give.
/// In the order a server goes through them (a server goes on to `Service::set_ready`).
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

/// `Service`'s readiness word once it is ready (past every [`Starting`] phase).
pub(super) const READY: u32 = 3;

impl Starting {
    /// `/readyz`'s answer during this phase: one line.
    pub const fn readyz(self) -> &'static [u8] {
        match self {
            Starting::ReplayingJournal => b"not ready: replaying the journal\n",
            Starting::WaitingForNats => b"not ready: waiting for NATS\n",
            Starting::CatchingUp => b"not ready: catching up with the log\n",
        }
    }

    pub(super) fn from_word(word: u32) -> Option<Self> {
        match word {
            0 => Some(Starting::ReplayingJournal),
            1 => Some(Starting::WaitingForNats),
            2 => Some(Starting::CatchingUp),
            _ => None,
        }
    }
}
