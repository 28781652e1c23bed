//! One hour slot: an hour and its three counters behind a sequence lock.
//!
//! The single writer publishes a whole [`Snapshot`] at a time; any number of readers copy it
//! without ever blocking the writer or each other. A reader that overlaps a write sees the
//! sequence number change (or odd) and copies again, so it never returns a torn snapshot: an
//! hour with another hour's counters, or clicks from before a write with impressions from
//! after it.
//!
//! The protocol is the one of Boehm, "Can seqlocks get along with programming language memory
//! models?" (MSPC 2012), with every field an atomic so that no read is a data race:
//!
//! ```text
//! writer (one thread)                      reader (any thread)
//! s = seq                                  s1 = seq.load(Acquire)     ─┐ pairs with the
//! seq.store(s+1, Relaxed)   // odd: busy   if s1 odd: retry            │ writer's Release
//! fence(Release)                           data = fields.load(Relaxed) │ store of s1
//! fields.store(.., Relaxed)                fence(Acquire)              │
//! seq.store(s+2, Release)   // even: done  s2 = seq.load(Relaxed)      │
//!                                          if s1 != s2: retry         ─┘
//! ```
//!
//! Why it is enough: if the reader's field loads saw any store of a write that had begun
//! (`s+1`), then the writer's Release fence before those stores and the reader's Acquire
//! fence after the loads synchronise, so the reader's `s2` load sees `s+1` or later and
//! differs from `s1 <= s`. If the field loads saw only stores from before `s1`'s write was
//! published, they are exactly that write's values, because the Acquire load of `s1`
//! made every earlier field store visible.

use crate::sync::{fence, spin_loop, AtomicU32, AtomicU64, Ordering};

/// The hour of a slot that has never held one.
pub const EMPTY: u32 = u32::MAX;

pub use crate::counts::Counts;

/// What a slot holds at one instant: its hour ([`EMPTY`] if none yet) and that hour's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Snapshot {
    pub hour: u32,
    pub counts: Counts,
}

impl Snapshot {
    pub const EMPTY: Snapshot = Snapshot {
        hour: EMPTY,
        counts: Counts {
            unique_users: 0,
            clicks: 0,
            impressions: 0,
        },
    };
}

/// A seqlock-published [`Snapshot`]. Written by one thread only (the writer); read by many.
#[derive(Debug)]
pub struct Slot {
    /// Even: the fields hold a complete snapshot. Odd: a write is in progress. Only the
    /// writer stores to it, incrementing by one at the start and one at the end of a write.
    seq: AtomicU64,
    /// The hour the counters belong to, or [`EMPTY`].
    hour: AtomicU32,
    /// Distinct user fingerprints seen in `hour`.
    unique_users: AtomicU64,
    /// Clicks in `hour`.
    clicks: AtomicU64,
    /// Impressions in `hour`.
    impressions: AtomicU64,
}

impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}

impl Slot {
    pub fn new() -> Self {
        Self {
            seq: AtomicU64::new(0),
            hour: AtomicU32::new(EMPTY),
            unique_users: AtomicU64::new(0),
            clicks: AtomicU64::new(0),
            impressions: AtomicU64::new(0),
        }
    }

    /// Publishes `snap`. Must only be called by the slot's single writer; two concurrent
    /// writers would interleave their sequence numbers and let a reader accept a torn copy.
    pub fn write(&self, snap: &Snapshot) {
        // Relaxed: the writer is the only thread that stores `seq`, so it reads its own
        // latest store; no other thread's memory is consumed through this load.
        let seq = self.seq.load(Ordering::Relaxed);
        debug_assert!(seq.is_multiple_of(2), "slot written by two writers at once");
        // Relaxed: this store only needs to be ordered before the field stores below, which
        // the Release fence does; nothing is published by the odd value itself.
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        // Release fence: a reader whose field loads see any store below must, after its
        // Acquire fence, see `seq` at `seq + 1` or later, and so reject its copy.
        fence(Ordering::Release);
        // Relaxed field stores: the sequence protocol orders them, as argued above.
        self.hour.store(snap.hour, Ordering::Relaxed);
        self.unique_users
            .store(snap.counts.unique_users, Ordering::Relaxed);
        self.clicks.store(snap.counts.clicks, Ordering::Relaxed);
        self.impressions
            .store(snap.counts.impressions, Ordering::Relaxed);
        // Release: a reader whose Acquire load sees `seq + 2` sees every field store above,
        // and everything the writer did before this write (the archive entry of a recycled
        // hour, see `Ring`).
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// Copies the latest complete snapshot. Never blocks; retries only while a write is in
    /// flight, which lasts a handful of stores.
    #[inline]
    pub fn read(&self) -> Snapshot {
        loop {
            if let Some(snap) = self.try_read() {
                return snap;
            }
            spin_loop();
        }
    }

    /// The fields as they are, each loaded on its own. Relaxed: a torn copy is possible here,
    /// and callers catch it with the re-check of `seq`.
    #[inline(always)]
    fn load_fields(&self) -> Snapshot {
        Snapshot {
            hour: self.hour.load(Ordering::Relaxed),
            counts: Counts {
                unique_users: self.unique_users.load(Ordering::Relaxed),
                clicks: self.clicks.load(Ordering::Relaxed),
                impressions: self.impressions.load(Ordering::Relaxed),
            },
        }
    }

    /// One attempt at [`read`](Self::read): `None` if a write overlapped it.
    #[inline]
    pub fn try_read(&self) -> Option<Snapshot> {
        // Acquire: pairs with the writer's Release store of an even `seq`, so the field loads
        // below see at least that write's values (and what came before it).
        let s1 = self.seq.load(Ordering::Acquire);
        if !s1.is_multiple_of(2) {
            return None;
        }
        let snap = self.load_fields();
        // Acquire fence: orders the field loads before the re-check; pairs with the writer's
        // Release fence, so a field load that saw a newer write forces `s2` to see its odd
        // sequence number or a later one.
        fence(Ordering::Acquire);
        // Relaxed: ordered by the fence above; we only compare it with `s1`.
        let s2 = self.seq.load(Ordering::Relaxed);
        (s1 == s2).then_some(snap)
    }

    /// NEGATIVE CONTROL, compiled only under loom (never in a normal build): [`try_read`]
    /// with one deliberate `flaw`. `loom-tests/tests/loom_slot_write_vs_read.rs` checks that
    /// loom rejects each flaw, which shows the model is strong enough to catch a torn read.
    ///
    /// [`try_read`]: Self::try_read
    #[cfg(hourtally_loom)]
    #[doc(hidden)]
    pub fn try_read_broken(&self, flaw: BrokenRead) -> Option<Snapshot> {
        let first = match flaw {
            BrokenRead::RelaxedFirstLoad => Ordering::Relaxed,
            BrokenRead::NoRecheck | BrokenRead::NoAcquireFence => Ordering::Acquire,
        };
        let s1 = self.seq.load(first);
        if !s1.is_multiple_of(2) {
            return None;
        }
        let snap = self.load_fields();
        if flaw == BrokenRead::NoRecheck {
            return Some(snap);
        }
        if flaw != BrokenRead::NoAcquireFence {
            fence(Ordering::Acquire);
        }
        let s2 = self.seq.load(Ordering::Relaxed);
        (s1 == s2).then_some(snap)
    }

    /// The hour the slot holds, as last published (possibly a batch behind the writer).
    /// Used by the HTTP edge's advisory sealed-hour check, where a stale answer only means
    /// the writer drops the event and counts it instead.
    #[inline]
    pub fn hour(&self) -> u32 {
        self.read().hour
    }
}

/// NEGATIVE CONTROL, loom only: the one flaw [`Slot::try_read_broken`] puts into the seqlock
/// read.
#[cfg(hourtally_loom)]
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokenRead {
    /// No re-check of `seq` after the field loads: a read that overlaps a write is torn.
    NoRecheck,
    /// The first load of `seq` is Relaxed instead of Acquire: an even `seq` no longer
    /// guarantees that the field loads see the write that stored it.
    RelaxedFirstLoad,
    /// No Acquire fence between the field loads and the re-check: the re-check may read an
    /// older `seq` than the field loads' values imply.
    NoAcquireFence,
}

#[cfg(all(test, not(hourtally_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_new_slot_is_empty() {
        assert_eq!(Slot::new().read(), Snapshot::EMPTY);
    }

    #[test]
    fn read_returns_the_last_write() {
        let slot = Slot::new();
        for i in 1..=3u64 {
            let snap = Snapshot {
                hour: 7,
                counts: Counts {
                    unique_users: i,
                    clicks: 2 * i,
                    impressions: 3 * i,
                },
            };
            slot.write(&snap);
            assert_eq!(slot.read(), snap);
            assert_eq!(slot.try_read(), Some(snap));
        }
        assert_eq!(slot.hour(), 7);
    }

    #[test]
    fn concurrent_reads_are_never_torn() {
        // The writer keeps the invariant clicks == 2 * unique, impressions == 3 * unique and
        // hour == unique % 5; a torn copy would break it. (loom proves this exhaustively for
        // small runs; this is the same property under real hardware concurrency.)
        use crate::sync::{Arc, AtomicBool, AtomicU64};
        let slot = Arc::new(Slot::new());
        let stop = Arc::new(AtomicBool::new(false));
        // Reads of a written slot so far: the writer goes on until the reader has made some,
        // so the test cannot pass without overlapping them (a fast writer used to finish
        // before the reader thread had started).
        let seen = Arc::new(AtomicU64::new(0));
        let reader = {
            let (slot, stop, seen) = (slot.clone(), stop.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    let s = slot.read();
                    if s.hour == EMPTY {
                        continue;
                    }
                    seen.store(reads + 1, Ordering::Relaxed);
                    let u = s.counts.unique_users;
                    assert_eq!(s.counts.clicks, 2 * u);
                    assert_eq!(s.counts.impressions, 3 * u);
                    assert_eq!(s.hour as u64, u % 5);
                    assert!(u >= last, "went backwards: {u} after {last}");
                    last = u;
                    reads += 1;
                }
                reads
            })
        };
        let mut u = 0u64;
        // (Bounded all the same: a reader that never runs fails the test below, not hangs it.)
        while u < 200_000 || (seen.load(Ordering::Relaxed) < 1_000 && u < 200_000_000) {
            u += 1;
            slot.write(&Snapshot {
                hour: (u % 5) as u32,
                counts: Counts {
                    unique_users: u,
                    clicks: 2 * u,
                    impressions: 3 * u,
                },
            });
        }
        stop.store(true, Ordering::Relaxed);
        let reads = reader.join().expect("reader panicked");
        assert!(reads > 0);
    }
}
