//! Starting and stopping cluster mode's threads (the server's wiring for `--nats`).

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_queue::SegQueue;
use tokio::sync::{mpsc, watch};

use super::feed::{ClusterSink, Feed};
use super::nats::{self, Bootstrap, Wiring};
use super::outbox::{Outbox, RETRY_FOR};
use super::{node_id, random_u64, ClusterCold, ClusterEdge, ClusterState};
use crate::ack::{Ack, DurableWaiters};
use crate::config::{AckMode, Config};
use crate::histogram::BatchStats;
use crate::ingest::Ingest;
use crate::journal::DataDir;
use crate::late::LateCounts;
use crate::publisher::Publisher;
use crate::readiness::{Readiness, Starting};
use crate::ring::{RingImage, RingWriter};
use crate::start::{Applying, Fatal, Mode, Recovery, StartError};
use crate::sync::{Arc, AtomicBool};

/// Cluster mode's threads, for an orderly stop.
#[derive(Debug)]
pub struct Running {
    publisher: JoinHandle<u64>,
    /// Set: the stop waits no longer for the log (a second stop signal).
    give_up: Arc<AtomicBool>,
    /// `--ack local`: events waiting for the log were answered 204.
    answered_before_log: bool,
    nats: JoinHandle<()>,
    stop_consuming: watch::Sender<bool>,
    shutdown: watch::Sender<bool>,
    feed_ingest: Arc<Ingest>,
}

/// Starts cluster mode's publisher and nats threads, and returns its mode: POSTs go to the
/// publish queue; the writer, once it has loaded the nats thread's [`Bootstrap`] (restored
/// the snapshot), applies the stream from there, and marks `readiness` ready once it has
/// caught up. `publisher_stats` gets the publisher's batch figures.
pub fn start(
    config: &Config,
    data: Option<DataDir>,
    cold: Option<ClusterCold>,
    readiness: Arc<Readiness>,
    publisher_stats: Arc<BatchStats>,
    fatal: Fatal,
) -> Result<(Mode, Running), StartError> {
    let flags = &config.cluster;
    let node = node_id(flags, data.as_ref().map(|d| d.path()))
        .map_err(StartError::io("keep the node id in the data directory"))?;
    // A cluster's directory holds only the lock and the node id (state comes from the
    // stream), so it is stamped as soon as the node id is known.
    let mut data = data;
    if let Some(data) = data.as_mut() {
        data.stamp()
            .map_err(StartError::io("write the data directory's meta"))?;
    }
    readiness.set_starting(Starting::WaitingForNats);
    let boot = random_u64();
    let state = Arc::new(ClusterState::default());
    let publish_ingest = Arc::new(Ingest::new(config.queue_capacity));
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
    let ack = match &waiters {
        Some(waiters) => Ack::logged(waiters.clone(), flags.log_timeout()),
        None => Ack::queued(),
    };
    tracing::info!(
        nats = ?flags.nats,
        stream = %flags.stream,
        replicas = flags.stream_replicas,
        node = %node,
        ack = ?flags.ack,
        log_timeout_s = flags.log_timeout_s,
        "cluster mode"
    );

    let give_up: Arc<AtomicBool>;
    let publisher = {
        let cuts = waiters.is_some();
        let outbox = Outbox {
            out: batches_tx,
            outcomes: outcomes.clone(),
            state: state.clone(),
            waiters,
            log_timeout: flags.log_timeout(),
        };
        // A stop waits as long as the log retries a batch (then it is acknowledged or given
        // up), not less: with --ack local its events were answered 204.
        let mut publisher =
            Publisher::new(publish_ingest.clone(), outbox, cuts, flags.log_timeout())
                .with_stop_wait(RETRY_FOR + Duration::from_secs(5));
        give_up = publisher.give_up_handle();
        if crate::metrics::ENABLED {
            publisher = publisher.with_stats(publisher_stats);
        }
        std::thread::Builder::new()
            .name("hourtally-publish".into())
            .spawn(move || publisher.run())
            .map_err(StartError::io("start the publisher thread"))?
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
            max_future_hours: config.max_future_hours,
            cold_retention_hours: if cold.is_some() {
                config.cold_retention_hours
            } else {
                0
            },
            cold: cold.clone(),
            id_prefix: format!("{node}-{boot:016x}-"),
            state: state.clone(),
            publish_ingest: publish_ingest.clone(),
            outcomes,
            batches: batches_rx,
            feed_ingest: feed_ingest.clone(),
            feed: feed.clone(),
            snapshots: snapshots_rx,
            fresh: fresh_rx,
            bootstrap: boot_tx,
            stop_consuming: stop_consuming_rx,
            shutdown: shutdown_rx,
            fatal,
        };
        std::thread::Builder::new()
            .name("hourtally-nats".into())
            .spawn(move || nats::run(wiring))
            .map_err(StartError::io("start the nats thread"))?
    };
    let mode = Mode {
        posts: publish_ingest,
        applied: feed_ingest.clone(),
        ack,
        journal: None,
        log: Some(Arc::new(ClusterEdge {
            state: state.clone(),
            fresh: fresh_tx,
            fresh_timeout: flags.fresh_timeout(),
        })),
        recovery: Box::new(CatchUp {
            bootstrap: boot_rx,
            feed,
            state,
            snapshot_every: config.snapshot_every(),
            snapshots: snapshots_tx,
            readiness,
            data,
            late: cold.and_then(|c| c.waits.late),
        }),
    };
    Ok((
        mode,
        Running {
            publisher,
            give_up,
            answered_before_log: flags.ack == AckMode::Local,
            nats,
            stop_consuming,
            shutdown,
            feed_ingest,
        },
    ))
}

/// A cluster server's recovery: the snapshot the nats thread found, then the stream after it.
struct CatchUp {
    bootstrap: std::sync::mpsc::Receiver<Bootstrap>,
    feed: Arc<Feed>,
    state: Arc<ClusterState>,
    snapshot_every: Option<Duration>,
    snapshots: mpsc::UnboundedSender<RingImage>,
    readiness: Arc<Readiness>,
    /// The data directory's lock (node id), held while the writer runs.
    data: Option<DataDir>,
    /// The late events' counts, to take back a snapshot's late users.
    late: Option<Arc<LateCounts>>,
}

impl Recovery for CatchUp {
    fn recover(self: Box<Self>, ring: &mut RingWriter) -> Result<Option<Applying>, StartError> {
        // No bootstrap: stopped before NATS ever answered (or the nats thread could not go
        // on, and said why); nothing was applied.
        let Ok(boot) = self.bootstrap.recv() else {
            return Ok(None);
        };
        let covered = match &boot.image {
            Some(image) => {
                ring.restore(image).map_err(|e| {
                    StartError::Cluster(format!("cannot restore the cluster's snapshot: {e}"))
                })?;
                match &self.late {
                    Some(late) => late.restore(&image.late),
                    // The stream records the cold retention, so every server counts late
                    // events or none does; a snapshot with late users and none here is a
                    // defect, not a choice.
                    None if !image.late.is_empty() => {
                        return Err(StartError::Cluster(
                            "the cluster's snapshot holds late events' users, and this server \
                             counts no late events (it keeps no cold tier)"
                                .into(),
                        ))
                    }
                    None => {}
                }
                image.covered
            }
            None => 0,
        };
        ring.publish();
        let sink = ClusterSink::new(
            self.feed,
            self.state,
            covered,
            self.snapshot_every,
            self.snapshots,
        )
        .ready_at(boot.target, self.readiness);
        Ok(Some(Applying {
            sink: Some(Box::new(sink)),
            durable_cuts: None,
            ready: false,
            hold: self.data,
        }))
    }
}

impl Running {
    /// Set it, and a stop waits no longer for the log to acknowledge what it holds.
    pub fn give_up_handle(&self) -> Arc<AtomicBool> {
        self.give_up.clone()
    }

    /// Stops cluster mode after the publish queue was closed: waits for the publisher to
    /// send every queued event and for their acknowledgements (as long as the log retries a
    /// batch, unless given up), stops consuming, lets the writer apply what it has and take a
    /// last snapshot, then ends the nats thread once that snapshot is stored (bounded).
    /// Returns the writer's ring and the events answered `204` that the log never took
    /// (`--ack local` only: with `--ack log` no POST was answered before its batch was).
    pub fn stop(self, writer: JoinHandle<RingWriter>) -> (RingWriter, u64) {
        let unknown = self.publisher.join().unwrap_or(0);
        let lost = if unknown > 0 && self.answered_before_log {
            tracing::error!(
                events = unknown,
                "cluster: stopped with events answered 204 (--ack local) that the log never acknowledged: they are lost"
            );
            unknown
        } else {
            if unknown > 0 {
                tracing::warn!(
                    events = unknown,
                    "cluster: stopped with events the log had not acknowledged; their POSTs were never answered 204"
                );
            }
            0
        };
        let _ = self.stop_consuming.send(true);
        self.feed_ingest.close();
        let _ = self.shutdown.send(true);
        let ring = match writer.join() {
            Ok(ring) => ring,
            // As in `Server::shutdown`: the writer does not panic; if it did, abort.
            Err(_) => std::process::abort(),
        };
        let _ = self.nats.join();
        (ring, lost)
    }
}
