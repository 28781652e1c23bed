//! Tests of `http::session`.

use super::*;
use crate::http::limits::Limits;
use crate::http::routes::Admission;
use crate::ring::Ring;
use crate::sync::Arc;
use crate::writer::Ingest;

fn service() -> Service {
    let service = Service::new(
        Arc::new(Ring::new(48)),
        Arc::new(Ingest::new(1024)),
        Limits::default(),
        Admission::new(48, 1).expect("a window"),
    );
    service.set_ready();
    service
}

fn feed_all(service: &Service, input: &[u8]) -> (String, Fed) {
    let mut s = Session::new(service);
    let mut out = Vec::new();
    let mut clock = Clock::default();
    clock.set(1000 * 3_600_000);
    let o = s.feed(input, &clock, &mut out);
    (String::from_utf8_lossy(&out).into_owned(), o)
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let service = service();
    let req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /heal";
    let (out, o) = feed_all(&service, req);
    assert_eq!(o.answered, 3);
    assert_eq!(o.consumed, req.len() - b"GET /heal".len());
    assert!(!o.close);
    let statuses: Vec<&str> = out
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &out[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "404", "200"]);
}

#[test]
fn a_body_is_skipped_not_executed() {
    let service = service();
    let body = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut req = format!(
        "POST /analytics?timestamp=3600000000&user=a&click HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let (out, o) = feed_all(&service, &req);
    assert_eq!((o.answered, o.consumed), (1, req.len()));
    assert!(out.starts_with("HTTP/1.1 204 No Content\r\n"), "{out}");
    assert!(!out.contains("200"), "{out}");
}

#[test]
fn framing_errors_close_with_their_status() {
    let service = service();
    let cases: [(&[u8], &str, &str); 12] = [
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
            "400",
            "not a number",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "400",
            "different values",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            "501",
            "Transfer-Encoding",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n",
            "413",
            "body",
        ),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            "400",
            "malformed",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
            "400",
            "malformed",
        ),
        (b"GET / HTTP/1.1\r\n\r\n", "400", "Host"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "400",
            "Host",
        ),
        (
            b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
            "400",
            "Host",
        ),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", "505", "version"),
        (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", "505", "version"),
        (b"GET / FTP/1.1\r\nHost: x\r\n\r\n", "400", "malformed"),
    ];
    for (req, status, reason) in cases {
        let (out, o) = feed_all(&service, req);
        assert!(o.close, "{out}");
        assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{out}");
        assert!(out.contains("Connection: close\r\n"), "{out}");
        assert!(out.contains(reason), "{reason}: {out}");
    }
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    let service = service();
    let (out, o) = feed_all(&service, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert!(o.close && out.contains("Connection: close\r\n"));
    let (out, o) = feed_all(
        &service,
        b"GET /healthz HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
    );
    assert!(
        !o.close && out.contains("Connection: keep-alive\r\n"),
        "{out}"
    );
    let (out, o) = feed_all(
        &service,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(o.close && out.contains("Connection: close\r\n"));
}

#[test]
fn an_http10_request_without_host_is_served() {
    let service = service();
    let (out, _) = feed_all(&service, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
}

/// A head of exactly `max_head_bytes` is served; one byte more is refused, as 414 when
/// the request line (with its CRLF) alone is over the limit and 431 otherwise.
#[test]
fn head_limits_are_exact_at_the_boundary() {
    let service = service();
    let max = service.limits.max_head_bytes;
    let head = |line_len: usize, head_len: usize| {
        let prefix = "GET /healthz?";
        let line = format!(
            "{prefix}{} HTTP/1.1\r\n",
            "a".repeat(line_len - prefix.len() - 11)
        );
        assert_eq!(line.len(), line_len);
        let host = "Host: x\r\n";
        let pad = head_len - line.len() - host.len() - "\r\n".len() - "X: \r\n".len();
        format!("{line}{host}X: {}\r\n\r\n", "b".repeat(pad)).into_bytes()
    };
    let status = |req: &[u8]| feed_all(&service, req).0[9..12].to_string();
    assert_eq!(status(&head(100, max)), "200");
    assert_eq!(status(&head(100, max + 1)), "431");
    // The line alone fills the limit: still 431 (the head is over, not the line).
    let line_only = {
        let mut r = head(max, max + 20);
        r.truncate(max + 1);
        r
    };
    assert_eq!(status(&line_only), "431");
    let over = {
        let mut r = head(max + 1, max + 21);
        r.truncate(max + 1);
        r
    };
    assert_eq!(status(&over), "414");
}

#[test]
fn expect_continue_is_refused_before_continue_when_the_post_is_bad() {
    let service = service();
    let (out, o) = feed_all(
        &service,
        b"POST /analytics?timestamp=x&user=a&click HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    assert!(!out.contains("100 Continue"), "{out}");
    assert!(o.close);
    // Hour 0 (1970) is far too old for the clock of `feed_all`.
    let (out, o) = feed_all(
        &service,
        b"POST /analytics?timestamp=0&user=a&click HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 422 "), "{out}");
    assert!(o.close);
    let (out, o) = feed_all(
        &service,
        b"POST /analytics?timestamp=3600000000&user=a&click HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert!(
        out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 "),
        "{out}"
    );
    assert!(!o.close);
}

#[test]
fn an_absolute_form_target_is_routed_by_its_path() {
    let service = service();
    let (out, _) = feed_all(
        &service,
        b"POST http://example.com/analytics?timestamp=3600000000&user=a&click HTTP/1.1\r\nHost: example.com\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 204 "), "{out}");
}

#[test]
fn while_recovering_analytics_is_503_and_readyz_says_why() {
    let service = Service::new(
        Arc::new(Ring::new(48)),
        Arc::new(Ingest::new(1024)),
        Limits::default(),
        Admission::new(48, 1).expect("a window"),
    );
    let (out, _) = feed_all(
        &service,
        b"GET /analytics?timestamp=3600000000 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
    assert!(
        out.contains("Retry-After: 1\r\n") && out.contains("replaying its journal"),
        "{out}"
    );
    let (out, _) = feed_all(
        &service,
        b"POST /analytics?timestamp=3600000000&user=a&click HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(
        out.starts_with("HTTP/1.1 503 ") && out.contains("replaying its journal"),
        "{out}"
    );
    let (out, _) = feed_all(&service, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        out.starts_with("HTTP/1.1 503 ") && out.ends_with("not ready: replaying the journal\n"),
        "{out}"
    );
    let (out, _) = feed_all(&service, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
    service.set_ready();
    let (out, _) = feed_all(&service, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
}

#[test]
fn a_server_not_ready_names_its_phase_and_never_goes_back() {
    use crate::readiness::Starting;
    let service = Service::new(
        Arc::new(Ring::new(48)),
        Arc::new(Ingest::new(1024)),
        Limits::default(),
        Admission::new(48, 1).expect("a window"),
    );
    for (phase, readyz, reason) in [
        (
            Starting::ReplayingJournal,
            "not ready: replaying the journal\n",
            "recovering: the server is replaying its journal",
        ),
        (
            Starting::WaitingForNats,
            "not ready: waiting for NATS\n",
            "starting: the server is waiting for NATS",
        ),
        (
            Starting::CatchingUp,
            "not ready: catching up with the log\n",
            "catching up: the server is applying the replicated log",
        ),
    ] {
        service.set_starting(phase);
        assert_eq!(service.starting(), Some(phase));
        let (out, _) = feed_all(&service, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            out.starts_with("HTTP/1.1 503 ") && out.ends_with(readyz),
            "{phase:?}: {out}"
        );
        for request in [
            &b"GET /analytics?timestamp=3600000000 HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"POST /analytics?timestamp=3600000000&user=a&click HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /analytics/hours?from=0&to=0 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"PUT /analytics HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let (out, _) = feed_all(&service, request);
            assert!(
                out.starts_with("HTTP/1.1 503 ")
                    && out.contains("Retry-After: 1\r\n")
                    && out.contains(reason),
                "{phase:?}: {out}"
            );
        }
    }
    // Back to an earlier phase: no; out of ready: no.
    service.set_starting(Starting::WaitingForNats);
    assert_eq!(service.starting(), Some(Starting::CatchingUp));
    service.set_ready();
    service.set_starting(Starting::CatchingUp);
    assert_eq!(service.starting(), None);
    let (out, _) = feed_all(&service, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.ends_with("\r\n\r\nready\n"), "{out}");
}

/// A late POST (a clock behind the ring's) for an hour whose users are gone, and which the
/// writer would seal (past the late window of the newest hour taken, though within that of
/// its own slot's holder), is refused as sealed: its users were kept once, and are gone with
/// the retention, not "never kept".
#[test]
fn a_late_post_past_the_newest_hours_window_is_refused_as_sealed_not_as_never_kept() {
    use crate::event::{Event, Kind};
    use crate::ring::RingWriter;
    let ring = Arc::new(Ring::new(3).keeping_sealed_users().counting_late_events(3));
    let mut w = RingWriter::new(ring.clone());
    // Hours 10 ..= 14: 10 and 11 leave the ring; slot 1 holds 13, and 14 is the newest.
    for hour in 10..=14 {
        w.apply_and_publish(Event::new(hour, 7, Kind::Click));
    }
    // Their users stored and then removed with the retention: not in `Leaving`, no file.
    let leaving = ring.leaving().expect("kept").clone();
    while leaving.front().is_some() {
        leaving.stored();
    }
    let service = Service::new(
        ring,
        Arc::new(Ingest::new(16)),
        Limits::default(),
        Admission::new(3, 1).expect("a window").with_late(3),
    );
    service.set_ready();
    let mut s = Session::new(&service);
    let mut out = Vec::new();
    let mut clock = Clock::default();
    // The clock at hour 10: the POST is admitted, 0 hours back.
    clock.set(10 * 3_600_000);
    s.feed(
        b"POST /analytics?timestamp=36000001&user=x&click HTTP/1.1\r\nHost: x\r\n\r\n",
        &clock,
        &mut out,
    );
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 422 "), "{out}");
    assert!(out.contains("the hour is sealed"), "{out}");
}
