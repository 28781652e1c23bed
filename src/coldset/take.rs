//! A set's values of one slice of a union: decoded a word of the upper vector at a time into
//! the union's buffer, eight at a time where the processor has AVX-512 (`wide`), else one at
//! a time, each value's low bits read with one unaligned load where they lie inside the low
//! words; with the order of the values checked in a pass of its own for a set whose order
//! was not checked before, and the set's next words asked for ahead.

use super::{low_of, Values};

impl Values<'_> {
    /// Writes to `out` from `n` on the next values up to `stop`, growing `out` as needed, and
    /// returns where they end: how [`union_count`](super::union_count) takes a set's values
    /// a slice at a time. With `CHECK`, also whether a value went back: one not above the
    /// value taken before it. Only values taken together need comparing: every value taken
    /// is at most `stop`, and the next call begins with the value that passed it. With
    /// `WIDE` (only from `union`'s `avx512`), eight values at a time. `quick` is the set's
    /// [`Values::quick`].
    #[inline(always)]
    pub(super) fn take_up_to<const CHECK: bool, const WIDE: bool>(
        &mut self,
        stop: u64,
        out: &mut Vec<u64>,
        mut n: usize,
        Quick { quick, wide }: Quick,
    ) -> (usize, bool) {
        let from = n;
        let (upper, low, l) = (self.upper, self.low, self.l);
        let mask = (1u64 << l) - 1;
        let (mut word, mut ones, mut i) = (self.word, self.ones, self.i);
        // The low bits of the next turn, and the upper words after this one: a hint, so
        // addresses past the words are harmless (`wrapping_add` makes no reference).
        let next = (i * u64::from(l) / 8) as usize;
        for line in 0..PREFETCH_LINES {
            prefetch(
                low.as_ptr()
                    .cast::<u8>()
                    .wrapping_add(next + PREFETCH_AHEAD + 64 * line),
            );
        }
        prefetch(upper.as_ptr().cast::<u8>().wrapping_add(word * 8 + 128));
        'words: loop {
            // Room for all the ones of this word.
            if out.len() < n + 64 {
                out.resize(2 * (n + 64), 0);
            }
            let room: &mut [u64; 64] = (&mut out[n..n + 64]).try_into().expect("64 values");
            let mut k = 0;
            // A value's high bits are its one's position less its index: `base - k` plus the
            // one's bit in this word for the `k`-th value taken from the word.
            let base = (word as u64 * 64).wrapping_sub(i);
            // Where value `i`'s low bits begin.
            let mut at = i * u64::from(l);
            #[cfg(target_arch = "x86_64")]
            if WIDE && i + 64 <= wide {
                // SAFETY: `WIDE` only from `avx512`, which runs where the processor has what
                // `take_word` needs; `room` holds 64 values; every value of this word is
                // below `wide`, so its 64 bytes lie inside `low`, and `wide` is 0 for `l`
                // above 56.
                let took = unsafe {
                    super::wide::take_word(ones, base, at, l, low.as_ptr().cast(), stop, room)
                };
                n += took.values;
                i += took.values as u64;
                ones = took.left;
                if ones != 0 {
                    break 'words;
                }
            }
            // Whether every value of this word has its low bits in the eight bytes from the
            // byte they begin in (one test a word: the loop is compiled once each way).
            let eight = i + 64 <= quick;
            while ones != 0 {
                let lows = if eight {
                    // SAFETY: value `i + k` is below `quick`, so its eight bytes from `at / 8`
                    // lie inside `low` (`quick_values`).
                    unsafe { low_in_eight(low, at) >> (at % 8) & mask }
                } else {
                    low_of(low, l, i + k as u64)
                };
                let high = base
                    .wrapping_sub(k as u64)
                    .wrapping_add(u64::from(ones.trailing_zeros()));
                let x = (high << l) | lows;
                if x > stop {
                    n += k;
                    i += k as u64;
                    break 'words;
                }
                room[k & 63] = x;
                k += 1;
                ones &= ones - 1;
                at += u64::from(l);
            }
            n += k;
            i += k as u64;
            while ones == 0 {
                word += 1;
                match upper.get(word) {
                    Some(&w) => ones = w,
                    None => break 'words,
                }
            }
        }
        (self.word, self.ones, self.i) = (word, ones, i);
        if !CHECK {
            return (n, false);
        }
        let taken = &out[from..n];
        // A pass of its own, with no branch: a value that goes back is a damaged file, never
        // the common case.
        let went_back = taken
            .iter()
            .skip(1)
            .zip(taken)
            .fold(false, |back, (x, before)| back | (x <= before));
        (n, went_back)
    }
}

/// Where a set's turn in a slice asks for its low bits ahead: [`PREFETCH_LINES`] cache lines
/// from this many bytes past where it begins, about the next turn's. With 168 sets, a
/// processor's prefetchers follow far fewer streams than the sets' 336, and without this the
/// wide decode waited on memory (168 sets from files: 1 678 ms, 914 with it; 24 sets: 81,
/// 79). 128 to 1 024 bytes and 2 to 4 lines measured within 5 % of each other.
const PREFETCH_AHEAD: usize = 256;
const PREFETCH_LINES: usize = 4;

/// Asks for the cache line of `p` ahead of its use.
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing the program sees and never faults,
    // whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
}

/// The eight bytes of `low` from bit `at`'s byte, as a little-endian word.
///
/// # Safety
/// They lie inside `low`: `at / 8 + 8 <= 8 · low.len()`.
#[inline(always)]
unsafe fn low_in_eight(low: &[u64], at: u64) -> u64 {
    // SAFETY: the caller's promise: the eight bytes from byte `at / 8` are inside `low`;
    // any bytes are a `u64`, and `read_unaligned` needs no alignment.
    u64::from_le(unsafe {
        low.as_ptr()
            .cast::<u8>()
            .add((at / 8) as usize)
            .cast::<u64>()
            .read_unaligned()
    })
}

/// How many of a set's first values a faster decode may take: [`quick_values`] of 8 bytes,
/// and of 64 (0 without the wide decode).
#[derive(Clone, Copy)]
pub(super) struct Quick {
    quick: u64,
    wide: u64,
}

impl Values<'_> {
    pub(super) fn quick(&self, wide: bool) -> Quick {
        Quick {
            quick: quick_values(self.low, self.l, 8),
            wide: if wide {
                quick_values(self.low, self.l, 64)
            } else {
                0
            },
        }
    }
}

/// How many of a set's first values have their low bits of `l` within the `bytes` bytes
/// from the byte they begin in, inside `low`: none where a value's `l` bits may spread over
/// nine bytes (`l` above 56), or where the words' bytes in memory are not the file's order
/// (a big-endian target). Value `i`'s `bytes` bytes from byte `i·l / 8` lie inside `low`
/// when `i·l ≤ 64·len − 8·bytes`.
pub(super) fn quick_values(low: &[u64], l: u32, bytes: u64) -> u64 {
    let bits = 64 * low.len() as u64;
    if l > 56 || cfg!(target_endian = "big") || bits < 8 * bytes {
        return 0;
    }
    (bits - 8 * bytes) / u64::from(l) + 1
}
