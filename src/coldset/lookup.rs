//! Membership of a [`ColdSet`]: the position of every [`SAMPLE`]-th zero of the upper
//! vector (built when a set is made or checked), and the lookup that starts from the sample
//! before a value's bucket (the format: `coldset`'s module doc).

use super::{low_of, ColdSet, SAMPLE};

impl ColdSet {
    /// The position of every [`SAMPLE`]-th zero of the upper vector.
    pub(super) fn sample_zeros(&self) -> Vec<u64> {
        let spare = self.upper.len() as u64 * 64 - self.upper_bits;
        let mut zeros = Vec::with_capacity((self.upper_bits - self.n).div_ceil(SAMPLE) as usize);
        // Zeros seen before this word; the next sampled zero is number `next`.
        let (mut seen, mut next) = (0u64, 0u64);
        for (k, &w) in self.upper.iter().enumerate() {
            let mut z = !w;
            if k + 1 == self.upper.len() && spare > 0 {
                z &= u64::MAX >> spare;
            }
            let here = u64::from(z.count_ones());
            // Most words hold no sampled zero: counted, not walked.
            while next < seen + here {
                // Zero number `next` is this word's `next - seen`-th (0-based).
                let mut y = z;
                for _ in 0..next - seen {
                    y &= y - 1;
                }
                zeros.push(k as u64 * 64 + u64::from(y.trailing_zeros()));
                next += SAMPLE;
            }
            seen += here;
        }
        zeros
    }

    /// The bytes held in memory beside the set's own: the zero samples.
    pub fn index_bytes(&self) -> usize {
        self.zeros.len() * 8
    }

    /// Value `i`'s low bits.
    #[inline]
    fn low(&self, i: u64) -> u64 {
        low_of(&self.low, self.l, i)
    }

    /// The position just after zero number `k` (0-based) of the upper vector, that is where
    /// bucket `k + 1` begins.
    fn after_zero(&self, k: u64) -> u64 {
        let sample = (k / SAMPLE) as usize;
        let mut pos = self.zeros[sample];
        let mut left = k % SAMPLE;
        if left == 0 {
            return pos + 1;
        }
        // Zeros after `pos`, word by word.
        pos += 1;
        loop {
            let (w, b) = ((pos / 64) as usize, pos % 64);
            let z = !self.upper[w] >> b;
            let here = u64::from(z.count_ones());
            if here >= left {
                // The `left`-th zero after the sample's.
                let mut z = z;
                for _ in 1..left {
                    z &= z - 1;
                }
                return pos + u64::from(z.trailing_zeros()) + 1;
            }
            left -= here;
            pos += 64 - b;
        }
    }

    /// Whether `x` is in the set. Not for a set mapped for a union, whose order is unchecked.
    pub fn contains(&self, x: u64) -> bool {
        // A set mapped for a union has neither its order checked nor zero samples: asking
        // it would be a defect of the caller, stopped here rather than at a sample missing.
        assert!(
            self.in_order,
            "membership of a set whose order is unchecked"
        );
        if self.n == 0 {
            return false;
        }
        let h = x >> self.l;
        let start = if h == 0 { 0 } else { self.after_zero(h - 1) };
        // The values of bucket `h`: the ones from `start` up to the next zero.
        let (mut pos, mut i) = (start, start - h);
        let low = x & ((1u64 << self.l) - 1);
        while pos < self.upper_bits && self.upper[(pos / 64) as usize] >> (pos % 64) & 1 == 1 {
            let v = self.low(i);
            if v >= low {
                return v == low;
            }
            pos += 1;
            i += 1;
        }
        false
    }
}
