//! Cluster mode (README, "Scale-out") against real `nats-server` processes: a three-node
//! JetStream cluster on loopback, started and stopped by each test, and several real
//! hourtally servers on it. Every count read back must be exactly what was acknowledged
//! (or, where a process was killed with answers in flight, between the acknowledged and the
//! acknowledged plus the unanswered).

mod common;

use std::time::{Duration, Instant};

use common::cluster::{
    assert_within, cluster_args, fresh_counts, nats_urls, post_until_snapshot, serial, start,
    stream_leader, wait_until, Loader, Tally,
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
    // A data directory of its own: every server of a stream keeps the same cold tier (the
    // stream records --cold-retention-hours, and an --ephemeral server keeps none).
    let b_dir = common::DataDir::new("cluster-kill9-b");
    let b = start(&args, &["--data-dir", b_dir.arg()]);
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
            use async_nats::jetstream::context::PublishErrorKind;
            let client = async_nats::connect(urls).await.expect("connect");
            let js = async_nats::jetstream::new(client);
            // The node this client reached may not know the stream yet (the server created it
            // through another node a moment ago): wait for it, up to 10 s.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let message = async_nats::jetstream::message::PublishMessage::build()
                    .payload(payload.clone().into())
                    .message_id(id);
                let ack = js
                    .send_publish("hourtally.events", message)
                    .await
                    .expect("publish")
                    .await;
                match ack {
                    Err(e)
                        if e.kind() == PublishErrorKind::StreamNotFound
                            && Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    ack => break ack.expect("ack").duplicate,
                }
            }
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

/// Unique users over ranges reach into the cold tier on every server of a cluster alike:
/// each server stores the hours that leave its ring from the stream, late events for them
/// are counted on every server, and a server that catches up from a snapshot fetches from
/// the bucket the files of the hours that left before it (it never saw them leave).
#[test]
fn every_server_answers_ranges_over_cold_hours_and_late_events_alike_and_a_new_one_fetches_the_files(
) {
    use common::ranges::{assert_every_range, post_counted};
    use common::{not_near_an_hour_boundary, DataDir, Model};
    const HOUR: u64 = hourtally::event::MILLIS_PER_HOUR;
    let _serial = serial();
    not_near_an_hour_boundary(Duration::from_secs(90));
    let nats = NatsCluster::start("cold", 3);
    let dirs = [
        DataDir::new("cluster-cold-a"),
        DataDir::new("cluster-cold-b"),
        DataDir::new("cluster-cold-c"),
    ];
    let server = |dir: &DataDir| {
        let mut args = cluster_args(&nats);
        args.extend(["--retention-hours", "3", "--snapshot-interval-s", "1"].map(str::to_owned));
        start(&args, &["--data-dir", dir.arg()])
    };
    let (a, b) = (server(&dirs[0]), server(&dirs[1]));
    let h = now_ms() / HOUR;
    let mut model = Model::default();
    let (mut on_a, mut on_b) = (a.connect(), b.connect());
    // Hours h-12 ..= h in order, half through each server (users from a pool of 40): each
    // hour from h-9 on makes an older one leave every ring of 3 slots.
    for back in (0..=12u64).rev() {
        for i in 0..20u64 {
            let user = format!("u{}", (i * 7 + back * 3) % 40);
            let conn = if i % 2 == 0 { &mut on_a } else { &mut on_b };
            post_counted(conn, &mut model, (h - back) * HOUR + i, &user, i % 3 != 0);
        }
    }
    // Late events for hours that left the rings: users they had, and new ones.
    for (back, user) in [
        (10, "u3"),
        (10, "late1"),
        (7, "late1"),
        (5, "u9"),
        (5, "late2"),
    ] {
        post_counted(&mut on_a, &mut model, (h - back) * HOUR + 7, user, true);
        post_counted(&mut on_b, &mut model, (h - back) * HOUR + 8, user, false);
    }
    let check = |s: &TestServer, model: &Model, who: &str| {
        for hour in h - 12..=h {
            let want = model.hour(hour);
            assert_eq!(s.wait_counts(hour * HOUR, want), want, "{who}: hour {hour}");
        }
        assert_every_range(s, model, h - 12..=h);
    };
    check(&a, &model, "A");
    check(&b, &model, "B");

    // A snapshot in the bucket (a trickle of POSTs of hour h until one is stored), then a
    // server with an empty data directory: it restores the snapshot, so it never sees the
    // hours before it leave its ring; their users come from the bucket.
    let mut t = Tally::default();
    post_until_snapshot(&a, h * HOUR + 1, &mut t);
    for i in 0..t.clicks {
        model.add(h, &format!("trickle{i}"), true);
    }
    let c = server(&dirs[2]);
    let fetched = c
        .early_lines()
        .iter()
        .find(|l| l.contains("fetched the cold tier's files"))
        .unwrap_or_else(|| panic!("C fetched no cold files: {:?}", c.early_lines()));
    let n: u64 = log_field(fetched, "fetched")
        .and_then(|n| n.parse().ok())
        .expect("fetched=");
    assert!(n >= 9, "{fetched}");
    check(&c, &model, "C");
    check(&a, &model, "A, after");
    // A late event after C joined counts on all three alike.
    let mut on_c = c.connect();
    post_counted(&mut on_c, &mut model, (h - 11) * HOUR, "late3", true);
    for (s, who) in [(&a, "A"), (&b, "B"), (&c, "C")] {
        check(s, &model, who);
    }
}
