//! Idempotent POSTs (README, "Retries that count once"): an event sent with an id — the
//! `event_id` parameter or the `Idempotency-Key` header — counts once in its hour however
//! often it is sent: on one server, after a kill -9 and the journal's replay, after a restore
//! from a snapshot, and across the servers of a cluster (a retry may reach another server).
//! Events without an id count every time, as they always did. Against the real binary.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{cluster_args, fresh_counts, serial, start};
use common::nats::NatsCluster;
use common::{now_ms, parse_counts, Conn, DataDir, TestServer};

/// A POST of a click by `user` at `ts`, with `extra` appended to its query and `headers`
/// (each ending in CRLF) in its head.
fn post_request(ts: u64, user: &str, extra: &str, headers: &str) -> String {
    format!("POST /analytics?timestamp={ts}&user={user}&click{extra} HTTP/1.1\r\nHost: t\r\n{headers}\r\n")
}

/// Writes `requests` pipelined on one new connection to `addr` and checks that every one is
/// answered 204.
fn post_all(addr: SocketAddr, requests: &[String]) {
    let mut c = Conn::new(std::net::TcpStream::connect(addr).expect("connect"));
    for chunk in requests.chunks(64) {
        c.write(chunk.concat().as_bytes());
        for r in chunk {
            let answer = c.response(false);
            assert_eq!(answer.status, 204, "{r:?}: {answer:?}");
        }
    }
}

/// `n` clicks of `ids` distinct ids (`{prefix}{i % ids}`), the user `u{i % ids}` each, every
/// third by the header instead of the parameter.
fn retries(ts: u64, prefix: &str, n: usize, ids: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let (user, id) = (format!("u{}", i % ids), format!("{prefix}{}", i % ids));
            if i % 3 == 0 {
                post_request(ts, &user, "", &format!("Idempotency-Key: \"{id}\"\r\n"))
            } else {
                post_request(ts, &user, &format!("&event_id={id}"), "")
            }
        })
        .collect()
}

#[test]
fn an_event_sent_again_with_its_id_counts_once_and_one_without_an_id_counts_each_time() {
    let s = TestServer::start(&[]);
    let ts = now_ms();
    post_all(
        s.addr,
        &[
            post_request(ts, "alice", "&event_id=e-1", ""),
            post_request(ts, "alice", "&event_id=e-1", ""),
            // The header names the same id, quoted or bare, and so does a percent-escape.
            post_request(ts, "alice", "", "Idempotency-Key: \"e-1\"\r\n"),
            post_request(ts, "alice", "", "idempotency-key: e-1\r\n"),
            post_request(ts, "alice", "&event_id=e%2D1", ""),
            // The first one counted wins: another user under the same id is a repeat too.
            post_request(ts, "bob", "&event_id=e-1", ""),
            // No id: each counts.
            post_request(ts, "alice", "", ""),
            post_request(ts, "alice", "", ""),
        ],
    );
    assert_eq!(s.wait_counts(ts, (1, 3, 0)), (1, 3, 0));
    assert_eq!(s.metric("hourtally_events_dropped_duplicate_total"), 5);
    // The same id in another hour is another event.
    let earlier = ts - 3_600_000;
    post_all(
        s.addr,
        &[post_request(earlier, "alice", "&event_id=e-1", "")],
    );
    assert_eq!(s.wait_counts(earlier, (1, 1, 0)), (1, 1, 0));
}

#[test]
fn retries_from_many_connections_at_once_count_each_id_once() {
    let s = TestServer::start(&[]);
    let ts = now_ms();
    // Four clients send the same 500 ids four times each, at once.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (addr, requests) = (s.addr, retries(ts, "r", 2000, 500));
            std::thread::spawn(move || post_all(addr, &requests))
        })
        .collect();
    for c in clients {
        c.join().expect("every POST answered 204");
    }
    // Repeats leave the counts as they are: a plain event queued after all of them tells
    // when the writer has applied them.
    post_all(s.addr, &[post_request(ts, "plain", "", "")]);
    assert_eq!(s.wait_counts(ts, (501, 501, 0)), (501, 501, 0));
    assert_eq!(
        s.metric("hourtally_events_dropped_duplicate_total"),
        8000 - 500
    );
}

#[test]
fn a_bad_event_id_is_refused_with_its_reason_and_counts_nothing() {
    let s = TestServer::start(&[]);
    let ts = now_ms();
    let send =
        |extra: &str, headers: &str| s.send(post_request(ts, "alice", extra, headers).as_bytes());
    send("&event_id=a", "Idempotency-Key: a\r\n").assert_reason(400, "give at most one");
    send("", "Idempotency-Key: a\r\nIdempotency-Key: a\r\n")
        .assert_reason(400, "Idempotency-Key: given more than once");
    send("&event_id=a&event_id=a", "").assert_reason(400, "event_id: given more than once");
    send("&event_id=", "").assert_reason(400, "event_id: empty");
    send("", "Idempotency-Key: \"\"\r\n").assert_reason(400, "Idempotency-Key: empty");
    send(&format!("&event_id={}", "x".repeat(129)), "")
        .assert_reason(400, "event_id: longer than 128 bytes");
    send("", &format!("Idempotency-Key: {}\r\n", "x".repeat(129)))
        .assert_reason(400, "Idempotency-Key: longer than 128 bytes");
    send("&event_id=%zz", "").assert_reason(400, "event_id: bad percent escape");
    assert_eq!(s.counts(ts), (0, 0, 0));
    let page = s.get("/metrics").text();
    assert!(page.contains("reason=\"event_id_both\"} 1\n"), "{page}");
}

/// The ids an hour has counted are in the journal's records and in its snapshots: a kill -9
/// (the journal replayed) and a graceful stop (the stop's snapshot restored) both come back
/// remembering them, so that the same events sent again count nowhere.
#[test]
fn ids_are_remembered_across_a_kill_9_and_a_restore_from_a_snapshot() {
    let dir = DataDir::new("idempotent");
    let ts = now_ms();
    let args = ["--data-dir", dir.arg()];
    let s = TestServer::start(&args);
    let events = retries(ts, "k", 300, 300);
    post_all(s.addr, &events);
    // Events without ids in the same journal, before and after.
    post_all(s.addr, &[post_request(ts, "plain", "", "")]);
    assert_eq!(s.wait_counts(ts, (301, 301, 0)), (301, 301, 0));
    std::thread::sleep(Duration::from_millis(300));
    s.kill9();

    let s = TestServer::start(&args);
    assert_eq!(s.counts(ts), (301, 301, 0), "replayed");
    post_all(s.addr, &events);
    post_all(s.addr, &[post_request(ts, "plain", "", "")]);
    assert_eq!(s.wait_counts(ts, (301, 302, 0)), (301, 302, 0));
    assert_eq!(s.metric("hourtally_events_dropped_duplicate_total"), 300);
    let (status, _) = s.terminate();
    assert!(status.success());

    let s = TestServer::start(&args);
    let recovered = s
        .early_lines()
        .iter()
        .find(|l| l.contains(" recovered "))
        .cloned()
        .expect("a recovered line");
    assert_eq!(
        common::log_field(&recovered, "events"),
        Some("0"),
        "restored from the stop's snapshot, nothing replayed: {recovered}"
    );
    assert_eq!(s.counts(ts), (301, 302, 0), "restored");
    post_all(s.addr, &events);
    // Repeats leave the counts as they are: wait for the writer by a plain event queued
    // after them (waiting for the counts alone read the metric with 535 of 600 applied).
    post_all(s.addr, &[post_request(ts, "plain-2", "", "")]);
    assert_eq!(s.wait_counts(ts, (302, 303, 0)), (302, 303, 0));
    assert_eq!(s.metric("hourtally_events_dropped_duplicate_total"), 600);
}

/// A retry that reaches another server of the cluster counts once too: the apply rule
/// remembers the id on every server, since each applies the same stream.
#[test]
fn in_a_cluster_a_retry_through_another_server_counts_once_on_every_server() {
    let _serial = serial();
    let nats = NatsCluster::start("idempotent", 3);
    let args = cluster_args(&nats);
    let (a, b) = (start(&args, &[]), start(&args, &[]));
    let ts = now_ms();
    // Both servers get every id twice, at once.
    let clients: Vec<_> = [a.addr, b.addr, a.addr, b.addr]
        .into_iter()
        .map(|addr| {
            let requests = retries(ts, "c", 1000, 400);
            std::thread::spawn(move || post_all(addr, &requests))
        })
        .collect();
    for c in clients {
        c.join().expect("every POST answered 204");
    }
    for (name, s) in [("A", &a), ("B", &b)] {
        assert_eq!(fresh_counts(s, ts), (400, 400, 0), "server {name}");
        assert_eq!(
            s.metric("hourtally_events_dropped_duplicate_total"),
            4000 - 400,
            "server {name}"
        );
    }
    // A server that joins later applies the same stream to the same answer.
    let c = start(&args, &[]);
    assert_eq!(fresh_counts(&c, ts), (400, 400, 0), "the late server");
    let r = c.get(&format!("/analytics?timestamp={ts}"));
    assert_eq!(parse_counts(&r.body), (400, 400, 0));
}
