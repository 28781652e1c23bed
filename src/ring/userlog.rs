//! An append-only log of fingerprints: one writer appends, any thread reads a prefix whose
//! length it learned from a published slot.
//!
//! The ring's user sets are the writer's alone (no locks, no atomics on the hot path), so
//! nothing else can list an hour's users from them. The log is how a union over hours gets
//! them without asking the writer: each user new to its hour is also appended here, in the
//! order it was counted, so the first `n` entries are exactly the users a published
//! `unique_users == n` counts ([`Members`](super::members::Members)).
//!
//! ## Layout
//!
//! Chunk `k` holds `FIRST << k` entries and begins at entry `FIRST · (2ᵏ − 1)`, so the
//! log never moves an entry (a reader may be copying it) and wastes at most the unused part
//! of its last chunk. Chunks are allocated by the writer when it first writes into one and
//! freed with the log.
//!
//! ## Who sees what
//!
//! ```text
//! writer                                   reader
//! chunk k missing: allocate,
//!   chunks[k].store(ptr, Release) ───┐
//! cells[i].store(fp, Relaxed)        │     slot.read() -> unique_users = n (seqlock: Acquire)
//! ... publish the slot (seqlock) ────┼──►  ptr = chunks[k].load(Acquire) ◄┘
//!                                          cells[i].load(Relaxed), i < n
//! ```
//!
//! A reader reads only entries below a count it took from a slot snapshot; the writer
//! appended them before it published that snapshot, and the seqlock's Release store / Acquire
//! load makes them visible. A chunk's pointer is published on its own (Release / Acquire), so
//! a reader that finds it also finds the chunk's zeroed cells initialised.

use crate::sync::{AtomicPtr, AtomicU64, Ordering};

/// Entries of chunk 0 (each later chunk is twice the one before).
#[cfg(not(hourtally_loom))]
const FIRST: u64 = 1024;
/// Small under loom, so that a model's chunks are a few cells.
#[cfg(hourtally_loom)]
const FIRST: u64 = 2;

/// Chunks a log can have: `FIRST · (2³⁶ − 1)` entries, far more than a 64-bit count of users
/// in an hour will reach in memory.
#[cfg(not(hourtally_loom))]
const CHUNKS: usize = 36;
/// Three under loom (14 entries): every atomic a model touches is a branch it explores.
#[cfg(hourtally_loom)]
const CHUNKS: usize = 3;

/// The chunk of entry `i` and the entry's place in it.
#[inline]
fn locate(i: u64) -> (usize, usize) {
    let k = (i / FIRST + 1).ilog2();
    let start = FIRST * ((1u64 << k) - 1);
    (k as usize, (i - start) as usize)
}

/// Entries of chunk `k`.
fn chunk_len(k: usize) -> usize {
    (FIRST << k) as usize
}

/// `len` cells holding 0.
fn zeroed_cells(len: usize) -> Box<[AtomicU64]> {
    #[cfg(not(hourtally_loom))]
    {
        const _: () = assert!(
            std::mem::size_of::<u64>() == std::mem::size_of::<AtomicU64>()
                && std::mem::align_of::<u64>() == std::mem::align_of::<AtomicU64>()
        );
        // `vec![0; n]` asks the allocator for zeroed memory, which a big chunk gets as fresh
        // pages (no clearing on the writer thread).
        let plain: Box<[u64]> = vec![0u64; len].into_boxed_slice();
        // SAFETY: `AtomicU64` has the size, alignment (asserted above) and bit validity of
        // `u64`, so the allocation is a valid `[AtomicU64]` of the same length and layout, and
        // the box frees it with the layout it was allocated with.
        unsafe { Box::from_raw(Box::into_raw(plain) as *mut [AtomicU64]) }
    }
    #[cfg(hourtally_loom)]
    (0..len).map(|_| AtomicU64::new(0)).collect()
}

/// The log. Appends take `&self` (the log is shared with readers in an `Arc`); the one
/// writer is the ring's writer, which owns the count of entries.
#[derive(Debug)]
pub struct UserLog {
    /// Chunk `k`'s cells (a leaked `Box<[AtomicU64]>` of [`chunk_len`]`(k)`), or null until
    /// the writer first writes into it.
    chunks: [AtomicPtr<AtomicU64>; CHUNKS],
}

impl Default for UserLog {
    fn default() -> Self {
        Self::new()
    }
}

impl UserLog {
    pub fn new() -> Self {
        Self {
            chunks: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
        }
    }

    /// Chunk `k`'s cells, if allocated.
    #[inline]
    fn chunk(&self, k: usize) -> Option<&[AtomicU64]> {
        // Acquire: pairs with the Release store that published the chunk, so its cells are
        // seen initialised.
        let p = self.chunks[k].load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: a non-null pointer here came from `Box::into_raw` of a box of
        // `chunk_len(k)` cells (see `append`), which only `drop` frees, and `drop` has `&mut
        // self`, so no `&self` borrow (this one) outlives it.
        Some(unsafe { std::slice::from_raw_parts(p, chunk_len(k)) })
    }

    /// Writes `fp` as entry `i`. The writer calls it with `i` = the entries it appended so far;
    /// readers see it once a slot that counts it is published.
    #[inline]
    pub fn append(&self, i: u64, fp: u64) {
        let (k, at) = locate(i);
        let cells = match self.chunk(k) {
            Some(cells) => cells,
            None => self.allocate(k),
        };
        // Relaxed: readers read entry `i` only after the Acquire load of a slot published
        // (Release) after this store (module doc).
        cells[at].store(fp, Ordering::Relaxed);
    }

    /// Allocates chunk `k` and publishes it.
    #[cold]
    fn allocate(&self, k: usize) -> &[AtomicU64] {
        let cells = Box::into_raw(zeroed_cells(chunk_len(k))) as *mut AtomicU64;
        // Release: a reader that loads the pointer (Acquire) sees the cells initialised.
        // AcqRel/Acquire on failure: only a second writer could have stored one first, which
        // the ring never has; if one did, its chunk is kept and ours freed.
        if let Err(theirs) = self.chunks[k].compare_exchange(
            std::ptr::null_mut(),
            cells,
            Ordering::Release,
            Ordering::Acquire,
        ) {
            // SAFETY: `cells` came from `Box::into_raw` just above and was never published.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(cells, chunk_len(k))) });
            let _ = theirs;
        }
        self.chunk(k)
            .unwrap_or_else(|| unreachable!("chunk {k} was just published"))
    }

    /// Appends entries `0..n` to `out`, in the order they were written. `false` (and `out`
    /// as it was) if a chunk they need was never written, which a caller that took `n` from
    /// a published slot never sees.
    pub fn read_into(&self, n: u64, out: &mut Vec<u64>) -> bool {
        self.read_range(0, n, out)
    }

    /// Appends entries `from..to` to `out`, in order; `false` (and `out` as it was) as
    /// [`read_into`](Self::read_into).
    pub fn read_range(&self, from: u64, to: u64, out: &mut Vec<u64>) -> bool {
        let before = out.len();
        let mut at = from;
        if to > from {
            out.reserve((to - from) as usize);
        }
        while at < to {
            let (k, i) = locate(at);
            let Some(cells) = self.chunk(k) else {
                out.truncate(before);
                return false;
            };
            let take = ((to - at) as usize).min(cells.len() - i);
            // Relaxed: ordered by the slot's seqlock, as in `append`.
            out.extend(cells[i..i + take].iter().map(|c| c.load(Ordering::Relaxed)));
            at += take as u64;
        }
        true
    }

    /// Heap bytes of the allocated chunks (its tests check the chunks it allocates).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        (0..CHUNKS)
            .filter_map(|k| self.chunk(k))
            .map(|c| c.len() * 8)
            .sum()
    }
}

impl Drop for UserLog {
    fn drop(&mut self) {
        for (k, p) in self.chunks.iter().enumerate() {
            // Relaxed: `&mut self`, so no other thread holds the log any more (the `Arc` that
            // shared it synchronised its last owner with every other one).
            let p = p.load(Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: as in `chunk`: from `Box::into_raw` of `chunk_len(k)` cells, freed
                // only here, once.
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, chunk_len(k))) });
            }
        }
    }
}

#[cfg(all(test, not(hourtally_loom)))]
mod tests {
    use super::*;

    #[test]
    fn entries_are_placed_in_chunks_that_double() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(FIRST - 1), (0, FIRST as usize - 1));
        assert_eq!(locate(FIRST), (1, 0));
        assert_eq!(locate(3 * FIRST - 1), (1, 2 * FIRST as usize - 1));
        assert_eq!(locate(3 * FIRST), (2, 0));
        // The last entry a log can hold is in its last chunk.
        let last = FIRST * ((1u64 << CHUNKS) - 1) - 1;
        assert_eq!(locate(last), (CHUNKS - 1, chunk_len(CHUNKS - 1) - 1));
    }

    #[test]
    fn a_prefix_reads_back_what_was_appended_in_order() {
        let log = UserLog::new();
        let n = 10 * FIRST + 7;
        for i in 0..n {
            log.append(i, i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        for len in [0, 1, FIRST - 1, FIRST, FIRST + 1, 3 * FIRST, n] {
            let mut out = vec![42];
            assert!(log.read_into(len, &mut out));
            assert_eq!(out.len() as u64, len + 1);
            assert!(out[1..]
                .iter()
                .enumerate()
                .all(|(i, &v)| v == (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        }
        // Chunks 0..=3 hold 15·FIRST entries: four chunks were allocated.
        assert_eq!(log.heap_bytes(), 15 * FIRST as usize * 8);
    }

    #[test]
    fn a_range_reads_back_what_was_appended_there() {
        let log = UserLog::new();
        let n = 10 * FIRST + 7;
        for i in 0..n {
            log.append(i, i + 1);
        }
        for (from, to) in [
            (0, 0),
            (5, 5),
            (0, n),
            (1, FIRST),
            (FIRST - 1, 3 * FIRST + 2),
            (n - 1, n),
        ] {
            let mut out = vec![42];
            assert!(log.read_range(from, to, &mut out));
            assert_eq!(out[0], 42);
            assert_eq!(out[1..], (from + 1..to + 1).collect::<Vec<_>>()[..]);
        }
    }

    #[test]
    fn a_prefix_past_what_was_written_is_refused_and_leaves_the_output_alone() {
        let log = UserLog::new();
        log.append(0, 7);
        let mut out = vec![1, 2];
        assert!(!log.read_into(FIRST + 1, &mut out));
        assert_eq!(out, [1, 2]);
    }
}
