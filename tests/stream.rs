//! Cluster mode when NATS or the stream is not what a server expects (README, "Scale-out"):
//! a nats-server older than the supported ones, a stream deleted and re-created, flags that
//! differ from the ones the stream records, a message removed from the stream, a stream that
//! went back and holds other batches where a server applied, and a stop with `--ack local`
//! while NATS is down. Each is refused or stopped loudly, with the way out,
//! never a silent stall or a lost 204. Against real `nats-server` processes.

mod common;

use std::time::Duration;

use common::cluster::{
    cluster_args, fresh_counts, post_until_snapshot, serial, start, start_refused, stream_leader,
    wait_until, with_jetstream, Loader,
};
use common::nats::NatsCluster;
use common::{now_ms, TestServer};

/// The nats-server older than the supported ones that the test script installs (Debian's, in
/// /usr/sbin), or `HOURTALLY_OLD_NATS_SERVER`.
fn old_nats_server() -> std::path::PathBuf {
    std::env::var_os("HOURTALLY_OLD_NATS_SERVER")
        .map_or_else(|| "/usr/sbin/nats-server".into(), Into::into)
}

#[test]
fn a_nats_server_older_than_the_supported_ones_is_refused_at_start_with_its_version() {
    let old = old_nats_server();
    let out = std::process::Command::new(&old)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (scripts/test.sh installs Debian's nats-server)",
                old.display()
            )
        });
    let version = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("nats-server: v")
        .to_owned();
    assert!(
        version.starts_with("2.9.") || version.starts_with("2.10."),
        "this test needs a nats-server older than 2.11, not {version}"
    );
    let _serial = serial();
    let nats = NatsCluster::start_with(old, "old", 1);
    let urls = nats.urls();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--ephemeral",
        "--nats",
        &urls,
        "--stream-replicas",
        "1",
    ];
    let (code, err) = common::exit_of(&args, Duration::from_secs(30));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("nats-server {version} is older than 2.11.0")),
        "{err}"
    );
}

/// A stream deleted and re-created under running servers (an operator's mistake, a script):
/// a server that restarts on the new, empty stream must not load its old snapshot and count
/// on from there (the new stream's sequences start again at 1), and the servers still running
/// must not serve counts that stopped moving. Both stop, saying why.
#[test]
fn a_stream_deleted_and_re_created_stops_the_servers_on_it_and_is_refused_at_restart() {
    let _serial = serial();
    let nats = NatsCluster::start("recreate", 1);
    let mut args = cluster_args(&nats);
    args.extend(["--stream-replicas".into(), "1".into()]);
    let a = start(&args, &["--snapshot-interval-s", "1"]);
    let ts = now_ms();
    let mut t = Loader::start(&a, ts, "old", 1000)
        .thread
        .join()
        .expect("loader");
    let covers = post_until_snapshot(&a, ts, &mut t);
    with_jetstream(&nats, async |js| {
        js.delete_stream("hourtally")
            .await
            .expect("delete the stream")
    });
    // B starts now: it creates an empty stream of the same name, finds A's snapshot, and
    // refuses to start on it.
    let (code, err) = start_refused(&args, &[]);
    assert_eq!(code, Some(1), "B started on the re-created stream: {err}");
    assert!(
        err.contains("the stream was deleted and re-created")
            || err.contains(&format!("before the newest snapshot ({covers})")),
        "{err}"
    );
    // A, still running, notices that its stream is another one, and stops.
    let (status, lines) = a.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("was deleted and re-created under this server")),
        "{lines:?}"
    );
}

/// The flags that decide what a `204` means (`--max-future-hours`, the admission window) and
/// how events apply (`--retention-hours`, the ring) must be one for every server of a stream:
/// a server with `--max-future-hours 30` beside one with the default answered 204 for events
/// the other's apply rule dropped as sealed. The stream records them; a server that differs is
/// refused at start (exit 2). So must `--cold-retention-hours` (which events are late), as
/// each server keeps it (0 with `--ephemeral`). A stream an older server made, which records
/// only the retention, gets the rest recorded by the first server that starts on it.
#[test]
fn servers_whose_admission_or_ring_flags_differ_from_the_streams_are_refused() {
    let _serial = serial();
    let nats = NatsCluster::start("flags", 1);
    with_jetstream(&nats, async |js| {
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "hourtally".into(),
            description: Some("hourtally events; retention_hours=48".into()),
            subjects: vec!["hourtally.events".into()],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .expect("an older server's stream")
    });
    let mut args = cluster_args(&nats);
    args.extend(["--stream-replicas".into(), "1".into()]);
    let a = start(&args, &[]);
    let description = with_jetstream(&nats, async |js| {
        let mut s = js.get_stream("hourtally").await.expect("the stream");
        s.info().await.expect("info").config.description.clone()
    });
    assert_eq!(
        description.as_deref(),
        Some("hourtally events; retention_hours=48; max_future_hours=1; cold_retention_hours=0")
    );
    for (flag, value, theirs) in [
        ("--max-future-hours", "30", "1"),
        ("--retention-hours", "72", "48"),
    ] {
        let (code, err) = start_refused(&args, &[flag, value]);
        assert_eq!(code, Some(2), "{flag} {value} started: {err}");
        assert!(
            err.contains(&format!(
                "{flag} {value} differs from the stream hourtally's {theirs}"
            )),
            "{err}"
        );
    }
    // A server with a cold tier (a data directory, and the default 720 hours) beside one that
    // keeps none (A, --ephemeral): it would count late the events A drops as sealed.
    let dir = common::DataDir::new("stream-flags-cold");
    let mut all: Vec<&str> = vec!["--listen", "127.0.0.1:0", "--data-dir", dir.arg()];
    all.extend(args.iter().map(String::as_str));
    let (code, err) = common::exit_of(&all, Duration::from_secs(30));
    assert_eq!(code, Some(2), "a server with a cold tier started: {err}");
    assert!(
        err.contains("--cold-retention-hours 720 differs from the stream hourtally's 0"),
        "{err}"
    );
    let ts = now_ms();
    assert_eq!(
        a.post(&format!("/analytics?timestamp={ts}&user=u&click"))
            .status,
        204
    );
    assert_eq!(fresh_counts(&a, ts), (1, 1, 0));
    // Two servers that start together on a stream that records too few flags may both
    // record their own, the last write winning: the running server whose values the stream
    // no longer holds stops within seconds (exit 2), rather than count by other rules.
    with_jetstream(&nats, async |js| {
        let mut s = js.get_stream("hourtally").await.expect("the stream");
        let mut config = s.info().await.expect("info").config.clone();
        config.description = Some(
            "hourtally events; retention_hours=48; max_future_hours=1; cold_retention_hours=720"
                .into(),
        );
        js.update_stream(&config).await.expect("update");
    });
    let (status, lines) = a.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains(
            "--cold-retention-hours 0 differs from the stream hourtally's 720, recorded since this server started"
        )),
        "{lines:?}"
    );
}

/// A message removed from the stream (through the JetStream API) is a gap that no server can
/// count past. A server that has to read it stops at once, naming the message and the way out
/// (before: it never became ready, re-created its consumer five times a second and logged a
/// WARN each time). The way out works: a server that applied the message stores a snapshot
/// past it at its graceful stop, and the stopped server then starts from that snapshot.
#[test]
fn a_message_removed_from_the_stream_stops_a_server_that_must_read_it_and_a_snapshot_past_it_is_the_way_out(
) {
    let _serial = serial();
    let nats = NatsCluster::start("gap", 1);
    let mut args = cluster_args(&nats);
    args.extend(["--stream-replicas".into(), "1".into()]);
    let a = start(&args, &[]);
    let ts = now_ms();
    // One message per POST (each waits for the log's acknowledgement), then a load.
    for i in 0..5 {
        let r = a.post(&format!("/analytics?timestamp={ts}&user=one{i}&click"));
        assert_eq!(r.status, 204, "{r:?}");
    }
    let t = Loader::start(&a, ts, "gap", 200)
        .thread
        .join()
        .expect("loader");
    let want = fresh_counts(&a, ts);
    assert_eq!(want.0, 5 + t.acked(), "{want:?} {t:?}");
    let removed = with_jetstream(&nats, async |js| {
        let s = js.get_stream("hourtally").await.expect("the stream");
        s.delete_message(2).await.expect("remove message 2")
    });
    assert!(removed);
    let (code, err) = start_refused(&args, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("has no message 2 (it was removed") && err.contains("snapshot that covers 2"),
        "{err}"
    );
    let (status, _) = a.terminate();
    assert!(status.success(), "{status:?}");
    let b = start(&args, &[]);
    assert_eq!(fresh_counts(&b, ts), want, "started from A's last snapshot");
}

/// Copies directory `from` into `to` (files and directories; nats-server's store has nothing
/// else).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("a directory");
    for entry in std::fs::read_dir(from).expect("read the directory") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("its type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// Copies node `i`'s store aside while the node is down (it is started again and waited
/// for): the store as it is now, for [`restore_store`].
fn copy_store(nats: &mut NatsCluster, i: usize) -> std::path::PathBuf {
    let store = nats.store(i).to_path_buf();
    let old = store.with_extension("old");
    nats.kill9(i);
    copy_dir(&store, &old);
    nats.restart(i);
    nats.wait(i);
    old
}

/// Puts node `i`'s store back to the copy `old` while the node is down: its stream goes
/// back to what it held then, acknowledged messages lost.
fn restore_store(nats: &mut NatsCluster, i: usize, old: &std::path::Path) {
    let store = nats.store(i).to_path_buf();
    nats.kill9(i);
    std::fs::remove_dir_all(&store).expect("remove the store");
    copy_dir(old, &store);
    nats.restart(i);
    nats.wait(i);
}

/// Publishes `n` empty messages (as fresh reads' markers are) to the stream, each waited
/// for: other messages at the sequences they take.
fn publish_markers(nats: &NatsCluster, n: usize) {
    with_jetstream(nats, async |js| {
        for _ in 0..n {
            js.publish("hourtally.events", "".into())
                .await
                .expect("publish")
                .await
                .expect("acknowledged");
        }
    });
}

/// Ten POSTs to `a` (each a message of the stream, which node `node` holds), the node's store
/// copied after the first five; then the store put back to that copy, and 20 other messages
/// published at once over the lost sequences and past them. What `a` said as it stopped
/// (within 30 s).
fn went_back_under(
    a: TestServer,
    nats: &mut NatsCluster,
    node: usize,
    tag: &str,
) -> (std::process::ExitStatus, Vec<String>) {
    let ts = now_ms();
    // One message per POST: each waits for the log's acknowledgement.
    let post = |i: u32| {
        let r = a.post(&format!("/analytics?timestamp={ts}&user={tag}{i}&click"));
        assert_eq!(r.status, 204, "{r:?}");
    };
    (0..5).for_each(post);
    assert_eq!(fresh_counts(&a, ts), (5, 5, 0));
    let old = copy_store(nats, node);
    // A takes POSTs again and applies five more messages (6 to 10, fresh markers aside).
    wait_until("A takes POSTs again", Duration::from_secs(30), || {
        a.post(&format!("/analytics?timestamp={ts}&user={tag}5&click"))
            .status
            == 204
    });
    (6..10).for_each(post);
    assert_eq!(fresh_counts(&a, ts), (10, 10, 0));
    restore_store(nats, node, &old);
    publish_markers(nats, 20);
    let stopped = a.wait_exit(Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&old);
    stopped
}

/// A NATS node whose store went back (restored from an older copy, as nats-server 2.9.10's
/// leader did after every node was killed: it lost acknowledged messages and gave their
/// sequences to new ones) under a server that applied the lost messages: the stream's end is
/// past the server's again, so nothing looked wrong, and the server counted on from there,
/// its totals different from every other server's for good. Now it reads back the message it
/// applied last before it feeds the first message of its consumer made again, finds another
/// batch there, and stops, saying so.
#[test]
fn a_stream_that_went_back_and_holds_other_batches_where_a_server_applied_stops_it() {
    let _serial = serial();
    let mut nats = NatsCluster::start("back", 1);
    let mut args = cluster_args(&nats);
    args.extend(["--stream-replicas".into(), "1".into()]);
    let a = start(&args, &[]);
    let (status, lines) = went_back_under(a, &mut nats, 0, "back");
    assert_eq!(status.code(), Some(1), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("holds another batch at sequence")
                && l.contains("the stream went back")),
        "{lines:?}"
    );
}

/// The same store gone back, on a node the server is not connected to (its own link never
/// drops), and written past where the server applied at once: the stream's end is past the
/// server's again, and async-nats's ordered consumer may re-create itself on the stream's
/// node without an error to the server. The consumer reads back what it fed last before the
/// first message of any consumer, and the watch every 2 s; the server stops.
#[test]
fn a_stream_that_went_back_on_another_node_and_was_written_past_a_server_stops_it() {
    let _serial = serial();
    let mut nats = NatsCluster::start("rewrite", 3);
    let args_on = |node: usize| -> Vec<String> {
        vec![
            "--nats".into(),
            nats.url(node),
            "--workers".into(),
            "1".into(),
            "--stream-replicas".into(),
            "1".into(),
        ]
    };
    let (on_0, on_1) = (args_on(0), args_on(1));
    let first = start(&on_0, &[]);
    // The stream (one replica) lives on one node; the server talks to another, which stays up.
    let leader = stream_leader(&nats, "hourtally").expect("the stream has a leader");
    let s = (0..3)
        .find(|&i| nats.name(i) == leader)
        .expect("the leader is one of ours");
    let a = if s == 0 {
        first.kill9();
        start(&on_1, &[])
    } else {
        first
    };
    // Either stop is right: the stream seen behind on two checks before the new messages
    // came (timing decides), or another batch found where the server applied.
    let (status, lines) = went_back_under(a, &mut nats, s, "rewrite");
    assert_eq!(status.code(), Some(1), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| (l.contains("holds another batch at sequence")
                && l.contains("the stream went back"))
                || l.contains("went back: it ends at")),
        "{lines:?}"
    );
}

/// `--ack local` answers `204` once an event is queued on this server. A graceful stop while
/// NATS is down waits as long as the log retries a batch (100 s), so the events answered
/// `204` reach the log when it comes back: before, the stop waited 10 s and then dropped them
/// with a WARN.
#[test]
fn a_graceful_stop_with_ack_local_while_nats_is_down_waits_for_the_log_and_loses_nothing() {
    let _serial = serial();
    let mut nats = NatsCluster::start("local", 1);
    let mut args = cluster_args(&nats);
    args.extend([
        "--stream-replicas".into(),
        "1".into(),
        "--ack".into(),
        "local".into(),
    ]);
    let mut a = start(&args, &[]);
    let ts = now_ms();
    for i in 0..5 {
        let r = a.post(&format!("/analytics?timestamp={ts}&user=up{i}&click"));
        assert_eq!(r.status, 204, "{r:?}");
    }
    // Answered once queued: in the log a moment later.
    wait_until(
        "the first five are in the log",
        Duration::from_secs(10),
        || fresh_counts(&a, ts) == (5, 5, 0),
    );
    nats.kill9(0);
    for i in 0..10 {
        let r = a.post(&format!("/analytics?timestamp={ts}&user=down{i}&click"));
        assert_eq!(r.status, 204, "--ack local answers once queued: {r:?}");
    }
    a.signal("TERM");
    // Longer than the old stop's 10 s: still waiting for the log.
    std::thread::sleep(Duration::from_secs(12));
    assert!(
        a.running(),
        "the stop gave up on the log while it still retried"
    );
    nats.restart(0);
    let (status, lines) = a.wait_exit(Duration::from_secs(90));
    assert!(status.success(), "{status:?} {lines:?}");
    assert!(!lines.iter().any(|l| l.contains("lost")), "{lines:?}");
    let b = start(&args, &[]);
    assert_eq!(fresh_counts(&b, ts), (15, 15, 0), "every 204 counted");
}
