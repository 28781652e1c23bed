//! When snapshots are taken, the thread that writes them, and which ones are kept.
//!
//! The writer thread asks [`Snapshots::due`] between batches; when it says so, the writer
//! captures the ring (`RingWriter::begin_capture`, copied a budget of fingerprints per turn) and hands the
//! finished image to [`Snapshots::send`]. A thread of its own serialises and writes it
//! (`snapshot::write`), so the writer never waits for the disk; the result comes back
//! through a channel that [`Snapshots::collect`] drains. The newest two snapshots are kept:
//! if the newest is unreadable at start, the previous one and more of the journal serve.

use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::snapshot;
use crate::late::LateCounts;
use crate::ring::{Leaving, RingImage};

/// At most one "snapshot failed" ERROR per this long; it counts the failures since the last.
pub(super) const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// What the snapshot thread reports of a snapshot written: its position, its users, how long
/// it took, and the newest hour its ring had taken.
type Written = Result<(u64, u64, Duration, u32), String>;

/// How long a snapshot waits for the cold tier to store the hours that left the ring before
/// it (`cold`), and for the late events before it to be counted (`late`), before it fails
/// (and the journal is kept whole).
pub const COLD_WAIT: Duration = Duration::from_secs(30);

/// What a snapshot of a ring with a cold tier waits for: the hours that left before it to
/// be stored, and the late counts at its position. A single server's snapshot thread and the
/// cluster's snapshot store both wait for them.
#[derive(Clone, Debug, Default)]
pub struct Waits {
    pub leaving: Option<Arc<Leaving>>,
    pub late: Option<Arc<LateCounts>>,
}

impl Waits {
    /// Waits for both (at most [`COLD_WAIT`] each), and merges the late counts into `image`.
    pub fn complete(&self, image: &mut RingImage) -> Result<(), String> {
        if let Some(leaving) = &self.leaving {
            wait_for_cold(leaving, image)?;
        }
        if image.late_marked {
            let late = self.late.as_ref().ok_or_else(|| {
                format!(
                    "event {}: late counts owed and nobody counts them",
                    image.covered
                )
            })?;
            late.take_image(image.covered, COLD_WAIT)?.merge_into(image);
        }
        Ok(())
    }
}

/// Waits until the hours that had left the ring when `image` was captured are stored in the
/// cold tier: until then the journal, not the image, holds their users.
fn wait_for_cold(leaving: &Leaving, image: &RingImage) -> Result<(), String> {
    let deadline = Instant::now() + COLD_WAIT;
    loop {
        let stored = leaving.stored_count();
        if stored >= image.left_before {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "event {}: {} hour(s) that left the ring before it are not in the cold tier yet \
                 (their store is failing or stopped: see the server's log)",
                image.covered,
                image.left_before - stored
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[derive(Debug)]
pub(super) struct Snapshots {
    dir: PathBuf,
    /// How often to take one (`None`: only at a graceful stop).
    every: Option<Duration>,
    /// When the last one finished (or failed, or the journal opened).
    last_at: Instant,
    /// The position of the capture under way or being written.
    in_flight: Option<u64>,
    /// Positions of the snapshots on disk, oldest first.
    on_disk: Vec<u64>,
    /// The newest hour each snapshot written by this run had taken, by position.
    newest: std::collections::BTreeMap<u64, u32>,
    /// Failures since the last one logged, and when that was: a disk that stays full fails
    /// every attempt, and one ERROR per [`FAILURE_LOG_EVERY`] says so.
    failures: (u64, Option<Instant>),
    to_thread: Option<mpsc::Sender<(RingImage, Waits)>>,
    /// What a snapshot waits for before it is written (a ring with a cold tier).
    waits: Waits,
    from_thread: mpsc::Receiver<Written>,
    thread: Option<JoinHandle<()>>,
}

impl Snapshots {
    pub(super) fn new(dir: PathBuf, every: Option<Duration>) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let unfinished = snapshot::remove_unfinished(&dir)?;
        if unfinished > 0 {
            tracing::info!(
                files = unfinished,
                "snapshots: removed unfinished temporary files"
            );
        }
        let on_disk = snapshot::list(&dir)?;
        let (to_thread, images) = mpsc::channel::<(RingImage, Waits)>();
        let (results, from_thread) = mpsc::channel::<Written>();
        let thread_dir = dir.clone();
        let thread = std::thread::Builder::new()
            .name("hourtally-snapshot".into())
            .spawn(move || {
                for (mut image, waits) in images {
                    let started = Instant::now();
                    let users = image.slots.iter().map(|s| s.user_count()).sum();
                    let result = waits
                        .complete(&mut image)
                        .and_then(|()| {
                            snapshot::write(&thread_dir, &image)
                                .map_err(|e| format!("event {}: {e}", image.covered))
                        })
                        .map(|_| (image.covered, users, started.elapsed(), image.newest_hour()));
                    if results.send(result).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Self {
            dir,
            every,
            last_at: Instant::now(),
            in_flight: None,
            on_disk,
            newest: std::collections::BTreeMap::new(),
            failures: (0, None),
            to_thread: Some(to_thread),
            waits: Waits::default(),
            from_thread,
            thread: Some(thread),
        })
    }

    /// Whether to begin a capture now, at journal position `next_seq`; if so, that position.
    /// `stopping`: the server stops, so take one if anything is new since the last.
    pub(super) fn due(&mut self, next_seq: u64, stopping: bool) -> Option<u64> {
        if self.in_flight.is_some() || self.on_disk.last().copied().unwrap_or(0) >= next_seq {
            return None;
        }
        let time = self
            .every
            .is_some_and(|every| self.last_at.elapsed() >= every);
        (stopping || time).then(|| {
            self.in_flight = Some(next_seq);
            next_seq
        })
    }

    /// Takes back what [`due`](Self::due) began (the journal could not be made durable up
    /// to its position): the next one is due an interval from now.
    pub(super) fn cancel(&mut self) {
        self.in_flight = None;
        self.last_at = Instant::now();
    }

    /// Snapshots wait for these (see the field).
    pub(super) fn wait_for(&mut self, waits: Waits) {
        self.waits = waits;
    }

    /// Hands a finished capture to the snapshot thread.
    pub(super) fn send(&mut self, image: RingImage) {
        debug_assert_eq!(self.in_flight, Some(image.covered));
        let waits = self.waits.clone();
        let sent = self
            .to_thread
            .as_ref()
            .is_some_and(|t| t.send((image, waits)).is_ok());
        if !sent {
            tracing::error!("snapshot thread is gone; no more snapshots");
            self.in_flight = None;
        }
    }

    /// Takes in what the thread finished; true if a new snapshot is on disk. Deletes all but
    /// the newest two.
    pub(super) fn collect(&mut self) -> bool {
        let mut written = false;
        while let Ok(result) = self.from_thread.try_recv() {
            self.in_flight = None;
            self.last_at = Instant::now();
            match result {
                Ok((covered, users, took, newest)) => {
                    self.newest.insert(covered, newest);
                    tracing::info!(
                        covered,
                        users,
                        took_ms = took.as_millis() as u64,
                        "snapshot written"
                    );
                    self.on_disk.push(covered);
                    self.on_disk.sort_unstable();
                    written = true;
                }
                Err(why) => {
                    self.failures.0 += 1;
                    if self
                        .failures
                        .1
                        .is_none_or(|at| at.elapsed() >= FAILURE_LOG_EVERY)
                    {
                        tracing::error!(
                            reason = %why,
                            failures = self.failures.0,
                            "snapshot failed; the journal is kept whole"
                        );
                        self.failures = (0, Some(Instant::now()));
                    }
                }
            }
        }
        while written && self.on_disk.len() > 2 {
            let old = self.on_disk.remove(0);
            let path = self.dir.join(snapshot::file_name(old));
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(snapshot = %path.display(), error = %e, "cannot delete an old snapshot");
            }
        }
        written
    }

    /// Lets the cold tier go of what no kept snapshot, nor the journal after it, can need:
    /// the files (and late counts) of hours more than the cold retention before the newest
    /// hour of the snapshot at `floor` (the older kept one). A late event after `floor` is
    /// of an hour within the retention of a newest hour at least that one (the apply rule),
    /// so a replay from either kept snapshot never looks for a file removed here. The late
    /// thread removes them (`LateCounts::request_prune`): this runs on the writer.
    pub(super) fn prune_cold(&mut self, floor: u64) {
        self.newest.retain(|&covered, _| covered >= floor);
        if let (Some(late), Some(&newest)) = (&self.waits.late, self.newest.get(&floor)) {
            late.request_prune(newest);
        }
    }

    /// The snapshot at `covered`, on disk, had taken `newest` (the one a start restored: the
    /// later stop's snapshot makes it the floor, `prune_cold`).
    pub(super) fn remember(&mut self, covered: u64, newest: u32) {
        if self.on_disk.contains(&covered) {
            self.newest.insert(covered, newest);
        }
    }

    /// The position below which no kept snapshot needs the journal: the older of the two
    /// kept (`None` while fewer than two exist).
    pub(super) fn floor(&self) -> Option<u64> {
        (self.on_disk.len() >= 2).then(|| self.on_disk[self.on_disk.len() - 2])
    }

    /// Waits for the thread to write what it was given, and ends it.
    pub(super) fn stop(&mut self) {
        drop(self.to_thread.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Snapshots {
    fn drop(&mut self) {
        self.stop();
    }
}
