//! The number of distinct values over several cold sets: what a range of hours counts.

use super::{low_of, ColdSet, Values};

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
    let slice_log = (total / UNION_CHUNK).max(1).ilog2();
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
        count += table.count(&buf);
    }
    count
}

impl Values<'_> {
    /// Appends to `out` the next values below `end` (all that are left if `all`): how
    /// [`union_count`] takes a set's values a slice at a time.
    #[inline]
    fn take_below(&mut self, end: u64, all: bool, out: &mut Vec<u64>) {
        loop {
            while self.ones == 0 {
                self.word += 1;
                match self.upper.get(self.word) {
                    Some(&w) => self.ones = w,
                    None => return,
                }
            }
            let pos = self.word as u64 * 64 + u64::from(self.ones.trailing_zeros());
            let x = ((pos - self.i) << self.l) | low_of(self.low, self.l, self.i);
            if !all && x >= end {
                return;
            }
            out.push(x);
            self.ones &= self.ones - 1;
            self.i += 1;
        }
    }
}

/// The table of [`union_count`]: distinct values of one slice, 0 marking a free cell (the
/// value 0 is counted apart), and the cells taken, to empty them after.
struct Table {
    cells: Vec<u64>,
    taken: Vec<usize>,
    key: u64,
    bits: u32,
}

impl Table {
    fn new(size: usize) -> Self {
        let size = size.next_power_of_two();
        Table {
            cells: vec![0; size],
            taken: Vec::with_capacity(size / 2),
            key: ahash::RandomState::new().hash_one(0u64) | 1,
            bits: size.ilog2(),
        }
    }

    /// The distinct values of `values`; leaves the table empty.
    fn count(&mut self, values: &[u64]) -> u64 {
        // At most half full whatever the values: no growth check per insert.
        if 2 * values.len() > self.cells.len() {
            *self = Table {
                key: self.key,
                ..Table::new(2 * values.len())
            };
        }
        let mask = self.cells.len() - 1;
        let shift = 64 - self.bits;
        let mut zero = false;
        for &x in values {
            if x == 0 {
                zero = true;
                continue;
            }
            let mut at = (x.wrapping_mul(self.key) >> shift) as usize;
            loop {
                let y = self.cells[at];
                if y == 0 {
                    self.cells[at] = x;
                    self.taken.push(at);
                    break;
                }
                if y == x {
                    break;
                }
                at = (at + 1) & mask;
            }
        }
        let n = self.taken.len() as u64 + u64::from(zero);
        for at in self.taken.drain(..) {
            self.cells[at] = 0;
        }
        n
    }
}
