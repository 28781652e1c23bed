//! The publisher's log in cluster mode: batches go to the nats thread over a tokio channel,
//! outcomes come back through a queue, and each change is counted and logged.
//!
//! A batch is retried with its de-duplication id for [`RETRY_FOR`] at most, inside the
//! stream's [`DUPLICATE_WINDOW`], so a retry never counts an event twice. A POST waits at
//! most `--log-timeout` (≤ 60 s, [`MAX_LOG_TIMEOUT_S`](crate::config::MAX_LOG_TIMEOUT_S)) for
//! its cut and is then closed unanswered, so when a batch is given up after 100 s no POST is
//! still waiting for it: a batch given up never releases a 204 (`publisher` module doc).

use std::time::Duration;

use bytes::Bytes;
use crossbeam_queue::SegQueue;

use super::state::{bump, ClusterState};
use crate::ack::DurableWaiters;
use crate::event::Event;
use crate::publisher::{BatchLog, Outcome};
use crate::record::{encode_group, HEADER_BYTES, RECORD_BYTES_IDS};
use crate::sync::{Arc, Ordering};

/// How long the nats thread retries a batch with its de-duplication id before giving up.
pub const RETRY_FOR: Duration = Duration::from_secs(100);
/// The stream's duplicate window (set when this server creates the stream).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// A batch for the nats thread to publish.
#[derive(Debug)]
pub struct Outgoing {
    /// The batch's number in this process (its de-duplication id is node, boot and this).
    pub id: u64,
    /// Its events, encoded as one group (`record`).
    pub payload: Bytes,
}

/// [`BatchLog`] over the nats thread.
#[derive(Debug)]
pub struct Outbox {
    pub out: tokio::sync::mpsc::UnboundedSender<Outgoing>,
    /// Pushed by the nats thread, which then unparks the publisher.
    pub outcomes: Arc<SegQueue<Outcome>>,
    pub state: Arc<ClusterState>,
    /// With `--ack log`: the connections waiting for cuts.
    pub waiters: Option<Arc<DurableWaiters>>,
    pub log_timeout: Duration,
}

impl BatchLog for Outbox {
    fn send(&mut self, id: u64, events: &[Event]) {
        let mut payload = Vec::with_capacity(HEADER_BYTES + RECORD_BYTES_IDS * events.len());
        encode_group(&mut payload, id, events);
        // A closed channel: the nats thread is gone (stopping past its deadline); the batch
        // stays in flight and is reported unacknowledged at stop.
        let _ = self.out.send(Outgoing {
            id,
            payload: Bytes::from(payload),
        });
    }

    fn outcome(&mut self) -> Option<Outcome> {
        self.outcomes.pop()
    }

    fn cut_complete(&mut self, k: u64) {
        if let Some(waiters) = &self.waiters {
            waiters.wake(k);
        }
    }

    fn failing(&mut self, failing: bool, in_flight: usize) {
        self.state.set_log_failing(failing);
        if failing {
            tracing::warn!(
                log_timeout_s = self.log_timeout.as_secs(),
                in_flight,
                "cluster: the log has not acknowledged a batch within --log-timeout; POSTs get 503"
            );
        } else {
            tracing::info!("cluster: the log takes events again");
        }
    }

    fn abandoned(&mut self, id: u64, events: usize) {
        bump(&self.state.events_abandoned, events as u64);
        tracing::error!(
            batch = id,
            events,
            "cluster: gave up publishing a batch after retrying for its whole duplicate window; its events are lost"
        );
    }

    fn in_flight(&mut self, n: usize) {
        // Relaxed: a figure for /metrics.
        self.state.batches_in_flight.store(n, Ordering::Relaxed);
    }
}
