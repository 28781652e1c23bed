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
//! low:   ⌈n·l / 64⌉ words (u64 LE): value i's low bits at bit i·l, least significant first;
//!        the bits after the last value's are zeros
//! upper: ⌈upper_bits / 64⌉ words (u64 LE): bit j of the vector is bit j % 64 of word j / 64;
//!        the bits after bit upper_bits − 1 are zeros
//! crc32 of all the above (u32 LE) | "HTCE"
//! ```
//!
//! `upper_bits = n + (2⁶⁴ >> l)`. A file is read (or mapped, [`ColdSet::map_file`]) whole
//! and checked (checksum, lengths, the count of ones, the last bit a zero, the spare bits
//! zeros, values strictly increasing) before any answer comes from it: a damaged set is
//! refused with what is wrong, never counted, and the values of a set it accepts have one
//! encoding, those bytes. A set mapped for a union ([`ColdSet::map_file_for_union`]) leaves two
//! checks to the union, which makes them as it reads the words: the values' order, and the
//! checksum (`sum`), without which the union gives no count. In memory next to the bytes: the position of
//! every [`SAMPLE`]-th zero of the upper vector, so that a lookup scans at most that many
//! zeros' worth of words (about 0.05 bytes per value); a set mapped for a union, which never
//! answers membership, has none.

mod lookup;
mod read;
mod sum;
mod take;
mod union;
#[cfg(target_arch = "x86_64")]
mod wide;
mod words;

pub use union::{union_count, UnionFault};
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
/// A set whose values do not come in increasing order.
pub(crate) const OUT_OF_ORDER: ColdSetError = ColdSetError::Damaged("values out of order");
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
    /// For a set mapped for a union: its file's checksum, which the union compares as it
    /// reads the words (`sum`). `None` for every other set: built here, or its file's
    /// checksum compared when it was read.
    unchecked_sum: Option<u32>,
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
            unchecked_sum: None,
        };
        set.zeros = set.sample_zeros();
        set.in_order = true;
        set
    }

    /// The set's bytes (module doc).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD + 8 * (self.low.len() + self.upper.len()) + TAIL);
        out.extend_from_slice(&self.head());
        for w in self.low.iter().chain(self.upper.iter()) {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(END);
        out
    }

    /// The bytes before its words (module doc).
    fn head(&self) -> [u8; HEAD] {
        let mut head = [0; HEAD];
        head[..4].copy_from_slice(MAGIC);
        head[4..6].copy_from_slice(&COLD_SET_VERSION.to_le_bytes());
        head[6] = self.l as u8;
        head[8..16].copy_from_slice(&self.n.to_le_bytes());
        head[16..24].copy_from_slice(&self.upper_bits.to_le_bytes());
        head
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
#[cfg(test)]
mod union_tests;
