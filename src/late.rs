//! Late events: events of an hour that left the ring, counted exactly against the users the
//! hour had when it left (its cold set) and the late users counted before them.
//!
//! The writer decides which events are late, by the sequence alone (`ring::late`: the hour
//! is at most the cold retention before the newest hour the ring has taken), and queues
//! them in its order. [`LateCounts::apply`] (on the freezing thread, which also stores the
//! hours that leave: one thread, one order) takes them in that order: for each event's hour
//! it holds the hour's base (its users when it left: from `Leaving` until stored, then its
//! file, mapped), the late users counted so far and the hour's counts; a user is new if
//! neither holds it. So an hour's counts are a function of its own events in journal order,
//! the same on every replay and every restore, whenever this thread runs.
//!
//! What others read, each consistent on its own:
//! - a GET of the hour: its archive entry, raised after each batch of late events;
//! - a range: the hour's [`LateView`] (counts, the base's size and the late users, replaced
//!   whole after each batch), published *before* the archive entry, so a range that finds no
//!   view finds the archive entry still at the base's count;
//! - a snapshot: at its capture the writer queued a mark at its journal position; when this
//!   thread reaches it, every late event before the position is counted and none after, and
//!   it leaves a [`LateImage`] of exactly that state for the snapshot thread
//!   ([`LateCounts::take_image`]), which merges it into the image (format version 3).
//!
//! An hour whose base cannot be read (its file damaged, a failing disk) holds every late
//! event from there on, in order, and is tried again (every second, with the stores): late
//! events are never counted out of order or without their base, and snapshots wait for them.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::cold::ColdTier;
use crate::coldset::ColdSet;
use crate::counts::Counts;
use crate::event::{Event, Kind};
use crate::ring::freeze::sorted_users;
use crate::ring::{Late, Ring, RingImage};
use crate::sync::{Arc, AtomicU64, Ordering, RwLock};

/// One hour's late state, as a range reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LateView {
    /// The hour's counts: what it had when it left, and its late events.
    pub counts: Counts,
    /// Users of the hour when it left (its cold set's size).
    pub base_len: u64,
    /// The users late events counted, none of them in the base, in the order counted.
    pub users: Vec<u64>,
}

/// The late state at a snapshot's position: each hour's counts and late users.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LateImage {
    /// The journal position of the capture (the mark's).
    pub covered: u64,
    pub hours: Vec<(u32, Counts, Vec<u64>)>,
}

impl LateImage {
    /// Puts these late counts into `image`, captured at the same position: each hour's counts
    /// replace its archive entry (which the late thread may have raised past the position,
    /// or not yet to it), its late users go to `image.late`.
    pub fn merge_into(self, image: &mut RingImage) {
        debug_assert_eq!(self.covered, image.covered);
        for (hour, counts, users) in self.hours {
            match image.archive.binary_search_by_key(&hour, |(h, _)| *h) {
                Ok(i) => image.archive[i].1 = counts,
                Err(i) => image.archive.insert(i, (hour, counts)),
            }
            image.late.push((hour, users));
        }
        image.late.sort_unstable_by_key(|(h, _)| *h);
        image.late_marked = false;
    }
}

/// An hour's late state on the late thread.
#[derive(Debug)]
struct LateHour {
    /// The hour's users when it left; read when its first late event comes.
    base: Option<Arc<ColdSet>>,
    base_len: u64,
    /// Late users, as a set and in the order counted.
    users: HashSet<u64, ahash::RandomState>,
    order: Vec<u64>,
    counts: Counts,
}

/// The late thread's own state.
#[derive(Debug, Default)]
struct State {
    hours: BTreeMap<u32, LateHour>,
    /// Messages taken from the ring's queue and not done yet (all of them, once an hour's
    /// base could not be read: they wait in order).
    held: VecDeque<Late>,
}

/// Late events' counts: the late thread's state and what readers see of it.
#[derive(Debug)]
pub struct LateCounts {
    ring: Arc<Ring>,
    cold: Arc<ColdTier>,
    state: RwLock<State>,
    /// Per hour with late events, for ranges.
    views: RwLock<BTreeMap<u32, Arc<LateView>>>,
    /// Images left at marks, for the snapshot thread.
    images: RwLock<Vec<LateImage>>,
    /// Late events counted since start.
    counted: AtomicU64,
    /// Times an hour's base could not be read.
    failures: AtomicU64,
}

impl LateCounts {
    /// Late counts of `ring`'s late events (it must count them:
    /// `Ring::counting_late_events`), against the users in `cold`.
    pub fn new(ring: Arc<Ring>, cold: Arc<ColdTier>) -> Self {
        Self {
            ring,
            cold,
            state: RwLock::new(State::default()),
            views: RwLock::new(BTreeMap::new()),
            images: RwLock::new(Vec::new()),
            counted: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Takes back the late users of a restored snapshot (`RingImage::late`); their counts
    /// are in the restored archive. Call before the journal's replay.
    pub fn restore(&self, late: &[(u32, Vec<u64>)]) {
        self.state.with_write(|state| {
            for (hour, users) in late {
                let counts = self.ring.archive().get(*hour).unwrap_or_default();
                let mut set = HashSet::with_hasher(ahash::RandomState::new());
                set.extend(users.iter().copied());
                let h = LateHour {
                    base: None,
                    base_len: counts.unique_users.saturating_sub(users.len() as u64),
                    users: set,
                    order: users.clone(),
                    counts,
                };
                self.publish(*hour, &h);
                state.hours.insert(*hour, h);
            }
        });
    }

    /// The late state of `hour`, if late events came for it.
    pub fn view(&self, hour: u32) -> Option<Arc<LateView>> {
        self.views.with_read(|v| v.get(&hour).cloned())
    }

    /// Late events counted since start, and times a base could not be read.
    pub fn figures(&self) -> (u64, u64) {
        // Relaxed: statistics.
        (
            self.counted.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// Counts every late event the writer queued, in its order; leaves an image at each
    /// mark. `false` if an hour's base could not be read: the rest waits, to be tried again.
    pub fn apply(&self) -> bool {
        let Some(queue) = self.ring.late() else {
            return true;
        };
        self.state.with_write(|state| {
            let mut taken = Vec::new();
            queue.take(&mut taken);
            state.held.extend(taken);
            let mut touched = Vec::new();
            let mut done = true;
            while let Some(&late) = state.held.front() {
                match late {
                    Late::Event(event) => {
                        if !self.count(state, event) {
                            done = false;
                            break;
                        }
                        touched.push(event.hour);
                    }
                    Late::Mark(covered) => {
                        self.publish_touched(state, &mut touched);
                        let image = LateImage {
                            covered,
                            hours: state
                                .hours
                                .iter()
                                .map(|(h, s)| (*h, s.counts, s.order.clone()))
                                .collect(),
                        };
                        self.images.with_write(|i| i.push(image));
                    }
                }
                state.held.pop_front();
            }
            self.publish_touched(state, &mut touched);
            done
        })
    }

    /// Counts one late event; `false` if its hour's base could not be read.
    fn count(&self, state: &mut State, event: Event) -> bool {
        let hour = event.hour;
        let h = state.hours.entry(hour).or_insert_with(|| {
            // Its counts when it left (zeros if it never had an event in the ring).
            let counts = self.ring.archive().get(hour).unwrap_or_default();
            LateHour {
                base: None,
                base_len: counts.unique_users,
                users: HashSet::with_hasher(ahash::RandomState::new()),
                order: Vec::new(),
                counts,
            }
        });
        if h.base.is_none() {
            match self.base(hour, h.base_len) {
                Some(base) => h.base = Some(base),
                None => {
                    // Relaxed: a statistic.
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
            }
        }
        let base = h.base.as_ref().is_some_and(|b| b.contains(event.user));
        if !base && h.users.insert(event.user) {
            h.order.push(event.user);
            h.counts.unique_users += 1;
        }
        match event.kind {
            Kind::Click => h.counts.clicks += 1,
            Kind::Impression => h.counts.impressions += 1,
        }
        // Relaxed: a statistic.
        self.counted.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// `hour`'s users when it left (`len` of them): from `Leaving` while it waits to be
    /// stored, else its file; `None` if neither can be read.
    fn base(&self, hour: u32, len: u64) -> Option<Arc<ColdSet>> {
        if len == 0 {
            return Some(Arc::new(ColdSet::from_sorted(&[])));
        }
        if let Some((_, members)) = self.ring.leaving().and_then(|l| l.get(hour)) {
            return Some(Arc::new(sorted_users(&members, len)));
        }
        match self.cold.load(hour, len) {
            Ok(Some(set)) => Some(Arc::new(set)),
            Ok(None) => {
                tracing::error!(
                    hour_start_ms = u64::from(hour) * crate::event::MILLIS_PER_HOUR,
                    "late events: the hour's users are in no cold file; its late events wait"
                );
                None
            }
            Err(fault) => {
                tracing::error!(
                    hour_start_ms = u64::from(hour) * crate::event::MILLIS_PER_HOUR,
                    file = %crate::cold::file_name(hour),
                    error = %fault,
                    "late events: the hour's users cannot be read; its late events wait"
                );
                None
            }
        }
    }

    /// Publishes the hours of `touched` (view first, then the archive entry) and empties it.
    fn publish_touched(&self, state: &State, touched: &mut Vec<u32>) {
        touched.sort_unstable();
        touched.dedup();
        for hour in touched.drain(..) {
            if let Some(h) = state.hours.get(&hour) {
                self.publish(hour, h);
            }
        }
    }

    /// A range reads the view, a GET the archive: the view goes first, so a range that finds
    /// none finds the archive at the base's count (`uniques`).
    fn publish(&self, hour: u32, h: &LateHour) {
        let view = Arc::new(LateView {
            counts: h.counts,
            base_len: h.base_len,
            users: h.order.clone(),
        });
        self.views.with_write(|v| v.insert(hour, view));
        self.ring.archive().count_late(hour, h.counts);
    }

    /// The late counts at the mark of the capture at `covered`, once this thread reached it
    /// (waiting up to `wait`, polling); older images are dropped.
    pub fn take_image(&self, covered: u64, wait: Duration) -> Result<LateImage, String> {
        let deadline = Instant::now() + wait;
        loop {
            let found = self.images.with_write(|images| {
                images.retain(|i| i.covered >= covered);
                images
                    .iter()
                    .position(|i| i.covered == covered)
                    .map(|at| images.remove(at))
            });
            if let Some(image) = found {
                return Ok(image);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "event {covered}: the late events before it are not counted yet (an \
                     hour's users cannot be read: see the server's log)"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
#[path = "late_tests.rs"]
mod tests;
