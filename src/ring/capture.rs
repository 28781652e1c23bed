//! Capturing the ring for a snapshot without stalling the writer.
//!
//! A snapshot must show the ring as it was at one journal position, but copying ten million
//! fingerprints at once would stall the writer for tens of milliseconds, and copying a stripe
//! before the writer changes it (copy-on-write) does not help: a batch of random users
//! touches every stripe at once. What helps is that a user set only ever grows:
//!
//! - [`RingWriter::begin_capture`](super::RingWriter::begin_capture) records, at a batch
//!   boundary, every slot's hour and counts, the archive and the sealed-drop count (small).
//! - From then on the writer notes every fingerprint it *adds* to a slot under capture. The
//!   set at the capture's position is the set now minus those.
//! - [`RingWriter::capture_step`](super::RingWriter::capture_step) copies stripes, leaving out
//!   the noted ones, a bounded number of fingerprints per call, between batches.
//! - A slot recycled during the capture hands its old set to the capture (a move, no copy).
//! - When every stripe is copied, the capture is a [`RingImage`], handed to another thread to
//!   be written.
//!
//! The writer's stall per call is bounded by the budget ([`CAPTURE_BUDGET`] fingerprints);
//! the price is one hash-set insert per new user while a capture is under way.
//!
//! A slot's event ids (the fingerprints of the ids its hour has counted) are a set that only
//! grows too, and are captured the same way: a capture walks two sets per slot, users and ids.
//!
//! [`RingWriter::restore`](super::RingWriter::restore), the way back, is here too: it loads an
//! image into a new ring.

use ahash::AHashSet;

use super::members::Members;
use super::slot::{Counts, Snapshot, EMPTY};
use super::users::{UserSet, STRIPES};
use super::RingWriter;
use crate::coldset::ColdSet;
use crate::sync::{Arc, Ordering};

/// Fingerprints a capture step copies at most (then it finishes the stripe it is in).
pub const CAPTURE_BUDGET: usize = 16 * 1024;

/// The ring at one journal position: what a snapshot stores (fingerprints, never the
/// keyed layout of the sets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingImage {
    /// Events of the journal this image includes (its position).
    pub covered: u64,
    /// Hours that had left the ring with users when it was captured (`RingWriter::left`):
    /// the journal holds their events, not the image, so it stands in for the journal only
    /// once the cold tier has stored that many (`Leaving::stored_count`). Not in the file.
    pub left_before: u64,
    /// Whether the late thread owes this image the late counts at its position (a
    /// [`Late::Mark`](super::Late::Mark) was queued at the capture): the image is complete
    /// only once they are merged in (`late::LateImage::merge_into`). Not in the file.
    pub late_marked: bool,
    /// The late users of each hour that has any, by hour: users counted by late events, none
    /// of them in the hour's cold set. Their counts are in `archive`.
    pub late: Vec<(u32, Vec<u64>)>,
    /// Events the apply rule had dropped as sealed.
    pub sealed_drops: u64,
    /// Events the apply rule had dropped as repeats of an event id of their hour.
    pub duplicates: u64,
    /// Sealed hours and their final counts, sorted by hour.
    pub archive: Vec<(u32, Counts)>,
    /// One per slot, in slot order.
    pub slots: Vec<SlotImage>,
}

impl RingImage {
    /// The newest hour the ring had taken (0 if none).
    pub fn newest_hour(&self) -> u32 {
        self.slots
            .iter()
            .map(|s| s.hour)
            .filter(|&h| h != EMPTY)
            .max()
            .unwrap_or(0)
    }

    /// The hours that had left the ring with users, with the users each had when it left
    /// (its archived count less its late users): what the cold tier holds of them.
    pub fn left_with_users(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.archive.iter().filter_map(|&(hour, counts)| {
            let late = self
                .late
                .iter()
                .find(|(h, _)| *h == hour)
                .map_or(0, |(_, users)| users.len() as u64);
            let base = counts.unique_users.saturating_sub(late);
            (base > 0).then_some((hour, base))
        })
    }
}

/// One slot of a [`RingImage`].
#[derive(Clone, Debug)]
pub struct SlotImage {
    /// The slot's hour, or [`EMPTY`].
    pub hour: u32,
    pub counts: Counts,
    /// The hour's users counted before it was frozen (`ring::freeze`), if it was: shared
    /// with the ring, so that the writer copies none of them.
    pub base: Option<Arc<ColdSet>>,
    /// The fingerprints of the hour's other users, in no particular order: with `base`'s, as
    /// many as `counts.unique_users` ([`all_users`](Self::all_users)).
    pub users: Vec<u64>,
    /// The fingerprints of the event ids the hour has counted, distinct, in no particular
    /// order.
    pub ids: Vec<u64>,
}

/// Equal when every field is, the base by its values (loom's `Arc` compares nothing).
impl PartialEq for SlotImage {
    fn eq(&self, other: &Self) -> bool {
        self.hour == other.hour
            && self.counts == other.counts
            && self.base.as_deref() == other.base.as_deref()
            && self.users == other.users
            && self.ids == other.ids
    }
}

impl Eq for SlotImage {}

impl SlotImage {
    /// How many users the slot lists: `base`'s and `users`.
    pub fn user_count(&self) -> u64 {
        self.base.as_ref().map_or(0, |b| b.len()) + self.users.len() as u64
    }

    /// Every user the slot lists: `base`'s, then `users`.
    pub fn all_users(&self) -> impl Iterator<Item = u64> + '_ {
        self.base
            .iter()
            .flat_map(|b| b.iter())
            .chain(self.users.iter().copied())
    }
}

/// Which set of a slot: its users or its event ids. Set `j` of a capture is slot `j / 2`'s
/// users (`j` even) or ids (`j` odd).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Which {
    Users = 0,
    Ids = 1,
}

/// One set of a capture under way.
#[derive(Debug, Default)]
struct SetCapture {
    /// Fingerprints added to the live set since the capture began.
    added: AHashSet<u64>,
    /// The set as it was when its slot was recycled during the capture (it keeps nothing
    /// added after that, and `added` still says what to leave out).
    retired: Option<UserSet>,
    /// Stripes copied so far (all of them for a set that was empty).
    next_stripe: usize,
}

/// A capture under way (owned by the ring writer).
#[derive(Debug)]
pub(super) struct Capture {
    image: RingImage,
    /// Two per slot ([`Which`]).
    sets: Vec<SetCapture>,
    /// The set `step` is copying.
    cursor: usize,
}

impl Capture {
    /// A capture of `image` (users and ids still empty); `nonempty[j]`: set `j` ([`Which`])
    /// has fingerprints to copy.
    pub(super) fn new(image: RingImage, nonempty: &[bool]) -> Self {
        debug_assert_eq!(nonempty.len(), 2 * image.slots.len());
        let sets = nonempty
            .iter()
            .map(|&n| SetCapture {
                next_stripe: if n { 0 } else { STRIPES },
                ..SetCapture::default()
            })
            .collect();
        Self {
            image,
            sets,
            cursor: 0,
        }
    }

    /// The writer added `fp` to set `which` of slot `slot` (it was not there).
    #[inline]
    pub(super) fn added(&mut self, slot: usize, which: Which, fp: u64) {
        debug_assert!(2 * slot + 1 < self.sets.len());
        let s = &mut self.sets[2 * slot + which as usize];
        // After a recycle the live set is another hour's: the retired one is what is copied.
        if s.next_stripe < STRIPES && s.retired.is_none() {
            s.added.insert(fp);
        }
    }

    /// Slot `slot` is recycled: its sets, `users` and `ids`, are kept for the copy.
    pub(super) fn retire(&mut self, slot: usize, users: UserSet, ids: UserSet) {
        for (which, old) in [(Which::Users, users), (Which::Ids, ids)] {
            let s = &mut self.sets[2 * slot + which as usize];
            if s.next_stripe < STRIPES && s.retired.is_none() {
                s.retired = Some(old);
            }
        }
    }

    /// Copies stripes (about `budget` fingerprints), taking a slot's live sets from
    /// `live(slot, which)`.
    pub(super) fn step<'a>(&mut self, budget: usize, live: impl Fn(usize, Which) -> &'a UserSet) {
        let mut copied = 0;
        let mut scratch = Vec::new();
        while copied < budget && self.cursor < self.sets.len() {
            let j = self.cursor;
            let s = &mut self.sets[j];
            if s.next_stripe == STRIPES {
                s.added = AHashSet::new();
                s.retired = None;
                self.cursor += 1;
                continue;
            }
            let which = if j.is_multiple_of(2) {
                Which::Users
            } else {
                Which::Ids
            };
            let set = s.retired.as_ref().unwrap_or_else(|| live(j / 2, which));
            scratch.clear();
            set.stripe_fingerprints(s.next_stripe, &mut scratch);
            s.next_stripe += 1;
            copied += scratch.len();
            let slot = &mut self.image.slots[j / 2];
            let out = match which {
                Which::Users => &mut slot.users,
                Which::Ids => &mut slot.ids,
            };
            out.extend(scratch.iter().filter(|fp| !s.added.contains(*fp)));
        }
    }

    pub(super) fn is_complete(&self) -> bool {
        self.cursor == self.sets.len()
    }

    pub(super) fn into_image(mut self) -> RingImage {
        debug_assert!(self.is_complete());
        debug_assert!(self
            .image
            .slots
            .iter()
            .all(|s| s.user_count() == s.counts.unique_users));
        self.image.archive.sort_unstable_by_key(|(h, _)| *h);
        self.image
    }
}

impl RingWriter {
    /// Begins capturing the ring as it is now, after `covered` journaled events (call between
    /// batches). See the module doc.
    pub fn begin_capture(&mut self, covered: u64) {
        if let Some(late) = &self.ring.late {
            late.add(super::Late::Mark(covered));
        }
        let image = RingImage {
            covered,
            left_before: self.left,
            late_marked: self.ring.late.is_some(),
            late: Vec::new(),
            sealed_drops: self.ring.sealed_drops(),
            duplicates: self.ring.duplicates(),
            archive: self.ring.archive.entries(),
            slots: self
                .slots
                .iter()
                .map(|w| SlotImage {
                    hour: w.snap.hour,
                    counts: w.snap.counts,
                    base: w.base.clone(),
                    users: Vec::with_capacity(w.users.len() as usize),
                    ids: Vec::with_capacity(w.ids.len() as usize),
                })
                .collect(),
        };
        let nonempty: Vec<bool> = self
            .slots
            .iter()
            .flat_map(|w| [!w.users.is_empty(), !w.ids.is_empty()])
            .collect();
        self.capture = Some(Capture::new(image, &nonempty));
    }

    /// Whether a capture is under way.
    pub fn is_capturing(&self) -> bool {
        self.capture.is_some()
    }

    /// Copies about `budget` more fingerprints of the capture under way (whole stripes); the
    /// image once it is complete.
    pub fn capture_step(&mut self, budget: usize) -> Option<RingImage> {
        let capture = self.capture.as_mut()?;
        let slots = &self.slots;
        capture.step(budget, |i, which| match which {
            Which::Users => &slots[i].users,
            Which::Ids => &slots[i].ids,
        });
        if capture.is_complete() {
            self.capture.take().map(Capture::into_image)
        } else {
            None
        }
    }

    /// Loads `image` into this writer's ring, which must be new, and publishes it. Refuses
    /// an image of another capacity or whose user lists disagree with its counts.
    pub fn restore(&mut self, image: &RingImage) -> Result<(), String> {
        if image.slots.len() != self.slots.len() {
            return Err(format!(
                "the snapshot has {} slots, the ring {}",
                image.slots.len(),
                self.slots.len()
            ));
        }
        for (i, (w, s)) in self.slots.iter_mut().zip(&image.slots).enumerate() {
            let mut users = UserSet::new();
            for fp in s.all_users() {
                users.insert(fp);
            }
            if users.len() != s.counts.unique_users || (s.hour == EMPTY && !users.is_empty()) {
                return Err(format!(
                    "slot {i}: {} distinct users listed for unique_users={}",
                    users.len(),
                    s.counts.unique_users
                ));
            }
            let mut ids = UserSet::new();
            for &id in &s.ids {
                // 0 is "no id": never remembered, so never listed.
                if id == 0 || !ids.insert(id) {
                    return Err(format!("slot {i}: event id {id:#x} listed twice or zero"));
                }
            }
            if s.hour == EMPTY && !ids.is_empty() {
                return Err(format!("slot {i}: an empty slot lists event ids"));
            }
            let members = Members::new(s.hour);
            for (n, fp) in s.all_users().enumerate() {
                members.append(n as u64, fp);
            }
            w.members = Arc::new(members);
            w.base = None;
            w.logged = users.len();
            if s.hour != EMPTY && (self.newest == EMPTY || s.hour > self.newest) {
                self.newest = s.hour;
            }
            let shared = Arc::clone(&w.members);
            self.ring.members[i].with_write(|m| *m = shared);
            w.snap = Snapshot {
                hour: s.hour,
                counts: s.counts,
            };
            w.users = users;
            w.ids = ids;
            if !w.dirty {
                w.dirty = true;
                self.dirty.push(i);
            }
        }
        for &(hour, counts) in &image.archive {
            self.ring.archive.seal(hour, counts);
        }
        // Relaxed: a statistic; nothing reads it before the writer starts.
        self.ring
            .sealed_drops
            .store(image.sealed_drops, Ordering::Relaxed);
        // Relaxed: the same.
        self.ring
            .duplicates
            .store(image.duplicates, Ordering::Relaxed);
        self.publish();
        Ok(())
    }
}
