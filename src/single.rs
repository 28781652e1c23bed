//! A single server's wiring (no `--nats`): the writer thread recovers the journal, then
//! applies the queue the edge pushes into, journaling every batch before applying it.

use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::ack::{Ack, DurableWaiters};
use crate::config::Config;
use crate::http::Service;
use crate::journal::{snapshot, DataDir, FsyncPolicy, Journal, JournalHealth};
use crate::ring::{Ring, RingWriter};
use crate::server::ALWAYS_BATCH;
use crate::sync::Arc;
use crate::writer::{Ingest, Writer};

/// Wires a single server (no `--nats`): the writer recovers the journal in `data` (unless
/// ephemeral), then applies the queue the edge pushes into, journaling every batch first.
pub fn start(
    config: &Config,
    data: Option<DataDir>,
    ring: Arc<Ring>,
    ingest: Arc<Ingest>,
    service: Service,
) -> io::Result<(Arc<Service>, JoinHandle<RingWriter>)> {
    let health = Arc::new(JournalHealth::default());
    let mut service = service;
    let always = data.is_some() && config.fsync_policy() == FsyncPolicy::Always;
    let waiters = Arc::new(DurableWaiters::default());
    if data.is_some() {
        service = service.with_journal(health.clone());
    }
    if always {
        service = service.with_ack(Ack::synced(waiters.clone()));
    }
    let service = Arc::new(service);
    let writer = {
        let (service, policy) = (service.clone(), config.fsync_policy());
        let snapshot_every = config.snapshot_every();
        let segment_bytes = config.journal_segment_bytes;
        let idle = config.writer_idle();
        std::thread::Builder::new()
            .name("hourtally-writer".into())
            .spawn(move || {
                crate::thread::enter_writer(idle);
                let mut ring_writer = RingWriter::new(ring);
                let mut data = data;
                let journal = data.as_mut().map(|data| {
                    recover(data, policy, snapshot_every, health, &mut ring_writer)
                        .with_segment_bytes(segment_bytes)
                        .with_waiters(waiters)
                });
                let mut writer = Writer::new(ingest, ring_writer).with_idle(idle);
                if crate::metrics::ENABLED {
                    writer = writer.with_stats(service.metrics.writer().clone());
                }
                if let Some(journal) = journal {
                    writer = writer.with_sink(Box::new(journal));
                }
                if always {
                    // One fdatasync covers a batch: let batches grow while it runs.
                    writer = writer.with_durable_cuts(ALWAYS_BATCH);
                }
                service.set_ready();
                tracing::info!("ready");
                let ring_writer = writer.run();
                // The data directory's lock is released only now, after the last sync.
                drop(data);
                ring_writer
            })?
    };
    Ok((service, writer))
}

/// Restores the newest readable snapshot in `data` (falling back on older ones), replays the
/// journal after it into `ring_writer`, publishes the result, and logs what it found. A
/// journal that cannot be read ends the process (exit 1) with the reason: serving with part
/// of the acknowledged events missing would answer wrong counts.
fn recover(
    data: &mut DataDir,
    policy: FsyncPolicy,
    snapshot_every: Option<Duration>,
    health: Arc<JournalHealth>,
    ring_writer: &mut RingWriter,
) -> Journal {
    let started = std::time::Instant::now();
    let dir = data.path().to_path_buf();
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        tracing::error!(data_dir = %dir.display(), error = %e, "cannot recover: {what}");
        eprintln!("hourtally: cannot recover {what} in {}: {e}", dir.display());
        std::process::exit(1);
    };
    let snapshots = data.path().join("snapshots");
    let (image, skipped) = match snapshot::load_newest(&snapshots) {
        Ok(found) => found,
        Err(e) => fail("the snapshots", &e),
    };
    for why in &skipped {
        tracing::warn!(reason = %why, "snapshot unreadable; falling back on an older one and more of the journal");
    }
    let from = match &image {
        Some(image) => {
            if let Err(e) = ring_writer.restore(image) {
                fail("the snapshot", &e);
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
                fail("the data directory's meta", &e);
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
            journal
        }
        Err(e) => fail("the journal", &e),
    }
}
