//! Model 3: two producers → `Ingest` queue → `Writer::run` → a reader of the ring and of the
//! progress marker `Ingest::applied`, with the writer parking when idle. Three threads: the
//! writer, producer 1, and the main thread, which is producer 2 and then the reader.
//!
//! What it checks, and why it matters:
//! - **exactly once**: every event a producer pushed is applied once, neither lost nor
//!   doubled (final ring counts after `close` + join, and `applied` equals the pushes);
//! - **progress marker**: a reader that loads `applied() == n` then reads a ring that
//!   includes at least the first `n` events. Both producers write the same hour with
//!   distinct users (producer 1 clicks, producer 2 impressions), and nothing is sealed, so
//!   whatever the order of the queue, the first `n` events add `n` to
//!   `clicks + impressions` (and to `unique_users`): the check is `clicks + impressions >= n`;
//! - **no lost wake-up**: the writer runs with `spin_limit(0)`, so it announces itself idle
//!   and parks as soon as it finds the queue empty, racing with the producers' pushes (the
//!   Dekker handshake of `writer.rs`). The main thread pushes, joins producer 1, then waits
//!   for `applied()` to reach the number of pushes by spinning with `loom::thread::yield_now`,
//!   and only then calls `close()`, whose unpark would otherwise wake the writer. If a push's
//!   wake-up were lost, the writer would stay parked with an event in the queue and the main
//!   thread would spin forever: loom reports that execution as exceeding its branch limit.
//!   The sanity control at the end shows that this is indeed how loom reports a writer that
//!   never applies.
//!
//! At most one thread spins at a time: the writer with `spin_limit(0)` goes straight to the
//! parker, which blocks, but its `Queue::pop` spins while a push has moved the queue's tail
//! and not yet written its slot; so the main thread spins only after both pushes returned.
//! With two threads spinning at once, each waiting for a third, loom's executions become
//! unbounded.
//!
//! Under loom the queue is the port of crossbeam's `ArrayQueue` onto loom's atomics
//! (`queue.rs`), so the handshake's two SeqCst fences are checked too: without either one,
//! loom finds the lost wake-up (`loom_park_handshake_without_fence.rs`).

use hourtally::event::{Event, Kind};
use hourtally::ring::{Counts, Ring, RingWriter};
use hourtally::writer::{Ingest, Writer};
use loom::sync::Arc;
use loom::thread;
use std::collections::BTreeSet;

const HOUR: u32 = 3;

/// Runs the model; the main thread waits until `applied()` reaches `wait_for`.
fn park_progress_model(wait_for: u64) -> BTreeSet<Vec<(u64, u64, u64)>> {
    loom_tests::model_outcomes(move || {
        let ingest = Arc::new(Ingest::new(4));
        let ring = Arc::new(Ring::new(1));
        let writer = Writer::new(ingest.clone(), RingWriter::new(ring.clone())).with_spin_limit(0);
        let writer = thread::spawn(move || writer.run());
        // Producer 1 is a thread; the main thread is producer 2, then the reader. It joins
        // producer 1 before it starts spinning: the writer's `pop` spins while a push has
        // moved the tail but not yet written its slot, and two threads spinning at once
        // (each waiting for a third) give loom unbounded executions.
        let producer = {
            let ingest = ingest.clone();
            thread::spawn(move || {
                ingest
                    .push(Event::new(HOUR, 1, Kind::Click))
                    .expect("the queue has room and is open");
            })
        };
        ingest
            .push(Event::new(HOUR, 2, Kind::Impression))
            .expect("the queue has room and is open");
        producer.join().unwrap();

        // The reader: follow the progress marker until every push is applied. The ring is
        // read only when the marker has moved: a read for an `n` already checked could only
        // show more (model 1: answers never go back), and skipping it keeps the model small.
        let mut checked = 0;
        let mut marks = Vec::new();
        loop {
            let n = ingest.applied();
            if n > checked {
                let c = ring.read(HOUR);
                assert!(
                    c.clicks + c.impressions >= n,
                    "progress violation: applied() was {n} but the ring shows {c:?}"
                );
                assert_eq!(c.unique_users, c.clicks + c.impressions, "distinct users");
                checked = n;
                marks.push((n, c.clicks, c.impressions));
            }
            if n >= wait_for {
                break;
            }
            thread::yield_now();
        }

        ingest.close();
        let ring_writer = writer.join().unwrap();
        assert_eq!(ingest.applied(), 2, "every push applied once");
        assert_eq!(ingest.queued(), 0);
        assert_eq!(ring_writer.ring().sealed_drops(), 0);
        assert_eq!(
            ring.read(HOUR),
            Counts {
                unique_users: 2,
                clicks: 1,
                impressions: 1
            },
            "every push applied exactly once"
        );
        marks
    })
}

/// Two producers push one event each while the writer parks and wakes; the main thread
/// (the second producer) then reads the ring against the progress marker until both are
/// applied.
#[test]
fn two_producers_writer_park_and_progress() {
    let outcomes = park_progress_model(2);
    // What the reader saw each time the marker moved, as (applied, clicks, impressions):
    // both events in one batch; either producer's event first; or, at `applied == 1`, a ring
    // already one batch ahead of the marker.
    let expected = [
        vec![(2, 1, 1)],
        vec![(1, 1, 0), (2, 1, 1)],
        vec![(1, 0, 1), (2, 1, 1)],
        vec![(1, 1, 1), (2, 1, 1)],
    ];
    assert_eq!(outcomes, expected.into(), "outcomes reached");
}

/// Sanity control for the wake-up check: the main thread waits for a third event that no
/// one pushes, so the writer parks for good and the main thread spins. Loom must report the
/// spin (its branch limit), which is how a lost wake-up in the real model would show.
#[test]
#[should_panic(expected = "Model exceeded maximum number of branches")]
fn sanity_control_waiting_for_an_event_never_pushed() {
    park_progress_model(3);
}
