//! Model 2: a slot recycled for a newer hour vs a reader of the old hour, and vs a reader of
//! the new hour (the archive hand-off of `RingWriter::apply`).
//!
//! Why it matters: in a ring of `capacity` slots, hour `h + capacity` takes hour `h`'s slot.
//! From then on `h` answers from the archive. The writer seals `h` into the archive *before*
//! it publishes the slot with the new hour, so that a reader who sees the new hour in the
//! slot finds the old one, with its final totals, in the archive. If the order were the other
//! way round, an hour that had events would read as zeros for a moment, or go back.
//!
//! A ring of capacity 1 makes every new hour recycle the slot, so three events suffice. The
//! old hour 0 gets user 1's click, applied and published before the reader starts (so the
//! reader knows the hour had events), then user 2's click, concurrently with the reader;
//! then the new hour 1 gets user 3's impression, which recycles the slot. The old hour's
//! answers are (1,1,0) then (2,2,0); the new hour's is (1,0,1): every mixture of the two
//! hours is recognised.
//!
//! The negative controls run the same models with the writer publishing the new hour before
//! sealing the old one (`RingWriter::apply_and_publish_before_seal`, compiled only under
//! `--cfg hourtally_loom`) and must fail.

use hourtally::event::{Event, Kind};
use hourtally::ring::{Counts, Ring, RingWriter};
use loom::sync::Arc;
use loom::thread;
use std::collections::BTreeSet;

const OLD: u32 = 0;
const NEW: u32 = 1;

/// The answers the old hour may give, in order: after its first event (published before the
/// reader starts), and its final total.
const OLD_PREFIXES: [Counts; 2] = [
    Counts {
        unique_users: 1,
        clicks: 1,
        impressions: 0,
    },
    Counts {
        unique_users: 2,
        clicks: 2,
        impressions: 0,
    },
];
const OLD_TOTAL: Counts = OLD_PREFIXES[1];

/// The new hour's total: one impression of one user.
const NEW_TOTAL: Counts = Counts {
    unique_users: 1,
    clicks: 0,
    impressions: 1,
};

/// `Ring::try_read`, retried while the archive lock is held, as the HTTP edge does.
fn try_read(ring: &Ring, hour: u32) -> Counts {
    loop {
        if let Some(c) = ring.try_read(hour) {
            return c;
        }
        thread::yield_now();
    }
}

/// Checks an answer for the old hour: never zeros (the hour had events before the reader
/// started), never anything but one of its prefixes, and not before `at_least` (the index
/// of a prefix already seen, or known to be final). Returns the answer's index. `what` says
/// which read answered, so that a failure names it.
fn check_old(answer: Counts, at_least: usize, what: &str) -> usize {
    assert!(
        answer != Counts::default(),
        "recycle violation: hour {OLD} vanished: zeros for an hour with events ({what})"
    );
    let Some(i) = OLD_PREFIXES.iter().position(|p| *p == answer) else {
        panic!("recycle violation: hour {OLD} answered {answer:?}, a mixture of hours ({what})");
    };
    assert!(
        i >= at_least,
        "recycle violation: hour {OLD} answered {answer:?}, less than before or than its \
         final total ({what})"
    );
    i
}

/// Which reader runs beside the writer.
#[derive(Clone, Copy)]
enum Reader {
    /// Asks for the old hour three times, with `Ring::read`, `Ring::try_read` and
    /// `Ring::read` again: always one of its prefixes, never going back.
    Old,
    /// Asks for the new hour (`Ring::try_read`): zeros or its total, never the old hour's
    /// counts. Then for the old hour (`Ring::try_read`): once the new hour was visible, the
    /// old hour's final total.
    NewThenOld,
}

/// The model: the main thread applies the old hour's second event and then the new hour's
/// event with `apply` (which publishes after each), recycling the slot, while one reader asks
/// its questions.
///
/// One reader thread per model, not two at once: both readers can spin (in `Slot::read`,
/// while the writer is preempted in the middle of a slot write), and loom lets two spinning
/// threads hand the processor to each other at every yield without counting a preemption,
/// so with two of them the executions become unbounded (loom stops them at its branch
/// limit). Readers never write, so they cannot affect each other; each model checks one.
fn recycle_model(reader: Reader, apply: fn(&mut RingWriter, Event)) -> BTreeSet<Vec<usize>> {
    loom_tests::model_outcomes(move || {
        let ring = Arc::new(Ring::new(1));
        let mut writer = RingWriter::new(ring.clone());
        writer.apply_and_publish(Event::new(OLD, 1, Kind::Click));

        let reader = {
            let ring = ring.clone();
            thread::spawn(move || match reader {
                Reader::Old => {
                    let a = check_old(ring.read(OLD), 0, "Ring::read");
                    let b = check_old(try_read(&ring, OLD), a, "Ring::try_read");
                    let c = check_old(ring.read(OLD), b, "Ring::read again");
                    vec![a, b, c]
                }
                Reader::NewThenOld => {
                    let answer = try_read(&ring, NEW);
                    assert!(
                        answer == Counts::default() || answer == NEW_TOTAL,
                        "recycle violation: hour {NEW} answered {answer:?}, a mixture of hours"
                    );
                    let new_visible = answer == NEW_TOTAL;
                    let old = if new_visible {
                        check_old(try_read(&ring, OLD), 1, "after the new hour was visible")
                    } else {
                        check_old(try_read(&ring, OLD), 0, "new hour not yet visible")
                    };
                    vec![usize::from(new_visible), old]
                }
            })
        };
        apply(&mut writer, Event::new(OLD, 2, Kind::Click));
        apply(&mut writer, Event::new(NEW, 3, Kind::Impression));
        let answers = reader.join().unwrap();
        assert_eq!(ring.read(OLD), OLD_TOTAL);
        assert_eq!(ring.read(NEW), NEW_TOTAL);
        assert_eq!(ring.archive().get(OLD), Some(OLD_TOTAL));
        answers
    })
}

fn real_apply(w: &mut RingWriter, e: Event) {
    w.apply_and_publish(e);
}

fn apply_publishing_before_seal(w: &mut RingWriter, e: Event) {
    w.apply_and_publish_before_seal(e);
}

/// The real protocol (`RingWriter::apply` seals the old hour, then `publish` shows the new)
/// vs a reader of the old hour.
#[test]
fn recycle_vs_old_hour_reader() {
    let outcomes = recycle_model(Reader::Old, real_apply);
    // Prefix indexes of the three answers: every monotonic sequence was reached.
    let expected = [[0, 0, 0], [0, 0, 1], [0, 1, 1], [1, 1, 1]];
    assert_eq!(outcomes, expected.map(Vec::from).into(), "answers reached");
}

/// The real protocol vs a reader of the new hour, then of the old hour.
#[test]
fn recycle_vs_new_hour_reader() {
    let outcomes = recycle_model(Reader::NewThenOld, real_apply);
    // (new hour visible, old hour's prefix index): every allowed case was reached.
    let expected = [[0, 0], [0, 1], [1, 1]];
    assert_eq!(outcomes, expected.map(Vec::from).into(), "answers reached");
}

/// Negative control: the new hour is published before the old hour is sealed. Loom must find
/// the window in which a reader of the old hour finds it in neither the slot nor the archive.
#[test]
#[should_panic(expected = "recycle violation: hour 0 vanished")]
fn negative_control_publish_before_seal_old_hour_reader() {
    recycle_model(Reader::Old, apply_publishing_before_seal);
}

/// Negative control: as above, seen by a reader of the new hour and then of the old one.
#[test]
#[should_panic(expected = "recycle violation: hour 0 vanished")]
fn negative_control_publish_before_seal_new_hour_reader() {
    recycle_model(Reader::NewThenOld, apply_publishing_before_seal);
}
