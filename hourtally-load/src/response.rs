//! The HTTP/1.x response parser: frames one reply at the start of a buffer (status line,
//! headers, `Content-Length` body), tells an interim `1xx` from a final reply, and refuses
//! what this client cannot frame. How a body is framed depends on the request it answers
//! ([`Framing`]): the answer to a HEAD has a `Content-Length` but no body.

/// Largest response head or body the client accepts before calling it a protocol error.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// One parsed reply: where it lies in the buffer and what the client needs of it.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Where the reply starts in the reader's buffer (set by `Reader`; 0 from the parser).
    pub at: usize,
    /// Status line + headers + blank line.
    pub head_len: usize,
    /// Head + body.
    pub len: usize,
    /// The server closes the connection after this reply.
    pub close: bool,
    /// The `Content-Length` header's value, if it had one. For the answer to a HEAD, the
    /// size of the body a GET would have got (none followed).
    pub content_length: Option<u64>,
}

/// How the body of an answer is framed, which depends on the request it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Any request but HEAD: the body is `Content-Length` bytes (none for `1xx`, `204` and
    /// `304`).
    Body,
    /// A HEAD: the answer ends with its head; its `Content-Length`, if any, is that of the
    /// body a GET would get, and no body follows.
    Head,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes needed.
    Partial,
    /// A 1xx interim reply of this many bytes: skip it, the final reply follows.
    Interim(usize),
    Done(Reply),
    /// Not an HTTP/1.x reply this client understands.
    Bad(&'static str),
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 18 {
        return None;
    }
    let mut v = 0u64;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
}

/// The index of the first `\n` in `s`, eight bytes at a time.
fn find_newline(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    for c in &mut chunks {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        let w = u64::from_le_bytes(a) ^ NL;
        // The lowest set bit marks the first zero byte of `w` exactly.
        let z = w.wrapping_sub(LO) & !w & HI;
        if z != 0 {
            return Some(base + (z.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| base + i)
}

/// Parses one reply at the start of `buf`, the answer to a request framed as `framing` says.
/// Lines may end in CRLF or a bare LF.
pub fn parse_response(buf: &[u8], framing: Framing) -> Parsed {
    // Status line: `HTTP/1.x SSS[ reason]`.
    let Some(nl) = find_newline(buf) else {
        return if !b"HTTP/1.".starts_with(&buf[..buf.len().min(7)]) {
            Parsed::Bad("not an HTTP/1.x answer")
        } else if buf.len() > MAX_RESPONSE_BYTES {
            Parsed::Bad("status line too long")
        } else {
            Parsed::Partial
        };
    };
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    if line.len() < 12
        || !line.starts_with(b"HTTP/1.")
        || !matches!(line[7], b'0' | b'1')
        || line[8] != b' '
        || !line[9..12].iter().all(u8::is_ascii_digit)
        || (line.len() > 12 && line[12] != b' ')
        || line[9] == b'0'
    {
        return Parsed::Bad("bad status line");
    }
    let http10 = line[7] == b'0';
    let status = line[9..12]
        .iter()
        .fold(0u16, |a, &b| a * 10 + u16::from(b - b'0'));
    // Headers, up to the blank line.
    let mut pos = nl + 1;
    let mut content_length: Option<u64> = None;
    let mut close = http10;
    loop {
        let Some(off) = find_newline(&buf[pos..]) else {
            return if buf.len() > MAX_RESPONSE_BYTES {
                Parsed::Bad("answer head too long")
            } else {
                Parsed::Partial
            };
        };
        let raw = &buf[pos..pos + off];
        pos += off + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Parsed::Bad("header line without a colon");
        };
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            let Some(n) = parse_decimal(value) else {
                return Parsed::Bad("bad Content-Length");
            };
            if content_length.is_some_and(|m| m != n) {
                return Parsed::Bad("conflicting Content-Length");
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Parsed::Bad("Transfer-Encoding is not supported");
        } else if name.eq_ignore_ascii_case(b"connection") {
            if contains_token(value, b"close") {
                close = true;
            } else if http10 && contains_token(value, b"keep-alive") {
                close = false;
            }
        }
    }
    if status < 200 {
        return Parsed::Interim(pos);
    }
    let body_len = if framing == Framing::Head || status == 204 || status == 304 {
        0
    } else {
        match content_length {
            Some(n) => n,
            None => return Parsed::Bad("answer without Content-Length"),
        }
    };
    if body_len > MAX_RESPONSE_BYTES as u64 {
        return Parsed::Bad("body too large");
    }
    let len = pos + body_len as usize;
    if buf.len() < len {
        return Parsed::Partial;
    }
    Parsed::Done(Reply {
        status,
        at: 0,
        head_len: pos,
        len,
        close,
        content_length,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::Rng;

    #[test]
    fn frames_pipelined_interim_and_closing_replies_and_refuses_bad_ones() {
        let r = b"HTTP/1.1 204 No Content\r\nDate: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        let Parsed::Done(a) = parse_response(r, Framing::Body) else {
            panic!()
        };
        assert_eq!((a.status, a.len, a.close), (204, 36, false));
        let Parsed::Done(b) = parse_response(&r[a.len..], Framing::Body) else {
            panic!()
        };
        assert_eq!((b.status, b.head_len, b.len), (200, 38, 41));
        for cut in 0..r.len() - a.len {
            assert_eq!(
                parse_response(&r[a.len..a.len + cut], Framing::Body),
                Parsed::Partial,
                "{cut}"
            );
        }
        assert!(matches!(
            parse_response(b"HTTP/1.1 100 Continue\r\n\r\n", Framing::Body),
            Parsed::Interim(25)
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.0 200 OK\nContent-Length: 0\n\n", Framing::Body),
            Parsed::Done(Reply { close: true, .. })
        ));
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n",
                Framing::Body
            ),
            Parsed::Done(Reply { close: true, .. })
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\n\r\n", Framing::Body),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                Framing::Body
            ),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Framing::Body
            ),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse_response(b"garbage\r\n", Framing::Body),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse_response(b"xyz", Framing::Body),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 2x4 No\r\n\r\n", Framing::Body),
            Parsed::Bad(_)
        ));
        assert_eq!(parse_response(b"HTTP/1", Framing::Body), Parsed::Partial);
    }

    /// A pipelined HEAD answer and the GET answer after it, as hourtally writes them.
    const HEAD_THEN_GET: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
        Content-Length: 38\r\n\r\n\
        HTTP/1.1 200 OK\r\nContent-Length: 38\r\n\r\nunique_users,0\nclicks,0\nimpressions,0\n";

    #[test]
    fn a_head_answer_ends_with_its_head_and_keeps_its_content_length() {
        let Parsed::Done(head) = parse_response(HEAD_THEN_GET, Framing::Head) else {
            panic!("the HEAD answer is complete")
        };
        assert_eq!(head.status, 200);
        assert_eq!(head.len, head.head_len, "no body follows a HEAD answer");
        assert_eq!(head.content_length, Some(38));
        assert!(HEAD_THEN_GET[head.len..].starts_with(b"HTTP/1.1 200 OK"));
        let Parsed::Done(get) = parse_response(&HEAD_THEN_GET[head.len..], Framing::Body) else {
            panic!("the GET answer after it is complete")
        };
        assert_eq!(head.len + get.len, HEAD_THEN_GET.len());
        assert_eq!(get.len - get.head_len, 38);
    }

    #[test]
    fn a_head_answer_is_partial_until_its_blank_line_arrives() {
        let Parsed::Done(head) = parse_response(HEAD_THEN_GET, Framing::Head) else {
            panic!("the HEAD answer is complete")
        };
        for cut in 0..head.len {
            assert_eq!(
                parse_response(&HEAD_THEN_GET[..cut], Framing::Head),
                Parsed::Partial,
                "{cut}"
            );
        }
    }

    #[test]
    fn the_same_head_framed_as_a_get_answer_takes_the_next_answer_as_its_body() {
        // Why the parser must know the request: read as the answer to a GET, a HEAD answer
        // swallows the first 38 bytes of the next answer and the stream is out of step (the
        // symptom of an answer whose body is not its Content-Length: a bad status line next).
        let Parsed::Done(wrong) = parse_response(HEAD_THEN_GET, Framing::Body) else {
            panic!("38 bytes follow the head")
        };
        assert_eq!(wrong.len, wrong.head_len + 38);
        assert_eq!(
            parse_response(&HEAD_THEN_GET[wrong.len..], Framing::Body),
            Parsed::Bad("bad status line")
        );
    }

    #[test]
    fn a_head_answer_may_lack_a_content_length_and_an_error_to_a_head_has_no_body_either() {
        let Parsed::Done(a) = parse_response(b"HTTP/1.1 200 OK\r\n\r\n", Framing::Head) else {
            panic!("a HEAD answer needs no Content-Length to be framed")
        };
        assert_eq!((a.len, a.content_length), (19, None));
        let Parsed::Done(e) = parse_response(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 30\r\n\r\n",
            Framing::Head,
        ) else {
            panic!("a HEAD's error answer is complete without its body")
        };
        assert_eq!((e.status, e.len, e.content_length), (400, 48, Some(30)));
    }

    #[test]
    fn finds_newlines() {
        let mut r = Rng::new(1, 1);
        for _ in 0..20_000 {
            let len = r.below(40) as usize;
            let v: Vec<u8> = (0..len)
                .map(|_| [b'\n', b'\r', b'a', 0x8a, 0x0b, 0x09][r.below(6) as usize])
                .collect();
            assert_eq!(
                find_newline(&v),
                v.iter().position(|&b| b == b'\n'),
                "{v:?}"
            );
        }
    }
}
