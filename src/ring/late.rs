//! Late events: events of an hour that left the ring, within the cold retention, handed by
//! the writer to the thread that counts them against the hour's stored users (`late`).
//!
//! The apply rule stays a pure function of the event sequence: an event whose slot holds a
//! newer hour is *late* if its hour is at most [`LateQueue::window`] hours before the newest
//! hour the ring has taken (no clock), otherwise sealed and dropped as before. A late event
//! goes into this queue, in the writer's order, and is counted by the other thread in that
//! order: whether its user is new to its hour depends only on the hour's users when it left
//! (its cold set) and the late events of that hour before it, so the outcome is the same on
//! every replay, whatever the other thread's timing.
//!
//! A snapshot's capture puts a [`Late::Mark`] in the queue at its position: when the other
//! thread reaches it, every late event before the position is counted and none after, and
//! what it hands the snapshot is the late counts at exactly that position.

use std::collections::VecDeque;

use crate::event::Event;
use crate::sync::RwLock;

/// What the writer hands the late thread, in its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Late {
    /// A late event: count it.
    Event(Event),
    /// A snapshot's capture began after the events before this (its journal position).
    Mark(u64),
}

/// Called after each message the writer adds: tells the late thread.
pub type Waker = Box<dyn Fn() + Send + Sync>;

/// The queue from the writer to the late thread.
pub struct LateQueue {
    /// Hours before the newest hour the ring has taken that an event may be late by.
    window: u32,
    queue: RwLock<VecDeque<Late>>,
    waker: RwLock<Option<Waker>>,
}

impl std::fmt::Debug for LateQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateQueue")
            .field("window", &self.window)
            .field("waiting", &self.queue.with_read(|q| q.len()))
            .finish()
    }
}

impl LateQueue {
    /// A queue for events at most `window` hours before the ring's newest hour.
    pub fn new(window: u32) -> Self {
        Self {
            window,
            queue: RwLock::new(VecDeque::new()),
            waker: RwLock::new(None),
        }
    }

    /// The late window, in hours.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// Calls `wake` after each message added from now on.
    pub fn wake_with(&self, wake: Waker) {
        self.waker.with_write(|w| *w = Some(wake));
    }

    /// Adds a message (the ring's writer) and wakes the late thread if the queue was empty:
    /// the thread takes the whole queue each time it is woken ([`take`](Self::take)), so a
    /// message added to a queue that is not empty is taken with the one that woke it.
    pub(super) fn add(&self, late: Late) {
        let was_empty = self.queue.with_write(|q| {
            q.push_back(late);
            q.len() == 1
        });
        if was_empty {
            self.waker.with_read(|w| {
                if let Some(wake) = w {
                    wake();
                }
            });
        }
    }

    /// Wakes the late thread (for work that is not a message: `late::LateCounts::request_prune`).
    pub fn wake(&self) {
        self.waker.with_read(|w| {
            if let Some(wake) = w {
                wake();
            }
        });
    }

    /// Takes every message waiting, oldest first (the late thread).
    pub fn take(&self, into: &mut Vec<Late>) {
        self.queue.with_write(|q| into.extend(q.drain(..)));
    }
}
