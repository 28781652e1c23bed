//! Reading a set back: from bytes (a copy of its words) or from a file (its words mapped),
//! with every check of the module doc before any answer comes from it, but for the two that
//! a set mapped for a union leaves to the union (`sum`, `take`).

// `words` is both the module of a set's words and the count of words of so many bits.
use super::words::Words;
use super::{
    low_bits, u64_le, words, Arc, ColdSet, ColdSetError, COLD_SET_VERSION, END, HEAD, MAGIC,
    OUT_OF_ORDER, TAIL,
};

/// What a set's bytes say of it, checked (`Head::check`) before any of its words are read.
struct Head {
    /// The checksum the file gives (compared by `check` if it was asked to).
    sum: u32,
    n: u64,
    l: u32,
    upper_bits: u64,
    low_words: usize,
    upper_words: usize,
}

impl Head {
    /// The header, end mark and lengths of `bytes` (module doc), and its checksum if `sum`.
    /// Without `sum`, a header found damaged is [`ColdSetError::Checksum`] if the checksum
    /// does not fit, as it would have been with it.
    fn check(bytes: &[u8], sum: bool) -> Result<Head, ColdSetError> {
        if bytes.len() < HEAD + TAIL || &bytes[..4] != MAGIC {
            return Err(ColdSetError::NotASet);
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != COLD_SET_VERSION {
            return Err(ColdSetError::Version(version));
        }
        let (body, tail) = bytes.split_at(bytes.len() - TAIL);
        if &tail[4..] != END {
            return Err(ColdSetError::Damaged("no end mark"));
        }
        let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        if sum && !sum_fits(bytes) {
            return Err(ColdSetError::Checksum);
        }
        Head::fields(body, stored).map_err(|e| {
            if sum || sum_fits(bytes) {
                e
            } else {
                ColdSetError::Checksum
            }
        })
    }

    /// The header's fields and the lengths of `body`, whose checksum is `stored`.
    fn fields(body: &[u8], stored: u32) -> Result<Head, ColdSetError> {
        let l = u32::from(body[6]);
        let n = u64_le(body, 8);
        let upper_bits = u64_le(body, 16);
        // Every value takes at least one bit of the body: a larger count is damage, and
        // the sizes below cannot overflow.
        if n > 8 * body.len() as u64 || l > 63 {
            return Err(ColdSetError::Damaged("a count larger than the file"));
        }
        if body[7] != 0 || l != low_bits(n) || upper_bits != n + (u64::MAX >> l) + 1 {
            return Err(ColdSetError::Damaged(
                "a header that no set of its size has",
            ));
        }
        let (low_words, upper_words) = (words(n * u64::from(l)), words(upper_bits));
        if (body.len() - HEAD) as u64 != 8 * (low_words as u64 + upper_words as u64) {
            return Err(ColdSetError::Damaged(
                "its length disagrees with its header",
            ));
        }
        Ok(Head {
            sum: stored,
            n,
            l,
            upper_bits,
            low_words,
            upper_words,
        })
    }

    /// The set of these words, checked (`ColdSet::check`; the values' order only if `order`).
    fn set(self, low: Words, upper: Words, order: bool) -> Result<ColdSet, ColdSetError> {
        ColdSet {
            n: self.n,
            l: self.l,
            low,
            upper,
            upper_bits: self.upper_bits,
            zeros: Vec::new(),
            in_order: false,
            unchecked_sum: None,
        }
        .check(order)
    }
}

/// Whether the checksum at the end of `bytes` (long enough for a header and a tail) fits
/// the bytes before it.
fn sum_fits(bytes: &[u8]) -> bool {
    let (body, tail) = bytes.split_at(bytes.len() - TAIL);
    tail[..4] == crc32fast::hash(body).to_le_bytes()
}

impl ColdSet {
    /// Reads and checks `bytes` (module doc: every check before any answer); the set owns a
    /// copy of its words.
    pub fn parse(bytes: &[u8]) -> Result<Self, ColdSetError> {
        let head = Head::check(bytes, true)?;
        let word = |k: usize| u64_le(bytes, HEAD + 8 * k);
        let low = Words::Owned((0..head.low_words).map(word).collect());
        let upper = (head.low_words..head.low_words + head.upper_words).map(word);
        head.set(low, Words::Owned(upper.collect()), true)
    }

    /// Reads and checks the cold set in `file` as [`parse`](Self::parse) does, its words left
    /// in the file's pages, mapped read-only (`words`: no copy, no heap of the set's size).
    /// The outer error is the file's (it could not be mapped); the inner one its contents'.
    ///
    /// # Safety
    /// Nothing may write or truncate the file in place while the set (or a clone of it)
    /// lives: the set's words are its pages, checked once, here. (Replacing the file by a
    /// rename, or removing it, is fine: the mapping keeps the old inode.) A read error of
    /// the disk under a mapped page, or a file cut short by another process, is a `SIGBUS`
    /// that stops the process.
    pub unsafe fn map_file(file: &std::fs::File) -> std::io::Result<Result<Self, ColdSetError>> {
        // SAFETY: the caller's promise, passed on.
        unsafe { Self::map_file_checking(file, true) }
    }

    /// [`map_file`](Self::map_file) for a union: every check but the values' order and the
    /// checksum, which [`union_count`] checks as it reads the words (`sum`: the low words are
    /// read once instead of twice, the upper words twice instead of three times, their ones
    /// counted here).
    /// Such a set is for [`union_count`] only: its values in order
    /// are those of a set whose order and checksum were checked only if the union found no
    /// fault, and it has no zero samples, so it cannot answer membership. A check here that
    /// fails on a file whose checksum does not fit says [`ColdSetError::Checksum`], as
    /// [`map_file`](Self::map_file) would.
    ///
    /// # Safety
    /// As [`map_file`](Self::map_file).
    pub unsafe fn map_file_for_union(
        file: &std::fs::File,
    ) -> std::io::Result<Result<Self, ColdSetError>> {
        // SAFETY: the caller's promise, passed on.
        unsafe { Self::map_file_checking(file, false) }
    }

    /// # Safety
    /// As [`map_file`](Self::map_file).
    unsafe fn map_file_checking(
        file: &std::fs::File,
        order: bool,
    ) -> std::io::Result<Result<Self, ColdSetError>> {
        let map = Arc::new(words::Mapping::of(file)?);
        if map.len() < HEAD + TAIL {
            return Ok(Err(ColdSetError::NotASet));
        }
        let bytes = map.bytes();
        let head = match Head::check(bytes, order) {
            Ok(head) => head,
            Err(e) => return Ok(Err(e)),
        };
        let sum = head.sum;
        let low = Words::mapped(&map, HEAD, head.low_words);
        let upper = Words::mapped(&map, HEAD + 8 * head.low_words, head.upper_words);
        Ok(match (low, upper) {
            (Some(low), Some(upper)) => head
                .set(low, upper, order)
                .map(|set| ColdSet {
                    unchecked_sum: (!order).then_some(sum),
                    ..set
                })
                // Damage found in the words is named as `map_file` names it: the checksum
                // first.
                .map_err(|e| {
                    if order || sum_fits(bytes) {
                        e
                    } else {
                        ColdSetError::Checksum
                    }
                }),
            // Not aligned, or a big-endian target: a copy, as `parse` makes (which compares
            // the checksum).
            _ => Self::parse(bytes),
        })
    }

    /// Checks the upper vector and, if `order`, the order of the values, and builds the zero
    /// samples (a set left unchecked in order is for a union only, which needs none).
    fn check(mut self, order: bool) -> Result<Self, ColdSetError> {
        // The bits after the last value's low bits are zeros, as `encode` writes them: no
        // decode reads them, but a set has one encoding.
        let spare = self.low.len() as u64 * 64 - self.n * u64::from(self.l);
        if spare > 0 && self.low.last().is_some_and(|w| w >> (64 - spare) != 0) {
            return Err(ColdSetError::Damaged("bits past the last value's low bits"));
        }
        let spare = self.upper.len() as u64 * 64 - self.upper_bits;
        if spare > 0 && self.upper.last().is_some_and(|w| w >> (64 - spare) != 0) {
            return Err(ColdSetError::Damaged(
                "bits past the end of the upper vector",
            ));
        }
        // The last bit ends the last bucket: a one there is a value past every bucket, whose
        // high bits would not fit (`iter` and `contains` would disagree on it).
        let last = self.upper_bits - 1;
        if self.upper[(last / 64) as usize] >> (last % 64) & 1 == 1 {
            return Err(ColdSetError::Damaged(
                "a value past the last bucket of the upper vector",
            ));
        }
        let ones: u64 = self.upper.iter().map(|w| u64::from(w.count_ones())).sum();
        if ones != self.n {
            return Err(ColdSetError::Damaged(
                "the upper vector's ones are not one per value",
            ));
        }
        if !order {
            // For a union only, which never asks membership: no zero samples.
            return Ok(self);
        }
        self.zeros = self.sample_zeros();
        self.in_order = true;
        let mut last = None;
        for x in self.iter() {
            if last.is_some_and(|p| p >= x) {
                return Err(OUT_OF_ORDER);
            }
            last = Some(x);
        }
        Ok(self)
    }
}
