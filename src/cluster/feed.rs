//! The writer's side of cluster mode: which stream messages the applied events came from.
//!
//! The nats thread pushes each stream message's events into the writer's queue, in stream
//! order, after it pushed `(sequence, events)` into [`Feed::messages`]. The writer hands
//! batches of those events to [`ClusterSink`] before it applies them; the sink counts them
//! off the messages, so after each batch it knows the last message applied whole (the
//! *applied sequence*, published after the ring for readers), and whether the batch ended
//! on a message boundary (the only places a snapshot may cover: a snapshot that covers
//! sequence `s` holds exactly the messages up to `s`).

use std::time::{Duration, Instant};

use crossbeam_queue::SegQueue;

use super::state::ClusterState;
use crate::event::Event;
use crate::readiness::{Readiness, Starting};
use crate::ring::RingImage;
use crate::sync::Arc;
use crate::writer::Sink;

/// The message boundaries of the writer's queue, in stream order.
#[derive(Debug, Default)]
pub struct Feed {
    /// `(stream sequence, events)` of each message whose events were (or are being) pushed.
    pub messages: SegQueue<(u64, u32)>,
}

/// The writer's sink in cluster mode.
pub struct ClusterSink {
    feed: Arc<Feed>,
    state: Arc<ClusterState>,
    /// The message being counted off: its sequence and events not yet seen.
    current: Option<(u64, u32)>,
    /// The next message, taken off the feed to look at it (none of its events seen yet).
    peeked: Option<(u64, u32)>,
    /// The last message whose events have all been handed over.
    through: u64,
    /// Until the server is ready: the stream's last sequence at start, and the readiness to
    /// move on once it is applied.
    catch_up: Option<(u64, Arc<Readiness>)>,
    /// Snapshots: how often, when the last was taken and what it covered.
    snapshot_every: Option<Duration>,
    last_snapshot: Instant,
    last_covered: u64,
    /// Where finished captures go (the nats thread stores them in the object store).
    snapshots: tokio::sync::mpsc::UnboundedSender<RingImage>,
}

impl std::fmt::Debug for ClusterSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSink")
            .field("through", &self.through)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl ClusterSink {
    /// A sink whose ring holds the messages up to `covered` (a restored snapshot, or 0).
    pub fn new(
        feed: Arc<Feed>,
        state: Arc<ClusterState>,
        covered: u64,
        snapshot_every: Option<Duration>,
        snapshots: tokio::sync::mpsc::UnboundedSender<RingImage>,
    ) -> Self {
        state.set_applied(covered);
        Self {
            feed,
            state,
            current: None,
            peeked: None,
            through: covered,
            catch_up: None,
            snapshot_every,
            last_snapshot: Instant::now(),
            last_covered: covered,
            snapshots,
        }
    }

    /// Marks the server ready once the messages up to `target` are applied (at once if they
    /// already are).
    pub fn ready_at(mut self, target: u64, readiness: Arc<Readiness>) -> Self {
        if self.through >= target {
            readiness.set_ready();
            tracing::info!(applied_seq = self.through, "ready");
        } else {
            readiness.set_starting(Starting::CatchingUp);
            tracing::info!(
                from = self.through,
                to = target,
                "catching up with the stream"
            );
            self.catch_up = Some((target, readiness));
        }
        self
    }

    /// Counts `n` handed-over events off the messages.
    fn count_off(&mut self, mut n: usize) {
        while n > 0 {
            let (seq, left) = match self.current.take().or_else(|| self.peeked.take()) {
                Some(c) => c,
                None => match self.feed.messages.pop() {
                    Some(m) => m,
                    None => {
                        // Cannot happen: a message's entry is pushed before its events.
                        debug_assert!(false, "events without a message entry");
                        return;
                    }
                },
            };
            let take = n.min(left as usize);
            n -= take;
            let left = left - take as u32;
            if left == 0 {
                self.through = seq;
            } else {
                self.current = Some((seq, left));
            }
        }
        self.take_empty_messages();
    }

    /// Messages with no events (skipped as undecodable) complete as soon as they are next.
    fn take_empty_messages(&mut self) {
        if self.current.is_some() {
            return;
        }
        loop {
            match self.peeked.take().or_else(|| self.feed.messages.pop()) {
                Some((seq, 0)) => self.through = seq,
                Some(next) => {
                    self.peeked = Some(next);
                    return;
                }
                None => return,
            }
        }
    }

    fn publish_position(&mut self) {
        self.state.set_applied(self.through);
        if let Some((target, _)) = &self.catch_up {
            if self.through >= *target {
                if let Some((_, readiness)) = self.catch_up.take() {
                    readiness.set_ready();
                    tracing::info!(
                        applied_seq = self.through,
                        "caught up with the stream; ready"
                    );
                }
            }
        }
    }
}

impl Sink for ClusterSink {
    fn batch(&mut self, events: &[Event], _refusable: bool) -> bool {
        // The log has them already: nothing here can refuse.
        self.count_off(events.len());
        true
    }

    fn published(&mut self) {
        self.publish_position();
    }

    fn idle(&mut self, _deep: bool) {
        self.take_empty_messages();
        self.publish_position();
    }

    fn finish(&mut self) {}

    fn snapshot_due(&mut self, stopping: bool) -> Option<u64> {
        if self.current.is_some() || self.through <= self.last_covered {
            return None;
        }
        // One at a time (`ClusterState::snapshot_in_flight`); a stop's snapshot goes anyway.
        if !stopping && self.state.snapshot_pending() {
            return None;
        }
        let due = stopping
            || self
                .snapshot_every
                .is_some_and(|every| self.last_snapshot.elapsed() >= every);
        due.then_some(self.through)
    }

    fn snapshot(&mut self, image: RingImage) {
        self.last_covered = image.covered;
        self.last_snapshot = Instant::now();
        self.state.snapshot_sent();
        // A closed channel: the nats thread is gone; the snapshot is not needed then.
        if self.snapshots.send(image).is_err() {
            self.state.snapshot_done();
        }
    }

    fn durable(&mut self, _k: u64) {}

    fn stalled(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;
    use crate::ring::{Ring, RingWriter};

    /// A capture handed to the nats thread holds back the next until it is stored (or given
    /// up): a store may wait for the cold tier and upload files, and images must not pile up
    /// meanwhile. A stop's snapshot goes anyway.
    #[test]
    fn no_capture_begins_while_the_last_one_is_being_stored_but_a_stops_does() {
        let (feed, state) = (Arc::new(Feed::default()), Arc::new(ClusterState::default()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut sink = ClusterSink::new(feed.clone(), state.clone(), 0, Some(Duration::ZERO), tx);
        let mut ring = RingWriter::new(Arc::new(Ring::new(3)));
        let message = |sink: &mut ClusterSink, ring: &mut RingWriter, seq: u64| {
            feed.messages.push((seq, 1));
            let e = Event::new(10, seq, Kind::Click);
            assert!(sink.batch(&[e], false));
            ring.apply_and_publish(e);
        };
        message(&mut sink, &mut ring, 1);
        let covered = sink.snapshot_due(false).expect("due");
        ring.begin_capture(covered);
        let image = loop {
            if let Some(image) = ring.capture_step(usize::MAX) {
                break image;
            }
        };
        sink.snapshot(image);
        assert_eq!(rx.try_recv().map(|i| i.covered), Ok(1));
        message(&mut sink, &mut ring, 2);
        assert_eq!(sink.snapshot_due(false), None, "the first is being stored");
        assert_eq!(sink.snapshot_due(true), Some(2), "a stop's snapshot goes");
        state.snapshot_done();
        assert_eq!(sink.snapshot_due(false), Some(2));
    }
}
