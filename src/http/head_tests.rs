use std::mem::MaybeUninit;

use proptest::prelude::*;

use super::*;

/// What `httparse` makes of `input` with room for `max_fields` fields, in [`Head`]'s terms;
/// `None` for anything but a complete head.
fn by_httparse(input: &[u8], max_fields: usize) -> Option<Read> {
    let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); 64];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(input, &mut headers[..max_fields]) {
        Ok(httparse::Status::Complete(len)) => Some((
            req.method?.as_bytes().to_vec(),
            req.path?.as_bytes().to_vec(),
            req.version? == 0,
            owned(req.headers),
            len,
        )),
        _ => None,
    }
}

type Fields = Vec<(String, Vec<u8>)>;

/// A head as read: method, target, HTTP/1.0, fields, length.
type Read = (Vec<u8>, Vec<u8>, bool, Fields, usize);

fn owned(fields: &[httparse::Header<'_>]) -> Fields {
    fields
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect()
}

fn by_fast(input: &[u8], max_fields: usize) -> Option<Read> {
    let mut fields = [httparse::EMPTY_HEADER; FAST_FIELDS];
    let head = fast(input, max_fields, &mut fields)?;
    Some((
        head.method.to_vec(),
        head.target.to_vec(),
        head.http10,
        owned(head.fields),
        head.len,
    ))
}

/// Heads real clients send: each takes the fast path, and reads as `httparse` reads it.
#[test]
fn usual_heads_take_the_fast_path() {
    let heads: &[&[u8]] = &[
        // hourtally-load
        b"POST /analytics?timestamp=1764067200000&user=u42&click HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
        b"GET /analytics?timestamp=1764067200000 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
        // curl
        b"POST /analytics?timestamp=1&user=alice&impression HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
        // wrk, HTTP/1.0 with keep-alive, a name with an escape, empty and padded values
        b"GET /analytics?timestamp=0 HTTP/1.0\r\nConnection: keep-alive\r\nX-Empty:\r\nX-Pad:  v  \r\n\r\n",
        b"POST /analytics?timestamp=1&user=J%C3%BCrgen+K&click HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        // a browser's dashboard request
        b"GET /assets/uPlot.min.js HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: keep-alive\r\nsec-ch-ua-platform: \"Linux\"\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\nAccept: */*\r\nSec-Fetch-Site: same-origin\r\nReferer: http://127.0.0.1:8080/\r\nAccept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-US,en;q=0.9\r\n\r\n",
    ];
    for &head in heads {
        let fast = by_fast(head, 32);
        assert!(
            fast.is_some(),
            "not on the fast path: {}",
            String::from_utf8_lossy(head)
        );
        assert_eq!(fast, by_httparse(head, 32));
        // Bytes after the head (a pipelined request) are not part of it.
        let mut two = head.to_vec();
        two.extend_from_slice(head);
        assert_eq!(by_fast(&two, 32), by_httparse(&two, 32));
    }
}

/// Heads the fast path leaves to `httparse` (which accepts some and refuses others).
#[test]
fn unusual_heads_take_httparse_s_way() {
    let heads: &[&[u8]] = &[
        b"GET /a HTTP/1.1\nHost: h\n\n",                 // bare LF
        b"\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n",       // an empty line first
        b"get /a HTTP/1.1\r\nHost: h\r\n\r\n",           // a lower-case method
        b"GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",    // UTF-8 in the target
        b"GET /a HTTP/1.1\r\nHost: h\tx\r\n\r\n",        // a tab in a value
        b"GET /a HTTP/1.1\r\nX_Y: 1\r\nHost: h\r\n\r\n", // `_` in a name
        b"GET /a HTTP/2.0\r\nHost: h\r\n\r\n",
        b"GET  /a HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost : h\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: h\r\n", // incomplete
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r",
        b"GET /a HTTP/1.1\r\nHost: h\x7f\r\n\r\n",
    ];
    for &head in heads {
        assert_eq!(by_fast(head, 32), None, "{}", String::from_utf8_lossy(head));
    }
    // More fields than the limit, or than the fast path holds.
    let many = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert!(by_fast(many, 3).is_some());
    assert_eq!(by_fast(many, 2), None);
    assert_eq!(by_httparse(many, 2), None);
    let mut lots = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=FAST_FIELDS {
        lots.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
    }
    lots.extend_from_slice(b"\r\n");
    assert_eq!(by_fast(&lots, 64), None);
    assert!(by_httparse(&lots, 64).is_some());
}

/// Pieces that heads are made of, near the edges of the fast path's subset.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"GET".to_vec()),
        Just(b"POST".to_vec()),
        Just(b"get".to_vec()),
        Just(b" ".to_vec()),
        Just(b"  ".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"/analytics?timestamp=1&user=u&click".to_vec()),
        Just(b"HTTP/1.1".to_vec()),
        Just(b"HTTP/1.0".to_vec()),
        Just(b"HTTP/1.2".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"Host".to_vec()),
        Just(b"Content-Length".to_vec()),
        Just(b":".to_vec()),
        Just(b": ".to_vec()),
        Just(b"x".to_vec()),
        prop::collection::vec(any::<u8>(), 0..12),
        prop::collection::vec(0x1eu8..0x82, 0..12),
    ]
}

/// A head of the usual shape, with one piece spliced in somewhere.
fn near_usual() -> impl Strategy<Value = Vec<u8>> {
    let usual = b"POST /analytics?timestamp=17&user=u%20v&click HTTP/1.1\r\nHost: h:1\r\nX-A:  b c \r\n\r\nGET".to_vec();
    (0..usual.len(), 0usize..3, piece()).prop_map(move |(at, cut, piece)| {
        let mut head = usual[..at].to_vec();
        head.extend_from_slice(&piece);
        head.extend_from_slice(&usual[(at + cut).min(usual.len())..]);
        head
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Whatever the fast path reads, `httparse` reads the same way.
    #[test]
    fn fast_reads_what_httparse_reads(
        head in prop_oneof![
            prop::collection::vec(piece(), 0..24).prop_map(|p| p.concat()),
            near_usual(),
        ],
        max_fields in 1usize..20,
    ) {
        if let Some(fast) = by_fast(&head, max_fields) {
            prop_assert_eq!(Some(fast), by_httparse(&head, max_fields));
        }
    }
}
