//! A retry behind its original: the same event with the same event id pushed twice while the
//! writer applies and a reader reads the hour.
//!
//! What it checks, and why it matters: a client that timed out retries through another
//! connection (or another server) while its first POST is still queued. Both are answered
//! `204`; the event must count once. The writer applies them in queue order (which of two
//! connections pushed first changes nothing the writer sees: the queue orders them); the
//! second is a repeat. So: the progress marker counts both, the ring counts one
//! repeat (`Ring::duplicates`, a Relaxed statistic read here after the writer's join), the
//! hour ends at one click by one user, and no read meanwhile ever sees two clicks.
//!
//! Threads: the writer (`spin_limit(0)`), a producer that pushes the event and its retry, a
//! reader of the hour; the main thread closes. (Two producers, one push each, took 14
//! minutes to explore at two preemptions, and add only the queue's own race, which the
//! queue's models check.)

use hourtally::event::{Event, Kind};
use hourtally::ring::{Counts, Ring, RingWriter};
use hourtally::writer::{Ingest, Writer};
use loom::sync::Arc;
use loom::thread;

const HOUR: u32 = 7;

#[test]
fn a_retry_behind_its_original_counts_once() {
    let outcomes = loom_tests::model_outcomes(|| {
        let ingest = Arc::new(Ingest::new(4));
        let ring = Arc::new(Ring::new(2));
        let writer = Writer::new(ingest.clone(), RingWriter::new(ring.clone())).with_spin_limit(0);
        let writer = thread::spawn(move || writer.run());
        let event = Event::new(HOUR, 1, Kind::Click).with_id(42);
        let producer = {
            let ingest = ingest.clone();
            thread::spawn(move || ingest.push(event).is_ok() && ingest.push(event).is_ok())
        };
        let reader = {
            let ring = ring.clone();
            thread::spawn(move || ring.read(HOUR))
        };
        assert!(producer.join().unwrap(), "the queue has room");
        let seen = reader.join().unwrap();
        ingest.close();
        writer.join().unwrap();
        let once = Counts {
            unique_users: 1,
            clicks: 1,
            impressions: 0,
        };
        assert_eq!(ingest.applied(), 2, "retry violation: progress marker");
        assert_eq!(ring.duplicates(), 1, "retry violation: repeats counted");
        assert_eq!(ring.read(HOUR), once, "retry violation: counted twice");
        assert!(
            seen == Counts::default() || seen == once,
            "retry violation: a read saw {seen:?}"
        );
        seen == once
    });
    // The reader ran before the writer published the event, and after it: both reached.
    assert_eq!(outcomes, [false, true].into(), "outcomes reached");
}
