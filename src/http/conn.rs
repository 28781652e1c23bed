//! One connection: framing HTTP/1.1 requests off a byte stream and answering them.
//!
//! [`Session::feed`] is the protocol without I/O: given the bytes buffered so far, it answers
//! every complete request into the output buffer and says how many bytes it consumed and
//! whether to close. [`serve`] is the I/O loop around it on a `may` coroutine: read what is
//! there, feed, write all answers at once, repeat.
//!
//! Bad input and its answer (DESIGN.md §1, transport table):
//! - head (request line + headers) over `max_head_bytes`: 431, or 414 when the request line
//!   alone is over; more than `max_headers` fields: 431; bytes that are not HTTP: 400.
//! - `Content-Length` not a number, or two that differ: 400. `Transfer-Encoding`: 501.
//! - a body is skipped, never parsed as a request; over [`MAX_BODY_BYTES`]: 413.
//! - no complete head within `head_timeout` (from accept, or from the head's first byte): 408.
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
use super::limits::{MAX_BODY_BYTES, MAX_HEADERS_CAP, MAX_PENDING_OUTPUT, WRITE_TIMEOUT};
use super::response::{self, Persist};
use super::{App, Method};
use crate::error::{ApiError, HttpError};
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
    persist: Persist,
    body: usize,
    expect_continue: bool,
}

/// Reads the framing headers of a parsed request.
fn framing(req: &httparse::Request<'_, '_>) -> Result<Framing, HttpError> {
    let http10 = req.version == Some(0);
    let (mut close, mut keep_alive, mut expect_continue) = (false, false, false);
    let mut body: Option<usize> = None;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let value = h.value.trim_ascii();
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(HttpError::BadContentLength);
            }
            // Saturate: anything that does not fit is far over the body limit anyway.
            let n = value.iter().fold(0usize, |n, &d| {
                n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
            });
            if body.is_some_and(|b| b != n) {
                return Err(HttpError::BadContentLength);
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
    let body = body.unwrap_or(0);
    if body > MAX_BODY_BYTES {
        return Err(HttpError::BodyTooLarge(MAX_BODY_BYTES));
    }
    let persist = match (http10, close, keep_alive) {
        (_, true, _) => Persist::Close,
        (false, false, _) => Persist::KeepAlive,
        (true, false, true) => Persist::KeepAliveAnnounced,
        (true, false, false) => Persist::Close,
    };
    Ok(Framing {
        persist,
        body,
        expect_continue: expect_continue && !http10 && body > 0,
    })
}

/// The protocol state of one connection, without its socket.
#[derive(Debug)]
pub struct Session<'a> {
    app: &'a App,
    /// Body bytes still to skip before the next request starts.
    skip: usize,
    /// What this connection counted since the last flush.
    pub tally: Tally,
}

impl<'a> Session<'a> {
    pub fn new(app: &'a App) -> Self {
        Self {
            app,
            skip: 0,
            tally: Tally::default(),
        }
    }

    /// Whether the session is in the middle of skipping a request body.
    pub fn in_body(&self) -> bool {
        self.skip > 0
    }

    /// The head-too-large error for a head that starts `input`: 414 if its request line alone
    /// is over the limit, 431 otherwise.
    fn head_too_large(&self, input: &[u8]) -> HttpError {
        let max = self.app.limits.max_head_bytes;
        match input.iter().take(max + 1).position(|&b| b == b'\n') {
            Some(line_end) if line_end <= max => HttpError::HeadTooLarge(max),
            _ => HttpError::UriTooLong(max),
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
        response::write_error(out, &err, Persist::Close, clock, false);
        self.tally.respond(err.status());
        outcome.answered += 1;
        outcome.close = true;
        outcome
    }

    /// Answers every complete request at the start of `input`.
    pub fn feed(&mut self, input: &[u8], clock: &Clock, out: &mut Vec<u8>) -> Outcome {
        let limits = &self.app.limits;
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
                Err(_) => return self.fail(HttpError::Malformed, clock, out, outcome),
            };
            let framing = match framing(&req) {
                Ok(f) => f,
                Err(err) => return self.fail(err, clock, out, outcome),
            };
            // Parsed requests always carry a method and a path.
            let method = Method::parse(req.method.unwrap_or(""));
            let target = req.path.unwrap_or("").as_bytes();
            if framing.expect_continue {
                out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            self.app
                .respond(method, target, framing.persist, clock, out, &mut self.tally);
            outcome.consumed += head_len;
            outcome.answered += 1;
            self.skip = framing.body;
            if framing.persist == Persist::Close {
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

/// Answers a connection until the peer closes, an error closes it, or it idles out.
pub fn serve(mut stream: may::net::TcpStream, app: &App) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let limits = app.limits;
    let max_buf = limits.max_read_buffer();
    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut clock = Clock::default();
    let mut session = Session::new(app);
    // The first request's head is due `head_timeout` after accept; later ones after their
    // first byte. `None`: idle between requests.
    let mut head_due = Some(Instant::now() + limits.head_timeout);
    loop {
        let now = Instant::now();
        let wait = match head_due {
            Some(due) => due.saturating_duration_since(now),
            None => limits.idle_timeout,
        };
        let read = if wait.is_zero() {
            Err(io::ErrorKind::TimedOut.into())
        } else {
            ensure_room(&mut buf, filled, max_buf);
            debug_assert!(
                filled < buf.len(),
                "feed refuses heads that would fill the buffer"
            );
            stream
                .set_read_timeout(Some(wait))
                .and_then(|()| stream.read(&mut buf[filled..]))
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
                let head_due = head_due.is_some();
                break timed_out(&mut stream, &mut session, head_due, &clock, &mut out);
            }
            Err(_) => break,
        };
        filled += n;
        clock.tick();
        let mut start = 0;
        let mut close = false;
        loop {
            let outcome = session.feed(&buf[start..filled], &clock, &mut out);
            start += outcome.consumed;
            if outcome.answered > 0 {
                // A new head (if any bytes of one are here) starts now.
                head_due = None;
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
        app.metrics.flush(&mut session.tally);
        if close {
            linger_close(&mut stream);
            break;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if filled > 0 && !session.in_body() && head_due.is_none() {
            head_due = Some(Instant::now() + limits.head_timeout);
        }
        if out.capacity() > MAX_PENDING_OUTPUT * 2 {
            out.shrink_to(MAX_PENDING_OUTPUT);
        }
    }
    app.metrics.flush(&mut session.tally);
}

/// The read timed out: 408 if a request head was due, else (idle) just close.
fn timed_out(
    stream: &mut may::net::TcpStream,
    session: &mut Session<'_>,
    head_due: bool,
    clock: &Clock,
    out: &mut Vec<u8>,
) {
    if head_due && !session.in_body() {
        let err = ApiError::from(HttpError::HeadTimeout(
            session.app.limits.head_timeout.as_secs(),
        ));
        out.clear();
        response::write_error(out, &err, Persist::Close, clock, false);
        session.tally.respond(err.status());
        let _ = stream.write_all(out);
        linger_close(stream);
    }
}

/// Closes after a final answer without losing it: send FIN, then read and drop what the peer
/// still sends for a short while, so the kernel does not answer unread bytes with a reset
/// that could destroy our answer in flight. Bounded in bytes and time.
fn linger_close(stream: &mut may::net::TcpStream) {
    const LINGER_BYTES: usize = 256 * 1024;
    const LINGER_TIME: Duration = Duration::from_secs(2);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::limits::Limits;
    use crate::ring::Ring;
    use crate::sync::Arc;
    use crate::writer::Ingest;

    fn app() -> App {
        let app = App::new(
            Arc::new(Ring::new(48)),
            Arc::new(Ingest::new(1024)),
            Limits::default(),
            1,
        );
        app.set_ready(true);
        app
    }

    fn feed_all(app: &App, input: &[u8]) -> (String, Outcome) {
        let mut s = Session::new(app);
        let mut out = Vec::new();
        let mut clock = Clock::default();
        clock.set(10 * 3_600_000);
        let o = s.feed(input, &clock, &mut out);
        (String::from_utf8_lossy(&out).into_owned(), o)
    }

    #[test]
    fn pipelined_requests_are_answered_in_order() {
        let app = app();
        let req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\nGET /heal";
        let (out, o) = feed_all(&app, req);
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
        let app = app();
        let body = b"GET /healthz HTTP/1.1\r\n\r\n";
        let mut req = format!(
            "POST /analytics?timestamp=36000000&user=a&click HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        let (out, o) = feed_all(&app, &req);
        assert_eq!((o.answered, o.consumed), (1, req.len()));
        assert!(out.starts_with("HTTP/1.1 204 No Content\r\n"), "{out}");
        assert!(!out.contains("200"), "{out}");
    }

    #[test]
    fn framing_errors_close_with_their_status() {
        let app = app();
        let cases: [(&[u8], &str); 6] = [
            (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "400"),
            (
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "400",
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "501",
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", "413"),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "400"),
            (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", "400"),
        ];
        for (req, status) in cases {
            let (out, o) = feed_all(&app, req);
            assert!(o.close, "{out}");
            assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{out}");
            assert!(out.contains("Connection: close\r\n"), "{out}");
        }
    }

    #[test]
    fn http10_closes_unless_keep_alive_is_asked() {
        let app = app();
        let (out, o) = feed_all(&app, b"GET /healthz HTTP/1.0\r\n\r\n");
        assert!(o.close && out.contains("Connection: close\r\n"));
        let (out, o) = feed_all(
            &app,
            b"GET /healthz HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
        );
        assert!(
            !o.close && out.contains("Connection: keep-alive\r\n"),
            "{out}"
        );
        let (out, o) = feed_all(&app, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(o.close && out.contains("Connection: close\r\n"));
    }
}
