//! The batch encoding: fixed-size event records in checksummed groups. One format for two
//! uses: the journal's segments are groups end to end (`journal`), and each message of the
//! cluster's stream is one group (`cluster`).
//!
//! ```text
//! group  = header (24 bytes) + count × record (16 bytes)
//! header = magic "HTJ1" (u32 LE) | count (u32) | first_seq (u64) | crc32 (u32) | 0 (u32)
//! record = fingerprint (u64 LE) | hour (u32) | kind (u8: 0 click, 1 impression) | 0 0 0
//! ```
//!
//! `first_seq` is the journal position of the group's first event (events since the journal
//! began), so a reader can tell that no group is missing. The CRC-32 covers the header's first
//! 16 bytes and every record: a group is applied whole or not at all. A record holds the
//! fingerprint, never the user name.

use crate::event::{Event, Kind, MAX_TIMESTAMP_MS, MILLIS_PER_HOUR};

/// `"HTJ1"`, little-endian.
pub const MAGIC: u32 = u32::from_le_bytes(*b"HTJ1");
/// Bytes of a group header.
pub const HEADER_BYTES: usize = 24;
/// Bytes of one record.
pub const RECORD_BYTES: usize = 16;
/// Most records in one group (the writer's batch is smaller); a larger count is corruption.
pub const MAX_GROUP: usize = 1 << 16;

/// Why a group could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("incomplete group ({0} bytes present)")]
    Torn(usize),
    #[error("bad magic number")]
    BadMagic,
    #[error("record count {0} over the limit")]
    BadCount(usize),
    #[error("checksum mismatch")]
    BadChecksum,
    #[error("a record that no valid event encodes")]
    BadRecord,
}

/// Appends one group holding `events`, numbered from `first_seq`, to `out`.
pub fn encode_group(out: &mut Vec<u8>, first_seq: u64, events: &[Event]) {
    debug_assert!(!events.is_empty() && events.len() <= MAX_GROUP);
    let start = out.len();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend_from_slice(&[0; 8]); // crc and the reserved word, filled below
    for e in events {
        out.extend_from_slice(&e.user.to_le_bytes());
        out.extend_from_slice(&e.hour.to_le_bytes());
        out.extend_from_slice(&[e.kind as u8, 0, 0, 0]);
    }
    let crc = checksum(&out[start..start + 16], &out[start + HEADER_BYTES..]);
    out[start + 16..start + 20].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(head: &[u8], records: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(head);
    h.update(records);
    h.finalize()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// One group read back: its first sequence number, its events, and its length in bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Group {
    pub first_seq: u64,
    pub events: Vec<Event>,
    pub len: usize,
}

/// The position of the first event of the group that starts `bytes` (from its header, not
/// checked: for groups this process encoded).
pub fn first_seq(bytes: &[u8]) -> Option<u64> {
    (bytes.len() >= HEADER_BYTES).then(|| u64_at(bytes, 8))
}

/// The events in `bytes`, whole groups this process encoded (read from their headers).
pub fn count_events(bytes: &[u8]) -> u64 {
    let (mut at, mut events) = (0, 0u64);
    while at + HEADER_BYTES <= bytes.len() {
        let count = u32_at(bytes, at + 4) as usize;
        events += count as u64;
        at += HEADER_BYTES + count * RECORD_BYTES;
    }
    events
}

/// Reads the group at the start of `bytes`.
pub fn decode_group(bytes: &[u8]) -> Result<Group, GroupError> {
    if bytes.len() < HEADER_BYTES {
        return Err(GroupError::Torn(bytes.len()));
    }
    if u32_at(bytes, 0) != MAGIC {
        return Err(GroupError::BadMagic);
    }
    let count = u32_at(bytes, 4) as usize;
    if count == 0 || count > MAX_GROUP {
        return Err(GroupError::BadCount(count));
    }
    let len = HEADER_BYTES + count * RECORD_BYTES;
    if bytes.len() < len {
        return Err(GroupError::Torn(bytes.len()));
    }
    let records = &bytes[HEADER_BYTES..len];
    if u32_at(bytes, 16) != checksum(&bytes[..16], records) || u32_at(bytes, 20) != 0 {
        return Err(GroupError::BadChecksum);
    }
    let max_hour = (MAX_TIMESTAMP_MS / MILLIS_PER_HOUR) as u32;
    let events = records
        .chunks_exact(RECORD_BYTES)
        .map(|r| {
            let kind = match r[12] {
                0 => Kind::Click,
                1 => Kind::Impression,
                _ => return Err(GroupError::BadRecord),
            };
            let hour = u32_at(r, 8);
            if hour > max_hour || r[13..16] != [0, 0, 0] {
                return Err(GroupError::BadRecord);
            }
            Ok(Event::new(hour, u64_at(r, 0), kind))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Group {
        first_seq: u64_at(bytes, 8),
        events,
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn events(n: u32) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let kind = if i % 3 == 0 {
                    Kind::Click
                } else {
                    Kind::Impression
                };
                Event::new(
                    490_000 + i % 5,
                    u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    kind,
                )
            })
            .collect()
    }

    #[test]
    fn a_group_reads_back_as_written_and_its_size_is_fixed() {
        let mut out = Vec::new();
        encode_group(&mut out, 7, &events(10));
        assert_eq!(out.len(), HEADER_BYTES + 10 * RECORD_BYTES);
        assert_eq!(first_seq(&out), Some(7));
        let g = decode_group(&out).expect("valid");
        assert_eq!(
            (g.first_seq, g.events.clone(), g.len),
            (7, events(10), out.len())
        );
    }

    #[test]
    fn every_cut_and_every_flipped_bit_is_refused() {
        let mut out = Vec::new();
        encode_group(&mut out, 0, &events(3));
        for cut in 0..out.len() {
            assert!(decode_group(&out[..cut]).is_err(), "cut at {cut}");
        }
        for bit in 0..out.len() * 8 {
            let mut bad = out.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_group(&bad).is_err(), "bit {bit}");
        }
    }

    proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_group(&bytes);
        }
    }
}
