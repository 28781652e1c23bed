//! The cold set reader on arbitrary bytes, as read back from a damaged file in `cold/` (or
//! one fetched from the cluster's bucket): read whole (`ColdSet::parse`), mapped whole
//! (`map_file`), and mapped for a union (`map_file_for_union`), which leaves the values'
//! order and the checksum to `union_count`. No panic, and:
//!
//! - the three agree: a whole read and a whole mapping accept the same sets and refuse with
//!   the same error; a mapping for a union refuses with that error too, or is accepted and
//!   then the union refuses it with that error: a damaged set never gives a count;
//! - an accepted set is canonical (`encode` of its values gives back exactly the bytes), its
//!   values strictly increase, each is a member and the values between are not, and every
//!   union of it (with itself, read either way) counts its values.
//!
//! Input: `mode | bytes`. Mode bit 0 set: the harness writes the right CRC-32 into the
//! trailer first, so that the fuzzer reaches the structure and the order behind the checksum.

#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

use hourtally::coldset::{encode, union_count, ColdSet, ColdSetError, UnionFault};

/// The file the harness maps: one per fuzzing process, rewritten for each input once every
/// set mapped from it before is dropped (`map_file`'s promise).
fn path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hourtally-fuzz-cold-set-{}", std::process::id()))
}

/// `bytes` as a file, opened for reading.
fn file_of(bytes: &[u8]) -> std::fs::File {
    let mut f = std::fs::File::create(path()).expect("create the harness's file");
    f.write_all(bytes).expect("write the harness's file");
    std::fs::File::open(path()).expect("open the harness's file")
}

fuzz_target!(|data: &[u8]| {
    let Some(bytes) = hourtally_fuzz::with_trailer_crc(data) else {
        return;
    };
    let whole = ColdSet::parse(&bytes);
    let file = file_of(&bytes);
    // SAFETY: nothing writes the harness's file until the next input, and every set mapped
    // from it is dropped at the end of this one.
    let mapped = unsafe { ColdSet::map_file(&file) }.expect("map the harness's file");
    // SAFETY: as above.
    let for_union = unsafe { ColdSet::map_file_for_union(&file) }.expect("map it again");
    assert_eq!(mapped, whole, "a mapped set and a read one differ");
    match whole {
        Ok(set) => {
            let for_union = for_union.expect("a set read whole, refused mapped for a union");
            accepted(&set, &for_union, &bytes);
        }
        Err(error) => match for_union {
            Err(e) => assert_eq!(e, error, "mapped for a union, refused otherwise"),
            Ok(set) => {
                // Only the checks the union makes may be left.
                assert!(
                    error == ColdSetError::Checksum
                        || error == ColdSetError::Damaged("values out of order"),
                    "{error:?} left to the union"
                );
                let fault = Err(UnionFault { set: 0, error });
                assert_eq!(union_count(&[&set]), fault, "a damaged set counted");
                assert_eq!(union_count(&[&set, &set]), fault, "a damaged set counted twice");
            }
        },
    }
});

/// The properties of a set accepted whole (`set`), and of the same bytes mapped for a union.
fn accepted(set: &ColdSet, for_union: &ColdSet, bytes: &[u8]) {
    let values: Vec<u64> = set.iter().collect();
    assert_eq!(values.len() as u64, set.len());
    assert!(values.windows(2).all(|w| w[0] < w[1]), "values not increasing");
    assert_eq!(encode(&values), bytes, "an accepted set is not canonical");
    for (i, &x) in values.iter().enumerate().take(4096) {
        assert!(set.contains(x), "{x} is a value but not a member");
        // The value after `x`, unless it is the next value (or past the last).
        let after = x.checked_add(1);
        if let Some(y) = after.filter(|&y| values.get(i + 1).is_none_or(|&next| y < next)) {
            assert!(!set.contains(y), "{y} is a member but not a value");
        }
    }
    if values.first().is_some_and(|&x| x > 0) || values.is_empty() {
        assert!(!set.contains(0), "0 is a member but not a value");
    }
    let n = Ok(set.len());
    assert_eq!(union_count(&[set]), n);
    assert_eq!(union_count(&[for_union]), n);
    assert_eq!(union_count(&[for_union, set, for_union]), n);
}
