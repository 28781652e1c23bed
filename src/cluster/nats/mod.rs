//! The nats thread: async-nats on a tokio runtime of its own, fed from and feeding the rest
//! of the server through channels. No tokio code runs on a `may` worker, and no `may`
//! coroutine waits on a tokio future.
//!
//! At start it connects (retrying until NATS answers), creates the stream and the snapshot
//! bucket if they are missing, loads the newest snapshot it can read, reads the stream's
//! last sequence, and hands both to the writer thread ([`Bootstrap`]). Then four tasks run:
//! - **publish**: each batch from the publisher is published with its de-duplication id and
//!   its acknowledgement awaited, concurrently (the publisher bounds how many are out). A
//!   failure or a timeout (a leader election, no responders) is retried with the same id,
//!   for [`RETRY_FOR`] at most, inside the stream's duplicate window.
//! - **consume**: an ordered consumer from the sequence after the snapshot. Each message
//!   must be the last one taken + 1; on a gap, an error, or no message for [`STALL`] while the
//!   stream has more, the consumer is created again from there.
//! - **fresh**: answers "what is the stream's last sequence now" for `GET ...&fresh=1`, one
//!   stream-info request for every question that arrived before it was sent.
//! - **snapshots**: stores each capture of the ring in the object store, named by the stream
//!   sequence it covers, and keeps the newest [`KEEP_SNAPSHOTS`].

mod bucket;
mod checks;
mod cold;
mod connect;
mod consume;
mod objects;
mod publish;
mod wait;

use std::time::Duration;

use async_nats::jetstream;
use crossbeam_queue::SegQueue;
use tokio::sync::{mpsc, watch};

use super::feed::Feed;
use super::outbox::Outgoing;
use super::state::ClusterState;
use crate::ingest::Ingest;
use crate::publisher::Outcome;
use crate::ring::RingImage;
use crate::start::{Fatal, StartError};
use crate::sync::Arc;
use checks::{ensure_stream, follows, recorded_flags, supported, watch_stream, Watched, MIN_NATS};
use connect::connect;
use wait::{pause, retry, unless_stopped};

/// Longest wait for one publish's acknowledgement before it is retried.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(3);
/// The ordered consumer's longest pull request: short, so that after a leader election it
/// resumes within seconds rather than the client's default 30.
pub const MAX_EXPIRES: Duration = Duration::from_secs(2);
/// No message for this long while the stream has more: create the consumer again.
pub const STALL: Duration = Duration::from_secs(4);
/// Snapshots kept in the bucket (the newest, and one to fall back on).
pub const KEEP_SNAPSHOTS: usize = 2;
/// How often the publisher is woken to look at its timers.
pub const TICK: Duration = Duration::from_millis(50);

/// What the writer thread needs before it starts: the newest snapshot, and how far the
/// stream went when this server started (it is ready once it has applied that far).
#[derive(Debug)]
pub struct Bootstrap {
    pub image: Option<RingImage>,
    pub target: u64,
}

/// A `GET ...&fresh=1` waiting to learn the stream's last sequence (`None`: NATS did not
/// answer).
pub type FreshReply = may::sync::mpsc::Sender<Option<u64>>;

/// Everything the nats thread is given.
pub struct Wiring {
    pub urls: Vec<String>,
    pub stream: String,
    pub subject: String,
    pub bucket: String,
    pub replicas: usize,
    pub max_age: Duration,
    /// `--retention-hours` and `--max-future-hours`: every server of a cluster must use the
    /// same (the stream's description records them; a server with others refuses to start).
    pub retention_hours: usize,
    pub max_future_hours: u32,
    /// `--cold-retention-hours` as this server keeps it (0: no cold tier): it decides which
    /// events are late, so the stream's description records it too.
    pub cold_retention_hours: u32,
    /// The cold tier, if this server keeps one.
    pub cold: Option<crate::cluster::ClusterCold>,
    /// `{node}-{boot}-`: the prefix of this process's de-duplication ids.
    pub id_prefix: String,
    pub state: Arc<ClusterState>,
    /// The publish queue, to wake its publisher.
    pub publish_ingest: Arc<Ingest>,
    pub outcomes: Arc<SegQueue<Outcome>>,
    pub batches: mpsc::UnboundedReceiver<Outgoing>,
    /// The writer's queue and its message boundaries.
    pub feed_ingest: Arc<Ingest>,
    pub feed: Arc<Feed>,
    pub snapshots: mpsc::UnboundedReceiver<RingImage>,
    pub fresh: mpsc::UnboundedReceiver<FreshReply>,
    pub bootstrap: std::sync::mpsc::Sender<Bootstrap>,
    /// Set to true: stop consuming. Then: finish storing snapshots and exit.
    pub stop_consuming: watch::Receiver<bool>,
    pub shutdown: watch::Receiver<bool>,
    /// Where an error this thread cannot go on after goes (it then ends).
    pub fatal: Fatal,
}

/// Runs the nats thread until shutdown.
pub fn run(w: Wiring) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            w.fatal.report(StartError::Cluster(format!(
                "cannot start the NATS client's runtime: {e}"
            )));
            return;
        }
    };
    rt.block_on(main(w));
}

async fn main(w: Wiring) {
    let mut shutdown = w.shutdown.clone();
    let Some(client) = connect(&w.urls, &mut shutdown).await else {
        return;
    };
    let version = client.server_info().version;
    if !supported(&version) {
        w.fatal.report(StartError::Cluster(format!(
            "nats-server {version} is older than {MIN_NATS}, the oldest whose JetStream keeps \
             every acknowledged batch across a leader change (README, \"Scale-out\"); run the \
             current release (scripts/current-nats.sh installs it)"
        )));
        return;
    }
    tracing::info!(nats_server = %version, "cluster: the NATS server's version");
    let js = jetstream::new(client.clone());
    let Some(stream) = retry("create or find the stream", &mut shutdown, || {
        ensure_stream(&js, &w)
    })
    .await
    else {
        return;
    };
    let stream = match stream {
        Ok(stream) => stream,
        Err(e) => {
            w.fatal.report(e);
            return;
        }
    };
    let Some(store) = retry("create or find the snapshot bucket", &mut shutdown, || {
        bucket::ensure_bucket(&js, &w)
    })
    .await
    else {
        return;
    };
    let loaded = bucket::load_newest(&store).await;
    let covered = loaded.as_ref().map_or(0, |l| l.image.covered);
    let Some(info) = retry("read the stream's state", &mut shutdown, || async {
        stream.get_info().await.map_err(|e| e.to_string())
    })
    .await
    else {
        return;
    };
    // The stream's identity: a stream deleted and re-created under the same name is another
    // stream, whose sequences say nothing of the old one's.
    let identity = info.created.to_string();
    if let Err(why) = follows(
        &w,
        &info,
        covered,
        loaded.as_ref().and_then(|l| l.stream.as_deref()),
        &identity,
    ) {
        w.fatal.report(StartError::Cluster(why));
        return;
    }
    if let Some(cold) = &w.cold {
        // Files of another stream (deleted and re-created under this name) are not this
        // stream's hours.
        match cold.tier.claim(&identity) {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(files = n, stream_created = %identity, "cluster: removed the cold files of another stream of this name")
            }
            Err(e) => {
                w.fatal.report(StartError::Cluster(format!(
                    "cannot mark the cold tier as this stream's: {e}"
                )));
                return;
            }
        }
        // The files the snapshot's hours need, before the writer restores it.
        if let Some(loaded) = &loaded {
            let needed = cold::needed(&cold.tier, &loaded.image);
            match cold::fetch_missing(&store, &cold.tier, &needed, &mut shutdown).await {
                Ok((fetched, absent)) => tracing::info!(
                    fetched,
                    absent,
                    "cluster: fetched the cold tier's files the snapshot's hours need"
                ),
                Err(cold::FetchError::Stopping) => return,
                Err(cold::FetchError::Failed(why)) => {
                    w.fatal.report(StartError::Cluster(format!(
                        "cannot fetch the cold tier's files for the snapshot of {covered}: {why}"
                    )));
                    return;
                }
            }
        }
    }
    let last = info.state.last_sequence;
    w.state.saw_stream_last(last);
    tracing::info!(
        stream = %w.stream,
        snapshot_covers = covered,
        stream_last = last,
        "cluster: connected"
    );
    if w.bootstrap
        .send(Bootstrap {
            image: loaded.map(|l| l.image),
            target: last,
        })
        .is_err()
    {
        return;
    }
    let watch = tokio::spawn(watch_stream(
        Watched {
            stream: stream.clone(),
            identity: identity.clone(),
            flags: recorded_flags(&w),
            name: w.stream.clone(),
            bucket: w.bucket.clone(),
        },
        w.state.clone(),
        w.fatal.clone(),
        shutdown.clone(),
    ));

    let ticker = tokio::spawn(tick(w.publish_ingest.clone(), shutdown.clone()));
    let unstick = tokio::spawn(unstick(client, w.state.clone(), shutdown.clone()));
    let publish = tokio::spawn(publish::publish_all(
        js.clone(),
        w.subject.clone(),
        w.id_prefix.clone(),
        w.batches,
        w.outcomes.clone(),
        w.publish_ingest.clone(),
        w.state.clone(),
    ));
    let fresh = tokio::spawn(consume::answer_fresh(
        js.clone(),
        w.subject.clone(),
        w.id_prefix.clone(),
        w.fresh,
        w.state.clone(),
    ));
    let consume = tokio::spawn(consume::consume(
        consume::Consumer {
            stream: stream.clone(),
            name: w.stream.clone(),
            subject: w.subject.clone(),
            feed_ingest: w.feed_ingest.clone(),
            feed: w.feed.clone(),
            state: w.state.clone(),
            stop: w.stop_consuming.clone(),
            fatal: w.fatal.clone(),
        },
        covered + 1,
    ));
    let snapshots = tokio::spawn(bucket::store_snapshots(
        store,
        w.snapshots,
        w.state.clone(),
        identity,
        w.cold.clone(),
    ));

    // Until shutdown: the senders of `batches`, `snapshots` and `fresh` close as their
    // threads end, which ends those tasks.
    let _ = shutdown.wait_for(|stop| *stop).await;
    let _ = consume.await;
    let _ = tokio::time::timeout(Duration::from_secs(30), snapshots).await;
    publish.abort();
    fresh.abort();
    ticker.abort();
    unstick.abort();
    watch.abort();
}

/// How often a server whose log refuses events tries another NATS node.
const UNSTICK_EVERY: Duration = Duration::from_secs(5);

/// While the log refuses events (no batch acknowledged within `--log-timeout`), moves the
/// client to another NATS node every [`UNSTICK_EVERY`]: the node it is on may be cut off from
/// the rest of its cluster while its own link is up (its pings are answered), and then no
/// publish through it is ever acknowledged, though the others elected a leader and take
/// events. The client picks the next node at random among those it knows; in-flight batches
/// are retried with their ids, so moving loses and doubles nothing.
async fn unstick(
    client: async_nats::Client,
    state: Arc<ClusterState>,
    mut shutdown: watch::Receiver<bool>,
) {
    while !pause(UNSTICK_EVERY, &mut shutdown).await {
        if state.log_failing() {
            tracing::warn!(
                "cluster: the log takes no events through this NATS node; connecting to another"
            );
            let _ = client.force_reconnect().await;
        }
    }
}

/// Wakes the publisher now and then, so that it notices a batch waiting too long.
async fn tick(publish_ingest: Arc<Ingest>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if pause(TICK, &mut shutdown).await {
            // A stopping publisher waits for acknowledgements on this tick: keep it up.
            loop {
                publish_ingest.wake_popper();
                tokio::time::sleep(TICK).await;
            }
        }
        publish_ingest.wake_popper();
    }
}
