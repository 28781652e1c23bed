//! The query parser (`query::parse_post`, `parse_get`, `wants_fresh`, `percent_decode`) on
//! arbitrary bytes: no panic, and each answer cross-checked against a plain reading of the
//! same bytes (the pairs split on `&`, the `timestamp` digits, the decoded `user`).

#![no_main]

use libfuzzer_sys::fuzz_target;

use hourtally::event::{fingerprint, hour_of, Kind, MAX_TIMESTAMP_MS};
use hourtally::query::{parse_get, parse_post, percent_decode, wants_fresh, MAX_USER_BYTES};

/// The values of every pair whose key is `key`.
fn values<'q>(query: &'q [u8], key: &[u8]) -> Vec<&'q [u8]> {
    query
        .split(|&b| b == b'&')
        .filter_map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq] == key).then(|| &pair[eq + 1..]),
            None => (pair == key).then(|| &pair[pair.len()..]),
        })
        .collect()
}

/// The hour of the one `timestamp` in `query`, read plainly.
fn the_hour(query: &[u8]) -> u32 {
    let ts = values(query, b"timestamp");
    assert_eq!(ts.len(), 1, "accepted with {} timestamps", ts.len());
    let digits = std::str::from_utf8(ts[0]).expect("digits are ASCII");
    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{digits:?}");
    let ms: u64 = digits.parse().expect("a number in range");
    assert!(ms <= MAX_TIMESTAMP_MS);
    hour_of(ms)
}

fuzz_target!(|data: &[u8]| {
    let mut buf = [0u8; MAX_USER_BYTES];
    if let Ok(n) = percent_decode(data, &mut buf) {
        assert!(n <= data.len() && n <= MAX_USER_BYTES);
        // Encoding every decoded byte as `%XX` decodes back to the same bytes.
        let encoded: Vec<u8> = buf[..n]
            .iter()
            .flat_map(|b| format!("%{b:02x}").into_bytes())
            .collect();
        let mut again = [0u8; MAX_USER_BYTES];
        assert_eq!(percent_decode(&encoded, &mut again), Ok(n));
        assert_eq!(buf[..n], again[..n]);
        if !data.contains(&b'%') && !data.contains(&b'+') {
            assert_eq!(&buf[..n], data, "plain bytes decode to themselves");
        }
    }

    if let Ok(event) = parse_post(data) {
        assert_eq!(event.hour, the_hour(data));
        let users = values(data, b"user");
        assert_eq!(users.len(), 1, "accepted with {} users", users.len());
        let n = percent_decode(users[0], &mut buf).expect("an accepted user decodes");
        assert!(n > 0);
        assert_eq!(event.user, fingerprint(&buf[..n]));
        let click = !values(data, b"click").is_empty();
        let impression = !values(data, b"impression").is_empty();
        let kind = match (click, impression) {
            (true, false) => Kind::Click,
            (false, true) => Kind::Impression,
            _ => panic!("accepted with click={click} impression={impression}"),
        };
        assert_eq!(event.kind, kind);
    }

    match parse_get(data) {
        Ok(hour) => assert_eq!(hour, the_hour(data)),
        Err(_) => {
            // A GET that is refused has no single timestamp of plain digits in range.
            let ts = values(data, b"timestamp");
            let valid = ts.len() == 1
                && !ts[0].is_empty()
                && ts[0].iter().all(u8::is_ascii_digit)
                && std::str::from_utf8(ts[0])
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_some_and(|ms| ms <= MAX_TIMESTAMP_MS);
            assert!(!valid, "a valid timestamp refused");
        }
    }

    let fresh = {
        let given: Vec<&[u8]> = data
            .split(|&b| b == b'&')
            .filter_map(|pair| {
                if pair == b"fresh" {
                    Some(&b"1"[..])
                } else {
                    pair.strip_prefix(b"fresh=")
                }
            })
            .collect();
        match given.as_slice() {
            [] | [b"0"] => Some(false),
            [b"1"] => Some(true),
            _ => None,
        }
    };
    assert_eq!(wants_fresh(data).ok(), fresh);
});
