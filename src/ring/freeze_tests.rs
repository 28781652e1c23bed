//! Tests of `ring::freeze`.

use super::*;
use crate::event::{Event, Kind};
use crate::ring::{Counts, HourMembers, Ring, RingImage};
use std::collections::BTreeSet;

fn click(hour: u32, user: u64) -> Event {
    Event::new(hour, user, Kind::Click)
}

/// Every user `members(hour)` lists with its published count, sorted.
fn listed(ring: &Ring, hour: u32) -> Vec<u64> {
    let HourMembers::InRing { counts, members } = ring.members(hour) else {
        panic!("hour {hour} is not in the ring");
    };
    let mut out = Vec::new();
    assert!(members.users_into(counts.unique_users, &mut out));
    assert_eq!(out.len() as u64, counts.unique_users);
    out.sort_unstable();
    out
}

/// Freezes every hour there is to freeze, on this thread.
fn freeze_all(w: &mut RingWriter) -> usize {
    let mut n = 0;
    while let Some(job) = w.freeze_job() {
        assert!(w.install(freeze(job)).is_done());
        n += 1;
    }
    n
}

/// A writer with hour 10 holding users 1..=100, hour 11 users 50..=60, and hour 12 one user:
/// hour 10 is over (two behind 12), 11 and 12 are not.
fn writer_with_an_hour_over() -> RingWriter {
    let mut w = RingWriter::new(Arc::new(Ring::new(8)));
    for u in 1..=100 {
        w.apply(click(10, u));
    }
    for u in 50..=60 {
        w.apply(click(11, u));
    }
    w.apply(click(12, 7));
    w.publish();
    w
}

#[test]
fn only_hours_two_behind_the_newest_are_frozen() {
    let mut w = writer_with_an_hour_over();
    let job = w.freeze_job().expect("hour 10 is over");
    assert_eq!(job.hour(), 10);
    assert!(w.install(freeze(job)).is_done());
    // Hour 11 (one behind) and 12 (the newest) are not over; 10 has nothing new.
    assert!(w.freeze_job().is_none());
}

#[test]
fn a_frozen_hour_reads_and_lists_the_same_and_counts_only_users_new_to_it() {
    let mut w = writer_with_an_hour_over();
    let ring = Arc::clone(w.ring());
    let before = (ring.read(10), listed(&ring, 10));
    assert_eq!(freeze_all(&mut w), 1);
    assert_eq!((ring.read(10), listed(&ring, 10)), before);
    let HourMembers::InRing { members, .. } = ring.members(10) else {
        panic!()
    };
    assert_eq!(members.base_len(), 100);
    // Users of the base are not new; user 101 is.
    w.apply(click(10, 5));
    w.apply(click(10, 100));
    w.apply(click(10, 101));
    w.apply(click(10, 101));
    w.publish();
    assert_eq!(
        ring.read(10),
        Counts {
            unique_users: 101,
            clicks: 104,
            impressions: 0
        }
    );
    assert_eq!(listed(&ring, 10), (1..=101).collect::<Vec<_>>());
}

#[test]
fn users_counted_while_the_set_is_built_stay_counted_and_listed() {
    let mut w = writer_with_an_hour_over();
    let ring = Arc::clone(w.ring());
    let job = w.freeze_job().unwrap();
    // The writer goes on while the other thread builds the set.
    for u in [3, 200, 201, 3, 200] {
        w.apply(click(10, u));
    }
    w.publish();
    let frozen = freeze(job);
    assert_eq!(frozen.users(), 100);
    assert!(w.install(frozen).is_done());
    assert_eq!(ring.read(10).unique_users, 102);
    let mut want: Vec<u64> = (1..=100).collect();
    want.extend([200, 201]);
    assert_eq!(listed(&ring, 10), want);
    // Still members after the install: no double count.
    w.apply(click(10, 201));
    w.apply(click(10, 99));
    w.publish();
    assert_eq!(ring.read(10).unique_users, 102);
}

#[test]
fn a_freeze_of_a_slot_that_moved_on_is_not_installed() {
    let mut w = writer_with_an_hour_over();
    let ring = Arc::clone(w.ring());
    let job = w.freeze_job().unwrap();
    // Hour 18 takes hour 10's slot (a ring of 8).
    w.apply(click(18, 1));
    w.publish();
    assert!(matches!(w.install(freeze(job)), Installed::Stale(_)));
    assert_eq!(listed(&ring, 18), [1]);
    assert_eq!(ring.read(18).unique_users, 1);
}

#[test]
fn a_freeze_waits_for_a_capture_under_way_and_the_capture_lists_a_frozen_base() {
    let mut w = writer_with_an_hour_over();
    let frozen = freeze(w.freeze_job().unwrap());
    w.begin_capture(0);
    let Installed::Wait(frozen) = w.install(frozen) else {
        panic!("a capture is under way");
    };
    let image = loop {
        if let Some(image) = w.capture_step(16) {
            break image;
        }
    };
    assert!(image.slots.iter().all(|s| s.base.is_none()));
    assert!(w.install(frozen).is_done());
    w.apply(click(10, 500));
    w.publish();
    // A capture now shares the base and copies the rest; both list every user.
    w.begin_capture(1);
    let image: RingImage = loop {
        if let Some(image) = w.capture_step(16) {
            break image;
        }
    };
    let slot = &image.slots[10 % 8];
    assert_eq!(slot.base.as_ref().map(|b| b.len()), Some(100));
    assert_eq!(slot.users, [500]);
    let all: BTreeSet<u64> = slot.all_users().collect();
    assert_eq!(all, (1..=100).chain([500]).collect());
    // A restore from it counts the same, and lists the same.
    let mut restored = RingWriter::new(Arc::new(Ring::new(8)));
    restored.restore(&image).unwrap();
    for hour in [10, 11, 12] {
        assert_eq!(restored.ring().read(hour), w.ring().read(hour));
        assert_eq!(listed(restored.ring(), hour), listed(w.ring(), hour));
    }
}

#[test]
fn a_frozen_hour_whose_later_users_grow_is_frozen_again_with_them() {
    let mut w = writer_with_an_hour_over();
    let ring = Arc::clone(w.ring());
    freeze_all(&mut w);
    for u in 1000..1000 + REFREEZE_MIN - 1 {
        w.apply(click(10, u));
    }
    w.publish();
    assert!(
        w.freeze_job().is_none(),
        "fewer than REFREEZE_MIN later users"
    );
    w.apply(click(10, 5000));
    w.publish();
    assert_eq!(freeze_all(&mut w), 1);
    let HourMembers::InRing { members, counts } = ring.members(10) else {
        panic!()
    };
    assert_eq!(members.base_len(), 100 + REFREEZE_MIN);
    assert_eq!(counts.unique_users, 100 + REFREEZE_MIN);
    let mut want: Vec<u64> = (1..=100).chain(1000..1000 + REFREEZE_MIN - 1).collect();
    want.push(5000);
    assert_eq!(listed(&ring, 10), want);
}
