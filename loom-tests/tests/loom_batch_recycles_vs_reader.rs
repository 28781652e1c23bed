//! Several recycles of one slot inside one writer batch, with a reader of each hour.
//!
//! What it checks, and why it matters: the writer publishes once per batch, so within a
//! batch one slot can pass through several hours (h, then h + capacity, then h + 2 ×
//! capacity) before readers see any of them. Each recycle seals the old hour into the
//! archive at once, while the slot shows the last published hour. A reader must still get,
//! for every hour, a prefix of its applied events: the published snapshot, or the archived
//! total once the slot has moved past it — never zeros for an hour that had been visible,
//! and never another hour's counts. (The `recycle_vs_*` models publish after every event;
//! this one does not.)
//!
//! Threads: the main thread is the writer (one batch: two events of each of three hours, one
//! slot, then one publish); one reader asks for hour A, B, then A again.

use hourtally::event::{Event, Kind};
use hourtally::ring::{Counts, Ring, RingWriter};
use loom::sync::Arc;
use loom::thread;

const A: u32 = 0;
const B: u32 = 1;
const C: u32 = 2;

fn counts(unique_users: u64, clicks: u64) -> Counts {
    Counts {
        unique_users,
        clicks,
        impressions: 0,
    }
}

#[test]
fn batch_of_recycles_vs_reader() {
    let outcomes = loom_tests::model_outcomes(|| {
        let ring = Arc::new(Ring::new(1));
        let mut writer = RingWriter::new(ring.clone());
        // Published before the batch: hour A with one click.
        writer.apply_and_publish(Event::new(A, 1, Kind::Click));

        let reader = {
            let ring = ring.clone();
            thread::spawn(move || {
                let a1 = ring.read(A);
                let b = ring.read(B);
                let a2 = ring.read(A);
                // A: its published prefix (1 click) or its final total (2).
                for a in [a1, a2] {
                    assert!(
                        a == counts(1, 1) || a == counts(2, 2),
                        "batch violation: hour A answered {a:?}"
                    );
                }
                assert!(a2.clicks >= a1.clicks, "batch violation: hour A went back");
                // B was never published in its slot: zeros while A or earlier shows, its
                // archived total once C shows. Never a partial B, never C's counts.
                assert!(
                    b == Counts::default() || b == counts(2, 2),
                    "batch violation: hour B answered {b:?}"
                );
                if b == counts(2, 2) {
                    assert_eq!(a2, counts(2, 2), "batch violation: B final but A not");
                }
                (a1.clicks, b.clicks, a2.clicks)
            })
        };
        // One batch: A's second event, then B twice (seals A), then C twice (seals B).
        writer.apply(Event::new(A, 2, Kind::Click));
        writer.apply(Event::new(B, 1, Kind::Click));
        writer.apply(Event::new(B, 2, Kind::Click));
        writer.apply(Event::new(C, 1, Kind::Click));
        writer.apply(Event::new(C, 2, Kind::Click));
        writer.publish();
        let outcome = reader.join().unwrap();
        assert_eq!(ring.read(A), counts(2, 2));
        assert_eq!(ring.read(B), counts(2, 2));
        assert_eq!(ring.read(C), counts(2, 2));
        outcome
    });
    // (A's clicks, B's clicks, A's clicks again): every allowed combination was reached.
    // (A final before B is read means C shows, so B is final too: no (2, 0, 2).)
    let expected = [(1, 0, 1), (1, 0, 2), (1, 2, 2), (2, 2, 2)];
    assert_eq!(outcomes, expected.into(), "answers reached");
}
