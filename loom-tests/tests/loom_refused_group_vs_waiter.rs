//! Refused groups (`--fsync always`, `ingest::Refusals`): a connection that begins a run,
//! pushes two events tagged with its slot, takes its durability ticket and waits for the
//! cut, against a writer whose sink refuses the batch holding user 2's event (a group the disk
//! would not take) and keeps the rest.
//!
//! What it checks, and why it matters: once its cut is complete, the connection answers
//! `503` for as many of its last POSTs as the slot's `refused` count grew by, and `204` for
//! the others. That is right only if every refusal of the run is visible by then (the writer
//! counts it, Relaxed, before it completes the cut, Release; the connection reads it after
//! seeing the cut, Acquire) and the refused events are the run's last (the writer refuses
//! the rest of a run once it refused one of it). So: every event is kept or refused, never
//! both, never neither; the refused ones are the last; and each user is counted in the ring
//! exactly when kept.
//!
//! Threads: the writer (`spin_limit(0)`), the connection (the only thread that spins), the
//! main thread (closes once the connection is done). Negative control: reading `refused`
//! before waiting for the cut (loom finds the writer refusing afterwards: the connection
//! would answer `204` for a refused event).

use hourtally::event::{Event, Kind};
use hourtally::ring::{Ring, RingImage, RingWriter};
use hourtally::writer::{Ingest, Sink, Writer};
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;

/// Refuses (when allowed) a batch that holds user 2's event; records the users it keeps.
#[derive(Debug)]
struct RefusingSink(Arc<AtomicU64>);

impl Sink for RefusingSink {
    fn batch(&mut self, events: &[Event], refusable: bool) -> bool {
        if refusable && events.iter().any(|e| e.user == 2) {
            return false;
        }
        let bits = events.iter().fold(0, |b, e| b | 1u64 << e.user);
        // Release: "durable" before `batch` returns, as the journal's sync is.
        self.0.fetch_or(bits, Ordering::Release);
        true
    }
    fn idle(&mut self, _deep: bool) {}
    fn finish(&mut self) {}
    fn snapshot_due(&mut self, _stopping: bool) -> Option<u64> {
        None
    }
    fn snapshot(&mut self, _image: RingImage) {}
    fn durable(&mut self, _k: u64) {}
    fn stalled(&self) -> bool {
        false
    }
}

/// One run of the model: `(users kept, events refused)` as the connection sees them.
fn refused_group_model(read_before_waiting: bool) -> std::collections::BTreeSet<(u64, u64)> {
    loom_tests::model_outcomes(move || {
        let ingest = Arc::new(Ingest::new(4).with_refusals(2));
        let kept = Arc::new(AtomicU64::new(0));
        let ring = Arc::new(Ring::new(1));
        let writer = Writer::new(ingest.clone(), RingWriter::new(ring.clone()))
            .with_spin_limit(0)
            .with_sink(Box::new(RefusingSink(kept.clone())))
            .with_durable_cuts(4);
        let writer = thread::spawn(move || writer.run());
        let connection = {
            let (ingest, kept) = (ingest.clone(), kept.clone());
            thread::spawn(move || {
                let refusals = ingest.refusals.as_ref().expect("refusals");
                let before = refusals.begin_run(1);
                {
                    let mut run = ingest.producer_for(1).expect("open");
                    for user in [1, 2] {
                        run.push(Event::new(7, user, Kind::Click)).expect("room");
                    }
                }
                let ticket = ingest.durability_ticket();
                let early = refusals.refused(1);
                ingest.request_cut();
                while ingest.durable_cut() < ticket {
                    thread::yield_now();
                }
                let refused = if read_before_waiting {
                    early
                } else {
                    refusals.refused(1)
                } - before;
                // Acquire: pairs with the sink's Release.
                let kept = kept.load(Ordering::Acquire);
                // The connection answers 204 for its first `2 - refused` POSTs, 503 for the
                // rest: exactly those must be the kept ones.
                let answered_204 = match refused {
                    0 => 0b110,
                    1 => 0b010,
                    _ => 0,
                };
                assert_eq!(
                    kept, answered_204,
                    "refusal violation: kept {kept:#b}, but {refused} refused"
                );
                (kept, refused)
            })
        };
        let outcome = connection.join().unwrap();
        ingest.close();
        writer.join().unwrap();
        // A kept event counts, a refused one does not.
        assert_eq!(ring.read(7).clicks, outcome.0.count_ones() as u64);
        outcome
    })
}

#[test]
fn refused_group_vs_waiter() {
    let outcomes = refused_group_model(false);
    // Both events in one refused batch, or user 1 kept and user 2 refused.
    assert_eq!(
        outcomes,
        [(0, 2), (0b010, 1)].into_iter().collect(),
        "every case reached"
    );
}

/// Negative control: `refused` read before the cut is complete.
#[test]
#[should_panic(expected = "refusal violation")]
fn negative_control_refused_read_before_the_cut() {
    refused_group_model(true);
}
