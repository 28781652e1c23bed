//! The connection state machine (`http::session::Session::feed`) fed an arbitrary byte
//! stream that arrives in arbitrary pieces, driven the way `http::conn::serve` drives it:
//! a read buffer bounded by `Limits::max_read_buffer`, every answer written out after each
//! feed, feeding again while the output was full, and nothing more after a close.
//!
//! Input: `control | split offsets (u16 LE each) | stream`.
//! - `control` bits 0–2: how many split points follow (0–7); bit 3: the server is still
//!   recovering (not ready); bit 4: small head limits (256 bytes, 4 headers) so that 414/431
//!   are in reach; bit 5: a queue of 2 events, so that POSTs also meet 503 (queue full).
//!
//! Checked after every feed: no panic; `consumed` never exceeds what was given; the output
//! is a sequence of well-formed HTTP/1.1 answers, one final answer per request answered
//! (plus `100 Continue`), with `Connection: close` on the last answer exactly when the
//! session said close, and never an answer after it; a feed that stops for a full output
//! answered something (else `conn` would spin); a feed that stops for lack of input leaves
//! less than one head limit unconsumed (else `conn`'s read buffer could fill), and nothing at
//! all while it skips a body.

#![no_main]

use libfuzzer_sys::fuzz_target;

use hourtally::http::date::Clock;
use hourtally::http::limits::Limits;
use hourtally::http::session::Session;
use hourtally::http::{Admission, Service};
use hourtally::ring::Ring;
use hourtally::writer::Ingest;
use std::sync::Arc;

/// What the answers of one feed look like.
struct Answers {
    /// Final (non-1xx) answers.
    finals: usize,
    /// Whether the last answer carries `Connection: close`.
    last_closes: bool,
}

/// Splits `out` into answers and checks each; panics on anything malformed.
fn check_answers(out: &[u8]) -> Answers {
    let mut answers = Answers {
        finals: 0,
        last_closes: false,
    };
    let mut pos = 0;
    while pos < out.len() {
        let rest = &out[pos..];
        assert!(
            !answers.last_closes,
            "an answer after `Connection: close`: {:?}",
            String::from_utf8_lossy(rest)
        );
        assert!(
            rest.starts_with(b"HTTP/1.1 "),
            "not an HTTP/1.1 answer: {:?}",
            String::from_utf8_lossy(rest)
        );
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!(
                "answer head does not parse ({other:?}): {:?}",
                String::from_utf8_lossy(rest)
            ),
        };
        let code = resp.code.expect("a parsed answer has a status");
        assert!((100..600).contains(&code), "status {code}");
        let (mut length, mut close, mut date) = (None, false, false);
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let v = std::str::from_utf8(h.value).expect("ASCII length");
                assert!(length.is_none(), "two Content-Length");
                length = Some(v.parse::<usize>().expect("a number"));
            } else if h.name.eq_ignore_ascii_case("connection") {
                close |= h.value.eq_ignore_ascii_case(b"close");
            } else if h.name.eq_ignore_ascii_case("date") {
                date = true;
            }
        }
        let body = match code {
            100 => {
                assert!(length.is_none() && !close, "a 100 with headers");
                0
            }
            204 | 304 => {
                assert!(length.is_none(), "a {code} with a length");
                0
            }
            _ => length.expect("every answer but 100, 204 and 304 has a Content-Length"),
        };
        if code != 100 {
            assert!(date, "an answer without Date");
            answers.finals += 1;
        }
        answers.last_closes = close;
        let after_head = &rest[head_len..];
        // A HEAD answer announces its length but carries no body: then the next answer (or
        // the end) follows the head at once. No body of ours starts with `HTTP/1.1 `.
        pos += if body == 0 || after_head.is_empty() || after_head.starts_with(b"HTTP/1.1 ") {
            head_len
        } else {
            assert!(
                after_head.len() >= body,
                "body shorter than its Content-Length"
            );
            head_len + body
        };
    }
    answers
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let splits = usize::from(control & 7);
    if data.len() < splits * 2 {
        return;
    }
    let (offsets, stream) = data.split_at(splits * 2);
    let mut cuts: Vec<usize> = offsets
        .chunks_exact(2)
        .map(|w| usize::from(u16::from_le_bytes([w[0], w[1]])) % (stream.len() + 1))
        .collect();
    cuts.push(stream.len());
    cuts.sort_unstable();

    let mut limits = Limits {
        // One place: `Connections::new` allocates one per connection allowed.
        max_connections: 1,
        ..Limits::default()
    };
    if control & 16 != 0 {
        limits.max_head_bytes = 256;
        limits.max_headers = 4;
    }
    let queue = if control & 32 != 0 { 2 } else { 64 };
    let service = Service::new(
        Arc::new(Ring::new(48)),
        Arc::new(Ingest::new(queue)),
        limits,
        Admission::new(48, 1).expect("a window"),
    );
    if control & 8 == 0 {
        service.set_ready();
    }
    let mut clock = Clock::default();
    // Hour 1000, as the session tests: fixed, so that a crash reproduces.
    clock.set(1000 * 3_600_000);

    let max_buf = limits.max_read_buffer();
    let mut session = Session::new(&service);
    let mut buf: Vec<u8> = Vec::with_capacity(max_buf);
    let mut out = Vec::new();
    let mut from = 0;
    for &cut in &cuts {
        let mut piece = &stream[from..cut];
        from = cut;
        // One piece may take several reads: a read takes only what fits in the buffer.
        while !piece.is_empty() {
            let room = max_buf - buf.len();
            assert!(room > 0, "the read buffer is full: conn could not read");
            let n = room.min(piece.len());
            buf.extend_from_slice(&piece[..n]);
            piece = &piece[n..];
            let mut start = 0;
            loop {
                let input = &buf[start..];
                let o = session.feed(input, &clock, &mut out);
                assert!(
                    o.consumed <= input.len(),
                    "consumed {o:?} of {}",
                    input.len()
                );
                let answers = check_answers(&out);
                assert_eq!(answers.finals, o.answered, "{o:?}");
                assert_eq!(answers.last_closes, o.close, "{o:?}");
                start += o.consumed;
                out.clear();
                service.metrics().flush(&mut session.tally);
                if o.close {
                    // `conn` closes here: nothing after it is read or answered.
                    return;
                }
                if o.output_full {
                    assert!(o.answered > 0, "output full without progress: {o:?}");
                    continue;
                }
                let left = buf.len() - start;
                if session.in_body() {
                    assert_eq!(left, 0, "body bytes left unskipped");
                }
                assert!(
                    left < limits.max_head_bytes,
                    "{left} bytes of an unanswered head"
                );
                break;
            }
            buf.drain(..start);
        }
    }
});
