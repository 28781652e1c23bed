//! Model: the writer lists each user new to an hour in the hour's `Members` as it counts it,
//! and replaces the slot's members when the slot takes a newer hour, vs a reader that lists
//! an hour's users with `Ring::members` (what a union over hours reads).
//!
//! Why it matters: the reader pairs a published count `unique_users = n` with the first `n`
//! entries of the hour's log. The writer stores the entries with Relaxed stores and relies on
//! the slot's seqlock publish (Release) to make them visible to a reader that took `n` from
//! the slot (Acquire). A user listed after the publish that counts it would let a reader take
//! a count whose users are not all there: a union over hours would count a zero fingerprint,
//! or a log chunk that does not exist yet.
//!
//! A ring of one slot; the log's chunks hold 2 then 4 entries under loom, so the hour's third
//! user is written into a chunk the writer allocates while the reader runs. Hour 0 gets user
//! 11 (published before the reader starts), then users 12 and 13, then hour 1's user 21
//! recycles the slot. The reader lists hour 0: the first `n` of 11, 12, 13 with its count at
//! one publish, or, once the slot moved on, the archive's final total.
//!
//! The negative control lists users only after the publish that counts them
//! (`RingWriter::list_after_publish`, compiled only under `--cfg hourtally_loom`) and must
//! fail.

use hourtally::event::{Event, Kind};
use hourtally::ring::{Counts, HourMembers, Ring, RingWriter};
use loom::sync::Arc;
use loom::thread;
use std::collections::BTreeSet;

const OLD: u32 = 0;
const NEW: u32 = 1;
const USERS: [u64; 3] = [11, 12, 13];

/// What the reader saw: the users it listed, or `None` once the hour had left the ring.
fn members_model(list_late: bool) -> BTreeSet<Option<Vec<u64>>> {
    loom_tests::model_outcomes(move || {
        let ring = Arc::new(Ring::new(1));
        let mut writer = RingWriter::new(ring.clone());
        if list_late {
            writer.list_after_publish();
        }
        writer.apply_and_publish(Event::new(OLD, USERS[0], Kind::Click));

        let reader = {
            let ring = ring.clone();
            thread::spawn(move || match ring.members(OLD) {
                HourMembers::InRing { counts, members } => {
                    let n = counts.unique_users;
                    assert_eq!(
                        counts.clicks, n,
                        "members violation: a torn count {counts:?}"
                    );
                    let mut listed = Vec::new();
                    assert!(
                        members.users_into(n, &mut listed),
                        "members violation: a count of {n} users whose log lacks a chunk"
                    );
                    assert_eq!(
                        listed,
                        USERS[..n as usize],
                        "members violation: a count of {n} users listed as {listed:?}"
                    );
                    Some(listed)
                }
                HourMembers::Sealed(total) => {
                    assert_eq!(
                        total,
                        Counts {
                            unique_users: 3,
                            clicks: 3,
                            impressions: 0
                        },
                        "members violation: a sealed hour's total"
                    );
                    None
                }
                HourMembers::NotStarted => {
                    panic!("members violation: an hour with events read as not started")
                }
                HourMembers::Leaving { .. } => {
                    panic!("members violation: a leaving hour in a ring that keeps none")
                }
            })
        };
        for &user in &USERS[1..] {
            writer.apply_and_publish(Event::new(OLD, user, Kind::Click));
        }
        writer.apply_and_publish(Event::new(NEW, 21, Kind::Impression));
        reader.join().unwrap()
    })
}

/// The real protocol: every count the reader takes lists exactly its users.
#[test]
fn members_listed_before_publish_vs_reader() {
    let outcomes = members_model(false);
    // Every count the reader can take, and the sealed hour, were reached.
    let expected: BTreeSet<_> = [
        Some(vec![11]),
        Some(vec![11, 12]),
        Some(vec![11, 12, 13]),
        None,
    ]
    .into();
    assert_eq!(outcomes, expected, "answers reached");
}

/// Negative control: users listed after the publish that counts them. Loom must find a
/// reader that takes a count its log does not hold yet.
#[test]
#[should_panic(expected = "members violation: a count of")]
fn negative_control_members_listed_after_publish() {
    members_model(true);
}

/// The writer freezes hour 0 (`ring::freeze`) while it goes on counting it, vs a reader of
/// the hour. Before the reader starts: users 11 and 12 of hour 0, then hour 2 (so hour 0 is
/// over) and the freeze job, at two users. Then the set is built on a thread of its own
/// (as the freezing thread does) while the writer counts user 13; the writer installs the set
/// (base 11, 12; log 13) and counts user 14. Every count the reader takes lists exactly its
/// users, before, during and after the install.
#[test]
fn members_vs_freeze_install() {
    let outcomes = freeze_model(Ring::members);
    // (users counted, users in the base): before the install, and after it.
    let expected: BTreeSet<(u64, u64)> = [(2, 0), (3, 0), (3, 2), (4, 2)].into();
    assert_eq!(outcomes, expected, "answers reached");
}

/// Negative control: the reader does not look at the members again after the snapshot. Loom
/// must find a count taken after the install paired with the members from before it.
#[test]
#[should_panic(expected = "members violation: a count of")]
fn negative_control_members_without_recheck_vs_freeze_install() {
    freeze_model(Ring::members_without_recheck);
}

/// The model of `members_vs_freeze_install`, with the reader's way to take an hour's members.
fn freeze_model(members_of: fn(&Ring, u32) -> HourMembers) -> BTreeSet<(u64, u64)> {
    use hourtally::ring::freeze::freeze;
    loom_tests::model_outcomes(move || {
        let ring = Arc::new(Ring::new(4));
        let mut writer = RingWriter::new(ring.clone());
        for user in [11, 12] {
            writer.apply_and_publish(Event::new(OLD, user, Kind::Click));
        }
        writer.apply_and_publish(Event::new(2, 21, Kind::Click));
        let job = writer.freeze_job().expect("hour 0 is over");
        let reader = {
            let ring = ring.clone();
            thread::spawn(move || {
                let HourMembers::InRing { counts, members } = members_of(&ring, OLD) else {
                    panic!("members violation: hour {OLD} left its slot");
                };
                let n = counts.unique_users;
                let mut listed = Vec::new();
                assert!(
                    members.users_into(n, &mut listed),
                    "members violation: a count of {n} users its members do not hold"
                );
                listed.sort_unstable();
                let want: Vec<u64> = [11, 12, 13, 14][..n as usize].to_vec();
                assert_eq!(
                    listed, want,
                    "members violation: a count of {n} users listed as {listed:?}"
                );
                (n, members.base_len())
            })
        };
        let building = thread::spawn(move || freeze(job));
        writer.apply_and_publish(Event::new(OLD, 13, Kind::Click));
        let frozen = building.join().unwrap();
        assert!(writer.install(frozen).is_done());
        writer.apply_and_publish(Event::new(OLD, 14, Kind::Click));
        reader.join().unwrap()
    })
}
