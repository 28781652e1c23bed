//! `GET /analytics/hours` (README, "The API"), against the real binary over real TCP: every
//! row equals the GET of its hour, for hours in the ring, hours whose slot was recycled and
//! hours read from the archive; the CSV form; HEAD; every bad-input row with its reason
//! label in `/metrics`; other methods.

mod common;

use std::time::Duration;

use common::{not_near_an_hour_boundary, now_ms, DataDir, Response, TestServer};
use hourtally::event::{fingerprint, Event, Kind, MILLIS_PER_HOUR};

const HOUR: u64 = MILLIS_PER_HOUR;

fn get_with(s: &TestServer, target: &str, headers: &str) -> Response {
    s.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n").as_bytes())
}

/// `(hour_start_ms, unique_users, clicks, impressions)` of each JSON row.
fn json_rows(r: &Response) -> Vec<(u64, u64, u64, u64)> {
    let rows: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
    rows.as_array()
        .expect("an array")
        .iter()
        .map(|row| {
            let field = |name: &str| row[name].as_u64().unwrap_or_else(|| panic!("{row}"));
            assert_eq!(row.as_object().map(|o| o.len()), Some(4), "{row}");
            (
                field("hour_start_ms"),
                field("unique_users"),
                field("clicks"),
                field("impressions"),
            )
        })
        .collect()
}

/// The same rows read from the CSV answer, after checking its header line.
fn csv_rows(r: &Response) -> Vec<(u64, u64, u64, u64)> {
    let text = r.text();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("hour_start_ms,unique_users,clicks,impressions")
    );
    assert!(text.ends_with('\n'));
    lines
        .map(|l| {
            let v: Vec<u64> = l.split(',').map(|f| f.parse().expect("a number")).collect();
            assert_eq!(v.len(), 4, "{l}");
            (v[0], v[1], v[2], v[3])
        })
        .collect()
}

#[test]
fn rows_equal_per_hour_gets_across_ring_recycled_and_archived_hours() {
    not_near_an_hour_boundary(Duration::from_secs(20));
    let h = now_ms() / HOUR;
    // An earlier run's journal, for a ring of 3 slots: replaying it at start puts hours
    // h-8, h-7, h-5 and h-4 in the archive (each slot taken again by an hour 3 later) and
    // leaves h-2 and h-1 in the ring. No POST could reach them: the admission window of a
    // ring of 3 is [h, h+1].
    let dir = DataDir::new("hours-archive");
    let mut events = Vec::new();
    for (back, n, users) in [
        (8, 7, 3),
        (7, 2, 1),
        (5, 9, 4),
        (4, 4, 4),
        (2, 11, 5),
        (1, 3, 2),
    ] {
        for i in 0..n {
            let user = fingerprint(format!("user{}", i % users).as_bytes());
            let kind = if i % 3 == 0 {
                Kind::Impression
            } else {
                Kind::Click
            };
            events.push(Event::new((h - back) as u32, user, kind));
        }
    }
    dir.with_journal(3, &events);

    let s = TestServer::start(&[
        "--data-dir",
        dir.arg(),
        "--retention-hours",
        "3",
        "--max-future-hours",
        "1",
    ]);
    // Live events: the current hour, and the next one, which takes the slot of h-2 and so
    // sends h-2 to the archive while the server runs.
    for (ts, user, kind) in [
        (h * HOUR + 1, "alice", "click"),
        (h * HOUR + 2, "bob", "impression"),
        (h * HOUR + 3, "alice", "impression"),
        ((h + 1) * HOUR, "carol", "click"),
    ] {
        let r = s.post(&format!("/analytics?timestamp={ts}&user={user}&{kind}"));
        assert_eq!(r.status, 204, "{r:?}");
    }
    assert_eq!(s.wait_counts((h + 1) * HOUR, (1, 1, 0)), (1, 1, 0));
    assert_eq!(s.wait_counts(h * HOUR, (2, 1, 2)), (2, 1, 2));
    let metrics = s.get("/metrics").text();
    let archived: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hourtally_archived_hours "))
        .and_then(|v| v.parse().ok())
        .expect("hourtally_archived_hours");
    assert_eq!(archived, 5, "h-8, h-7, h-5, h-4 at replay, h-2 live");

    // From inside hour h-9 to inside hour h+1: 11 hours, the empty ones included.
    let (from, to) = ((h - 9) * HOUR + 1234, (h + 1) * HOUR + 5);
    let target = format!("/analytics/hours?from={from}&to={to}");
    let r = s.get(&target);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("Vary"), Some("Accept"));
    let rows = json_rows(&r);
    let starts: Vec<u64> = rows.iter().map(|r| r.0).collect();
    let want: Vec<u64> = (h - 9..=h + 1).map(|x| x * HOUR).collect();
    assert_eq!(starts, want);
    for &(start, users, clicks, impressions) in &rows {
        assert_eq!(
            (users, clicks, impressions),
            s.counts(start),
            "hour {} (h{:+})",
            start / HOUR,
            (start / HOUR) as i64 - h as i64
        );
    }
    // Not zeros by accident: every hour the journal or a POST filled answers its counts.
    let nonzero: Vec<i64> = rows
        .iter()
        .filter(|r| r.1 > 0)
        .map(|r| (r.0 / HOUR) as i64 - h as i64)
        .collect();
    assert_eq!(nonzero, [-8, -7, -5, -4, -2, -1, 0, 1]);

    // The same rows as CSV when the client asks for it, and JSON when it prefers JSON.
    let csv = get_with(&s, &target, "Accept: text/csv\r\n");
    assert_eq!(csv.status, 200, "{csv:?}");
    assert_eq!(csv.header("Content-Type"), Some("text/csv; charset=utf-8"));
    assert_eq!(csv_rows(&csv), rows);
    let json = get_with(&s, &target, "Accept: text/csv;q=0.5, application/json\r\n");
    assert_eq!(json.header("Content-Type"), Some("application/json"));
    assert_eq!(json_rows(&json), rows);

    // HEAD: the GET's headers, its length, no body (the next answer follows at once).
    for accept in ["", "Accept: text/csv\r\n"] {
        let mut c = s.connect();
        c.write(
            format!("HEAD {target} HTTP/1.1\r\nHost: t\r\n{accept}\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                .as_bytes(),
        );
        let head = c.response(true);
        assert_eq!(head.status, 200);
        let body = if accept.is_empty() {
            &r.body
        } else {
            &csv.body
        };
        assert_eq!(
            head.header("Content-Length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(c.response(false).text(), "ok\n");
    }

    // One hour, given as the same millisecond twice.
    let one = s.get(&format!(
        "/analytics/hours?from={}&to={}",
        h * HOUR,
        h * HOUR
    ));
    assert_eq!(json_rows(&one), [(h * HOUR, 2, 1, 2)]);
}

#[test]
fn every_bad_input_row_is_a_400_with_its_reason() {
    let s = TestServer::start(&["--max-range-hours", "48"]);
    let over = 253_402_300_800_000u64;
    let rows: &[(&str, &str, &str)] = &[
        ("", "from: missing", "range_bound_missing"),
        ("to=5", "from: missing", "range_bound_missing"),
        ("from=5", "to: missing", "range_bound_missing"),
        ("from=&to=5", "from: empty", "range_bound_empty"),
        ("from=5&to", "to: empty", "range_bound_empty"),
        (
            "from=5x&to=9",
            "from: not plain ASCII digits",
            "range_bound_not_digits",
        ),
        (
            "from=5&to=-9",
            "to: not plain ASCII digits",
            "range_bound_not_digits",
        ),
        (
            "from=%35&to=9",
            "from: not plain ASCII digits",
            "range_bound_not_digits",
        ),
        (
            "from=1.5&to=9",
            "from: not plain ASCII digits",
            "range_bound_not_digits",
        ),
        (
            &format!("from={over}&to=5"),
            "from: above 253402300799999",
            "range_bound_too_large",
        ),
        (
            &format!("from=5&to={over}"),
            "to: above 253402300799999",
            "range_bound_too_large",
        ),
        (
            "from=1&to=2&from=1",
            "from: given more than once",
            "duplicate_parameter",
        ),
        (
            "from=1&to=2&to=3",
            "to: given more than once",
            "duplicate_parameter",
        ),
        (
            "from=3600001&to=3600000",
            "from: after to",
            "range_reversed",
        ),
        // 49 hours: 0..=48.
        (
            "from=0&to=172800000",
            "more than 48 hours",
            "range_too_long",
        ),
    ];
    for (query, says, _) in rows {
        let target = format!("/analytics/hours?{query}");
        s.get(&target).assert_reason(400, says);
        // HEAD of the same: its status and length, no body.
        let mut c = s.connect();
        c.write(format!("HEAD {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let head = c.response(true);
        assert_eq!(head.status, 400, "{query}");
    }
    // 48 hours pass.
    let r = s.get("/analytics/hours?from=0&to=172799999");
    assert_eq!((r.status, json_rows(&r).len()), (200, 48), "{r:?}");

    // Other methods: 405, and the methods the path takes.
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let r = s.send(
            format!("{method} /analytics/hours?from=0&to=1 HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        );
        r.assert_reason(405, "GET or HEAD");
        assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    }

    // Each refusal counted under its reason (GET and HEAD alike).
    let metrics = s.get("/metrics").text();
    let mut labels: Vec<&str> = rows.iter().map(|r| r.2).collect();
    labels.dedup();
    for label in labels {
        let want = 2 * rows.iter().filter(|r| r.2 == label).count();
        let line = format!("hourtally_http_rejections_total{{reason=\"{label}\"}} {want}\n");
        assert!(metrics.contains(&line), "{line:?} not in\n{metrics}");
    }
    assert!(metrics.contains("hourtally_http_rejections_total{reason=\"method_not_allowed\"} 4\n"));
}

#[test]
fn the_default_limit_is_a_week() {
    let s = TestServer::start(&[]);
    let week = 168 * HOUR;
    let r = s.get(&format!("/analytics/hours?from={week}&to={}", 2 * week - 1));
    assert_eq!((r.status, json_rows(&r).len()), (200, 168), "{r:?}");
    s.get(&format!("/analytics/hours?from={week}&to={}", 2 * week))
        .assert_reason(400, "more than 168 hours (--max-range-hours)");
}
