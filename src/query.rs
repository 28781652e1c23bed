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
//! - Any parameter this request reads, other than `click` / `impression`, given twice: 400.
//! - Unknown parameters, and empty pairs (`a&&b`), are ignored.
//!
//! Parameter names are matched as sent, without percent-decoding.

use crate::event::{fingerprint, hour_of, Event, Kind, MAX_TIMESTAMP_MS};

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
    #[error("click/impression: give exactly one of them (neither was given)")]
    KindMissing,
    #[error("click/impression: give exactly one of them (both were given)")]
    KindBoth,
    #[error("{0}: given more than once (ambiguous)")]
    Duplicate(&'static str),
}

/// The raw values found in one pass.
#[derive(Default)]
struct Raw<'q> {
    timestamp: Option<&'q [u8]>,
    user: Option<&'q [u8]>,
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
    let digits = raw.ok_or(QueryError::TimestampMissing)?;
    if digits.is_empty() {
        return Err(QueryError::TimestampEmpty);
    }
    // A non-digit anywhere is the better answer than "too large", so check them all first.
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(QueryError::TimestampNotDigits);
    }
    // Leading zeros are allowed, and do not count towards the size.
    let first = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    let significant = &digits[first..];
    if significant.len() > MAX_TIMESTAMP_DIGITS {
        return Err(QueryError::TimestampTooLarge);
    }
    let value = significant
        .iter()
        .fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
    if value > MAX_TIMESTAMP_MS {
        return Err(QueryError::TimestampTooLarge);
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
        if n == MAX_USER_BYTES {
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
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        // Nothing to decode (the usual name): the raw bytes are the name.
        return match raw.len() {
            0 => Err(QueryError::UserEmpty),
            n if n > MAX_USER_BYTES => Err(QueryError::UserTooLong),
            _ => Ok(fingerprint(raw)),
        };
    }
    let mut buf = [0u8; MAX_USER_BYTES];
    let n = percent_decode(raw, &mut buf)?;
    if n == 0 {
        return Err(QueryError::UserEmpty);
    }
    Ok(fingerprint(&buf[..n]))
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
    if value.is_empty() || value.len() > MAX_TIMESTAMP_DIGITS {
        return None;
    }
    let mut ms = 0u64;
    for &b in value {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        ms = ms * 10 + u64::from(digit);
    }
    (ms <= MAX_TIMESTAMP_MS).then_some(ms)
}

/// [`parse_get`] of any query, by the general scan.
fn parse_get_scanned(query: &[u8]) -> Result<u32, QueryError> {
    let raw = scan(query, false)?;
    Ok(hour_of(timestamp(raw.timestamp)?))
}

/// A POST's query: the event it reports.
pub fn parse_post(query: &[u8]) -> Result<Event, QueryError> {
    let raw = scan(query, true)?;
    let hour = hour_of(timestamp(raw.timestamp)?);
    let user = user(raw.user)?;
    let kind = match (raw.click, raw.impression) {
        (true, false) => Kind::Click,
        (false, true) => Kind::Impression,
        (false, false) => return Err(QueryError::KindMissing),
        (true, true) => return Err(QueryError::KindBoth),
    };
    Ok(Event::new(hour, user, kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use QueryError::*;

    fn post(q: &str) -> Result<Event, QueryError> {
        parse_post(q.as_bytes())
    }

    fn get(q: &str) -> Result<u32, QueryError> {
        parse_get(q.as_bytes())
    }

    #[test]
    fn valid_queries_parse_to_their_event_or_hour() {
        let e = post("timestamp=3600000&user=alice&click").unwrap();
        assert_eq!(e, Event::new(1, fingerprint(b"alice"), Kind::Click));
        let e = post("impression=yes&user=bob&timestamp=7199999").unwrap();
        assert_eq!(e, Event::new(1, fingerprint(b"bob"), Kind::Impression));
        assert_eq!(get("timestamp=7200000"), Ok(2));
        assert_eq!(get("timestamp=0"), Ok(0));
        assert_eq!(get("timestamp=0000003600000"), Ok(1));
        assert_eq!(
            get(&format!("timestamp={MAX_TIMESTAMP_MS}")),
            Ok(70_389_527)
        );
    }

    #[test]
    fn timestamp_rows() {
        assert_eq!(get(""), Err(TimestampMissing));
        assert_eq!(get("user=a"), Err(TimestampMissing));
        assert_eq!(get("timestamp"), Err(TimestampEmpty));
        assert_eq!(get("timestamp="), Err(TimestampEmpty));
        assert_eq!(get("timestamp=12a"), Err(TimestampNotDigits));
        assert_eq!(get("timestamp=-1"), Err(TimestampNotDigits));
        assert_eq!(get("timestamp=+1"), Err(TimestampNotDigits));
        assert_eq!(get("timestamp=1.5"), Err(TimestampNotDigits));
        assert_eq!(get("timestamp=%31"), Err(TimestampNotDigits));
        assert_eq!(get("timestamp=%EF%BC%91"), Err(TimestampNotDigits)); // fullwidth 1
        assert_eq!(
            get(&format!("timestamp={}", MAX_TIMESTAMP_MS + 1)),
            Err(TimestampTooLarge)
        );
        assert_eq!(
            get("timestamp=99999999999999999999999"),
            Err(TimestampTooLarge)
        );
        assert_eq!(
            get("timestamp=99999999999999999999999x"),
            Err(TimestampNotDigits)
        );
        assert_eq!(post("user=a&click"), Err(TimestampMissing));
    }

    #[test]
    fn user_rows() {
        assert_eq!(post("timestamp=1&click"), Err(UserMissing));
        assert_eq!(post("timestamp=1&user&click"), Err(UserEmpty));
        assert_eq!(post("timestamp=1&user=&click"), Err(UserEmpty));
        assert_eq!(post("timestamp=1&user=%&click"), Err(UserBadEscape));
        assert_eq!(post("timestamp=1&user=%4&click"), Err(UserBadEscape));
        assert_eq!(post("timestamp=1&user=%zz&click"), Err(UserBadEscape));
        assert_eq!(post("timestamp=1&user=a%4"), Err(UserBadEscape));
        let long = "a".repeat(MAX_USER_BYTES + 1);
        assert_eq!(
            post(&format!("timestamp=1&user={long}&click")),
            Err(UserTooLong)
        );
        let max = "a".repeat(MAX_USER_BYTES);
        assert!(post(&format!("timestamp=1&user={max}&click")).is_ok());
        // 256 decoded bytes from 768 raw ones is fine; 257 is not.
        let max_escaped = "%41".repeat(MAX_USER_BYTES);
        assert!(post(&format!("timestamp=1&user={max_escaped}&click")).is_ok());
        assert_eq!(
            post(&format!("timestamp=1&user={max_escaped}%41&click")),
            Err(UserTooLong)
        );
    }

    #[test]
    fn kind_rows() {
        assert_eq!(post("timestamp=1&user=a"), Err(KindMissing));
        assert_eq!(post("timestamp=1&user=a&click&impression"), Err(KindBoth));
        assert_eq!(
            post("timestamp=1&user=a&click=0&impression=0"),
            Err(KindBoth)
        );
        assert_eq!(post("timestamp=1&user=a&clicks"), Err(KindMissing));
        // Repeating the same kind is not ambiguous.
        assert_eq!(
            post("timestamp=1&user=a&click&click").unwrap().kind,
            Kind::Click
        );
        assert_eq!(
            post("timestamp=1&user=a&click=false").unwrap().kind,
            Kind::Click
        );
    }

    #[test]
    fn duplicate_and_unknown_rows() {
        assert_eq!(
            post("timestamp=1&timestamp=1&user=a&click"),
            Err(Duplicate("timestamp"))
        );
        assert_eq!(
            post("timestamp=1&user=a&user=a&click"),
            Err(Duplicate("user"))
        );
        assert_eq!(get("timestamp=1&timestamp=2"), Err(Duplicate("timestamp")));
        // A GET does not read `user`, so it is as unknown there as any other name.
        assert_eq!(get("timestamp=1&user=a&user=b"), Ok(0));
        assert!(post("timestamp=1&user=a&click&utm=x&utm=y&&=&x").is_ok());
    }

    #[test]
    fn percent_decoding() {
        let mut buf = [0u8; MAX_USER_BYTES];
        let mut dec = |s: &str| percent_decode(s.as_bytes(), &mut buf).map(|n| buf[..n].to_vec());
        assert_eq!(dec("a+b").unwrap(), b"a b");
        assert_eq!(dec("a%20b").unwrap(), b"a b");
        assert_eq!(dec("%2B").unwrap(), b"+");
        assert_eq!(dec("%c3%A9").unwrap(), "é".as_bytes());
        assert_eq!(dec("%00%ff").unwrap(), [0u8, 255]);
        assert_eq!(dec("").unwrap(), b"");
        // The same user however it is spelled on the wire; case matters in the name.
        assert_eq!(
            post("timestamp=1&user=J%C3%BCrgen+K&click").unwrap().user,
            fingerprint("Jürgen K".as_bytes())
        );
        assert_ne!(
            post("timestamp=1&user=Alice&click").unwrap().user,
            post("timestamp=1&user=alice&click").unwrap().user
        );
    }

    /// The timestamp rule digit by digit with overflow checks: what [`timestamp`] must
    /// answer, spelled the slow way.
    fn checked_timestamp(digits: &[u8]) -> Result<u64, QueryError> {
        if digits.is_empty() {
            return Err(TimestampEmpty);
        }
        let mut value = Some(0u64);
        for &b in digits {
            if !b.is_ascii_digit() {
                return Err(TimestampNotDigits);
            }
            value = value
                .and_then(|v| v.checked_mul(10)?.checked_add(u64::from(b - b'0')))
                .filter(|&v| v <= MAX_TIMESTAMP_MS);
        }
        value.ok_or(TimestampTooLarge)
    }

    proptest! {
        #[test]
        fn decoding_inverts_encoding(name in proptest::collection::vec(any::<u8>(), 1..=MAX_USER_BYTES)) {
            let encoded: String = name.iter().map(|b| format!("%{b:02X}")).collect();
            let e = parse_post(format!("timestamp=5&user={encoded}&impression").as_bytes()).unwrap();
            prop_assert_eq!(e.user, fingerprint(&name));
        }

        #[test]
        fn never_panics(q in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_post(&q);
            let _ = parse_get(&q);
        }

        #[test]
        fn the_usual_get_answers_as_the_general_scan(
            value in "[0-9]{0,24}|[0-9]{0,6}[a=%+&.-][0-9]{0,6}",
            zeros in 0usize..12,
            rest in "(&[a-z]{0,9}(=[0-9a-z]{0,4})?){0,2}",
        ) {
            let q = format!("timestamp={}{value}{rest}", "0".repeat(zeros));
            prop_assert_eq!(parse_get(q.as_bytes()), parse_get_scanned(q.as_bytes()));
            prop_assert_eq!(timestamp(Some(value.as_bytes())), checked_timestamp(value.as_bytes()));
        }

        #[test]
        fn a_name_without_escapes_is_its_own_decoding(name in "[a-zA-Z0-9._~*-]{0,300}") {
            let mut buf = [0u8; MAX_USER_BYTES];
            let decoded = percent_decode(name.as_bytes(), &mut buf).map(|n| fingerprint(&buf[..n]));
            let expected = match decoded {
                Ok(_) if name.is_empty() => Err(UserEmpty),
                other => other,
            };
            prop_assert_eq!(user(Some(name.as_bytes())), expected);
        }

        #[test]
        fn any_valid_timestamp_parses(ts in 0..=MAX_TIMESTAMP_MS) {
            prop_assert_eq!(parse_get(format!("timestamp={ts}").as_bytes()), Ok(hour_of(ts)));
        }
    }
}
