//! Cluster mode (README, "Scale-out") against real `nats-server` processes: a three-node
//! JetStream cluster on loopback, started and stopped by each test, and several real
//! hourtally servers on it. Every count read back must be exactly what was acknowledged
//! (or, where a process was killed with answers in flight, between the acknowledged and the
//! acknowledged plus the unanswered).

mod common;

use std::time::{Duration, Instant};

use common::cluster::{
    assert_within, cluster_args, fresh_counts, nats_urls, post_until_snapshot, serial, start,
    stream_leader, wait_until, with_jetstream, Loader, Tally,
};
use common::nats::NatsCluster;
use common::{log_field, now_ms, parse_counts, TestServer};

#[test]
fn posts_spread_over_two_servers_read_the_same_exact_totals_on_three() {
    let _serial = serial();
    let nats = NatsCluster::start("spread", 3);
    let args = cluster_args(&nats);
    let (a, b, c) = (start(&args, &[]), start(&args, &[]), start(&args, &[]));
    let ts = now_ms();
    let la = Loader::start(&a, ts, "a", 3000);
    let lb = Loader::start(&b, ts, "b", 3000);
    let t = la
        .thread
        .join()
        .expect("a")
        .add(lb.thread.join().expect("b"));
    assert_eq!((t.acked(), t.refused, t.unanswered), (6000, 0, 0), "{t:?}");
    let want = (t.acked(), t.clicks, t.impressions);
    for (name, s) in [("A", &a), ("B", &b), ("C", &c)] {
        assert_eq!(fresh_counts(s, ts), want, "server {name}");
    }
}

#[test]
fn a_server_started_mid_load_converges_to_the_same_totals() {
    let _serial = serial();
    let nats = NatsCluster::start("midload", 3);
    let args = cluster_args(&nats);
    let (a, b) = (start(&args, &[]), start(&args, &[]));
    let ts = now_ms();
    let la = Loader::start(&a, ts, "a", 8000);
    let lb = Loader::start(&b, ts, "b", 8000);
    wait_until("some load is in", Duration::from_secs(30), || {
        la.acked_so_far() + lb.acked_so_far() > 2000
    });
    let c = start(&args, &[]);
    let t = la
        .thread
        .join()
        .expect("a")
        .add(lb.thread.join().expect("b"));
    assert_eq!((t.acked(), t.unanswered), (16_000, 0), "{t:?}");
    let want = (t.acked(), t.clicks, t.impressions);
    assert_eq!(fresh_counts(&c, ts), want, "the late server");
    assert_eq!(fresh_counts(&a, ts), want, "A");
}

#[test]
fn kill9_of_a_server_under_load_then_restart_gives_exact_totals_everywhere() {
    let _serial = serial();
    let nats = NatsCluster::start("kill9", 3);
    let args = cluster_args(&nats);
    let dir = std::env::temp_dir().join(format!("hourtally-cluster-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_str().expect("utf-8").to_owned();
    let a = start(&args, &["--data-dir", &dir_arg]);
    let b = start(&args, &[]);
    let ts = now_ms();
    let la = Loader::start(&a, ts, "a", u64::MAX);
    let lb = Loader::start(&b, ts, "b", u64::MAX);
    wait_until("load on both", Duration::from_secs(30), || {
        la.acked_so_far() > 1000 && lb.acked_so_far() > 1000
    });
    a.kill9();
    let ta = la.finish();
    std::thread::sleep(Duration::from_millis(200));
    let tb = lb.finish();
    let t = ta.add(tb);
    assert!(ta.acked() > 0 && tb.acked() > 0, "{ta:?} {tb:?}");
    // The same data directory: the same node id.
    let a = start(&args, &["--data-dir", &dir_arg]);
    let on_a = fresh_counts(&a, ts);
    let on_b = fresh_counts(&b, ts);
    assert_eq!(on_a, on_b, "A and B apply the same stream");
    assert_within(on_a, t, "after kill -9 of A");
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill9_of_the_stream_leader_under_load_keeps_posts_succeeding_and_totals_exact() {
    let _serial = serial();
    let mut nats = NatsCluster::start("leader", 3);
    let args = cluster_args(&nats);
    let a = start(&args, &["--log-timeout-s", "30"]);
    let b = start(&args, &["--log-timeout-s", "30"]);
    let ts = now_ms();
    let la = Loader::start(&a, ts, "a", u64::MAX);
    let lb = Loader::start(&b, ts, "b", u64::MAX);
    wait_until("load on both", Duration::from_secs(30), || {
        la.acked_so_far() > 500 && lb.acked_so_far() > 500
    });
    let leader = stream_leader(&nats, "hourtally").expect("the stream has a leader");
    let i = (0..nats.len())
        .find(|&i| nats.name(i) == leader)
        .expect("the leader is one of ours");
    nats.kill9(i);
    let at_kill = la.acked_so_far() + lb.acked_so_far();
    // POSTs go on succeeding once the others elect a new leader (some wait through it).
    wait_until(
        "POSTs succeed after the election",
        Duration::from_secs(60),
        || la.acked_so_far() + lb.acked_so_far() > at_kill + 2000,
    );
    let new_leader = stream_leader(&nats, "hourtally").expect("a new leader");
    assert_ne!(new_leader, leader);
    let t = la.finish().add(lb.finish());
    assert_eq!(t.refused, 0, "{t:?}");
    let on_a = fresh_counts(&a, ts);
    assert_eq!(on_a, fresh_counts(&b, ts));
    assert_within(on_a, t, "after the leader's kill -9");
}

#[test]
fn with_all_nats_down_posts_get_503_in_time_and_nothing_acknowledged_is_lost() {
    let _serial = serial();
    let mut nats = NatsCluster::start("down", 3);
    let args = cluster_args(&nats);
    let a = start(
        &args,
        &["--log-timeout-s", "2", "--fresh-timeout-ms", "500"],
    );
    let ts = now_ms();
    let before = Loader::start(&a, ts, "before", 2000)
        .thread
        .join()
        .expect("loader");
    assert_eq!(before.acked(), 2000, "{before:?}");
    for i in 0..nats.len() {
        nats.kill9(i);
    }
    let killed = Instant::now();
    // The first POSTs wait for the log, then are closed unanswered; once the log has
    // refused for --log-timeout, POSTs get 503 at once.
    let mut during = Tally::default();
    let mut n = 0u64;
    let refused_at = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "no 503 within the bound"
        );
        let mut c = a.connect();
        c.write(
            format!(
                "POST /analytics?timestamp={ts}&user=down{n}&click HTTP/1.1\r\nHost: t\r\n\r\n"
            )
            .as_bytes(),
        );
        n += 1;
        match c.try_response(false) {
            Some(r) if r.status == 503 => {
                r.assert_reason(503, "log:");
                assert_eq!(r.header("Retry-After"), Some("1"));
                break killed.elapsed();
            }
            Some(r) if r.status == 204 => during.clicks += 1,
            Some(r) => panic!("unexpected {r:?}"),
            None => during.unanswered += 1,
        }
    };
    assert!(
        refused_at < Duration::from_secs(2 + 6),
        "503 after {refused_at:?}"
    );
    // A fresh read cannot learn the stream's end: 504 after --fresh-timeout-ms.
    let r = a.get(&format!("/analytics?timestamp={ts}&fresh=1"));
    r.assert_reason(504, "fresh:");
    for i in 0..nats.len() {
        nats.restart(i);
    }
    for i in 0..nats.len() {
        nats.wait(i);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut after = Tally::default();
    loop {
        assert!(Instant::now() < deadline, "POSTs never succeeded again");
        let r = a.post(&format!(
            "/analytics?timestamp={ts}&user=after{n}&impression"
        ));
        n += 1;
        if r.status == 204 {
            after.impressions += 1;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = before.add(during).add(after);
    // The cluster may still be settling (a fresh read waits only 500 ms here): retry a 504.
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let r = a.get(&format!("/analytics?timestamp={ts}&fresh=1"));
        if r.status == 200 {
            break parse_counts(&r.body);
        }
        r.assert_reason(504, "fresh:");
        assert!(
            Instant::now() < deadline,
            "fresh reads never succeeded again"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_within(got, t, "after NATS came back");
}

#[test]
fn a_batch_published_twice_is_counted_once() {
    use hourtally::event::{fingerprint, Event, Kind};
    let _serial = serial();
    let nats = NatsCluster::start("dedup", 3);
    let args = cluster_args(&nats);
    let a = start(&args, &[]);
    let ts = now_ms();
    let hour = (ts / 3_600_000) as u32;
    let events: Vec<Event> = (0..10)
        .map(|i| Event::new(hour, fingerprint(format!("dup{i}").as_bytes()), Kind::Click))
        .collect();
    let mut payload = Vec::new();
    hourtally::record::encode_group(&mut payload, 1, &events);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let publish = |id: &str| {
        let (payload, urls) = (payload.clone(), nats_urls(&nats));
        rt.block_on(async move {
            let client = async_nats::connect(urls).await.expect("connect");
            let js = async_nats::jetstream::new(client);
            let message = async_nats::jetstream::message::PublishMessage::build()
                .payload(payload.into())
                .message_id(id);
            js.send_publish("hourtally.events", message)
                .await
                .expect("publish")
                .await
                .expect("ack")
                .duplicate
        })
    };
    // The same batch twice under one id (a retried publish): the second is a duplicate.
    assert!(!publish("test-retry-1"));
    assert!(publish("test-retry-1"));
    assert_eq!(fresh_counts(&a, ts), (10, 10, 0));
    // Under a new id it is a new batch: counted again (the clicks; the users are the same).
    assert!(!publish("test-retry-2"));
    assert_eq!(fresh_counts(&a, ts), (10, 20, 0));
}

#[test]
fn fresh_takes_one_or_zero() {
    let _serial = serial();
    let nats = NatsCluster::start("fresh", 1);
    let a = TestServer::start(&["--nats", &nats.urls(), "--stream-replicas", "1"]);
    let ts = now_ms();
    a.get(&format!("/analytics?timestamp={ts}&fresh=yes"))
        .assert_reason(400, "fresh:");
    a.get(&format!("/analytics?timestamp={ts}&fresh=1&fresh=1"))
        .assert_reason(400, "fresh:");
    assert_eq!(
        a.post(&format!("/analytics?timestamp={ts}&user=u&click"))
            .status,
        204
    );
    assert_eq!(fresh_counts(&a, ts), (1, 1, 0));
    let r = a.get(&format!("/analytics?timestamp={ts}&fresh=0"));
    assert_eq!(r.status, 200);
}

#[test]
fn a_new_server_restores_the_newest_snapshot_and_replays_the_stream_after_it() {
    let _serial = serial();
    let nats = NatsCluster::start("snapshot", 3);
    let args = cluster_args(&nats);
    let a = start(&args, &["--snapshot-interval-s", "1"]);
    let ts = now_ms();
    let mut t = Loader::start(&a, ts, "before", 2000)
        .thread
        .join()
        .expect("loader");
    let covers = post_until_snapshot(&a, ts, &mut t);
    t = t.add(
        Loader::start(&a, ts, "after", 2000)
            .thread
            .join()
            .expect("loader"),
    );
    let c = start(&args, &[]);
    let loaded = c
        .early_lines()
        .iter()
        .find(|l| l.contains("loaded the newest snapshot"))
        .unwrap_or_else(|| panic!("C restored no snapshot: {:?}", c.early_lines()));
    let from: u64 = log_field(loaded, "covers")
        .and_then(|c| c.parse().ok())
        .expect("covers=");
    assert!(
        from >= covers,
        "{loaded} older than the snapshot of {covers}"
    );
    let want = (t.acked(), t.clicks, t.impressions);
    assert_eq!(
        fresh_counts(&c, ts),
        want,
        "the server that restored a snapshot"
    );
    assert_eq!(fresh_counts(&a, ts), want, "A");
}

/// A server that cannot reach NATS at start (every node of its cluster is down) is not
/// ready, and its 503s say why: it waits for NATS; no journal is being replayed. Once NATS is
/// back it catches up and serves.
#[test]
fn a_server_waiting_for_nats_at_start_says_so_in_its_503s_then_serves() {
    let _serial = serial();
    let mut nats = NatsCluster::start("late", 3);
    for i in 0..nats.len() {
        nats.kill9(i);
    }
    let args = cluster_args(&nats);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = TestServer::start_unready(&args);
    let r = s.get("/readyz");
    assert_eq!(
        (r.status, r.text().as_str()),
        (503, "not ready: waiting for NATS\n"),
        "{r:?}"
    );
    let ts = now_ms();
    for r in [
        s.get(&format!("/analytics?timestamp={ts}")),
        s.post(&format!("/analytics?timestamp={ts}&user=a&click")),
        s.get(&format!("/analytics/hours?from={ts}&to={ts}")),
    ] {
        r.assert_reason(503, "waiting for NATS");
        assert!(!r.text().contains("journal"), "{r:?}");
        assert_eq!(r.header("Retry-After"), Some("1"));
    }
    for i in 0..nats.len() {
        nats.restart(i);
    }
    for i in 0..nats.len() {
        nats.wait(i);
    }
    wait_until("the server is ready", Duration::from_secs(60), || {
        s.get("/readyz").status == 200
    });
    let r = s.post(&format!("/analytics?timestamp={ts}&user=a&click"));
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(fresh_counts(&s, ts), (1, 1, 0));
}

/// The nats-server older than the supported ones that the test script installs (Debian's, in
/// /usr/sbin), or
/// `HOURTALLY_OLD_NATS_SERVER`.
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
    let mut b_args: Vec<&str> = vec!["--listen", "127.0.0.1:0", "--ephemeral"];
    b_args.extend(args.iter().map(String::as_str));
    let (code, err) = common::exit_of(&b_args, Duration::from_secs(30));
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
/// refused at start (exit 2). A stream an older server made, which records only the retention,
/// gets the rest recorded by the first server that starts on it.
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
        Some("hourtally events; retention_hours=48; max_future_hours=1")
    );
    let mut base: Vec<&str> = vec!["--listen", "127.0.0.1:0", "--ephemeral"];
    base.extend(args.iter().map(String::as_str));
    for (flag, value, theirs) in [
        ("--max-future-hours", "30", "1"),
        ("--retention-hours", "72", "48"),
    ] {
        let mut b = base.clone();
        b.extend([flag, value]);
        let (code, err) = common::exit_of(&b, Duration::from_secs(30));
        assert_eq!(code, Some(2), "{flag} {value} started: {err}");
        assert!(
            err.contains(&format!(
                "{flag} {value} differs from the stream hourtally's {theirs}"
            )),
            "{err}"
        );
    }
    let ts = now_ms();
    assert_eq!(
        a.post(&format!("/analytics?timestamp={ts}&user=u&click"))
            .status,
        204
    );
    assert_eq!(fresh_counts(&a, ts), (1, 1, 0));
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
    let mut b: Vec<&str> = vec!["--listen", "127.0.0.1:0", "--ephemeral"];
    b.extend(args.iter().map(String::as_str));
    let (code, err) = common::exit_of(&b, Duration::from_secs(30));
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
