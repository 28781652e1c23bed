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
    while !ingest.idle.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    ingest
        .push(Event::new(5, 9, Kind::Impression))
        .expect("queue has room");
    while ingest.applied() < 1 {
        std::thread::yield_now();
    }
    assert_eq!(ring.read(5).impressions, 1);
    ingest.close();
    handle.join().expect("writer panicked");
}
