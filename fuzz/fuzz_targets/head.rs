//! The fast path of a request head (`http::head::fast`) against `httparse`: whatever the fast
//! path reads, httparse must read the same way (method, target, version, fields, length).
//! The fast path declining is always allowed; reading differently never is.
//!
//! Input: `max fields (1 byte, 1–32) | head bytes`.

#![no_main]

use std::mem::MaybeUninit;

use libfuzzer_sys::fuzz_target;

use hourtally::http::head::{fast, FAST_FIELDS};

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let max_fields = usize::from(first % 32) + 1;
    let mut fields = [httparse::EMPTY_HEADER; FAST_FIELDS];
    let Some(head) = fast(input, max_fields, &mut fields) else {
        return;
    };
    let mut headers = [MaybeUninit::<httparse::Header<'_>>::uninit(); 32];
    let mut req = httparse::Request::new(&mut []);
    let parsed = req.parse_with_uninit_headers(input, &mut headers[..max_fields]);
    assert_eq!(parsed, Ok(httparse::Status::Complete(head.len)), "length");
    assert_eq!(req.method.map(str::as_bytes), Some(head.method), "method");
    assert_eq!(req.path.map(str::as_bytes), Some(head.target), "target");
    assert_eq!(req.version, Some(u8::from(!head.http10)), "version");
    assert_eq!(&*req.headers, head.fields, "fields");
});
