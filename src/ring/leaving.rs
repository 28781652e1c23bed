//! Hours that left the ring and whose users are not stored yet: the hand-off from the writer's
//! recycle to the cold tier (`cold`).
//!
//! When a slot takes a newer hour, the old hour's counts go to the [`Archive`](super::Archive)
//! and, in a ring that keeps the users of sealed hours ([`Ring::keeping_sealed_users`]
//! (super::Ring::keeping_sealed_users)), its [`Members`] come here, in the order the hours
//! left. The thread that stores cold sets takes the oldest ([`front`](Leaving::front)),
//! writes it durably and only then lets it go ([`stored`](Leaving::stored)). Until then a
//! union reads the hour's users from here, so an hour is never without its users between
//! the ring and the disk: the writer adds it before it publishes the slot with the new hour
//! (as it seals the archive), and the storing thread files it in the cold tier's index
//! before it removes it.
//!
//! A snapshot may stand in for the journal only once every hour that left before its capture
//! is on disk (the journal, not the snapshot, holds their events):
//! [`stored_count`](Leaving::stored_count) is how far the stores got, in the order the hours
//! left.

use std::collections::VecDeque;

use super::members::Members;
use super::slot::Counts;
use crate::sync::{Arc, RwLock};

/// An hour that left the ring with its users.
#[derive(Clone, Debug)]
pub struct LeavingHour {
    pub hour: u32,
    /// Its final counts (its archive entry).
    pub counts: Counts,
    /// Its users: the first `counts.unique_users` of them.
    pub members: Arc<Members>,
    /// The hour whose event recycled its slot: how far the ring had got when it left.
    pub taken_by: u32,
}

#[derive(Debug, Default)]
struct Queue {
    hours: VecDeque<LeavingHour>,
    /// Hours added since the ring was made.
    added: u64,
}

/// What [`Leaving::add`] calls after each hour it adds: tells the storing thread.
pub type Waker = Box<dyn Fn() + Send + Sync>;

/// The hours that left the ring with users, oldest first, until each is stored.
#[derive(Default)]
pub struct Leaving {
    queue: RwLock<Queue>,
    /// Called after each add (set once, before the writer starts).
    waker: RwLock<Option<Waker>>,
}

impl std::fmt::Debug for Leaving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.queue.with_read(|q| {
            f.debug_struct("Leaving")
                .field("hours", &q.hours.len())
                .field("added", &q.added)
                .finish()
        })
    }
}

impl Leaving {
    /// Calls `wake` after each hour added from now on, so that hours are stored as they
    /// leave, also while a journal is replayed (when the writer takes no turns).
    pub fn wake_with(&self, wake: Waker) {
        self.waker.with_write(|w| *w = Some(wake));
    }

    /// Adds an hour that left (the ring's writer, at a recycle) and wakes the storing
    /// thread. Returns how many were added so far.
    pub(super) fn add(&self, hour: LeavingHour) -> u64 {
        let added = self.queue.with_write(|q| {
            q.hours.push_back(hour);
            q.added += 1;
            q.added
        });
        self.waker.with_read(|w| {
            if let Some(wake) = w {
                wake();
            }
        });
        added
    }

    /// The users of `hour`, if it left and is not stored yet.
    pub fn get(&self, hour: u32) -> Option<(Counts, Arc<Members>)> {
        self.queue.with_read(|q| {
            q.hours
                .iter()
                .find(|h| h.hour == hour)
                .map(|h| (h.counts, Arc::clone(&h.members)))
        })
    }

    /// Whether `hour` waits here, if that can be told without waiting for the lock.
    pub fn try_contains(&self, hour: u32) -> Option<bool> {
        self.queue
            .try_with_read(|q| q.hours.iter().any(|h| h.hour == hour))
    }

    /// The oldest hour not stored yet.
    pub fn front(&self) -> Option<LeavingHour> {
        self.queue.with_read(|q| q.hours.front().cloned())
    }

    /// The oldest hour is stored (or need not be): it goes. Call only after what stands in
    /// for it is visible to readers (the cold tier's index).
    pub fn stored(&self) {
        self.queue.with_write(|q| q.hours.pop_front());
    }

    /// Hours added so far, and of them how many are stored: every hour up to the second
    /// figure is, as they are stored in order.
    pub fn counts(&self) -> (u64, u64) {
        self.queue
            .with_read(|q| (q.added, q.added - q.hours.len() as u64))
    }

    /// How many of the hours that left are stored.
    pub fn stored_count(&self) -> u64 {
        self.counts().1
    }

    /// How many wait to be stored.
    pub fn len(&self) -> usize {
        self.queue.with_read(|q| q.hours.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
