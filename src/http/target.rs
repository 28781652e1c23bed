//! Request targets: the path and the query of what a request line names.

use crate::bytes;

/// `(path, query)` of a request target: `/analytics?timestamp=1` → (`/analytics`,
/// `timestamp=1`). An absolute-form target (`http://host/analytics?...`, RFC 9112 §3.2.2)
/// is reduced to its path first.
pub fn split_target(target: &[u8]) -> (&[u8], &[u8]) {
    // Origin form (`/…`), nearly every request, skips the two case-folding compares of the
    // absolute form (about 60 instructions a request by `scripts/instructions.sh`).
    let target = if target.first() == Some(&b'/') {
        target
    } else {
        absolute_form_path(target).unwrap_or(target)
    };
    match bytes::find(target, b'?') {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, &target[target.len()..]),
    }
}

/// The path-and-query of an absolute-form target (`http://host[:port]/p?q` → `/p?q`, and `/`
/// when it has no path), or `None` for any other form.
fn absolute_form_path(target: &[u8]) -> Option<&[u8]> {
    let scheme_len = if target.len() >= 7 && target[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if target.len() >= 8 && target[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else {
        return None;
    };
    let rest = &target[scheme_len..];
    match rest.iter().position(|&b| b == b'/' || b == b'?') {
        Some(i) if rest[i] == b'/' => Some(&rest[i..]),
        // `http://host?q`: an empty path is `/`; the route there (the dashboard) reads no
        // query, so it can go.
        _ => Some(b"/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_in_origin_and_absolute_form() {
        let split = |t: &str| {
            let (p, q) = split_target(t.as_bytes());
            (
                String::from_utf8_lossy(p).into_owned(),
                String::from_utf8_lossy(q).into_owned(),
            )
        };
        assert_eq!(
            split("/analytics?timestamp=1"),
            ("/analytics".into(), "timestamp=1".into())
        );
        assert_eq!(split("/healthz"), ("/healthz".into(), "".into()));
        assert_eq!(
            split("http://example.com:8080/analytics?timestamp=1"),
            ("/analytics".into(), "timestamp=1".into())
        );
        assert_eq!(
            split("HTTP://h/analytics"),
            ("/analytics".into(), "".into())
        );
        assert_eq!(split("http://h"), ("/".into(), "".into()));
        assert_eq!(split("http://h?x=1"), ("/".into(), "".into()));
    }
}
