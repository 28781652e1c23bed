//! Durable cuts over a log that acknowledges batches out of order (cluster mode with
//! `--ack log`, `publisher.rs` module doc): a producer pushes two events, takes a ticket and
//! waits for `durable_cut() >= ticket`, racing with the publisher, which pops one-event
//! batches, hands them to a log, and completes cuts as outcomes arrive; the log acknowledges
//! the second batch before the first. (The log answers inside the publisher's own calls:
//! a log thread of its own made the model too large for CI; the outcome's wake-up is the
//! parker's token, which the park handshake models already cover.)
//!
//! What it checks, and why it matters: a POST answered 204 with `--ack log` must be in the
//! log. Once the producer sees its cut complete, both of its events must have been
//! acknowledged (the log sets their bits, with Release, before it reports the outcome). A cut
//! that completed on the acknowledgement of its last batch alone would release the producer
//! while the first batch is still out. And no producer waits forever: a lost outcome or a
//! lost wake-up would leave it spinning (loom's branch limit).
//!
//! Threads: the publisher, the producer, and the main thread, which closes the queue once the
//! producer is done. Negative control: the ticket taken before the push.

use std::collections::VecDeque;
use std::time::Duration;

use hourtally::event::Event;
use hourtally::publisher::{BatchLog, Outcome, Publisher};
use hourtally::writer::Ingest;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;

/// A log that acknowledges out of order: it holds batches until it has two, then reports
/// the second before the first; a batch's events count as "in the log" (bits set, with
/// Release) when its acknowledgement is reported.
struct TestLog {
    held: VecDeque<(u64, u64)>,
    /// Set once two batches were held (or at once, for a log that acknowledges each batch
    /// as it comes): from then on, everything held is acknowledged, newest first.
    releasing: bool,
    in_log: Arc<AtomicU64>,
}

impl BatchLog for TestLog {
    fn send(&mut self, id: u64, events: &[Event]) {
        let bits = events.iter().fold(0, |b, e| b | 1u64 << e.user);
        self.held.push_back((id, bits));
    }
    fn outcome(&mut self) -> Option<Outcome> {
        self.releasing |= self.held.len() >= 2;
        if !self.releasing {
            return None;
        }
        let (id, bits) = self.held.pop_back()?;
        // Release: "in the log" before the outcome is reported.
        self.in_log.fetch_or(bits, Ordering::Release);
        Some(Outcome::Acked(id))
    }
    fn cut_complete(&mut self, _k: u64) {}
    fn failing(&mut self, _failing: bool, _in_flight: usize) {}
    fn abandoned(&mut self, _id: u64, _events: usize) {}
    fn in_flight(&mut self, _n: usize) {}
}

fn acked_cut_model(ticket_before_push: bool, in_order: bool) {
    loom_tests::model(move || {
        let ingest = Arc::new(Ingest::new(4));
        let in_log = Arc::new(AtomicU64::new(0));
        let log = TestLog {
            held: VecDeque::new(),
            releasing: in_order,
            in_log: in_log.clone(),
        };
        // A timeout no model reaches: the log is never reported as failing.
        let publisher =
            Publisher::new(ingest.clone(), log, true, Duration::from_secs(3600)).with_batch_max(1);
        let publisher = thread::spawn(move || publisher.run());
        let producer = {
            let (ingest, in_log) = (ingest.clone(), in_log.clone());
            thread::spawn(move || {
                let bits = loom_tests::push_two_and_wait_for_cut(
                    &ingest,
                    &in_log,
                    ticket_before_push,
                    true,
                );
                assert_eq!(
                    bits & 0b110,
                    0b110,
                    "acked-cut violation: released with {bits:#b} in the log"
                );
            })
        };
        producer.join().unwrap();
        ingest.close();
        assert_eq!(
            publisher.join().unwrap(),
            0,
            "every batch acknowledged at stop"
        );
    });
}

#[test]
fn acked_cut_vs_producer() {
    acked_cut_model(false, false);
}

/// The same with a log that acknowledges each batch as soon as it has it.
#[test]
fn acked_cut_vs_producer_in_order() {
    acked_cut_model(false, true);
}

/// Negative control: the ticket taken before the push, with a log that acknowledges the
/// first batch before the second exists: cut 1 completes with the second event still out.
#[test]
#[should_panic(expected = "acked-cut violation")]
fn negative_control_ticket_before_push() {
    acked_cut_model(true, true);
}
