//! The set of user fingerprints seen in one hour.
//!
//! [`STRIPES`] open-addressing tables (linear probing, `0` marks a free cell); the top
//! [`STRIPE_BITS`] bits of a stored value pick its stripe and the bits below them its home cell.
//! A cell keeps only those lower bits, 7 bytes, and big tables are mappings of their own
//! (`ring/stripe.rs`, `ring/zeroed.rs`).
//!
//! Placement is keyed with a secret per set, so that names crafted offline cannot pile into
//! one probe run: the table stores `p = mix(fp)`, see [`placement`](super::placement).
//!
//! ## Stripes and growth
//!
//! Why stripes: a table grows by rehashing everything it holds. One table of ten million users
//! would stall the writer for tens of milliseconds at each growth; 256 stripes grow one at a
//! time, each holding 1/256 of the users, so the longest stall is 256 times shorter. A stripe is
//! also the unit that a snapshot copies (`ring::capture`) while the writer goes on.
//!
//! Why growth by 5/4 and not 2: memory per user. A table that doubles is half empty right after
//! each growth (16 bytes a user at load 1/2); growing by 5/4 at a load of 7/8 keeps every
//! stripe between loads 0.7 and 0.875, that is 8.0 to 10.0 bytes per user with 7-byte cells
//! (9.1 to 11.4 with the 8-byte cells the set had before). Table sizes are not
//! powers of two, so a value's home cell is found by a multiply-shift ("fastrange") rather
//! than a mask. A table grows only when a *new* value would take it over the load.
//!
//! Why a maximum load of 7/8 despite linear probing: it is memory that binds (the goal is
//! about 10 bytes per user-hour, and 12 at most). Over sizes from 100 k to 3.2 M users (200
//! log-spaced points, cells examined counted by the tests' probe counter; measured with
//! 8-byte cells, so bytes are 8/7 of today's) 7/8 averages 10.3
//! bytes per user (9.4 to 11.1) with 23 cells examined per new user (growth included) and 2.9
//! per repeat user; 13/16 averages 11.1 bytes (10.1 to 12.0; never 10 or less) with 16 and 2.4,
//! which would make `apply` about 10 % faster for repeat users and 13 % for new ones. At 7/8 the
//! writer still applies about 50 M events/s at 100 k users, far more than the HTTP edge feeds.
//!
//! The set is owned by the writer thread alone; readers only ever see its size, through the
//! slot's `unique_users` counter.

use super::placement::Key;
use super::stripe::Stripe;

pub use super::stripe::STRIPE_BITS;
/// Number of stripes.
pub const STRIPES: usize = 1 << STRIPE_BITS;

/// The stripe of stored value `p`: its top bits.
#[inline]
fn stripe_of(p: u64) -> usize {
    (p >> (64 - STRIPE_BITS)) as usize
}

/// A fingerprint mixed with one set's key: what that set stores for it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Mixed {
    p: u64,
    /// The key that mixed it, checked by `insert_mixed` in debug builds.
    #[cfg(debug_assertions)]
    key: Key,
}

/// A set of 64-bit fingerprints, stored mixed with the set's own secret key and split into
/// [`STRIPES`] tables (see the module doc).
#[derive(Debug)]
pub struct UserSet {
    /// Empty until the first insert, then exactly [`STRIPES`] long.
    stripes: Vec<Stripe>,
    /// Distinct fingerprints held.
    len: u64,
    /// The secret of this set's placement.
    key: Key,
}

impl Default for UserSet {
    fn default() -> Self {
        Self::new()
    }
}

impl UserSet {
    /// An empty set with a fresh secret key. Allocates nothing until the first insert.
    pub fn new() -> Self {
        Self::with_key(Key::random())
    }

    fn with_key(key: Key) -> Self {
        Self {
            stripes: Vec::new(),
            len: 0,
            key,
        }
    }

    /// Inserts `fp`; true if it was not in the set yet.
    #[inline]
    pub fn insert(&mut self, fp: u64) -> bool {
        self.insert_mixed(self.mixed(fp))
    }

    /// `fp` as this set stores it. Valid for this set only: another set has another key.
    #[inline]
    pub(super) fn mixed(&self, fp: u64) -> Mixed {
        Mixed {
            p: self.key.mix(fp),
            #[cfg(debug_assertions)]
            key: self.key,
        }
    }

    /// [`insert`](Self::insert) of a fingerprint already mixed by [`mixed`](Self::mixed) or
    /// [`prefetch`](Self::prefetch) of this same set.
    #[inline]
    pub(super) fn insert_mixed(&mut self, m: Mixed) -> bool {
        #[cfg(debug_assertions)]
        debug_assert!(m.key == self.key, "a value mixed by another set");
        if self.stripes.is_empty() {
            self.stripes = (0..STRIPES).map(|_| Stripe::default()).collect();
        }
        let s = stripe_of(m.p);
        debug_assert!(s < self.stripes.len());
        let added = self.stripes[s].insert(m.p);
        self.len += added as u64;
        added
    }

    /// Asks the CPU for the cache line where `fp`'s probe will start, so that inserting it a
    /// little later finds that line in the cache; returns `fp` mixed, for
    /// [`insert_mixed`](Self::insert_mixed), so that it is mixed only once. A hint only: the
    /// set does not change.
    #[inline]
    pub(super) fn prefetch(&self, fp: u64) -> Mixed {
        let m = self.mixed(fp);
        if let Some(stripe) = self.stripes.get(stripe_of(m.p)) {
            stripe.prefetch(m.p);
        }
        m
    }

    pub fn contains(&self, fp: u64) -> bool {
        let p = self.key.mix(fp);
        self.stripes
            .get(stripe_of(p))
            .is_some_and(|stripe| stripe.contains(p))
    }

    /// The fingerprints in the set, each once, in an order that depends on the set's key
    /// (so it differs between sets and runs). What a snapshot stores: never the layout.
    pub fn fingerprints(&self) -> impl Iterator<Item = u64> + '_ {
        let key = self.key;
        self.stripes
            .iter()
            .enumerate()
            .flat_map(|(s, stripe)| stripe.values(s))
            .map(move |p| key.unmix(p))
    }

    /// The stripe `fp` lives (or would live) in. A snapshot's capture copies a stripe before
    /// the writer changes it.
    #[inline]
    pub fn stripe_of_fingerprint(&self, fp: u64) -> usize {
        stripe_of(self.key.mix(fp))
    }

    /// Appends the fingerprints held in stripe `s` to `out`.
    pub fn stripe_fingerprints(&self, s: usize, out: &mut Vec<u64>) {
        debug_assert!(s < STRIPES);
        if let Some(stripe) = self.stripes.get(s) {
            let key = self.key;
            out.extend(stripe.values(s).map(|p| key.unmix(p)));
        }
    }

    /// Distinct fingerprints in the set.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of memory held by the set (tables, whole pages for a mapped one, and stripe
    /// headers), for the memory benchmark and the `user_sets` report of the ring writer.
    pub fn heap_bytes(&self) -> usize {
        self.stripes.capacity() * std::mem::size_of::<Stripe>()
            + self.stripes.iter().map(Stripe::table_bytes).sum::<usize>()
    }
}

#[cfg(test)]
#[path = "users_tests.rs"]
mod tests;
