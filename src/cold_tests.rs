//! Tests of `cold`: files stored and read back, damage refused, retention, and the hand-off
//! from a ring's recycles.

use super::*;
use crate::durable::TempDir;
use crate::event::{Event, Kind};
use crate::ring::{HourMembers, Ring, RingWriter};
use crate::sync::Arc;

fn set_of(values: &[u64]) -> ColdSet {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.dedup();
    ColdSet::from_sorted(&v)
}

fn tier(dir: &TempDir, retention: u32) -> ColdTier {
    ColdTier::open(&dir.0.join("cold"), retention).expect("open the cold tier")
}

#[test]
fn a_stored_hour_reads_back_the_same_users_and_survives_a_reopen() {
    let dir = TempDir::new("cold");
    let users: Vec<u64> = (1..=5000u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .collect();
    let set = set_of(&users);
    let cold = tier(&dir, 720);
    assert_eq!(cold.load(100, 5000), Ok(None), "nothing stored yet");
    cold.store(100, &set).unwrap();
    assert_eq!(cold.load(100, 5000), Ok(Some(set.clone())));
    assert_eq!(cold.figures().0, 1);
    drop(cold);
    let reopened = tier(&dir, 720);
    assert_eq!(reopened.figures(), (1, set.to_bytes().len() as u64));
    assert_eq!(reopened.load(100, 5000), Ok(Some(set)));
}

#[test]
fn a_damaged_file_is_refused_with_what_is_wrong_never_read_as_users() {
    let dir = TempDir::new("cold");
    let cold = tier(&dir, 720);
    let set = set_of(&(1..=1000u64).map(|i| i * 7919).collect::<Vec<_>>());
    cold.store(7, &set).unwrap();
    let path = dir.0.join("cold").join(file_name(7));
    let good = fs::read(&path).unwrap();

    // A flipped bit in the middle: the checksum.
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0x10;
    fs::write(&path, &bad).unwrap();
    assert_eq!(
        cold.load(7, 1000),
        Err(ColdFault::Damaged(ColdSetError::Checksum))
    );
    // Cut short.
    fs::write(&path, &good[..good.len() - 20]).unwrap();
    assert!(matches!(cold.load(7, 1000), Err(ColdFault::Damaged(_))));
    // Whole, but not the hour's count of users.
    fs::write(&path, &good).unwrap();
    assert_eq!(
        cold.load(7, 999),
        Err(ColdFault::Count {
            found: 1000,
            expected: 999
        })
    );
    assert!(cold.load(7, 1000).unwrap().is_some());
    // Another hour's whole set under a checksum that does not fit: named by the checksum
    // when loaded for a union too (which compares it only as it counts), not by its count.
    let mut other = set_of(&(1..=999u64).map(|i| i * 7).collect::<Vec<_>>()).to_bytes();
    let sum = other.len() - 8;
    other[sum] ^= 0x01;
    fs::write(&path, &other).unwrap();
    for load in [ColdTier::load, ColdTier::load_for_union] {
        assert_eq!(
            load(&cold, 7, 1000),
            Err(ColdFault::Damaged(ColdSetError::Checksum))
        );
    }
    // A file that is not a cold set at all.
    fs::write(&path, b"hello").unwrap();
    assert_eq!(
        cold.load(7, 1000),
        Err(ColdFault::Damaged(ColdSetError::NotASet))
    );
}

#[test]
fn an_unfinished_file_is_removed_at_open_and_never_indexed() {
    let dir = TempDir::new("cold");
    let cold_dir = dir.0.join("cold");
    fs::create_dir_all(&cold_dir).unwrap();
    fs::write(cold_dir.join(format!("{}.tmp", file_name(3))), b"half").unwrap();
    let cold = tier(&dir, 720);
    assert_eq!(cold.figures(), (0, 0));
    assert_eq!(fs::read_dir(&cold_dir).unwrap().count(), 0);
}

#[test]
fn hours_past_the_retention_are_removed_and_the_rest_kept() {
    let dir = TempDir::new("cold");
    let cold = tier(&dir, 10);
    for hour in [100, 101, 105, 110] {
        cold.store(hour, &set_of(&[u64::from(hour)])).unwrap();
    }
    // The ring took hour 111: hours before 101 are past 10 hours.
    let (removed, error) = cold.prune(111);
    assert_eq!((removed, error.is_none()), (vec![100], true));
    assert_eq!(cold.load(100, 1), Ok(None));
    assert!(!dir.0.join("cold").join(file_name(100)).exists());
    assert!(cold.load(101, 1).unwrap().is_some());
    assert_eq!(cold.prune(116).0, vec![101, 105]);
    assert_eq!(cold.figures().0, 1);
}

fn click(hour: u32, user: u64) -> Event {
    Event::new(hour, user, Kind::Click)
}

/// A ring of 4 slots keeping its sealed hours' users; hours 10..=13 get users
/// `hour * 1000 + (0..n)` plus user 1 in every hour.
fn ring_with_four_hours(n: u64) -> (Arc<Ring>, RingWriter) {
    let ring = Arc::new(Ring::new(4).keeping_sealed_users());
    let mut w = RingWriter::new(ring.clone());
    for hour in 10..=13u32 {
        w.apply(click(hour, 1));
        for u in 0..n {
            w.apply(click(hour, u64::from(hour) * 1000 + u));
        }
    }
    w.publish();
    (ring, w)
}

#[test]
fn an_hour_that_leaves_the_ring_is_readable_in_memory_then_from_its_file() {
    let dir = TempDir::new("cold");
    let cold = tier(&dir, 720);
    let (ring, mut w) = ring_with_four_hours(50);
    // Hour 14 takes hour 10's slot.
    w.apply(click(14, 5));
    w.publish();
    let leaving = ring.leaving().unwrap().clone();
    assert_eq!(leaving.len(), 1);
    let HourMembers::Leaving { counts, members } = ring.members(10) else {
        panic!("hour 10 is not in memory while it waits to be stored");
    };
    assert_eq!(counts.unique_users, 51);
    let mut users = Vec::new();
    assert!(members.users_into(51, &mut users));

    assert!(cold.store_leaving(&leaving));
    assert!(leaving.is_empty());
    assert_eq!(leaving.counts(), (1, 1));
    let HourMembers::Sealed(counts) = ring.members(10) else {
        panic!("hour 10 is still in memory after its store");
    };
    let stored = cold.load(10, counts.unique_users).unwrap().unwrap();
    users.sort_unstable();
    assert_eq!(stored.iter().collect::<Vec<_>>(), users);
}

#[test]
fn a_failed_store_keeps_the_hour_in_memory_and_a_later_one_stores_it() {
    let dir = TempDir::new("cold");
    let cold = tier(&dir, 720);
    let (ring, mut w) = ring_with_four_hours(20);
    w.apply(click(14, 5));
    w.apply(click(15, 5));
    w.publish();
    let leaving = ring.leaving().unwrap().clone();
    assert_eq!(leaving.len(), 2);
    // The directory is gone: every write fails, as on a full disk.
    fs::remove_dir_all(dir.0.join("cold")).unwrap();
    assert!(!cold.store_leaving(&leaving));
    assert_eq!(cold.failures(), 1);
    assert_eq!(leaving.len(), 2, "nothing let go unstored");
    assert!(matches!(ring.members(10), HourMembers::Leaving { .. }));
    // Room again.
    fs::create_dir_all(dir.0.join("cold")).unwrap();
    assert!(cold.store_leaving(&leaving));
    assert!(leaving.is_empty());
    for hour in [10, 11] {
        assert_eq!(cold.load(hour, 21).unwrap().map(|s| s.len()), Some(21));
    }
}

#[test]
fn an_hour_already_past_the_retention_when_it_leaves_is_not_stored() {
    let dir = TempDir::new("cold");
    let cold = tier(&dir, 2);
    let (ring, mut w) = ring_with_four_hours(5);
    // Hour 20 takes hour 12's slot: 12 is 8 hours back, past 2.
    w.apply(click(20, 5));
    w.publish();
    let leaving = ring.leaving().unwrap().clone();
    assert_eq!(leaving.len(), 1);
    assert!(cold.store_leaving(&leaving));
    assert!(leaving.is_empty());
    assert_eq!(cold.figures().0, 0);
    assert!(matches!(ring.members(12), HourMembers::Sealed(_)));
}

#[test]
fn a_fetched_file_is_adopted_only_whole_and_with_its_hours_users() {
    let dir = TempDir::new("cold-adopt");
    let cold = tier(&dir, 720);
    let set = set_of(&[3, 1, 4, 1, 5, 9, 2, 6]);
    let bytes = set.to_bytes();
    // A damaged copy, and one of another user count, are refused and leave nothing.
    let mut damaged = bytes.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    assert!(matches!(
        cold.adopt(7, &damaged, 7),
        Err(AdoptError::Fault(ColdFault::Damaged(_)))
    ));
    assert!(matches!(
        cold.adopt(7, &bytes, 8),
        Err(AdoptError::Fault(ColdFault::Count {
            found: 7,
            expected: 8
        }))
    ));
    assert_eq!(cold.hours(), Vec::<u32>::new());
    cold.adopt(7, &bytes, 7).expect("a whole file");
    assert_eq!(cold.hours(), vec![7]);
    assert_eq!(cold.load(7, 7), Ok(Some(set)));
    assert_eq!(cold.read_file(7).expect("its bytes"), bytes);
}

#[test]
fn a_tier_claimed_by_another_stream_loses_its_files_and_one_claimed_by_none_keeps_them() {
    let dir = TempDir::new("cold-claim");
    let cold = tier(&dir, 720);
    cold.store(5, &set_of(&[1, 2])).unwrap();
    // No stream named yet (a directory from before): its files stay.
    assert_eq!(cold.claim("stream-1").expect("claim"), 0);
    assert_eq!(cold.hours(), vec![5]);
    // The same stream again, after a reopen: nothing changes.
    drop(cold);
    let cold = tier(&dir, 720);
    assert_eq!(cold.claim("stream-1").expect("claim"), 0);
    assert_eq!(cold.hours(), vec![5]);
    // A stream of the same name created anew: the old stream's files go.
    cold.store(6, &set_of(&[3])).unwrap();
    assert_eq!(cold.claim("stream-2").expect("claim"), 2);
    assert_eq!(cold.hours(), Vec::<u32>::new());
    assert_eq!(cold.load(5, 2), Ok(None));
    assert!(!dir.0.join("cold").join(file_name(5)).exists());
}
