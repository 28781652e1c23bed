//! Cluster mode (README, "Scale-out") against real `nats-server` processes: a three-node
//! JetStream cluster on loopback, started and stopped by each test, and several real
//! hourtally servers on it. Every count read back must be exactly what was acknowledged
//! (or, where a process was killed with answers in flight, between the acknowledged and the
//! acknowledged plus the unanswered).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::nats::NatsCluster;
use common::{log_field, now_ms, parse_counts, Conn, TestServer};

/// The tests each run a NATS cluster and several servers; on two cores they run one at a
/// time, so that elections and catch-up are not starved by another test's load.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one loader saw.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    clicks: u64,
    impressions: u64,
    refused: u64,
    /// Written and never answered (the server or the connection went away).
    unanswered: u64,
}

impl Tally {
    fn acked(&self) -> u64 {
        self.clicks + self.impressions
    }

    fn add(self, o: Tally) -> Tally {
        Tally {
            clicks: self.clicks + o.clicks,
            impressions: self.impressions + o.impressions,
            refused: self.refused + o.refused,
            unanswered: self.unanswered + o.unanswered,
        }
    }
}

/// A client thread posting up to `max` events at `ts`, 16 pipelined a write, each with a
/// user of its own (`{prefix}{i}`), clicks for even `i` and impressions for odd, until
/// `stop`. `live` counts its 204s as they arrive.
fn load(
    addr: SocketAddr,
    ts: u64,
    prefix: &str,
    max: u64,
    stop: Arc<AtomicBool>,
    live: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Tally> {
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        let mut t = Tally::default();
        let Ok(stream) = TcpStream::connect(addr) else {
            return t;
        };
        let mut c = Conn::new(stream);
        let mut i = 0u64;
        while i < max && !stop.load(Ordering::Relaxed) {
            let n = 16.min(max - i);
            let mut batch = String::new();
            for j in i..i + n {
                let kind = if j % 2 == 0 { "click" } else { "impression" };
                batch.push_str(&format!(
                    "POST /analytics?timestamp={ts}&user={prefix}{j}&{kind} HTTP/1.1\r\nHost: t\r\n\r\n"
                ));
            }
            if c.stream()
                .try_clone()
                .and_then(|mut s| s.write_all(batch.as_bytes()))
                .is_err()
            {
                t.unanswered += n;
                return t;
            }
            for j in i..i + n {
                match c.try_response(false) {
                    Some(r) if r.status == 204 => {
                        if j % 2 == 0 {
                            t.clicks += 1;
                        } else {
                            t.impressions += 1;
                        }
                        live.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(r) if r.status == 503 => t.refused += 1,
                    Some(r) => panic!("unexpected answer {r:?}"),
                    None => {
                        t.unanswered += i + n - j;
                        return t;
                    }
                }
            }
            i += n;
        }
        t
    })
}

/// A loader with its own stop flag and live count.
struct Loader {
    stop: Arc<AtomicBool>,
    live: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<Tally>,
}

impl Loader {
    fn start(s: &TestServer, ts: u64, prefix: &str, max: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(AtomicU64::new(0));
        let thread = load(s.addr, ts, prefix, max, stop.clone(), live.clone());
        Loader { stop, live, thread }
    }

    fn acked_so_far(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("loader thread")
    }
}

/// `GET ...&fresh=1` on `s`: the counts once `s` has applied what the stream held. After a
/// NATS node was killed the cluster may still be settling (a stream-info request or the
/// consumer's restart can outlast one fresh read's 5 s): a `504` is retried, for 30 s.
fn fresh_counts(s: &TestServer, ts: u64) -> (u64, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = s.get(&format!("/analytics?timestamp={ts}&fresh=1"));
        if r.status == 200 {
            return parse_counts(&r.body);
        }
        r.assert_reason(504, "fresh:");
        assert!(Instant::now() < deadline, "fresh reads never succeeded");
    }
}

/// Asserts that `got` is what `t` acknowledged, give or take what it left unanswered.
fn assert_within(got: (u64, u64, u64), t: Tally, who: &str) {
    let (users, clicks, impressions) = got;
    let ok = |v: u64, acked: u64| acked <= v && v <= acked + t.unanswered;
    assert!(
        ok(users, t.acked()) && ok(clicks, t.clicks) && ok(impressions, t.impressions),
        "{who}: read {got:?}, acknowledged {t:?}"
    );
}

fn cluster_args(nats: &NatsCluster) -> Vec<String> {
    vec!["--nats".into(), nats.urls(), "--workers".into(), "1".into()]
}

fn start(args: &[String], extra: &[&str]) -> TestServer {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    TestServer::start(&all)
}

/// Waits (bounded) until `f` holds.
fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

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

/// The NATS URLs, as the client library takes them.
fn nats_urls(nats: &NatsCluster) -> Vec<String> {
    nats.urls().split(',').map(str::to_owned).collect()
}

/// The stream's leader node, asked of NATS itself.
fn stream_leader(nats: &NatsCluster, stream: &str) -> Option<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = async_nats::connect(nats_urls(nats)).await.ok()?;
        let js = async_nats::jetstream::new(client);
        let mut s = js.get_stream(stream).await.ok()?;
        let info = s.info().await.ok()?;
        info.cluster.as_ref()?.leader.clone()
    })
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
    hourtally::journal::record::encode_group(&mut payload, 1, &events);
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
    // A capture begins between batches once the interval has passed: keep a trickle of
    // POSTs going until the snapshot is stored.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored = loop {
        assert!(Instant::now() < deadline, "no snapshot stored");
        let r = a.post(&format!(
            "/analytics?timestamp={ts}&user=trickle{}&click",
            t.clicks
        ));
        assert_eq!(r.status, 204, "{r:?}");
        t.clicks += 1;
        if let Some(line) = a.wait_for_line("snapshot stored", Duration::from_millis(200)) {
            break line;
        }
    };
    let covers: u64 = log_field(&stored, "covers")
        .and_then(|c| c.parse().ok())
        .expect("covers=");
    assert!(covers > 0, "{stored}");
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
    assert!(from >= covers, "{loaded} older than {stored}");
    let want = (t.acked(), t.clicks, t.impressions);
    assert_eq!(
        fresh_counts(&c, ts),
        want,
        "the server that restored a snapshot"
    );
    assert_eq!(fresh_counts(&a, ts), want, "A");
}
