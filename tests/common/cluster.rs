//! The cluster tests' harness (tests/cluster.rs): client threads that post and count what
//! was acknowledged, fresh reads, and questions to NATS itself.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::nats::NatsCluster;
use super::{parse_counts, Conn, TestServer, IO_TIMEOUT};

/// The tests each run a NATS cluster and several servers; on two cores they run one at a
/// time, so that elections and catch-up are not starved by another test's load.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one loader saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub clicks: u64,
    pub impressions: u64,
    pub refused: u64,
    /// Written and never answered (the server or the connection went away).
    pub unanswered: u64,
}

impl Tally {
    pub fn acked(&self) -> u64 {
        self.clicks + self.impressions
    }

    pub fn add(self, o: Tally) -> Tally {
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
/// `stop`. `live` counts its 204s as they arrive. A connection that fails (closed, reset, or
/// silent for the client's timeout) leaves the rest of its batch unanswered; then the thread
/// ends, or with `reconnect` goes on with the next batch on a new connection.
pub fn load(
    addr: SocketAddr,
    ts: u64,
    prefix: &str,
    max: u64,
    reconnect: bool,
    stop: Arc<AtomicBool>,
    live: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Tally> {
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        let mut t = Tally::default();
        let mut i = 0u64;
        'connect: while i < max && !stop.load(Ordering::Relaxed) {
            let Ok(stream) = TcpStream::connect_timeout(&addr, IO_TIMEOUT) else {
                if !reconnect {
                    return t;
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            let mut c = Conn::new(stream);
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
                    i += n;
                    if reconnect {
                        continue 'connect;
                    }
                    return t;
                }
                let mut failed = false;
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
                            failed = true;
                            break;
                        }
                    }
                }
                i += n;
                if failed {
                    if reconnect {
                        continue 'connect;
                    }
                    return t;
                }
            }
        }
        t
    })
}

/// A loader with its own stop flag and live count.
pub struct Loader {
    stop: Arc<AtomicBool>,
    live: Arc<AtomicU64>,
    pub thread: std::thread::JoinHandle<Tally>,
}

impl Loader {
    pub fn start(s: &TestServer, ts: u64, prefix: &str, max: u64) -> Self {
        Self::launch(s, ts, prefix, max, false)
    }

    /// A loader without end that replaces a failed connection and goes on ([`load`]).
    pub fn start_reconnecting(s: &TestServer, ts: u64, prefix: &str) -> Self {
        Self::launch(s, ts, prefix, u64::MAX, true)
    }

    fn launch(s: &TestServer, ts: u64, prefix: &str, max: u64, reconnect: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::new(AtomicU64::new(0));
        let thread = load(
            s.addr,
            ts,
            prefix,
            max,
            reconnect,
            stop.clone(),
            live.clone(),
        );
        Loader { stop, live, thread }
    }

    pub fn acked_so_far(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("loader thread")
    }
}

/// `GET ...&fresh=1` on `s`: the counts once `s` has applied what the stream held. After a
/// NATS node was killed the cluster may still be settling (a stream-info request or the
/// consumer's restart can outlast one fresh read's 5 s): a `504` is retried, for 30 s.
pub fn fresh_counts(s: &TestServer, ts: u64) -> (u64, u64, u64) {
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
pub fn assert_within(got: (u64, u64, u64), t: Tally, who: &str) {
    let (users, clicks, impressions) = got;
    let ok = |v: u64, acked: u64| acked <= v && v <= acked + t.unanswered;
    assert!(
        ok(users, t.acked()) && ok(clicks, t.clicks) && ok(impressions, t.impressions),
        "{who}: read {got:?}, acknowledged {t:?}"
    );
}

pub fn cluster_args(nats: &NatsCluster) -> Vec<String> {
    vec!["--nats".into(), nats.urls(), "--workers".into(), "1".into()]
}

pub fn start(args: &[String], extra: &[&str]) -> TestServer {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    TestServer::start(&all)
}

/// Runs a server with `args` and `extra` (ephemeral) that must refuse to start: its exit code
/// and stderr (`None`: it started, and was killed after 30 s).
pub fn start_refused(args: &[String], extra: &[&str]) -> (Option<i32>, String) {
    let mut all: Vec<&str> = vec!["--listen", "127.0.0.1:0", "--ephemeral"];
    all.extend(args.iter().map(String::as_str));
    all.extend_from_slice(extra);
    super::exit_of(&all, Duration::from_secs(30))
}

/// Waits (bounded) until `f` holds.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The NATS URLs, as the client library takes them.
pub fn nats_urls(nats: &NatsCluster) -> Vec<String> {
    nats.urls().split(',').map(str::to_owned).collect()
}

/// The stream's leader node, asked of NATS itself (for up to 10 s: a request can time out
/// while the machine is busy, or during an election).
pub fn stream_leader(nats: &NatsCluster, stream: &str) -> Option<String> {
    stream_leader_at(nats_urls(nats), stream)
}

/// [`stream_leader`], asked of the NATS servers at `urls`.
pub fn stream_leader_at(urls: Vec<String>, stream: &str) -> Option<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = async_nats::connect(urls).await.ok()?;
        let js = async_nats::jetstream::new(client);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let leader = async {
                let mut s = js.get_stream(stream).await.ok()?;
                let info = s.info().await.ok()?;
                info.cluster.as_ref()?.leader.clone()
            };
            if let Some(leader) = leader.await {
                return Some(leader);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// Keeps a trickle of POSTs going on `s` (at `ts`, counted in `t`) until it stores a snapshot
/// (a capture begins between batches once the interval has passed); returns the stream
/// sequence the snapshot covers.
pub fn post_until_snapshot(s: &TestServer, ts: u64, t: &mut Tally) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored = loop {
        assert!(Instant::now() < deadline, "no snapshot stored");
        let r = s.post(&format!(
            "/analytics?timestamp={ts}&user=trickle{}&click",
            t.clicks
        ));
        assert_eq!(r.status, 204, "{r:?}");
        t.clicks += 1;
        if let Some(line) = s.wait_for_line("snapshot stored", Duration::from_millis(200)) {
            break line;
        }
    };
    let covers: u64 = super::log_field(&stored, "covers")
        .and_then(|c| c.parse().ok())
        .expect("covers=");
    assert!(covers > 0, "{stored}");
    covers
}

/// Runs `f` with a JetStream context on `nats` (for what a test does to NATS directly).
pub fn with_jetstream<T>(
    nats: &NatsCluster,
    f: impl AsyncFnOnce(async_nats::jetstream::Context) -> T,
) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = async_nats::connect(nats_urls(nats))
            .await
            .expect("connect to NATS");
        f(async_nats::jetstream::new(client)).await
    })
}
