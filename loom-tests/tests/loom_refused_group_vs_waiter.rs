//! Refused groups (`--fsync always`, `ingest::Refusals`): a connection that begins a run,
//! pushes two events tagged with its slot, takes its durability ticket and waits for the
//! cut, then runs again with one more event, against a writer whose sink refuses the batch
//! holding one chosen user's event (a group the disk would not take) and keeps the rest.
//!
//! What it checks, and why it matters: once its cut is complete, the connection answers
//! `503` for as many of its last POSTs as the slot's `refused` count grew by, and `204` for
//! the others. That is right only if every refusal of the run is visible by then (the writer
//! counts it, Relaxed, before it completes the cut, Release; the connection reads it after
//! seeing the cut, Acquire) and the refused events are the run's last: with the first event
//! refused, a second one popped in a later batch must be refused too (the run is poisoned),
//! and the next run of the slot must not be (its run number reaches the writer with its
//! events). So: every event is kept or refused, never both, never neither; the refused ones
//! are the last of their run; each user is counted in the ring exactly when kept.
//!
//! Threads: the writer (`spin_limit(0)`), the connection (the only thread that spins), the
//! main thread (closes once the connection is done). Negative control: reading `refused`
//! before waiting for the cut (loom finds the writer refusing afterwards: the connection
//! would answer `204` for a refused event).

use hourtally::event::{Event, Kind};
use hourtally::ring::{Ring, RingWriter};
use hourtally::writer::{Ingest, Writer};
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;

/// What the connection saw: users kept by its first run, how many of that run were refused,
/// and how many of its second run (user 3) were.
type Seen = (u64, u64, u64);

/// Pushes users `users` as one run of slot 1, waits for the run's cut, and returns how many
/// of them were refused (read too early with `read_before_waiting`).
fn run(ingest: &Ingest, users: &[u64], read_before_waiting: bool) -> u64 {
    let refusals = ingest.refusals.as_ref().expect("refusals");
    let before = refusals.begin_run(1);
    {
        let mut run = ingest.producer_for(1).expect("open");
        for &user in users {
            run.push(Event::new(7, user, Kind::Click)).expect("room");
        }
    }
    let ticket = ingest.durability_ticket();
    let early = refusals.refused(1);
    ingest.request_cut();
    while ingest.durable_cut() < ticket {
        thread::yield_now();
    }
    if read_before_waiting {
        early - before
    } else {
        refusals.refused(1) - before
    }
}

/// The model with the sink refusing the batch that holds `refuse_user`.
fn refused_group_model(
    refuse_user: u64,
    read_before_waiting: bool,
) -> std::collections::BTreeSet<Seen> {
    loom_tests::model_outcomes(move || {
        let ingest = Arc::new(Ingest::new(4).with_refusals(2));
        let kept = Arc::new(AtomicU64::new(0));
        let ring = Arc::new(Ring::new(1));
        let writer = Writer::new(ingest.clone(), RingWriter::new(ring.clone()))
            .with_spin_limit(0)
            .with_sink(Box::new(loom_tests::RecordingSink {
                durable: kept.clone(),
                refuse_user: Some(refuse_user),
            }))
            .with_durable_cuts(4);
        let writer = thread::spawn(move || writer.run());
        let connection = {
            let (ingest, kept) = (ingest.clone(), kept.clone());
            thread::spawn(move || {
                let refused = run(&ingest, &[1, 2], read_before_waiting);
                // Acquire: pairs with the sink's Release.
                let first = kept.load(Ordering::Acquire);
                // The connection answers 204 for its first `2 - refused` POSTs, 503 for the
                // rest: exactly those must be the kept ones.
                let answered_204 = match refused {
                    0 => 0b110,
                    1 => 0b010,
                    _ => 0,
                };
                assert_eq!(
                    first, answered_204,
                    "refusal violation: kept {first:#b}, but {refused} refused"
                );
                // The next run of the slot starts clean.
                let refused_next = run(&ingest, &[3], false);
                let kept_next = kept.load(Ordering::Acquire) & 0b1000 != 0;
                assert_eq!(
                    kept_next,
                    refused_next == 0,
                    "refusal violation in the next run: kept {kept_next}, {refused_next} refused"
                );
                (first, refused, refused_next)
            })
        };
        let seen = connection.join().unwrap();
        ingest.close();
        writer.join().unwrap();
        // A kept event counts, a refused one does not.
        let kept_all = kept.load(Ordering::Acquire);
        assert_eq!(ring.read(7).clicks, u64::from(kept_all.count_ones()));
        seen
    })
}

#[test]
fn refused_group_vs_waiter() {
    // The second event refused: in one batch with the first (both refused), or alone.
    assert_eq!(
        refused_group_model(2, false),
        [(0, 2, 0), (0b010, 1, 0)].into_iter().collect(),
        "every case reached"
    );
}

#[test]
fn a_refused_first_event_refuses_the_rest_of_its_run_and_not_the_next() {
    // The first event refused: the second is refused with it or, popped later, as its run's.
    assert_eq!(
        refused_group_model(1, false),
        [(0, 2, 0)].into_iter().collect(),
        "every case reached"
    );
}

/// Negative control: `refused` read before the cut is complete.
#[test]
#[should_panic(expected = "refusal violation")]
fn negative_control_refused_read_before_the_cut() {
    refused_group_model(2, true);
}
