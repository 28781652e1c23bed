//! The number of distinct values over several cold sets: what a range of hours counts.

use super::sum::Sum;
use super::take::Quick;
use super::{ColdSet, ColdSetError, Values, OUT_OF_ORDER};

/// Values a union counts at a time: a slice of the value space expected to hold about this
/// many values from all the sets together, counted in a table of [`CELLS_PER_VALUE`] times
/// as many cells. (1 024 counted the 24-hour union of `benches/cold.rs` in 479 ms, 4 096 in
/// 706 ms, 256 in 520 ms, with the values taken one at a time; with the table's first pass
/// free of branches, 512 took 7 % longer than 1 024, 2 048 4 % longer; with the table of 8
/// cells a value, 512 took 17 % longer from files.)
const UNION_CHUNK: u64 = 1024;

/// Cells of a union's table for each value a slice is expected to hold. The fewer values
/// find their home cell taken, the fewer wait for the table's second pass, whose branches
/// mispredict: 24 sets of a million values from files took 82 ms at 4 cells a value (32 KiB,
/// the first-level cache), 77 ms at 8 (64 KiB), 77 ms at 16; 2 cells took 94 ms.
const CELLS_PER_VALUE: u64 = 8;

/// Values a slice takes of each set, at least: each set's turn in a slice costs a few
/// mispredicted branches whatever it takes. (168 sets of a million values each, from files,
/// with the wide decode and the prefetch: 1 491 ms at 6 a set, 914 at 12, 765 at 16, 775 at
/// 24, 923 at 32, where the table leaves the second-level cache.)
const PER_SET: u64 = 16;

/// The number of distinct values over `sets`.
///
/// The value space is cut into slices by its top bits, about [`UNION_CHUNK`] values a slice
/// over all the sets (more for many sets: [`PER_SET`]); each set's values come in order, so
/// a slice's are the next ones of each set. They are decoded into one buffer, set after set
/// (`take`), then counted in a small open-addressing table, sized for the buffer before the
/// first insert, where any value outside the slice marks a free cell: nothing is emptied
/// between slices. The table's first pass has no branch on the values (half of them are seen
/// before, at random); see [`Table::count`]. Placement multiplies by a random odd key, so
/// that values crafted to collide (fingerprints of chosen names) cost probes, never a wrong
/// count. (A merge of the sorted sets through a binary heap took twice as long:
/// BENCHMARKS.md, "The cold set".)
///
/// The values are decoded eight at a time with AVX-512 where the processor has it (`wide`;
/// 24 sets of a million values: 89 ms → 73 ms in `benches/cold.rs`), else one at a time.
///
/// Each set's values are checked to come in increasing order as they are read, and a set
/// mapped with [`ColdSet::map_file_for_union`] is checked against its file's checksum a few
/// slices behind (`sum`); it had no other check of either. A set that fails is a
/// [`UnionFault`], never a count.
pub fn union_count(sets: &[&ColdSet]) -> Result<u64, UnionFault> {
    #[cfg(target_arch = "x86_64")]
    if has_bmi2() {
        if has_avx512() {
            // SAFETY: the processor has all that `avx512` assumes (its `target_feature`),
            // checked just above.
            return unsafe { avx512(sets) };
        }
        // SAFETY: the processor has BMI1 and BMI2 (checked just above), all that `bmi2`
        // assumes (its `target_feature`).
        return unsafe { bmi2(sets) };
    }
    count_slices::<false>(sets)
}

/// The union's count by every decode this processor can run (the plain one, with BMI2,
/// with AVX-512), which must agree: a machine takes only the fastest, so the tests compare
/// them all.
#[cfg(test)]
pub(super) fn union_count_every_way(sets: &[&ColdSet]) -> Vec<Result<u64, UnionFault>> {
    #[allow(unused_mut)] // Only x86-64 has more than one way.
    let mut ways = vec![count_slices::<false>(sets)];
    #[cfg(target_arch = "x86_64")]
    if has_bmi2() {
        // SAFETY: the processor has what `bmi2` assumes, checked just above.
        ways.push(unsafe { bmi2(sets) });
        if has_avx512() {
            // SAFETY: the processor has what `avx512` assumes, checked just above.
            ways.push(unsafe { avx512(sets) });
        }
    }
    ways
}

/// Whether the processor has what [`bmi2`] assumes.
#[cfg(target_arch = "x86_64")]
fn has_bmi2() -> bool {
    std::is_x86_feature_detected!("bmi1") && std::is_x86_feature_detected!("bmi2")
}

/// Whether the processor has what [`avx512`] assumes, beyond [`has_bmi2`].
#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512dq")
        && std::is_x86_feature_detected!("avx512vbmi")
        && std::is_x86_feature_detected!("avx512vbmi2")
}

/// [`count_slices`] decoding eight values at a time (`wide`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi1,bmi2,avx512f,avx512bw,avx512dq,avx512vbmi,avx512vbmi2")]
fn avx512(sets: &[&ColdSet]) -> Result<u64, UnionFault> {
    count_slices::<true>(sets)
}

/// [`count_slices`] with BMI2's shifts by a register (one micro-operation each, against
/// two or three for `shl`/`shr` by `cl`). Measured, the shifts themselves gain little: the
/// same binary with this path turned off took 88-92 ms for 24 sets against 87-90, 863 ms for
/// 168 against 851. What counts more is that the counting is a function of its own: written
/// as one `#[inline(never)]` function without this path, it took 94 ms and 905 ms, and
/// inlined into its caller, 168 sets took 1 213 ms.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi1,bmi2")]
fn bmi2(sets: &[&ColdSet]) -> Result<u64, UnionFault> {
    count_slices::<false>(sets)
}

/// A set of [`union_count`] that is damaged: its index in the sets given, and what is wrong
/// ([`ColdSetError::Checksum`], or values out of order under a checksum that fits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnionFault {
    pub set: usize,
    pub error: ColdSetError,
}

/// Slices between two turns of the checksums (`sum`): the words read in 32 slices, about
/// 190 KiB for 24 sets of a million values and 490 KiB for 168, are still in the
/// second-level cache.
const SUM_EVERY: u64 = 32;

/// The fault of set `set`, whose values went back: its checksum, if it has one to compare
/// that does not fit (damage the order only happened to show first), else the order.
fn gone_back(sets: &[&ColdSet], set: usize) -> UnionFault {
    let error = if sets[set].sum_fits() {
        OUT_OF_ORDER
    } else {
        ColdSetError::Checksum
    };
    UnionFault { set, error }
}

/// The first set whose words do not give its file's checksum, all of them hashed now.
fn check_sums(mut sums: Vec<Option<Sum>>, cursors: &[Values<'_>]) -> Result<(), UnionFault> {
    for (set, (sum, c)) in sums.iter_mut().zip(cursors).enumerate() {
        if sum.take().is_some_and(|s| !s.fits(c)) {
            return Err(UnionFault {
                set,
                error: ColdSetError::Checksum,
            });
        }
    }
    Ok(())
}

/// With `WIDE`, only from [`avx512`]: its values are decoded with AVX-512 (`wide`).
#[inline(always)]
fn count_slices<const WIDE: bool>(sets: &[&ColdSet]) -> Result<u64, UnionFault> {
    let total: u64 = sets.iter().map(|s| s.len()).sum();
    let mut sums: Vec<Option<Sum>> = sets.iter().map(|s| Sum::of(s)).collect();
    let summing = sums.iter().any(Option::is_some);
    if total == 0 {
        let cursors: Vec<Values<'_>> = sets.iter().map(|s| s.iter()).collect();
        return check_sums(sums, &cursors).map(|()| 0);
    }
    // At least two slices: a value outside the slice marks a free cell of the table.
    let chunk = UNION_CHUNK.max(PER_SET * sets.len() as u64);
    let slice_log = (total / chunk).max(2).ilog2();
    let slices = 1u64 << slice_log;
    let width = 1u64 << (64 - slice_log);
    let mut cursors: Vec<Values<'_>> = sets.iter().map(|s| s.iter()).collect();
    let in_order: Vec<bool> = sets.iter().map(|s| s.in_order()).collect();
    // Once a set, not once a slice: a division each (168 sets took 1.6 times as long with
    // them computed at every turn of a set).
    let quick: Vec<Quick> = cursors.iter().map(|c| c.quick(WIDE)).collect();
    let mut table = Table::new((CELLS_PER_VALUE * chunk) as usize);
    let mut buf = vec![0; 2 * chunk as usize];
    let mut count = 0;
    for slice in 0..slices {
        let start = slice * width;
        let last = slice + 1 == slices;
        // The values of this slice: up to the next slice's first value (the last: all left).
        let stop = if last { u64::MAX } else { start + (width - 1) };
        if last {
            // The cells never taken still hold the table's first mark, all ones: a value of
            // this slice. Every cell is free here, and 0 is a value of the first slice.
            table.cells.fill(0);
        }
        let mut n = 0;
        for (set, c) in cursors.iter_mut().enumerate() {
            let went_back;
            // Only a set not known to be in order pays for the check.
            (n, went_back) = if in_order[set] {
                c.take_up_to::<false, WIDE>(stop, &mut buf, n, quick[set])
            } else {
                c.take_up_to::<true, WIDE>(stop, &mut buf, n, quick[set])
            };
            if went_back {
                return Err(gone_back(sets, set));
            }
        }
        count += table.count(&mut buf[..n], start, width - 1);
        if summing && slice % SUM_EVERY == SUM_EVERY - 1 {
            for (sum, c) in sums.iter_mut().zip(&cursors) {
                if let Some(sum) = sum {
                    sum.catch_up(c);
                }
            }
        }
    }
    check_sums(sums, &cursors).map(|()| count)
}

/// The table of [`union_count`]: distinct values of one slice at their cells, any value
/// outside the slice marking a free cell (a value of an earlier slice, or the mark the cells
/// were made with), so that nothing is emptied between slices.
struct Table {
    cells: Vec<u64>,
    key: u64,
    bits: u32,
}

/// Cells of [`Table`], at least: 64 KiB, [`CELLS_PER_VALUE`] times [`UNION_CHUNK`]. A table
/// of this size, or twice it, has its index bounds known to the compiler.
const TABLE_BITS: u32 = 13;

impl Table {
    /// A table of at least `size` cells, all holding all ones (no value of a first slice).
    fn new(size: usize) -> Self {
        Self::filled(size, u64::MAX, ahash::RandomState::new().hash_one(0u64) | 1)
    }

    /// A table of at least `size` cells (and at least `1 << TABLE_BITS`), all holding `free`.
    fn filled(size: usize, free: u64, key: u64) -> Self {
        let size = size.next_power_of_two().max(1 << TABLE_BITS);
        Table {
            cells: vec![free; size],
            key,
            bits: size.ilog2(),
        }
    }

    /// The distinct values of `values`, all from `start` to `start + span`; the table holds
    /// no value of that range before. Reorders and overwrites `values`.
    #[inline(always)]
    fn count(&mut self, values: &mut [u64], start: u64, span: u64) -> u64 {
        // At most half full whatever the values: no growth check per insert. A slice of more
        // values (rare, or crafted) has a table of its own, whose cells hold a value outside
        // the range (its top bits differ from all of the range's); this one stays in the cache.
        if 2 * values.len() > self.cells.len() {
            return Table::filled(2 * values.len(), !start, self.key).count(values, start, span);
        }
        let key = self.key;
        let cells = &mut self.cells[..];
        let (n, later) = if let Ok(cells) = <&mut [u64; 1 << TABLE_BITS]>::try_from(&mut *cells) {
            first_pass(cells, 64 - TABLE_BITS, key, values, start, span)
        } else if let Ok(cells) = <&mut [u64; 2 << TABLE_BITS]>::try_from(&mut *cells) {
            first_pass(cells, 63 - TABLE_BITS, key, values, start, span)
        } else {
            first_pass(cells, 64 - self.bits, key, values, start, span)
        };
        let cells = &mut self.cells[..];
        let mask = cells.len() - 1;
        let shift = 64 - self.bits;
        let mut n = n;
        for &x in &values[..later] {
            let mut at = (x.wrapping_mul(key) >> shift) as usize;
            loop {
                let y = cells[at];
                if y.wrapping_sub(start) > span {
                    cells[at] = x;
                    n += 1;
                    break;
                }
                if y == x {
                    break;
                }
                at = (at + 1) & mask;
            }
        }
        n
    }
}

/// The first pass of [`Table::count`], without a branch on the values: a value whose home
/// cell is free takes it, one already there is found, one whose home another value holds is
/// moved to the front of `values`, to be placed after. Every value in the table is then in
/// its home cell, as linear probing would have put it. Returns the values placed and how
/// many wait.
#[inline(always)]
fn first_pass(
    cells: &mut [u64],
    shift: u32,
    key: u64,
    values: &mut [u64],
    start: u64,
    span: u64,
) -> (u64, usize) {
    let mut n = 0;
    let mut m = 0;
    for j in 0..values.len() {
        let x = values[j];
        let at = (x.wrapping_mul(key) >> shift) as usize;
        let y = cells[at];
        let new = y.wrapping_sub(start) > span;
        let z = core::hint::select_unpredictable(new, x, y);
        cells[at] = z;
        n += u64::from(new);
        // `m <= j`: a value is moved only over those before it.
        values[m] = x;
        m += usize::from(z != x);
    }
    (n, m)
}
