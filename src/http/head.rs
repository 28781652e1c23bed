//! A request's head (request line and header fields) in the usual shape, read without
//! `httparse`.
//!
//! [`fast`] reads a subset of what `httparse` accepts, and for that subset gives exactly what
//! `httparse::Request::parse` gives (method, target, version, fields and head length; checked
//! against httparse by the property test `fast_reads_what_httparse_reads` and the fuzz target
//! `fuzz/fuzz_targets/head.rs`). Anything outside it — a byte out
//! of the ranges below, a line ending in a bare `\n`, an incomplete head, more fields than
//! [`FAST_FIELDS`] or the server's limit — is `None`, and the session hands the head to
//! `httparse`, which has the last word on every error. So this is a shortcut, never a second
//! opinion.
//!
//! The subset:
//! - request line: a method of `A`–`Z`, one space, a target of bytes `!`–`~` (0x21–0x7E), one
//!   space, `HTTP/1.1` or `HTTP/1.0`, CRLF;
//! - each field: a name of ASCII letters, digits and `-`, `:`, spaces or tabs, a value of bytes
//!   0x20–0x7E (trailing spaces dropped, as `httparse` does), CRLF;
//! - CRLF.
//!
//! Why: on a POST of the load generator's shape `httparse` spent about 450 instructions
//! (`scripts/instructions.sh`), of which 125 validated the target as UTF-8 and about 120
//! were its runtime SIMD dispatch; a target checked 8 bytes at a time for 0x21–0x7E is ASCII,
//! so it needs no UTF-8 pass. With this path (and the scans of `crate::bytes`) a GET costs
//! 1 147 instructions instead of 1 364 at depth 16 (BENCHMARKS.md, issue 12's third pass).

use crate::bytes;

/// Header fields the fast path has room for; a head with more takes `httparse`'s way.
pub const FAST_FIELDS: usize = 16;

/// A head read by [`fast`].
#[derive(Debug)]
pub struct Head<'b, 'f> {
    pub method: &'b [u8],
    pub target: &'b [u8],
    /// `HTTP/1.0` (else `HTTP/1.1`).
    pub http10: bool,
    pub fields: &'f [httparse::Header<'b>],
    /// Bytes of the head, its final CRLF included.
    pub len: usize,
}

/// Which bytes may be in a header name on the fast path: ASCII letters, digits and `-` (a
/// subset of RFC 9110's `tchar`).
static NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric() || b == b'-' as usize;
        b += 1;
    }
    table
};

/// How many bytes at the start of `bytes` are header-name bytes.
#[inline]
fn name_len(bytes: &[u8]) -> usize {
    let mut i = 0;
    while i < bytes.len() && NAME_BYTE[usize::from(bytes[i])] {
        i += 1;
    }
    i
}

/// `HTTP/1.1` and `HTTP/1.0` as the little-endian words of their eight bytes.
const HTTP11: u64 = u64::from_le_bytes(*b"HTTP/1.1");
const HTTP10: u64 = u64::from_le_bytes(*b"HTTP/1.0");

/// The head at the start of `input` if it is complete and in the usual shape (module doc),
/// with at most `max_fields` fields; `None` for anything else.
pub fn fast<'b, 'f>(
    input: &'b [u8],
    max_fields: usize,
    fields: &'f mut [httparse::Header<'b>; FAST_FIELDS],
) -> Option<Head<'b, 'f>> {
    // The method: upper-case letters, then one space.
    let mut method_len = 0;
    while input.get(method_len)?.is_ascii_uppercase() {
        method_len += 1;
    }
    if method_len == 0 || input[method_len] != b' ' {
        return None;
    }
    let method = &input[..method_len];
    let rest = &input[method_len + 1..];
    // The target: visible ASCII, then one space.
    let target_len = bytes::run_in(rest, 0x21);
    if target_len == 0 || rest.get(target_len) != Some(&b' ') {
        return None;
    }
    let target = &rest[..target_len];
    let version: &[u8; 10] = rest.get(target_len + 1..target_len + 11)?.try_into().ok()?;
    let (word, crlf) = version.split_at(8);
    let word = u64::from_le_bytes(word.try_into().ok()?);
    if crlf != b"\r\n" || (word != HTTP11 && word != HTTP10) {
        return None;
    }
    let http10 = word == HTTP10;
    let mut at = method_len + 1 + target_len + 1 + 10;
    let limit = max_fields.min(FAST_FIELDS);
    let mut count = 0;
    loop {
        let line = &input[at..];
        if line.starts_with(b"\r\n") {
            return Some(Head {
                method,
                target,
                http10,
                fields: &fields[..count],
                len: at + 2,
            });
        }
        if count == limit {
            return None;
        }
        let name_len = name_len(line);
        if name_len == 0 || line.get(name_len) != Some(&b':') {
            return None;
        }
        let name = &line[..name_len];
        debug_assert!(name.is_ascii());
        // SAFETY: every byte of `name` is an ASCII letter, digit or `-` (`NAME_BYTE`), and
        // ASCII is UTF-8.
        let name = unsafe { std::str::from_utf8_unchecked(name) };
        let mut value_at = name_len + 1;
        while matches!(line.get(value_at), Some(b' ' | b'\t')) {
            value_at += 1;
        }
        let value_start = &line[value_at..];
        let value_len = bytes::run_in(value_start, 0x20);
        if value_start.get(value_len..value_len + 2) != Some(b"\r\n") {
            return None;
        }
        let field = fields.get_mut(count)?;
        *field = httparse::Header {
            name,
            // The value's bytes are 0x20–0x7E, so spaces are all there is to trim.
            value: value_start[..value_len].trim_ascii_end(),
        };
        count += 1;
        at += value_at + value_len + 2;
    }
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
