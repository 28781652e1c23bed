//! Tests of `ring::users`.

use super::*;
use crate::ring::stripe::{probes_counted, Stripe};
use proptest::prelude::*;
use std::collections::HashSet;

/// A fixed key, for tests that craft values in mixed space.
const KEY: Key = Key {
    k0: 0x0123_4567_89ab_cdef,
    k1: 0xfedc_ba98_7654_3210,
};

/// Cells examined by this thread's probes while `f` runs.
fn probes(f: impl FnOnce()) -> u64 {
    let before = probes_counted(0);
    f();
    probes_counted(0) - before
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
fn the_value_of_a_stripe_with_zero_low_bits_lives_in_its_flag() {
    // A cell keeps the 56 bits below the stripe bits, and all-zero cells are free: the one
    // value per stripe with zero low bits cannot take a cell.
    let mut set = UserSet::with_key(KEY);
    let zeros: Vec<u64> = [0u64, 1, 255].iter().map(|&s| KEY.unmix(s << 56)).collect();
    for &z in &zeros {
        assert!(!set.contains(z));
        assert!(set.insert(z));
        assert!(!set.insert(z));
        assert!(set.contains(z));
    }
    for s in [0, 1, 255] {
        assert_eq!((set.stripes[s].len(), set.stripes[s].cap()), (1, 0));
    }
    // The fingerprint 0 is an ordinary value.
    assert!(!set.contains(0));
    assert!(set.insert(0));
    assert_eq!(set.len(), 4);
    let fps: HashSet<u64> = set.fingerprints().collect();
    assert_eq!(fps, HashSet::from([zeros[0], zeros[1], zeros[2], 0]));
    let mut out = Vec::new();
    set.stripe_fingerprints(255, &mut out);
    assert_eq!(out, [zeros[2]]);
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
    let stripe = &set.stripes[0];
    let cap = stripe.cap();
    assert!(stripe.taken(cap - 1) && stripe.taken(0), "the run wrapped");
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
        if stripe.is_some_and(|s| !Stripe::fits(s.in_table() + 1, s.cap())) {
            break;
        }
        let fp = KEY.unmix(p); // stripe 0: the top bits of `p` are zero
        assert!(set.insert(fp));
        inserted.push(fp);
    }
    let cap = set.stripes[0].cap();
    for &fp in &inserted {
        assert!(!set.insert(fp));
    }
    assert_eq!(set.stripes[0].cap(), cap, "a duplicate grew the table");
    // A new value does grow it.
    assert!(set.insert(KEY.unmix(inserted.len() as u64 + 1)));
    assert!(set.stripes[0].cap() > cap);
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
