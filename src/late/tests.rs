//! Tests of `late`: late events counted against the hour's users when it left, in the
//! writer's order; the window; the counts at a snapshot's mark, through a snapshot's bytes
//! and back.

use super::*;
use crate::durable::TempDir;
use crate::query::HourRange;
use crate::ring::{Applied, RingWriter};

const WINDOW: u32 = 100;

fn click(hour: u32, user: u64) -> Event {
    Event::new(hour, user, Kind::Click)
}

/// A ring of 3 slots with a cold tier and late events, its writer, and the late counts.
struct Setup {
    _dir: TempDir,
    ring: Arc<Ring>,
    cold: Arc<ColdTier>,
    writer: RingWriter,
    late: LateCounts,
}

fn setup() -> Setup {
    let dir = TempDir::new("late");
    let cold = Arc::new(ColdTier::open(&dir.0.join("cold"), 1000).expect("cold tier"));
    let ring = Arc::new(
        Ring::new(3)
            .keeping_sealed_users()
            .counting_late_events(WINDOW),
    );
    let writer = RingWriter::new(ring.clone());
    let late = LateCounts::new(ring.clone(), cold.clone());
    Setup {
        _dir: dir,
        ring,
        cold,
        writer,
        late,
    }
}

impl Setup {
    /// Hour 10 with users 1..=5, then hours 11 to 13: hour 10 leaves the ring.
    fn with_hour_10_left(mut self) -> Self {
        for u in 1..=5 {
            self.writer.apply(click(10, u));
        }
        for hour in 11..=13 {
            self.writer.apply(click(hour, 1));
        }
        self.writer.publish();
        self
    }

    fn store(&self) {
        assert!(self.cold.store_leaving(self.ring.leaving().expect("keeps")));
    }

    fn range(&self, first: u32, last: u32) -> Counts {
        crate::uniques::count(
            &self.ring,
            Some(&self.cold),
            Some(&self.late),
            HourRange { first, last },
        )
        .expect("counted")
    }
}

#[test]
fn a_late_event_counts_its_user_once_against_the_users_the_hour_had_when_it_left() {
    for stored in [false, true] {
        let mut s = setup().with_hour_10_left();
        if stored {
            s.store();
        }
        // User 3 was in the hour; 99 is new, then again; an impression of 3.
        for e in [
            click(10, 3),
            click(10, 99),
            click(10, 99),
            Event::new(10, 3, Kind::Impression),
        ] {
            assert_eq!(s.writer.apply(e), Applied::Late, "stored: {stored}");
        }
        s.writer.publish();
        // Queued, not yet counted: the hour reads as it left.
        assert_eq!(s.ring.read(10), Counts::new(5, 5, 0));
        s.late.apply();
        assert_eq!(s.ring.read(10), Counts::new(6, 8, 1), "stored: {stored}");
        let view = s.late.view(10).expect("a view");
        let mut users = Vec::new();
        view.users_into(&mut users);
        assert_eq!((view.base_len, users), (5, vec![99]));
        // The range reads the hour's base and its late user: users 1..=5 and 99.
        assert_eq!(s.range(10, 13), Counts::new(6, 11, 1), "stored: {stored}");
        assert_eq!(s.late.figures(), (4, 0));
    }
}

#[test]
fn an_event_further_back_than_the_window_is_sealed_and_dropped() {
    let mut s = setup();
    s.writer.apply(click(10, 1));
    // Hour 112 takes hour 10's slot, more than WINDOW hours later.
    s.writer.apply(click(112, 2));
    s.writer.publish();
    assert_eq!(s.writer.apply(click(10, 3)), Applied::Sealed);
    assert_eq!(s.ring.sealed_drops(), 1);
    // Hour 13 (the same slot) is within it: late, though it never had an event in the ring.
    assert_eq!(s.writer.apply(click(13, 4)), Applied::Late);
    s.late.apply();
    assert_eq!(s.ring.read(13), Counts::new(1, 1, 0));
    assert_eq!(s.range(13, 13), Counts::new(1, 1, 0));
}

#[test]
fn the_late_counts_at_a_snapshots_mark_go_through_its_bytes_and_back() {
    let mut s = setup().with_hour_10_left();
    s.store();
    s.writer.apply(click(10, 99));
    s.writer.publish();
    // The capture marks its position; a late event after it is not in its image.
    s.writer.begin_capture(7);
    s.writer.apply(click(10, 100));
    s.writer.publish();
    let mut image = loop {
        if let Some(image) = s.writer.capture_step(usize::MAX) {
            break image;
        }
    };
    assert!(image.late_marked);
    s.late.apply();
    s.late
        .take_image(7, Duration::from_secs(1))
        .expect("the mark was reached")
        .merge_into(&mut image);
    assert_eq!(image.late, vec![(10, vec![99])]);
    let archived = image
        .archive
        .iter()
        .find(|(h, _)| *h == 10)
        .map(|(_, c)| *c);
    assert_eq!(archived, Some(Counts::new(6, 6, 0)));
    // The live ring went on to user 100.
    assert_eq!(s.ring.read(10), Counts::new(7, 7, 0));

    let bytes = crate::journal::snapshot::encode(&image);
    let decoded = crate::journal::snapshot::decode(&bytes).expect("decodes");
    assert_eq!(decoded.late, image.late);
    let restored = Arc::new(
        Ring::new(3)
            .keeping_sealed_users()
            .counting_late_events(WINDOW),
    );
    let mut w = RingWriter::new(restored.clone());
    w.restore(&decoded).expect("restores");
    let late = LateCounts::new(restored.clone(), s.cold.clone());
    late.restore(&decoded.late);
    assert_eq!(restored.read(10), Counts::new(6, 6, 0));
    // The journal after the snapshot replays user 100, and 99 again: 99 is no new user.
    for u in [100, 99] {
        assert_eq!(w.apply(click(10, u)), Applied::Late);
    }
    late.apply();
    assert_eq!(restored.read(10), Counts::new(7, 8, 0));
    let range = crate::uniques::count(
        &restored,
        Some(&s.cold),
        Some(&late),
        HourRange {
            first: 10,
            last: 10,
        },
    );
    assert_eq!(range, Ok(Counts::new(7, 8, 0)));
}

#[test]
fn a_late_event_whose_hours_users_cannot_be_read_is_dropped_and_the_others_counted() {
    let mut s = setup().with_hour_10_left();
    // Hour 14 takes hour 11's slot: 10 and 11 have left.
    s.writer.apply(click(14, 1));
    s.writer.publish();
    s.store();
    let path = s._dir.0.join("cold").join(crate::cold::file_name(10));
    std::fs::write(&path, b"damaged").expect("damage");
    assert_eq!(s.writer.apply(click(10, 99)), Applied::Late);
    assert_eq!(s.writer.apply(click(11, 98)), Applied::Late);
    s.writer.publish();
    s.late.apply();
    assert_eq!(s.late.figures(), (1, 1));
    // Never counted without its hour's users; the next hour's event is not held up.
    assert_eq!(s.ring.read(10), Counts::new(5, 5, 0));
    assert_eq!(s.ring.read(11), Counts::new(2, 2, 0));
}

#[test]
fn an_event_with_an_id_is_never_late() {
    let mut s = setup().with_hour_10_left();
    let e = click(10, 99).with_id(7);
    assert_eq!(s.writer.apply(e), Applied::Sealed);
    s.late.apply();
    assert_eq!(s.ring.read(10), Counts::new(5, 5, 0));
}

#[test]
fn the_writer_wakes_the_late_thread_only_when_its_queue_was_empty_and_none_is_lost() {
    use std::sync::atomic::{AtomicUsize, Ordering as O};
    let mut s = setup().with_hour_10_left();
    let wakes = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&wakes);
    let queue = s.ring.late().expect("late events").clone();
    queue.wake_with(Box::new(move || {
        counted.fetch_add(1, O::Relaxed);
    }));
    // Three late events before the thread takes them: one wake-up, and it takes all three.
    for u in [97, 98, 99] {
        assert_eq!(s.writer.apply(click(10, u)), Applied::Late);
    }
    assert_eq!(wakes.load(O::Relaxed), 1);
    s.late.apply();
    assert_eq!(s.ring.read(10), Counts::new(8, 8, 0));
    // The queue is empty again: the next event wakes it again.
    assert_eq!(s.writer.apply(click(10, 96)), Applied::Late);
    assert_eq!(wakes.load(O::Relaxed), 2);
    s.late.apply();
    assert_eq!(s.ring.read(10), Counts::new(9, 9, 0));
}
