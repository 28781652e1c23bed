//! The journal: every accepted event, on disk, in the order the writer applies them.
//!
//! One server keeps its data in a directory (`--data-dir`):
//!
//! ```text
//! hourtally-data/
//!   LOCK                       flock'd while a server runs (so is the directory itself):
//!                              a second one refuses to start
//!   meta                       format version and --retention-hours (checked at start;
//!                              written once the first start has succeeded)
//!   journal/00000000000000000000.htj   segments, named by their first event's position
//! ```
//!
//! The writer thread hands every batch it takes off the queue to [`Journal::append`] before
//! applying it, so the journal order is the apply order; one write per batch (group commit)
//! and, by `--fsync`, one `fdatasync` per `--fsync-interval` (`interval`) or none (`never`).
//! At start, [`Journal::open`] replays every segment into the ring (the apply rule reads no
//! clock, so the replay rebuilds the same state) and cuts off a torn or corrupt tail.
//!
//! What a crash can lose (README, "Durability"): events still in the queue, and with
//! `interval` at most `--fsync-interval` of journal writes; with `never`, whatever the OS had
//! not written back. A graceful stop loses nothing: the writer drains the queue and syncs.
//!
//! Disk trouble: a failed write is rolled back to the last whole group and kept in memory
//! (up to [`MAX_PENDING_BYTES`]); while it is failing, [`JournalHealth`] makes the edge refuse
//! POSTs with 503, and every later batch first retries what is pending, so the journal heals
//! by itself when space returns. With `--fsync always` and every event's connection known,
//! a group the disk will not take is refused instead (taken back whole; its POSTs get 503),
//! nothing is held, and the edge goes on admitting POSTs: the next group is the next try.

mod dir;
mod open;
mod sink;
pub mod snapshot;
mod snapshotter;

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::ack::DurableWaiters;
use crate::durable::sync_dir;
use crate::record::{self, encode_group};
pub use dir::{DataDir, DataDirError};
use snapshotter::Snapshots;
pub use snapshotter::{Waits, COLD_WAIT};

use crate::event::Event;
use crate::late::LateCounts;
use crate::ring::Leaving;
use crate::sync::{Arc, AtomicBool, AtomicU64, Ordering};

/// A segment is closed and a new one begun past this size.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// Most bytes of failed writes kept in memory to retry; past it, events are lost (and
/// counted): by then POSTs have long been refused.
pub const MAX_PENDING_BYTES: usize = 64 << 20;
/// While a stop waits for the disk, one WARN per this long says so.
pub const STOP_WARN_EVERY: Duration = Duration::from_secs(5);
/// Default `--fsync-interval`.
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_millis(100);

/// When the journal is flushed to stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every batch, before its POSTs are answered (`--fsync always`).
    Always,
    /// `fdatasync` at most this long after a write, and once the queue has stayed empty for
    /// [`QUIET`](crate::writer::QUIET) (1 ms): a quiet server does not wait out the interval.
    Interval(Duration),
    /// Never: the OS writes back when it likes (a crash of the machine loses that much).
    Never,
}

/// What the rest of the server sees of the journal.
#[derive(Debug, Default)]
pub struct JournalHealth {
    /// Set while writes fail; the edge refuses POSTs with 503 meanwhile.
    failing: AtomicBool,
    /// Write or sync errors so far.
    errors: AtomicU64,
    /// Events lost because more failed writes were pending than memory allows.
    lost: AtomicU64,
    /// Bytes written to the journal since start.
    bytes: AtomicU64,
    /// `fdatasync` calls since start.
    syncs: AtomicU64,
    /// Set by a second stop signal: a stop that waits for the disk gives up on what it could
    /// not write (and counts it in `lost`).
    give_up: AtomicBool,
    /// Set while the journal holds failed writes to retry (kept in memory, or written and
    /// not synced): with `--fsync always`, POSTs are refused at the edge meanwhile, as
    /// their groups could only queue behind them.
    holding: AtomicBool,
}

impl JournalHealth {
    /// Whether writes are failing now.
    pub fn failing(&self) -> bool {
        // Relaxed: a hint for the edge; the writer decides with its own state.
        self.failing.load(Ordering::Relaxed)
    }

    /// `(errors, events lost, bytes written, syncs)` so far.
    pub fn figures(&self) -> (u64, u64, u64, u64) {
        // Relaxed: statistics.
        (
            self.errors.load(Ordering::Relaxed),
            self.lost.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.syncs.load(Ordering::Relaxed),
        )
    }

    /// Events answered `204` that will never be counted: dropped past
    /// [`MAX_PENDING_BYTES`], or given up at a stop. `main` exits non-zero when any were.
    pub fn lost(&self) -> u64 {
        // Relaxed: read after the writer thread was joined (or as a statistic).
        self.lost.load(Ordering::Relaxed)
    }

    /// Whether the journal holds failed writes to retry (see the field).
    pub fn holding(&self) -> bool {
        // Relaxed: a hint for the edge, as `failing` is.
        self.holding.load(Ordering::Relaxed)
    }

    /// A stop that waits for the disk should give up now (a second stop signal).
    pub fn give_up(&self) {
        // Relaxed: a request polled by the writer between retries; nothing is published
        // through it.
        self.give_up.store(true, Ordering::Relaxed);
    }

    fn giving_up(&self) -> bool {
        // Relaxed: see `give_up`.
        self.give_up.load(Ordering::Relaxed)
    }

    fn add(counter: &AtomicU64, n: u64) {
        // Relaxed: a statistic, written by the writer thread alone.
        counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

/// What recovery found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segments read.
    pub segments: usize,
    /// Events replayed.
    pub events: u64,
    /// Bytes cut off the tail (a torn or corrupt last group), and why.
    pub cut: Option<(u64, String)>,
}

/// The journal, open for appending; owned by the writer thread.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    /// First positions of the segments on disk, oldest first; the last is being appended to.
    segments: Vec<u64>,
    /// Snapshots: where they go, how often, and the thread that writes them.
    snapshots: Snapshots,
    /// The segment being appended to.
    file: File,
    /// Size past which a segment is closed and the next begun.
    segment_bytes: u64,
    /// POSTs waiting for their batch to be on disk (`--fsync always`).
    waiters: Option<Arc<DurableWaiters>>,
    /// Its length: every byte below it is a whole, valid group.
    len: u64,
    /// Position of the next event.
    next_seq: u64,
    policy: FsyncPolicy,
    /// Bytes written and not yet synced.
    unsynced: bool,
    last_sync: Instant,
    /// Groups encoded and not yet written (a failed write keeps them here).
    pending: Vec<u8>,
    health: Arc<JournalHealth>,
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.htj")
}

impl Journal {
    /// Wakes `waiters` as durable cuts complete (`--fsync always`).
    pub fn with_waiters(mut self, waiters: Arc<DurableWaiters>) -> Self {
        self.waiters = Some(waiters);
        self
    }

    /// Takes snapshots only once the hours that left `leaving`'s ring before each are stored
    /// in the cold tier (`cold`), and the late events before each are counted (`late`): the
    /// journal holds their events until then. Also has `late` remove the files of hours past
    /// the cold retention as the kept snapshots move on (`Snapshots::prune_cold`).
    pub fn with_cold_tier(
        mut self,
        leaving: Option<Arc<Leaving>>,
        late: Option<Arc<LateCounts>>,
    ) -> Self {
        self.snapshots
            .wait_for(snapshotter::Waits { leaving, late });
        self
    }

    /// The snapshot this start restored (at `covered`) had taken `newest`: when a later
    /// snapshot makes it the older kept one, the cold tier's retention moves on from it.
    pub fn restored_from(mut self, covered: u64, newest: u32) -> Self {
        self.snapshots.remember(covered, newest);
        self
    }

    /// Closes segments past `bytes` instead of [`SEGMENT_BYTES`].
    pub fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Position of the next event (events journaled since the journal began).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Encodes `events` as one group and writes it (with anything pending before it).
    pub fn append(&mut self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        if self.pending.len() > MAX_PENDING_BYTES {
            JournalHealth::add(&self.health.lost, events.len() as u64);
        } else {
            encode_group(&mut self.pending, self.next_seq, events);
        }
        self.next_seq += events.len() as u64;
        self.write_pending();
        if self.policy == FsyncPolicy::Always {
            self.sync();
        }
        if let FsyncPolicy::Interval(every) = self.policy {
            if self.unsynced && self.last_sync.elapsed() >= every {
                self.sync();
            }
        }
    }

    /// `--fsync always`, every event's connection able to be told: appends `events` as one
    /// group and syncs it, or, if the disk will not take it, takes it back whole (the file
    /// cut back to where the group began, and that cut synced) and returns `false`: the group
    /// is refused, never written, never replayed. When it cannot be taken back for certain,
    /// it is kept instead (`true`), as [`append`](Self::append) keeps a failed write: if the
    /// cut failed, the file still holds what it held (the group written and unsynced, or
    /// pending); if the cut's sync failed, the group may still be on disk, so it is pending
    /// again, to be written where it began with the same numbers. Its POSTs then wait for the
    /// disk, as they did before refusals.
    fn append_or_refuse(&mut self, events: &[Event]) -> bool {
        if !self.pending.is_empty() || self.unsynced {
            // An earlier failure is still being retried: this group goes after it.
            self.append(events);
            return true;
        }
        let (segments, len, next_seq) = (self.segments.len(), self.len, self.next_seq);
        self.append(events);
        if self.pending.is_empty() && !self.unsynced {
            return true;
        }
        // A new segment begun for this group starts empty: cut back to its start.
        let back_to = if self.segments.len() == segments {
            len
        } else {
            0
        };
        if let Err(e) = self.file.set_len(back_to) {
            self.failed("take back a refused group", &e);
            return true;
        }
        // The file ends where the group began; every byte before it was synced.
        self.len = back_to;
        self.unsynced = false;
        self.pending.clear();
        match self.file.sync_data() {
            Ok(()) => {
                self.next_seq = next_seq;
                false
            }
            Err(e) => {
                // The cut may not have reached the disk, and the group with it may have.
                encode_group(&mut self.pending, next_seq, events);
                self.failed("take back a refused group", &e);
                true
            }
        }
    }

    /// Writes what is pending; on failure rolls the file back to its last whole group and
    /// keeps the bytes for the next try.
    fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.len >= self.segment_bytes {
            if let Err(e) = self.roll() {
                self.failed("start a new segment", &e);
                return;
            }
        }
        // At `len` whatever the file's cursor says (a cursor moved by a write that failed, or
        // left behind by a cut back, never misplaces a group).
        match self.file.write_all_at(&self.pending, self.len) {
            Ok(()) => {
                self.len += self.pending.len() as u64;
                JournalHealth::add(&self.health.bytes, self.pending.len() as u64);
                self.pending.clear();
                self.unsynced = true;
                // With `always` the sync decides (a disk that takes writes but fails every
                // sync would flip the flag, and log, once per group).
                if self.health.failing() && self.policy != FsyncPolicy::Always {
                    // Relaxed: see `JournalHealth::failing`.
                    self.health.failing.store(false, Ordering::Relaxed);
                    tracing::warn!("journal writes succeed again");
                }
            }
            Err(e) => {
                // A partial write leaves part of a group: cut back to the last whole one.
                let _ = self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(drop));
                self.failed("write", &e);
            }
        }
    }

    fn failed(&mut self, what: &str, e: &io::Error) {
        JournalHealth::add(&self.health.errors, 1);
        if !self.health.failing() {
            // Relaxed: see `JournalHealth::failing`.
            self.health.failing.store(true, Ordering::Relaxed);
            tracing::error!(
                error = %e,
                pending_bytes = self.pending.len(),
                "journal {what} failed: POSTs are refused (503) until it succeeds again"
            );
        }
    }

    /// Closes the current segment (synced) and begins the next, named by the position of the
    /// first pending group (called only with groups pending).
    fn roll(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        let first = record::first_seq(&self.pending).unwrap_or(self.next_seq);
        let path = self.dir.join(segment_name(first));
        self.file = OpenOptions::new().create(true).append(true).open(&path)?;
        self.len = 0;
        self.segments.push(first);
        sync_dir(&self.dir)?;
        Ok(())
    }

    /// `fdatasync` of what was written.
    pub fn sync(&mut self) {
        if !self.unsynced {
            return;
        }
        match self.file.sync_data() {
            Ok(()) => {
                self.unsynced = false;
                JournalHealth::add(&self.health.syncs, 1);
                if self.pending.is_empty() && self.health.failing() {
                    // Relaxed: see `JournalHealth::failing`.
                    self.health.failing.store(false, Ordering::Relaxed);
                    tracing::warn!("journal syncs succeed again");
                }
            }
            Err(e) => self.failed("sync", &e),
        }
        self.last_sync = Instant::now();
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
