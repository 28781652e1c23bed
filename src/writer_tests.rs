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

/// A sink that refuses (when allowed) the batches whose first event's user is in `refuse`,
/// and records the users of the batches it keeps.
#[derive(Debug)]
struct RefusingSink {
    refuse: Vec<u64>,
    kept: Arc<parking_lot::Mutex<Vec<u64>>>,
}

impl Sink for RefusingSink {
    fn batch(&mut self, events: &[Event], refusable: bool) -> bool {
        if refusable && self.refuse.contains(&events[0].user) {
            return false;
        }
        self.kept.lock().extend(events.iter().map(|e| e.user));
        true
    }
    fn idle(&mut self, _deep: bool) {}
    fn finish(&mut self) {}
    fn snapshot_due(&mut self, _stopping: bool) -> Option<u64> {
        None
    }
    fn snapshot(&mut self, _image: crate::ring::RingImage) {}
    fn durable(&mut self, _k: u64) {}
    fn stalled(&self) -> bool {
        false
    }
}

/// With refusals (`--fsync always`): a batch the sink refuses is neither applied nor kept,
/// its events are counted refused for their source, and every later event of the same run
/// is refused too, so that a run's refused events are always its last; the next run of the
/// same source starts clean.
#[test]
fn a_refused_batch_is_never_applied_and_refuses_the_rest_of_its_runs() {
    let ingest = Arc::new(Ingest::new(64).with_refusals(3));
    let ring = Arc::new(Ring::new(48));
    let kept = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let sink = RefusingSink {
        refuse: vec![12],
        kept: kept.clone(),
    };
    // Batches of one event: each is its own batch and its own cut.
    let writer = Writer::new(ingest.clone(), RingWriter::new(ring.clone()))
        .with_sink(Box::new(sink))
        .with_durable_cuts(1);
    let handle = std::thread::spawn(move || writer.run());
    let refusals = ingest.refusals.as_ref().expect("refusals");
    let push = |src: u16, user: u64| {
        let mut p = ingest.producer_for(src).expect("open");
        p.push(Event::new(100, user, Kind::Click)).expect("room");
    };
    // Source 1's run: users 10, 11 kept; 12 refused by the sink; 13 refused as its run's.
    // Source 2's run, interleaved: kept.
    assert_eq!(refusals.begin_run(1), 0);
    assert_eq!(refusals.begin_run(2), 0);
    for (src, user) in [(1, 10), (2, 20), (1, 11), (1, 12), (2, 21), (1, 13)] {
        push(src, user);
    }
    wait_until("the writer took every event", || ingest.applied() == 6);
    assert_eq!((refusals.refused(1), refusals.refused(2)), (2, 0));
    assert_eq!(*kept.lock(), [10, 20, 11, 21]);
    // Source 1's next run is not refused for the last one's failure.
    assert_eq!(refusals.begin_run(1), 2);
    push(1, 14);
    wait_until("the writer took the next run", || ingest.applied() == 7);
    assert_eq!(refusals.refused(1), 2);
    ingest.close();
    handle.join().expect("writer");
    assert_eq!(*kept.lock(), [10, 20, 11, 21, 14]);
    assert_eq!(ring.read(100).clicks, 5, "only kept events count");
}
