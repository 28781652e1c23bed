//! The batch encoding: fixed-size event records in checksummed groups. One format for two
//! uses: the journal's segments are groups end to end (`journal`), and each message of the
//! cluster's stream is one group (`cluster`).
//!
//! ```text
//! group   = header (24 bytes) + count × record (16 bytes, or 24 in an "HTJ2" group)
//! header  = magic "HTJ1" or "HTJ2" (u32 LE) | count (u32) | first_seq (u64) | crc32 (u32) | 0 (u32)
//! record  = fingerprint (u64 LE) | hour (u32) | kind (u8: 0 click, 1 impression) | 0 0 0
//! record2 = record | event id fingerprint (u64 LE; 0: the event has none)
//! ```
//!
//! `first_seq` is the journal position of the group's first event (events since the journal
//! began), so a reader can tell that no group is missing. The CRC-32 covers the header's first
//! 16 bytes (the magic, so the record size, included) and every record: a group is applied
//! whole or not at all. A record holds fingerprints, never the user name or the event id.
//!
//! A group is `"HTJ1"` unless one of its events has an event id: then it is `"HTJ2"`, whose
//! records carry the id's fingerprint. So a journal or a stream of events without ids is byte
//! for byte what it was before ids existed, and a reader of this version reads both. (A
//! server of an older version refuses an `"HTJ2"` group: upgrade every server of a cluster
//! before clients send ids.)

use crate::event::{Event, Kind, MAX_TIMESTAMP_MS, MILLIS_PER_HOUR};

/// `"HTJ1"`, little-endian: a group of records without event ids.
pub const MAGIC: u32 = u32::from_le_bytes(*b"HTJ1");
/// `"HTJ2"`, little-endian: a group of records with event ids.
pub const MAGIC_IDS: u32 = u32::from_le_bytes(*b"HTJ2");
/// Bytes of a group header.
pub const HEADER_BYTES: usize = 24;
/// Bytes of one record of an `"HTJ1"` group.
pub const RECORD_BYTES: usize = 16;
/// Bytes of one record of an `"HTJ2"` group.
pub const RECORD_BYTES_IDS: usize = 24;

/// The record size of a group with magic `magic`, if it is one.
#[inline]
pub fn record_bytes(magic: u32) -> Option<usize> {
    match magic {
        MAGIC => Some(RECORD_BYTES),
        MAGIC_IDS => Some(RECORD_BYTES_IDS),
        _ => None,
    }
}
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
    let ids = events.iter().any(|e| e.id != 0);
    out.extend_from_slice(&if ids { MAGIC_IDS } else { MAGIC }.to_le_bytes());
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend_from_slice(&[0; 8]); // crc and the reserved word, filled below
    for e in events {
        out.extend_from_slice(&e.user.to_le_bytes());
        out.extend_from_slice(&e.hour.to_le_bytes());
        out.extend_from_slice(&[e.kind as u8, 0, 0, 0]);
        if ids {
            out.extend_from_slice(&e.id.to_le_bytes());
        }
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
        let record = record_bytes(u32_at(bytes, at)).unwrap_or(RECORD_BYTES);
        at += HEADER_BYTES + count * record;
    }
    events
}

/// Reads the group at the start of `bytes`.
pub fn decode_group(bytes: &[u8]) -> Result<Group, GroupError> {
    if bytes.len() < HEADER_BYTES {
        return Err(GroupError::Torn(bytes.len()));
    }
    let record = record_bytes(u32_at(bytes, 0)).ok_or(GroupError::BadMagic)?;
    let count = u32_at(bytes, 4) as usize;
    if count == 0 || count > MAX_GROUP {
        return Err(GroupError::BadCount(count));
    }
    let len = HEADER_BYTES + count * record;
    if bytes.len() < len {
        return Err(GroupError::Torn(bytes.len()));
    }
    let records = &bytes[HEADER_BYTES..len];
    if u32_at(bytes, 16) != checksum(&bytes[..16], records) || u32_at(bytes, 20) != 0 {
        return Err(GroupError::BadChecksum);
    }
    let max_hour = (MAX_TIMESTAMP_MS / MILLIS_PER_HOUR) as u32;
    let events = records
        .chunks_exact(record)
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
            let id = if record == RECORD_BYTES_IDS {
                u64_at(r, 16)
            } else {
                0
            };
            Ok(Event::new(hour, u64_at(r, 0), kind).with_id(id))
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

    /// `events(n)` with an id on every third one.
    fn events_with_ids(n: u32) -> Vec<Event> {
        events(n)
            .into_iter()
            .enumerate()
            .map(|(i, e)| e.with_id(if i % 3 == 1 { 1_000 + i as u64 } else { 0 }))
            .collect()
    }

    #[test]
    fn a_group_without_ids_is_htj1_and_with_one_id_htj2_and_both_read_back() {
        let mut plain = Vec::new();
        encode_group(&mut plain, 3, &events(4));
        assert_eq!(&plain[..4], b"HTJ1");
        let mut with_ids = Vec::new();
        encode_group(&mut with_ids, 3, &events_with_ids(4));
        assert_eq!(&with_ids[..4], b"HTJ2");
        assert_eq!(with_ids.len(), HEADER_BYTES + 4 * RECORD_BYTES_IDS);
        let g = decode_group(&with_ids).expect("valid");
        assert_eq!(g.events, events_with_ids(4));
        assert_eq!(g.len, with_ids.len());
        // Both kinds end to end, as a journal segment holds them.
        let mut both = plain.clone();
        both.extend_from_slice(&with_ids);
        assert_eq!(count_events(&both), 8);
    }

    #[test]
    fn every_cut_and_every_flipped_bit_is_refused() {
        for events in [events(3), events_with_ids(3)] {
            let mut out = Vec::new();
            encode_group(&mut out, 0, &events);
            for cut in 0..out.len() {
                assert!(decode_group(&out[..cut]).is_err(), "cut at {cut}");
            }
            for bit in 0..out.len() * 8 {
                let mut bad = out.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(decode_group(&bad).is_err(), "bit {bit}");
            }
        }
    }

    proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_group(&bytes);
        }
    }
}
