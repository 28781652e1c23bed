//! A union's values decoded eight at a time, with AVX-512: the wide path of
//! [`union_count`](super::union_count), taken only where the processor has the instructions
//! (detected at run time, `union`'s dispatch), with the same result as the scalar decode.
//!
//! For one word of the upper vector, whose ones are the values `i, i + 1, …`:
//! - `vpcompressb` lists the positions of its next eight ones (a byte each) in one
//!   instruction, where the scalar decode finds them one `tzcnt` at a time;
//! - eight values at a time: each one's high bits are its position less its index, its low
//!   bits eight bytes from where they begin, shifted and masked, and the value is both,
//!   joined. The eight values' low bits lie in the 64 bytes from the first one's byte (`l`
//!   is at most 56; the caller takes this path only for values whose 64 bytes lie inside
//!   the low words): one load, and `vpermb` moves each value's eight bytes to its lane;
//! - values above `stop` end the word early, as in the scalar decode: those up to the first
//!   one above `stop` are taken.

use core::arch::x86_64::{
    __m512i, _mm512_add_epi64, _mm512_add_epi8, _mm512_and_si512, _mm512_castsi512_si128,
    _mm512_cmple_epu64_mask, _mm512_cvtepu8_epi64, _mm512_loadu_si512, _mm512_maskz_compress_epi8,
    _mm512_mullo_epi64, _mm512_or_si512, _mm512_permutexvar_epi8, _mm512_set1_epi64,
    _mm512_set_epi64, _mm512_shuffle_epi8, _mm512_sll_epi64, _mm512_srli_epi64, _mm512_srlv_epi64,
    _mm512_storeu_si512, _mm512_sub_epi64, _mm_cvtsi64_si128, _pdep_u64,
};

/// Bytes 0 to 63: the positions `vpcompressb` picks from.
const POSITIONS: [u8; 64] = {
    let mut p = [0u8; 64];
    let mut j = 0;
    while j < 64 {
        p[j] = j as u8;
        j += 1;
    }
    p
};

/// What [`take_word`] took of one word: how many values, and the ones of the values it
/// left (it stopped at one above `stop`; the rest of the word is for the next slice), or 0.
pub(super) struct Took {
    pub(super) values: usize,
    pub(super) left: u64,
}

/// Writes the values of the ones of `ones` (value `i`'s first) to `room`, in order, up to
/// the first one above `stop`; `base` is the word's first bit position less `i` (wrapping),
/// `at` the bit where value `i`'s low bits begin, `l` bits each, in the bytes from `low`.
///
/// # Safety
/// The processor has AVX-512 F, BW, DQ, VBMI and VBMI2, and BMI2. `room` has 64 values of
/// room. The 64 bytes from bit `(i + j)·l`'s byte lie inside the allocation `low` points
/// into, for every `j` below the ones of `ones`, and `l` is at most 56.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vbmi,avx512vbmi2,bmi2")]
#[inline]
pub(super) unsafe fn take_word(
    ones: u64,
    base: u64,
    at: u64,
    l: u32,
    low: *const u8,
    stop: u64,
    room: &mut [u64; 64],
) -> Took {
    let count = ones.count_ones() as usize;
    // SAFETY: `POSITIONS` is 64 readable bytes; an unaligned load.
    let all = unsafe { core::ptr::read_unaligned(POSITIONS.as_ptr().cast::<__m512i>()) };
    // The ones not yet decoded.
    let mut rest = ones;
    let lanes = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    let step = _mm512_mullo_epi64(lanes, _mm512_set1_epi64(i64::from(l)));
    let mask = _mm512_set1_epi64(((1u64 << l) - 1) as i64);
    let seven = _mm512_set1_epi64(7);
    let stops = _mm512_set1_epi64(stop as i64);
    // In each eight bytes: the first byte eight times (`vpshufb` picks within 16 bytes).
    let spread = _mm512_set_epi64(
        0x0808_0808_0808_0808,
        0,
        0x0808_0808_0808_0808,
        0,
        0x0808_0808_0808_0808,
        0,
        0x0808_0808_0808_0808,
        0,
    );
    // In each eight bytes: 0 to 7.
    let within_lane = _mm512_set1_epi64(0x0706_0504_0302_0100);
    let shift = _mm_cvtsi64_si128(i64::from(l));
    let mut k = 0;
    while k < count {
        let live = count - k;
        let lanes_live: u8 = if live >= 8 { 0xff } else { (1u8 << live) - 1 };
        // The positions of the next eight ones, one byte each.
        let position = _mm512_cvtepu8_epi64(_mm512_castsi512_si128(_mm512_maskz_compress_epi8(
            rest, all,
        )));
        rest &= !_pdep_u64(0xff, rest);
        // High bits: position - (index - i) + word·64 - i = position + base - k - lane.
        let high = _mm512_sub_epi64(
            _mm512_add_epi64(
                position,
                _mm512_set1_epi64(base.wrapping_sub(k as u64) as i64),
            ),
            lanes,
        );
        // The eight values' low bits lie in the 64 bytes from the byte the first begins in
        // (at most 7 + 7·56 bits on, plus 56): one load, and a permutation of its bytes
        // puts each value's eight bytes in its lane.
        let first = at + k as u64 * u64::from(l);
        // SAFETY: the 64 bytes from `first / 8` lie inside `low`'s allocation (the caller's
        // promise, for every value of the word); an unaligned load.
        let window = unsafe { _mm512_loadu_si512(low.add((first / 8) as usize).cast()) };
        // Each lane's bit from that byte, and the byte it begins in, copied to the lane's
        // eight bytes plus 0 to 7.
        let bit = _mm512_add_epi64(_mm512_set1_epi64((first % 8) as i64), step);
        let byte = _mm512_shuffle_epi8(_mm512_srli_epi64::<3>(bit), spread);
        let raw = _mm512_permutexvar_epi8(_mm512_add_epi8(byte, within_lane), window);
        let lows = _mm512_and_si512(_mm512_srlv_epi64(raw, _mm512_and_si512(bit, seven)), mask);
        let values = _mm512_or_si512(_mm512_sll_epi64(high, shift), lows);
        // SAFETY: `k + 8 <= 64` (`k` is a multiple of 8 below 64), inside `room`.
        unsafe { _mm512_storeu_si512(room.as_mut_ptr().add(k).cast(), values) };
        let within = _mm512_cmple_epu64_mask(values, stops) & lanes_live;
        // The values up to the first above `stop`.
        let taken = (!within).trailing_zeros() as usize;
        if taken < live.min(8) {
            let values = k + taken;
            // The word's ones less its `values` lowest (fewer than 64: one was not taken).
            let taken_ones = _pdep_u64((1u64 << values) - 1, ones);
            return Took {
                values,
                left: ones & !taken_ones,
            };
        }
        k += 8;
    }
    Took {
        values: count,
        left: 0,
    }
}
