//! Model 1: the writer publishing a slot vs a reader copying it (the per-slot seqlock of
//! `ring::slot`, and the same through `RingWriter::apply` + `publish` / `Ring::read`).
//!
//! Why it matters: a GET never waits for the writer, so the only thing standing between a
//! reader and a torn answer (one hour's clicks with another write's impressions, or an hour
//! with counters that belong to another hour) is the seqlock's orderings. ARCHITECTURE.md ("The ring")
//! promises that every answer equals the totals of some prefix of the events applied to
//! that hour, and that a reader never sees its counters go backwards.
//!
//! The negative controls at the end run the same model with a deliberately broken read
//! (`Slot::try_read_broken`, compiled only under `--cfg hourtally_loom`) and must fail.

use hourtally::event::{Event, Kind};
use hourtally::ring::slot::BrokenRead;
use hourtally::ring::{Counts, Ring, RingWriter, Slot, Snapshot};
use loom::sync::Arc;
use loom::thread;
use std::collections::BTreeSet;

const HOUR: u32 = 7;

fn counts(unique_users: u64, clicks: u64, impressions: u64) -> Counts {
    Counts {
        unique_users,
        clicks,
        impressions,
    }
}

/// The writer's event sequence, as the snapshots of its prefixes: nothing yet, then
/// user 1 clicks, then user 2 sees an impression. Every field changes from one prefix to
/// the next, so any mixture of two snapshots is none of them.
fn prefixes() -> [Snapshot; 3] {
    [
        Snapshot::EMPTY,
        Snapshot {
            hour: HOUR,
            counts: counts(1, 1, 0),
        },
        Snapshot {
            hour: HOUR,
            counts: counts(2, 1, 1),
        },
    ]
}

/// Checks one answer of a reader against the prefixes and against that reader's previous
/// answer (`last`, an index into the prefixes); returns the answer's index.
fn check(answer: Snapshot, last: usize) -> usize {
    let Some(i) = prefixes().iter().position(|p| *p == answer) else {
        panic!("seqlock violation: torn read {answer:?} is the total of no prefix");
    };
    assert!(
        i >= last,
        "seqlock violation: went backwards from prefix {last} to prefix {i} ({answer:?})"
    );
    i
}

/// One reader's two successive copies: `read(k)` is the `k`-th one-shot read (0 or 1),
/// retried until it succeeds. Returns the indexes of the prefixes the two copies equal.
fn copy_twice(read: impl Fn(usize) -> Option<Snapshot>) -> (usize, usize) {
    let copy = |k| loop {
        if let Some(snap) = read(k) {
            break snap;
        }
        thread::yield_now();
    };
    let first = check(copy(0), 0);
    let second = check(copy(1), first);
    (first, second)
}

/// Every pair of answers a reader may give: prefix `i` then prefix `j >= i`.
fn all_monotonic_pairs() -> BTreeSet<(usize, usize)> {
    (0..3).flat_map(|i| (i..3).map(move |j| (i, j))).collect()
}

/// The interleaving of `Slot::write` (two snapshots, one per event) with a reader that
/// copies the slot twice, first with `Slot::read` and then with `Slot::try_read` (retried).
///
/// One reader thread: a reader spins (yields) while a write is in flight, and loom lets two
/// spinning threads hand the processor to each other at every yield without counting a
/// preemption, so two readers make the executions unbounded (loom stops them at its branch
/// limit). Readers never write, so a second one adds no new kind of interleaving.
#[test]
fn slot_write_vs_reader() {
    let outcomes = loom_tests::model_outcomes(|| {
        let slot = Arc::new(Slot::new());
        let r = {
            let slot = slot.clone();
            thread::spawn(move || {
                copy_twice(|k| {
                    if k == 0 {
                        Some(slot.read())
                    } else {
                        slot.try_read()
                    }
                })
            })
        };
        for snap in &prefixes()[1..] {
            slot.write(snap);
        }
        let answers = r.join().unwrap();
        assert_eq!(slot.read(), prefixes()[2]);
        answers
    });
    assert_eq!(outcomes, all_monotonic_pairs(), "answers the model reached");
}

/// The same through the ring: the main thread applies the two events with
/// `RingWriter::apply` and publishes after each, while a reader asks for the hour twice,
/// with `Ring::read` and then `Ring::try_read`. Answers are counts only, so the check is that
/// each is the total of a prefix (zeros before the first publish) and never goes back.
#[test]
fn ring_apply_publish_vs_reader() {
    let outcomes = loom_tests::model_outcomes(|| {
        let ring = Arc::new(Ring::new(2));
        let mut writer = RingWriter::new(ring.clone());
        let r = {
            let ring = ring.clone();
            thread::spawn(move || {
                // `try_read` gives up only on the archive lock, which this model never
                // takes; `copy_twice` retries anyway, as the HTTP edge does.
                copy_twice(|k| {
                    let answer = if k == 0 {
                        Some(ring.read(HOUR))
                    } else {
                        ring.try_read(HOUR)
                    };
                    answer.map(as_snapshot)
                })
            })
        };
        writer.apply(Event::new(HOUR, 1, Kind::Click));
        writer.publish();
        writer.apply(Event::new(HOUR, 2, Kind::Impression));
        writer.publish();
        let answers = r.join().unwrap();
        assert_eq!(ring.read(HOUR), prefixes()[2].counts);
        answers
    });
    assert_eq!(outcomes, all_monotonic_pairs(), "answers the model reached");
}

/// A ring answer (counts of `HOUR`) as the slot snapshot it came from.
fn as_snapshot(answer: Counts) -> Snapshot {
    if answer == Counts::default() {
        Snapshot::EMPTY
    } else {
        Snapshot {
            hour: HOUR,
            counts: answer,
        }
    }
}

/// Negative control: the slot model with one reader whose read has `flaw`. Loom must find
/// an interleaving where that reader returns a torn or stale copy.
fn broken_reader_model(flaw: BrokenRead) {
    loom_tests::model(move || {
        let slot = Arc::new(Slot::new());
        let r = {
            let slot = slot.clone();
            thread::spawn(move || copy_twice(|_| slot.try_read_broken(flaw)))
        };
        for snap in &prefixes()[1..] {
            slot.write(snap);
        }
        r.join().unwrap();
    });
}

/// Negative control: no re-check of `seq` after copying. A copy that overlaps a write is
/// accepted, torn.
#[test]
#[should_panic(expected = "seqlock violation: torn read")]
fn negative_control_read_without_recheck() {
    broken_reader_model(BrokenRead::NoRecheck);
}

/// Negative control: the first load of `seq` is Relaxed. An even `seq` no longer makes the
/// writer's field stores visible, so the copy can mix new and old fields.
#[test]
#[should_panic(expected = "seqlock violation")]
fn negative_control_relaxed_first_load() {
    broken_reader_model(BrokenRead::RelaxedFirstLoad);
}

/// Negative control: no Acquire fence before the re-check. The re-check can read an old
/// `seq` even though a field load saw a newer write.
#[test]
#[should_panic(expected = "seqlock violation")]
fn negative_control_no_acquire_fence() {
    broken_reader_model(BrokenRead::NoAcquireFence);
}
