//! The snapshot reader (`journal::snapshot::decode`) on arbitrary bytes, as read back from a
//! damaged file: no panic, and an image it accepts encodes back to exactly those bytes and
//! decodes to the same image.
//!
//! Input: `mode | bytes`. Mode bit 0 set: the harness writes the right CRC-32 into the
//! trailer first, so that the fuzzer reaches the structure behind the checksum.

#![no_main]

use libfuzzer_sys::fuzz_target;

use hourtally::journal::snapshot::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let mut bytes = bytes.to_vec();
    if mode & 1 != 0 && bytes.len() >= 8 {
        // Trailer: crc32 of everything before it (u32 LE), then "HTSE".
        let body = bytes.len() - 8;
        let crc = crc32fast::hash(&bytes[..body]).to_le_bytes();
        bytes[body..body + 4].copy_from_slice(&crc);
    }
    let Ok(image) = decode(&bytes) else {
        return;
    };
    let again = encode(&image);
    assert_eq!(again, bytes, "an accepted snapshot is not canonical");
    assert_eq!(decode(&again), Ok(image));
});
