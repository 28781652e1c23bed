//! `GET /analytics/range` (README, "The API"), against the real binary over real TCP: unique
//! users over a range are the union of its hours' users, never their sum, under load, after
//! a kill -9 and its replay, and after a graceful stop and its snapshot, for hours in the ring
//! (hours in the cold tier: `cold.rs`); a range that reaches an hour whose users are not kept
//! is refused naming it; bad input gets the range API's answers.

mod common;

use std::time::Duration;

use common::ranges::{assert_every_range, post_while_asking, range, range_counts, wait_applied};
use common::{not_near_an_hour_boundary, now_ms, DataDir, Model, TestServer};
use hourtally::event::{fingerprint, Event, Kind, MILLIS_PER_HOUR};

const HOUR: u64 = MILLIS_PER_HOUR;

/// Four clients POST `per_client` events each over the hours `h-4..=h` (users from a pool of
/// 300, so that hours share most of them) while ranges are asked for and no answer may exceed
/// what the clients send in all. Returns what they sent.
fn load(s: &TestServer, h: u64, per_client: u64) -> Model {
    // The hour back from `h`, the user and the kind of client `c`'s `i`-th event, from a
    // mix of both (xorshift).
    let event = move |c: u64, i: u64| {
        let mut x = 0x2545_f491_4f6c_dd1d_u64 ^ (c + 1).wrapping_mul(0x9e37_79b9) ^ (i << 20);
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        let ts = (h - x % 5) * HOUR + (x >> 24) % HOUR;
        (
            ts,
            format!("u{}", (x >> 8) % 300),
            !(x >> 20).is_multiple_of(3),
        )
    };
    post_while_asking(
        s,
        4,
        per_client,
        event,
        |asked| h - 4 + asked % 5,
        h,
        |(u, c, i)| {
            // At most the 300 users of the pool, and never more events than sent.
            assert!(u <= 300 && u <= c + i, "{u} {c} {i}");
            assert!(c + i <= 4 * per_client, "{c} {i}");
        },
    )
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
