//! Tests of `coldset`'s union: counts against a plain set of all the values, by every decode
//! this processor can run, and the faults it finds in a file mapped for it (values out of
//! order, a checksum that does not fit).

use super::tests::{mapped, mapped_as, redo_checksum, spread, union};
use super::*;
use std::collections::BTreeSet;

/// A union's faults: set `set` out of order, or its checksum not fitting.
fn out_of_order(set: usize) -> Result<u64, UnionFault> {
    Err(UnionFault {
        set,
        error: OUT_OF_ORDER,
    })
}

fn checksum(set: usize) -> Result<u64, UnionFault> {
    Err(UnionFault {
        set,
        error: ColdSetError::Checksum,
    })
}

#[test]
fn a_file_whose_values_go_back_is_refused_whole_or_by_the_union_that_reads_it() {
    // [10, 11], rewritten as [10, 5] with a checksum that fits: only the order is wrong.
    // Two values have 63 low bits each: value 1's are bit 63 of low word 0 and bits 0..62
    // of low word 1 (11 >> 1 = 5 there; 5 >> 1 = 2).
    let mut bytes = encode(&[10, 11]);
    let word1 = HEAD + 8;
    assert_eq!(u64_le(&bytes, word1), 5);
    bytes[word1..word1 + 8].copy_from_slice(&2u64.to_le_bytes());
    redo_checksum(&mut bytes);
    let damaged = Err(ColdSetError::Damaged("values out of order"));
    assert_eq!(ColdSet::parse(&bytes), damaged);
    assert_eq!(mapped(&bytes), damaged);
    // Mapped for a union, the order is left to the union, which finds it.
    let set = mapped_as(&bytes, true).expect("every other check passes");
    let good = ColdSet::from_sorted(&[1, 2, 3]);
    assert_eq!(union(&[&good, &set]), out_of_order(1));
    assert_eq!(union(&[&set]), out_of_order(0));
    assert_eq!(union(&[&good, &good]), Ok(3));
}

#[test]
fn a_large_file_whose_values_go_back_in_one_bucket_fails_the_union_by_every_decode() {
    // Value `j`'s low bits set to 0, where value `j - 1` has the same high bits (and low bits
    // above 0): `j` goes below `j - 1`, and only the order is wrong. Far from the set's ends,
    // where the decode takes eight values at a time.
    let values = spread(5_000, 9);
    let l = u32::from(encode(&values)[6]);
    let j = (2_000..3_000)
        .find(|&j| values[j] >> l == values[j - 1] >> l && values[j - 1] & ((1 << l) - 1) > 0)
        .expect("two values in one bucket");
    let mut bytes = encode(&values);
    for bit in j as u64 * u64::from(l)..(j as u64 + 1) * u64::from(l) {
        bytes[HEAD + (bit / 8) as usize] &= !(1 << (bit % 8));
    }
    // Under the checksum written for the values as they were, the union names the checksum,
    // though it finds the order first.
    let set = mapped_as(&bytes, true).expect("the mapping's checks pass");
    assert_eq!(union(&[&set]), checksum(0));
    redo_checksum(&mut bytes);
    assert_eq!(
        mapped(&bytes),
        Err(ColdSetError::Damaged("values out of order"))
    );
    let set = mapped_as(&bytes, true).expect("every other check passes");
    let good = ColdSet::from_sorted(&spread(3_000, 10));
    assert_eq!(union(&[&good, &set]), out_of_order(1));
    assert_eq!(union(&[&set, &good, &good]), out_of_order(0));
}

/// Damage a union finds only by the file's checksum, which it compares as it reads: a flipped
/// bit of some value's low bits (any low bits make a valid set). Mapped for a union such a
/// file passes every check of the mapping; the union refuses it by every decode, wherever the
/// bit lies (the first word, the middle, the last word, past several turns of the sums), and
/// counts the same bytes once their checksum is made to fit.
#[test]
fn damage_only_the_checksum_shows_fails_the_union_that_reads_the_file() {
    let values = spread(200_000, 11);
    let bytes = encode(&values);
    let low_bytes = 8 * words(values.len() as u64 * u64::from(low_bits(values.len() as u64)));
    let good = ColdSet::from_sorted(&spread(50_000, 12));
    let distinct = spread(200_000, 11)
        .into_iter()
        .chain(spread(50_000, 12))
        .collect::<BTreeSet<u64>>()
        .len() as u64;
    let intact = mapped_as(&bytes, true).expect("valid");
    assert_eq!(union(&[&good, &intact]), Ok(distinct));
    for at in [0, low_bytes / 2, low_bytes - 1] {
        let mut bad = bytes.clone();
        bad[HEAD + at] ^= 0x10;
        assert_eq!(mapped(&bad), Err(ColdSetError::Checksum), "byte {at}");
        let set = mapped_as(&bad, true).expect("the mapping's checks pass");
        assert_eq!(union(&[&good, &set]), checksum(1), "byte {at}");
        // The same bytes with a checksum that fits: another valid set, counted.
        redo_checksum(&mut bad);
        let other = mapped_as(&bad, true).expect("valid");
        assert!(union(&[&good, &other]).is_ok(), "byte {at}");
    }
}

/// A file mapped for a union whose damage the mapping's own checks find is named by its
/// checksum, as `map_file` names it; an empty set's checksum is compared too (a union of
/// no values has no slices).
#[test]
fn a_file_mapped_for_a_union_names_damage_by_its_checksum_first() {
    let bytes = encode(&spread(1_000, 13));
    let mut bad = bytes.clone();
    // A bit of the upper vector's last word flipped: not one one per value any more.
    let last = bytes.len() - TAIL - 8;
    bad[last] ^= 0x01;
    assert_eq!(mapped(&bad), Err(ColdSetError::Checksum));
    assert_eq!(mapped_as(&bad, true), Err(ColdSetError::Checksum));
    // A header that no set of its size has.
    let mut bad = bytes.clone();
    bad[7] = 1;
    assert_eq!(mapped_as(&bad, true), Err(ColdSetError::Checksum));
    let mut empty = encode(&[]);
    let sum = empty.len() - TAIL;
    empty[sum] ^= 0x01;
    let set = mapped_as(&empty, true).expect("the mapping's checks pass");
    assert_eq!(union(&[&set]), checksum(0));
}

#[test]
fn the_fast_decodes_read_only_bytes_inside_the_low_words() {
    // Reading past the low words would read the upper words after them (valid memory), so
    // no union would notice: the bound is checked here, at every width and length.
    for l in 1..=63u32 {
        for len in 0..40usize {
            let low = vec![0u64; len];
            for bytes in [8u64, 64] {
                let quick = take::quick_values(&low, l, bytes);
                if l > 56 {
                    assert_eq!(quick, 0, "l {l}: a value's bits may spread over nine bytes");
                }
                if let Some(last) = quick.checked_sub(1) {
                    let from = last * u64::from(l) / 8;
                    assert!(
                        from + bytes <= 8 * len as u64,
                        "l {l}, {len} words: value {last}'s {bytes} bytes from byte {from}"
                    );
                }
            }
        }
    }
    // And all but the last few values of a set take the fast decodes.
    let low = vec![0u64; 1_000];
    assert!(take::quick_values(&low, 44, 64) >= 64_000 / 44 - 12);
}

#[test]
fn files_mapped_for_a_union_count_alike_by_every_decode() {
    // What the server counts: valid files mapped for a union, whose order the union checks,
    // from sets of 200 values (56 low bits, the widest the fast decodes take) to 20 000.
    let shared = spread(100, 11);
    for (n, sets) in [(200, 6), (3_000, 5), (20_000, 3)] {
        let files: Vec<ColdSet> = (0..sets)
            .map(|h| {
                let mut v: Vec<u64> = spread(n - 100, 20 + h)
                    .into_iter()
                    .chain(shared.clone())
                    .collect();
                v.sort_unstable();
                v.dedup();
                let set = mapped_as(&encode(&v), true).expect("valid");
                assert!(!set.in_order(), "the union checks its order");
                set
            })
            .collect();
        let want: BTreeSet<u64> = files.iter().flat_map(|s| s.iter()).collect();
        assert_eq!(
            union(&files.iter().collect::<Vec<_>>()),
            Ok(want.len() as u64),
            "sets of {n}"
        );
    }
}

#[test]
fn the_union_counts_each_value_once() {
    let (a, b) = (spread(500, 5), spread(700, 6));
    let both: BTreeSet<u64> = a
        .iter()
        .chain(&b)
        .copied()
        .chain(a[..100].iter().copied())
        .collect();
    let mut c: Vec<u64> = a[..250].iter().chain(&b[..10]).copied().collect();
    c.sort_unstable();
    c.dedup();
    let sets: Vec<ColdSet> = [&a, &b, &c]
        .iter()
        .map(|v| ColdSet::parse(&encode(v)).expect("valid"))
        .collect();
    assert_eq!(
        union(&sets.iter().collect::<Vec<_>>()),
        Ok(both.len() as u64)
    );
    assert_eq!(union(&[]), Ok(0));
}

#[test]
fn a_union_whose_values_all_fall_in_one_slice_still_counts_each_once() {
    // Small values share their top bits: one slice holds them all, and its table grows
    // past the size it was made for, twice.
    let a: Vec<u64> = (0..9_000).collect();
    let b: Vec<u64> = (4_000..20_000).step_by(2).collect();
    let sets: Vec<ColdSet> = [&a, &b]
        .iter()
        .map(|v| ColdSet::parse(&encode(v)).expect("valid"))
        .collect();
    let want = a.iter().chain(&b).collect::<BTreeSet<_>>().len() as u64;
    assert_eq!(union(&sets.iter().collect::<Vec<_>>()), Ok(want));
}

#[test]
fn a_union_of_many_sets_takes_more_values_a_slice_and_counts_each_once() {
    // 200 sets: slices of at least `PER_SET` values of each (more than `UNION_CHUNK` in all),
    // half of each set's values shared by every set, as the hours of a week share users.
    let shared = spread(300, 7);
    let sets: Vec<ColdSet> = (0..200u64)
        .map(|h| {
            let mut v: Vec<u64> = spread(40, 100 + h)
                .into_iter()
                .chain(shared.clone())
                .collect();
            v.sort_unstable();
            v.dedup();
            ColdSet::parse(&encode(&v)).expect("valid")
        })
        .collect();
    let want: BTreeSet<u64> = sets.iter().flat_map(|s| s.iter()).collect();
    assert_eq!(
        union(&sets.iter().collect::<Vec<_>>()),
        Ok(want.len() as u64)
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Damage anywhere in a file, under its own checksum or one written again over it: read
    /// whole, mapped whole and mapped for a union, the file is accepted by all three or
    /// refused by all three with the same error, where the union gives the error of a set it
    /// was left to check: never a count. (The `cold_set` fuzz target checks the same of any
    /// bytes.)
    #[test]
    fn every_way_of_reading_a_damaged_file_refuses_it_alike(
        n in 0u64..600,
        seed in proptest::prelude::any::<u64>(),
        hits in proptest::collection::vec(
            (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
            1..4,
        ),
        redo in proptest::prelude::any::<bool>(),
    ) {
        let mut bytes = encode(&spread(n, seed));
        for (at, byte) in &hits {
            let i = at.index(bytes.len());
            bytes[i] = *byte;
        }
        if redo {
            redo_checksum(&mut bytes);
        }
        let whole = ColdSet::parse(&bytes);
        proptest::prop_assert_eq!(mapped(&bytes), whole.clone());
        match (whole, mapped_as(&bytes, true)) {
            (Ok(set), Ok(for_union)) => {
                // What it accepts is what `encode` writes for those values.
                proptest::prop_assert_eq!(encode(&set.iter().collect::<Vec<_>>()), bytes);
                proptest::prop_assert_eq!(union(&[&for_union]), Ok(set.len()));
                proptest::prop_assert_eq!(union(&[&set, &for_union]), Ok(set.len()));
            }
            (Ok(_), Err(e)) => proptest::prop_assert!(false, "accepted whole, refused for a union: {e:?}"),
            (Err(error), Err(e)) => proptest::prop_assert_eq!(e, error),
            (Err(error), Ok(for_union)) => {
                proptest::prop_assert_eq!(union(&[&for_union]), Err(UnionFault { set: 0, error }));
            }
        }
    }
}
