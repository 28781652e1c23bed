//! Snapshots: the ring at one journal position, in a file of its own.
//!
//! ```text
//! "HTSNAP" | version (u16 LE: 1, 2 or 3) | slots (u32) | 0 (u32) | covered (u64) | sealed_drops (u64)
//! versions 2 and 3: duplicates (u64)
//! archive entries (u64), each: hour (u32) | 0 (u32) | unique (u64) | clicks (u64) | impressions (u64)
//! per slot: hour (u32) | 0 (u32) | unique | clicks | impressions | users (u64) | users × fingerprint (u64)
//!           versions 2 and 3: ids (u64) | ids × event id fingerprint (u64)
//! version 3 only: late hours (u64), each: hour (u32) | 0 (u32) | users (u64) | users × fingerprint (u64)
//! crc32 of all the above (u32) | "HTSE"
//! ```
//!
//! Version 2 adds what event ids need: each slot's counted ids and the count of repeats
//! dropped. Version 3 adds the users late events counted in hours that had left the ring
//! (`late`), whose counts are in the archive entries; it is written only when there are
//! some. A ring that has never seen an id is written as version 1, byte for byte what a
//! build without ids wrote, so such a data directory still opens with one; this build reads
//! both.
//!
//! Fingerprints, never the sets' keyed layout (a restore builds new sets with new keys). A file
//! is written whole to a temporary name, synced, renamed to `snapshots/{covered:020}.hts` and
//! the directory synced, so a crash leaves the old snapshot or the new one, never half of
//! one. The bytes do not depend on where they are stored: the cluster will keep the same ones
//! in an object store.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::counts::Counts;
use crate::event::{MAX_TIMESTAMP_MS, MILLIS_PER_HOUR};
use crate::ring::{RingImage, SlotImage, EMPTY};

/// The newest version of the snapshot format (this build reads it and every older one).
pub const SNAPSHOT_VERSION: u16 = 3;
const MAGIC: &[u8; 6] = b"HTSNAP";
const END: &[u8; 4] = b"HTSE";

/// The file name of the snapshot covering `covered` events.
pub fn file_name(covered: u64) -> String {
    format!("{covered:020}.hts")
}

/// Serialises `image`.
pub fn encode(image: &RingImage) -> Vec<u8> {
    let users: usize = image
        .slots
        .iter()
        .map(|s| s.user_count() as usize + s.ids.len())
        .sum();
    let late = !image.late.is_empty();
    let ids = late || image.duplicates != 0 || image.slots.iter().any(|s| !s.ids.is_empty());
    let version: u16 = if late {
        3
    } else if ids {
        2
    } else {
        1
    };
    let mut out =
        Vec::with_capacity(48 + image.archive.len() * 32 + image.slots.len() * 48 + users * 8 + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(image.slots.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&image.covered.to_le_bytes());
    out.extend_from_slice(&image.sealed_drops.to_le_bytes());
    if ids {
        out.extend_from_slice(&image.duplicates.to_le_bytes());
    }
    out.extend_from_slice(&(image.archive.len() as u64).to_le_bytes());
    let put_counts = |out: &mut Vec<u8>, hour: u32, c: &Counts| {
        out.extend_from_slice(&hour.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&c.unique_users.to_le_bytes());
        out.extend_from_slice(&c.clicks.to_le_bytes());
        out.extend_from_slice(&c.impressions.to_le_bytes());
    };
    for (hour, counts) in &image.archive {
        put_counts(&mut out, *hour, counts);
    }
    for slot in &image.slots {
        put_counts(&mut out, slot.hour, &slot.counts);
        out.extend_from_slice(&slot.user_count().to_le_bytes());
        for fp in slot.all_users() {
            out.extend_from_slice(&fp.to_le_bytes());
        }
        if ids {
            out.extend_from_slice(&(slot.ids.len() as u64).to_le_bytes());
            for id in &slot.ids {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
    }
    if late {
        out.extend_from_slice(&(image.late.len() as u64).to_le_bytes());
        for (hour, users) in &image.late {
            out.extend_from_slice(&hour.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&(users.len() as u64).to_le_bytes());
            for fp in users {
                out.extend_from_slice(&fp.to_le_bytes());
            }
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(END);
    out
}

/// A reader over the bytes that refuses to run past their end.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut w = [0; 4];
        w.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(w))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut w = [0; 8];
        w.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(w))
    }

    /// `n` fingerprints (after their count), refusing a count larger than the bytes left.
    fn fingerprints(&mut self, n: u64) -> Result<Vec<u64>, String> {
        if n > (self.0.len() / 8) as u64 {
            return Err("a list longer than the file".into());
        }
        Ok(self
            .take(n as usize * 8)?
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
            .collect())
    }

    fn counts(&mut self) -> Result<(u32, Counts), String> {
        let hour = self.u32()?;
        if self.u32()? != 0 {
            return Err("a reserved word is not zero".into());
        }
        let counts = Counts {
            unique_users: self.u64()?,
            clicks: self.u64()?,
            impressions: self.u64()?,
        };
        Ok((hour, counts))
    }
}

/// Reads a snapshot; the error says what is wrong with it.
pub fn decode(bytes: &[u8]) -> Result<RingImage, String> {
    if bytes.len() < MAGIC.len() + 2 + 8 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a snapshot (bad magic)".into());
    }
    let version = u16::from_le_bytes([bytes[6], bytes[7]]);
    if !(1..=SNAPSHOT_VERSION).contains(&version) {
        return Err(format!(
            "snapshot format version {version}, this build reads 1 to {SNAPSHOT_VERSION}"
        ));
    }
    let ids = version >= 2;
    let (body, trailer) = bytes.split_at(bytes.len() - 8);
    if &trailer[4..] != END {
        return Err("truncated (no end mark)".into());
    }
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    if crc != crc32fast::hash(body) {
        return Err("checksum mismatch".into());
    }
    let max_hour = (MAX_TIMESTAMP_MS / MILLIS_PER_HOUR) as u32;
    let mut c = Cursor(&body[8..]);
    let slots = c.u32()? as usize;
    if c.u32()? != 0 {
        return Err("a reserved word is not zero".into());
    }
    let covered = c.u64()?;
    let sealed_drops = c.u64()?;
    let duplicates = if ids { c.u64()? } else { 0 };
    let archived = c.u64()?;
    if archived > (c.0.len() / 32) as u64 || slots > c.0.len() / 40 {
        return Err("counts larger than the file".into());
    }
    let mut archive = Vec::with_capacity(archived as usize);
    for _ in 0..archived {
        let (hour, counts) = c.counts()?;
        if hour > max_hour {
            return Err(format!("archived hour {hour} out of range"));
        }
        archive.push((hour, counts));
    }
    let mut images = Vec::with_capacity(slots);
    for i in 0..slots {
        let (hour, counts) = c.counts()?;
        if hour != EMPTY && hour > max_hour {
            return Err(format!("slot {i}: hour {hour} out of range"));
        }
        let n = c.u64()?;
        if n != counts.unique_users {
            return Err(format!(
                "slot {i}: {n} users listed for unique_users={}",
                counts.unique_users
            ));
        }
        let users = c.fingerprints(n)?;
        let ids = if ids {
            let n = c.u64()?;
            c.fingerprints(n)?
        } else {
            Vec::new()
        };
        images.push(SlotImage {
            hour,
            counts,
            base: None,
            users,
            ids,
        });
    }
    let mut late = Vec::new();
    if version >= 3 {
        let hours = c.u64()?;
        if hours > (c.0.len() / 16) as u64 {
            return Err("late hours larger than the file".into());
        }
        for _ in 0..hours {
            let hour = c.u32()?;
            if c.u32()? != 0 {
                return Err("a reserved word is not zero".into());
            }
            if hour > max_hour {
                return Err(format!("late hour {hour} out of range"));
            }
            let n = c.u64()?;
            late.push((hour, c.fingerprints(n)?));
        }
    }
    if !c.0.is_empty() {
        return Err("bytes after the last slot".into());
    }
    Ok(RingImage {
        covered,
        late_marked: false,
        late,
        // Not in the file: a restored ring's hours that left before it are on disk already.
        left_before: 0,
        sealed_drops,
        duplicates,
        archive,
        slots: images,
    })
}

/// Writes `image` into `dir` atomically (`durable::write_atomically`); returns the file's path.
pub fn write(dir: &Path, image: &RingImage) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    crate::durable::write_atomically(dir, &file_name(image.covered), &encode(image))
}

/// Removes the temporary files of snapshots that were never finished (a crash, or a disk
/// that filled up while one was written): they hold nothing the journal lacks, and take
/// room it may need. Called at start, before any snapshot is written. Returns how many.
pub fn remove_unfinished(dir: &Path) -> io::Result<usize> {
    crate::durable::remove_unfinished(dir)
}

/// The positions of the snapshots in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut found = Vec::new();
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let name = entry?.file_name();
                if let Some(covered) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".hts"))
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    found.push(covered);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    found.sort_unstable();
    Ok(found)
}

/// The newest snapshot in `dir` that reads back whole, and a note for each newer one that
/// did not (each is skipped: the previous one and more of the journal replace it).
pub fn load_newest(dir: &Path) -> io::Result<(Option<RingImage>, Vec<String>)> {
    let mut skipped = Vec::new();
    for covered in list(dir)?.into_iter().rev() {
        let path = dir.join(file_name(covered));
        let image = fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| decode(&bytes))
            .and_then(|image| {
                if image.covered == covered {
                    Ok(image)
                } else {
                    Err(format!("it says it covers {} events", image.covered))
                }
            });
        match image {
            Ok(image) => return Ok((Some(image), skipped)),
            Err(why) => skipped.push(format!("{}: {why}", path.display())),
        }
    }
    Ok((None, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> RingImage {
        let c = |u, cl, im| Counts {
            unique_users: u,
            clicks: cl,
            impressions: im,
        };
        RingImage {
            covered: 42,
            left_before: 0,
            late_marked: false,
            late: Vec::new(),
            sealed_drops: 3,
            duplicates: 0,
            archive: vec![(400_000, c(5, 6, 7)), (400_002, c(1, 1, 0))],
            slots: vec![
                SlotImage {
                    hour: 490_001,
                    counts: c(2, 3, 4),
                    base: None,
                    users: vec![9, u64::MAX],
                    ids: vec![],
                },
                SlotImage {
                    hour: EMPTY,
                    counts: c(0, 0, 0),
                    base: None,
                    users: vec![],
                    ids: vec![],
                },
            ],
        }
    }

    /// [`image`] with event ids counted in its first slot and one repeat dropped.
    fn image_with_ids() -> RingImage {
        let mut image = image();
        image.duplicates = 1;
        image.slots[0].ids = vec![7, u64::MAX - 1];
        image
    }

    #[test]
    fn a_snapshot_reads_back_as_written() {
        assert_eq!(decode(&encode(&image())), Ok(image()));
        assert_eq!(decode(&encode(&image_with_ids())), Ok(image_with_ids()));
    }

    #[test]
    fn a_ring_without_ids_is_written_as_version_1_and_one_with_ids_as_version_2() {
        let v1 = encode(&image());
        assert_eq!(u16::from_le_bytes([v1[6], v1[7]]), 1);
        // Version 1 is the layout a build without ids wrote: nothing between sealed_drops
        // and the archive's length, nothing after a slot's users.
        let slots = 2 * 40 + 2 * 8;
        assert_eq!(v1.len(), 8 + 8 + 16 + 8 + 2 * 32 + slots + 8);
        let v2 = encode(&image_with_ids());
        assert_eq!(u16::from_le_bytes([v2[6], v2[7]]), 2);
        assert_eq!(v2.len(), v1.len() + 8 + 2 * 8 + 2 * 8);
    }

    #[test]
    fn every_cut_and_every_flipped_byte_is_refused() {
        for image in [image(), image_with_ids()] {
            let bytes = encode(&image);
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            for i in 0..bytes.len() {
                let mut bad = bytes.clone();
                bad[i] ^= 0x10;
                assert!(decode(&bad).is_err(), "byte {i}");
            }
        }
    }

    #[test]
    fn an_unknown_version_says_so() {
        let mut bytes = encode(&image());
        bytes[6] = 9;
        let err = decode(&bytes).expect_err("refused");
        assert!(err.contains("version 9"), "{err}");
    }
}
