//! When a POST gets its answer: the one place that decides it, for every mode.
//!
//! | [`Ack`] | a POST's `204` goes out once its event is | chosen by |
//! |---|---|---|
//! | queued | in the queue (the writer's, or in a cluster the publish queue) | `--fsync interval` or `never`, `--ephemeral`, `--ack local` |
//! | durable, refusable | on disk: the durable cut that covers it is synced | `--fsync always` (with a data directory) |
//! | durable | in the replicated log: the stream acknowledged its batch | `--ack log` (cluster mode's default) |
//!
//! A connection answers a batch of requests with one write. When the batch holds `204`s and
//! the policy is durable, the connection takes a ticket for the durable cut that will cover
//! them (`Ingest::durability_ticket`) and parks its coroutine in [`DurableWaiters`] until the
//! cut is complete; the journal (after each `fdatasync`) or the cluster's outbox (after the
//! log's acknowledgement) moves the cut on and wakes it. Then:
//!
//! - the cut is complete and nothing of the batch was refused: the answers go out as written;
//! - with `--fsync always`, the disk refused a group holding some of the batch's events: the
//!   writer counted them per connection (`ingest::Refusals`, tagged by `Event::src`), and the
//!   batch's last that many `204`s become `503`s, never counted ([`Settled::Refuse`]);
//! - no word within the wait (a sync that hangs, a log that does not answer): the connection
//!   closes without answering ([`Settled::GaveUp`]); the client cannot tell, and may retry.

use std::time::Duration;

use crate::ingest::{Ingest, Refusals};
use crate::sync::Arc;

pub mod waiters;

pub use waiters::DurableWaiters;

/// With `--fsync always`, the longest a connection holds its answers for the disk.
pub const DURABLE_WAIT: Duration = Duration::from_secs(15);

/// When this server's POSTs get their answers (module doc).
#[derive(Clone, Debug, Default)]
pub struct Ack {
    /// Durable: where POSTs wait for their cut, and for how long at most.
    durable: Option<(Arc<DurableWaiters>, Duration)>,
    /// Whether the writer may refuse events (`--fsync always`): then each connection tags
    /// its events with its source.
    refusable: bool,
}

impl Ack {
    /// A `204` once the event is queued.
    pub fn queued() -> Self {
        Self::default()
    }

    /// `--fsync always`: a `204` once the event is on disk, a `503` if the disk refused it;
    /// at most [`DURABLE_WAIT`].
    pub fn synced(waiters: Arc<DurableWaiters>) -> Self {
        Ack {
            durable: Some((waiters, DURABLE_WAIT)),
            refusable: true,
        }
    }

    /// `--ack log`: a `204` once the log acknowledged the event's batch; at most `wait`.
    pub fn logged(waiters: Arc<DurableWaiters>, wait: Duration) -> Self {
        Ack {
            durable: Some((waiters, wait)),
            refusable: false,
        }
    }

    /// Whether POSTs wait for a durable cut.
    pub fn is_durable(&self) -> bool {
        self.durable.is_some()
    }

    /// One connection's part: `slot` is its cell in the connection table (0-based), which
    /// names its events' source when the writer may refuse them.
    pub fn connection<'a>(&'a self, ingest: &'a Ingest, slot: usize) -> Answering<'a> {
        let refusals = ingest.refusals.as_ref().filter(|_| self.refusable);
        let src = refusals
            .and_then(|r| u16::try_from(slot + 1).ok().filter(|&s| r.usable(s)))
            .unwrap_or(0);
        Answering {
            durable: self.durable.as_ref().map(|(w, t)| (&**w, *t)),
            ingest,
            // From here, the refusals this connection reads and writes: none without a source.
            refusals: refusals.filter(|_| src != 0),
            src,
        }
    }
}

/// How one connection's batches get their answers ([`Ack::connection`]).
#[derive(Debug)]
pub struct Answering<'a> {
    durable: Option<(&'a DurableWaiters, Duration)>,
    ingest: &'a Ingest,
    refusals: Option<&'a Refusals>,
    src: u16,
}

/// What a batch's POSTs get ([`Answering::settle`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Their answers as written.
    Answer,
    /// The writer refused the last this many of the batch's events: their `204`s become
    /// `503`s (once it refuses one event of a connection's run, it refuses the rest).
    Refuse(u64),
    /// No word in time: close the connection without answering.
    GaveUp,
}

/// A batch begun ([`Answering::begin`]): the refusals of its source before it.
#[derive(Clone, Copy, Debug)]
pub struct Begun(u64);

impl Answering<'_> {
    /// The source this connection's events carry (`Event::src`; 0: none).
    pub fn src(&self) -> u16 {
        self.src
    }

    /// Before a batch is answered. Every event of this connection's earlier batches is
    /// resolved (their cut completed, or the connection gave up and closed): a new run begins.
    pub fn begin(&self) -> Begun {
        Begun(self.refusals.map_or(0, |r| r.begin_run(self.src)))
    }

    /// After the batch begun at `begun` answered `accepted` POSTs with `204`: waits, if the
    /// policy is durable, and says what they get.
    pub fn settle(&self, begun: Begun, accepted: usize) -> Settled {
        let Some((waiters, wait)) = self.durable.filter(|_| accepted > 0) else {
            return Settled::Answer;
        };
        let ticket = self.ingest.durability_ticket();
        if !waiters.wait(self.ingest, ticket, wait) {
            if let Some(r) = self.refusals {
                // Some of its events may still be refused later: no later connection in this
                // slot may take that for its own.
                r.retire(self.src);
            }
            return Settled::GaveUp;
        }
        match self
            .refusals
            .map_or(0, |r| r.refused(self.src).saturating_sub(begun.0))
        {
            0 => Settled::Answer,
            refused => Settled::Refuse(refused),
        }
    }
}
