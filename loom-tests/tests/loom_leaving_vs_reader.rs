//! Model: an hour leaving a ring that keeps the users of sealed hours vs a reader of its
//! users (`Ring::members`, the hand-off to `ring::leaving` in `RingWriter::apply`).
//!
//! Why it matters: a union over hours (`uniques::count`) reads an hour that left the ring
//! from `Leaving` until the cold tier has stored it. The writer hands the hour to `Leaving`
//! *before* it publishes the slot with the new hour, so a reader who sees the new hour in
//! the slot finds the old hour's users there. The other way round, a union would find the
//! hour neither in its slot nor in `Leaving` and refuse it as having no users, or (once the
//! cold tier exists) miss it.
//!
//! A ring of one slot: the old hour 0 gets user 1's click before the reader starts, then
//! user 2's click and the new hour 1 (user 3), which recycles the slot, while the reader
//! reads the old hour's members. No thread stores the hour, so it must be found in the slot
//! (a prefix of its users) or leaving (all of them), never sealed without its users.
//!
//! The negative control publishes the new hour before the hand-off
//! (`RingWriter::apply_and_publish_before_seal`) and must fail.

use hourtally::event::{Event, Kind};
use hourtally::ring::{HourMembers, Ring, RingWriter};
use loom::sync::Arc;
use loom::thread;

const OLD: u32 = 0;
const NEW: u32 = 1;

fn leaving_model(apply: fn(&mut RingWriter, Event)) {
    let outcomes = loom_tests::model_outcomes(move || {
        let ring = Arc::new(Ring::new(1).keeping_sealed_users());
        let mut writer = RingWriter::new(ring.clone());
        writer.apply_and_publish(Event::new(OLD, 1, Kind::Click));

        let reader = {
            let ring = ring.clone();
            thread::spawn(move || {
                let (where_, counts, members) = match ring.members(OLD) {
                    HourMembers::InRing { counts, members } => ("ring", counts, members),
                    HourMembers::Leaving { counts, members } => ("leaving", counts, members),
                    HourMembers::Sealed(counts) => panic!(
                        "leaving violation: hour {OLD} sealed ({counts:?}) without its users"
                    ),
                    HourMembers::NotStarted => {
                        panic!("leaving violation: an hour with events read as not started")
                    }
                };
                let n = counts.unique_users;
                let mut listed = Vec::new();
                assert!(
                    members.users_into(n, &mut listed),
                    "leaving violation: {n} users its members do not hold"
                );
                assert_eq!(
                    listed,
                    [1, 2][..n as usize],
                    "leaving violation: {listed:?}"
                );
                if where_ == "leaving" {
                    assert_eq!(n, 2, "leaving violation: a leaving hour's count is final");
                }
                (where_, n)
            })
        };
        apply(&mut writer, Event::new(OLD, 2, Kind::Click));
        apply(&mut writer, Event::new(NEW, 3, Kind::Click));
        reader.join().unwrap()
    });
    assert!(
        outcomes.contains(&("leaving", 2)),
        "the reader never found the hour leaving: {outcomes:?}"
    );
}

#[test]
fn a_reader_finds_a_leaving_hours_users_in_its_slot_or_in_leaving() {
    leaving_model(|w, e| {
        w.apply_and_publish(e);
    });
}

/// NEGATIVE CONTROL: the new hour published before the hand-off.
#[test]
#[should_panic(expected = "leaving violation: hour 0 sealed")]
fn negative_control_publish_before_the_hand_off_loses_the_users() {
    leaving_model(|w, e| {
        w.apply_and_publish_before_seal(e);
    });
}
