//! What this server checks of NATS and of the stream before it follows it, and while it does:
//! the nats-server's version, the flags the stream records, that the stream is the one the
//! newest snapshot was taken from and holds what comes after it, and (every few seconds) that
//! it still is. A failed check is a `StartError` with the way out, never a silent stall.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use tokio::sync::watch;

use super::consume::{self, ReadBack};
use super::{pause, Wiring};
use crate::cluster::outbox::{DUPLICATE_WINDOW, RETRY_FOR};
use crate::cluster::state::ClusterState;
use crate::start::{Fatal, StartError};
use crate::sync::Arc;

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

/// The flags that decide what a `204` means (the admission window) and how events apply (the
/// ring's slots): `(flag, key in the stream's description, value)`. Every server of a stream
/// must give the same, or one could answer `204` for an event another seals.
pub(super) type RecordedFlags = [(&'static str, &'static str, u64); 3];

pub(super) fn recorded_flags(w: &Wiring) -> RecordedFlags {
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
        // Which events of hours that left the ring are late (counted) and which sealed.
        (
            "--cold-retention-hours",
            "cold_retention_hours",
            u64::from(w.cold_retention_hours),
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

pub(super) async fn ensure_stream(
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

/// Whether this server can rebuild the counts from the stream as `info` describes it, given
/// the newest snapshot (covering `covered`, taken from the stream `snapshot_stream`); if not,
/// why, in words for the operator.
pub(super) fn follows(
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

/// The stream a running server follows, as [`watch_stream`] checks it.
pub(super) struct Watched {
    pub stream: stream::Stream,
    /// Its creation time (`follows`).
    pub identity: String,
    /// This server's flags that the stream records (`ensure_stream`).
    pub flags: RecordedFlags,
    /// Its name, and its snapshot bucket's (for the messages).
    pub name: String,
    pub bucket: String,
}

/// How often a running server checks that the stream is still the one it follows.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Checks every [`WATCH_EVERY`] that the stream is the one this server started on (its
/// creation time), still records this server's `flags`, and has not gone back behind what
/// this server read from it. Either means
/// this server can no longer count right: it reports it to `fatal` (the process stops, saying
/// why) instead of serving counts that stopped moving or differ from the other servers'.
///
/// "Gone back" is never taken from a stream-info answer alone: a node that is catching up,
/// or an answer that a slow link delayed behind later messages, says the stream ends before
/// messages this server has read (both seen in the partition tests, as false alarms). So the
/// last message the consumer fed is taken *before* the question is sent, and read back from
/// the stream's leader at every check: the same message there means the stream holds what
/// this server read (an answer that ends before it was stale); another one means the stream
/// went back and was written again (fatal at once); none, on two checks in a row while the
/// answer ends before it, means it went back. The read-back at every check, not only when
/// the answer ends early, finds a stream written again up to that message and no further,
/// which `consume` never sees (it reads back before the first message of each consumer, and
/// no message comes); and it stands behind `consume`'s read-back for a stream written past
/// it.
pub(super) async fn watch_stream(
    watched: Watched,
    state: Arc<ClusterState>,
    fatal: Fatal,
    mut shutdown: watch::Receiver<bool>,
) {
    let Watched {
        mut stream,
        identity,
        flags,
        name,
        bucket,
    } = watched;
    let mut behind = 0u32;
    while !pause(WATCH_EVERY, &mut shutdown).await {
        // Before the question: whatever the answer says, the stream held this message.
        let fed = state.last_fed();
        let Ok(Ok(info)) = tokio::time::timeout(WATCH_EVERY, stream.info()).await else {
            continue;
        };
        let created = info.created.to_string();
        if created != identity {
            fatal.report(StartError::Cluster(format!(
                "the stream {name} was deleted and re-created under this server (created {identity}, now {created}): the new stream's events cannot be counted on top of the old ones; restart on the new stream after deleting the bucket {bucket} (the old counts are lost), or restore the old stream"
            )));
            return;
        }
        // Two servers that started together on a stream recording too few flags may each
        // have recorded their own: the one whose values the stream no longer holds stops.
        if let Some(pairs) = info.config.description.as_deref().and_then(recorded) {
            if let Err((flag, ours, theirs)) = compare_flags(&flags, &pairs) {
                fatal.report(StartError::Flags(format!(
                    "{flag} {ours} differs from the stream {name}'s {theirs}, recorded since this server started (another server started with other flags at the same time); every server of a stream must give the same {flag}"
                )));
                return;
            }
        }
        let last = info.state.last_sequence;
        let Some((fed, was)) = fed else {
            continue;
        };
        // Read back at every check, not only when the answer ends before `fed`: a stream that
        // went back and was written past `fed` between two checks ends after it again.
        match consume::read_back(&stream, fed, was).await {
            ReadBack::Same => behind = 0,
            ReadBack::Other => {
                fatal.report(consume::another_batch(&name, fed));
                return;
            }
            // The stream is past it: the message expired under the stream's limits.
            ReadBack::Missing if last >= fed => behind = 0,
            ReadBack::Missing => behind += 1,
            // "Missing twice in a row" means two checks whose answers end before `fed`.
            ReadBack::NoAnswer if last >= fed => behind = 0,
            ReadBack::NoAnswer => continue,
        }
        if behind >= 2 {
            fatal.report(StartError::Cluster(format!(
                "the stream {name} went back: it ends at {last}, but this server read it up to {fed}; acknowledged messages were lost, and the servers' counts may differ"
            )));
            return;
        }
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
            ("--cold-retention-hours", "cold_retention_hours", 720),
        ];
        let d = describe(&ours);
        assert_eq!(
            d,
            "hourtally events; retention_hours=48; max_future_hours=1; cold_retention_hours=720"
        );
        let pairs = recorded(&d).expect("ours");
        assert_eq!(compare_flags(&ours, &pairs), Ok(vec![]));
        // A stream an older server made records only the retention.
        let old = recorded("hourtally events; retention_hours=48").expect("ours");
        assert_eq!(
            compare_flags(&ours, &old),
            Ok(vec!["max_future_hours", "cold_retention_hours"])
        );
        // A server without a cold tier (0) and one with are refused on each other's stream.
        let none = recorded(
            "hourtally events; retention_hours=48; max_future_hours=1; cold_retention_hours=0",
        );
        assert_eq!(
            compare_flags(&ours, &none.expect("ours")),
            Err(("--cold-retention-hours", 720, "0".to_owned()))
        );
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
