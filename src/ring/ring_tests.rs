//! Tests of `ring`.

use super::*;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

fn ev(hour: u32, user: u64, kind: Kind) -> Event {
    Event::new(hour, user, kind)
}

#[test]
fn counts_unique_users_clicks_and_impressions() {
    let mut w = RingWriter::new(Arc::new(Ring::new(4)));
    w.apply(ev(10, 1, Kind::Click));
    w.apply(ev(10, 1, Kind::Impression));
    w.apply(ev(10, 2, Kind::Impression));
    // Not visible before publish ...
    assert_eq!(w.ring().read(10), Counts::default());
    w.publish();
    // ... and exact after it.
    assert_eq!(w.ring().read(10), Counts::new(2, 1, 2));
    assert_eq!(w.ring().read(11), Counts::default());
}

#[test]
fn recycling_seals_the_old_hour_into_the_archive() {
    let ring = Arc::new(Ring::new(4));
    let mut w = RingWriter::new(ring.clone());
    w.apply_and_publish(ev(2, 1, Kind::Click));
    w.apply_and_publish(ev(2, 2, Kind::Click));
    assert!(ring.archive().is_empty());
    // Hour 6 shares slot 2 and is newer: hour 2 is sealed.
    assert_eq!(
        w.apply_and_publish(ev(6, 3, Kind::Impression)),
        Applied::Counted
    );
    assert_eq!(ring.archive().get(2), Some(Counts::new(2, 2, 0)));
    assert_eq!(ring.read(2), Counts::new(2, 2, 0));
    assert_eq!(ring.read(6), Counts::new(1, 0, 1));
    // The new hour starts with an empty user set.
    w.apply_and_publish(ev(6, 1, Kind::Click));
    assert_eq!(ring.read(6), Counts::new(2, 1, 1));
    assert!(ring.is_sealed(2));
    assert!(!ring.is_sealed(6));
    assert!(!ring.is_sealed(10));
}

#[test]
fn events_of_a_sealed_hour_are_dropped_and_counted() {
    let ring = Arc::new(Ring::new(4));
    let mut w = RingWriter::new(ring.clone());
    w.apply_and_publish(ev(6, 1, Kind::Click));
    // Hour 2 is older than hour 6 in the same slot.
    assert_eq!(w.apply_and_publish(ev(2, 1, Kind::Click)), Applied::Sealed);
    assert_eq!(w.ring().sealed_drops(), 1);
    assert_eq!(ring.read(2), Counts::default());
    assert_eq!(ring.read(6), Counts::new(1, 1, 0));
    assert!(ring.archive().is_empty());
}

#[test]
fn an_hour_that_skipped_the_ring_reads_as_zeros() {
    let ring = Arc::new(Ring::new(4));
    let mut w = RingWriter::new(ring.clone());
    w.apply_and_publish(ev(1, 1, Kind::Click));
    w.apply_and_publish(ev(9, 1, Kind::Click)); // seals 1; hour 5 never had an event
    assert_eq!(ring.read(5), Counts::default());
    assert_eq!(ring.read(1), Counts::new(1, 1, 0));
    assert_eq!(ring.try_read(1), Some(Counts::new(1, 1, 0)));
}

/// The plain model of the apply rule (ARCHITECTURE.md): one map of hours, the same sealing
/// rule, and each hour's event ids.
#[derive(Default)]
struct Model {
    slot_hour: HashMap<usize, u32>,
    hours: HashMap<u32, (HashSet<u64>, u64, u64)>,
    ids: HashMap<u32, HashSet<u64>>,
}

impl Model {
    fn apply(&mut self, cap: usize, e: Event) -> Applied {
        let s = e.hour as usize % cap;
        match self.slot_hour.get(&s) {
            Some(&h) if h > e.hour => return Applied::Sealed,
            _ => {}
        }
        self.slot_hour.insert(s, e.hour);
        if e.id != 0 && !self.ids.entry(e.hour).or_default().insert(e.id) {
            return Applied::Duplicate;
        }
        let entry = self.hours.entry(e.hour).or_default();
        entry.0.insert(e.user);
        match e.kind {
            Kind::Click => entry.1 += 1,
            Kind::Impression => entry.2 += 1,
        }
        Applied::Counted
    }

    fn read(&self, hour: u32) -> Counts {
        self.hours
            .get(&hour)
            .map(|(u, c, i)| Counts::new(u.len() as u64, *c, *i))
            .unwrap_or_default()
    }
}

fn arb_event(max_hour: u32) -> impl Strategy<Value = Event> {
    (0..max_hour, 0u64..40, any::<bool>(), 0u64..24).prop_map(|(hour, user, click, id)| {
        let kind = if click { Kind::Click } else { Kind::Impression };
        // Small user ids give repeats; spreading them over the fingerprint space
        // exercises every stripe. A third of the events have no id; the rest share 16 ids,
        // so repeats of an id come in one hour and across hours.
        let id = match id {
            0..8 => 0,
            id => crate::event::event_id_fingerprint(&id.to_le_bytes()),
        };
        ev(hour, crate::event::fingerprint(&user.to_le_bytes()), kind).with_id(id)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ring_answers_equal_the_model(
        cap in 1usize..6,
        events in proptest::collection::vec(arb_event(20), 0..300),
        batch in 1usize..8,
    ) {
        let ring = Arc::new(Ring::new(cap));
        let mut w = RingWriter::new(ring.clone());
        let mut model = Model::default();
        let (mut sealed, mut repeats) = (0, 0);
        for chunk in events.chunks(batch) {
            for &e in chunk {
                let applied = w.apply(e);
                prop_assert_eq!(applied, model.apply(cap, e));
                sealed += u64::from(applied == Applied::Sealed);
                repeats += u64::from(applied == Applied::Duplicate);
            }
            w.publish();
            for hour in 0..20 {
                prop_assert_eq!(ring.read(hour), model.read(hour), "hour {}", hour);
            }
        }
        prop_assert_eq!(w.ring().sealed_drops(), sealed);
        prop_assert_eq!(w.ring().duplicates(), repeats);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// `apply_batch` mixes users ahead of applying them; batches longer than the prefetch
    /// distance, with hours that recycle slots and drop events inside one window, must still
    /// give exactly what one `apply` after another gives, and what the model gives.
    #[test]
    fn apply_batch_equals_apply_one_by_one(
        cap in 1usize..6,
        events in proptest::collection::vec(arb_event(20), 0..400),
        batch in 1usize..(4 * PREFETCH_AHEAD),
    ) {
        let (ring_a, ring_b) = (Arc::new(Ring::new(cap)), Arc::new(Ring::new(cap)));
        let mut batched = RingWriter::new(ring_a.clone());
        let mut single = RingWriter::new(ring_b.clone());
        let mut model = Model::default();
        for chunk in events.chunks(batch) {
            batched.apply_batch(chunk);
            batched.publish();
            for &e in chunk {
                single.apply(e);
                model.apply(cap, e);
            }
            single.publish();
            for hour in 0..20 {
                prop_assert_eq!(ring_a.read(hour), ring_b.read(hour), "hour {}", hour);
                prop_assert_eq!(ring_a.read(hour), model.read(hour), "hour {}", hour);
            }
            prop_assert_eq!(ring_a.sealed_drops(), ring_b.sealed_drops());
            prop_assert_eq!(ring_a.duplicates(), ring_b.duplicates());
            let archive = |r: &Ring| {
                let mut v = r.archive().entries();
                v.sort_by_key(|&(hour, _)| hour);
                v
            };
            prop_assert_eq!(archive(&ring_a), archive(&ring_b));
        }
    }
}

/// The image of the ring at this instant, copied all at once: what a capture must equal.
fn instant_image(w: &RingWriter, covered: u64) -> RingImage {
    let mut archive = w.ring.archive.entries();
    archive.sort_unstable_by_key(|(h, _)| *h);
    RingImage {
        covered,
        left_before: w.left(),
        late_marked: false,
        late: Vec::new(),
        sealed_drops: w.ring.sealed_drops(),
        duplicates: w.ring.duplicates(),
        archive,
        slots: w
            .slots
            .iter()
            .map(|s| SlotImage {
                hour: s.snap.hour,
                counts: s.snap.counts,
                base: s.base.clone(),
                users: sorted(s.users.fingerprints().collect()),
                ids: sorted(s.ids.fingerprints().collect()),
            })
            .collect(),
    }
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

fn with_sorted_users(mut image: RingImage) -> RingImage {
    for s in &mut image.slots {
        s.users = sorted(std::mem::take(&mut s.users));
        s.ids = sorted(std::mem::take(&mut s.ids));
    }
    image
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A capture taken while the writer goes on (inserts into stripes not yet copied,
    /// recycles of slots) equals the ring as it was when the capture began; restoring it and
    /// applying the events after it gives the ring that applied everything.
    #[test]
    fn a_capture_is_the_ring_at_its_position_and_restores_to_the_same_ring(
        cap in 1usize..5,
        events in proptest::collection::vec(arb_event(12), 1..400),
        split in 0usize..400,
        steps in 0usize..4,
    ) {
        let split = split.min(events.len());
        let live = Arc::new(Ring::new(cap));
        let mut w = RingWriter::new(live.clone());
        for &e in &events[..split] {
            w.apply(e);
        }
        w.publish();
        let expected = instant_image(&w, split as u64);
        w.begin_capture(split as u64);
        let mut image = None;
        for chunk in events[split..].chunks(7) {
            for &e in chunk {
                w.apply(e);
            }
            w.publish();
            if image.is_none() {
                image = w.capture_step(steps);
            }
        }
        let image = match image {
            Some(image) => image,
            None => w.capture_step(usize::MAX).expect("complete"),
        };
        prop_assert!(!w.is_capturing());
        prop_assert_eq!(with_sorted_users(image.clone()), expected);

        let restored = Arc::new(Ring::new(cap));
        let mut r = RingWriter::new(restored.clone());
        r.restore(&image).expect("restore");
        for &e in &events[split..] {
            r.apply(e);
        }
        r.publish();
        for hour in 0..12 {
            prop_assert_eq!(restored.read(hour), live.read(hour), "hour {}", hour);
        }
        prop_assert_eq!(restored.sealed_drops(), live.sealed_drops());
        prop_assert_eq!(restored.duplicates(), live.duplicates());
        // The restored ring remembers the same ids: each id of the events sends once more
        // counts nowhere.
        for &e in events.iter().filter(|e| e.id != 0) {
            prop_assert_ne!(r.apply(e), Applied::Counted);
            prop_assert_ne!(w.apply(e), Applied::Counted);
        }
    }
}

#[test]
fn an_event_id_counts_once_per_hour_and_a_recycled_slot_forgets_it() {
    let ring = Arc::new(Ring::new(4));
    let mut w = RingWriter::new(ring.clone());
    let e = ev(2, 1, Kind::Click).with_id(77);
    assert_eq!(w.apply_and_publish(e), Applied::Counted);
    // The same event again, or another event under the same id: a repeat.
    assert_eq!(w.apply_and_publish(e), Applied::Duplicate);
    assert_eq!(
        w.apply_and_publish(ev(2, 5, Kind::Impression).with_id(77)),
        Applied::Duplicate
    );
    assert_eq!(ring.read(2), Counts::new(1, 1, 0));
    assert_eq!(ring.duplicates(), 2);
    // The same id in another hour is another event; events without ids never repeat.
    assert_eq!(
        w.apply_and_publish(ev(3, 1, Kind::Click).with_id(77)),
        Applied::Counted
    );
    assert_eq!(w.apply_and_publish(ev(2, 1, Kind::Click)), Applied::Counted);
    assert_eq!(w.apply_and_publish(ev(2, 1, Kind::Click)), Applied::Counted);
    assert_eq!(ring.read(2), Counts::new(1, 3, 0));
    // Hour 6 takes slot 2: hour 2's ids go with it (an event of hour 2 is sealed now).
    assert_eq!(
        w.apply_and_publish(ev(6, 1, Kind::Click).with_id(77)),
        Applied::Counted
    );
    assert_eq!(w.apply_and_publish(e), Applied::Sealed);
}

#[test]
fn restore_refuses_an_image_whose_users_disagree_with_its_counts() {
    let mut w = RingWriter::new(Arc::new(Ring::new(2)));
    w.apply_and_publish(ev(4, 1, Kind::Click));
    w.begin_capture(1);
    let mut image = w.capture_step(usize::MAX).expect("complete");
    image.slots[0].users.push(99);
    let err = RingWriter::new(Arc::new(Ring::new(2)))
        .restore(&image)
        .expect_err("refused");
    assert!(err.contains("unique_users=1"), "{err}");
    let err = RingWriter::new(Arc::new(Ring::new(3)))
        .restore(&image)
        .expect_err("refused");
    assert!(err.contains("slots"), "{err}");
}
