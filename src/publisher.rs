//! The publisher: one OS thread that takes accepted events off a queue, cuts them into
//! batches for a replicated log, and completes durable cuts as the log acknowledges them.
//!
//! In cluster mode the HTTP edge pushes each accepted event into an [`Ingest`] of its own,
//! exactly as it does for the writer of a single server, and with `--ack log` a connection
//! that took POSTs waits for a durable cut of that queue exactly as with `--fsync always`
//! (`writer` module doc, "Durable cuts"): it takes a ticket, and its 204s go out once the
//! cut is complete. Here a cut is complete once every batch that may hold one of its events
//! has been acknowledged by the log. The publisher is the queue's only popper, so the
//! popper's halves of both handshakes (park, cut) are `Ingest`'s own, shared with the
//! writer; the loom model `loom_acked_cut_vs_producer` runs this loop against a log that
//! acknowledges batches out of order.
//!
//! A cut `k` announced when `L` events were queued is covered by the batches that pop those
//! `L` events; it records the id of the last of them (with `L = 0`, of the last batch sent
//! so far: an event of its producer may sit in any earlier batch). Batches are acknowledged
//! out of order; cut `k` completes once every batch up to its id is done.
//!
//! A batch is done when acknowledged, or when the log gave up on it (the cluster gives up
//! only after retrying for longer than any POST waits, so no POST still waiting is released
//! by a batch given up: `cluster::outbox`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::event::Event;
use crate::histogram::BatchStats;
use crate::ingest::Ingest;
use crate::sync::{Arc, AtomicBool, Ordering};

/// Most events in one batch: 24 + 4000 × 16 bytes = 62.5 KiB a message (24 + 4000 × 24 =
/// 93.8 KiB when events carry ids, `record`), far under NATS's 1 MiB payload limit.
pub const MAX_BATCH_EVENTS: usize = 4000;
/// Most batches sent and not yet acknowledged. While all are out, events wait in the queue,
/// so batches grow with the load (up to [`MAX_BATCH_EVENTS`]); under light load a batch
/// leaves as soon as it has one event. (Holding batches back while fewer are out, to make
/// them bigger, was measured: with `--ack log` the POSTs in flight then wait longer for
/// their cut, and throughput fell from about 0.65x to 0.25x of a single server:
/// BENCHMARKS.md, "Scale-out".)
pub const MAX_IN_FLIGHT: usize = 64;
/// How long a stopping publisher waits for the batches it sent, unless told otherwise
/// ([`Publisher::with_stop_wait`]).
pub const STOP_WAIT: Duration = Duration::from_secs(10);

/// What became of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The log holds it.
    Acked(u64),
    /// The log gave up on it: its events are lost.
    Abandoned(u64),
}

/// The log the publisher feeds. All calls come from the publisher thread.
pub trait BatchLog {
    /// Hands batch `id` to the log. Its outcome comes back through [`outcome`](Self::outcome),
    /// and whoever delivers it unparks the publisher (`Ingest::parker`).
    fn send(&mut self, id: u64, events: &[Event]);
    /// The next outcome the log reported, if any.
    fn outcome(&mut self) -> Option<Outcome>;
    /// Durable cut `k` is complete: wake whoever waits for it.
    fn cut_complete(&mut self, k: u64);
    /// The oldest batch in flight has waited longer than the timeout (`true`), or no longer
    /// does (`false`); called on each change.
    fn failing(&mut self, failing: bool, in_flight: usize);
    /// Batch `id` of `events` events was given up.
    fn abandoned(&mut self, id: u64, events: usize);
    /// Batches in flight now (a figure).
    fn in_flight(&mut self, n: usize);
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
#[derive(Debug)]
pub struct Publisher<L> {
    /// The queue the edge pushes into (this thread pops).
    ingest: Arc<Ingest>,
    log: L,
    /// Whether to keep durable cuts (`--ack log`).
    cuts: bool,
    /// After this long without an acknowledgement the log counts as failing.
    timeout: Duration,
    /// The next batch's id (ids start at 1, so "the last batch sent" is 0 before any).
    next_id: u64,
    in_flight: VecDeque<InFlight>,
    failing: bool,
    /// The cut being popped: its number and the events it still covers.
    open_cut: Option<(u64, usize)>,
    /// Cuts whose events are all sent: number, id of the last batch that may hold them.
    sent_cuts: VecDeque<(u64, u64)>,
    batch: Vec<Event>,
    batch_max: usize,
    /// Where each acknowledged batch's size and time from send to acknowledgement go, for
    /// `/metrics` (if anywhere).
    stats: Option<Arc<BatchStats>>,
    /// How long a stop waits for the batches in flight.
    stop_wait: Duration,
    /// Set: a stop waits no longer (a second stop signal).
    give_up: Arc<AtomicBool>,
}

impl<L: BatchLog> Publisher<L> {
    pub fn new(ingest: Arc<Ingest>, log: L, cuts: bool, timeout: Duration) -> Self {
        Self {
            ingest,
            log,
            cuts,
            timeout,
            next_id: 1,
            in_flight: VecDeque::with_capacity(MAX_IN_FLIGHT),
            failing: false,
            open_cut: None,
            sent_cuts: VecDeque::new(),
            batch: Vec::with_capacity(MAX_BATCH_EVENTS),
            batch_max: MAX_BATCH_EVENTS,
            stats: None,
            stop_wait: STOP_WAIT,
            give_up: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A stop waits up to `wait` for the batches in flight (in a cluster: as long as the log
    /// retries them, so that every batch is acknowledged or given up before the process ends).
    pub fn with_stop_wait(mut self, wait: Duration) -> Self {
        self.stop_wait = wait;
        self
    }

    /// Set it, and a stop waits no longer for the batches in flight.
    pub fn give_up_handle(&self) -> Arc<AtomicBool> {
        self.give_up.clone()
    }

    /// Records each acknowledged batch's size and its time from send to acknowledgement in
    /// `stats`.
    pub fn with_stats(mut self, stats: Arc<BatchStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Sets the most events a batch holds (loom models use 1 to make many batches).
    pub fn with_batch_max(mut self, batch_max: usize) -> Self {
        self.batch_max = batch_max.clamp(1, MAX_BATCH_EVENTS);
        self
    }

    /// Runs until shutdown has closed the queue, every event is sent, and every batch is
    /// done (or the stop wait has passed, or the wait was given up). Returns the events whose
    /// batches were still unacknowledged then.
    pub fn run(mut self) -> u64 {
        let ingest = self.ingest.clone();
        let mut stop_deadline: Option<Instant> = None;
        loop {
            self.take_outcomes();
            self.watch_log();
            let mut sent = false;
            while self.may_send() {
                self.send_batch();
                sent = true;
            }
            if sent {
                continue;
            }
            if !ingest.queue.is_empty() {
                // Enough batches are out: an outcome (or a tick) wakes us.
                ingest.parker.park();
                continue;
            }
            if ingest.stop_requested() && ingest.queue.is_empty() {
                let deadline =
                    *stop_deadline.get_or_insert_with(|| Instant::now() + self.stop_wait);
                // SeqCst: a flag read once per wake-up, on the way out; nothing to save.
                let given_up = self.give_up.load(Ordering::SeqCst);
                if self.in_flight.is_empty() || Instant::now() >= deadline || given_up {
                    return self.in_flight.iter().map(|b| b.events as u64).sum();
                }
                // Waiting for the last outcomes: their delivery (or a tick) wakes us.
                ingest.parker.park();
                continue;
            }
            if self.cuts && ingest.take_cut_request() {
                // A producer waits for a cut: make one over what is queued now (often
                // nothing), so that one comes at all.
                self.open_cut();
                self.advance_cut(0);
                self.complete_cuts();
            }
            // With batches in flight the park also ends on their outcomes: the log unparks
            // after delivering each.
            ingest.park_when_idle::<true>(self.cuts, None);
        }
    }

    /// Whether a batch may leave now.
    fn may_send(&self) -> bool {
        self.in_flight.len() < MAX_IN_FLIGHT && !self.ingest.queue.is_empty()
    }

    /// Pops one batch and hands it to the log.
    fn send_batch(&mut self) {
        if self.cuts && self.open_cut.is_none() {
            self.open_cut();
        }
        self.batch.clear();
        while self.batch.len() < self.batch_max {
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
        self.in_flight.push_back(InFlight {
            id,
            sent: Instant::now(),
            events: n,
            done: false,
        });
        self.log.in_flight(self.in_flight.len());
        self.log.send(id, &self.batch);
        self.advance_cut(n);
    }

    /// Announces the next cut on the queue (module doc).
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

    /// Marks the batches the log reported on, and completes the cuts they finish.
    fn take_outcomes(&mut self) {
        let mut any = false;
        while let Some(outcome) = self.log.outcome() {
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
            debug_assert_eq!(batch.id, id, "in-flight batches are consecutive ids");
            batch.done = true;
            if abandoned {
                self.log.abandoned(id, batch.events);
            } else if let Some(stats) = &self.stats {
                stats.record(batch.events, batch.sent.elapsed());
            }
        }
        if !any {
            return;
        }
        while self.in_flight.front().is_some_and(|b| b.done) {
            self.in_flight.pop_front();
        }
        self.log.in_flight(self.in_flight.len());
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
            self.log.cut_complete(k);
        }
    }

    /// Reports "the log does not take events" while the oldest batch in flight has waited
    /// longer than the timeout, and its end.
    fn watch_log(&mut self) {
        let stuck = self
            .in_flight
            .front()
            .is_some_and(|b| b.sent.elapsed() > self.timeout);
        if stuck != self.failing {
            self.failing = stuck;
            self.log.failing(stuck, self.in_flight.len());
        }
    }
}
