//! An hour's user fingerprints, compressed close to the information floor. The ring keeps
//! each hour that is over as one of these (a frozen hour, `ring::freeze`), and the cold tier
//! (`cold`) keeps each hour that left the ring as a file of the bytes below.
//!
//! ## Why Elias-Fano
//!
//! `n` distinct 64-bit fingerprints, uniformly spread, hold `log2 C(2⁶⁴, n)` bits of
//! information: about `log2(2⁶⁴/n) + 1.44` bits each (5.27 bytes at ten million, 5.70 at one
//! million). Elias-Fano stores the sorted values in `l + 2` to `l + 3` bits each, with
//! `l = ⌊log2(2⁶⁴/n)⌋` — within about a bit of the floor — and, unlike a Golomb-Rice stream,
//! answers "is `x` in the set?" by reading a few words in the middle, which a late event
//! for a sealed hour needs, and lists the values in order, which a union over hours needs.
//!
//! Each value `x` is split into its low `l` bits, stored as they are, and its high bits
//! `h = x >> l`, stored in unary: the *upper* bit vector has, for each bucket `b = 0, 1, …`,
//! one `1` per value whose high bits are `b`, then one `0`. So the `i`-th value's `1` is at
//! position `h_i + i`, and there are `2⁶⁴ >> l` zeros (between `n` and `2n`).
//!
//! ## The bytes
//!
//! ```text
//! "HTCS" | version (u16 LE, 1) | l (u8) | 0 (u8) | n (u64 LE) | upper_bits (u64 LE)
//! low:   ⌈n·l / 64⌉ words (u64 LE): value i's low bits at bit i·l, least significant first
//! upper: ⌈upper_bits / 64⌉ words (u64 LE): bit j of the vector is bit j % 64 of word j / 64
//! crc32 of all the above (u32 LE) | "HTCE"
//! ```
//!
//! `upper_bits = n + (2⁶⁴ >> l)`. A file is read (or mapped, [`ColdSet::map_file`]) whole and checked (checksum, lengths, the
//! count of ones, the last bit a zero, values strictly increasing) before any answer comes
//! from it: a damaged set is refused with what is wrong, never counted. A set mapped for a
//! union ([`ColdSet::map_file_for_union`]) leaves the last check, the order, to the union,
//! which makes it as it reads the values. In memory next to the bytes: the position of
//! every [`SAMPLE`]-th zero of the upper vector, so that a lookup scans at most that many
//! zeros' worth of words (about 0.05 bytes per value); a set mapped for a union, which never
//! answers membership, has none.

mod lookup;
mod take;
mod union;
#[cfg(target_arch = "x86_64")]
mod wide;
mod words;

pub use union::{union_count, OutOfOrder};
use words::Words;

// Not `crate::sync`'s: this count of a file mapping is no part of a protocol between threads
// that the loom models check (loom's `Arc` exists only inside a model).
use std::sync::Arc;

/// Version of the cold set format.
pub const COLD_SET_VERSION: u16 = 1;
const MAGIC: &[u8; 4] = b"HTCS";
const END: &[u8; 4] = b"HTCE";
/// Bytes before the low words.
const HEAD: usize = 24;
/// Bytes after the upper words.
const TAIL: usize = 8;
/// One zero of the upper vector in this many has its position kept in memory.
pub const SAMPLE: u64 = 256;

/// Why bytes are not a cold set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ColdSetError {
    #[error("not a cold set (bad magic or too short)")]
    NotASet,
    #[error("cold set format version {0}, this build reads {COLD_SET_VERSION}")]
    Version(u16),
    #[error("checksum mismatch")]
    Checksum,
    #[error("damaged: {0}")]
    Damaged(&'static str),
}

/// The little-endian `u64` at `at` of `b` (the caller checked the length).
fn u64_le(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// What a set's bytes say of it, checked (`Head::check`) before any of its words are read.
struct Head {
    n: u64,
    l: u32,
    upper_bits: u64,
    low_words: usize,
    upper_words: usize,
}

impl Head {
    /// The header, checksum, end mark and lengths of `bytes` (module doc).
    fn check(bytes: &[u8]) -> Result<Head, ColdSetError> {
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
        if u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) != crc32fast::hash(body) {
            return Err(ColdSetError::Checksum);
        }
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
        }
        .check(order)
    }
}

/// The low-bit width for `n` values: `⌊log2(2⁶⁴/n)⌋` (at most 63).
fn low_bits(n: u64) -> u32 {
    match n {
        0 | 1 => 63,
        n => 64 - (n - 1).ilog2() - 1,
    }
}

/// Words of `bits` bits.
fn words(bits: u64) -> usize {
    bits.div_ceil(64) as usize
}

/// Encodes `sorted`, strictly increasing fingerprints, as a cold set.
///
/// # Panics
/// If `sorted` is not strictly increasing (the caller sorts and has no duplicates: a user
/// set holds each fingerprint once).
pub fn encode(sorted: &[u64]) -> Vec<u8> {
    ColdSet::from_sorted(sorted).to_bytes()
}

/// A cold set, built from sorted values or read back and checked, with its lookup index
/// (none for a set mapped for a union).
/// Two sets are equal when their words are (`in_order` says how it was checked, not what it
/// holds, and the zero samples follow from the words).
#[derive(Clone, Debug)]
pub struct ColdSet {
    n: u64,
    l: u32,
    low: Words,
    upper: Words,
    upper_bits: u64,
    /// `zeros[k]`: the position of zero number `k · SAMPLE` (0-based) in `upper`. Empty
    /// for a set mapped for a union, which never answers membership.
    zeros: Vec<u64>,
    /// Whether its values are known to come in increasing order: built from sorted values,
    /// or checked. Not for a set mapped for a union, whose union checks them as it reads.
    in_order: bool,
}

impl PartialEq for ColdSet {
    fn eq(&self, o: &Self) -> bool {
        (self.n, self.l, self.upper_bits) == (o.n, o.l, o.upper_bits)
            && self.low == o.low
            && self.upper == o.upper
    }
}

impl Eq for ColdSet {}

/// Value `i`'s low bits of `l`, in the low words `low`.
#[inline]
fn low_of(low: &[u64], l: u32, i: u64) -> u64 {
    let at = i * u64::from(l);
    let (w, b) = ((at / 64) as usize, at % 64);
    let mut v = low[w] >> b;
    if b + u64::from(l) > 64 {
        v |= low[w + 1] << (64 - b);
    }
    v & ((1u64 << l) - 1)
}

impl ColdSet {
    /// The set of `sorted`, strictly increasing fingerprints.
    ///
    /// # Panics
    /// If `sorted` is not strictly increasing (the caller sorts and has no duplicates: a user
    /// set holds each fingerprint once).
    pub fn from_sorted(sorted: &[u64]) -> Self {
        assert!(
            sorted.windows(2).all(|w| w[0] < w[1]),
            "cold set values must be strictly increasing"
        );
        let n = sorted.len() as u64;
        let l = low_bits(n);
        let upper_bits = n + (u64::MAX >> l) + 1;
        let mut low = vec![0u64; words(n * u64::from(l))];
        let mut upper = vec![0u64; words(upper_bits)];
        let mask = (1u64 << l) - 1;
        for (i, &x) in sorted.iter().enumerate() {
            let at = i as u64 * u64::from(l);
            let (w, b) = ((at / 64) as usize, at % 64);
            let v = x & mask;
            low[w] |= v << b;
            if b + u64::from(l) > 64 {
                low[w + 1] |= v >> (64 - b);
            }
            let one = (x >> l) + i as u64;
            upper[(one / 64) as usize] |= 1 << (one % 64);
        }
        let mut set = ColdSet {
            n,
            l,
            low: Words::Owned(low),
            upper: Words::Owned(upper),
            upper_bits,
            zeros: Vec::new(),
            in_order: false,
        };
        set.zeros = set.sample_zeros();
        set.in_order = true;
        set
    }

    /// The set's bytes (module doc).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD + 8 * (self.low.len() + self.upper.len()) + TAIL);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&COLD_SET_VERSION.to_le_bytes());
        out.extend_from_slice(&[self.l as u8, 0]);
        out.extend_from_slice(&self.n.to_le_bytes());
        out.extend_from_slice(&self.upper_bits.to_le_bytes());
        for w in self.low.iter().chain(self.upper.iter()) {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(END);
        out
    }

    /// Reads and checks `bytes` (module doc: every check before any answer); the set owns a
    /// copy of its words.
    pub fn parse(bytes: &[u8]) -> Result<Self, ColdSetError> {
        let head = Head::check(bytes)?;
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

    /// [`map_file`](Self::map_file) for a union: every check but the values' order, which
    /// [`union_count`] checks as it reads them (one pass over the values instead of two).
    /// Such a set is for [`union_count`] only: its values in order are those of a set whose
    /// order was checked only if the union found no fault, and it has no zero samples, so
    /// it cannot answer membership.
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
        let head = match Head::check(bytes) {
            Ok(head) => head,
            Err(e) => return Ok(Err(e)),
        };
        let low = Words::mapped(&map, HEAD, head.low_words);
        let upper = Words::mapped(&map, HEAD + 8 * head.low_words, head.upper_words);
        Ok(match (low, upper) {
            (Some(low), Some(upper)) => head.set(low, upper, order),
            // Not aligned, or a big-endian target: a copy, as `parse` makes.
            _ => Self::parse(bytes),
        })
    }

    /// Checks the upper vector and, if `order`, the order of the values, and builds the zero
    /// samples (a set left unchecked in order is for a union only, which needs none).
    fn check(mut self, order: bool) -> Result<Self, ColdSetError> {
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
                return Err(ColdSetError::Damaged("values out of order"));
            }
            last = Some(x);
        }
        Ok(self)
    }

    /// Whether its values are known to come in increasing order (all but a set mapped for a
    /// union, whose order the union checks).
    pub fn in_order(&self) -> bool {
        self.in_order
    }

    /// How many values.
    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The values, in increasing order.
    pub fn iter(&self) -> Values<'_> {
        Values {
            upper: &self.upper,
            low: &self.low,
            l: self.l,
            word: 0,
            ones: self.upper.first().copied().unwrap_or(0),
            i: 0,
        }
    }
}

/// The values of a [`ColdSet`], in increasing order: the upper vector's ones, word by word,
/// each with its low bits.
#[derive(Debug)]
pub struct Values<'s> {
    /// The set's upper and low words, taken once (a mapped set's are behind a `match`).
    upper: &'s [u64],
    low: &'s [u64],
    /// Low bits a value.
    l: u32,
    /// The upper word being read, and its ones not yet read.
    word: usize,
    ones: u64,
    /// The next value's index.
    i: u64,
}

impl Iterator for Values<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        while self.ones == 0 {
            self.word += 1;
            self.ones = *self.upper.get(self.word)?;
        }
        let pos = self.word as u64 * 64 + u64::from(self.ones.trailing_zeros());
        self.ones &= self.ones - 1;
        let x = ((pos - self.i) << self.l) | low_of(self.low, self.l, self.i);
        self.i += 1;
        Some(x)
    }
}

#[cfg(test)]
mod tests;
