//! Tests of `coldset`: round trips, membership, refusals of damage, and unions against a plain
//! set of all the values.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// The union's count, the same by every decode this processor can run.
pub(super) fn union(sets: &[&ColdSet]) -> Result<u64, UnionFault> {
    let ways = union::union_count_every_way(sets);
    assert!(
        ways.iter().all(|w| *w == ways[0]),
        "the decodes disagree: {ways:?}"
    );
    ways[0]
}

pub(super) fn spread(n: u64, seed: u64) -> Vec<u64> {
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
pub(super) fn mapped_as(bytes: &[u8], for_union: bool) -> Result<ColdSet, ColdSetError> {
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
pub(super) fn redo_checksum(bytes: &mut [u8]) {
    let body = bytes.len() - TAIL;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..body + 4].copy_from_slice(&crc.to_le_bytes());
}

pub(super) fn mapped(bytes: &[u8]) -> Result<ColdSet, ColdSetError> {
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
fn a_file_with_bits_past_its_last_low_bits_is_refused_so_every_set_has_one_encoding() {
    // Four values of 62 low bits: 248 bits of four low words, eight spare. One of them set,
    // under a checksum that fits, reads the same values (no decode reads it) but is not the
    // file `encode` writes for them: a writer's defect, or damage the checksum was redone
    // over. Found by the `cold_set` fuzz target.
    let values = [0, 1, u64::MAX - 1, u64::MAX];
    let mut bytes = encode(&values);
    let last_low = HEAD + 3 * 8;
    assert_eq!(bytes[last_low + 7], 0);
    bytes[last_low + 7] = 0x80;
    redo_checksum(&mut bytes);
    let damaged = Err(ColdSetError::Damaged("bits past the last value's low bits"));
    assert_eq!(ColdSet::parse(&bytes), damaged);
    assert_eq!(mapped(&bytes), damaged);
    assert_eq!(mapped_as(&bytes, true), damaged);
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
