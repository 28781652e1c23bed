//! The cold tier: the users of the hours that left the ring, one checksummed file per hour in
//! the data directory, read on demand; only an index of the files is in memory.
//!
//! ```text
//! {data dir}/cold/{hour:010}.hcs    one hour's users: a cold set (`coldset`, the HTCS bytes)
//! ```
//!
//! How an hour gets here: when its slot is recycled, the ring's writer hands its users to
//! [`Leaving`] (in memory; a union reads them there); the freezing thread then
//! sorts them into a [`ColdSet`] and writes its file durably ([`ColdTier::store_leaving`],
//! `durable::write_atomically`), files it in the index and only then lets the hour leave
//! `Leaving`. So a union always finds an hour's users, in the ring, in `Leaving` or here.
//!
//! A snapshot stands in for the journal only once every hour that left before it is stored
//! (`journal::snapshotter` waits for that): the journal, not the snapshot, holds those hours'
//! events, so a crash before a file is written replays them, the hour leaves the ring again
//! and is stored then (over any file an earlier run left: the ring's users are the truth).
//!
//! A file is mapped read-only (`ColdSet::map_file`: page cache, never a heap copy) and checked
//! whole (checksum, structure, and its count of users against the hour's archived total)
//! before it is read; for a range ([`ColdTier::load_for_union`]) the order of its values and
//! its checksum are checked by the union as it reads them. A damaged file fails the range with what
//! is wrong ([`ColdFault`]), never a wrong count. A full disk fails a store: the hour stays in
//! `Leaving` (memory) and the store is tried again, which never holds up the writer.
//!
//! Retention: an hour's file is removed once the older of the two kept snapshots had taken an
//! hour more than `--cold-retention-hours` after it ([`ColdTier::prune`], on the late thread
//! as the snapshots move on: a late event a replay from a kept snapshot could count
//! is never of a removed hour); its totals stay in the archive as before. `--ephemeral` (no data directory) keeps no cold
//! tier. A store that keeps failing for a reason other than room (a read-only directory)
//! holds every later hour in memory, and snapshots wait for it: the server's log says so
//! once a minute, `hourtally_cold_store_failures_total` counts it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::coldset::{ColdSet, ColdSetError};
use crate::ring::freeze::sorted_users;
use crate::ring::Leaving;
use crate::sync::{AtomicU64, Ordering, RwLock};

/// Default `--cold-retention-hours`: 30 days.
pub const DEFAULT_RETENTION_HOURS: u32 = 30 * 24;

/// At most one "cold tier: store failed" ERROR per this long; it counts the failures since.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// The file name of `hour`'s cold set.
pub fn file_name(hour: u32) -> String {
    format!("{hour:010}.hcs")
}

/// Why an hour's file in the cold tier could not be read back whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ColdFault {
    #[error("{0}")]
    Read(io::ErrorKind),
    #[error("{0}")]
    Damaged(ColdSetError),
    #[error("holds {found} users, but its hour counted {expected}")]
    Count { found: u64, expected: u64 },
}

/// Why a file fetched for the cold tier was not taken in ([`ColdTier::adopt`]).
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("the fetched file {0}")]
    Fault(ColdFault),
    #[error("cannot write it: {0}")]
    Write(io::Error),
}

/// The cold tier of one data directory.
#[derive(Debug)]
pub struct ColdTier {
    dir: PathBuf,
    /// Hours kept, counted back from the newest hour the ring has taken.
    retention_hours: u32,
    /// Hour → size of its file in bytes: every file of the directory (what is in memory).
    index: RwLock<BTreeMap<u32, u64>>,
    /// The index's hours and bytes, for `/metrics` (read without the lock).
    hours: AtomicU64,
    bytes: AtomicU64,
    /// Stores that failed (a full disk, an I/O error), since start.
    failures: AtomicU64,
    /// Failures not yet logged, and when the last ERROR was.
    unlogged: RwLock<(u64, Option<Instant>)>,
}

impl ColdTier {
    /// Opens (making it if need be) the cold tier in `dir`: removes unfinished files and
    /// indexes the others by name. Reads no file's contents.
    pub fn open(dir: &Path, retention_hours: u32) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        if let Some(parent) = dir.parent() {
            crate::durable::sync_dir(parent)?;
        }
        crate::durable::remove_unfinished(dir)?;
        let mut index = BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let Some(hour) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".hcs"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            index.insert(hour, entry.metadata()?.len());
        }
        let tier = Self {
            dir: dir.to_path_buf(),
            retention_hours,
            index: RwLock::new(BTreeMap::new()),
            hours: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            unlogged: RwLock::new((0, None)),
        };
        tier.edit_index(|i| *i = index);
        Ok(tier)
    }

    /// Changes the index under its lock, and its figures with it.
    fn edit_index<R>(&self, f: impl FnOnce(&mut BTreeMap<u32, u64>) -> R) -> R {
        self.index.with_write(|i| {
            let r = f(i);
            // Relaxed: statistics for `/metrics`; nothing is read through them.
            self.hours.store(i.len() as u64, Ordering::Relaxed);
            self.bytes.store(i.values().sum(), Ordering::Relaxed);
            r
        })
    }

    /// The directory of the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Hours stored and the bytes of their files. Never waits (a coroutine may call it).
    pub fn figures(&self) -> (u64, u64) {
        // Relaxed: statistics, each as of some edit of the index.
        (
            self.hours.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// Whether the tier has a file of `hour`, if that can be told without waiting for the
    /// index's lock (a coroutine may ask).
    pub fn try_has(&self, hour: u32) -> Option<bool> {
        self.index.try_with_read(|i| i.contains_key(&hour))
    }

    /// The hours the tier has files of, oldest first.
    pub fn hours(&self) -> Vec<u32> {
        self.index.with_read(|i| i.keys().copied().collect())
    }

    /// The bytes of `hour`'s file, as stored (a cluster's server uploads them for the
    /// servers that catch up from its snapshots).
    pub fn read_file(&self, hour: u32) -> io::Result<Vec<u8>> {
        fs::read(self.dir.join(file_name(hour)))
    }

    /// Takes in `bytes` as `hour`'s file (fetched from the cluster's object store): checked
    /// whole, and its users against `expected`, before it is written durably and indexed.
    pub fn adopt(&self, hour: u32, bytes: &[u8], expected: u64) -> Result<(), AdoptError> {
        let set = ColdSet::parse(bytes).map_err(|e| AdoptError::Fault(ColdFault::Damaged(e)))?;
        if set.len() != expected {
            return Err(AdoptError::Fault(ColdFault::Count {
                found: set.len(),
                expected,
            }));
        }
        crate::durable::write_atomically(&self.dir, &file_name(hour), bytes)
            .map_err(AdoptError::Write)?;
        self.edit_index(|i| i.insert(hour, bytes.len() as u64));
        Ok(())
    }

    /// Marks the tier as the files of the stream `identity` (a cluster's: its creation time),
    /// in `cold/stream`. Files of another stream (one deleted and re-created under the same
    /// name) are removed first; returns how many. A tier that names no stream yet keeps its
    /// files (a server that kept none before, or a single server's directory).
    pub fn claim(&self, identity: &str) -> io::Result<usize> {
        const NAME: &str = "stream";
        let removed = match fs::read_to_string(self.dir.join(NAME)) {
            Ok(was) if was.trim() == identity => return Ok(0),
            Ok(_) => {
                let hours = self.hours();
                for &hour in &hours {
                    self.edit_index(|i| i.remove(&hour));
                    match fs::remove_file(self.dir.join(file_name(hour))) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                hours.len()
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        crate::durable::write_atomically(&self.dir, NAME, format!("{identity}\n").as_bytes())?;
        Ok(removed)
    }

    /// Stores that failed since start.
    pub fn failures(&self) -> u64 {
        // Relaxed: a statistic.
        self.failures.load(Ordering::Relaxed)
    }

    /// Whether `hour` is within the retention once the ring has taken `newest`.
    pub fn keeps(&self, hour: u32, newest: u32) -> bool {
        u64::from(hour) + u64::from(self.retention_hours) >= u64::from(newest)
    }

    /// Writes `set` as `hour`'s file, durably, and files it in the index.
    pub fn store(&self, hour: u32, set: &ColdSet) -> io::Result<()> {
        let bytes = set.to_bytes();
        crate::durable::write_atomically(&self.dir, &file_name(hour), &bytes)?;
        self.edit_index(|i| i.insert(hour, bytes.len() as u64));
        Ok(())
    }

    /// `hour`'s users, read and checked against `expected` users; `Ok(None)` if the tier
    /// has no file for it. The fault is of the file `cold/{file_name(hour)}`.
    pub fn load(&self, hour: u32, expected: u64) -> Result<Option<ColdSet>, ColdFault> {
        self.load_checking(hour, expected, true)
    }

    /// [`load`](Self::load) for a union (`coldset::union_count`), which checks the values'
    /// order and the file's checksum as it reads them: the file's every other check, here.
    pub fn load_for_union(&self, hour: u32, expected: u64) -> Result<Option<ColdSet>, ColdFault> {
        self.load_checking(hour, expected, false)
    }

    fn load_checking(
        &self,
        hour: u32,
        expected: u64,
        order: bool,
    ) -> Result<Option<ColdSet>, ColdFault> {
        if self.index.with_read(|i| !i.contains_key(&hour)) {
            return Ok(None);
        }
        let file = match fs::File::open(self.dir.join(file_name(hour))) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Removed since the look at the index (retention).
                return Ok(None);
            }
            Err(e) => return Err(ColdFault::Read(e.kind())),
        };
        // Mapped, not read into the heap: a range over many hours holds page cache.
        // SAFETY: this process writes the cold tier's files only by renaming a new file over
        // an old one (`store`) and removes them by unlinking (`prune`): neither changes the
        // pages of a file it mapped. Nobody else may edit `cold/` in place while the server
        // runs (README, "Durability").
        let mapped = unsafe {
            if order {
                ColdSet::map_file(&file)
            } else {
                ColdSet::map_file_for_union(&file)
            }
        };
        let set = match mapped {
            Ok(Ok(set)) => set,
            Ok(Err(damage)) => return Err(ColdFault::Damaged(damage)),
            Err(e) => return Err(ColdFault::Read(e.kind())),
        };
        if set.len() != expected {
            // A set mapped for a union has its checksum still to compare: damage first.
            if !set.sum_fits() {
                return Err(ColdFault::Damaged(ColdSetError::Checksum));
            }
            return Err(ColdFault::Count {
                found: set.len(),
                expected,
            });
        }
        Ok(Some(set))
    }

    /// Removes the files of hours past the retention once the ring has taken `newest`, and
    /// returns those hours (out of the index, so gone for readers) with the first error met
    /// (a file left behind is only space). The late thread calls it when the older kept
    /// snapshot moves on (`late::LateCounts::request_prune`), with that snapshot's newest
    /// hour: no replay from a kept snapshot can then count a late event of a removed hour.
    pub fn prune(&self, newest: u32) -> (Vec<u32>, Option<io::Error>) {
        let old: Vec<u32> = self.index.with_read(|i| {
            i.keys()
                .copied()
                .take_while(|&h| !self.keeps(h, newest))
                .collect()
        });
        let mut error = None;
        for &hour in &old {
            // Out of the index first: a union that finds it there and then not on disk
            // treats it as gone, as it is.
            self.edit_index(|i| i.remove(&hour));
            match fs::remove_file(self.dir.join(file_name(hour))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        if !old.is_empty() {
            if let Err(e) = crate::durable::sync_dir(&self.dir) {
                error.get_or_insert(e);
            }
        }
        (old, error)
    }

    /// Stores every hour waiting in `leaving`, oldest first, each before it leaves
    /// `leaving`; an hour already past the retention is let go unstored. Returns `true` when
    /// none is left; `false` after a store failed (logged at most once a minute), to be
    /// tried again later.
    pub fn store_leaving(&self, leaving: &Leaving) -> bool {
        while let Some(left) = leaving.front() {
            if self.keeps(left.hour, left.taken_by) {
                let set = sorted_users(&left.members, left.counts.unique_users);
                if let Err(e) = self.store(left.hour, &set) {
                    self.failed(left.hour, &e);
                    return false;
                }
            }
            leaving.stored();
        }
        true
    }

    fn failed(&self, hour: u32, e: &io::Error) {
        // Relaxed: a statistic.
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.unlogged.with_write(|unlogged| {
            unlogged.0 += 1;
            if unlogged.1.is_none_or(|at| at.elapsed() >= FAILURE_LOG_EVERY) {
                tracing::error!(
                    hour_start_ms = u64::from(hour) * crate::event::MILLIS_PER_HOUR,
                    error = %e,
                    failures = unlogged.0,
                    dir = %self.dir.display(),
                    "cold tier: could not store an hour's users; they stay in memory and the store is tried again"
                );
                *unlogged = (0, Some(Instant::now()));
            }
        });
    }
}

#[cfg(test)]
#[path = "cold_tests.rs"]
mod tests;
