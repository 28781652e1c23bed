//! Starting and stopping cluster mode's threads (the server's wiring for `--nats`).

use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_queue::SegQueue;
use tokio::sync::{mpsc, watch};

use super::feed::{ClusterSink, Feed};
use super::nats::{self, Bootstrap, Wiring};
use super::outbox::Outbox;
use super::{node_id, random_u64, ClusterEdge, ClusterState};
use crate::ack::{Ack, DurableWaiters};
use crate::config::{AckMode, Config};
use crate::http::routes::Service;
use crate::journal::DataDir;
use crate::publisher::Publisher;
use crate::ring::{Ring, RingWriter};
use crate::sync::Arc;
use crate::writer::{Ingest, Writer};

/// Cluster mode's threads, for an orderly stop.
#[derive(Debug)]
pub struct Running {
    publisher: JoinHandle<u64>,
    nats: JoinHandle<()>,
    stop_consuming: watch::Sender<bool>,
    shutdown: watch::Sender<bool>,
    feed_ingest: Arc<Ingest>,
}

/// Builds the service of a cluster server from `service` (whose `ingest` becomes the
/// publish queue) and starts the publisher, the nats thread and the writer. The writer
/// waits for the nats thread's [`Bootstrap`], restores the snapshot, and applies the stream
/// from there; the service is marked ready once it has caught up.
pub fn start(
    config: &Config,
    data: Option<DataDir>,
    ring: Arc<Ring>,
    service: Service,
) -> io::Result<(Arc<Service>, JoinHandle<RingWriter>, Running)> {
    let flags = &config.cluster;
    let node = node_id(flags, data.as_ref().map(|d| d.path()))?;
    // A cluster's directory holds only the lock and the node id (state comes from the
    // stream), so it is stamped as soon as the node id is known.
    let mut data = data;
    if let Some(data) = data.as_mut() {
        data.stamp()?;
    }
    let boot = random_u64();
    let state = Arc::new(ClusterState::default());
    let feed_ingest = Arc::new(Ingest::new(config.queue_capacity));
    let feed = Arc::new(Feed::default());
    let (batches_tx, batches_rx) = mpsc::unbounded_channel();
    let (snapshots_tx, snapshots_rx) = mpsc::unbounded_channel();
    let (fresh_tx, fresh_rx) = mpsc::unbounded_channel();
    let (boot_tx, boot_rx) = std::sync::mpsc::channel::<Bootstrap>();
    let (stop_consuming, stop_consuming_rx) = watch::channel(false);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let outcomes = Arc::new(SegQueue::new());
    let waiters = (flags.ack == AckMode::Log).then(|| Arc::new(DurableWaiters::default()));

    let mut service = service.with_log(
        feed_ingest.clone(),
        Arc::new(ClusterEdge {
            state: state.clone(),
            fresh: fresh_tx,
            fresh_timeout: flags.fresh_timeout(),
        }),
    );
    if let Some(waiters) = &waiters {
        service = service.with_ack(Ack::logged(waiters.clone(), flags.log_timeout()));
    }
    let service = Arc::new(service);
    tracing::info!(
        nats = ?flags.nats,
        stream = %flags.stream,
        replicas = flags.stream_replicas,
        node = %node,
        ack = ?flags.ack,
        log_timeout_s = flags.log_timeout_s,
        "cluster mode"
    );

    let publisher = {
        let cuts = waiters.is_some();
        let outbox = Outbox {
            out: batches_tx,
            outcomes: outcomes.clone(),
            state: state.clone(),
            waiters,
            log_timeout: flags.log_timeout(),
        };
        let mut publisher =
            Publisher::new(service.ingest.clone(), outbox, cuts, flags.log_timeout());
        if crate::metrics::ENABLED {
            publisher = publisher.with_stats(service.metrics.publisher().clone());
        }
        std::thread::Builder::new()
            .name("hourtally-publish".into())
            .spawn(move || publisher.run())?
    };
    let nats = {
        let wiring = Wiring {
            urls: flags.nats.clone(),
            stream: flags.stream.clone(),
            subject: flags.subject(),
            bucket: flags.bucket(),
            replicas: flags.stream_replicas,
            max_age: Duration::from_secs(flags.stream_max_age_hours * 3600),
            retention_hours: config.retention_hours,
            id_prefix: format!("{node}-{boot:016x}-"),
            state: state.clone(),
            publish_ingest: service.ingest.clone(),
            outcomes,
            batches: batches_rx,
            feed_ingest: feed_ingest.clone(),
            feed: feed.clone(),
            snapshots: snapshots_rx,
            fresh: fresh_rx,
            bootstrap: boot_tx,
            stop_consuming: stop_consuming_rx,
            shutdown: shutdown_rx,
        };
        std::thread::Builder::new()
            .name("hourtally-nats".into())
            .spawn(move || nats::run(wiring))?
    };
    let writer = {
        let (service, feed_ingest) = (service.clone(), feed_ingest.clone());
        let writer_stats = service.metrics.writer().clone();
        let snapshot_every = config.snapshot_every();
        let idle = config.writer_idle();
        std::thread::Builder::new()
            .name("hourtally-writer".into())
            .spawn(move || {
                crate::thread::enter_writer(idle);
                let mut ring_writer = RingWriter::new(ring);
                // No bootstrap: stopped before NATS ever answered; nothing was applied.
                let Ok(boot) = boot_rx.recv() else {
                    return ring_writer;
                };
                let covered = match &boot.image {
                    Some(image) => {
                        if let Err(e) = ring_writer.restore(image) {
                            tracing::error!(error = %e, "cluster: cannot restore the snapshot");
                            eprintln!("hourtally: cannot restore the cluster's snapshot: {e}");
                            std::process::exit(1);
                        }
                        image.covered
                    }
                    None => 0,
                };
                ring_writer.publish();
                let sink = ClusterSink::new(feed, state, covered, snapshot_every, snapshots_tx)
                    .ready_at(boot.target, service.readiness().clone());
                let mut writer = Writer::new(feed_ingest, ring_writer)
                    .with_idle(idle)
                    .with_sink(Box::new(sink));
                if crate::metrics::ENABLED {
                    writer = writer.with_stats(writer_stats);
                }
                let ring_writer = writer.run();
                // The data directory's lock (node id) is held while the writer runs.
                drop(data);
                ring_writer
            })?
    };
    Ok((
        service,
        writer,
        Running {
            publisher,
            nats,
            stop_consuming,
            shutdown,
            feed_ingest,
        },
    ))
}

impl Running {
    /// Stops cluster mode after the publish queue was closed: waits for the publisher to
    /// send every queued event and for their acknowledgements (bounded), stops consuming,
    /// lets the writer apply what it has and take a last snapshot, then ends the nats thread
    /// once that snapshot is stored (bounded). Returns the writer's ring.
    pub fn stop(self, writer: JoinHandle<RingWriter>) -> RingWriter {
        let unknown = self.publisher.join().unwrap_or(0);
        if unknown > 0 {
            tracing::warn!(
                events = unknown,
                "cluster: stopped with events the log had not acknowledged"
            );
        }
        let _ = self.stop_consuming.send(true);
        self.feed_ingest.close();
        let _ = self.shutdown.send(true);
        let ring = match writer.join() {
            Ok(ring) => ring,
            // As in `Server::shutdown`: the writer does not panic; if it did, abort.
            Err(_) => std::process::abort(),
        };
        let _ = self.nats.join();
        ring
    }
}
