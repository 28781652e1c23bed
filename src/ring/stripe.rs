//! One stripe of a user set: an open-addressing table (linear probing) of 7-byte cells.
//!
//! A stored value's top [`STRIPE_BITS`] bits are its stripe's index, so a stripe keeps only
//! the 56 bits below them: 7 bytes a cell instead of 8, an eighth less memory per user. Cell
//! `i` is bytes `7i .. 7i + 7` of the table, little-endian, read with one unaligned 8-byte
//! load (the table has one byte to spare at its end for the last cell's load) and a mask.
//! All-zero bytes mark a free cell, so the one value per stripe whose low 56 bits are zero
//! is held in a flag instead.
//!
//! See [`users`](super::users) for the load and growth rule.

use super::prefetch::prefetch;
use super::zeroed::Zeroed;

/// Bits of a stored (mixed) value that choose a stripe.
pub const STRIPE_BITS: u32 = 8;
/// Bytes of a cell: the bits of a value below its stripe bits.
pub(super) const CELL: usize = 8 - (STRIPE_BITS / 8) as usize;
/// The bits of a value a cell keeps.
const LOW: u64 = u64::MAX >> STRIPE_BITS;
/// Smallest table a stripe allocates, in cells.
const MIN_TABLE: usize = 8;
/// The maximum load of a table, `LOAD_NUM / LOAD_DEN`: a stripe grows rather than go above it.
const LOAD_NUM: usize = 7;
const LOAD_DEN: usize = 8;

const _: () = assert!(STRIPE_BITS.is_multiple_of(8) && CELL * 8 == 64 - STRIPE_BITS as usize);

/// Adds `n` to the cells this thread's probes examined (inserts, lookups and growth), and
/// returns the new total: the tests compare probe counts instead of times. Unit tests only,
/// each on a plain test thread (no coroutine runs this build), so a thread-local is right.
#[cfg(test)]
pub(super) fn probes_counted(n: u64) -> u64 {
    thread_local! {
        static PROBES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    PROBES.with(|c| {
        c.set(c.get() + n);
        c.get()
    })
}

/// Counts one examined cell (tests only; nothing in other builds).
#[inline(always)]
fn count_probe() {
    #[cfg(test)]
    probes_counted(1);
}

/// One table of the low bits of stored (mixed) values.
#[derive(Debug, Default)]
pub(super) struct Stripe {
    /// `cap * CELL + 1` bytes once allocated; empty until the first value that needs a cell.
    /// Never fuller than the maximum load, so it always has a free cell.
    table: Zeroed,
    /// Cells in `table`.
    cap: usize,
    /// Occupied cells.
    len: usize,
    /// The value whose low bits are all zero is in the stripe.
    has_zero: bool,
}

impl Stripe {
    /// The home cell of low bits `v` in a table of `cap` cells: `v` scaled to `0..cap`.
    #[inline(always)]
    fn home(v: u64, cap: usize) -> usize {
        (((v << STRIPE_BITS) as u128 * cap as u128) >> 64) as usize
    }

    /// The low bits held in cell `i` (`0`: free) of `table`.
    #[inline(always)]
    fn cell(table: &[u8], i: usize) -> u64 {
        let bytes = table[i * CELL..]
            .first_chunk::<8>()
            .expect("a table has a spare byte after its last cell");
        u64::from_le_bytes(*bytes) & LOW
    }

    /// Writes low bits `v` into cell `i` of `table`.
    #[inline(always)]
    fn set_cell(table: &mut [u8], i: usize, v: u64) {
        table[i * CELL..(i + 1) * CELL].copy_from_slice(&v.to_le_bytes()[..CELL]);
    }

    /// Probes for `v` (non-zero) from its home cell: `Ok` with the cell holding it, or `Err`
    /// with the free cell that ends its run. The table must not be empty.
    #[inline]
    fn find(&self, v: u64) -> Result<usize, usize> {
        let cap = self.cap;
        let mut i = Self::home(v, cap);
        loop {
            debug_assert!(i < cap);
            count_probe();
            let cell = Self::cell(&self.table, i);
            if cell == v {
                return Ok(i);
            }
            if cell == 0 {
                return Err(i);
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
    }

    /// Puts `v` (non-zero, not in `table`) into the first free cell of its run.
    #[inline]
    fn place(table: &mut [u8], cap: usize, v: u64) {
        let mut i = Self::home(v, cap);
        loop {
            count_probe();
            if Self::cell(table, i) == 0 {
                Self::set_cell(table, i, v);
                return;
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
    }

    /// Whether a table of `cap` cells may hold `len` values.
    #[inline]
    pub(super) fn fits(len: usize, cap: usize) -> bool {
        len * LOAD_DEN <= cap * LOAD_NUM
    }

    /// Inserts value `p` of this stripe; true if it was not there yet. Looks first and grows
    /// only for a new value that would take the table over the maximum load.
    #[inline]
    pub(super) fn insert(&mut self, p: u64) -> bool {
        let v = p & LOW;
        if v == 0 {
            return !std::mem::replace(&mut self.has_zero, true);
        }
        if self.cap == 0 {
            self.grow();
        }
        let free = match self.find(v) {
            Ok(_) => return false,
            Err(free) => free,
        };
        if Self::fits(self.len + 1, self.cap) {
            Self::set_cell(&mut self.table, free, v);
        } else {
            self.grow();
            debug_assert!(Self::fits(self.len + 1, self.cap));
            Self::place(&mut self.table, self.cap, v);
        }
        self.len += 1;
        true
    }

    /// Whether value `p` of this stripe is in it.
    #[inline]
    pub(super) fn contains(&self, p: u64) -> bool {
        let v = p & LOW;
        if v == 0 {
            self.has_zero
        } else {
            self.cap != 0 && self.find(v).is_ok()
        }
    }

    /// Asks the CPU for the home cell of value `p` of this stripe.
    #[inline]
    pub(super) fn prefetch(&self, p: u64) {
        if self.cap != 0 {
            if let Some(byte) = self.table.get(Self::home(p & LOW, self.cap) * CELL) {
                prefetch(byte);
            }
        }
    }

    /// Rehashes into a table 5/4 the size (at least [`MIN_TABLE`] cells, so at least 2 cells
    /// more: room for the value that made it grow). Stored values move as they are: they are
    /// mixed already. The old table is released as soon as the new one is filled.
    #[cold]
    fn grow(&mut self) {
        let new_cap = (self.cap + self.cap / 4).max(MIN_TABLE);
        let mut table = Zeroed::new(new_cap * CELL + 1);
        for i in 0..self.cap {
            let v = Self::cell(&self.table, i);
            if v != 0 {
                Self::place(&mut table, new_cap, v);
            }
        }
        self.table = table;
        self.cap = new_cap;
    }

    /// The values held, given this stripe's index `s`.
    pub(super) fn values(&self, s: usize) -> impl Iterator<Item = u64> + '_ {
        let high = (s as u64) << (64 - STRIPE_BITS);
        self.has_zero.then_some(high).into_iter().chain(
            (0..self.cap)
                .map(|i| Self::cell(&self.table, i))
                .filter(|&v| v != 0)
                .map(move |v| high | v),
        )
    }

    /// Values held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len + usize::from(self.has_zero)
    }

    /// Cells in the table (0 before the first value that needs one).
    #[cfg(test)]
    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    /// Whether cell `i` is taken (tests).
    #[cfg(test)]
    pub(super) fn taken(&self, i: usize) -> bool {
        Self::cell(&self.table, i) != 0
    }

    /// Values in the table, without the flag's (tests).
    #[cfg(test)]
    pub(super) fn in_table(&self) -> usize {
        self.len
    }

    /// Bytes of memory the table takes.
    pub(super) fn table_bytes(&self) -> usize {
        self.table.footprint()
    }
}
