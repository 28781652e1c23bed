//! Model 4: shutdown (`Ingest::close`) racing with producers' pushes and with the writer
//! going idle.
//!
//! What it checks, and why it matters: a push that returned `Ok` is a 204 the client was
//! given, so the event must be applied before `Writer::run` returns (a graceful stop loses
//! nothing, DESIGN.md §3); a push that loses the race with `close` must be refused with
//! `PushError::Closed`, never accepted and then dropped; once a producer was refused, its
//! later pushes are refused too; and once `close` has returned, every push is refused. This
//! is the gate handshake of `writer.rs`: producers enter the gate around their push, `close`
//! shuts it, waits for it to empty, and only then tells the writer to drain and stop.
//!
//! Threads: the main thread (calls `close`), the writer (`spin_limit(0)`, so it may be parked
//! or about to park when `close` comes) and two producers. Only the main thread ever spins
//! (in `close`, waiting for the gate to empty).

use hourtally::event::{Event, Kind};
use hourtally::ring::{Counts, Ring, RingWriter};
use hourtally::writer::{Ingest, PushError, Writer};
use loom::sync::Arc;
use loom::thread;

const HOUR: u32 = 5;

/// Producer 1 pushes two clicks (users 1 and 3), producer 2 one impression (user 2), all
/// concurrently with `close`. Afterwards the ring must hold exactly the accepted events.
#[test]
fn close_vs_two_producers_and_idle_writer() {
    let outcomes = loom_tests::model_outcomes(|| {
        let ingest = Arc::new(Ingest::new(4));
        let ring = Arc::new(Ring::new(1));
        let writer = Writer::new(ingest.clone(), RingWriter::new(ring.clone())).with_spin_limit(0);
        let writer = thread::spawn(move || writer.run());
        let producers: Vec<_> = [
            vec![(1, Kind::Click), (3, Kind::Click)],
            vec![(2, Kind::Impression)],
        ]
        .into_iter()
        .map(|events| {
            let ingest = ingest.clone();
            thread::spawn(move || {
                events
                    .into_iter()
                    .map(|(user, kind)| ingest.push(Event::new(HOUR, user, kind)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();

        ingest.close();
        assert_eq!(
            ingest.push(Event::new(HOUR, 4, Kind::Click)),
            Err(PushError::Closed),
            "shutdown violation: a push after close() returned was not refused"
        );
        assert!(ingest.is_closed());

        let ring_writer = writer.join().unwrap();
        let accepted: Vec<u64> = producers
            .into_iter()
            .map(|p| {
                let results = p.join().unwrap();
                assert!(
                    !results.contains(&Err(PushError::Full)),
                    "the queue has room for every push"
                );
                let n = results.iter().take_while(|r| r.is_ok()).count();
                assert!(
                    results[n..].iter().all(|r| *r == Err(PushError::Closed)),
                    "shutdown violation: a push was accepted after one was refused: {results:?}"
                );
                n as u64
            })
            .collect();
        let n = accepted.iter().sum::<u64>();

        // Every accepted event was applied before run() returned, and nothing else was.
        assert_eq!(
            ring.read(HOUR),
            Counts {
                unique_users: n,
                clicks: accepted[0],
                impressions: accepted[1],
            },
            "shutdown violation: accepted {accepted:?} (producer 1, producer 2)"
        );
        assert_eq!(ingest.applied(), n, "shutdown violation: progress marker");
        assert_eq!(ingest.queued(), 0, "shutdown violation: left in the queue");
        assert_eq!(ring_writer.ring().sealed_drops(), 0);
        (accepted[0], accepted[1])
    });
    // (events accepted from producer 1, from producer 2): every split was reached, from
    // nothing accepted to everything.
    let expected = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)];
    assert_eq!(outcomes, expected.into(), "outcomes reached");
}
