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
mod consume;
mod publish;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use crossbeam_queue::SegQueue;
use tokio::sync::{mpsc, watch};

use super::feed::Feed;
use super::outbox::{Outgoing, DUPLICATE_WINDOW, RETRY_FOR};
use super::state::ClusterState;
use crate::ingest::Ingest;
use crate::publisher::Outcome;
use crate::ring::RingImage;
use crate::start::{Fatal, StartError};
use crate::sync::Arc;

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
    let js = jetstream::new(client);
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
        stream.clone(),
        identity.clone(),
        w.state.clone(),
        w.fatal.clone(),
        w.stream.clone(),
        shutdown.clone(),
    ));

    let ticker = tokio::spawn(tick(w.publish_ingest.clone(), shutdown.clone()));
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
    ));

    // Until shutdown: the senders of `batches`, `snapshots` and `fresh` close as their
    // threads end, which ends those tasks.
    let _ = shutdown.wait_for(|stop| *stop).await;
    let _ = consume.await;
    let _ = tokio::time::timeout(Duration::from_secs(30), snapshots).await;
    publish.abort();
    fresh.abort();
    ticker.abort();
    watch.abort();
}

/// Whether this server can rebuild the counts from the stream as `info` describes it, given
/// the newest snapshot (covering `covered`, taken from the stream `snapshot_stream`); if not,
/// why, in words for the operator.
fn follows(
    w: &Wiring,
    info: &stream::Info,
    covered: u64,
    snapshot_stream: Option<&str>,
    identity: &str,
) -> Result<(), String> {
    let (name, bucket) = (&w.stream, &w.bucket);
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let fix = format!(
        "restore the stream, or, to count from the new stream on (the old counts are lost), delete the bucket {bucket}"
    );
    if let Some(taken) = snapshot_stream.filter(|s| *s != identity) {
        tracing::error!(stream = %name, snapshot_covers = covered, snapshot_stream_created = %taken, stream_created = %identity, "cluster: the newest snapshot was taken from another stream of this name: it was deleted and re-created");
        return Err(format!(
            "the stream {name} was created {identity}, but the newest snapshot (covering {covered}) was taken from a stream {name} created {taken}: the stream was deleted and re-created, and its sequences cannot rebuild the counts; {fix}"
        ));
    }
    if last < covered {
        tracing::error!(stream = %name, snapshot_covers = covered, stream_last = last, "cluster: the stream ends before the newest snapshot");
        return Err(format!(
            "the stream {name} ends at {last}, before the newest snapshot ({covered}): it is not the stream the snapshot was taken from (deleted and re-created?), or it lost acknowledged messages; {fix}"
        ));
    }
    if info.state.messages > 0 && first > covered + 1 {
        tracing::error!(
            stream = %name,
            snapshot_covers = covered,
            stream_first = first,
            "cluster: the stream no longer holds the events after the newest snapshot; counts would be wrong, so this server does not start (raise --stream-max-age-hours, keep a server running)"
        );
        return Err(format!(
            "the stream {name} starts at {first}, after the newest snapshot ({covered}): cannot rebuild the counts"
        ));
    }
    Ok(())
}

/// How often a running server checks that the stream is still the one it follows.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Checks every [`WATCH_EVERY`] that the stream is the one this server started on (its
/// creation time) and has not gone back behind what this server applied (seen twice in a
/// row: a stale answer during a leader change is not enough). Either means this server can
/// no longer count right: it reports it to `fatal` (the process stops, saying why) instead of
/// serving counts that stopped moving.
async fn watch_stream(
    mut stream: stream::Stream,
    identity: String,
    state: Arc<ClusterState>,
    fatal: Fatal,
    name: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut behind = 0u32;
    while !pause(WATCH_EVERY, &mut shutdown).await {
        let Ok(Ok(info)) = tokio::time::timeout(WATCH_EVERY, stream.info()).await else {
            continue;
        };
        let created = info.created.to_string();
        if created != identity {
            fatal.report(StartError::Cluster(format!(
                "the stream {name} was deleted and re-created under this server (created {identity}, now {created}): the new stream's events cannot be counted on top of the old ones; restart on the new stream after deleting the bucket {name}-snapshots (the old counts are lost), or restore the old stream"
            )));
            return;
        }
        let (last, applied) = (info.state.last_sequence, state.applied());
        behind = if last < applied { behind + 1 } else { 0 };
        if behind >= 2 {
            fatal.report(StartError::Cluster(format!(
                "the stream {name} went back: it ends at {last}, but this server applied it up to {applied}; acknowledged messages were lost or replaced, and the servers' counts may differ"
            )));
            return;
        }
    }
}

/// The oldest nats-server hourtally runs with. Older JetStream releases lose or rewrite
/// acknowledged batches around a leader change: a publish retried after an election was
/// refused as a duplicate though never stored (fixed in 2.11), and a partition test with
/// 2.9.10 saw the new leader hold other batches at sequences the servers had applied.
pub const MIN_NATS: &str = "2.11.0";

/// Whether nats-server `version` (`2.15.1`, `2.12.0-beta.1`) is at least [`MIN_NATS`]. A
/// version that cannot be read is not.
pub fn supported(version: &str) -> bool {
    let numbers = |v: &str| -> Option<(u64, u64, u64)> {
        let core = v.trim().trim_start_matches('v');
        let core = core.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
        Some((
            parts.next()??,
            parts.next()??,
            parts.next().flatten().unwrap_or(0),
        ))
    };
    match (numbers(version), numbers(MIN_NATS)) {
        (Some(v), Some(min)) => v >= min,
        _ => false,
    }
}

/// How often the client pings its NATS server. A link that goes dead without a reset (a
/// partition, a cable) is noticed after two unanswered pings, and the client reconnects to
/// another node: with the library's default (60 s) a server cut from its node stalled for
/// minutes while the rest of the cluster went on.
const PING_EVERY: Duration = Duration::from_secs(1);

/// Connects, retrying every second until NATS answers or shutdown begins.
async fn connect(
    urls: &[String],
    shutdown: &mut watch::Receiver<bool>,
) -> Option<async_nats::Client> {
    let mut failures = 0u32;
    loop {
        let options = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(2))
            .ping_interval(PING_EVERY)
            .request_timeout(Some(ACK_TIMEOUT))
            .max_reconnects(None)
            .event_callback(|event| async move {
                use async_nats::Event;
                match event {
                    Event::Connected => tracing::info!("cluster: connected to NATS"),
                    Event::Disconnected => {
                        tracing::warn!("cluster: disconnected from NATS; reconnecting")
                    }
                    Event::LameDuckMode => {
                        tracing::warn!("cluster: a NATS server is entering lame duck mode")
                    }
                    Event::SlowConsumer(_) => {
                        tracing::warn!("cluster: NATS reports this client as a slow consumer")
                    }
                    // Each failed reconnect attempt, and the rest: not worth a line each.
                    other => tracing::debug!(event = %other, "cluster: NATS client event"),
                }
            });
        match options.connect(urls).await {
            Ok(client) => return Some(client),
            Err(e) => {
                if failures.is_multiple_of(10) {
                    tracing::warn!(error = %e, urls = ?urls, failures, "cluster: cannot connect to NATS; retrying");
                }
                failures += 1;
            }
        }
        if pause(Duration::from_secs(1), shutdown).await {
            return None;
        }
    }
}

/// Sleeps `d`; true if shutdown began meanwhile.
async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shutdown.wait_for(|stop| *stop) => true,
    };
    stopped || *shutdown.borrow()
}

/// Runs `attempt` until it succeeds or shutdown begins, logging a failure now and then.
async fn retry<T, F, Fut>(
    what: &str,
    shutdown: &mut watch::Receiver<bool>,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut failures = 0u32;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), attempt()).await {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) if failures.is_multiple_of(10) => {
                tracing::warn!(error = %e, failures, "cluster: cannot {what}; retrying")
            }
            Err(_) if failures.is_multiple_of(10) => {
                tracing::warn!(failures, "cluster: cannot {what}: timed out; retrying")
            }
            _ => {}
        }
        failures += 1;
        if pause(Duration::from_millis(500), shutdown).await {
            return None;
        }
    }
}

/// The stream, created if missing; an inner error if it is another cluster's (retried on the
/// outer one).
/// The flags that decide what a `204` means (the admission window) and how events apply (the
/// ring's slots): `(flag, key in the stream's description, value)`. Every server of a stream
/// must give the same, or one could answer `204` for an event another seals.
fn recorded_flags(w: &Wiring) -> [(&'static str, &'static str, u64); 2] {
    [
        (
            "--retention-hours",
            "retention_hours",
            w.retention_hours as u64,
        ),
        (
            "--max-future-hours",
            "max_future_hours",
            u64::from(w.max_future_hours),
        ),
    ]
}

/// The first words of the description of a stream hourtally made.
const DESCRIPTION: &str = "hourtally events;";

/// The stream's description for `flags`: `hourtally events; retention_hours=48; ...`.
fn describe(flags: &[(&'static str, &'static str, u64)]) -> String {
    let mut d = DESCRIPTION.to_owned();
    for (_, key, value) in flags {
        d.push_str(&format!(" {key}={value};"));
    }
    d.trim_end_matches(';').to_owned()
}

/// The `key=value` pairs of a description hourtally wrote, or `None` for another's.
fn recorded(description: &str) -> Option<Vec<(String, String)>> {
    let rest = description.strip_prefix(DESCRIPTION)?;
    Some(
        rest.split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect(),
    )
}

/// How this server's `flags` compare with what the stream records: the first that differs,
/// as `(flag, ours, the stream's)`, or the flags the stream does not record yet.
fn compare_flags(
    flags: &[(&'static str, &'static str, u64)],
    recorded: &[(String, String)],
) -> Result<Vec<&'static str>, (&'static str, u64, String)> {
    let mut missing = Vec::new();
    for (flag, key, value) in flags {
        match recorded.iter().find(|(k, _)| k == key) {
            Some((_, v)) if *v == value.to_string() => {}
            Some((_, v)) => return Err((flag, *value, v.clone())),
            None => missing.push(*key),
        }
    }
    Ok(missing)
}

async fn ensure_stream(
    js: &jetstream::Context,
    w: &Wiring,
) -> Result<Result<stream::Stream, StartError>, String> {
    let flags = recorded_flags(w);
    let description = describe(&flags);
    let config = stream::Config {
        name: w.stream.clone(),
        description: Some(description.clone()),
        subjects: vec![w.subject.clone()],
        num_replicas: w.replicas,
        max_age: w.max_age,
        duplicate_window: DUPLICATE_WINDOW,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    let stream = js
        .get_or_create_stream(config)
        .await
        .map_err(|e| e.to_string())?;
    let found = stream.cached_info().config.description.clone();
    if let Some(pairs) = found.as_deref().and_then(recorded) {
        match compare_flags(&flags, &pairs) {
            Err((flag, ours, theirs)) => {
                tracing::error!(stream = %w.stream, flag, ours, theirs = %theirs, "cluster: this server's flags differ from the stream's; a 204 would not mean the same on every server, so it does not start");
                return Ok(Err(StartError::Flags(format!(
                    "{flag} {ours} differs from the stream {}'s {theirs} (its description: {}); every server of a stream must give the same {flag}",
                    w.stream,
                    found.as_deref().unwrap_or_default()
                ))));
            }
            Ok(missing) if !missing.is_empty() => {
                // A stream made by an older server: record the rest, so that the next server
                // with other values is refused.
                let mut config = stream.cached_info().config.clone();
                config.description = Some(description.clone());
                js.update_stream(&config).await.map_err(|e| e.to_string())?;
                tracing::info!(stream = %w.stream, recorded = ?missing, "cluster: the stream now records these flags too");
            }
            Ok(_) => {}
        }
    }
    let window = stream.cached_info().config.duplicate_window;
    if window < RETRY_FOR {
        tracing::warn!(
            duplicate_window_s = window.as_secs(),
            retry_for_s = RETRY_FOR.as_secs(),
            "cluster: the stream's duplicate window is shorter than this server's retries; a retried batch could count twice"
        );
    }
    Ok(Ok(stream))
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

#[cfg(test)]
mod tests {
    use super::{compare_flags, describe, recorded, supported};

    #[test]
    fn a_description_records_every_flag_and_reads_back_what_an_older_one_lacks() {
        let ours = [
            ("--retention-hours", "retention_hours", 48),
            ("--max-future-hours", "max_future_hours", 1),
        ];
        let d = describe(&ours);
        assert_eq!(
            d,
            "hourtally events; retention_hours=48; max_future_hours=1"
        );
        let pairs = recorded(&d).expect("ours");
        assert_eq!(compare_flags(&ours, &pairs), Ok(vec![]));
        // A stream an older server made records only the retention.
        let old = recorded("hourtally events; retention_hours=48").expect("ours");
        assert_eq!(compare_flags(&ours, &old), Ok(vec!["max_future_hours"]));
        let other = recorded("hourtally events; retention_hours=48; max_future_hours=30");
        assert_eq!(
            compare_flags(&ours, &other.expect("ours")),
            Err(("--max-future-hours", 1, "30".to_owned()))
        );
        assert_eq!(recorded("another application's stream"), None);
    }

    #[test]
    fn nats_servers_from_2_11_are_supported_and_older_or_unreadable_ones_are_not() {
        for ok in [
            "2.11.0",
            "2.15.1",
            "v2.12.3",
            "2.13.0-beta.2",
            "3.0.0",
            "2.11",
        ] {
            assert!(supported(ok), "{ok}");
        }
        for old in ["2.9.10", "2.10.29", "1.4.1", "", "x.y.z", "2"] {
            assert!(!supported(old), "{old}");
        }
    }
}
