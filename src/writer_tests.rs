//! Tests of `writer`.

use super::*;
use crate::event::Kind;
use crate::ring::{Counts, Ring};
use crate::sync::Arc;

fn start(capacity: usize) -> (Arc<Ingest>, Arc<Ring>, std::thread::JoinHandle<RingWriter>) {
    let ingest = Arc::new(Ingest::new(capacity));
    let ring = Arc::new(Ring::new(48));
    let writer = Writer::new(ingest.clone(), RingWriter::new(ring.clone()));
    (ingest, ring, std::thread::spawn(move || writer.run()))
}

/// Waits until `done` holds; fails naming `what` if it does not within [`DEADLINE`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting until {what}"
        );
        std::thread::yield_now();
    }
}

/// Far longer than any of these waits takes on a loaded machine (microseconds), short
/// enough that a lost wake-up fails the run instead of hanging it.
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

#[test]
fn applies_every_pushed_event_and_stops_after_close() {
    let (ingest, ring, handle) = start(1024);
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let ingest = ingest.clone();
            std::thread::spawn(move || {
                for i in 0..5_000u64 {
                    let event = Event::new(100, p * 10_000 + i % 100, Kind::Click);
                    loop {
                        match ingest.push(event) {
                            Ok(()) => break,
                            Err(PushError::Full) => std::thread::yield_now(),
                            Err(PushError::Closed) => panic!("closed early"),
                        }
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().expect("producer panicked");
    }
    ingest.close();
    assert_eq!(
        ingest.push(Event::new(100, 1, Kind::Click)),
        Err(PushError::Closed)
    );
    let ring_writer = handle.join().expect("writer panicked");
    assert_eq!(ingest.applied(), 20_000);
    assert_eq!(
        ring.read(100),
        Counts {
            unique_users: 400,
            clicks: 20_000,
            impressions: 0
        }
    );
    assert_eq!(ring_writer.ring().sealed_drops(), 0);
}

#[test]
fn a_full_queue_refuses_and_loses_nothing() {
    // No writer running: the queue fills and refuses.
    let ingest = Ingest::new(2);
    assert_eq!(ingest.push(Event::new(1, 1, Kind::Click)), Ok(()));
    assert_eq!(ingest.push(Event::new(1, 2, Kind::Click)), Ok(()));
    assert_eq!(
        ingest.push(Event::new(1, 3, Kind::Click)),
        Err(PushError::Full)
    );
    assert_eq!(ingest.queued(), 2);
}

#[test]
fn a_parked_writer_wakes_for_a_single_event() {
    let (ingest, ring, handle) = start(16);
    // Let the writer go idle and park (it spins 16 turns with backoff, then yields 16 times).
    wait_until("the writer goes idle", || {
        ingest.idle.load(Ordering::SeqCst)
    });
    ingest
        .push(Event::new(5, 9, Kind::Impression))
        .expect("queue has room");
    // A lost wake-up leaves the writer parked for good: fail, do not hang.
    wait_until("the parked writer wakes and applies the event", || {
        ingest.applied() >= 1
    });
    assert_eq!(ring.read(5).impressions, 1);
    ingest.close();
    handle.join().expect("writer panicked");
}
