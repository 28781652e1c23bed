//! The number of distinct values over several cold sets: what a range of hours counts.

use super::{ColdSet, Values};

/// Values a union counts at a time: a slice of the value space expected to hold about this
/// many values from all the sets together, so that its table (four times as many cells)
/// stays in the first-level cache. (1 024 counted the 24-hour union of `benches/cold.rs` in
/// 479 ms, 4 096 in 706 ms, 256 in 520 ms, with the values taken one at a time.)
const UNION_CHUNK: u64 = 1024;

/// The number of distinct values over `sets`.
///
/// The value space is cut into slices by its top bits, about [`UNION_CHUNK`] values a slice
/// over all the sets; each set's values come in order, so a slice's are the next ones of each
/// set. They are decoded into one buffer, set after set, then counted in a small
/// open-addressing table, sized for the buffer before the first insert and emptied cell by
/// cell after the slice. Placement multiplies by a random odd key, so that values crafted to
/// collide (fingerprints of chosen names) cost probes, never a wrong count. (A merge of the
/// sorted sets through a binary heap took twice as long: BENCHMARKS.md, "The cold set".)
pub fn union_count(sets: &[&ColdSet]) -> u64 {
    let total: u64 = sets.iter().map(|s| s.len()).sum();
    if total == 0 {
        return 0;
    }
    // At least two slices: a value outside the slice marks a free cell of the table.
    let slice_log = (total / UNION_CHUNK).max(2).ilog2();
    let slices = 1u64 << slice_log;
    let mut cursors: Vec<Values<'_>> = sets.iter().map(|s| s.iter()).collect();
    let mut table = Table::new(4 * UNION_CHUNK as usize);
    let mut buf = Vec::with_capacity(2 * UNION_CHUNK as usize);
    let mut count = 0;
    for slice in 0..slices {
        // The values of this slice: below the next slice's first value (the last: all left).
        let end = if slice + 1 < slices {
            (slice + 1) << (64 - slice_log)
        } else {
            u64::MAX
        };
        let last = slice + 1 == slices;
        buf.clear();
        for c in &mut cursors {
            c.take_below(end, last, &mut buf);
        }
        // No value of the first slice is all ones, none of the others is 0.
        let free = if slice == 0 { u64::MAX } else { 0 };
        count += table.count(&buf, free);
    }
    count
}

impl Values<'_> {
    /// Appends to `out` the next values below `end` (all that are left if `all`): how
    /// [`union_count`] takes a set's values a slice at a time.
    #[inline]
    fn take_below(&mut self, end: u64, all: bool, out: &mut Vec<u64>) {
        let (upper, low, l) = (self.upper, self.low, self.l);
        let mask = (1u64 << l) - 1;
        let (mut word, mut ones, mut i) = (self.word, self.ones, self.i);
        loop {
            while ones == 0 {
                word += 1;
                match upper.get(word) {
                    Some(&w) => ones = w,
                    None => {
                        (self.word, self.ones, self.i) = (word, ones, i);
                        return;
                    }
                }
            }
            let pos = word as u64 * 64 + u64::from(ones.trailing_zeros());
            let at = i * u64::from(l);
            let (w, b) = ((at / 64) as usize, (at % 64) as u32);
            let pair = u128::from(low[w]) | u128::from(low.get(w + 1).copied().unwrap_or(0)) << 64;
            let x = ((pos - i) << l) | ((pair >> b) as u64 & mask);
            if !all && x >= end {
                break;
            }
            out.push(x);
            ones &= ones - 1;
            i += 1;
        }
        (self.word, self.ones, self.i) = (word, ones, i);
    }
}

/// The table of [`union_count`]: distinct values of one slice, a value outside the slice
/// (`free`) marking a free cell, and the cells taken, to free them after.
struct Table {
    cells: Vec<u64>,
    taken: Vec<usize>,
    /// The values whose home cell another value held.
    later: Vec<u64>,
    /// What the free cells hold.
    free: u64,
    key: u64,
    bits: u32,
}

impl Table {
    fn new(size: usize) -> Self {
        let size = size.next_power_of_two();
        Table {
            cells: vec![0; size],
            taken: Vec::new(),
            later: Vec::new(),
            free: 0,
            key: ahash::RandomState::new().hash_one(0u64) | 1,
            bits: size.ilog2(),
        }
    }

    /// The distinct values of `values`, none of which is `free`; leaves the table empty.
    fn count(&mut self, values: &[u64], free: u64) -> u64 {
        // At most half full whatever the values: no growth check per insert.
        if 2 * values.len() > self.cells.len() {
            *self = Table {
                key: self.key,
                ..Table::new(2 * values.len())
            };
        }
        if self.free != free {
            self.cells.fill(free);
            self.free = free;
        }
        if self.taken.len() < values.len() {
            self.taken.resize(values.len(), 0);
        }
        if self.later.len() < values.len() {
            self.later.resize(values.len(), 0);
        }
        let (cells, taken, later) = (
            &mut self.cells[..],
            &mut self.taken[..],
            &mut self.later[..],
        );
        let mask = cells.len() - 1;
        let shift = 64 - self.bits;
        let key = self.key;
        let mut n = 0;
        let mut m = 0;
        // First, without a branch on the values: a value whose home cell is free takes it, one
        // already there is found, one whose home another value holds waits in `later`. Every
        // value in the table is then in its home cell, as linear probing would have put it.
        for &x in values {
            let at = (x.wrapping_mul(key) >> shift) as usize;
            let y = cells[at];
            let new = y == free;
            cells[at] = core::hint::select_unpredictable(new, x, y);
            taken[n] = at;
            n += usize::from(new);
            later[m] = x;
            m += usize::from(!new & (y != x));
        }
        for &x in &later[..m] {
            let mut at = (x.wrapping_mul(key) >> shift) as usize;
            loop {
                let y = cells[at];
                if y == free {
                    cells[at] = x;
                    taken[n] = at;
                    n += 1;
                    break;
                }
                if y == x {
                    break;
                }
                at = (at + 1) & mask;
            }
        }
        for &at in &taken[..n] {
            cells[at] = free;
        }
        n as u64
    }
}
