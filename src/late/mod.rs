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
//! - a range: the hour's [`LateView`] (counts, the base's size and how many late users of
//!   the hour's append-only log it counts: nothing is copied per batch), published *before*
//!   the archive entry, so a range that finds no view finds the archive entry still at the
//!   base's count;
//! - a snapshot: at its capture the writer queued a mark at its journal position; when this
//!   thread reaches it, every late event before the position is counted and none after, and
//!   it leaves a [`LateImage`] of exactly that state for the snapshot thread
//!   ([`LateCounts::take_image`]), which merges it into the image (format version 3).
//!
//! The edge refuses a late POST for an hour whose users are not kept (it left the ring before
//! this server kept a cold tier). An event whose hour's users still cannot be read here (its
//! file damaged or removed from outside) is dropped, counted in
//! `hourtally_late_dropped_total` and logged: never counted without its base, never holding
//! up the others. The bases of the [`BASES_KEPT`] hours used last stay read between batches.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use crate::cold::ColdTier;
use crate::coldset::ColdSet;
use crate::counts::Counts;
use crate::event::{Event, Kind};
use crate::ring::freeze::sorted_users;
use crate::ring::userlog::UserLog;
use crate::ring::{Late, Ring};
use crate::sync::{Arc, AtomicU32, AtomicU64, Ordering, RwLock};

mod view;
use view::ImageHour;
pub use view::{LateImage, LateView};

/// An hour's late state on the late thread.
#[derive(Debug)]
struct LateHour {
    /// The hour's users when it left; read when its first late event comes.
    base: Option<Arc<ColdSet>>,
    base_len: u64,
    /// Late users, as a set, and listed for readers in the order counted.
    users: HashSet<u64, ahash::RandomState>,
    log: Arc<UserLog>,
    counts: Counts,
    /// When its last late event was counted (`State::used`).
    last_used: u64,
}

impl LateHour {
    fn new(counts: Counts, base_len: u64) -> Self {
        LateHour {
            base: None,
            base_len,
            users: HashSet::with_hasher(ahash::RandomState::new()),
            log: Arc::new(UserLog::new()),
            counts,
            last_used: 0,
        }
    }

    /// Counts `user` as late; whether it was new to the hour.
    fn add_user(&mut self, user: u64) -> bool {
        let new = self.users.insert(user);
        if new {
            self.log.append(self.users.len() as u64 - 1, user);
        }
        new
    }

    /// This hour in an image: its counts and the late users counted so far (a prefix of its
    /// log, not a copy).
    fn imaged(&self, hour: u32) -> ImageHour {
        ImageHour {
            hour,
            counts: self.counts,
            log: Arc::clone(&self.log),
            users: self.users.len() as u64,
        }
    }
}

/// Hours whose base stays read (mapped, or a set) between batches: the most recently used.
const BASES_KEPT: usize = 8;

/// The late thread's own state.
#[derive(Debug, Default)]
struct State {
    hours: BTreeMap<u32, LateHour>,
    /// Late events taken so far, to order the hours' last uses.
    used: u64,
}

impl State {
    /// Lets go of the bases of all but the [`BASES_KEPT`] hours used last (read again when
    /// their next late event comes), so that a year of hours with late events does not hold
    /// a year of sets (or of mapped files the retention removed).
    fn evict_bases(&mut self) {
        let mut with_base: Vec<(u64, u32)> = self
            .hours
            .iter()
            .filter(|(_, h)| h.base.is_some())
            .map(|(hour, h)| (h.last_used, *hour))
            .collect();
        if with_base.len() <= BASES_KEPT {
            return;
        }
        with_base.sort_unstable();
        for &(_, hour) in &with_base[..with_base.len() - BASES_KEPT] {
            if let Some(h) = self.hours.get_mut(&hour) {
                h.base = None;
            }
        }
    }
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
    /// Late events dropped: their hour's users could not be read.
    failures: AtomicU64,
    /// The newest hour of the older kept snapshot, when it moved on and its prune is not
    /// done yet (0: none asked).
    prune_to: AtomicU32,
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
            prune_to: AtomicU32::new(0),
        }
    }

    /// Takes back the late users of a restored snapshot (`RingImage::late`); their counts
    /// are in the restored archive. Call before the journal's replay.
    pub fn restore(&self, late: &[(u32, Vec<u64>)]) {
        self.state.with_write(|state| {
            for (hour, users) in late {
                let counts = self.ring.archive().get(*hour).unwrap_or_default();
                let base_len = counts.unique_users.saturating_sub(users.len() as u64);
                let mut h = LateHour::new(counts, base_len);
                for &user in users {
                    h.add_user(user);
                }
                self.publish(*hour, &h);
                state.hours.insert(*hour, h);
            }
        });
    }

    /// Asks the late thread to remove the cold files (and late state) of hours past the
    /// retention once the ring has taken `newest`: the older kept snapshot's newest hour, as
    /// it moves on (`journal::snapshotter`). The thread does it after the late events it has
    /// (none of which is of such an hour), so the writer, which asks, never waits on files.
    pub fn request_prune(&self, newest: u32) {
        // Relaxed: a request; the thread reads the files and its state under their own locks.
        self.prune_to.fetch_max(newest, Ordering::Relaxed);
        if let Some(queue) = self.ring.late() {
            queue.wake();
        }
    }

    /// Does an asked-for prune (the late thread): the hours the cold tier removed lose their
    /// late state too.
    fn prune(&self, state: &mut State) {
        // Relaxed: see `request_prune`.
        let newest = self.prune_to.swap(0, Ordering::Relaxed);
        if newest == 0 {
            return;
        }
        let (removed, error) = self.cold.prune(newest);
        if let Some(e) = error {
            tracing::warn!(error = %e, dir = %self.cold.dir().display(), "cold tier: could not remove the file of an hour past the retention");
        }
        if !removed.is_empty() {
            tracing::info!(
                hours = removed.len(),
                newest_hour = newest,
                "cold tier: removed the files of hours past the retention"
            );
        }
        for hour in &removed {
            state.hours.remove(hour);
        }
        self.views.with_write(|views| {
            for hour in &removed {
                views.remove(hour);
            }
        });
    }

    /// The late view of `hour` if there is one, without waiting for the lock (`None` when it
    /// is held: ask again).
    pub fn try_view(&self, hour: u32) -> Option<Option<Arc<LateView>>> {
        self.views.try_with_read(|v| v.get(&hour).cloned())
    }

    /// The late state of `hour`, if late events came for it.
    pub fn view(&self, hour: u32) -> Option<Arc<LateView>> {
        self.views.with_read(|v| v.get(&hour).cloned())
    }

    /// Late events counted since start, and late events dropped (their hour's users could
    /// not be read).
    pub fn figures(&self) -> (u64, u64) {
        // Relaxed: statistics.
        (
            self.counted.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// Counts every late event the writer queued, in its order; leaves an image at each
    /// mark. An event whose hour's users cannot be read is dropped (below), so nothing is
    /// left to retry.
    pub fn apply(&self) {
        let Some(queue) = self.ring.late() else {
            return;
        };
        self.state.with_write(|state| {
            let mut taken = Vec::new();
            queue.take(&mut taken);
            let mut touched = Vec::new();
            for late in taken {
                match late {
                    Late::Event(event) => {
                        if self.count(state, event) {
                            touched.push(event.hour);
                        }
                    }
                    Late::Mark(covered) => {
                        self.publish_touched(state, &mut touched);
                        let image = LateImage {
                            covered,
                            hours: state.hours.iter().map(|(h, s)| s.imaged(*h)).collect(),
                        };
                        self.images.with_write(|i| i.push(image));
                    }
                }
            }
            self.publish_touched(state, &mut touched);
            state.evict_bases();
            self.prune(state);
        });
    }

    /// Counts one late event; `false` if it was dropped: its hour's users cannot be read
    /// (its file damaged or gone). The edge refuses late POSTs for hours whose users are not
    /// kept, so only a fault of the disk gets here; the outcome is as stable as the disk's
    /// state (a replay over the same files drops the same events), and it is counted
    /// (`hourtally_late_dropped_total`) and logged.
    fn count(&self, state: &mut State, event: Event) -> bool {
        let hour = event.hour;
        state.used += 1;
        let used = state.used;
        let h = state.hours.entry(hour).or_insert_with(|| {
            // Its counts when it left (zeros if it never had an event in the ring).
            let counts = self.ring.archive().get(hour).unwrap_or_default();
            LateHour::new(counts, counts.unique_users)
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
        h.last_used = used;
        let base = h.base.as_ref().is_some_and(|b| b.contains(event.user));
        if !base && h.add_user(event.user) {
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
                    "late events: the hour's users are in no cold file; its late event is dropped"
                );
                None
            }
            Err(fault) => {
                tracing::error!(
                    hour_start_ms = u64::from(hour) * crate::event::MILLIS_PER_HOUR,
                    file = %crate::cold::file_name(hour),
                    error = %fault,
                    "late events: the hour's users cannot be read; its late event is dropped"
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
            log: Arc::clone(&h.log),
            late_users: h.users.len() as u64,
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
                    "event {covered}: the late events before it are not counted yet (the \
                     thread that counts them is behind or gone: see the server's log)"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests;
