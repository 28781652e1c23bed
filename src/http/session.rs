//! The protocol of one connection without its socket: framing HTTP/1.1 requests off the
//! bytes buffered so far and answering them.
//!
//! [`Session::feed`] answers every complete request at the start of its input into the
//! output buffer and says how many bytes it consumed and whether to close; `conn::serve` is
//! the I/O loop around it. Being free of I/O, it is what the unit tests (and a fuzzer) drive.
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

use std::mem::MaybeUninit;

use super::counts_answers::Rendered;
use super::date::Clock;
use super::error::{ApiError, HttpError};
use super::head;
use super::limits::{MAX_BODY_BYTES, MAX_HEADERS_CAP, MAX_PENDING_OUTPUT};
use super::response::{self, AfterAnswer};
use super::routes::{Method, PostRun, Service};
use super::status::Status;
use super::tally::Tally;

/// What [`Session::feed`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fed {
    /// Bytes of the input it consumed (answered requests and skipped body bytes).
    pub consumed: usize,
    /// Requests answered.
    pub answered: usize,
    /// Of those, POSTs answered `204` (their events queued).
    pub accepted: usize,
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
fn framing(http10: bool, fields: &[httparse::Header<'_>]) -> Result<Framing, HttpError> {
    let (mut close, mut keep_alive, mut expect_continue) = (false, false, false);
    let mut hosts = 0;
    let mut body: Option<usize> = None;
    for h in fields {
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
    /// This connection's rendered `GET /analytics` answers.
    rendered: Rendered,
    /// With `--fsync always`: the connection's source (`Event::src`; 0: none).
    src: u16,
    /// With a source: where in the output each `204` of this feed lies (start, end) and how
    /// its request framed the connection, oldest first, so that the connection can turn the
    /// last ones into `503`s if the writer refused their events.
    pub accepted: Vec<(usize, usize, AfterAnswer)>,
}

impl<'a> Session<'a> {
    pub fn new(service: &'a Service) -> Self {
        Self {
            service,
            skip: 0,
            tally: Tally::default(),
            rendered: Rendered::default(),
            src: 0,
            accepted: Vec::new(),
        }
    }

    /// Tags this connection's events with source `src` (`--fsync always`, `ingest::Refusals`)
    /// and notes where its `204`s go.
    pub fn with_src(mut self, src: u16) -> Self {
        self.src = src;
        self
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
    fn fail(&mut self, err: HttpError, clock: &Clock, out: &mut Vec<u8>, mut outcome: Fed) -> Fed {
        let err = ApiError::from(err);
        response::write_error(out, &err, AfterAnswer::Close, clock, false);
        self.tally.refuse(&err);
        outcome.answered += 1;
        outcome.close = true;
        outcome
    }

    /// Answers every complete request at the start of `input`.
    pub fn feed(&mut self, input: &[u8], clock: &Clock, out: &mut Vec<u8>) -> Fed {
        let limits = &self.service.limits;
        let max_headers = limits.max_headers.clamp(1, MAX_HEADERS_CAP);
        let mut outcome = Fed {
            consumed: 0,
            answered: 0,
            accepted: 0,
            close: false,
            output_full: false,
        };
        // The run of POSTs in this feed shares one entry into the ingest gate; it ends when
        // a request of another route comes, or when this returns (before any write or read).
        let mut run = PostRun {
            producer: None,
            src: self.src,
        };
        let mut fast_fields = [httparse::EMPTY_HEADER; head::FAST_FIELDS];
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
            // The usual head is read by `head::fast`; anything else, errors included, by
            // httparse (the fast path reads a subset of what httparse does, the same way).
            let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); MAX_HEADERS_CAP];
            let mut req = httparse::Request::new(&mut []);
            let (parsed, method, target, http10, fields) =
                match head::fast(rest, max_headers, &mut fast_fields) {
                    Some(h) => (
                        Ok(httparse::Status::Complete(h.len)),
                        h.method,
                        h.target,
                        h.http10,
                        h.fields,
                    ),
                    None => {
                        let parsed =
                            req.parse_with_uninit_headers(rest, &mut headers[..max_headers]);
                        // Parsed requests always carry a method, a path and a version.
                        (
                            parsed,
                            req.method.unwrap_or("").as_bytes(),
                            req.path.unwrap_or("").as_bytes(),
                            req.version == Some(0),
                            &*req.headers,
                        )
                    }
                };
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
            let framing = match framing(http10, fields) {
                Ok(f) => f,
                Err(err) => return self.fail(err, clock, out, outcome),
            };
            let method = Method::parse(method);
            outcome.consumed += head_len;
            outcome.answered += 1;
            if framing.expect_continue {
                if let Some(err) = self.service.precheck(method, target, clock) {
                    // Refused whatever the body holds: say so instead of `100 Continue`, and
                    // close rather than guess whether the client still sends the body.
                    response::write_error(out, &err, AfterAnswer::Close, clock, false);
                    self.tally.refuse(&err);
                    outcome.close = true;
                    return outcome;
                }
                out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            let start = out.len();
            let status = self.service.respond(
                method,
                target,
                fields,
                framing.after,
                clock,
                out,
                &mut self.tally,
                &mut self.rendered,
                &mut run,
            );
            if status == Status::NoContent {
                // Only an accepted POST answers 204.
                outcome.accepted += 1;
                if self.src != 0 {
                    self.accepted.push((start, out.len(), framing.after));
                }
            }
            self.skip = framing.body;
            if framing.after == AfterAnswer::Close {
                outcome.close = true;
                return outcome;
            }
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
