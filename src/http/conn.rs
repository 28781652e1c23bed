//! One connection: framing HTTP/1.1 requests off a byte stream and answering them.
//!
//! [`Session::feed`] is the protocol without I/O: given the bytes buffered so far, it answers
//! every complete request into the output buffer and says how many bytes it consumed and
//! whether to close. [`serve`] is the I/O loop around it on a `may` coroutine: read what is
//! there, feed, write all answers at once, repeat.
//!
//! Bad input and its answer (ARCHITECTURE.md, "Transport"):
//! - head (request line + headers) over `max_head_bytes`: 431, or 414 when the request line
//!   (with its CRLF) alone is over; more than `max_headers` fields: 431; bytes that are not
//!   HTTP: 400; an HTTP/1.1 request without exactly one `Host`: 400; another HTTP version: 505.
//! - `Content-Length` not a number, or two that differ: 400. `Transfer-Encoding`: 501.
//! - a body is skipped, never parsed as a request; over [`MAX_BODY_BYTES`]: 413.
//! - no complete head within `head_timeout` (from accept, or from the head's first byte), or
//!   no complete body within `head_timeout` of its head: 408.
//! - `Expect: 100-continue` on a POST that will be refused anyway: the refusal, no `100`, and
//!   a close (the body the client may still send is never read).
//! - each of those closes the connection after the answer, since the stream can no longer be
//!   trusted to be at a request boundary.
//!
//! Memory per connection is bounded: the read buffer never grows past
//! [`Limits::max_read_buffer`](super::limits::Limits::max_read_buffer) (a head that does not fit is refused), and answers are written
//! out whenever [`MAX_PENDING_OUTPUT`] bytes are pending.

use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use super::date::Clock;
use super::error::{ApiError, HttpError};
use super::limits::{MAX_BODY_BYTES, MAX_HEADERS_CAP, MAX_PENDING_OUTPUT, WRITE_TIMEOUT};
use super::response::{self, AfterAnswer};
use super::routes::{Method, Service};
use crate::conns::Ticket;
use crate::metrics::Tally;

/// What [`Session::feed`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes of the input it consumed (answered requests and skipped body bytes).
    pub consumed: usize,
    /// Requests answered.
    pub answered: usize,
    /// Close the connection once the output is written.
    pub close: bool,
    /// It stopped early because the output buffer is full: write it, then feed the rest.
    pub output_full: bool,
}

/// How a request's head frames the connection.
#[derive(Clone, Copy, Debug)]
struct Framing {
    after: AfterAnswer,
    body: usize,
    expect_continue: bool,
}

/// Reads the framing headers of a parsed request.
fn framing(req: &httparse::Request<'_, '_>) -> Result<Framing, HttpError> {
    let http10 = req.version == Some(0);
    let (mut close, mut keep_alive, mut expect_continue) = (false, false, false);
    let mut hosts = 0;
    let mut body: Option<usize> = None;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let value = h.value.trim_ascii();
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(HttpError::BadContentLength);
            }
            // Saturate: anything that does not fit is far over the body limit anyway.
            let n = value.iter().fold(0usize, |n, &d| {
                n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
            });
            if body.is_some_and(|b| b != n) {
                return Err(HttpError::ConflictingContentLength);
            }
            body = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(HttpError::TransferEncoding);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request carries exactly one Host (HTTP/1.0 may omit it).
    if (!http10 && hosts != 1) || hosts > 1 {
        return Err(HttpError::BadHost);
    }
    let body = body.unwrap_or(0);
    if body > MAX_BODY_BYTES {
        return Err(HttpError::BodyTooLarge(MAX_BODY_BYTES));
    }
    let after = match (http10, close, keep_alive) {
        (_, true, _) => AfterAnswer::Close,
        (false, false, _) => AfterAnswer::KeepOpen,
        (true, false, true) => AfterAnswer::KeepOpenAnnounced,
        (true, false, false) => AfterAnswer::Close,
    };
    Ok(Framing {
        after,
        body,
        expect_continue: expect_continue && !http10 && body > 0,
    })
}

/// Whether a request line that httparse refused names an HTTP version other than 1.0 and 1.1
/// (`GET / HTTP/2.0`), which gets 505 rather than 400.
fn names_other_version(input: &[u8]) -> bool {
    let line_end = input
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(input.len());
    let line = input[..line_end].trim_ascii_end();
    let Some(version) = line.rsplit(|&b| b == b' ').next() else {
        return false;
    };
    match version.strip_prefix(b"HTTP/") {
        Some([major, b'.', minor]) => major.is_ascii_digit() && minor.is_ascii_digit(),
        Some([major]) => major.is_ascii_digit(),
        _ => false,
    }
}

/// The protocol state of one connection, without its socket.
#[derive(Debug)]
pub struct Session<'a> {
    service: &'a Service,
    /// Body bytes still to skip before the next request starts.
    skip: usize,
    /// What this connection counted since the last flush.
    pub tally: Tally,
}

impl<'a> Session<'a> {
    pub fn new(service: &'a Service) -> Self {
        Self {
            service,
            skip: 0,
            tally: Tally::default(),
        }
    }

    /// Whether the session is in the middle of skipping a request body.
    pub fn in_body(&self) -> bool {
        self.skip > 0
    }

    /// The head-too-large error for a head that starts `input`: 414 if its request line alone
    /// (with its line end) is over the limit, 431 otherwise.
    fn head_too_large(&self, input: &[u8]) -> HttpError {
        let max = self.service.limits.max_head_bytes;
        match input.iter().take(max).position(|&b| b == b'\n') {
            // The line, `\n` included, is `line_end + 1 <= max` bytes.
            Some(_) => HttpError::HeadTooLarge(max),
            None => HttpError::UriTooLong(max),
        }
    }

    /// Answers an error that ends the connection.
    fn fail(
        &mut self,
        err: HttpError,
        clock: &Clock,
        out: &mut Vec<u8>,
        mut outcome: Outcome,
    ) -> Outcome {
        let err = ApiError::from(err);
        response::write_error(out, &err, AfterAnswer::Close, clock, false);
        self.tally.respond(err.status());
        self.tally.reject(&err);
        outcome.answered += 1;
        outcome.close = true;
        outcome
    }

    /// Answers every complete request at the start of `input`.
    pub fn feed(&mut self, input: &[u8], clock: &Clock, out: &mut Vec<u8>) -> Outcome {
        let limits = &self.service.limits;
        let max_headers = limits.max_headers.clamp(1, MAX_HEADERS_CAP);
        let mut outcome = Outcome {
            consumed: 0,
            answered: 0,
            close: false,
            output_full: false,
        };
        loop {
            if self.skip > 0 {
                let k = self.skip.min(input.len() - outcome.consumed);
                outcome.consumed += k;
                self.skip -= k;
                if self.skip > 0 {
                    return outcome;
                }
            }
            let rest = &input[outcome.consumed..];
            if rest.is_empty() {
                return outcome;
            }
            if out.len() >= MAX_PENDING_OUTPUT {
                outcome.output_full = true;
                return outcome;
            }
            let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS_CAP];
            let mut req = httparse::Request::new(&mut []);
            let parsed = req.parse_with_uninit_headers(rest, &mut headers[..max_headers]);
            let head_len = match parsed {
                Ok(httparse::Status::Complete(n)) if n <= limits.max_head_bytes => n,
                Ok(httparse::Status::Complete(_)) => {
                    let err = self.head_too_large(rest);
                    return self.fail(err, clock, out, outcome);
                }
                Ok(httparse::Status::Partial) if rest.len() >= limits.max_head_bytes => {
                    let err = self.head_too_large(rest);
                    return self.fail(err, clock, out, outcome);
                }
                Ok(httparse::Status::Partial) => return outcome,
                Err(httparse::Error::TooManyHeaders) => {
                    return self.fail(HttpError::TooManyHeaders(max_headers), clock, out, outcome)
                }
                Err(httparse::Error::Version) if names_other_version(rest) => {
                    return self.fail(HttpError::VersionNotSupported, clock, out, outcome)
                }
                Err(_) => return self.fail(HttpError::Malformed, clock, out, outcome),
            };
            let framing = match framing(&req) {
                Ok(f) => f,
                Err(err) => return self.fail(err, clock, out, outcome),
            };
            // Parsed requests always carry a method and a path.
            let method = Method::parse(req.method.unwrap_or(""));
            let target = req.path.unwrap_or("").as_bytes();
            outcome.consumed += head_len;
            outcome.answered += 1;
            if framing.expect_continue {
                if let Some(err) = self.service.precheck(method, target, clock) {
                    // Refused whatever the body holds: say so instead of `100 Continue`, and
                    // close rather than guess whether the client still sends the body.
                    response::write_error(out, &err, AfterAnswer::Close, clock, false);
                    self.tally.respond(err.status());
                    self.tally.reject(&err);
                    outcome.close = true;
                    return outcome;
                }
                out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            self.service
                .respond(method, target, framing.after, clock, out, &mut self.tally);
            self.skip = framing.body;
            if framing.after == AfterAnswer::Close {
                outcome.close = true;
                return outcome;
            }
        }
    }
}

/// Grows `buf` (whose whole length is usable) when it is full, up to `max`.
fn ensure_room(buf: &mut Vec<u8>, filled: usize, max: usize) {
    if filled == buf.len() && buf.len() < max {
        let new_len = (buf.len() * 2).clamp(4096, max);
        buf.resize(new_len, 0);
    }
}

/// What the connection is waiting for, and until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Due {
    /// Between requests: closed quietly after `idle_timeout`.
    Idle,
    /// A request head (the first after accept, or one whose first bytes are here): 408 at
    /// the instant.
    Head(Instant),
    /// The rest of a request body: 408 at the instant.
    Body(Instant),
}

/// Answers a connection until the peer closes, an error closes it, it idles out, or the
/// server drains.
pub fn serve(stream: &mut may::net::TcpStream, service: &Service, ticket: &Ticket<'_>) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let limits = service.limits;
    let max_buf = limits.max_read_buffer();
    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut clock = Clock::default();
    let mut session = Session::new(service);
    let mut due = Due::Head(Instant::now() + limits.head_timeout);
    // The read timeout set on the socket: set again only when it changes, not before every
    // read (each set is a system call).
    let mut read_timeout: Option<Duration> = None;
    loop {
        let wait = match due {
            Due::Idle => limits.idle_timeout,
            Due::Head(at) | Due::Body(at) => at.saturating_duration_since(Instant::now()),
        };
        let read = if wait.is_zero() {
            Err(io::ErrorKind::TimedOut.into())
        } else {
            ensure_room(&mut buf, filled, max_buf);
            debug_assert!(
                filled < buf.len(),
                "feed refuses heads that would fill the buffer"
            );
            // Round a deadline up to whole milliseconds so that it changes less often; a
            // read that wakes before its deadline only loops.
            let wait = Duration::from_millis(wait.as_millis() as u64 + 1);
            let set = if read_timeout == Some(wait) {
                Ok(())
            } else {
                read_timeout = Some(wait);
                stream.set_read_timeout(Some(wait))
            };
            set.and_then(|()| stream.read(&mut buf[filled..]))
        };
        let n = match read {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                let expired = match due {
                    Due::Idle => true,
                    Due::Head(at) | Due::Body(at) => Instant::now() >= at,
                };
                if !expired {
                    continue;
                }
                timed_out(stream, &mut session, due, &clock, &mut out);
                break;
            }
            Err(_) => break,
        };
        if ticket.draining() {
            // The server is stopping: these bytes are not taken. Every answer of a request
            // taken before is written; close so that they all arrive.
            break;
        }
        filled += n;
        clock.tick();
        let mut start = 0;
        let mut close = false;
        loop {
            let outcome = session.feed(&buf[start..filled], &clock, &mut out);
            start += outcome.consumed;
            if outcome.answered > 0 {
                due = Due::Idle;
            }
            if !out.is_empty() {
                if stream.write_all(&out).is_err() {
                    close = true;
                }
                out.clear();
            }
            close |= outcome.close;
            if close || !outcome.output_full {
                break;
            }
        }
        service.metrics.flush(&mut session.tally);
        if close {
            linger_close(stream);
            return;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        // A deadline runs from the first byte of a head or body (or from accept) and is not
        // moved by later bytes of the same head or body.
        due = if session.in_body() {
            match due {
                Due::Body(at) => Due::Body(at),
                _ => Due::Body(Instant::now() + limits.head_timeout),
            }
        } else if filled > 0 {
            match due {
                Due::Head(at) => Due::Head(at),
                _ => Due::Head(Instant::now() + limits.head_timeout),
            }
        } else {
            Due::Idle
        };
        if out.capacity() > MAX_PENDING_OUTPUT * 2 {
            out.shrink_to(MAX_PENDING_OUTPUT);
        }
    }
    service.metrics.flush(&mut session.tally);
    if ticket.draining() {
        drain_close(stream);
    }
}

/// The read timed out: 408 if a request head or body was due, else (idle) just close.
fn timed_out(
    stream: &mut may::net::TcpStream,
    session: &mut Session<'_>,
    due: Due,
    clock: &Clock,
    out: &mut Vec<u8>,
) {
    let secs = session.service.limits.head_timeout.as_secs();
    let err = match due {
        Due::Idle => return,
        Due::Head(_) => HttpError::HeadTimeout(secs),
        Due::Body(_) => HttpError::BodyTimeout(secs),
    };
    let err = ApiError::from(err);
    out.clear();
    response::write_error(out, &err, AfterAnswer::Close, clock, false);
    session.tally.respond(err.status());
    session.tally.reject(&err);
    session.service.metrics.flush(&mut session.tally);
    let _ = stream.write_all(out);
    linger_close(stream);
}

/// Closes after a final answer without losing it: send FIN, then read and drop what the peer
/// still sends for a short while, so the kernel does not answer unread bytes with a reset
/// that could destroy our answer in flight. Bounded in bytes and time.
fn linger_close(stream: &mut may::net::TcpStream) {
    const LINGER_BYTES: usize = 256 * 1024;
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER_TIME;
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// How long a closing connection waits for its last answers to be taken by the peer.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// Closes a connection of a draining server without losing an answer already written.
///
/// The drain shut the socket's read side, so reading cannot tell when the peer has taken
/// our answers, and closing a socket with unread input makes the kernel send a reset that
/// throws away whatever is still unsent. So: send FIN after the answers, then wait (bounded)
/// until the peer has acknowledged every byte we sent, and only then close.
fn drain_close(stream: &mut may::net::TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER_TIME;
    while unsent_bytes(stream) > 0 && Instant::now() < deadline {
        may::coroutine::sleep(Duration::from_millis(1));
    }
}

/// Bytes written to `stream` that the peer has not acknowledged yet (0 if unknown).
fn unsent_bytes(stream: &may::net::TcpStream) -> usize {
    use std::os::unix::io::AsRawFd;
    let mut unsent: libc::c_int = 0;
    // SAFETY: `TIOCOUTQ` (SIOCOUTQ for TCP) writes one `c_int` through the pointer, which
    // points at a live local `c_int`; the fd is the stream's own, open for this call.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut unsent) };
    if rc == 0 {
        usize::try_from(unsent).unwrap_or(0)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
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
        service.set_ready(true);
        service
    }

    fn feed_all(service: &Service, input: &[u8]) -> (String, Outcome) {
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
}
