//! The publisher: one OS thread that takes accepted events off the publish queue, cuts them
//! into batches and hands each to the nats thread, and completes durable cuts as batches are
//! acknowledged.
//!
//! In cluster mode the HTTP edge pushes each accepted event into an [`Ingest`] of its own,
//! exactly as it does for the writer of a single server, and with `--ack log` a connection
//! that took POSTs waits for a durable cut of that queue exactly as with `--fsync always`
//! (`writer` module doc, "Durable cuts"): it takes a ticket, and its 204s go out once the
//! cut is complete. Here a cut is complete once every batch holding one of its events has
//! been acknowledged by the stream. The publisher is the queue's only popper, so the
//! popper's halves of both handshakes (park, cut) are `Ingest`'s own, shared with the
//! writer and checked by the same loom models.
//!
//! A cut `k` announced when `L` events were queued is covered by the batches that pop those
//! `L` events; it records the id of the last of them (or, with `L = 0`, of the last batch
//! sent so far: an event of its producer may sit in any earlier batch). Batches are
//! acknowledged out of order; cut `k` completes once every batch up to its id is done.
//!
//! A batch is done when acknowledged, or when the nats thread gave up on it after retrying
//! for [`RETRY_FOR`] (inside the stream's two-minute duplicate window, so a retry never
//! counts an event twice). A POST waits at most `--log-timeout` (≤ 60 s) for its cut and is
//! then closed unanswered, so no POST that is still waiting can be released by a given-up
//! batch: by then it has long been closed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_queue::SegQueue;

use super::state::{bump, ClusterState};
use crate::event::Event;
use crate::journal::record::encode_group;
use crate::journal::waiters::DurableWaiters;
use crate::sync::{Arc, Ordering};
use crate::writer::Ingest;

/// Most events in one batch: 24 + 4000 × 16 bytes = 62.5 KiB a message, far under NATS's
/// 1 MiB payload limit.
pub const MAX_BATCH_EVENTS: usize = 4000;
/// Most batches sent and not yet acknowledged. While all are out, events wait in the queue,
/// so batches grow with the load (up to [`MAX_BATCH_EVENTS`]); under light load a batch
/// leaves as soon as it has one event.
pub const MAX_IN_FLIGHT: usize = 64;
/// How long the nats thread retries a batch with its de-duplication id before giving up:
/// inside the stream's duplicate window ([`DUPLICATE_WINDOW`]).
pub const RETRY_FOR: Duration = Duration::from_secs(100);
/// The stream's duplicate window (set when this server creates the stream).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long a stopping publisher waits for the batches it sent.
pub const STOP_WAIT: Duration = Duration::from_secs(10);

/// A batch for the nats thread to publish.
#[derive(Debug)]
pub struct Outgoing {
    /// The batch's number in this process (its de-duplication id is node, boot and this).
    pub id: u64,
    /// Its events, encoded as one journal group (`journal::record`).
    pub payload: Bytes,
    /// How many events it holds.
    pub events: usize,
}

/// What became of a batch (the nats thread pushes these, then unparks the publisher).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Acked(u64),
    /// Given up after [`RETRY_FOR`]: its events are lost (and counted).
    Abandoned(u64),
}

/// A batch sent and not yet done.
#[derive(Debug)]
struct InFlight {
    id: u64,
    sent: Instant,
    events: usize,
    done: bool,
}

/// The publisher thread's state.
pub struct Publisher {
    /// The publish queue (the edge pushes, this thread pops).
    pub(crate) ingest: Arc<Ingest>,
    /// Batches to the nats thread.
    pub(crate) out: tokio::sync::mpsc::UnboundedSender<Outgoing>,
    /// Outcomes from the nats thread.
    pub(crate) outcomes: Arc<SegQueue<Outcome>>,
    pub(crate) state: Arc<ClusterState>,
    /// With `--ack log`: the connections waiting for cuts.
    pub(crate) waiters: Option<Arc<DurableWaiters>>,
    pub(crate) log_timeout: Duration,
    /// The next batch's id (ids start at 1, so "the last batch sent" is 0 before any).
    next_id: u64,
    in_flight: VecDeque<InFlight>,
    /// The cut being popped: its number and the events it still covers.
    open_cut: Option<(u64, usize)>,
    /// Cuts whose events are all sent: number, id of the last batch that may hold them.
    sent_cuts: VecDeque<(u64, u64)>,
    batch: Vec<Event>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("next_id", &self.next_id)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl Publisher {
    pub(crate) fn new(
        ingest: Arc<Ingest>,
        out: tokio::sync::mpsc::UnboundedSender<Outgoing>,
        outcomes: Arc<SegQueue<Outcome>>,
        state: Arc<ClusterState>,
        waiters: Option<Arc<DurableWaiters>>,
        log_timeout: Duration,
    ) -> Self {
        Self {
            ingest,
            out,
            outcomes,
            state,
            waiters,
            log_timeout,
            next_id: 1,
            in_flight: VecDeque::with_capacity(MAX_IN_FLIGHT),
            open_cut: None,
            sent_cuts: VecDeque::new(),
            batch: Vec::with_capacity(MAX_BATCH_EVENTS),
        }
    }

    /// Whether this publisher keeps durable cuts (`--ack log`).
    fn cuts(&self) -> bool {
        self.waiters.is_some()
    }

    /// Runs until shutdown has closed the publish queue, every event is sent, and every
    /// batch is done (or [`STOP_WAIT`] has passed). Returns the events left unpublished.
    pub fn run(mut self) -> u64 {
        let ingest = self.ingest.clone();
        let mut stop_deadline: Option<Instant> = None;
        loop {
            self.take_outcomes();
            self.watch_log();
            let mut sent = false;
            while self.in_flight.len() < MAX_IN_FLIGHT && !ingest.queue.is_empty() {
                self.send_batch();
                sent = true;
            }
            if sent {
                continue;
            }
            if ingest.queue.is_empty() {
                if ingest.stop_requested() && ingest.queue.is_empty() {
                    let deadline = *stop_deadline.get_or_insert_with(|| Instant::now() + STOP_WAIT);
                    if self.in_flight.is_empty() || Instant::now() >= deadline {
                        return self.give_up_at_stop();
                    }
                }
                if self.cuts() && ingest.take_cut_request() {
                    // A producer waits for a cut: make one over what is queued now (often
                    // nothing), so that one comes at all.
                    self.open_cut();
                    self.advance_cut(0);
                    self.complete_cuts();
                }
                if ingest.stop_requested() {
                    // Waiting for the last acknowledgements: the nats thread's tick wakes us.
                    ingest.parker.park();
                } else {
                    ingest.park_when_idle::<true>(self.cuts());
                }
            } else {
                // Every in-flight slot is taken: an outcome (or the tick) wakes us.
                ingest.parker.park();
            }
        }
    }

    /// Pops one batch, encodes it and hands it to the nats thread.
    fn send_batch(&mut self) {
        if self.cuts() && self.open_cut.is_none() {
            self.open_cut();
        }
        self.batch.clear();
        while self.batch.len() < MAX_BATCH_EVENTS {
            match self.ingest.queue.pop() {
                Some(e) => self.batch.push(e),
                None => break,
            }
        }
        let n = self.batch.len();
        if n == 0 {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut payload = Vec::with_capacity(24 + 16 * n);
        encode_group(&mut payload, id, &self.batch);
        self.in_flight.push_back(InFlight {
            id,
            sent: Instant::now(),
            events: n,
            done: false,
        });
        // Relaxed: a figure for /metrics.
        self.state
            .batches_in_flight
            .store(self.in_flight.len(), Ordering::Relaxed);
        // A closed channel: the nats thread is gone (shutdown after its deadline); the batch
        // stays in flight and is given up at stop.
        let _ = self.out.send(Outgoing {
            id,
            payload: Bytes::from(payload),
            events: n,
        });
        self.advance_cut(n);
    }

    /// Announces the next cut on the publish queue (module doc).
    fn open_cut(&mut self) {
        if self.open_cut.is_none() {
            self.open_cut = Some(self.ingest.announce_cut());
        }
    }

    /// `popped` more events were sent: a cut that has all its events sent waits for their
    /// batches (up to the last one sent).
    fn advance_cut(&mut self, popped: usize) {
        let Some((k, left)) = self.open_cut else {
            return;
        };
        let left = left.saturating_sub(popped);
        if left > 0 {
            self.open_cut = Some((k, left));
            return;
        }
        self.open_cut = None;
        self.sent_cuts.push_back((k, self.next_id - 1));
    }

    /// Marks the batches the nats thread reported on, and completes what they finish.
    fn take_outcomes(&mut self) {
        let mut any = false;
        while let Some(outcome) = self.outcomes.pop() {
            any = true;
            let (id, abandoned) = match outcome {
                Outcome::Acked(id) => (id, false),
                Outcome::Abandoned(id) => (id, true),
            };
            let Some(first) = self.in_flight.front().map(|b| b.id) else {
                continue;
            };
            let Some(batch) = id
                .checked_sub(first)
                .and_then(|i| self.in_flight.get_mut(i as usize))
            else {
                continue;
            };
            debug_assert_eq!(batch.id, id);
            batch.done = true;
            if abandoned {
                bump(&self.state.events_abandoned, batch.events as u64);
                tracing::error!(
                    batch = id,
                    events = batch.events,
                    "cluster: gave up publishing a batch after retrying for its whole duplicate window; its events are lost"
                );
            }
        }
        if !any {
            return;
        }
        while self.in_flight.front().is_some_and(|b| b.done) {
            self.in_flight.pop_front();
        }
        // Relaxed: a figure for /metrics.
        self.state
            .batches_in_flight
            .store(self.in_flight.len(), Ordering::Relaxed);
        self.complete_cuts();
    }

    /// Completes every sent cut whose batches are all done.
    fn complete_cuts(&mut self) {
        let first_pending = self.in_flight.front().map_or(self.next_id, |b| b.id);
        let mut completed = None;
        while let Some(&(k, last)) = self.sent_cuts.front() {
            if last >= first_pending {
                break;
            }
            self.sent_cuts.pop_front();
            completed = Some(k);
        }
        if let Some(k) = completed {
            self.ingest.complete_cut(k);
            if let Some(waiters) = &self.waiters {
                waiters.wake(k);
            }
        }
    }

    /// Sets "the log does not take events" while the oldest batch in flight has waited
    /// longer than `--log-timeout`, and clears it once it has gone.
    fn watch_log(&mut self) {
        let stuck = self
            .in_flight
            .front()
            .is_some_and(|b| b.sent.elapsed() > self.log_timeout);
        if stuck != self.state.log_failing() {
            self.state.set_log_failing(stuck);
            if stuck {
                tracing::warn!(
                    log_timeout_s = self.log_timeout.as_secs(),
                    in_flight = self.in_flight.len(),
                    "cluster: the log has not acknowledged a batch within --log-timeout; POSTs get 503"
                );
            } else {
                tracing::info!("cluster: the log takes events again");
            }
        }
    }

    /// Stopping with batches still unacknowledged after [`STOP_WAIT`]: they may or may not
    /// be in the log. Reports how many events that leaves unknown.
    fn give_up_at_stop(&mut self) -> u64 {
        let unknown: u64 = self
            .in_flight
            .iter()
            .filter(|b| !b.done)
            .map(|b| b.events as u64)
            .sum();
        if unknown > 0 {
            tracing::error!(
                events = unknown,
                "cluster: stopped with batches the log had not acknowledged; they may be lost"
            );
        }
        unknown
    }
}
