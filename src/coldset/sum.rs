//! A mapped file's checksum, compared as a union reads its words.
//!
//! A set mapped for a union ([`ColdSet::map_file_for_union`]) is checked when it is mapped
//! in everything but its checksum and its values' order, which the union checks as it reads
//! them: the checksum over the words at all would be a second pass over the file, from
//! memory, where the union's pass brings them into the cache anyway (a 24-hour range from
//! the cold tier spent 11–13 ms of its 99–132 in the checksum: BENCHMARKS.md, "The union's
//! table, and what the checksum costs"). So [`Sum`] hashes each set's words a few slices
//! behind the union, while they are still in the cache: the low words and the upper words
//! each in order, as two streams whose checksums are joined at the end
//! (`crc32fast::Hasher::combine`) behind the header's. A union whose sets do not all match
//! their files' checksums gives no count.

use super::{ColdSet, Values};

/// One set's checksum, as far as the union has read it.
pub(super) struct Sum {
    /// The file's checksum, of its header and words.
    expected: u32,
    /// The header's bytes (rebuilt from the set: they were checked against it).
    head: [u8; super::HEAD],
    /// The low words hashed so far, and how many.
    low: crc32fast::Hasher,
    low_done: usize,
    /// The upper words hashed so far, and how many.
    upper: crc32fast::Hasher,
    upper_done: usize,
}

impl Sum {
    /// The checksum still to compare of `set`, if any: a set mapped for a union.
    pub(super) fn of(set: &ColdSet) -> Option<Sum> {
        set.unchecked_sum.map(|expected| Sum {
            expected,
            head: set.head(),
            low: crc32fast::Hasher::new(),
            low_done: 0,
            upper: crc32fast::Hasher::new(),
            upper_done: 0,
        })
    }

    /// Hashes the words that `values` has read past: those before its current upper word,
    /// and before its next value's low bits.
    #[inline]
    pub(super) fn catch_up(&mut self, values: &Values<'_>) {
        let low_to = (values.i * u64::from(values.l) / 64) as usize;
        hash_words(&mut self.low, values.low, &mut self.low_done, low_to);
        hash_words(
            &mut self.upper,
            values.upper,
            &mut self.upper_done,
            values.word,
        );
    }

    /// Whether the set's words, all of them, give the file's checksum.
    pub(super) fn fits(mut self, values: &Values<'_>) -> bool {
        hash_words(
            &mut self.low,
            values.low,
            &mut self.low_done,
            values.low.len(),
        );
        hash_words(
            &mut self.upper,
            values.upper,
            &mut self.upper_done,
            values.upper.len(),
        );
        let mut all = crc32fast::Hasher::new();
        all.update(&self.head);
        all.combine(&self.low);
        all.combine(&self.upper);
        all.finalize() == self.expected
    }
}

/// Hashes `words[*done..to]` (as far as there are words) into `hasher`, and moves `done`.
#[inline]
fn hash_words(hasher: &mut crc32fast::Hasher, words: &[u64], done: &mut usize, to: usize) {
    let to = to.min(words.len());
    if to > *done {
        hasher.update(le_bytes(&words[*done..to]));
        *done = to;
    }
}

/// The bytes of `words` in memory: as the file stores them on a little-endian target, the
/// only one where a set is mapped (`Words::mapped`; elsewhere a file is copied and checked
/// whole, and no [`Sum`] is made).
fn le_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: `u64` has no padding and any byte is a valid `u8`; the bytes are the words'
    // own, 8 a word, borrowed for as long as the words are.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), std::mem::size_of_val(words)) }
}

impl ColdSet {
    /// Whether its words give its file's checksum, hashed whole now; true for a set with no
    /// checksum left to compare (all but a set mapped for a union). For a fault found
    /// before the union: damage in a file whose checksum does not fit is named by it.
    pub fn sum_fits(&self) -> bool {
        Sum::of(self).is_none_or(|sum| sum.fits(&self.iter()))
    }
}
