//! The set of user fingerprints seen in one hour.
//!
//! [`STRIPES`] open-addressing tables (linear probing, `0` marks a free cell); the top
//! [`STRIPE_BITS`] bits of a stored value pick its stripe and the bits below them its home cell.
//!
//! Placement is keyed with a secret per set, so that names crafted offline cannot pile into
//! one probe run: the table stores `p = mix(fp)`, see [`placement`](super::placement).
//!
//! ## Stripes and growth
//!
//! Why stripes: a table grows by rehashing everything it holds. One table of ten million users
//! would stall the writer for tens of milliseconds at each growth; 256 stripes grow one at a
//! time, each holding 1/256 of the users, so the longest stall is 256 times shorter. A stripe is
//! also the unit that a snapshot (planned with durability) can copy while the writer goes on.
//!
//! Why growth by 5/4 and not 2: memory per user. A table that doubles is half empty right after
//! each growth (16 bytes a user at load 1/2); growing by 5/4 at a load of 7/8 keeps every
//! stripe between loads 0.7 and 0.875, that is 9.1 to 11.4 bytes per user. Table sizes are not
//! powers of two, so a value's home cell is found by a multiply-shift ("fastrange") rather
//! than a mask. A table grows only when a *new* value would take it over the load.
//!
//! Why a maximum load of 7/8 despite linear probing: it is memory that binds (the goal is
//! about 10 bytes per user-hour, and 12 at most). Over sizes from 100 k to 3.2 M users (200
//! log-spaced points, cells examined counted by the tests' probe counter) 7/8 averages 10.3
//! bytes per user (9.4 to 11.1) with 23 cells examined per new user (growth included) and 2.9
//! per repeat user; 13/16 averages 11.1 bytes (10.1 to 12.0; never 10 or less) with 16 and 2.4,
//! which would make `apply` about 10 % faster for repeat users and 13 % for new ones. At 7/8 the
//! writer still applies about 50 M events/s at 100 k users, far more than the HTTP edge feeds.
//!
//! The set is owned by the writer thread alone; readers only ever see its size, through the
//! slot's `unique_users` counter.

use super::placement::Key;
use super::prefetch::prefetch;

/// Bits of a stored (mixed) value that choose a stripe.
pub const STRIPE_BITS: u32 = 8;
/// Number of stripes.
pub const STRIPES: usize = 1 << STRIPE_BITS;
/// Smallest table a stripe allocates.
const MIN_TABLE: usize = 8;
/// The maximum load of a table, `LOAD_NUM / LOAD_DEN`: a stripe grows rather than go above it.
const LOAD_NUM: usize = 7;
const LOAD_DEN: usize = 8;

/// The stripe of stored value `p`: its top bits.
#[inline]
fn stripe_of(p: u64) -> usize {
    (p >> (64 - STRIPE_BITS)) as usize
}

#[cfg(test)]
thread_local! {
    /// Cells examined by this thread's probes (inserts, lookups and growth), for the tests
    /// that compare probe counts instead of times.
    static PROBES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts one examined cell (tests only; nothing in other builds).
#[inline(always)]
fn count_probe() {
    #[cfg(test)]
    PROBES.with(|n| n.set(n.get() + 1));
}

/// One open-addressing table of stored (mixed) values.
#[derive(Clone, Debug, Default)]
struct Stripe {
    /// Cells: `0` is free, anything else is a stored value. Empty until the first insert,
    /// then never fuller than the maximum load, so it always has a free cell.
    table: Box<[u64]>,
    /// Occupied cells.
    len: usize,
}

impl Stripe {
    /// The home cell of `p` in a table of `cap` cells: the bits below the stripe bits,
    /// scaled to `0..cap`.
    #[inline]
    fn home(p: u64, cap: usize) -> usize {
        (((p << STRIPE_BITS) as u128 * cap as u128) >> 64) as usize
    }

    /// Probes for `p` (non-zero) from its home cell: `Ok` with the cell holding it, or `Err`
    /// with the free cell that ends its run. The table must not be empty.
    #[inline]
    fn find(&self, p: u64) -> Result<usize, usize> {
        let cap = self.table.len();
        let mut i = Self::home(p, cap);
        loop {
            debug_assert!(i < cap);
            count_probe();
            let cell = self.table[i];
            if cell == p {
                return Ok(i);
            }
            if cell == 0 {
                return Err(i);
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
    }

    /// Puts `p` (non-zero, not in `table`) into the first free cell of its run.
    #[inline]
    fn place(table: &mut [u64], p: u64) {
        let cap = table.len();
        let mut i = Self::home(p, cap);
        loop {
            count_probe();
            if table[i] == 0 {
                table[i] = p;
                return;
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
    }

    /// Whether a table of `cap` cells may hold `len` values.
    #[inline]
    fn fits(len: usize, cap: usize) -> bool {
        len * LOAD_DEN <= cap * LOAD_NUM
    }

    /// Inserts `p` (non-zero); true if it was not there yet. Looks first and grows only for
    /// a new value that would take the table over the maximum load.
    #[inline]
    fn insert(&mut self, p: u64) -> bool {
        debug_assert!(p != 0);
        if self.table.is_empty() {
            self.grow();
        }
        let free = match self.find(p) {
            Ok(_) => return false,
            Err(free) => free,
        };
        if Self::fits(self.len + 1, self.table.len()) {
            self.table[free] = p;
        } else {
            self.grow();
            debug_assert!(Self::fits(self.len + 1, self.table.len()));
            Self::place(&mut self.table, p);
        }
        self.len += 1;
        true
    }

    #[inline]
    fn contains(&self, p: u64) -> bool {
        !self.table.is_empty() && self.find(p).is_ok()
    }

    /// Asks the CPU for the home cell of `p` (see [`UserSet::prefetch`]).
    #[inline]
    fn prefetch(&self, p: u64) {
        if let Some(cell) = self.table.get(Self::home(p, self.table.len())) {
            prefetch(cell);
        }
    }

    /// Rehashes into a table 5/4 the size (at least [`MIN_TABLE`] cells, so at least 2 cells
    /// more: room for the value that made it grow). Stored values move as they are: they are
    /// mixed already.
    #[cold]
    fn grow(&mut self) {
        let cap = self.table.len();
        let new_cap = (cap + cap / 4).max(MIN_TABLE);
        let old = std::mem::replace(&mut self.table, vec![0u64; new_cap].into_boxed_slice());
        for &p in old.iter().filter(|&&p| p != 0) {
            Self::place(&mut self.table, p);
        }
    }
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
#[derive(Clone, Debug)]
pub struct UserSet {
    /// Empty until the first insert, then exactly [`STRIPES`] long.
    stripes: Vec<Stripe>,
    /// The fingerprint whose mix is `0` cannot be stored in a table (`0` marks free cells);
    /// this flag holds it.
    has_zero: bool,
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
            has_zero: false,
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
        let p = m.p;
        let added = if p == 0 {
            !std::mem::replace(&mut self.has_zero, true)
        } else {
            if self.stripes.is_empty() {
                self.stripes = vec![Stripe::default(); STRIPES];
            }
            let s = stripe_of(p);
            debug_assert!(s < self.stripes.len());
            self.stripes[s].insert(p)
        };
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
        if p == 0 {
            return self.has_zero;
        }
        match self.stripes.get(stripe_of(p)) {
            Some(stripe) => stripe.contains(p),
            None => false,
        }
    }

    /// The fingerprints in the set, each once, in an order that depends on the set's key
    /// (so it differs between sets and runs). What a snapshot stores: never the layout.
    pub fn fingerprints(&self) -> impl Iterator<Item = u64> + '_ {
        let key = self.key;
        let zero = self.has_zero.then(|| key.unmix(0));
        zero.into_iter().chain(
            self.stripes
                .iter()
                .flat_map(|s| s.table.iter().copied())
                .filter(|&p| p != 0)
                .map(move |p| key.unmix(p)),
        )
    }

    /// The stripe `fp` lives (or would live) in; the fingerprint that mixes to `0` counts as
    /// stripe 0's. A snapshot's capture copies a stripe before the writer changes it.
    #[inline]
    pub fn stripe_of_fingerprint(&self, fp: u64) -> usize {
        stripe_of(self.key.mix(fp))
    }

    /// Appends the fingerprints held in stripe `s` (stripe 0 also holds the flag's) to `out`.
    pub fn stripe_fingerprints(&self, s: usize, out: &mut Vec<u64>) {
        debug_assert!(s < STRIPES);
        if s == 0 && self.has_zero {
            out.push(self.key.unmix(0));
        }
        if let Some(stripe) = self.stripes.get(s) {
            let key = self.key;
            out.extend(
                stripe
                    .table
                    .iter()
                    .filter(|&&p| p != 0)
                    .map(|&p| key.unmix(p)),
            );
        }
    }

    /// Distinct fingerprints in the set.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes held by the set (tables and stripe headers), for the memory benchmark and
    /// the `user_sets` report of the ring writer.
    pub fn heap_bytes(&self) -> usize {
        self.stripes.capacity() * std::mem::size_of::<Stripe>()
            + self
                .stripes
                .iter()
                .map(|s| s.table.len() * std::mem::size_of::<u64>())
                .sum::<usize>()
    }
}

#[cfg(test)]
#[path = "users_tests.rs"]
mod tests;
