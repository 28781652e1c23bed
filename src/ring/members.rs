//! The users of one hour as any thread may list them: what a union over hours reads.
//!
//! Each slot shares one [`Members`] per hour it holds: the writer appends every user new to
//! the hour to its log as it counts it, and replaces the slot's `Members` when the slot takes
//! a new hour (before it publishes the slot with that hour). A reader pairs it with a slot
//! snapshot ([`Ring::members`](super::Ring::members)): the snapshot's `unique_users = n` counts
//! exactly the log's first `n` entries.

use super::slot::Counts;
use super::userlog::UserLog;
use crate::sync::Arc;

/// The users of one hour, in the order the writer counted them.
#[derive(Debug)]
pub struct Members {
    /// The hour ([`EMPTY`](super::EMPTY) for a slot that never held one).
    hour: u32,
    /// Its users' fingerprints, each once.
    log: UserLog,
}

impl Members {
    pub fn new(hour: u32) -> Self {
        Self {
            hour,
            log: UserLog::new(),
        }
    }

    pub fn hour(&self) -> u32 {
        self.hour
    }

    /// Records the hour's user number `i` (0-based). The ring's writer only.
    #[inline]
    pub(super) fn append(&self, i: u64, fp: u64) {
        self.log.append(i, fp);
    }

    /// Appends to `out` the fingerprints of the first `n` users: those a published
    /// `unique_users = n` of this hour counts. `false` if the writer has not written them
    /// (a caller that took `n` from a slot snapshot of this hour never sees it).
    pub fn users_into(&self, n: u64, out: &mut Vec<u64>) -> bool {
        self.log.read_into(n, out)
    }

    /// Heap bytes of the log.
    pub fn heap_bytes(&self) -> usize {
        self.log.heap_bytes()
    }
}

/// One hour as a union reads it ([`Ring::members`](super::Ring::members)).
#[derive(Clone, Debug)]
pub enum HourMembers {
    /// The hour holds its slot: its counts at one publish, and its users, of which the first
    /// `counts.unique_users` are the ones those counts count.
    InRing {
        counts: Counts,
        members: Arc<Members>,
    },
    /// Nothing of the hour has been published: no users, zeros.
    NotStarted,
    /// The hour left the ring: its final counts from the archive (zeros if it never had an
    /// event). Its users are not in the ring any more.
    Sealed(Counts),
}
