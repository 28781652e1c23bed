//! Query string → a validated request, or the error that says which parameter and why.
//!
//! One pass over the raw bytes, no allocation: the user name is percent-decoded into a
//! 256-byte buffer on the stack and only its fingerprint leaves this module.
//!
//! Rules (ARCHITECTURE.md, "The API"):
//! - `timestamp`: plain ASCII digits (leading zeros allowed), at most [`MAX_TIMESTAMP_MS`].
//! - `user` (POST): percent-decoded with `+` as a space, 1 to [`MAX_USER_BYTES`] bytes, then
//!   opaque bytes (`Alice` and `alice` are two users).
//! - `click` / `impression` (POST): exactly one of them, as a bare key or with any value;
//!   repeating the same one is not an error.
//! - `event_id` (POST, optional): percent-decoded as `user` is, 1 to [`MAX_EVENT_ID_BYTES`]
//!   bytes, opaque; only its fingerprint leaves this module. The `Idempotency-Key` header
//!   says the same ([`header_event_id`]); a request gives at most one of the two.
//! - Any parameter this request reads, other than `click` / `impression`, given twice: 400.
//! - Unknown parameters, and empty pairs (`a&&b`), are ignored.
//! - `from` / `to` (GET `/analytics/hours`): each a timestamp by the rules of `timestamp`,
//!   `from <= to`, and at most the server's `--max-range-hours` hours from the hour of
//!   `from` to the hour of `to`, both included.
//!
//! Parameter names are matched as sent, without percent-decoding.

mod post;
mod range;

pub use post::parse_post;
pub use range::{parse_range, HourRange};

use crate::bytes;
use crate::event::{
    event_id_fingerprint, fingerprint, hour_of, MAX_EVENT_ID_BYTES, MAX_TIMESTAMP_MS,
};

/// The longest user name, in bytes after percent-decoding.
pub const MAX_USER_BYTES: usize = 256;

/// A query string that does not make a valid GET or POST of `/analytics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("timestamp: missing (give milliseconds since the Unix epoch)")]
    TimestampMissing,
    #[error("timestamp: empty (give milliseconds since the Unix epoch)")]
    TimestampEmpty,
    #[error("timestamp: not plain ASCII digits")]
    TimestampNotDigits,
    #[error("timestamp: above {MAX_TIMESTAMP_MS} (year 9999)")]
    TimestampTooLarge,
    #[error("user: missing")]
    UserMissing,
    #[error("user: empty")]
    UserEmpty,
    #[error("user: longer than {max} bytes after percent-decoding", max = MAX_USER_BYTES)]
    UserTooLong,
    #[error("user: bad percent escape (want % and two hex digits)")]
    UserBadEscape,
    #[error("{0}: empty (give 1 to {max} bytes)", max = MAX_EVENT_ID_BYTES)]
    EventIdEmpty(&'static str),
    #[error("{0}: longer than {max} bytes", max = MAX_EVENT_ID_BYTES)]
    EventIdTooLong(&'static str),
    #[error("event_id: bad percent escape (want % and two hex digits)")]
    EventIdBadEscape,
    #[error("event_id and Idempotency-Key: give at most one event id (both were given)")]
    EventIdBoth,
    #[error("click/impression: give exactly one of them (neither was given)")]
    KindMissing,
    #[error("click/impression: give exactly one of them (both were given)")]
    KindBoth,
    #[error("{0}: given more than once (ambiguous)")]
    Duplicate(&'static str),
    #[error("fresh: give 1 (wait until this server has applied the log) or 0")]
    FreshInvalid,
    #[error("{0}: missing (give milliseconds since the Unix epoch)")]
    BoundMissing(&'static str),
    #[error("{0}: empty (give milliseconds since the Unix epoch)")]
    BoundEmpty(&'static str),
    #[error("{0}: not plain ASCII digits")]
    BoundNotDigits(&'static str),
    #[error("{0}: above {MAX_TIMESTAMP_MS} (year 9999)")]
    BoundTooLarge(&'static str),
    #[error("from: after to (give from <= to)")]
    RangeReversed,
    #[error("from/to: more than {max_hours} hours (--max-range-hours); ask for a shorter range")]
    RangeTooLong { max_hours: u32 },
}

/// Why a timestamp's digits are not one, whatever the parameter is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MillisError {
    Missing,
    Empty,
    NotDigits,
    TooLarge,
}

/// The raw values found in one pass.
#[derive(Default)]
struct Raw<'q> {
    timestamp: Option<&'q [u8]>,
    user: Option<&'q [u8]>,
    event_id: Option<&'q [u8]>,
    click: bool,
    impression: bool,
}

/// Splits `query` into `key[=value]` pairs and keeps the ones a request of this kind reads.
fn scan(query: &[u8], post: bool) -> Result<Raw<'_>, QueryError> {
    let mut raw = Raw::default();
    for pair in query.split(|&b| b == b'&') {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        match key {
            b"timestamp" => set_once(&mut raw.timestamp, value, "timestamp")?,
            b"user" if post => set_once(&mut raw.user, value, "user")?,
            b"event_id" if post => set_once(&mut raw.event_id, value, "event_id")?,
            b"click" if post => raw.click = true,
            b"impression" if post => raw.impression = true,
            _ => {}
        }
    }
    Ok(raw)
}

fn set_once<'q>(
    slot: &mut Option<&'q [u8]>,
    value: &'q [u8],
    name: &'static str,
) -> Result<(), QueryError> {
    match slot.replace(value) {
        Some(_) => Err(QueryError::Duplicate(name)),
        None => Ok(()),
    }
}

/// Digits of [`MAX_TIMESTAMP_MS`]: a number of at most this many digits fits a `u64` with room
/// to spare, so it is summed without overflow checks and compared once.
const MAX_TIMESTAMP_DIGITS: usize = 15;

/// The validated timestamp, in milliseconds.
fn timestamp(raw: Option<&[u8]>) -> Result<u64, QueryError> {
    millis(raw).map_err(|e| match e {
        MillisError::Missing => QueryError::TimestampMissing,
        MillisError::Empty => QueryError::TimestampEmpty,
        MillisError::NotDigits => QueryError::TimestampNotDigits,
        MillisError::TooLarge => QueryError::TimestampTooLarge,
    })
}

/// A bound of a range (`from`, `to`): a timestamp by the same rules, its errors named after
/// the parameter.
fn bound(raw: Option<&[u8]>, name: &'static str) -> Result<u64, QueryError> {
    millis(raw).map_err(|e| match e {
        MillisError::Missing => QueryError::BoundMissing(name),
        MillisError::Empty => QueryError::BoundEmpty(name),
        MillisError::NotDigits => QueryError::BoundNotDigits(name),
        MillisError::TooLarge => QueryError::BoundTooLarge(name),
    })
}

/// The rules of a timestamp, whatever its parameter: plain ASCII digits (leading zeros
/// allowed), at most [`MAX_TIMESTAMP_MS`].
fn millis(raw: Option<&[u8]>) -> Result<u64, MillisError> {
    let digits = raw.ok_or(MillisError::Missing)?;
    if digits.is_empty() {
        return Err(MillisError::Empty);
    }
    // A non-digit anywhere is the better answer than "too large", so check them all first.
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(MillisError::NotDigits);
    }
    // Leading zeros are allowed, and do not count towards the size.
    let first = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    let significant = &digits[first..];
    if significant.len() > MAX_TIMESTAMP_DIGITS {
        return Err(MillisError::TooLarge);
    }
    let value = significant
        .iter()
        .fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
    if value > MAX_TIMESTAMP_MS {
        return Err(MillisError::TooLarge);
    }
    Ok(value)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `raw` (`+` is a space) into `out`; returns the decoded length.
pub fn percent_decode(raw: &[u8], out: &mut [u8; MAX_USER_BYTES]) -> Result<usize, QueryError> {
    decode_into(raw, out)
}

/// [`percent_decode`] into any buffer: more bytes than `out` holds is [`QueryError::UserTooLong`].
fn decode_into(raw: &[u8], out: &mut [u8]) -> Result<usize, QueryError> {
    let mut n = 0;
    let mut i = 0;
    while i < raw.len() {
        let byte = match raw[i] {
            b'%' => {
                let hi = raw.get(i + 1).copied().and_then(hex);
                let lo = raw.get(i + 2).copied().and_then(hex);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        i += 3;
                        hi << 4 | lo
                    }
                    _ => return Err(QueryError::UserBadEscape),
                }
            }
            b'+' => {
                i += 1;
                b' '
            }
            b => {
                i += 1;
                b
            }
        };
        if n == out.len() {
            return Err(QueryError::UserTooLong);
        }
        out[n] = byte;
        n += 1;
    }
    Ok(n)
}

/// The user's fingerprint.
fn user(raw: Option<&[u8]>) -> Result<u64, QueryError> {
    let raw = raw.ok_or(QueryError::UserMissing)?;
    // Bytes before the first escape are their own decoding.
    let plain = bytes::find_any(raw, [b'%', b'+']).unwrap_or(raw.len());
    if plain == raw.len() {
        // Nothing to decode (the usual name): the raw bytes are the name.
        return match raw.len() {
            0 => Err(QueryError::UserEmpty),
            n if n > MAX_USER_BYTES => Err(QueryError::UserTooLong),
            _ => Ok(fingerprint(raw)),
        };
    }
    if plain > MAX_USER_BYTES {
        // Decoding would overflow in the prefix, before any escape is looked at.
        return Err(QueryError::UserTooLong);
    }
    let mut buf = [0u8; MAX_USER_BYTES];
    buf[..plain].copy_from_slice(&raw[..plain]);
    let n = plain + decode_into(&raw[plain..], &mut buf[plain..])?;
    if n == 0 {
        return Err(QueryError::UserEmpty);
    }
    Ok(fingerprint(&buf[..n]))
}

/// The fingerprint of an `event_id` parameter, if given.
fn event_id(raw: Option<&[u8]>) -> Result<u64, QueryError> {
    let Some(raw) = raw else {
        return Ok(0);
    };
    let mut buf = [0u8; MAX_EVENT_ID_BYTES];
    let n = decode_into(raw, &mut buf).map_err(|e| match e {
        QueryError::UserTooLong => QueryError::EventIdTooLong("event_id"),
        _ => QueryError::EventIdBadEscape,
    })?;
    if n == 0 {
        return Err(QueryError::EventIdEmpty("event_id"));
    }
    Ok(event_id_fingerprint(&buf[..n]))
}

/// The fingerprint of an `Idempotency-Key` header's value: the value as sent, without the
/// double quotes of a structured-field string (`"abc"` and `abc` are one id, and the same as
/// `event_id=abc`), 1 to [`MAX_EVENT_ID_BYTES`] bytes.
pub fn header_event_id(value: &[u8]) -> Result<u64, QueryError> {
    let value = value.trim_ascii();
    let id = match value {
        [b'"', inner @ .., b'"'] => inner,
        _ => value,
    };
    match id.len() {
        0 => Err(QueryError::EventIdEmpty("Idempotency-Key")),
        n if n > MAX_EVENT_ID_BYTES => Err(QueryError::EventIdTooLong("Idempotency-Key")),
        _ => Ok(event_id_fingerprint(id)),
    }
}

/// A GET's query: the hour asked about.
pub fn parse_get(query: &[u8]) -> Result<u32, QueryError> {
    // The usual GET names only the timestamp, in plain digits: read it in one pass. Anything
    // else, valid or not, takes the general way, which has the last word on every error.
    if let Some(ms) = query.strip_prefix(b"timestamp=").and_then(plain_timestamp) {
        return Ok(hour_of(ms));
    }
    parse_get_scanned(query)
}

/// `value` as a timestamp if it is 1 to [`MAX_TIMESTAMP_DIGITS`] ASCII digits and within
/// [`MAX_TIMESTAMP_MS`], in one pass; `None` for anything else (which may still be valid:
/// leading zeros, or a query that goes on after it).
#[inline]
fn plain_timestamp(value: &[u8]) -> Option<u64> {
    match leading_timestamp(value)? {
        (ms, n) if n == value.len() => Some(ms),
        _ => None,
    }
}

/// The timestamp that starts `bytes`, 1 to [`MAX_TIMESTAMP_DIGITS`] ASCII digits within
/// [`MAX_TIMESTAMP_MS`] up to the first non-digit, and how many digits it took; `None` for
/// anything else.
#[inline]
fn leading_timestamp(bytes: &[u8]) -> Option<(u64, usize)> {
    // A timestamp of this era has 13 digits: the first eight are read in one step.
    let (mut ms, mut n) = match bytes::eight_digits(bytes, 0) {
        Some(ms) => (ms, 8),
        None => (0, 0),
    };
    while let Some(&b) = bytes.get(n) {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        if n == MAX_TIMESTAMP_DIGITS {
            return None;
        }
        ms = ms * 10 + u64::from(digit);
        n += 1;
    }
    (n > 0 && ms <= MAX_TIMESTAMP_MS).then_some((ms, n))
}

/// [`parse_get`] of any query, by the general scan.
fn parse_get_scanned(query: &[u8]) -> Result<u32, QueryError> {
    let raw = scan(query, false)?;
    Ok(hour_of(timestamp(raw.timestamp)?))
}

/// Whether a GET's query asks for a fresh read (`fresh=1`; `fresh=0` or none: no). Only
/// the routes of a cluster ask; a single server applies each event microseconds after its
/// 204, and ignores the parameter.
pub fn wants_fresh(query: &[u8]) -> Result<bool, QueryError> {
    let mut fresh = None;
    for pair in query.split(|&b| b == b'&') {
        if let Some(value) = pair.strip_prefix(b"fresh=") {
            set_once(&mut fresh, value, "fresh")?;
        } else if pair == b"fresh" {
            set_once(&mut fresh, b"1", "fresh")?;
        }
    }
    match fresh {
        None | Some(b"0") => Ok(false),
        Some(b"1") => Ok(true),
        Some(_) => Err(QueryError::FreshInvalid),
    }
}

#[cfg(test)]
mod tests;
