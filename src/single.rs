//! A single server (no `--nats`): its queue, when its POSTs get their answers, and its
//! recovery, which replays the journal on the writer thread and hands the writer the journal
//! as its sink.

use std::time::Duration;

use crate::ack::{Ack, DurableWaiters};
use crate::config::Config;
use crate::ingest::Ingest;
use crate::journal::{snapshot, DataDir, FsyncPolicy, Journal, JournalHealth};
use crate::late::LateCounts;
use crate::ring::RingWriter;
use crate::start::{Applying, Mode, Recovery, StartError};
use crate::sync::Arc;

/// Most events in one writer batch with `--fsync always` (one `fdatasync` each).
pub const ALWAYS_BATCH: usize = 16 * 1024;

/// A single server's mode: the writer applies the queue the edge pushes into, journaling
/// every batch first (unless ephemeral: `data` is `None`).
pub fn start(
    config: &Config,
    data: Option<DataDir>,
    late: Option<Arc<LateCounts>>,
) -> Result<Mode, StartError> {
    let policy = config.fsync_policy();
    let always = data.is_some() && policy == FsyncPolicy::Always;
    let mut ingest = Ingest::new(config.queue_capacity);
    if always {
        // A source per connection slot (1-based), so that a group the disk refuses is
        // answered 503 to exactly the POSTs whose events it held.
        ingest = ingest.with_refusals(config.max_connections + 1);
    }
    let ingest = Arc::new(ingest);
    let health = Arc::new(JournalHealth::default());
    let waiters = Arc::new(DurableWaiters::default());
    Ok(Mode {
        posts: ingest.clone(),
        applied: ingest,
        ack: if always {
            Ack::synced(waiters.clone())
        } else {
            Ack::queued()
        },
        journal: data.is_some().then(|| health.clone()),
        log: None,
        recovery: Box::new(Replay {
            data,
            late,
            policy,
            snapshot_every: config.snapshot_every(),
            segment_bytes: config.journal_segment_bytes,
            health,
            waiters,
            always,
        }),
    })
}

/// A single server's recovery: its data directory's newest snapshot and journal.
struct Replay {
    data: Option<DataDir>,
    /// The late events' counts, to take back a snapshot's late users.
    late: Option<Arc<LateCounts>>,
    policy: FsyncPolicy,
    snapshot_every: Option<Duration>,
    segment_bytes: u64,
    health: Arc<JournalHealth>,
    waiters: Arc<DurableWaiters>,
    always: bool,
}

impl Recovery for Replay {
    fn recover(self: Box<Self>, ring: &mut RingWriter) -> Result<Option<Applying>, StartError> {
        let Replay {
            data,
            late,
            policy,
            snapshot_every,
            segment_bytes,
            health,
            waiters,
            always,
        } = *self;
        let Some(mut data) = data else {
            // Ephemeral: nothing to recover, nothing to journal.
            return Ok(Some(Applying {
                sink: None,
                durable_cuts: None,
                ready: true,
                hold: None,
            }));
        };
        let journal = recover(
            &mut data,
            policy,
            snapshot_every,
            health,
            ring,
            late.as_deref(),
        )?
        .with_cold_tier(ring.ring().leaving().cloned(), late)
        .with_segment_bytes(segment_bytes)
        .with_waiters(waiters);
        Ok(Some(Applying {
            sink: Some(Box::new(journal)),
            // One fdatasync covers a batch: let batches grow while it runs.
            durable_cuts: always.then_some(ALWAYS_BATCH),
            ready: true,
            hold: Some(data),
        }))
    }
}

/// Restores the newest readable snapshot in `data` (falling back on older ones), replays the
/// journal after it into `ring_writer`, publishes the result, and logs what it found. A
/// journal that cannot be read is an error (the server stops with it): serving with part of
/// the acknowledged events missing would answer wrong counts.
fn recover(
    data: &mut DataDir,
    policy: FsyncPolicy,
    snapshot_every: Option<Duration>,
    health: Arc<JournalHealth>,
    ring_writer: &mut RingWriter,
    late: Option<&LateCounts>,
) -> Result<Journal, StartError> {
    let started = std::time::Instant::now();
    let dir = data.path().to_path_buf();
    let fail = |what: &'static str, e: &dyn std::fmt::Display| StartError::Recover {
        what,
        dir: dir.clone(),
        reason: e.to_string(),
    };
    let snapshots = data.path().join("snapshots");
    let (image, skipped) = match snapshot::load_newest(&snapshots) {
        Ok(found) => found,
        Err(e) => return Err(fail("the snapshots", &e)),
    };
    for why in &skipped {
        tracing::warn!(reason = %why, "snapshot unreadable; falling back on an older one and more of the journal");
    }
    // The restored snapshot's position and newest hour (the cold tier's retention).
    let mut restored = None;
    let from = match &image {
        Some(image) => {
            if let Err(e) = ring_writer.restore(image) {
                return Err(fail("the snapshot", &e));
            }
            restored = Some((image.covered, ring_writer.newest()));
            match late {
                Some(late) => late.restore(&image.late),
                None if !image.late.is_empty() => {
                    return Err(fail(
                        "the snapshot",
                        &"it holds late events' users, and this server counts no late events \
                          (it keeps no cold tier: --cold-retention-hours 0?)",
                    ))
                }
                None => {}
            }
            image.covered
        }
        None => 0,
    };
    match Journal::open(data, policy, snapshot_every, health, from, |e| {
        ring_writer.apply(e);
    }) {
        Ok((journal, recovery)) => {
            if let Err(e) = data.stamp() {
                return Err(fail("the data directory's meta", &e));
            }
            ring_writer.publish();
            if let Some((bytes, why)) = &recovery.cut {
                tracing::warn!(bytes, reason = %why, "journal: cut off a torn or corrupt tail (never applied)");
            }
            tracing::info!(
                data_dir = %dir.display(),
                snapshot_covers = from,
                segments = recovery.segments,
                events = recovery.events,
                hours_in_ring = ring_writer.user_sets().count(),
                archived_hours = ring_writer.ring().archive().len(),
                sealed_drops = ring_writer.ring().sealed_drops(),
                took_ms = started.elapsed().as_millis() as u64,
                "recovered"
            );
            Ok(match restored {
                Some((covered, newest)) => journal.restored_from(covered, newest),
                None => journal,
            })
        }
        Err(e) => Err(fail("the journal", &e)),
    }
}
