//! The journal as the writer's [`Sink`]: each batch appended (or refused whole, with
//! `--fsync always`) before it is applied, syncs by the policy when the writer idles, the
//! snapshots it asks for, the collection of what they make needless, and the stop's wait for
//! the disk to take every event answered 204.

use std::fs;
use std::time::Instant;

use super::{record, segment_name, FsyncPolicy, Journal, JournalHealth, STOP_WARN_EVERY};
use crate::event::Event;
use crate::ring::RingImage;
use crate::sync::Ordering;
use crate::writer::Sink;

impl Journal {
    /// Takes in what the snapshot thread finished, and deletes what the snapshots make
    /// needless: all but the newest two snapshots, and the segments older than the older of
    /// those two (kept so that a corrupt newest snapshot can fall back on the previous one).
    fn collect_snapshots(&mut self) {
        if !self.snapshots.collect() {
            return;
        }
        let Some(floor) = self.snapshots.floor() else {
            return;
        };
        self.snapshots.prune_cold(floor);
        while self.segments.len() > 1 && self.segments[1] <= floor {
            let first = self.segments.remove(0);
            let path = self.dir.join(segment_name(first));
            match fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(segment = %path.display(), "journal: deleted a segment every kept snapshot covers")
                }
                Err(e) => {
                    tracing::warn!(segment = %path.display(), error = %e, "journal: cannot delete a covered segment")
                }
            }
        }
    }
}

impl Journal {
    /// Whether failed writes wait to be retried (kept in memory, or written and not synced).
    fn holds_failed_writes(&self) -> bool {
        self.health.failing() && (!self.pending.is_empty() || self.unsynced)
    }

    /// Tells the edge whether failed writes wait (`JournalHealth::holding`).
    fn note_holding(&self) {
        let holding = self.holds_failed_writes();
        if holding != self.health.holding() {
            // Relaxed: see `JournalHealth::holding`.
            self.health.holding.store(holding, Ordering::Relaxed);
        }
    }
}

impl Sink for Journal {
    fn batch(&mut self, events: &[Event], refusable: bool) -> bool {
        let kept = if refusable && self.policy == FsyncPolicy::Always {
            self.append_or_refuse(events)
        } else {
            self.append(events);
            true
        };
        self.collect_snapshots();
        self.note_holding();
        kept
    }

    fn snapshot_due(&mut self, stopping: bool) -> Option<u64> {
        let covered = self.snapshots.due(self.next_seq, stopping)?;
        // A snapshot never covers a journal write that is not on disk, whatever `--fsync`
        // says: else a power loss could leave a journal that ends before its snapshot.
        self.write_pending();
        self.sync();
        if !self.pending.is_empty() || self.unsynced {
            self.snapshots.cancel();
            return None;
        }
        Some(covered)
    }

    fn snapshot(&mut self, image: RingImage) {
        self.snapshots.send(image);
    }

    fn durable(&mut self, k: u64) {
        if let Some(waiters) = &self.waiters {
            waiters.wake(k);
        }
    }

    fn idle(&mut self, deep: bool) {
        self.write_pending();
        self.collect_snapshots();
        match self.policy {
            FsyncPolicy::Always => self.sync(),
            FsyncPolicy::Interval(every) if deep || self.last_sync.elapsed() >= every => {
                self.sync()
            }
            _ => {}
        }
        self.note_holding();
    }

    fn finish(&mut self) {
        // Every event here was answered 204: a stop does not end while the disk refuses
        // them. It retries, says so every STOP_WARN_EVERY, and gives up only when told to
        // (a second signal), counting what it gave up.
        let mut warned: Option<Instant> = None;
        loop {
            self.write_pending();
            self.sync();
            if self.pending.is_empty() && !self.unsynced {
                break;
            }
            let waiting = record::count_events(&self.pending);
            if self.health.giving_up() {
                JournalHealth::add(&self.health.lost, waiting);
                tracing::error!(
                    events = waiting,
                    "journal: stopping without writing {waiting} events answered 204 (told to \
                     give up on the disk): they are lost"
                );
                break;
            }
            if warned.is_none_or(|at| at.elapsed() >= STOP_WARN_EVERY) {
                tracing::warn!(
                    events = waiting,
                    "journal: stopping, but the disk refuses events answered 204; retrying \
                     until it takes them. Free space, or send a second SIGTERM or Ctrl-C to \
                     give up on them (they will be lost)"
                );
                warned = Some(Instant::now());
            }
            std::thread::sleep(crate::writer::STALLED_NAP);
        }
        self.snapshots.stop();
        self.collect_snapshots();
    }

    fn stalled(&self) -> bool {
        // Something to retry. (A refused group leaves nothing: writes are failing, but the
        // next group is the next try.)
        self.holds_failed_writes()
    }

    fn unsynced(&self) -> bool {
        // `always` synced every batch; `never` leaves it to the OS.
        matches!(self.policy, FsyncPolicy::Interval(_)) && self.unsynced
    }
}
