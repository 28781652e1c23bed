//! Byte scans eight bytes at a time, in safe code (a `u64` per step, no SIMD intrinsics), for
//! the short strings of a request: its target, a header value, a query's user name.
//!
//! A byte loop spends 4 to 11 instructions a byte (a load, a compare or two, the bounds and
//! loop checks), so the 40-byte target of a usual request cost more to split than to route;
//! these spend about 10 instructions per eight bytes, and finish the last few bytes one at a
//! time.
//!
//! All of them read a word little-endian, so the lowest flagged bit is the first byte.

/// 1 in each byte of a word.
const ONES: u64 = 0x0101_0101_0101_0101;
/// The top bit of each byte of a word.
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The eight bytes of `bytes` from `i`, as a little-endian word, if there are eight.
#[inline]
fn word_at(bytes: &[u8], i: usize) -> Option<u64> {
    let chunk: [u8; 8] = bytes.get(i..i.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// The top bit of each byte of `v` that is zero. Flags above the lowest one may be false (a
/// borrow runs upward from a zero byte), never below it: the lowest set bit is exact.
#[inline]
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(ONES) & !v & HIGH
}

/// The index of the byte a flag word's lowest set bit belongs to.
#[inline]
fn first_flag(flags: u64) -> usize {
    (flags.trailing_zeros() / 8) as usize
}

/// The index of the first `needle` in `bytes`.
#[inline]
pub fn find(bytes: &[u8], needle: u8) -> Option<usize> {
    let pattern = u64::from(needle) * ONES;
    let mut i = 0;
    while let Some(x) = word_at(bytes, i) {
        let flags = zero_bytes(x ^ pattern);
        if flags != 0 {
            return Some(i + first_flag(flags));
        }
        i += 8;
    }
    bytes[i..].iter().position(|&b| b == needle).map(|j| i + j)
}

/// The index of the first byte of `bytes` that is one of `needles`.
#[inline]
pub fn find_any<const N: usize>(bytes: &[u8], needles: [u8; N]) -> Option<usize> {
    let patterns = needles.map(|n| u64::from(n) * ONES);
    let mut i = 0;
    while let Some(x) = word_at(bytes, i) {
        // The lowest flag of each needle's word is exact (its first match), so the lowest of
        // the union is the first byte that is any of them.
        let flags = patterns
            .iter()
            .fold(0, |flags, &p| flags | zero_bytes(x ^ p));
        if flags != 0 {
            return Some(i + first_flag(flags));
        }
        i += 8;
    }
    bytes[i..]
        .iter()
        .position(|c| needles.contains(c))
        .map(|j| i + j)
}

/// The eight bytes of `bytes` from `i` as a number, if they are eight ASCII digits (the first
/// the most significant).
#[inline]
pub fn eight_digits(bytes: &[u8], i: usize) -> Option<u64> {
    let x = word_at(bytes, i)?;
    // A digit is 0x30..=0x39: its high nibble is 3, and adding 6 leaves it 3 (0x39 + 6 = 0x3F;
    // 0x3A + 6 = 0x40 is not). The first test leaves every byte at most 0x3F, so adding 6
    // carries out of no byte.
    let all_digits = (x & 0xF0F0_F0F0_F0F0_F0F0) == 0x3030_3030_3030_3030
        && (x.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) == 0x3030_3030_3030_3030;
    if !all_digits {
        return None;
    }
    // Little-endian, so the first digit is the lowest byte. Combine neighbours three times:
    // pairs (d0 * 10 + d1) in 16-bit lanes, then fours (* 100) in 32-bit lanes, then the
    // eight (* 10 000). Each lane's value fits its lane (at most 99, 9 999, 99 999 999).
    let d = x - 0x3030_3030_3030_3030;
    let pairs = (d * 10 + (d >> 8)) & 0x00FF_00FF_00FF_00FF;
    let fours = (pairs * 100 + (pairs >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((fours * 10_000 + (fours >> 32)) & 0xFFFF_FFFF)
}

/// How many bytes at the start of `bytes` lie in `lo..=0x7E` (`lo` from 1 to 0x7E).
#[inline]
pub fn run_in(bytes: &[u8], lo: u8) -> usize {
    debug_assert!((1..=0x7E).contains(&lo));
    let mut i = 0;
    while let Some(x) = word_at(bytes, i) {
        let low7 = x & !HIGH;
        // Per byte `b`, with its top bit cleared (`b & 0x7F`, at most 0x7F), the sums below
        // stay under 0x100, so no carry crosses into the next byte:
        // - `low7 + (0x80 - lo)` has its top bit set iff `b & 0x7F >= lo`;
        // - `low7 + 1` has its top bit set iff `b & 0x7F == 0x7F`;
        // - `x` has its top bit set iff `b >= 0x80`.
        let at_least_lo = low7 + u64::from(0x80 - lo) * ONES;
        let del = low7 + ONES;
        let out = (!at_least_lo | del | x) & HIGH;
        if out != 0 {
            return i + first_flag(out);
        }
        i += 8;
    }
    i + bytes[i..]
        .iter()
        .position(|&b| !(lo..=0x7E).contains(&b))
        .unwrap_or(bytes.len() - i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that differ from the needles by one bit or by a borrow, around each needle.
    const NEAR: [u8; 7] = [0x3e, 0x40, 0xbf, 0x00, 0x01, 0x24, 0x26];

    #[test]
    fn eight_digits_reads_digits_and_refuses_the_rest() {
        assert_eq!(eight_digits(b"12345678", 0), Some(12_345_678));
        assert_eq!(eight_digits(b"x00000000", 1), Some(0));
        assert_eq!(eight_digits(b"99999999", 0), Some(99_999_999));
        assert_eq!(eight_digits(b"1234567", 0), None);
        for n in [0u64, 7, 10_203_040, 98_765_432, 1_000_001] {
            let text = format!("{n:08}");
            assert_eq!(eight_digits(text.as_bytes(), 0), Some(n));
        }
        // One byte off in every position, with the bytes either side of the digits.
        for at in 0..8 {
            for bad in [b'/', b':', b'&', 0x00, 0xb0, 0xb9, 0x3f, b' '] {
                let mut text = *b"55555555";
                text[at] = bad;
                assert_eq!(eight_digits(&text, 0), None, "{text:?}");
            }
        }
    }

    #[test]
    fn find_and_find_any_match_a_byte_loop_at_every_position() {
        for len in 0usize..40 {
            for at in 0..=len {
                for second in [None, Some(len.saturating_sub(1)), Some(at / 2)] {
                    let mut bytes: Vec<u8> = (0..len).map(|i| NEAR[i % NEAR.len()]).collect();
                    if at < len {
                        bytes[at] = b'?';
                    }
                    if let Some(s) = second.filter(|&s| s < len) {
                        bytes[s] = b'%';
                    }
                    let want = bytes.iter().position(|&b| b == b'?');
                    assert_eq!(find(&bytes, b'?'), want, "{bytes:?}");
                    let want = bytes.iter().position(|&b| b == b'?' || b == b'%');
                    assert_eq!(find_any(&bytes, [b'?', b'%']), want, "{bytes:?}");
                    assert_eq!(find_any(&bytes, [b'%', b'?', b'!']), want, "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn run_in_stops_at_the_first_byte_out_of_range_at_every_position() {
        for len in 0..40 {
            for bad in [0x00u8, 0x09, 0x1f, 0x20, 0x7f, 0x80, 0xc3, 0xff] {
                let mut bytes = vec![b'a'; len];
                bytes.push(bad);
                bytes.extend_from_slice(b"zzzzzzzzzz");
                let want = if (0x21..=0x7e).contains(&bad) {
                    bytes.len()
                } else {
                    len
                };
                assert_eq!(run_in(&bytes, 0x21), want, "len {len} byte {bad:#x}");
            }
        }
        let all: Vec<u8> = (0x20..=0x7e).collect();
        assert_eq!(run_in(&all, 0x20), all.len());
        assert_eq!(run_in(&all, 0x21), 0);
        assert_eq!(run_in(b"", 0x20), 0);
    }
}
