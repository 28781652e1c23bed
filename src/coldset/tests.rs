//! Tests of `coldset`: round trips, membership, refusals of damage, and unions against a plain
//! set of all the values.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// The union's count, the same by every decode this processor can run.
fn union(sets: &[&ColdSet]) -> Result<u64, UnionFault> {
    let ways = union::union_count_every_way(sets);
    assert!(
        ways.iter().all(|w| *w == ways[0]),
        "the decodes disagree: {ways:?}"
    );
    ways[0]
}

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

fn spread(n: u64, seed: u64) -> Vec<u64> {
    let set: BTreeSet<u64> = (0..n)
        .map(|i| crate::event::fingerprint(&(i ^ seed << 40).to_le_bytes()))
        .collect();
    set.into_iter().collect()
}

#[test]
fn a_set_reads_back_as_written_and_answers_membership() {
    for n in [0, 1, 2, 3, 63, 64, 65, 1000, 4097] {
        let values = spread(n, 1);
        let bytes = encode(&values);
        let set = ColdSet::parse(&bytes).expect("valid");
        assert_eq!(set.len(), n);
        assert_eq!(set.iter().collect::<Vec<_>>(), values, "n={n}");
        for &x in &values {
            assert!(set.contains(x), "n={n} {x:#x}");
        }
        for x in spread(200, 2) {
            assert_eq!(set.contains(x), values.binary_search(&x).is_ok());
        }
    }
}

#[test]
fn membership_finds_every_value_of_a_large_set() {
    // Hundreds of zero samples (one per `SAMPLE` zeros of the upper vector, about one zero a
    // value for fingerprints): a wrong sample sends the lookups of its stretch astray.
    let values = spread(60_000, 3);
    let set = ColdSet::parse(&encode(&values)).expect("valid");
    assert!(values.iter().all(|&x| set.contains(x)));
    for x in spread(2_000, 4) {
        assert_eq!(set.contains(x), values.binary_search(&x).is_ok(), "{x}");
    }
}

#[test]
fn the_extremes_of_the_value_space_are_values_like_any() {
    let values = vec![0, 1, 2, u64::MAX / 2, u64::MAX - 1, u64::MAX];
    let set = ColdSet::parse(&encode(&values)).expect("valid");
    assert_eq!(set.iter().collect::<Vec<_>>(), values);
    assert!(values.iter().all(|&x| set.contains(x)));
    assert!(!set.contains(3) && !set.contains(u64::MAX - 2));
}

#[test]
fn every_cut_and_every_flipped_bit_is_refused() {
    let bytes = encode(&spread(40, 3));
    for cut in 0..bytes.len() {
        assert!(ColdSet::parse(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    for bit in 0..bytes.len() * 8 {
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(ColdSet::parse(&bad).is_err(), "bit {bit}");
    }
}

/// `bytes` written to a file of a fresh directory, mapped (`ColdSet::map_file`, or
/// `map_file_for_union` if `for_union`).
fn mapped_as(bytes: &[u8], for_union: bool) -> Result<ColdSet, ColdSetError> {
    let dir = crate::durable::TempDir::new("coldset");
    let path = dir.0.join("set.hcs");
    std::fs::write(&path, bytes).expect("write");
    let file = std::fs::File::open(&path).expect("open");
    // The mapping outlives the file's name and its directory: the set holds it.
    // SAFETY: the test's own file, in its own directory; nothing writes it again.
    unsafe {
        if for_union {
            ColdSet::map_file_for_union(&file)
        } else {
            ColdSet::map_file(&file)
        }
    }
    .expect("the file maps")
}

/// Writes the checksum that fits `bytes` as they are now: damage the checksum cannot see.
fn redo_checksum(bytes: &mut [u8]) {
    let body = bytes.len() - TAIL;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..body + 4].copy_from_slice(&crc.to_le_bytes());
}

fn mapped(bytes: &[u8]) -> Result<ColdSet, ColdSetError> {
    mapped_as(bytes, false)
}

#[test]
fn a_file_with_a_value_past_the_last_bucket_is_refused() {
    // One value, 63 low bits: three upper bits, the value's one at 0 (bucket 0), then the
    // two buckets' zeros. Its one moved to bit 2, past both, under a checksum that fits: its
    // high bits would overflow (`2 << 63`), and iteration and membership would disagree.
    let mut bytes = encode(&[5]);
    let upper = HEAD + 8;
    assert_eq!(u64_le(&bytes, upper), 0b001);
    bytes[upper..upper + 8].copy_from_slice(&0b100u64.to_le_bytes());
    redo_checksum(&mut bytes);
    let damaged = Err(ColdSetError::Damaged(
        "a value past the last bucket of the upper vector",
    ));
    assert_eq!(ColdSet::parse(&bytes), damaged);
    assert_eq!(mapped_as(&bytes, true), damaged);
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
fn a_mapped_set_is_the_set_parsed_and_answers_alike() {
    for n in [0, 1, 65, 4097, 100_000] {
        let values = spread(n, 5);
        let bytes = encode(&values);
        let set = mapped(&bytes).expect("valid");
        assert!(format!("{set:?}").contains("mapped"), "{set:?}");
        assert_eq!(set, ColdSet::parse(&bytes).expect("valid"));
        assert_eq!(set.iter().collect::<Vec<_>>(), values);
        assert!(values.iter().step_by(97).all(|&v| set.contains(v)));
        assert_eq!(union(&[&set, &ColdSet::from_sorted(&values)]), Ok(n));
    }
}

#[test]
fn a_mapped_file_is_refused_as_its_bytes_are() {
    let bytes = encode(&spread(40, 6));
    for cut in [0, 1, HEAD, HEAD + TAIL, bytes.len() / 2, bytes.len() - 1] {
        assert_eq!(
            mapped(&bytes[..cut]).err(),
            ColdSet::parse(&bytes[..cut]).err(),
            "cut at {cut}"
        );
        assert!(mapped(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    for bit in (0..bytes.len() * 8).step_by(7) {
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(mapped(&bad).is_err(), "bit {bit}");
    }
}

#[test]
fn a_set_whose_checksum_was_redone_over_damage_is_still_refused() {
    // Damage that a checksum written afterwards would hide: a one of the upper vector
    // gone, so that the set would have one value fewer than it says.
    let mut bytes = encode(&spread(300, 4));
    let upper_at = bytes.len() - TAIL - 8;
    let lowest_one = bytes[upper_at..]
        .iter()
        .position(|&b| b != 0)
        .expect("a one in the last word");
    let b = upper_at + lowest_one;
    bytes[b] &= bytes[b] - 1;
    redo_checksum(&mut bytes);
    assert!(matches!(
        ColdSet::parse(&bytes),
        Err(ColdSetError::Damaged(_))
    ));
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

proptest! {
    // Sets of thousands of values: fewer cases than the default, each covering several
    // slices of a union.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_set_reads_back_and_answers_as_a_sorted_list(
        values in proptest::collection::btree_set(any::<u64>(), 0..300),
        probes in proptest::collection::vec(any::<u64>(), 0..50),
    ) {
        let values: Vec<u64> = values.into_iter().collect();
        let set = ColdSet::parse(&encode(&values)).expect("valid");
        prop_assert_eq!(set.iter().collect::<Vec<_>>(), values.clone());
        for x in probes.into_iter().chain(values.iter().copied()) {
            prop_assert_eq!(set.contains(x), values.binary_search(&x).is_ok());
        }
    }

    #[test]
    fn a_union_counts_what_a_set_of_all_the_values_holds(
        sets in proptest::collection::vec(
            proptest::collection::btree_set(
                prop_oneof![4 => any::<u64>(), 1 => 0u64..64, 1 => Just(u64::MAX)],
                0..6000,
            ),
            0..5,
        ),
        shared in proptest::collection::btree_set(any::<u64>(), 0..2000),
    ) {
        // Values in every set too, so that the sets overlap as the hours of a range do.
        let sets: Vec<BTreeSet<u64>> = sets
            .into_iter()
            .map(|s| s.union(&shared).copied().collect())
            .collect();
        let all: BTreeSet<u64> = sets.iter().flatten().copied().collect();
        let cold: Vec<ColdSet> = sets
            .iter()
            .map(|s| ColdSet::parse(&encode(&s.iter().copied().collect::<Vec<_>>())).expect("valid"))
            .collect();
        prop_assert_eq!(union(&cold.iter().collect::<Vec<_>>()), Ok(all.len() as u64));
    }

    #[test]
    fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = ColdSet::parse(&bytes);
    }
}
