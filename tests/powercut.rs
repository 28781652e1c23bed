//! Power loss, not just kill -9 (README, "Durability"): the real binary runs on a filesystem
//! that keeps only what was synced (`powercut`: file data once the file is fsync'ed or
//! fdatasync'ed, directory entries once the directory is), and the test cuts the power under
//! load, many times over, on the same data directory.
//!
//! For each `--fsync` policy: mount, then rounds of start the server (`--snapshot-interval-s
//! 1`, so snapshots are written while journal writes may be unsynced), POST from pipelining
//! clients, at a random moment (seeded: `POWERCUT_SEED` repeats a run) kill -9 the server and
//! then cut the filesystem (nothing can be written in between), restart on what is left.
//! Every third cut tears writes instead: each file keeps a seeded prefix of what it had not
//! synced (as if the OS had written that much back), so the journal can end in a torn group
//! and the start must cut it off.
//! Each client of each round posts to an hour of its own, every event as a user of its own,
//! so each hour tells exactly how many of that client's events came back: a connection's
//! events are journaled in the order they were answered, so what comes back is a prefix of
//! them, and the acknowledged ones lost are its last ones.
//!
//! What every policy must do: every start succeeds; nothing is counted twice (unique users
//! equal clicks, and no hour counts more than its client sent); what a start recovered is
//! never lost by a later cut. `always`: every 204 counts. `interval`: the acknowledged events
//! lost were all acknowledged in the last [`INTERVAL_LOSS_WINDOW`] before the cut.
//! `never`: the loss is reported, not bounded.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{now_ms, Conn, TestServer};
use powercut::PowerCut;

/// Cuts per policy.
const CUTS: usize = 6;
/// Pipelining clients per round, each with an hour of its own.
const CLIENTS: usize = 3;
/// POSTs a client writes at once.
const DEPTH: usize = 64;
/// The kill comes at a random moment in `SHORT_LOAD` after the clients start in even rounds
/// (before the server's first snapshot, due 1 s after its start)…
const SHORT_LOAD: (Duration, Duration) = (Duration::from_millis(100), Duration::from_millis(1000));
/// …and in `LONG_LOAD` in odd rounds (after one: a snapshot synced and renamed while journal
/// writes may not be).
const LONG_LOAD: (Duration, Duration) = (Duration::from_millis(1000), Duration::from_millis(2600));
/// A client's pause between batches: the load stays a few ten thousand events a second, so
/// the replays after each cut (a debug build) keep the test short.
const PACE: Duration = Duration::from_millis(2);
/// `--fsync interval` loses at most `--fsync-interval-ms` (100) of journal writes and the
/// events still queued (README, "Durability"). Acknowledged events lost must have been
/// acknowledged within this long before the kill: the interval, plus 900 ms for the queue
/// and for a debug build's writer waiting for one of two shared cores. Generous on purpose:
/// it catches a loss of seconds (a sync that never comes, a snapshot over unsynced writes),
/// not a late millisecond.
const INTERVAL_LOSS_WINDOW: Duration = Duration::from_millis(1000);

/// A small seeded generator (xorshift64*): the cut points of a run, repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A duration in `[lo, hi)`.
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = (hi - lo).as_millis() as u64;
        lo + Duration::from_millis(self.next() % span.max(1))
    }
}

/// The seed: `POWERCUT_SEED` if set, else the clock.
fn seed() -> u64 {
    std::env::var("POWERCUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() | 1)
}

/// What one client saw.
#[derive(Debug, Default)]
struct Client {
    /// When each 204 was read, in the order of the requests.
    acks: Vec<Instant>,
    /// POSTs written.
    sent: u64,
    /// POSTs answered 503 (the queue was full): never counted.
    refused: u64,
}

/// Posts clicks at `ts` as users `{tag}-0`, `{tag}-1`, … (every event a user of its own),
/// `DEPTH` at a time, until the server goes away.
fn poster(addr: SocketAddr, ts: u64, tag: String) -> std::thread::JoinHandle<Client> {
    std::thread::spawn(move || {
        let mut seen = Client::default();
        let Ok(stream) = TcpStream::connect(addr) else {
            return seen;
        };
        let mut c = Conn::new(stream);
        loop {
            let batch: String = (seen.sent..seen.sent + DEPTH as u64)
                .map(|i| {
                    format!(
                        "POST /analytics?timestamp={ts}&user={tag}-{i}&click HTTP/1.1\r\nHost: t\r\n\r\n"
                    )
                })
                .collect();
            if c.reader.get_mut().write_all(batch.as_bytes()).is_err() {
                return seen;
            }
            seen.sent += DEPTH as u64;
            for _ in 0..DEPTH {
                match c.try_response(false) {
                    Some(r) if r.status == 204 => seen.acks.push(Instant::now()),
                    Some(r) if r.status == 503 => seen.refused += 1,
                    Some(r) => panic!("unexpected answer to a POST: {r:?}"),
                    None => return seen,
                }
            }
            std::thread::sleep(PACE);
        }
    })
}

/// One client's hour, and what became of it.
struct Hour {
    /// A timestamp in the hour.
    ts: u64,
    /// What its client saw.
    client: Client,
    /// When the server was killed.
    killed: Instant,
    /// Its clicks when a start first read it (then it must never change).
    counted: Option<u64>,
}

/// What one policy's run found.
#[derive(Debug, Default)]
struct Figures {
    /// Cuts made.
    cuts: usize,
    /// POSTs answered 204.
    acknowledged: u64,
    /// Acknowledged events not counted after the cut.
    lost: u64,
    /// How long before its cut the earliest lost acknowledged event was answered.
    oldest_lost: Duration,
    /// Events counted that were sent but not (yet) acknowledged when the power went.
    unacknowledged_counted: u64,
    /// Starts that refused (each a failure).
    refused_starts: usize,
    /// Starts whose journal ended before their snapshot (the server went on from it).
    journal_behind_snapshot: usize,
    /// Starts that cut off a torn tail.
    torn_tails: usize,
    /// Cuts that tore writes (kept a prefix of each file's unsynced bytes).
    torn_cuts: usize,
    /// Starts that restored a snapshot (then replayed the journal after it).
    from_snapshot: usize,
}

/// Checks every hour a start can read: the new ones (first read now) against what their
/// client saw, the old ones against what an earlier start read.
fn check_hours(policy: &str, s: &TestServer, hours: &mut [Hour], f: &mut Figures) {
    for (k, h) in hours.iter_mut().enumerate() {
        let (users, clicks, impressions) = s.counts(h.ts);
        assert_eq!(
            (users, impressions),
            (clicks, 0),
            "{policy}, hour {k}: every event is a click of a user of its own, so unique users \
             must equal clicks (an event counted twice shows here)"
        );
        assert!(
            clicks <= h.client.sent,
            "{policy}, hour {k}: {clicks} counted, but only {} sent",
            h.client.sent
        );
        if let Some(before) = h.counted {
            assert_eq!(
                clicks, before,
                "{policy}, hour {k}: a start read {before} clicks, a later one {clicks}: a cut \
                 took what had been recovered (it was on disk, synced) or counted it again"
            );
            continue;
        }
        h.counted = Some(clicks);
        let acked = h.client.acks.len() as u64;
        f.acknowledged += acked;
        f.unacknowledged_counted += clicks.saturating_sub(acked);
        if clicks >= acked {
            continue;
        }
        // A connection's events are journaled in the order they were answered: the lost
        // acknowledged ones are its last.
        let lost = acked - clicks;
        let first_lost = h.client.acks[clicks as usize];
        let age = h.killed.saturating_duration_since(first_lost);
        f.lost += lost;
        f.oldest_lost = f.oldest_lost.max(age);
        assert_ne!(
            policy, "always",
            "hour {k}: {lost} of {acked} acknowledged events lost with --fsync always"
        );
        if policy == "interval" {
            assert!(
                age <= INTERVAL_LOSS_WINDOW,
                "hour {k}: {lost} acknowledged events lost with --fsync interval, the first of \
                 them answered {age:?} before the power went (more than {INTERVAL_LOSS_WINDOW:?})"
            );
        }
    }
}

/// Runs `CUTS` power losses under load with `--fsync policy` on one data directory.
fn run_policy(policy: &str, rng: &mut Rng) -> Figures {
    let mount = std::env::temp_dir().join(format!(
        "hourtally-powercut-{policy}-{}",
        std::process::id()
    ));
    // Declared first, dropped last: every server is gone before the unmount.
    let fs = PowerCut::mount(&mount).unwrap_or_else(|e| panic!("{e}"));
    let data = fs.path().join("data");
    let data = data.to_str().expect("a UTF-8 temp path");
    let args = [
        "--data-dir",
        data,
        "--fsync",
        policy,
        "--snapshot-interval-s",
        "1",
    ];
    let hour_ms = 3_600_000;
    let now = now_ms();
    let mut hours: Vec<Hour> = Vec::new();
    let mut f = Figures::default();
    for round in 0..=CUTS {
        let stderr = Arc::new(Mutex::new(String::new()));
        let s = match TestServer::try_start(&args, Arc::clone(&stderr)) {
            Ok(s) => s,
            Err(why) => {
                println!("{policy}: the start after cut {round} was refused: {why}");
                f.refused_starts += 1;
                return f;
            }
        };
        let early = s.early_lines();
        f.journal_behind_snapshot += early
            .iter()
            .filter(|l| l.contains("ends before the newest snapshot"))
            .count();
        f.torn_tails += early
            .iter()
            .filter(|l| l.contains("cut off a torn or corrupt tail"))
            .count();
        f.from_snapshot += early
            .iter()
            .filter(|l| l.contains(" recovered "))
            .filter(|l| common::log_field(l, "snapshot_covers").is_some_and(|c| c != "0"))
            .count();
        check_hours(policy, &s, &mut hours, &mut f);
        if round == CUTS {
            break;
        }
        let (lo, hi) = if round % 2 == 0 {
            SHORT_LOAD
        } else {
            LONG_LOAD
        };
        let load = rng.between(lo, hi);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                // Hours 1.. before now, one per client and round: inside the admitted window.
                let ts = now - (1 + (round * CLIENTS + c) as u64) * hour_ms;
                (ts, poster(s.addr, ts, format!("r{round}c{c}")))
            })
            .collect();
        std::thread::sleep(load);
        // Kill first and reap, then cut: the process can write nothing after the cut.
        s.kill9();
        let killed = Instant::now();
        // Every third cut tears writes: files keep a prefix of what they had not synced.
        if round % 3 == 2 {
            fs.cut_torn(rng.next());
            f.torn_cuts += 1;
        } else {
            fs.cut();
        }
        f.cuts += 1;
        for (ts, client) in clients {
            let client = client.join().expect("a client thread");
            hours.push(Hour {
                ts,
                client,
                killed,
                counted: None,
            });
        }
    }
    f
}

#[test]
fn power_losses_under_load_lose_only_what_each_fsync_policy_allows_and_never_refuse_a_start() {
    let started = Instant::now();
    let seed = seed();
    println!("powercut: seed {seed} (POWERCUT_SEED={seed} repeats these cut points)");
    let mut results = Vec::new();
    for (i, policy) in ["always", "interval", "never"].into_iter().enumerate() {
        let mut rng = Rng(seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1)));
        let f = run_policy(policy, &mut rng);
        println!(
            "{policy:>8}: {} cuts, {} acknowledged, {} lost (oldest answered {:?} before its \
             cut), {} counted unacknowledged, {} starts refused, {} from a snapshot, {} \
             journals behind their snapshot, {} torn tails cut off after {} torn cuts",
            f.cuts,
            f.acknowledged,
            f.lost,
            f.oldest_lost,
            f.unacknowledged_counted,
            f.refused_starts,
            f.from_snapshot,
            f.journal_behind_snapshot,
            f.torn_tails,
            f.torn_cuts
        );
        results.push((policy, f));
    }
    println!("powercut: {:?} in all", started.elapsed());
    for (policy, f) in &results {
        assert_eq!(
            f.refused_starts, 0,
            "{policy}: a start was refused after a power loss (its stderr is above)"
        );
        assert_eq!(f.cuts, CUTS, "{policy}");
        assert!(f.acknowledged > 0, "{policy}: no load reached the server");
    }
}
