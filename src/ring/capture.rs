//! Capturing the ring for a snapshot without stalling the writer.
//!
//! A snapshot must show the ring as it was at one journal position, but copying ten million
//! fingerprints at once would stall the writer for tens of milliseconds. So a capture is
//! incremental, copy-before-write at the granularity of one user-set stripe:
//!
//! - [`RingWriter::begin_capture`] records, at a batch boundary, every slot's hour and counts,
//!   the archive and the sealed-drop count: small, copied at once.
//! - The user sets are copied one stripe at a time: [`RingWriter::capture_step`] copies a
//!   few between batches; and before the writer changes a stripe not yet copied (an insert,
//!   or a recycle that replaces the whole set) it copies that stripe first. So every copied
//!   stripe holds exactly what it held at the capture's position.
//! - When every stripe is copied, the capture is a [`RingImage`], handed to another thread to
//!   be written.
//!
//! The longest stall is one stripe (1/256 of a slot's set), or one whole slot when an hour
//! turns over during a capture.

use super::slot::Counts;
use super::users::{UserSet, STRIPES};

/// The ring at one journal position: what a snapshot stores (fingerprints, never the
/// keyed layout of the sets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingImage {
    /// Events of the journal this image includes (its position).
    pub covered: u64,
    /// Events the apply rule had dropped as sealed.
    pub sealed_drops: u64,
    /// Sealed hours and their final counts, sorted by hour.
    pub archive: Vec<(u32, Counts)>,
    /// One per slot, in slot order.
    pub slots: Vec<SlotImage>,
}

/// One slot of a [`RingImage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotImage {
    /// The slot's hour, or [`EMPTY`](super::EMPTY).
    pub hour: u32,
    pub counts: Counts,
    /// The fingerprints of the hour's users (as many as `counts.unique_users`), in no
    /// particular order.
    pub users: Vec<u64>,
}

/// A capture under way (owned by the ring writer).
#[derive(Debug)]
pub(super) struct Capture {
    image: RingImage,
    /// Per slot and stripe: copied yet?
    copied: Vec<[bool; STRIPES]>,
    /// Stripes still to copy.
    left: usize,
    /// Where `step` goes on: `slot * STRIPES + stripe`.
    cursor: usize,
}

impl Capture {
    pub(super) fn new(image: RingImage, nonempty: &[bool]) -> Self {
        let copied: Vec<[bool; STRIPES]> = nonempty.iter().map(|&n| [!n; STRIPES]).collect();
        let left = nonempty.iter().filter(|&&n| n).count() * STRIPES;
        Self {
            image,
            copied,
            left,
            cursor: 0,
        }
    }

    /// Copies stripe `stripe` of slot `slot` from `users`, unless already copied.
    #[inline]
    pub(super) fn before_write(&mut self, slot: usize, stripe: usize, users: &UserSet) {
        debug_assert!(slot < self.copied.len() && stripe < STRIPES);
        if !self.copied[slot][stripe] {
            self.copy(slot, stripe, users);
        }
    }

    /// Copies every stripe of slot `slot` not yet copied (before its set is replaced).
    pub(super) fn before_recycle(&mut self, slot: usize, users: &UserSet) {
        for stripe in 0..STRIPES {
            self.before_write(slot, stripe, users);
        }
    }

    #[cold]
    fn copy(&mut self, slot: usize, stripe: usize, users: &UserSet) {
        users.stripe_fingerprints(stripe, &mut self.image.slots[slot].users);
        self.copied[slot][stripe] = true;
        self.left -= 1;
    }

    /// Copies up to `max` more stripes, taking each slot's set from `users_of(slot)`.
    pub(super) fn step<'a>(&mut self, max: usize, users_of: impl Fn(usize) -> &'a UserSet) {
        let mut done = 0;
        while done < max && self.left > 0 {
            let total = self.copied.len() * STRIPES;
            debug_assert!(self.cursor < total);
            let (slot, stripe) = (self.cursor / STRIPES, self.cursor % STRIPES);
            self.cursor += 1;
            if !self.copied[slot][stripe] {
                self.copy(slot, stripe, users_of(slot));
                done += 1;
            }
        }
    }

    pub(super) fn is_complete(&self) -> bool {
        self.left == 0
    }

    pub(super) fn into_image(mut self) -> RingImage {
        debug_assert!(self.is_complete());
        self.image.archive.sort_unstable_by_key(|(h, _)| *h);
        self.image
    }
}
