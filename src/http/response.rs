//! Writing answers into a connection's output buffer.

use super::date::Clock;
use super::error::ApiError;
use super::status::Status;
use crate::counts::Counts;

/// The body of a successful answer.
pub(super) enum Body {
    /// Bytes of the binary: fixed answers, `/openapi.json`, the dashboard and its assets.
    Static(&'static [u8]),
    /// A GET of `/analytics`: the hour and its counts, answered from the connection's
    /// `counts_answers::Rendered` (rendered once per change of the counts).
    Counts(u32, Counts),
    /// A page built for this request (`/metrics`, `/analytics/hours`).
    Page(String),
}

/// A successful answer: status, content type, extra header lines, body.
pub(super) struct Answer {
    pub status: Status,
    pub content_type: &'static str,
    /// Header lines (each ending in CRLF) beside `Date`, `Content-Type`, `Content-Length`.
    pub extra_headers: &'static str,
    pub body: Body,
}

impl Answer {
    /// `200 OK` with a plain-text body.
    pub(super) fn text(body: Body) -> Self {
        Answer {
            status: Status::Ok,
            content_type: TEXT_PLAIN,
            extra_headers: "",
            body,
        }
    }
}

/// What happens to the connection after an answer, and what the answer says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterAnswer {
    /// HTTP/1.1 default: stays open, no header needed.
    KeepOpen,
    /// HTTP/1.0 client that asked for keep-alive: stays open, and we say so.
    KeepOpenAnnounced,
    /// Closes after this answer: `Connection: close`.
    Close,
}

/// The content type of every text answer.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
/// The content type of `/metrics` (Prometheus text format 0.0.4).
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends one answer. `body` is sent unless `head_only` (HEAD), but its length is announced
/// either way. A 204 or a 304 carries neither `Content-Length` nor `Content-Type`, and no
/// body (a 304's headers are its 200's validators and cache lines: RFC 9110 §15.4.5).
#[allow(clippy::too_many_arguments)]
pub fn write(
    out: &mut Vec<u8>,
    status: Status,
    after: AfterAnswer,
    clock: &Clock,
    extra_headers: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) {
    if matches!(status, Status::NoContent | Status::NotModified) {
        if status == Status::NoContent && after == AfterAnswer::KeepOpen && extra_headers.is_empty()
        {
            // Every accepted POST on a keep-alive connection: one copy.
            out.extend_from_slice(clock.no_content());
            return;
        }
        write_head(out, status, after, clock);
        out.extend_from_slice(extra_headers.as_bytes());
        out.extend_from_slice(b"\r\n");
        return;
    }
    write_head(out, status, after, clock);
    out.extend_from_slice(extra_headers.as_bytes());
    out.extend_from_slice(b"Content-Type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
}

/// Appends the status line, the `Date` line and, when the connection's fate needs saying,
/// the `Connection` header: the head of an answer up to its other headers.
pub fn write_head(out: &mut Vec<u8>, status: Status, after: AfterAnswer, clock: &Clock) {
    if status == Status::Ok {
        out.extend_from_slice(clock.ok_head());
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.line().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(clock.date_line());
    }
    match after {
        AfterAnswer::KeepOpen => {}
        AfterAnswer::KeepOpenAnnounced => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        AfterAnswer::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
}

/// Appends the answer to an error: its status, its extra headers, and its reason as one
/// line of plain text.
pub fn write_error(
    out: &mut Vec<u8>,
    err: &ApiError,
    after: AfterAnswer,
    clock: &Clock,
    head_only: bool,
) {
    let mut reason = err.to_string();
    reason.push('\n');
    let after = if err.closes_connection() {
        AfterAnswer::Close
    } else {
        after
    };
    write(
        out,
        err.status(),
        after,
        clock,
        err.extra_headers(),
        TEXT_PLAIN,
        reason.as_bytes(),
        head_only,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_content_has_no_length_or_body() {
        let mut out = Vec::new();
        let mut clock = Clock::default();
        clock.set(0);
        write(
            &mut out,
            Status::NoContent,
            AfterAnswer::KeepOpen,
            &clock,
            "",
            TEXT_PLAIN,
            b"x",
            false,
        );
        assert_eq!(
            out,
            b"HTTP/1.1 204 No Content\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
        );
        // Not the pre-rendered keep-alive 204: the connection's fate and the extra headers.
        out.clear();
        write(
            &mut out,
            Status::NoContent,
            AfterAnswer::Close,
            &clock,
            "Retry-After: 1\r\n",
            TEXT_PLAIN,
            b"x",
            false,
        );
        assert_eq!(
            out,
            &b"HTTP/1.1 204 No Content\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
               Connection: close\r\nRetry-After: 1\r\n\r\n"[..]
        );
    }

    #[test]
    fn not_modified_has_its_headers_but_no_length_type_or_body() {
        let mut out = Vec::new();
        let mut clock = Clock::default();
        clock.set(0);
        write(
            &mut out,
            Status::NotModified,
            AfterAnswer::KeepOpen,
            &clock,
            "ETag: \"1\"\r\n",
            TEXT_PLAIN,
            b"the file",
            false,
        );
        assert_eq!(
            out,
            &b"HTTP/1.1 304 Not Modified\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
               ETag: \"1\"\r\n\r\n"[..]
        );
    }

    #[test]
    fn ok_has_its_length_and_a_head_no_body() {
        let mut clock = Clock::default();
        clock.set(0);
        let mut out = Vec::new();
        write(
            &mut out,
            Status::Ok,
            AfterAnswer::KeepOpenAnnounced,
            &clock,
            "",
            TEXT_PLAIN,
            b"ok\n",
            true,
        );
        assert_eq!(
            out,
            &b"HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
               Connection: keep-alive\r\nContent-Type: text/plain; charset=utf-8\r\n\
               Content-Length: 3\r\n\r\n"[..]
        );
    }
}
