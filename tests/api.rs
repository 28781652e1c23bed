//! ARCHITECTURE.md, "The API": the API table, row by row, against the real binary over real TCP.

mod common;

use common::{now_ms, TestServer};

const HOUR: u64 = 3_600_000;

fn post_q(server: &TestServer, query: &str) -> common::Response {
    server.post(&format!("/analytics?{query}"))
}

#[test]
fn post_accepted_is_204_with_an_empty_body_and_get_answers_exactly() {
    let s = TestServer::start(&[]);
    let ts = now_ms();
    for q in [
        "user=alice&click",
        "user=alice&impression",
        "user=bob&click=1",
        "user=Alice&impression",
    ] {
        let r = post_q(&s, &format!("timestamp={ts}&{q}"));
        assert_eq!(r.status, 204, "{q}: {r:?}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("Content-Length"), None);
    }
    // Alice and alice are two users.
    assert_eq!(s.wait_counts(ts, (3, 2, 2)), (3, 2, 2));
    let r = s.get(&format!("/analytics?timestamp={ts}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), "unique_users,3\nclicks,2\nimpressions,2\n");
    // Any timestamp of the same UTC hour answers the same.
    let hour_start = ts / HOUR * HOUR;
    assert_eq!(s.counts(hour_start), (3, 2, 2));
    assert_eq!(s.counts(hour_start + HOUR - 1), (3, 2, 2));
}

#[test]
fn get_for_an_hour_with_no_events_is_three_zeros() {
    let s = TestServer::start(&[]);
    for ts in [0, 1, now_ms(), now_ms() + 100 * HOUR, 253_402_300_799_999] {
        let r = s.get(&format!("/analytics?timestamp={ts}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "unique_users,0\nclicks,0\nimpressions,0\n");
    }
}

#[test]
fn timestamp_rows_are_400_naming_timestamp() {
    let s = TestServer::start(&[]);
    let bad = [
        "",
        "timestamp",
        "timestamp=",
        "timestamp=12x",
        "timestamp=-5",
        "timestamp=1e9",
        "timestamp=%31",
        "timestamp=253402300800000",
        "timestamp=99999999999999999999999999",
    ];
    for q in bad {
        s.get(&format!("/analytics?{q}"))
            .assert_reason(400, "timestamp");
        post_q(&s, &format!("{q}&user=a&click")).assert_reason(400, "timestamp");
    }
    // The largest timestamp is fine for a GET.
    assert_eq!(s.get("/analytics?timestamp=253402300799999").status, 200);
    // No query at all.
    s.get("/analytics").assert_reason(400, "timestamp");
}

#[test]
fn user_rows_are_400_naming_user() {
    let s = TestServer::start(&[]);
    let ts = now_ms();
    let long = "x".repeat(257);
    let bad = [
        format!("timestamp={ts}&click"),
        format!("timestamp={ts}&user&click"),
        format!("timestamp={ts}&user=&click"),
        format!("timestamp={ts}&user={long}&click"),
        format!("timestamp={ts}&user=%&click"),
        format!("timestamp={ts}&user=%G1&click"),
        format!("timestamp={ts}&user=ab%2&click"),
    ];
    for q in &bad {
        post_q(&s, q).assert_reason(400, "user");
    }
    // 256 bytes after decoding is the most, however it was escaped.
    let max = "%41".repeat(256);
    assert_eq!(
        post_q(&s, &format!("timestamp={ts}&user={max}&click")).status,
        204
    );
    assert_eq!(s.wait_counts(ts, (1, 1, 0)), (1, 1, 0));
}

#[test]
fn kind_rows_are_400() {
    let s = TestServer::start(&[]);
    let ts = now_ms();
    for q in [
        "user=a",
        "user=a&click&impression",
        "user=a&click=1&impression=0",
        "user=a&clicked",
    ] {
        post_q(&s, &format!("timestamp={ts}&{q}")).assert_reason(400, "click/impression");
    }
    // The same kind twice is not ambiguous.
    assert_eq!(
        post_q(&s, &format!("timestamp={ts}&user=a&click&click")).status,
        204
    );
    assert_eq!(s.wait_counts(ts, (1, 1, 0)), (1, 1, 0));
}

#[test]
fn a_parameter_given_twice_is_400_and_unknown_ones_are_ignored() {
    let s = TestServer::start(&[]);
    let ts = now_ms();
    post_q(&s, &format!("timestamp={ts}&timestamp={ts}&user=a&click"))
        .assert_reason(400, "ambiguous");
    post_q(&s, &format!("timestamp={ts}&user=a&user=b&click")).assert_reason(400, "user");
    s.get(&format!("/analytics?timestamp={ts}&timestamp=0"))
        .assert_reason(400, "timestamp");
    let r = post_q(
        &s,
        &format!("utm_source=x&timestamp={ts}&utm_source=y&user=a&click&&ref="),
    );
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(
        s.get(&format!("/analytics?timestamp={ts}&foo=1&foo=2"))
            .status,
        200
    );
    assert_eq!(s.wait_counts(ts, (1, 1, 0)), (1, 1, 0));
}

#[test]
fn user_names_are_percent_decoded_then_opaque() {
    let s = TestServer::start(&[]);
    let ts = now_ms();
    // Three spellings of one user, then a fourth name that differs only in case.
    for user in [
        "J%C3%BCrgen+K",
        "J%c3%bcrgen%20K",
        "J\u{fc}rgen K",
        "j%C3%BCrgen+K",
    ] {
        let user = user.replace(' ', "%20").replace('\u{fc}', "%C3%BC");
        assert_eq!(
            post_q(&s, &format!("timestamp={ts}&user={user}&impression")).status,
            204
        );
    }
    assert_eq!(s.wait_counts(ts, (2, 0, 4)), (2, 0, 4));
}

#[test]
fn a_post_for_a_future_hour_is_422() {
    let s = TestServer::start(&[]);
    let now = now_ms();
    // One hour ahead is allowed by default; two is not.
    assert_eq!(
        post_q(&s, &format!("timestamp={}&user=a&click", now + HOUR)).status,
        204
    );
    let far = (now / HOUR + 2) * HOUR;
    post_q(&s, &format!("timestamp={far}&user=a&click")).assert_reason(422, "future");
    let s = TestServer::start(&["--max-future-hours", "0"]);
    let next = (now / HOUR + 1) * HOUR;
    post_q(&s, &format!("timestamp={next}&user=a&click")).assert_reason(422, "future");
}

/// Regression (hardening issue, item 1): with admission by the slot alone, POST H-47, then
/// pipelined POSTs of H+1 and H-47 were all answered 204 while the writer dropped every
/// H-47 event queued behind an H+1 (40 × 204, 20 counted), and a fresh server counted 1970.
/// Admission by the clock refuses H-47 up front, and every 204 counts.
#[test]
fn a_post_older_than_the_admission_window_is_422_and_every_204_counts() {
    let s = TestServer::start(&[]);
    let now = now_ms();
    let h = now / HOUR;
    let at = |hour: u64| hour * HOUR + 1;
    post_q(&s, "timestamp=0&user=a&click").assert_reason(422, "too old");
    post_q(&s, &format!("timestamp={}&user=a&click", at(h - 47))).assert_reason(422, "too old");
    post_q(&s, &format!("timestamp={}&user=a&click", at(h - 46))).assert_reason(422, "too old");
    // The oldest hour taken is 45 before the clock's (48 - 1 future - 1 margin - 1).
    assert_eq!(
        post_q(&s, &format!("timestamp={}&user=a&click", at(h - 45))).status,
        204
    );
    // H-45 and H+1 are 46 hours apart: different slots of 48, never sealing each other.
    let mut c = s.connect();
    let mut batch = Vec::new();
    for i in 0..20 {
        for hour in [h + 1, h - 45] {
            batch.extend_from_slice(
                format!(
                    "POST /analytics?timestamp={}&user=p{i}&click HTTP/1.1\r\nHost: t\r\n\r\n",
                    at(hour)
                )
                .as_bytes(),
            );
        }
    }
    c.write(&batch);
    for _ in 0..40 {
        assert_eq!(c.response(false).status, 204);
    }
    assert_eq!(s.wait_counts(at(h + 1), (20, 20, 0)), (20, 20, 0));
    assert_eq!(s.wait_counts(at(h - 45), (21, 21, 0)), (21, 21, 0));
    // Nothing was dropped by the apply rule.
    let metrics = s.get("/metrics").text();
    assert!(
        metrics.contains("hourtally_events_dropped_sealed_total 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hourtally_http_rejections_total{reason=\"too_old_hour\"} 3\n"),
        "{metrics}"
    );
}

/// A retention the future window could seal is refused at start, with exit code 2 and a
/// message naming the flags; so is a flag out of its range.
#[test]
fn flags_that_do_not_fit_together_are_refused_at_start() {
    for args in [
        &["--retention-hours", "2", "--max-future-hours", "2"][..],
        &["--retention-hours", "1"],
        &["--retention-hours", "2"],
        &["--workers", "100000"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hourtally"))
            .args(["--listen", "127.0.0.1:0", "--ephemeral"])
            .args(args)
            .output()
            .expect("run hourtally");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let flag = args[0];
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}

/// Flags that contradict each other or say nothing (an empty NATS URL, a data directory for
/// a server that keeps nothing on disk, an acknowledgement mode without a cluster) are
/// refused at start: exit code 2 and one line on stderr naming the flags. A server that
/// starts instead is killed after a few seconds and fails the test.
#[test]
fn contradictory_or_empty_flags_are_refused_at_start_with_one_line() {
    let dir = std::env::temp_dir().join(format!("hourtally-refused-{}", std::process::id()));
    let dir = dir.to_str().expect("utf-8 temp path");
    for (args, names) in [
        (&["--ephemeral", "--nats", ""][..], &["--nats"][..]),
        (
            &["--ephemeral", "--nats", "nats://127.0.0.1:4222,"],
            &["--nats"],
        ),
        (
            &["--ephemeral", "--data-dir", dir],
            &["--ephemeral", "--data-dir"],
        ),
        (&["--ephemeral", "--ack", "local"], &["--ack", "--nats"]),
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hourtally"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run hourtally");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
            .expect("read stderr");
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(2),
            "{args:?} started instead of being refused; stderr: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        for name in names {
            assert!(err.contains(name), "{args:?}: {err} should name {name}");
        }
    }
    assert!(
        !std::path::Path::new(dir).exists(),
        "a refused start made {dir}"
    );
}

#[test]
fn a_full_queue_is_503_with_retry_after_and_nothing_is_silently_dropped() {
    // One core, a queue of one event: pipelined POSTs outrun the writer.
    let s = TestServer::start_on_one_core(&["--queue-capacity", "1", "--workers", "1"]);
    let ts = now_ms();
    let mut accepted = 0u64;
    let mut accepted_users = std::collections::HashSet::new();
    let mut refused = 0u64;
    let mut round = 0;
    while refused == 0 && round < 20 {
        round += 1;
        let mut c = s.connect();
        let mut batch = Vec::new();
        for i in 0..2000 {
            batch.extend_from_slice(
                format!(
                    "POST /analytics?timestamp={ts}&user=u{i}&click HTTP/1.1\r\nHost: t\r\n\r\n"
                )
                .as_bytes(),
            );
        }
        c.write(&batch);
        for i in 0..2000 {
            let r = c.response(false);
            match r.status {
                204 => {
                    accepted += 1;
                    accepted_users.insert(i);
                }
                503 => {
                    refused += 1;
                    assert_eq!(r.header("Retry-After"), Some("1"), "{r:?}");
                    r.assert_reason(503, "queue full");
                }
                other => panic!("unexpected {other}: {r:?}"),
            }
        }
    }
    assert!(refused > 0, "the queue never filled in {round} rounds");
    // Every 204 is counted, every 503 is not.
    let want = (accepted_users.len() as u64, accepted, 0);
    assert_eq!(s.wait_counts(ts, want), want);
}

#[test]
fn other_methods_are_405_with_allow_and_unknown_paths_404() {
    let s = TestServer::start(&[]);
    for m in ["PUT", "DELETE", "PATCH", "OPTIONS"] {
        let r =
            s.send(format!("{m} /analytics?timestamp=1 HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        r.assert_reason(405, "GET, HEAD or POST");
        assert_eq!(r.header("Allow"), Some("GET, HEAD, POST"));
    }
    // The read-only routes take GET and HEAD only (the dashboard and its files too).
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/analytics/hours",
        "/analytics/range",
        "/",
        "/assets/dashboard.js",
    ] {
        for m in ["POST", "PUT", "DELETE", "TRACE"] {
            let r = s.send(format!("{m} {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
            r.assert_reason(405, "GET or HEAD");
            assert_eq!(r.header("Allow"), Some("GET, HEAD"));
        }
    }
    // `/` is the dashboard (tests/dashboard.rs); nothing else at the root is.
    for path in [
        "/index.html",
        "/assets/",
        "/analytics/hours/",
        "/analytics/",
        "/analytic",
        "/Analytics?timestamp=1",
        "/healthz/x",
    ] {
        s.get(path).assert_reason(404, "not found");
    }
}
