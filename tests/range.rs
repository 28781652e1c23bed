//! `GET /analytics/range` (README, "The API"), against the real binary over real TCP: unique
//! users over a range are the union of its hours' users, never their sum, under load, after
//! a kill -9 and its replay, and after a graceful stop and its snapshot, for hours in the ring
//! and hours in the cold tier; a range that reaches an hour whose users are not kept is
//! refused naming it, and one whose cold file is damaged fails naming the file; bad input
//! gets the range API's answers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{not_near_an_hour_boundary, now_ms, parse_counts, DataDir, Response, TestServer};
use hourtally::event::{fingerprint, Event, Kind, MILLIS_PER_HOUR};

const HOUR: u64 = MILLIS_PER_HOUR;

/// The hours' users and kinds, as the clients sent them (every POST was answered 204).
#[derive(Default, Clone)]
struct Model {
    users: BTreeMap<u64, BTreeSet<String>>,
    clicks: BTreeMap<u64, u64>,
    impressions: BTreeMap<u64, u64>,
}

impl Model {
    fn add(&mut self, hour: u64, user: &str, click: bool) {
        self.users.entry(hour).or_default().insert(user.to_string());
        let kind = if click {
            &mut self.clicks
        } else {
            &mut self.impressions
        };
        *kind.entry(hour).or_default() += 1;
    }

    fn merge(&mut self, o: Model) {
        for (h, us) in o.users {
            self.users.entry(h).or_default().extend(us);
        }
        for (h, c) in o.clicks {
            *self.clicks.entry(h).or_default() += c;
        }
        for (h, c) in o.impressions {
            *self.impressions.entry(h).or_default() += c;
        }
    }

    /// `(unique users over the hours, clicks, impressions)` of `first..=last`.
    fn range(&self, first: u64, last: u64) -> (u64, u64, u64) {
        let users: BTreeSet<&String> = self
            .users
            .range(first..=last)
            .flat_map(|(_, u)| u)
            .collect();
        let sum = |m: &BTreeMap<u64, u64>| m.range(first..=last).map(|(_, c)| c).sum();
        (
            users.len() as u64,
            sum(&self.clicks),
            sum(&self.impressions),
        )
    }
}

/// POSTs a click (or an impression) of `user` at `ts` on `conn`, checks its 204, and adds it
/// to `model`.
fn post_counted(conn: &mut common::Conn, model: &mut Model, ts: u64, user: &str, click: bool) {
    let kind = if click { "click" } else { "impression" };
    conn.write(
        format!("POST /analytics?timestamp={ts}&user={user}&{kind} HTTP/1.1\r\nHost: t\r\n\r\n")
            .as_bytes(),
    );
    let r = conn.response(false);
    assert_eq!(r.status, 204, "{r:?}");
    model.add(ts / HOUR, user, click);
}

/// `GET /analytics/range` from the start of hour `first` to the start of hour `last` on
/// `conn`: its counts, once it answered 200.
fn ask_range(conn: &mut common::Conn, first: u64, last: u64) -> (u64, u64, u64) {
    conn.write(
        format!(
            "GET /analytics/range?from={}&to={} HTTP/1.1\r\nHost: t\r\n\r\n",
            first * HOUR,
            last * HOUR
        )
        .as_bytes(),
    );
    let r = conn.response(false);
    assert_eq!(r.status, 200, "{r:?}");
    parse_counts(&r.body)
}

fn range(s: &TestServer, from: u64, to: u64) -> Response {
    s.get(&format!("/analytics/range?from={from}&to={to}"))
}

/// The answer for the hours `first..=last`, from inside the first to inside the last.
fn range_counts(s: &TestServer, first: u64, last: u64) -> (u64, u64, u64) {
    let r = range(s, first * HOUR + 17, last * HOUR + HOUR - 1);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    parse_counts(&r.body)
}

/// Every range of `hours` answers its model.
fn assert_every_range(s: &TestServer, model: &Model, hours: std::ops::RangeInclusive<u64>) {
    for first in hours.clone() {
        for last in first..=*hours.end() {
            assert_eq!(
                range_counts(s, first, last),
                model.range(first, last),
                "hours {first}..={last}"
            );
        }
    }
}

/// Four clients POST `per_client` events each over the hours `h-4..=h` (users from a pool of
/// 300, so that hours share most of them) while a fifth asks for ranges and checks that no
/// answer exceeds what the clients send in all. Returns what they sent.
fn load(s: &TestServer, h: u64, per_client: usize) -> Model {
    let addr = s.addr;
    let clients: Vec<_> = (0..4u64)
        .map(|c| {
            std::thread::spawn(move || {
                let mut model = Model::default();
                let mut conn = common::Conn::new(std::net::TcpStream::connect(addr).unwrap());
                let mut x = 0x2545_f491_4f6c_dd1d_u64 ^ (c + 1).wrapping_mul(0x9e37_79b9);
                for _ in 0..per_client {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let hour = h - x % 5;
                    let user = format!("u{}", (x >> 8) % 300);
                    let click = !(x >> 20).is_multiple_of(3);
                    let ts = hour * HOUR + (x >> 24) % HOUR;
                    post_counted(&mut conn, &mut model, ts, &user, click);
                }
                model
            })
        })
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut asked = 0;
            let mut conn = common::Conn::new(std::net::TcpStream::connect(addr).unwrap());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let first = h - 4 + asked % 5;
                let (u, c, i) = ask_range(&mut conn, first, h);
                // At most the 300 users of the pool, and never more events than sent.
                assert!(u <= 300 && u <= c + i, "{u} {c} {i}");
                assert!(c + i <= 4 * per_client as u64, "{c} {i}");
                asked += 1;
            }
            asked
        })
    };
    let mut model = Model::default();
    for c in clients {
        model.merge(c.join().expect("a client"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let asked = reader.join().expect("the reader");
    assert!(asked > 0);
    model
}

/// Waits (bounded) until every hour of the model reads its counts.
fn wait_applied(s: &TestServer, model: &Model) {
    for (&hour, users) in &model.users {
        let want = (
            users.len() as u64,
            model.clicks.get(&hour).copied().unwrap_or(0),
            model.impressions.get(&hour).copied().unwrap_or(0),
        );
        assert_eq!(s.wait_counts(hour * HOUR, want), want, "hour {hour}");
    }
}

/// Waits (bounded) until `hourtally_hours_frozen_total` is at least `n`.
fn wait_frozen(s: &TestServer, n: u64) {
    let frozen = || -> u64 {
        s.get("/metrics")
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("hourtally_hours_frozen_total "))
            .and_then(|v| v.parse().ok())
            .expect("hourtally_hours_frozen_total")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while frozen() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {n} hours frozen",
            frozen()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn unique_users_over_a_range_are_the_union_of_its_hours_under_load_and_after_restarts() {
    not_near_an_hour_boundary(Duration::from_secs(60));
    let h = now_ms() / HOUR;
    let dir = DataDir::new("range-union");
    let args = ["--data-dir", dir.arg()];
    let s = TestServer::start(&args);
    let model = load(&s, h, 1500);
    wait_applied(&s, &model);
    assert_every_range(&s, &model, h - 5..=h + 1);
    // Hours h-4 to h-2 are over (two behind h): frozen while the load ran (the last one
    // maybe just after), so ranges read frozen hours and live ones.
    wait_frozen(&s, 3);
    assert_every_range(&s, &model, h - 5..=h + 1);
    // Not a sum by accident: over the five hours the pool's users repeat.
    let summed: u64 = model.users.values().map(|u| u.len() as u64).sum();
    let (union, _, _) = model.range(h - 4, h);
    assert!(union < summed, "{union} {summed}");

    // A kill -9: the journal's replay lists every hour's users again.
    s.kill9();
    let s = TestServer::start(&args);
    wait_applied(&s, &model);
    assert_every_range(&s, &model, h - 5..=h + 1);
    // A restarted server freezes the hours that are over again, with no traffic.
    wait_frozen(&s, 3);
    assert_every_range(&s, &model, h - 5..=h + 1);

    // A graceful stop and a start from its snapshot (nothing left to replay).
    let (status, _) = s.terminate();
    assert!(status.success());
    let s = TestServer::start(&args);
    wait_applied(&s, &model);
    assert_every_range(&s, &model, h - 5..=h + 1);
    // A restarted server freezes the hours that are over again, with no traffic.
    wait_frozen(&s, 3);
    assert_every_range(&s, &model, h - 5..=h + 1);
}

/// A journal of `hours` hours before `h` (users from a pool of 40, so that hours share
/// most), for a ring of 3 slots, and what it holds.
fn journal_of_past_hours(dir: &DataDir, h: u64, hours: u64) -> Model {
    journal_of_past_hours_of(dir, h, hours, 30)
}

/// [`journal_of_past_hours`] with `per_hour` events an hour.
fn journal_of_past_hours_of(dir: &DataDir, h: u64, hours: u64, per_hour: usize) -> Model {
    let mut model = Model::default();
    let mut events = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for back in (1..=hours).rev() {
        for _ in 0..per_hour {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let user = format!("u{}", x % 40);
            let click = x >> 40 & 1 == 1;
            let kind = if click { Kind::Click } else { Kind::Impression };
            events.push(Event::new(
                (h - back) as u32,
                fingerprint(user.as_bytes()),
                kind,
            ));
            model.add(h - back, &user, click);
        }
    }
    dir.with_journal(3, &events);
    model
}

/// The hours `cold/` holds files of, once it holds `n` (bounded wait).
fn wait_cold_files(dir: &DataDir, n: usize) -> Vec<u64> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let hours = cold_files(dir);
        if hours.len() == n {
            return hours;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cold/ holds {hours:?}, not {n} hours"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Three clients POST `per_client` events each to the current hour `h` while a fourth asks
/// for ranges from `first` to `h` and checks each answer. Returns what they sent.
fn load_current_hour(s: &TestServer, h: u64, first: u64, per_client: usize) -> Model {
    let addr = s.addr;
    let clients: Vec<_> = (0..3u64)
        .map(|c| {
            std::thread::spawn(move || {
                let mut model = Model::default();
                let mut conn = common::Conn::new(std::net::TcpStream::connect(addr).unwrap());
                for i in 0..per_client as u64 {
                    let user = format!("u{}", (i * 7 + c * 13) % 60);
                    post_counted(&mut conn, &mut model, h * HOUR + i, &user, i % 3 != 0);
                }
                model
            })
        })
        .collect();
    let mut conn = common::Conn::new(std::net::TcpStream::connect(addr).unwrap());
    let mut model = Model::default();
    let mut asked = 0;
    while !clients.iter().all(|c| c.is_finished()) || asked == 0 {
        let (u, c, i) = ask_range(&mut conn, first + asked % 4, h);
        // At most the pools' 60 users, and never fewer than the past hours' events.
        assert!(u <= 60 && u <= c + i, "{u} {c} {i}");
        asked += 1;
    }
    for c in clients {
        model.merge(c.join().expect("a client"));
    }
    model
}

#[test]
fn hours_that_left_the_ring_are_counted_from_their_cold_files_under_load_and_after_restarts() {
    not_near_an_hour_boundary(Duration::from_secs(60));
    let h = now_ms() / HOUR;
    let dir = DataDir::new("range-cold");
    // Replaying 12 hours into a ring of 3: hours h-12..=h-4 leave it, into cold/.
    let mut model = journal_of_past_hours(&dir, h, 12);
    let args = ["--data-dir", dir.arg(), "--retention-hours", "3"];
    let s = TestServer::start(&args);
    let stored: Vec<u64> = (h - 12..=h - 4).collect();
    assert_eq!(wait_cold_files(&dir, 9), stored);
    // The current hour takes h-3's slot: h-3 leaves too.
    model.merge(load_current_hour(&s, h, h - 12, 400));
    wait_applied(&s, &model);
    let stored: Vec<u64> = (h - 12..=h - 3).collect();
    assert_eq!(wait_cold_files(&dir, 10), stored);
    assert_every_range(&s, &model, h - 13..=h);
    let metrics = s.get("/metrics").text();
    assert!(metrics.contains("\nhourtally_cold_hours 10\n"), "{metrics}");
    // Not a sum by accident: the hours share the pool's users.
    let summed: u64 = model.users.values().map(|u| u.len() as u64).sum();
    assert!(model.range(h - 12, h).0 < summed);

    // A kill -9: the replay makes the hours leave the ring again; their files are the same.
    s.kill9();
    let s = TestServer::start(&args);
    wait_applied(&s, &model);
    assert_eq!(wait_cold_files(&dir, 10), stored);
    assert_every_range(&s, &model, h - 13..=h);

    // A graceful stop and a start from its snapshot: the hours that left are in no journal
    // the server reads any more, only in their files.
    let (status, _) = s.terminate();
    assert!(status.success());
    let s = TestServer::start(&args);
    wait_applied(&s, &model);
    assert_every_range(&s, &model, h - 13..=h);

    // A damaged file: a range over its hour fails naming it; one without it is counted.
    let file = dir.0.join("cold").join(format!("{:010}.hcs", h - 8));
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();
    let r = range(&s, (h - 9) * HOUR, (h - 7) * HOUR);
    r.assert_reason(500, "cannot be read");
    assert!(
        r.text()
            .contains(&format!("cold/{:010}.hcs: checksum mismatch", h - 8)),
        "{}",
        r.text()
    );
    assert_eq!(range_counts(&s, h - 7, h), model.range(h - 7, h));
    assert!(s
        .get("/metrics")
        .text()
        .contains("hourtally_http_rejections_total{reason=\"cold_set_unreadable\"} 1"));
}

/// Review of issue 23's cold tier: a stop that came while the journal was replayed used to
/// find no store asked for (the writer asks after a batch, and had taken none), so its last
/// snapshot waited 30 s for the hours that had left and failed. Hours are stored as they
/// leave, during the replay too: the stop is prompt, and its snapshot stands with them.
#[test]
fn a_stop_during_a_replay_that_made_hours_leave_stores_them_and_is_prompt() {
    not_near_an_hour_boundary(Duration::from_secs(60));
    let h = now_ms() / HOUR;
    let dir = DataDir::new("range-cold-stop");
    // About a second or two of replay in a debug build.
    let model = journal_of_past_hours_of(&dir, h, 8, 150_000);
    let args = ["--data-dir", dir.arg(), "--retention-hours", "3"];
    let s = TestServer::start_unready(&args);
    s.signal("TERM");
    let (status, lines) = s.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status} {lines:?}");
    assert_eq!(
        wait_cold_files(&dir, 5),
        (h - 8..=h - 4).collect::<Vec<_>>()
    );
    let s = TestServer::start(&args);
    wait_applied(&s, &model);
    assert_every_range(&s, &model, h - 9..=h);
}

#[test]
fn hours_past_the_cold_retention_lose_their_files_and_a_range_over_them_is_refused() {
    not_near_an_hour_boundary(Duration::from_secs(90));
    let h = now_ms() / HOUR;
    let dir = DataDir::new("range-cold-retention");
    let mut model = journal_of_past_hours(&dir, h, 12);
    let s = TestServer::start(&[
        "--data-dir",
        dir.arg(),
        "--retention-hours",
        "3",
        "--cold-retention-hours",
        "5",
        "--snapshot-interval-s",
        "1",
    ]);
    // Every hour that left is stored: a file goes only once the older of the two kept
    // snapshots had taken an hour more than 5 hours after it.
    assert_eq!(
        wait_cold_files(&dir, 9),
        (h - 12..=h - 4).collect::<Vec<_>>()
    );
    // The current hour (h-3 leaves), and events while snapshots are taken (one a second,
    // when there is something new): the kept snapshots move on to newest hour h, and hours
    // before h-5 lose their files.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    let files = loop {
        let ts = h * HOUR + i;
        assert_eq!(
            s.post(&format!("/analytics?timestamp={ts}&user=n{i}&click"))
                .status,
            204
        );
        model.add(h, &format!("n{i}"), true);
        i += 1;
        let files = cold_files(&dir);
        if files == vec![h - 5, h - 4, h - 3] {
            break files;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cold/ holds {files:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(files.len(), 3);
    wait_applied(&s, &model);
    assert_eq!(range_counts(&s, h - 5, h), model.range(h - 5, h));
    let r = range(&s, (h - 6) * HOUR, h * HOUR);
    r.assert_reason(422, "past --cold-retention-hours");
    assert!(
        r.text().contains(&format!("{} ms", (h - 6) * HOUR)),
        "{}",
        r.text()
    );
    // Its totals stay.
    assert_eq!(s.counts((h - 6) * HOUR), model.range(h - 6, h - 6));
}

/// Review of issue 23's late events: the older kept snapshot's newest hour is what lets the
/// cold tier remove files, and it was known only for snapshots the running server wrote. With
/// snapshots only at stops, the older kept one is always the last run's, so no file was ever
/// removed. The snapshot a start restores from counts too.
#[test]
fn with_snapshots_only_at_stops_hours_past_the_cold_retention_still_lose_their_files() {
    not_near_an_hour_boundary(Duration::from_secs(60));
    let h = now_ms() / HOUR;
    let dir = DataDir::new("range-cold-stops");
    journal_of_past_hours(&dir, h, 12);
    let args = [
        "--data-dir",
        dir.arg(),
        "--retention-hours",
        "3",
        "--cold-retention-hours",
        "5",
        "--snapshot-interval-s",
        "0",
    ];
    // The first run stores every hour that left, and its stop writes the first snapshot.
    let s = TestServer::start(&args);
    assert_eq!(
        wait_cold_files(&dir, 9),
        (h - 12..=h - 4).collect::<Vec<_>>()
    );
    assert!(s.terminate().0.success());
    // The second restores it (newest hour h-1) and takes an event; its stop writes the second,
    // which makes the first the older kept one: hours before h-6 go.
    let s = TestServer::start(&args);
    let ts = h * HOUR;
    assert_eq!(
        s.post(&format!("/analytics?timestamp={ts}&user=n&click"))
            .status,
        204
    );
    assert!(s.terminate().0.success());
    assert_eq!(cold_files(&dir), (h - 6..=h - 3).collect::<Vec<_>>());
}

/// The hours `cold/` holds files of, now.
fn cold_files(dir: &DataDir) -> Vec<u64> {
    let mut hours: Vec<u64> = std::fs::read_dir(dir.0.join("cold"))
        .map(|entries| {
            entries
                .filter_map(|e| {
                    e.ok()?
                        .file_name()
                        .to_str()?
                        .strip_suffix(".hcs")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    hours.sort_unstable();
    hours
}

#[test]
fn a_range_that_reaches_an_hour_whose_users_are_not_kept_is_refused_naming_the_hour() {
    not_near_an_hour_boundary(Duration::from_secs(20));
    let h = now_ms() / HOUR;
    // A journal for a ring of 3 slots: replaying it leaves h-5 in the archive (h-2 took its
    // slot) and h-2, h-1 in the ring; h-4 and h-3 never had an event.
    let dir = DataDir::new("range-sealed");
    let events: Vec<Event> = [(5, "a"), (5, "b"), (2, "a"), (1, "a"), (1, "c")]
        .iter()
        .map(|&(back, user)| {
            Event::new((h - back) as u32, fingerprint(user.as_bytes()), Kind::Click)
        })
        .collect();
    dir.with_journal(3, &events);
    // No cold tier: a sealed hour keeps only its totals.
    let s = TestServer::start(&[
        "--data-dir",
        dir.arg(),
        "--retention-hours",
        "3",
        "--cold-retention-hours",
        "0",
    ]);
    assert_eq!(s.wait_counts((h - 1) * HOUR, (2, 2, 0)), (2, 2, 0));

    let r = range(&s, (h - 6) * HOUR, h * HOUR);
    r.assert_reason(422, "only its totals left");
    assert!(
        r.text().contains(&format!("{} ms", (h - 5) * HOUR)),
        "{}",
        r.text()
    );
    // From the hour after it: h-4 and h-3 are sealed too, but never had users.
    assert_eq!(range_counts(&s, h - 4, h), (2, 3, 0));
    // The hour itself still reads its totals.
    assert_eq!(s.counts((h - 5) * HOUR), (2, 2, 0));
    let metrics = s.get("/metrics").text();
    assert!(
        metrics.contains("hourtally_http_rejections_total{reason=\"range_without_users\"} 1"),
        "{metrics}"
    );
}

#[test]
fn bad_ranges_get_the_range_apis_answers() {
    let s = TestServer::start(&[]);
    let now = now_ms();
    for (query, status, reason) in [
        (String::new(), 400, "from: missing"),
        (format!("from={now}"), 400, "to: missing"),
        (format!("from=&to={now}"), 400, "from: empty"),
        (format!("from=x&to={now}"), 400, "not plain ASCII digits"),
        (
            format!("from={now}&to={}", now - HOUR),
            400,
            "from: after to",
        ),
        (
            format!("from={}&to={now}", now - 168 * HOUR),
            400,
            "more than 168 hours",
        ),
        (
            format!("from={now}&from={now}&to={now}"),
            400,
            "given more than once",
        ),
    ] {
        let r = s.get(&format!("/analytics/range?{query}"));
        r.assert_reason(status, reason);
    }
    // A week is the longest range by default.
    let r = range(&s, now - 167 * HOUR, now);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), "unique_users,0\nclicks,0\nimpressions,0\n");
    let r = s.send(b"POST /analytics/range?from=0&to=0 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    let mut c = s.connect();
    c.write(b"HEAD /analytics/range?from=0&to=0 HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.response(true);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("Content-Length"),
        Some(
            "unique_users,0\nclicks,0\nimpressions,0\n"
                .len()
                .to_string()
                .as_str()
        )
    );
}
