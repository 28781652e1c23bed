//! A run of pushes through one entry into the gate (`Ingest::producer`, a connection's batch
//! of POSTs) racing with the writer going idle, and with shutdown.
//!
//! A run pays the gate's RMWs and the park handshake's fence once, when it ends, instead of
//! once per push. What must still hold:
//!
//! - **no lost wake-up** (`run_of_two_vs_parking_writer`): the writer (`spin_limit(0)`, so it
//!   parks as soon as the queue looks empty) may park after the run's first push; the run's
//!   end (its fence, then its look at `idle`) must wake it, or the two events would wait
//!   forever. The main thread spins until both are applied; a lost wake-up shows as loom's
//!   branch limit, as in `loom_queue_park_progress.rs`.
//! - **a run that fills the queue wakes the writer** (`run_longer_than_the_queue`): with room
//!   for one event, a run's second push finds the queue full while the writer may sleep with
//!   the first; the full push must wake it, or the run (which retries here, holding the
//!   gate) would wait for room forever.
//! - **nothing accepted is dropped at shutdown** (`run_of_two_vs_close`): `close` waits for
//!   a run in progress to leave the gate, so a run either got in before `close` (both its
//!   events are applied before the writer returns) or was refused as a whole (`Closed`),
//!   never half taken. Both outcomes are reached.
//!
//! Three threads each: the writer, the producer running the run, and the main thread (the
//! only one that spins).

use hourtally::event::{Event, Kind};
use hourtally::writer::{Ingest, PushError};
use loom::thread;

const HOUR: u32 = 7;

/// Pushes users 1 and 2 in one run; how many were accepted (a refused run takes none).
fn run_of_two(ingest: &Ingest) -> u64 {
    match ingest.producer() {
        Ok(mut run) => {
            for user in [1, 2] {
                run.push(Event::new(HOUR, user, Kind::Click))
                    .expect("the queue has room and a run inside the gate is not refused");
            }
            2
        }
        Err(e) => {
            assert_eq!(e, PushError::Closed);
            0
        }
    }
}

#[test]
fn run_of_two_vs_parking_writer() {
    loom_tests::model(|| {
        let (ingest, ring, writer) = loom_tests::parking_writer(4);
        let producer = {
            let ingest = ingest.clone();
            thread::spawn(move || run_of_two(&ingest))
        };
        assert_eq!(producer.join().unwrap(), 2);
        // Only this thread spins: a lost wake-up leaves it here for good (loom's branch limit).
        loom_tests::wait_applied(&ingest, 2);
        assert_eq!(ring.read(HOUR).clicks, 2);
        ingest.close();
        writer.join().unwrap();
    });
}

#[test]
fn run_longer_than_the_queue() {
    loom_tests::model(|| {
        let (ingest, ring, writer) = loom_tests::parking_writer(1);
        let producer = {
            let ingest = ingest.clone();
            thread::spawn(move || {
                let mut run = ingest.producer().expect("open");
                run.push(Event::new(HOUR, 1, Kind::Click))
                    .expect("the queue has room for one");
                // Only this thread spins: the writer must have been woken by the full push.
                while let Err(e) = run.push(Event::new(HOUR, 2, Kind::Click)) {
                    assert_eq!(e, PushError::Full);
                    thread::yield_now();
                }
            })
        };
        producer.join().unwrap();
        loom_tests::wait_applied(&ingest, 2);
        assert_eq!(ring.read(HOUR).clicks, 2);
        ingest.close();
        writer.join().unwrap();
    });
}

#[test]
fn run_of_two_vs_close() {
    let outcomes = loom_tests::model_outcomes(|| {
        let (ingest, ring, writer) = loom_tests::parking_writer(4);
        let producer = {
            let ingest = ingest.clone();
            thread::spawn(move || run_of_two(&ingest))
        };
        ingest.close();
        assert!(
            ingest.producer().is_err(),
            "a run begun after close() returned was not refused"
        );
        writer.join().unwrap();
        let accepted = producer.join().unwrap();
        assert_eq!(
            ring.read(HOUR).clicks,
            accepted,
            "shutdown violation: the writer stopped without every accepted event of the run"
        );
        assert_eq!(ingest.applied(), accepted);
        accepted
    });
    assert_eq!(outcomes, [0, 2].into(), "both sides of the race reached");
}
