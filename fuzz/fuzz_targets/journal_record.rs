//! The journal's group reader (`record::decode_group`) on arbitrary bytes, as read
//! back from a damaged file: no panic, and a group it accepts is exactly what `encode_group`
//! writes for its events (so it re-decodes equal).
//!
//! Input: `mode | bytes`. Mode bit 0 set: the harness writes the right CRC-32 into the
//! header first, so that the fuzzer reaches the record checks behind the checksum.

#![no_main]

use libfuzzer_sys::fuzz_target;

use hourtally::record::{
    decode_group, encode_group, first_seq, HEADER_BYTES, MAX_GROUP, RECORD_BYTES,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let mut bytes = bytes.to_vec();
    if mode & 1 != 0 && bytes.len() >= HEADER_BYTES {
        // The checksum covers the header's first 16 bytes and the records the count names.
        let count = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        let end = HEADER_BYTES + count.min(MAX_GROUP) * RECORD_BYTES;
        if end <= bytes.len() {
            let mut h = crc32fast::Hasher::new();
            h.update(&bytes[..16]);
            h.update(&bytes[HEADER_BYTES..end]);
            let crc = h.finalize().to_le_bytes();
            bytes[16..20].copy_from_slice(&crc);
        }
    }
    let Ok(group) = decode_group(&bytes) else {
        return;
    };
    assert!(!group.events.is_empty() && group.events.len() <= MAX_GROUP);
    assert_eq!(group.len, HEADER_BYTES + group.events.len() * RECORD_BYTES);
    assert!(group.len <= bytes.len());
    assert_eq!(first_seq(&bytes), Some(group.first_seq));
    let mut again = Vec::new();
    encode_group(&mut again, group.first_seq, &group.events);
    assert_eq!(
        again,
        bytes[..group.len],
        "an accepted group is not canonical"
    );
    assert_eq!(decode_group(&again), Ok(group));
});
