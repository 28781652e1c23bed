//! Tests of `query`: the rows of the API table, and the one-pass paths against the general scan.

use super::post::{parse_post_scanned, usual_post};
use super::*;
use crate::event::{Event, Kind};
use proptest::prelude::*;
use QueryError::*;

fn post(q: &str) -> Result<Event, QueryError> {
    parse_post(q.as_bytes())
}

fn get(q: &str) -> Result<u32, QueryError> {
    parse_get(q.as_bytes())
}

#[test]
fn fresh_is_one_zero_or_absent() {
    let fresh = |q: &str| wants_fresh(q.as_bytes());
    assert_eq!(fresh("timestamp=1"), Ok(false));
    assert_eq!(fresh("timestamp=1&fresh=1"), Ok(true));
    assert_eq!(fresh("fresh&timestamp=1"), Ok(true));
    assert_eq!(fresh("fresh=0&timestamp=1"), Ok(false));
    assert_eq!(fresh("fresh=yes"), Err(FreshInvalid));
    assert_eq!(fresh("fresh="), Err(FreshInvalid));
    assert_eq!(fresh("fresh=1&fresh=1"), Err(Duplicate("fresh")));
    assert_eq!(fresh("freshness=2"), Ok(false));
}

#[test]
fn valid_queries_parse_to_their_event_or_hour() {
    let e = post("timestamp=3600000&user=alice&click").unwrap();
    assert_eq!(e, Event::new(1, fingerprint(b"alice"), Kind::Click));
    // The usual shapes take the one-pass paths (which the properties below compare with
    // the general scan).
    assert_eq!(usual_post(b"timestamp=3600000&user=alice&click"), Some(e));
    // With an event id right after the name or at the end, too.
    let with_id = e.with_id(event_id_fingerprint(b"e-1"));
    assert_eq!(
        usual_post(b"timestamp=3600000&user=alice&event_id=e-1&click"),
        Some(with_id)
    );
    assert_eq!(
        usual_post(b"timestamp=3600000&user=alice&click&event_id=e-1"),
        Some(with_id)
    );
    assert_eq!(plain_timestamp(b"7200000"), Some(7_200_000));
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
fn event_id_rows() {
    let id = |q: &str| post(q).map(|e| e.id);
    assert_eq!(id("timestamp=1&user=a&click"), Ok(0));
    assert_eq!(
        id("timestamp=1&user=a&click&event_id=e-1"),
        Ok(event_id_fingerprint(b"e-1"))
    );
    // Percent-decoded as a user name is: these are one id.
    assert_eq!(
        id("event_id=e%2D1&timestamp=1&user=a&click"),
        Ok(event_id_fingerprint(b"e-1"))
    );
    assert_eq!(
        id("timestamp=1&user=a&click&event_id"),
        Err(EventIdEmpty("event_id"))
    );
    assert_eq!(
        id("timestamp=1&user=a&click&event_id="),
        Err(EventIdEmpty("event_id"))
    );
    assert_eq!(
        id("timestamp=1&user=a&click&event_id=%g1"),
        Err(EventIdBadEscape)
    );
    let max = "e".repeat(MAX_EVENT_ID_BYTES);
    assert!(id(&format!("timestamp=1&user=a&click&event_id={max}")).is_ok());
    assert_eq!(
        id(&format!("timestamp=1&user=a&click&event_id={max}%41")),
        Err(EventIdTooLong("event_id"))
    );
    assert_eq!(
        id("timestamp=1&user=a&click&event_id=1&event_id=1"),
        Err(Duplicate("event_id"))
    );
    // A GET does not read it.
    assert_eq!(get("timestamp=1&event_id=1&event_id=2"), Ok(0));
}

#[test]
fn idempotency_key_rows() {
    let key = |v: &str| header_event_id(v.as_bytes());
    // Bare or as a structured-field string, it is the id `event_id` would give.
    assert_eq!(key("e-1"), Ok(event_id_fingerprint(b"e-1")));
    assert_eq!(key("\"e-1\""), Ok(event_id_fingerprint(b"e-1")));
    assert_eq!(key(" e-1 "), Ok(event_id_fingerprint(b"e-1")));
    assert_eq!(key(""), Err(EventIdEmpty("Idempotency-Key")));
    assert_eq!(key("\"\""), Err(EventIdEmpty("Idempotency-Key")));
    assert!(key(&"k".repeat(MAX_EVENT_ID_BYTES)).is_ok());
    assert_eq!(
        key(&format!("\"{}\"", "k".repeat(MAX_EVENT_ID_BYTES + 1))),
        Err(EventIdTooLong("Idempotency-Key"))
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
    fn the_usual_post_answers_as_the_general_scan(
        ts in "0{0,3}[0-9]{0,16}|[0-9]{0,4}[a%=+-][0-9]{0,4}",
        name in "[a-zA-Z0-9._~*%+=-]{0,260}",
        kind in "click|impression|clicks|click=1|impression&click|click&user=x|",
        id in "[a-zA-Z0-9._~%+=-]{0,132}|[a-z]{1,3}&event_id=[a-z]{0,3}|[a-z]{1,3}&click",
        shape in 0usize..7,
    ) {
        let q = match shape {
            0 => format!("timestamp={ts}&user={name}&{kind}"),
            1 => format!("timestamp={ts}&user={name}"),
            2 => format!("user={name}&timestamp={ts}&{kind}"),
            3 => format!("timestamp={ts}&user={name}&event_id={id}&{kind}"),
            4 => format!("timestamp={ts}&user={name}&{kind}&event_id={id}"),
            5 => format!("timestamp={ts}&user={name}&event_id={id}&{kind}&event_id={id}"),
            _ => format!("timestamp={ts}&timestamp={ts}&user={name}&{kind}"),
        };
        prop_assert_eq!(parse_post(q.as_bytes()), parse_post_scanned(q.as_bytes()));
    }

    #[test]
    fn a_name_is_fingerprinted_as_decoded(name in "[a-zA-Z0-9._~*-]{0,300}|[a-fA-F0-9._~%+-]{0,300}|x{250,260}%4[1g]") {
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

fn range(q: &str) -> Result<HourRange, QueryError> {
    parse_range(q.as_bytes(), 168)
}

#[test]
fn a_range_covers_the_hours_of_from_and_to() {
    let r = range("from=3600000&to=7199999").unwrap();
    assert_eq!((r.first, r.last, r.len()), (1, 1, 1));
    let r = range("to=10800000&from=3599999&x=1").unwrap();
    assert_eq!((r.first, r.last, r.len()), (0, 3, 4));
    assert_eq!(r.hours().collect::<Vec<_>>(), [0, 1, 2, 3]);
    // The same rules as `timestamp`: leading zeros, the largest timestamp.
    let r = range(&format!("from=000{MAX_TIMESTAMP_MS}&to={MAX_TIMESTAMP_MS}")).unwrap();
    assert_eq!((r.first, r.len()), (70_389_527, 1));
    // The limit counts both ends: 168 hours pass, 169 do not.
    let hours = |n: u64| format!("from=0&to={}", (n - 1) * 3_600_000);
    assert_eq!(range(&hours(168)).map(|r| r.len()), Ok(168));
    assert_eq!(range(&hours(169)), Err(RangeTooLong { max_hours: 168 }));
    assert_eq!(parse_range(b"from=0&to=0", 1).map(|r| r.len()), Ok(1));
    assert_eq!(
        parse_range(b"from=0&to=3600000", 1),
        Err(RangeTooLong { max_hours: 1 })
    );
}

#[test]
fn range_rows() {
    assert_eq!(range(""), Err(BoundMissing("from")));
    assert_eq!(range("to=5"), Err(BoundMissing("from")));
    assert_eq!(range("from=5"), Err(BoundMissing("to")));
    assert_eq!(range("timestamp=5&to=5"), Err(BoundMissing("from")));
    assert_eq!(range("from&to=5"), Err(BoundEmpty("from")));
    assert_eq!(range("from=5&to="), Err(BoundEmpty("to")));
    assert_eq!(range("from=5a&to=5"), Err(BoundNotDigits("from")));
    assert_eq!(range("from=5&to=-5"), Err(BoundNotDigits("to")));
    assert_eq!(range("from=%35&to=5"), Err(BoundNotDigits("from")));
    assert_eq!(range("from=5&to=+5"), Err(BoundNotDigits("to")));
    let over = MAX_TIMESTAMP_MS + 1;
    assert_eq!(
        range(&format!("from={over}&to=5")),
        Err(BoundTooLarge("from"))
    );
    assert_eq!(
        range(&format!("from=5&to={over}")),
        Err(BoundTooLarge("to"))
    );
    assert_eq!(
        range("from=5&to=99999999999999999999999"),
        Err(BoundTooLarge("to"))
    );
    assert_eq!(range("from=1&from=1&to=5"), Err(Duplicate("from")));
    assert_eq!(range("from=1&to=5&to=5"), Err(Duplicate("to")));
    // Milliseconds, not hours: within one hour, from after to is still reversed.
    assert_eq!(range("from=3600001&to=3600000"), Err(RangeReversed));
    assert_eq!(range("from=7200000&to=0"), Err(RangeReversed));
    // Each bound alone comes before the pair: a bad `to` wins over a reversal.
    assert_eq!(range("from=9&to=x"), Err(BoundNotDigits("to")));
    for err in [
        BoundMissing("from"),
        BoundEmpty("to"),
        BoundNotDigits("from"),
        BoundTooLarge("to"),
        RangeReversed,
        RangeTooLong { max_hours: 168 },
    ] {
        let line = err.to_string();
        assert!(line.starts_with("from") || line.starts_with("to"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
    assert!(RangeTooLong { max_hours: 168 }.to_string().contains("168"));
}

proptest! {
    #[test]
    fn range_bounds_read_as_a_get_reads_its_timestamp(
        from in 0..=MAX_TIMESTAMP_MS,
        span in 0u64..400 * 3_600_000,
        zeros in 0usize..4,
    ) {
        let to = from.saturating_add(span).min(MAX_TIMESTAMP_MS);
        let q = format!("from={}{from}&to={to}", "0".repeat(zeros));
        let hours = hour_of(to) - hour_of(from) + 1;
        match parse_range(q.as_bytes(), 168) {
            Ok(r) => {
                prop_assert_eq!(Ok(r.first), get(&format!("timestamp={from}")));
                prop_assert_eq!(Ok(r.last), get(&format!("timestamp={to}")));
                prop_assert!(hours <= 168);
            }
            Err(e) => {
                prop_assert_eq!(e, RangeTooLong { max_hours: 168 });
                prop_assert!(hours > 168);
            }
        }
    }

    #[test]
    fn a_range_never_panics(q in proptest::collection::vec(any::<u8>(), 0..200), max in 1u32..1000) {
        if let Ok(r) = parse_range(&q, max) {
            prop_assert!(r.first <= r.last && r.len() <= max);
        }
    }
}
