//! Tests of `uniques`: a range's counts against a plain model of the apply rule.

use super::*;
use crate::event::{Event, Kind};
use crate::ring::RingWriter;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// The apply rule in plain collections: each slot's hour, and every hour's users and counts
/// (kept after its slot moves on, as the truth a union is checked against).
#[derive(Default)]
struct Model {
    slot_hour: BTreeMap<u32, u32>,
    users: BTreeMap<u32, BTreeSet<u64>>,
    clicks: BTreeMap<u32, u64>,
    impressions: BTreeMap<u32, u64>,
}

impl Model {
    fn apply(&mut self, capacity: u32, e: Event) {
        self.apply_with_late(capacity, e, false);
    }

    /// The apply rule; with `late`, an event whose slot holds a newer hour is counted into
    /// its hour all the same (a late event, within any window the tests use).
    fn apply_with_late(&mut self, capacity: u32, e: Event, late: bool) {
        let slot = self.slot_hour.entry(e.hour % capacity).or_insert(e.hour);
        if *slot > e.hour && !late {
            return;
        }
        *slot = (*slot).max(e.hour);
        self.users.entry(e.hour).or_default().insert(e.user);
        let kind = match e.kind {
            Kind::Click => &mut self.clicks,
            Kind::Impression => &mut self.impressions,
        };
        *kind.entry(e.hour).or_default() += 1;
    }

    /// The answer for `range`: its distinct users and summed kinds, or the first hour that
    /// left the ring with users (`capacity`: `None` when sealed hours keep their users).
    fn range(&self, capacity: Option<u32>, range: HourRange) -> Result<Counts, RangeError> {
        let mut users: BTreeSet<u64> = BTreeSet::new();
        let mut total = Counts::default();
        for h in range.hours() {
            let Some(hour_users) = self.users.get(&h) else {
                continue;
            };
            if let Some(capacity) = capacity {
                if self.slot_hour[&(h % capacity)] != h {
                    return Err(RangeError::NoUsers { hour: h });
                }
            }
            users.extend(hour_users);
            total.clicks += self.clicks.get(&h).copied().unwrap_or(0);
            total.impressions += self.impressions.get(&h).copied().unwrap_or(0);
        }
        total.unique_users = users.len() as u64;
        Ok(total)
    }
}

fn event() -> impl Strategy<Value = Event> {
    // Few users, so that hours share many; hours over three laps of a ring of 6.
    (100u32..118, 0u64..40, any::<bool>()).prop_map(|(hour, user, click)| {
        let kind = if click { Kind::Click } else { Kind::Impression };
        Event::new(hour, user.wrapping_mul(0x9e37_79b9_7f4a_7c15), kind)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Every range, read between any two batches, is the union of the model's sets, or is
    /// refused for the first hour of it that left the ring with users; with hours frozen
    /// (`ring::freeze`) between some batches, and users counted while a freeze is built.
    #[test]
    fn a_range_counts_the_union_of_its_hours_users_and_sums_the_kinds(
        batches in prop::collection::vec(
            (prop::collection::vec(event(), 0..30), 0u8..3),
            1..6,
        ),
        ranges in prop::collection::vec((95u32..120, 0u32..10), 1..8),
    ) {
        const CAPACITY: u32 = 6;
        let ring = Arc::new(Ring::new(CAPACITY as usize));
        let mut writer = RingWriter::new(Arc::clone(&ring));
        let mut model = Model::default();
        let mut building = None;
        for (batch, freeze) in batches {
            for e in batch {
                writer.apply(e);
                model.apply(CAPACITY, e);
            }
            writer.publish();
            // 0: nothing; 1: take a job (or install the one taken a batch ago); 2: both.
            if freeze > 0 {
                if let Some(job) = building.take() {
                    let _ = writer.install(crate::ring::freeze::freeze(job));
                }
                building = writer.freeze_job();
            }
            if freeze > 1 {
                if let Some(job) = building.take() {
                    let _ = writer.install(crate::ring::freeze::freeze(job));
                }
            }
            for &(first, len) in &ranges {
                let range = HourRange { first, last: first + len };
                prop_assert_eq!(count(&ring, None, None, range), model.range(Some(CAPACITY), range));
            }
        }
    }

    /// With a cold tier, every range is the union of the model's sets wherever its hours
    /// are: in the ring, left and waiting in memory, or in their files (stored between some
    /// batches, the tier reopened from its directory between others).
    #[test]
    fn a_range_over_hours_in_the_ring_in_memory_and_on_disk_counts_their_union(
        batches in prop::collection::vec(
            (prop::collection::vec(event(), 0..30), 0u8..3),
            1..6,
        ),
        ranges in prop::collection::vec((95u32..120, 0u32..25), 1..8),
    ) {
        const CAPACITY: u32 = 6;
        let dir = crate::durable::TempDir::new("uniques");
        let open = || ColdTier::open(&dir.0.join("cold"), 1000).unwrap();
        let mut cold = open();
        let ring = Arc::new(Ring::new(CAPACITY as usize).keeping_sealed_users());
        let leaving = ring.leaving().unwrap().clone();
        let mut writer = RingWriter::new(Arc::clone(&ring));
        let mut model = Model::default();
        for (batch, store) in batches {
            for e in batch {
                writer.apply(e);
                model.apply(CAPACITY, e);
            }
            writer.publish();
            // 0: the hours that left wait in memory; 1: stored; 2: stored, tier reopened.
            if store > 0 {
                prop_assert!(cold.store_leaving(&leaving));
            }
            if store > 1 {
                cold = open();
            }
            for &(first, len) in &ranges {
                let range = HourRange { first, last: first + len };
                prop_assert_eq!(count(&ring, Some(&cold), None, range), model.range(None, range));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// With late events, every event counts into its hour wherever the hour is: a range is
    /// the union of the model's sets and every hour reads its own counts, with the late
    /// events counted between some batches and the hours stored between others.
    #[test]
    fn with_late_events_a_range_and_an_hour_count_every_event_of_their_hours(
        batches in prop::collection::vec(
            (prop::collection::vec(event(), 0..30), 0u8..4),
            1..6,
        ),
        ranges in prop::collection::vec((95u32..120, 0u32..25), 1..6),
    ) {
        const CAPACITY: u32 = 6;
        let dir = crate::durable::TempDir::new("uniques-late");
        let cold = Arc::new(ColdTier::open(&dir.0.join("cold"), 1000).unwrap());
        let ring = Arc::new(
            Ring::new(CAPACITY as usize)
                .keeping_sealed_users()
                .counting_late_events(1000),
        );
        let late = crate::late::LateCounts::new(ring.clone(), cold.clone());
        let leaving = ring.leaving().unwrap().clone();
        let mut writer = RingWriter::new(Arc::clone(&ring));
        let mut model = Model::default();
        for (batch, step) in batches {
            for e in batch {
                writer.apply(e);
                model.apply_with_late(CAPACITY, e, true);
            }
            writer.publish();
            // Bit 0: store the hours that left; bit 1: count the late events. Ranges are
            // checked once both are done (counts of late events not yet counted lag).
            if step & 1 == 1 {
                prop_assert!(cold.store_leaving(&leaving));
            }
            if step & 2 == 2 {
                late.apply();
            }
        }
        late.apply();
        prop_assert!(cold.store_leaving(&leaving));
        for &(first, len) in &ranges {
            let range = HourRange { first, last: first + len };
            prop_assert_eq!(count(&ring, Some(&cold), Some(&late), range), model.range(None, range));
        }
        for (&hour, users) in &model.users {
            let want = Counts {
                unique_users: users.len() as u64,
                clicks: model.clicks.get(&hour).copied().unwrap_or(0),
                impressions: model.impressions.get(&hour).copied().unwrap_or(0),
            };
            prop_assert_eq!(ring.read(hour), want, "hour {}", hour);
        }
    }
}

#[test]
fn a_damaged_cold_file_fails_the_range_and_names_it() {
    let dir = crate::durable::TempDir::new("uniques");
    let cold = ColdTier::open(&dir.0.join("cold"), 1000).unwrap();
    let ring = Arc::new(Ring::new(2).keeping_sealed_users());
    let mut writer = RingWriter::new(Arc::clone(&ring));
    for (hour, user) in [(10, 1), (10, 2), (11, 3), (12, 4)] {
        writer.apply(Event::new(hour, user, Kind::Click));
    }
    writer.publish();
    assert!(cold.store_leaving(ring.leaving().unwrap()));
    let range = HourRange {
        first: 10,
        last: 12,
    };
    assert_eq!(
        count(&ring, Some(&cold), None, range).unwrap().unique_users,
        4
    );
    let path = dir.0.join("cold").join(crate::cold::file_name(10));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[30] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = count(&ring, Some(&cold), None, range).unwrap_err();
    assert!(
        matches!(err, RangeError::Unreadable { hour: 10, .. }),
        "{err:?}"
    );
    let said = err.to_string();
    assert!(
        said.contains("cold/0000000010.hcs: checksum mismatch"),
        "{said}"
    );
    assert!(said.contains("36000000 ms"), "{said}");
    // A range without the damaged hour is counted.
    assert_eq!(
        count(
            &ring,
            Some(&cold),
            None,
            HourRange {
                first: 11,
                last: 12
            }
        )
        .unwrap()
        .unique_users,
        2
    );
}

#[test]
fn a_user_in_three_hours_is_one_user_of_the_range() {
    let ring = Arc::new(Ring::new(48));
    let mut writer = RingWriter::new(Arc::clone(&ring));
    for hour in [10, 11, 12] {
        writer.apply(Event::new(hour, 7, Kind::Click));
    }
    writer.apply(Event::new(11, 8, Kind::Impression));
    writer.publish();
    let range = HourRange {
        first: 10,
        last: 12,
    };
    assert_eq!(
        count(&ring, None, None, range),
        Ok(Counts {
            unique_users: 2,
            clicks: 3,
            impressions: 1
        })
    );
    // The hours' own counts sum to 4 users: the mistake a union avoids.
    let summed: u64 = range.hours().map(|h| ring.read(h).unique_users).sum();
    assert_eq!(summed, 4);
}

#[test]
fn a_range_with_an_hour_that_left_the_ring_with_users_is_refused_naming_the_hour() {
    let ring = Arc::new(Ring::new(4));
    let mut writer = RingWriter::new(Arc::clone(&ring));
    writer.apply(Event::new(10, 1, Kind::Click));
    // Hour 14 takes hour 10's slot; hour 11 never had an event.
    writer.apply(Event::new(14, 2, Kind::Click));
    writer.publish();
    let err = count(&ring, None, None, HourRange { first: 9, last: 14 }).unwrap_err();
    assert_eq!(err, RangeError::NoUsers { hour: 10 });
    assert!(err.to_string().contains("36000000 ms"), "{err}");
    // Without hour 10 the range is counted; the empty sealed hour 11 is no obstacle.
    assert_eq!(
        count(
            &ring,
            None,
            None,
            HourRange {
                first: 11,
                last: 14
            }
        )
        .unwrap()
        .unique_users,
        1
    );
}

#[test]
fn the_thread_answers_each_range_and_refuses_beyond_the_waiting_bound() {
    let ring = Arc::new(Ring::new(8));
    let mut writer = RingWriter::new(Arc::clone(&ring));
    writer.apply(Event::new(5, 1, Kind::Click));
    writer.apply(Event::new(6, 1, Kind::Impression));
    writer.publish();
    let uniques = Uniques::start(ring, None, None).unwrap();
    // Hold the thread on a first range until told, so that others wait behind it.
    let (go, wait) = mpsc::channel::<()>();
    let (answers, got) = mpsc::channel();
    let range = HourRange { first: 5, last: 6 };
    let first = answers.clone();
    uniques
        .ask(range, move |a| {
            wait.recv().unwrap();
            first.send(a).unwrap();
        })
        .unwrap();
    for _ in 1..MAX_WAITING {
        let tx = answers.clone();
        uniques.ask(range, move |a| tx.send(a).unwrap()).unwrap();
    }
    assert_eq!(uniques.ask(range, |_| ()), Err(RangeError::Busy));
    go.send(()).unwrap();
    for _ in 0..MAX_WAITING {
        let a = got.recv().unwrap();
        assert_eq!(
            a,
            Ok(Counts {
                unique_users: 1,
                clicks: 1,
                impressions: 1
            })
        );
    }
    // The queue drained: a new range is taken again.
    let tx = answers.clone();
    uniques.ask(range, move |a| tx.send(a).unwrap()).unwrap();
    assert!(got.recv().unwrap().is_ok());
}

#[test]
fn once_the_thread_is_gone_ranges_fail_rather_than_wait_or_say_busy() {
    let ring = Arc::new(Ring::new(8));
    let uniques = Uniques::start(ring, None, None).unwrap();
    let range = HourRange { first: 5, last: 6 };
    // A reply that panics ends the thread (a count that panics does not: it is caught).
    let (done, ended) = mpsc::channel::<()>();
    uniques
        .ask(range, move |_| {
            let _done = done;
            panic!("a reply that panics");
        })
        .unwrap();
    // `done` is dropped as the reply unwinds: the thread is on its way out.
    assert!(ended.recv().is_err());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match uniques.ask(range, |_| ()) {
            Err(RangeError::Failed) => break,
            Ok(()) => assert!(
                std::time::Instant::now() < deadline,
                "the thread is still there"
            ),
            Err(e) => panic!("{e:?}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
