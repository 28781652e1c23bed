//! The ring of hour slots and the deterministic apply rule.
//!
//! Hour `h` lives in slot `h % capacity`. The ring is split in two halves with one owner each:
//!
//! - [`Ring`] is shared: the seqlock-published [`Slot`]s and the [`Archive`] of sealed
//!   hours. Any thread reads it at any time without waiting for the writer.
//! - [`RingWriter`] belongs to the writer thread alone: each slot's working copy of its counts
//!   and its [`UserSet`]. It applies events to the working copies and publishes the slots it
//!   touched with [`RingWriter::publish`], once per batch, so a burst of events costs readers
//!   one cache-line transfer per slot rather than one per event.
//!
//! ## The apply rule (no clock)
//!
//! For an event of hour `h` and slot `s = h % capacity`:
//! - `s` holds `h`: if the event has an id that `s` has counted already, the event is a
//!   repeat: dropped and counted as such. Otherwise remember the id (if any), insert the
//!   fingerprint; if it was new, `unique += 1`; add the kind.
//! - `s` is empty or holds an older hour: seal the old hour into the archive, clear `s`
//!   (its users and its ids), take `h`, apply.
//! - `s` holds a newer hour: `h` is sealed. In a ring that counts late events, if `h` is at
//!   most the late window before the newest hour taken, the event is late: queued, in order,
//!   for the thread that counts it ([`late`]). Otherwise it is dropped and counted.
//!
//! The first rule is `RingWriter::apply`'s hot path; the other two, rare, are in `recycle`.
//!
//! So an event id is remembered as long as its hour holds its slot: until an event of an hour
//! `capacity` (`--retention-hours`) or more hours later takes it, which the admission window
//! keeps from happening while a POST can still reach back to the hour.
//!
//! The ring's state is a pure function of the sequence of applied events.
//!
//! ## What a reader sees
//!
//! Every answer for hour `h` equals the totals of some prefix of the events applied to `h`,
//! and later answers never go back to a shorter prefix:
//! - the slot holds `h`: its snapshot, a batch boundary of the writer;
//! - the slot holds a newer hour: `h`'s archive entry, which is its final total. The writer
//!   seals the old hour into the archive *before* it publishes the slot with the new hour
//!   (the slot's Release store orders them), so a reader that sees the new hour finds the old
//!   one archived; if `h` is not there it never had an event applied;
//! - the slot is empty or holds an older hour: `h` has had nothing published yet: zeros.

pub mod archive;
mod batch;
pub mod capture;
#[cfg(hourtally_loom)]
mod controls;
pub mod freeze;
pub mod late;
pub mod leaving;
pub mod members;
pub mod placement;
mod prefetch;
mod recycle;
pub mod slot;
mod stripe;
pub mod userlog;
pub mod users;
mod zeroed;

use crossbeam_utils::CachePadded;

pub use archive::Archive;
pub use batch::PREFETCH_AHEAD;
use capture::{Capture, Which};
pub use capture::{RingImage, SlotImage};
pub use late::{Late, LateQueue};
pub use leaving::{Leaving, LeavingHour};
pub use members::{HourMembers, Members};
pub use slot::{Counts, Slot, Snapshot, EMPTY};
use users::Mixed;
pub use users::UserSet;

use crate::coldset::ColdSet;
use crate::event::{Event, Kind};
use crate::sync::{Arc, AtomicU64, Ordering, RwLock};

/// Default number of hour slots (`--retention-hours`).
pub const DEFAULT_CAPACITY: usize = 48;

/// Where hour `h` stands, given the hour its slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    /// The slot holds `h`.
    InSlot,
    /// The slot is empty or holds an older hour: `h` has not started in the ring yet (an
    /// event of `h` takes the slot; a read of `h` answers zeros).
    NotStarted,
    /// The slot holds a newer hour: `h` is sealed (in the archive, or never had an event).
    Sealed,
}

#[inline]
fn standing(slot_hour: u32, hour: u32) -> Standing {
    if slot_hour == hour {
        Standing::InSlot
    } else if slot_hour == EMPTY || slot_hour < hour {
        Standing::NotStarted
    } else {
        Standing::Sealed
    }
}

/// The shared half of the ring: published slots and the archive.
#[derive(Debug)]
pub struct Ring {
    /// One slot per retained hour; padded so that the writer publishing one hour does not
    /// invalidate the cache line a reader of a neighbouring hour is using.
    slots: Box<[CachePadded<Slot>]>,
    /// The users of the hour each slot holds, for readers that list them (`members`); the
    /// writer replaces a slot's before it publishes the slot with a new hour.
    members: Box<[RwLock<Arc<Members>>]>,
    /// Final counts of hours whose slot was recycled.
    archive: Archive,
    /// Events the apply rule dropped because their hour was sealed. Written by the ring's one
    /// writer only.
    sealed_drops: AtomicU64,
    /// Events the apply rule dropped as repeats of an event id their hour had counted.
    /// Written by the ring's one writer only.
    duplicates: AtomicU64,
    /// Freezes installed ([`freeze`]). Written by the ring's one writer only.
    freezes: AtomicU64,
    /// Hours that left with users, until the cold tier has stored them ([`leaving`]); `None`
    /// when sealed hours keep only their totals (no cold tier).
    leaving: Option<Arc<Leaving>>,
    /// Late events, on their way to the thread that counts them ([`late`]); `None` when an
    /// event of a sealed hour is dropped (no cold tier).
    late: Option<Arc<LateQueue>>,
}

impl Ring {
    /// A ring of `capacity` empty slots. Panics if `capacity` is zero.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a ring needs at least one slot");
        Self {
            slots: (0..capacity)
                .map(|_| CachePadded::new(Slot::new()))
                .collect(),
            members: (0..capacity)
                .map(|_| RwLock::new(Arc::new(Members::new(EMPTY))))
                .collect(),
            archive: Archive::new(),
            sealed_drops: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            freezes: AtomicU64::new(0),
            leaving: None,
            late: None,
        }
    }

    /// The same ring, keeping the users of each hour that leaves it in [`leaving`] until a
    /// cold tier stores them (otherwise a sealed hour keeps only its totals).
    pub fn keeping_sealed_users(mut self) -> Self {
        self.leaving = Some(Arc::new(Leaving::default()));
        self
    }

    /// The hours that left with users and are not stored yet, if the ring keeps them.
    pub fn leaving(&self) -> Option<&Arc<Leaving>> {
        self.leaving.as_ref()
    }

    /// The same ring, counting an event of a sealed hour at most `window` hours before its
    /// newest hour as late ([`late`]) instead of dropping it. For a ring that keeps its
    /// sealed hours' users ([`keeping_sealed_users`](Self::keeping_sealed_users)).
    pub fn counting_late_events(mut self, window: u32) -> Self {
        self.late = Some(Arc::new(LateQueue::new(window)));
        self
    }

    /// The queue of late events, if the ring counts them.
    pub fn late(&self) -> Option<&Arc<LateQueue>> {
        self.late.as_ref()
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    fn slot(&self, hour: u32) -> &Slot {
        let i = hour as usize % self.slots.len();
        debug_assert!(i < self.slots.len());
        &self.slots[i]
    }

    /// The counts of `hour`, from its slot or from the archive. May wait briefly for the
    /// archive lock; the HTTP edge uses [`try_read`](Self::try_read) instead.
    pub fn read(&self, hour: u32) -> Counts {
        let snap = self.slot(hour).read();
        match standing(snap.hour, hour) {
            Standing::InSlot => snap.counts,
            Standing::NotStarted => Counts::default(),
            Standing::Sealed => self.archive.get(hour).unwrap_or_default(),
        }
    }

    /// [`read`](Self::read) that never blocks: `None` only when the answer must come from the
    /// archive and the writer holds its lock at this instant (the caller yields and retries).
    #[inline]
    pub fn try_read(&self, hour: u32) -> Option<Counts> {
        let snap = self.slot(hour).read();
        match standing(snap.hour, hour) {
            Standing::InSlot => Some(snap.counts),
            Standing::NotStarted => Some(Counts::default()),
            Standing::Sealed => self
                .archive
                .try_get(hour)
                .ok()
                .map(Option::unwrap_or_default),
        }
    }

    /// Whether `hour` is sealed as far as the published slots tell: its slot holds a newer
    /// hour. Advisory (the writer may be a batch ahead); the apply rule has the last word.
    #[inline]
    pub fn is_sealed(&self, hour: u32) -> bool {
        standing(self.slot(hour).hour(), hour) == Standing::Sealed
    }

    /// The hour `hour`'s slot is published holding, if it is newer than `hour` (the hour
    /// is sealed). Advisory, as [`is_sealed`](Self::is_sealed).
    #[inline]
    pub fn sealed_by(&self, hour: u32) -> Option<u32> {
        let holder = self.slot(hour).hour();
        (standing(holder, hour) == Standing::Sealed).then_some(holder)
    }

    /// The newest hour any slot is published holding ([`EMPTY`] before the first): the
    /// writer's `RingWriter::newest` as of its last publish, or a batch behind. Advisory, as
    /// [`is_sealed`](Self::is_sealed); reads every slot's hour.
    pub fn newest_published(&self) -> u32 {
        self.slots
            .iter()
            .map(|s| s.hour())
            .filter(|&h| h != EMPTY)
            .max()
            .unwrap_or(EMPTY)
    }

    /// The archive of sealed hours.
    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// Events the apply rule dropped so far because their hour was sealed.
    pub fn sealed_drops(&self) -> u64 {
        // Relaxed: a statistic; it publishes no other memory.
        self.sealed_drops.load(Ordering::Relaxed)
    }

    /// Events the apply rule dropped so far as repeats of an event id of their hour.
    pub fn duplicates(&self) -> u64 {
        // Relaxed: a statistic; it publishes no other memory.
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Freezes of hours that are over installed so far ([`freeze`]).
    pub fn freezes(&self) -> u64 {
        // Relaxed: a statistic; it publishes no other memory.
        self.freezes.load(Ordering::Relaxed)
    }
}

/// What [`RingWriter::apply`] did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Counted into its hour.
    Counted,
    /// Its hour is sealed: dropped (and counted as such).
    Sealed,
    /// Its hour left the ring within the late window: handed to the late thread, which
    /// counts it (`late`).
    Late,
    /// Its hour had counted its event id already: dropped (and counted as such).
    Duplicate,
}

/// The writer's own copy of one slot, published to the shared [`Slot`] at each publish.
#[derive(Debug)]
struct WriterSlot {
    /// Hour and counts, as they will be published.
    snap: Snapshot,
    /// The hour's users up to when it was frozen ([`freeze`]), if it was: `members`' base.
    base: Option<Arc<ColdSet>>,
    /// Fingerprints seen in `snap.hour` and not in `base`.
    users: UserSet,
    /// Users in `members`' log: `users.len()`, kept apart as the log's next index.
    logged: u64,
    /// Fingerprints of the event ids counted in `snap.hour` (the same set type: a fingerprint
    /// of an id is as good a key as a user's, and as crafted by clients).
    ids: UserSet,
    /// The same users as `users`, listed for readers; shared with `Ring::members`.
    members: Arc<Members>,
    /// Changed since the last publish (and listed in `RingWriter::dirty`).
    dirty: bool,
}

/// The writer's half of the ring. Exactly one exists per [`Ring`]; it is the only writer of
/// the ring's slots and archive.
#[derive(Debug)]
pub struct RingWriter {
    ring: Arc<Ring>,
    /// The writer's copies of the slots, indexed like `ring.slots`.
    slots: Box<[WriterSlot]>,
    /// Indexes of the slots changed since the last publish.
    dirty: Vec<usize>,
    /// The newest hour a slot has taken ([`EMPTY`] before the first): hours two or more
    /// before it are over, and may be frozen ([`freeze`]).
    newest: u32,
    /// A snapshot's capture under way, if any (see [`capture`]).
    capture: Option<Capture>,
    /// Hours that left the ring with users so far (`Leaving::add`'s count).
    left: u64,
    /// NEGATIVE CONTROL (loom only): users new to their hour, listed at the next publish's
    /// end instead of before it (see [`list_after_publish`](Self::list_after_publish)).
    #[cfg(hourtally_loom)]
    late_listing: Option<Vec<(Arc<Members>, u64, u64)>>,
}

impl RingWriter {
    /// The writer of a new, empty `ring`. Panics if the ring has already been written to.
    pub fn new(ring: Arc<Ring>) -> Self {
        assert!(
            ring.slots.iter().all(|s| s.read() == Snapshot::EMPTY),
            "RingWriter::new needs an empty ring"
        );
        let slots = (0..ring.capacity())
            .map(|i| WriterSlot {
                snap: Snapshot::EMPTY,
                base: None,
                users: UserSet::new(),
                logged: 0,
                ids: UserSet::new(),
                members: ring.members[i].with_read(Arc::clone),
                dirty: false,
            })
            .collect();
        Self {
            ring,
            slots,
            dirty: Vec::new(),
            newest: EMPTY,
            capture: None,
            left: 0,
            #[cfg(hourtally_loom)]
            late_listing: None,
        }
    }

    /// The shared ring this writer publishes to.
    pub fn ring(&self) -> &Arc<Ring> {
        &self.ring
    }

    /// The newest hour a slot has taken ([`EMPTY`] before the first).
    pub fn newest(&self) -> u32 {
        self.newest
    }

    /// How many hours left the ring with users so far (0 unless it keeps them).
    pub fn left(&self) -> u64 {
        self.left
    }

    /// Applies one event to the working copy by the apply rule. Readers see it after the
    /// next [`publish`](Self::publish); a recycled hour's archive entry is visible at once.
    #[inline]
    pub fn apply(&mut self, event: Event) -> Applied {
        self.apply_hinted(event, None)
    }

    /// [`apply`](Self::apply), with the user already mixed by the set of the event's slot
    /// when that slot held the event's hour (see [`apply_batch`](Self::apply_batch)).
    #[inline(always)]
    fn apply_hinted(&mut self, event: Event, hint: Option<Mixed>) -> Applied {
        let i = event.hour as usize % self.slots.len();
        debug_assert!(i < self.slots.len());
        // A hint is the user mixed by this slot's set, taken while the slot held the event's
        // hour: it is this set's only if the slot holds that hour still (a slot's hour only
        // moves forward, so no recycle came in between).
        let hint = match standing(self.slots[i].snap.hour, event.hour) {
            Standing::InSlot => hint,
            Standing::Sealed => return self.late_or_sealed(event),
            Standing::NotStarted => {
                self.recycle(i, event.hour);
                None
            }
        };
        let w = &mut self.slots[i];
        if event.id != 0 {
            if !w.ids.insert(event.id) {
                // Relaxed: a statistic; single writer, so load-add-store is exact.
                let repeats = self.ring.duplicates.load(Ordering::Relaxed);
                self.ring.duplicates.store(repeats + 1, Ordering::Relaxed);
                return Applied::Duplicate;
            }
            if let Some(c) = self.capture.as_mut() {
                c.added(i, Which::Ids, event.id);
            }
        }
        let m = match hint {
            Some(m) => m,
            None => w.users.mixed(event.user),
        };
        // A frozen hour's users are its base and its set; the set takes only users new to both.
        let new = match &w.base {
            None => w.users.insert_mixed(m),
            Some(base) => !base.contains(event.user) && w.users.insert_mixed(m),
        };
        if new {
            // Listed before it is counted: a reader lists as many as a publish counts.
            #[cfg(hourtally_loom)]
            if let Some(late) = self.late_listing.as_mut() {
                late.push((Arc::clone(&w.members), w.logged, event.user));
            } else {
                w.members.append(w.logged, event.user);
            }
            #[cfg(not(hourtally_loom))]
            w.members.append(w.logged, event.user);
            w.logged += 1;
            w.snap.counts.unique_users += 1;
            if let Some(c) = self.capture.as_mut() {
                c.added(i, Which::Users, event.user);
            }
        }
        match event.kind {
            Kind::Click => w.snap.counts.clicks += 1,
            Kind::Impression => w.snap.counts.impressions += 1,
        }
        if !w.dirty {
            w.dirty = true;
            self.dirty.push(i);
        }
        Applied::Counted
    }

    /// Publishes every slot changed since the last call.
    pub fn publish(&mut self) {
        for i in self.dirty.drain(..) {
            let w = &mut self.slots[i];
            w.dirty = false;
            self.ring.slots[i].write(&w.snap);
        }
        #[cfg(hourtally_loom)]
        for (members, i, fp) in self.late_listing.iter_mut().flat_map(|l| l.drain(..)) {
            members.append(i, fp);
        }
    }

    /// Applies and publishes one event at once (tests and models; the writer thread batches).
    pub fn apply_and_publish(&mut self, event: Event) -> Applied {
        let applied = self.apply(event);
        self.publish();
        applied
    }

    /// Distinct users of the hour a slot's working copy holds, and the set's heap bytes:
    /// `(hour, users, bytes)` for every non-empty slot.
    pub fn user_sets(&self) -> impl Iterator<Item = (u32, u64, usize)> + '_ {
        self.slots
            .iter()
            .filter(|w| w.snap.hour != EMPTY)
            .map(|w| (w.snap.hour, w.users.len(), w.users.heap_bytes()))
    }
}

#[cfg(all(test, not(hourtally_loom)))]
#[path = "ring_tests.rs"]
mod tests;
