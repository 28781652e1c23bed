//! The keyed placement of the user sets: which stripe and cell a fingerprint takes.
//!
//! A fingerprint is xxh3 with a fixed, public seed (`event::fingerprint`), so anyone can compute
//! it offline. Were its own bits the placement, a client could keep the names whose
//! fingerprints start in the first sixteenth of their table (1 name in 16) and pile them into
//! one probe run per stripe: 400 k such names made `RingWriter::apply` 24 times slower, and
//! honest users arriving afterwards 34 times slower (`apply_flood` in `benches/ring.rs`).
//!
//! So each set draws a secret key when it is created ([`UserSet::new`](super::users::UserSet::new)) and stores, for a
//! fingerprint `fp`, the value `p = mix(fp)`: a keyed bijection of 64-bit words, two rounds of
//! murmur3's finalizer `fmix64`, each after an XOR with one half of the key. `fmix64` is
//! invertible (xor-shifts by 33 and multiplications by odd constants), so `p` is present
//! exactly when `fp` was inserted, growth moves stored values without mixing them again, and
//! [`UserSet::fingerprints`](super::users::UserSet::fingerprints) gives the fingerprints back (`unmix`). Nothing outside the set
//! ever sees `p`; snapshots and the cluster carry fingerprints.
//!
//! The key comes from `std`'s `RandomState` (SipHash keys the OS seeds once per thread, moved
//! on at every `RandomState::new`), hashed into two words: two SipHash calls per new set, that
//! is per hour and slot. Each set has its own key rather than one per process: no set ever
//! compares layouts with another, and whatever a client might learn about one hour's layout
//! (only through the writer's timing) is worthless for the next hour. The mix is not a
//! cryptographic PRF; what it defeats is the offline crafting above. Its price is four
//! dependent multiplications per event: `apply` of repeat users at 100 k users went from 65 to
//! 50 M events/s (one round would give 58; two were kept for margin).
//!
//! `0` marks a free cell, so the one fingerprint whose mix is `0` (`unmix(0)`, different for
//! every key) is held in a flag instead.

use std::hash::{BuildHasher, RandomState};

/// murmur3's 64-bit finalizer constants and their inverses modulo 2^64.
const C1: u64 = 0xff51_afd7_ed55_8ccd;
const C2: u64 = 0xc4ce_b9fe_1a85_ec53;
const C1_INV: u64 = inverse(C1);
const C2_INV: u64 = inverse(C2);
const _: () = assert!(C1.wrapping_mul(C1_INV) == 1 && C2.wrapping_mul(C2_INV) == 1);

/// The inverse of an odd `c` modulo 2^64, by Newton's iteration (each step doubles the
/// number of correct low bits; `c * c = 1 mod 8` gives the first three).
const fn inverse(c: u64) -> u64 {
    let mut x = c;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(c.wrapping_mul(x)));
        i += 1;
    }
    x
}

/// murmur3's `fmix64`, a bijection of 64-bit words.
#[inline]
fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(C1);
    x ^= x >> 33;
    x = x.wrapping_mul(C2);
    x ^ (x >> 33)
}

/// The inverse of [`fmix64`] (`x ^ (x >> 33)` is its own inverse, as 33 > 64 / 2).
#[inline]
fn unfmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(C2_INV);
    x ^= x >> 33;
    x = x.wrapping_mul(C1_INV);
    x ^ (x >> 33)
}

/// The secret of one set's placement (see the module doc). Its `Debug` does not show it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub(crate) k0: u64,
    pub(crate) k1: u64,
}

impl Key {
    /// A fresh key from the OS-seeded `RandomState`.
    pub fn random() -> Self {
        let state = RandomState::new();
        Self {
            k0: state.hash_one(0x243f_6a88_85a3_08d3_u64),
            k1: state.hash_one(0x1319_8a2e_0370_7344_u64),
        }
    }

    /// The value stored for fingerprint `fp`.
    #[inline]
    pub fn mix(self, fp: u64) -> u64 {
        fmix64(fmix64(fp ^ self.k0) ^ self.k1)
    }

    /// The fingerprint of stored value `p`: `unmix(mix(fp)) == fp`.
    #[inline]
    pub fn unmix(self, p: u64) -> u64 {
        unfmix64(unfmix64(p) ^ self.k1) ^ self.k0
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed key, as the user set's tests use.
    const KEY: Key = Key {
        k0: 0x0123_4567_89ab_cdef,
        k1: 0xfedc_ba98_7654_3210,
    };

    #[test]
    fn mix_is_a_keyed_bijection() {
        for k in [KEY, Key::random(), Key { k0: 0, k1: 0 }] {
            for x in [0, 1, 42, u64::MAX, 1 << 63, 0x6cca_9007_aa62_a1a1] {
                assert_eq!(k.unmix(k.mix(x)), x);
                assert_eq!(k.mix(k.unmix(x)), x);
            }
        }
        assert_eq!(unfmix64(fmix64(0x1234_5678)), 0x1234_5678);
        // Another key, another placement.
        assert_ne!(KEY.mix(42), Key { k0: 1, ..KEY }.mix(42));
        assert_ne!(KEY.mix(42), Key { k1: 1, ..KEY }.mix(42));
        assert_ne!(Key::random(), Key::random());
    }
}
