//! The set of user fingerprints seen in one hour.
//!
//! Fingerprints are uniform 64-bit xxh3 outputs, so the set needs no hashing of its own: the
//! top [`STRIPE_BITS`] bits pick a stripe and the bits below them place the value inside the
//! stripe's open-addressing table (linear probing, `0` marks a free cell).
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
//! The set is owned by the writer thread alone; readers only ever see its size, through the
//! slot's `unique_users` counter.

/// Bits of the fingerprint that choose a stripe.
pub const STRIPE_BITS: u32 = 8;
/// Number of stripes.
pub const STRIPES: usize = 1 << STRIPE_BITS;
/// Smallest table a stripe allocates.
const MIN_TABLE: usize = 8;

/// One open-addressing table of fingerprints.
#[derive(Clone, Debug, Default)]
struct Stripe {
    /// Cells: `0` is free, anything else is a fingerprint. Empty until the first insert.
    table: Box<[u64]>,
    /// Occupied cells.
    len: usize,
}

impl Stripe {
    /// The home cell of `fp` in a table of `cap` cells: the bits below the stripe bits,
    /// scaled to `0..cap`.
    #[inline]
    fn home(fp: u64, cap: usize) -> usize {
        (((fp << STRIPE_BITS) as u128 * cap as u128) >> 64) as usize
    }

    /// Whether a table of `cap` cells may hold `len` values (load at most 7/8).
    #[inline]
    fn fits(len: usize, cap: usize) -> bool {
        len * 8 <= cap * 7
    }

    /// Inserts `fp` (non-zero); true if it was not there yet. Looks first and grows only for
    /// a new value that would take the table over the maximum load.
    #[inline]
    fn insert(&mut self, fp: u64) -> bool {
        debug_assert!(fp != 0);
        if self.table.is_empty() {
            self.grow();
        }
        let cap = self.table.len();
        let mut i = Self::home(fp, cap);
        loop {
            debug_assert!(i < cap);
            let cell = self.table[i];
            if cell == fp {
                return false;
            }
            if cell == 0 {
                break;
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
        if Self::fits(self.len + 1, cap) {
            self.table[i] = fp;
        } else {
            self.grow();
            Self::place(&mut self.table, fp);
        }
        self.len += 1;
        true
    }

    #[inline]
    fn contains(&self, fp: u64) -> bool {
        let cap = self.table.len();
        if cap == 0 {
            return false;
        }
        let mut i = Self::home(fp, cap);
        loop {
            let cell = self.table[i];
            if cell == fp {
                return true;
            }
            if cell == 0 {
                return false;
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
    }

    /// Puts `fp` (non-zero, not in `table`) into the first free cell of its run.
    #[inline]
    fn place(table: &mut [u64], fp: u64) {
        let cap = table.len();
        let mut i = Self::home(fp, cap);
        while table[i] != 0 {
            i += 1;
            if i == cap {
                i = 0;
            }
        }
        table[i] = fp;
    }

    /// Rehashes into a table 5/4 the size (at least [`MIN_TABLE`] cells).
    #[cold]
    fn grow(&mut self) {
        let cap = self.table.len();
        let new_cap = (cap + cap / 4).max(MIN_TABLE);
        let old = std::mem::replace(&mut self.table, vec![0u64; new_cap].into_boxed_slice());
        for &fp in old.iter().filter(|&&fp| fp != 0) {
            Self::place(&mut self.table, fp);
        }
    }
}

/// A set of 64-bit fingerprints, split into [`STRIPES`] tables by the top bits.
#[derive(Clone, Debug, Default)]
pub struct UserSet {
    /// Empty until the first insert, then exactly [`STRIPES`] long.
    stripes: Vec<Stripe>,
    /// The fingerprint `0` cannot be stored in a table (it marks free cells); this flag holds it.
    has_zero: bool,
    /// Distinct fingerprints held.
    len: u64,
}

impl UserSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts `fp`; true if it was not in the set yet.
    #[inline]
    pub fn insert(&mut self, fp: u64) -> bool {
        let added = if fp == 0 {
            !std::mem::replace(&mut self.has_zero, true)
        } else {
            if self.stripes.is_empty() {
                self.stripes = vec![Stripe::default(); STRIPES];
            }
            let s = (fp >> (64 - STRIPE_BITS)) as usize;
            debug_assert!(s < self.stripes.len());
            self.stripes[s].insert(fp)
        };
        self.len += added as u64;
        added
    }

    pub fn contains(&self, fp: u64) -> bool {
        if fp == 0 {
            return self.has_zero;
        }
        match self.stripes.get((fp >> (64 - STRIPE_BITS)) as usize) {
            Some(stripe) => stripe.contains(fp),
            None => false,
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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn insert_reports_new_values_once() {
        let mut set = UserSet::new();
        assert!(set.is_empty());
        assert!(set.insert(42));
        assert!(!set.insert(42));
        assert!(set.insert(0));
        assert!(!set.insert(0));
        assert!(set.insert(u64::MAX));
        assert_eq!(set.len(), 3);
        assert!(set.contains(42) && set.contains(0) && set.contains(u64::MAX));
        assert!(!set.contains(43));
    }

    #[test]
    fn survives_many_growths_and_stays_compact() {
        let mut set = UserSet::new();
        let n = 200_000u64;
        for i in 0..n {
            assert!(set.insert(crate::event::fingerprint(&i.to_le_bytes())));
        }
        for i in 0..n {
            assert!(!set.insert(crate::event::fingerprint(&i.to_le_bytes())));
        }
        assert_eq!(set.len(), n);
        let per_user = set.heap_bytes() as f64 / n as f64;
        assert!(per_user <= 12.0, "{per_user} bytes per user");
    }

    #[test]
    fn colliding_home_cells_wrap_around_the_table() {
        // Values whose home is the last cell of stripe 0 must wrap to cell 0 and stay findable.
        let mut set = UserSet::new();
        let top = (1u64 << (64 - STRIPE_BITS)) - 1; // stripe 0, largest home
        for k in 0..5 {
            assert!(set.insert(top - k));
        }
        for k in 0..5 {
            assert!(set.contains(top - k));
            assert!(!set.insert(top - k));
        }
        assert_eq!(set.len(), 5);
    }

    #[test]
    fn a_duplicate_never_grows_a_full_table() {
        // Fill stripe 0 to its maximum load exactly, then insert every value again.
        let mut set = UserSet::new();
        let mut inserted = Vec::new();
        for fp in 1u64.. {
            let stripe = set.stripes.first();
            if stripe.is_some_and(|s| !Stripe::fits(s.len + 1, s.table.len())) {
                break;
            }
            assert!(set.insert(fp)); // stripe 0: the top bits of `fp` are zero
            inserted.push(fp);
        }
        let cap = set.stripes[0].table.len();
        for &fp in &inserted {
            assert!(!set.insert(fp));
        }
        assert_eq!(
            set.stripes[0].table.len(),
            cap,
            "a duplicate grew the table"
        );
        // A new value does grow it.
        assert!(set.insert(inserted.len() as u64 + 1));
        assert!(set.stripes[0].table.len() > cap);
    }

    proptest! {
        #[test]
        fn behaves_like_a_hash_set(values in proptest::collection::vec(any::<u64>(), 0..2000),
                                   small in proptest::collection::vec(0u64..64, 0..200)) {
            let mut set = UserSet::new();
            let mut model = HashSet::new();
            // `small` values all land in stripe 0 and collide heavily.
            for v in values.into_iter().chain(small) {
                prop_assert_eq!(set.insert(v), model.insert(v));
            }
            prop_assert_eq!(set.len(), model.len() as u64);
            for v in &model {
                prop_assert!(set.contains(*v));
            }
        }
    }
}
