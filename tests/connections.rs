//! ARCHITECTURE.md, "Transport": the rows about time and connections (head and body
//! deadlines, idle keep-alive, the connection limit, memory under a huge header, the port),
//! against the real binary over real TCP.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Conn, TestServer};

#[test]
fn no_complete_head_in_time_is_408() {
    let s = TestServer::start(&["--head-timeout", "1"]);
    // Half a head, then silence.
    let mut c = s.connect();
    c.write(b"GET /healthz HTTP/1.1\r\nHost:");
    let started = Instant::now();
    let r = c.response(false);
    r.assert_reason(408, "request head");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(c.is_closed_by_server());
    // A connection that sends nothing at all.
    let mut c = s.connect();
    c.response(false).assert_reason(408, "request head");
    // A slow but steady sender within the limit is served.
    let mut c = s.connect();
    for chunk in [&b"GET /hea"[..], b"lthz HTTP/1.1\r\nHost: t\r\n", b"\r\n"] {
        c.write(chunk);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(c.response(false).status, 200);
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let s = TestServer::start(&["--idle-timeout", "1", "--head-timeout", "5"]);
    let mut c = s.connect();
    c.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(false).status, 200);
    let started = Instant::now();
    assert!(c.is_closed_by_server());
    let idle = started.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(4),
        "{idle:?}"
    );
}

/// Regression (hardening issue, item 5): a connection past the limit was closed with no
/// answer; now it gets 503 with Retry-After, then the close.
#[test]
fn connections_over_the_limit_get_503_and_are_closed() {
    let s = TestServer::start(&["--max-connections", "2"]);
    let mut a = s.connect();
    let mut b = s.connect();
    a.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    b.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(a.response(false).status, 200);
    assert_eq!(b.response(false).status, 200);
    let mut c = s.connect();
    let _ = c
        .reader
        .get_mut()
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response(false);
    r.assert_reason(503, "too many connections");
    assert_eq!(r.header("Retry-After"), Some("1"));
    assert!(c.is_closed_by_server(), "third connection was served");
    // The two open ones still work, and a place frees up when one closes.
    a.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(a.response(false).status, 200);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut d = s.connect();
        let _ = d
            .reader
            .get_mut()
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        if let Some(r) = d.try_response(false) {
            assert_eq!(r.status, 200);
            break;
        }
        assert!(Instant::now() < deadline, "no place freed after a close");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_64_mb_header_leaves_rss_within_a_few_mib() {
    let s = TestServer::start(&[]);
    // Warm up: a connection and a few requests, so lazily allocated state exists.
    for _ in 0..10 {
        assert_eq!(s.get("/healthz").status, 200);
    }
    let before = s.rss_kib();
    let stream = TcpStream::connect(s.addr).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        let mut sent = 0usize;
        if writer
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Huge: ")
            .is_ok()
        {
            for _ in 0..64 {
                match writer.write_all(&chunk) {
                    Ok(()) => sent += chunk.len(),
                    Err(_) => break, // the server closed on us, as it should
                }
            }
        }
        sent
    });
    let mut c = Conn::new(stream);
    let r = c.response(false);
    r.assert_reason(431, "head");
    let sent = sender.join().expect("sender");
    let after = s.rss_kib();
    assert!(
        after <= before + 4 * 1024,
        "RSS grew from {before} KiB to {after} KiB after a {sent}-byte header"
    );
    // The server still serves.
    assert_eq!(s.get("/healthz").status, 200);
}

#[test]
fn a_second_server_on_a_port_in_use_refuses_to_start() {
    // may's own bind sets SO_REUSEPORT, which would let a second server share the port and
    // silently take a part of the first one's connections and events.
    let s = TestServer::start(&[]);
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_hourtally"))
        .args(["--listen", &s.addr.to_string(), "--ephemeral"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start a second server");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = second.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second server started on {} (the port is shared)", s.addr);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut err)
        .expect("read");
    assert!(!status.success());
    assert!(err.contains("Address already in use"), "{err}");
    assert_eq!(s.get("/healthz").status, 200);
}

/// Regression (hardening issue, item 5): a body trickled a byte at a time held its connection
/// for as long as each byte came within the idle timeout (weeks, for a byte a minute). A body
/// now has `--head-timeout` from the end of its head: then 408 and a close.
#[test]
fn a_body_not_complete_within_the_deadline_is_408() {
    let s = TestServer::start(&["--head-timeout", "1"]);
    let mut c = s.connect();
    let started = Instant::now();
    // The request is answered once its head is here; its body is then read and dropped.
    c.write(b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nab");
    assert_eq!(c.response(false).status, 405);
    // Keep trickling: every byte comes well within the idle timeout.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(400));
        let _ = c.reader.get_mut().write_all(b"x");
    }
    let r = c.response(false);
    r.assert_reason(408, "body");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(c.is_closed_by_server());
}

/// A client that sends requests and never reads the answers: once the socket buffers are
/// full the server's write waits, in `wait_io` with its write deadline (10 s) in the alarm
/// cell, while the connection's read deadlines (1 s here) pass. Those do not wake it there
/// (`hourtally_connections_woken_total` counts the sweeper's wake-ups; before, a stale read
/// deadline woke it inside may's own timed write, whose timer the wake-up then removed from
/// the sweeper's thread); the server gives up on the connection once the write deadline
/// passes, and answers everyone else meanwhile.
#[test]
fn a_client_that_never_reads_is_given_up_after_the_write_timeout_and_others_are_answered() {
    let s = TestServer::start(&["--head-timeout", "1", "--idle-timeout", "1"]);
    // Open connections but the one that asks.
    let open = || s.metric("hourtally_connections_open") - 1;
    let woken_before = s.metric("hourtally_connections_woken_total");
    let (_stream, sender) = never_reading_client(&s);
    // The server is stuck writing to it: answers no longer leave.
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < Duration::from_secs(4) {
        assert_eq!(
            s.get("/healthz").status,
            200,
            "another client is not answered"
        );
        answered += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        open() >= 1,
        "the stuck connection closed before its write timed out"
    );
    // Its deadlines passed in the write, and the others' connections close at once.
    assert_eq!(
        s.metric("hourtally_connections_woken_total"),
        woken_before,
        "the sweeper woke a connection waiting to write before its write deadline"
    );
    // Given up within the write timeout (10 s) and the linger (2 s), with room for a busy
    // machine.
    let deadline = started + Duration::from_secs(40);
    while open() > 0 {
        assert!(
            Instant::now() < deadline,
            "a client that never reads still holds its connection after 40 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // What gave it up: the sweeper's wake-up at its write deadline.
    assert!(s.metric("hourtally_connections_woken_total") > woken_before);
    let sent = sender.join().expect("sender");
    assert!(
        sent > 0 && answered > 10,
        "sent {sent}, others answered {answered}"
    );
    assert_eq!(s.get("/healthz").status, 200);
}

/// A client of `s` that gets one answer (so that its connection waits for the next with a
/// deadline in its alarm cell), then sends requests and never reads the answers: a thousand
/// a batch, whose answers (the OpenAPI document each) are far more than both sockets'
/// buffers hold. Returns the socket (open until dropped) and the sender, which returns the
/// bytes it sent once a write fails or times out (20 s).
fn never_reading_client(s: &TestServer) -> (TcpStream, std::thread::JoinHandle<usize>) {
    let stream = TcpStream::connect(s.addr).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut first = Conn::new(stream.try_clone().expect("clone"));
    first.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(first.response(false).status, 200);
    let mut writer = stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let batch = b"GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n".repeat(1000);
        let mut sent = 0usize;
        while sent < 64 * batch.len() && writer.write_all(&batch).is_ok() {
            sent += batch.len();
        }
        sent
    });
    (stream, sender)
}

/// A stop while a connection writes to a client that reads nothing: the stop gives it up at
/// its write deadline (10 s; the sweeper runs until the connections are drained, so the
/// deadline wakes it), not at the drain's own bound (the write timeout plus 30 s), and
/// exits cleanly.
#[test]
fn a_stop_gives_up_on_a_client_that_never_reads_at_its_write_deadline() {
    let s = TestServer::start(&[]);
    let (_stream, _sender) = never_reading_client(&s);
    // Stuck: the connection's answers fill both buffers within a moment.
    std::thread::sleep(Duration::from_secs(2));
    let stopping = Instant::now();
    s.signal("TERM");
    let (status, lines) = s.wait_exit(Duration::from_secs(60));
    let took = stopping.elapsed();
    assert!(status.success(), "{status:?}: {lines:?}");
    assert!(
        took < Duration::from_secs(25),
        "the stop took {took:?}: the write deadline (10 s) did not end the stuck write"
    );
}
