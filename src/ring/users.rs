//! The set of user fingerprints seen in one hour.
//!
//! [`STRIPES`] open-addressing tables (linear probing, `0` marks a free cell); the top
//! [`STRIPE_BITS`] bits of a stored value pick its stripe and the bits below them its home cell.
//!
//! ## Placement is keyed (hash flooding)
//!
//! A fingerprint is xxh3 with a fixed, public seed (`event::fingerprint`), so anyone can compute
//! it offline. Were its own bits the placement, a client could keep the names whose
//! fingerprints start in the first sixteenth of their table (1 name in 16) and pile them into
//! one probe run per stripe: 400 k such names made `RingWriter::apply` 24 times slower, and
//! honest users arriving afterwards 34 times slower (`apply_flood` in `benches/ring.rs`).
//!
//! So each set draws a secret key when it is created ([`UserSet::new`]) and stores, for a
//! fingerprint `fp`, the value `p = mix(fp)`: a keyed bijection of 64-bit words, two rounds of
//! murmur3's finalizer `fmix64`, each after an XOR with one half of the key. `fmix64` is
//! invertible (xor-shifts by 33 and multiplications by odd constants), so `p` is present
//! exactly when `fp` was inserted, growth moves stored values without mixing them again, and
//! [`UserSet::fingerprints`] gives the fingerprints back (`unmix`). Nothing outside the set
//! ever sees `p`; snapshots and the cluster carry fingerprints.
//!
//! The key comes from `std`'s `RandomState` (SipHash keys the OS seeds once per thread, moved
//! on at every `RandomState::new`), hashed into two words: two SipHash calls per new set, that
//! is per hour and slot. Each set has its own key rather than one per process: no set ever
//! compares layouts with another, and whatever a client might learn about one hour's layout
//! (only through the writer's timing) is worthless for the next hour. The mix is not a
//! cryptographic PRF; what it defeats is the offline crafting above. Its price is four
//! dependent multiplications per event: `apply` of repeat users at 100 k users went from 65 to
//! 50 M events/s (one round would give 58; two were kept for margin).
//!
//! `0` marks a free cell, so the one fingerprint whose mix is `0` (`unmix(0)`, different for
//! every key) is held in a flag instead.
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

use std::hash::{BuildHasher, RandomState};

/// Bits of a stored (mixed) value that choose a stripe.
pub const STRIPE_BITS: u32 = 8;
/// Number of stripes.
pub const STRIPES: usize = 1 << STRIPE_BITS;
/// Smallest table a stripe allocates.
const MIN_TABLE: usize = 8;
/// The maximum load of a table, `LOAD_NUM / LOAD_DEN`: a stripe grows rather than go above it.
const LOAD_NUM: usize = 7;
const LOAD_DEN: usize = 8;

/// murmur3's 64-bit finalizer constants and their inverses modulo 2^64.
const C1: u64 = 0xff51_afd7_ed55_8ccd;
const C2: u64 = 0xc4ce_b9fe_1a85_ec53;
const C1_INV: u64 = inverse(C1);
const C2_INV: u64 = inverse(C2);
const _: () = assert!(C1.wrapping_mul(C1_INV) == 1 && C2.wrapping_mul(C2_INV) == 1);

/// The inverse of an odd `c` modulo 2^64, by Newton's iteration (each step doubles the
/// number of correct low bits; `c * c = 1 mod 8` gives the first three).
const fn inverse(c: u64) -> u64 {
    let mut x = c;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(c.wrapping_mul(x)));
        i += 1;
    }
    x
}

/// murmur3's `fmix64`, a bijection of 64-bit words.
#[inline]
fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(C1);
    x ^= x >> 33;
    x = x.wrapping_mul(C2);
    x ^ (x >> 33)
}

/// The inverse of [`fmix64`] (`x ^ (x >> 33)` is its own inverse, as 33 > 64 / 2).
#[inline]
fn unfmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(C2_INV);
    x ^= x >> 33;
    x = x.wrapping_mul(C1_INV);
    x ^ (x >> 33)
}

/// The secret of one set's placement (see the module doc). Its `Debug` does not show it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    k0: u64,
    k1: u64,
}

impl Key {
    /// A fresh key from the OS-seeded `RandomState`.
    fn random() -> Self {
        let state = RandomState::new();
        Self {
            k0: state.hash_one(0x243f_6a88_85a3_08d3_u64),
            k1: state.hash_one(0x1319_8a2e_0370_7344_u64),
        }
    }

    /// The value stored for fingerprint `fp`.
    #[inline]
    fn mix(self, fp: u64) -> u64 {
        fmix64(fmix64(fp ^ self.k0) ^ self.k1)
    }

    /// The fingerprint of stored value `p`: `unmix(mix(fp)) == fp`.
    #[inline]
    fn unmix(self, p: u64) -> u64 {
        unfmix64(unfmix64(p) ^ self.k1) ^ self.k0
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

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
        let p = self.key.mix(fp);
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

    /// A fixed key, for tests that craft values in mixed space.
    const KEY: Key = Key {
        k0: 0x0123_4567_89ab_cdef,
        k1: 0xfedc_ba98_7654_3210,
    };

    /// Cells examined by this thread's probes while `f` runs.
    fn probes(f: impl FnOnce()) -> u64 {
        let before = PROBES.with(|n| n.get());
        f();
        PROBES.with(|n| n.get()) - before
    }

    /// The fingerprints of the first `n` names `a0`, `a1`, ... that an attacker would pick
    /// against the old, public placement (stripe = the fingerprint's top 8 bits, home = the
    /// bits below scaled to the table): bits 55..52 all zero, the first sixteenth of every
    /// stripe. The same names as `apply_flood` in `benches/ring.rs`.
    fn crafted_fps(n: usize) -> Vec<u64> {
        (0u64..)
            .map(|i| crate::event::fingerprint(format!("a{i}").as_bytes()))
            .filter(|&fp| (fp << 8) >> 60 == 0)
            .take(n)
            .collect()
    }

    fn random_fps(n: usize) -> Vec<u64> {
        (0..n)
            .map(|i| crate::event::fingerprint(format!("u{i}").as_bytes()))
            .collect()
    }

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
    fn mix_is_a_keyed_bijection() {
        for k in [KEY, Key::random(), Key { k0: 0, k1: 0 }] {
            for x in [0, 1, 42, u64::MAX, 1 << 63, 0x6cca_9007_aa62_a1a1] {
                assert_eq!(k.unmix(k.mix(x)), x);
                assert_eq!(k.mix(k.unmix(x)), x);
            }
        }
        assert_eq!(unfmix64(fmix64(0x1234_5678)), 0x1234_5678);
        // Another key, another placement.
        assert_ne!(KEY.mix(42), Key { k0: 1, ..KEY }.mix(42));
        assert_ne!(KEY.mix(42), Key { k1: 1, ..KEY }.mix(42));
        assert_ne!(Key::random(), Key::random());
    }

    #[test]
    fn the_fingerprint_that_mixes_to_zero_lives_in_the_flag() {
        let mut set = UserSet::with_key(KEY);
        let z = KEY.unmix(0);
        assert!(!set.contains(z));
        assert!(set.insert(z));
        assert!(set.has_zero && set.stripes.is_empty());
        assert!(!set.insert(z));
        assert!(set.contains(z));
        // The fingerprint 0 is an ordinary value.
        assert!(!set.contains(0));
        assert!(set.insert(0));
        assert_eq!(set.len(), 2);
        let fps: HashSet<u64> = set.fingerprints().collect();
        assert_eq!(fps, HashSet::from([z, 0]));
    }

    #[test]
    fn fingerprints_gives_back_what_was_inserted() {
        let mut set = UserSet::new();
        let fps = random_fps(10_000);
        for &fp in &fps {
            set.insert(fp);
        }
        let back: Vec<u64> = set.fingerprints().collect();
        assert_eq!(back.len(), fps.len());
        assert_eq!(
            back.into_iter().collect::<HashSet<_>>(),
            fps.into_iter().collect::<HashSet<_>>()
        );
        assert_eq!(UserSet::new().fingerprints().count(), 0);
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
        // Values whose home is the last cell of stripe 0 must wrap to cell 0 and stay
        // findable. Crafted in mixed space: with the key known, `unmix` gives fingerprints
        // whose stored values are the largest of stripe 0.
        let mut set = UserSet::with_key(KEY);
        let top = (1u64 << (64 - STRIPE_BITS)) - 1; // stripe 0, largest home
        let fps: Vec<u64> = (0..5).map(|k| KEY.unmix(top - k)).collect();
        for &fp in &fps {
            assert!(set.insert(fp));
        }
        let table = &set.stripes[0].table;
        let cap = table.len();
        assert!(table[cap - 1] != 0 && table[0] != 0, "the run wrapped");
        for &fp in &fps {
            assert!(set.contains(fp));
            assert!(!set.insert(fp));
        }
        assert_eq!(set.len(), 5);
    }

    #[test]
    fn a_duplicate_never_grows_a_full_table() {
        // Fill stripe 0 to its maximum load exactly, then insert every value again.
        let mut set = UserSet::with_key(KEY);
        let mut inserted = Vec::new();
        for p in 1u64.. {
            let stripe = set.stripes.first();
            if stripe.is_some_and(|s| !Stripe::fits(s.len + 1, s.table.len())) {
                break;
            }
            let fp = KEY.unmix(p); // stripe 0: the top bits of `p` are zero
            assert!(set.insert(fp));
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
        assert!(set.insert(KEY.unmix(inserted.len() as u64 + 1)));
        assert!(set.stripes[0].table.len() > cap);
    }

    /// The regression test of the hash-flooding defect: names crafted against the old public
    /// placement (1 in 16 names; they all started in the first sixteenth of their table) cost
    /// no more probes than ordinary names, to insert and to look up. Under the old placement
    /// they made one run per stripe and cost about 30 times as many.
    #[test]
    fn names_crafted_against_the_public_placement_cost_no_more_probes() {
        let n = 50_000;
        let crafted = crafted_fps(n);
        let random = random_fps(n);
        let cost = |fps: &[u64]| {
            let mut set = UserSet::new();
            let insert = probes(|| {
                for &fp in fps {
                    assert!(set.insert(fp));
                }
            });
            let lookup = probes(|| {
                for &fp in fps {
                    assert!(!set.insert(fp));
                }
            });
            (insert, lookup)
        };
        let (crafted_insert, crafted_lookup) = cost(&crafted);
        let (random_insert, random_lookup) = cost(&random);
        let ratio = |a: u64, b: u64| a as f64 / b as f64;
        assert!(
            ratio(crafted_insert, random_insert) < 2.0,
            "inserts: {crafted_insert} probes for crafted names, {random_insert} for random ones"
        );
        assert!(
            ratio(crafted_lookup, random_lookup) < 2.0,
            "lookups: {crafted_lookup} probes for crafted names, {random_lookup} for random ones"
        );
    }

    proptest! {
        #[test]
        fn behaves_like_a_hash_set(values in proptest::collection::vec(any::<u64>(), 0..2000),
                                   small in proptest::collection::vec(0u64..64, 0..200)) {
            let mut set = UserSet::with_key(KEY);
            let mut model = HashSet::new();
            // `small` values are crafted in mixed space: they all land in stripe 0, collide
            // heavily, and include the one that mixes to 0.
            for v in values.into_iter().chain(small.into_iter().map(|p| KEY.unmix(p))) {
                prop_assert_eq!(set.insert(v), model.insert(v));
            }
            prop_assert_eq!(set.len(), model.len() as u64);
            for v in &model {
                prop_assert!(set.contains(*v));
            }
            let back: Vec<u64> = set.fingerprints().collect();
            prop_assert_eq!(back.len(), model.len());
            prop_assert_eq!(back.into_iter().collect::<HashSet<_>>(), model);
        }
    }
}
