//! Opening a journal: finding its segments, replaying them from a snapshot's position, and
//! cutting off a torn or corrupt tail.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::snapshotter::Snapshots;
use super::{
    invalid, segment_name, sync_dir, DataDir, FsyncPolicy, Journal, JournalHealth, Recovery,
    SEGMENT_BYTES,
};
use crate::event::Event;
use crate::record::{decode_group, GroupError, HEADER_BYTES, MAGIC, MAGIC_IDS};
use crate::sync::Arc;

impl Journal {
    /// Opens the journal in `data` (creating it if new), replays every event from position
    /// `from` on (a snapshot covers those before) into `apply` in order, cuts off a torn or
    /// corrupt tail, and returns the journal ready to append. `snapshot_every`: how often the
    /// writer should capture the ring (`None`: never).
    pub fn open(
        data: &DataDir,
        policy: FsyncPolicy,
        snapshot_every: Option<Duration>,
        health: Arc<JournalHealth>,
        from: u64,
        mut apply: impl FnMut(Event),
    ) -> io::Result<(Journal, Recovery)> {
        let dir = data.path().join("journal");
        fs::create_dir_all(&dir)?;
        // The entries of `journal/` and `snapshots/` (made below) in the data directory: a
        // power loss would take a new one, and every synced write inside it.
        let snapshots_dir = data.path().join("snapshots");
        fs::create_dir_all(&snapshots_dir)?;
        sync_dir(data.path())?;
        let mut segments: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let Some(first) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".htj"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            segments.push((first, path));
        }
        segments.sort();
        let mut recovery = Recovery {
            segments: segments.len(),
            ..Recovery::default()
        };
        if let Some((first, path)) = segments.first() {
            if *first > from {
                return Err(invalid(format!(
                    "{}: the journal starts at event {first}, but the snapshot covers only {from}: \
                     events in between are missing; restore the directory from a backup",
                    path.display()
                )));
            }
        }
        // Segments that end at or before `from` are covered by the snapshot: skip them.
        let skip = segments.windows(2).take_while(|w| w[1].0 <= from).count();
        let mut next_seq = segments.get(skip).map_or(from, |s| s.0);
        let mut last: Option<(PathBuf, u64)> = None;
        for (i, (first, path)) in segments.iter().enumerate().skip(skip) {
            let is_last = i + 1 == segments.len();
            if *first != next_seq {
                return Err(invalid(format!(
                    "{}: starts at event {first}, but the journal before it ends at {next_seq}: \
                     a segment is missing",
                    path.display()
                )));
            }
            let mut bytes = Vec::new();
            File::open(path)?.read_to_end(&mut bytes)?;
            let mut at = 0;
            while at < bytes.len() {
                match decode_group(&bytes[at..]) {
                    Ok(g) if g.first_seq == next_seq => {
                        if next_seq >= from {
                            for e in &g.events {
                                apply(*e);
                            }
                            recovery.events += g.events.len() as u64;
                        } else if next_seq + g.events.len() as u64 > from {
                            return Err(invalid(format!(
                                "{}: a group spans the snapshot's position {from}",
                                path.display()
                            )));
                        }
                        next_seq += g.events.len() as u64;
                        at += g.len;
                    }
                    other => {
                        let torn = matches!(other, Err(GroupError::Torn(_)));
                        let why = match other {
                            Ok(g) => {
                                format!("group numbered {} where {next_seq} was due", g.first_seq)
                            }
                            Err(e) => e.to_string(),
                        };
                        // A torn last group has nothing whole after it. Whole groups after a
                        // bad one mean corruption, except a group numbered exactly as due:
                        // a write that failed part-way and was written again after its
                        // remains (the file could not be cut back), so it skips them.
                        match next_whole_group(&bytes, at + 1) {
                            Some((p, first)) if first == next_seq => {
                                tracing::warn!(
                                    segment = %path.display(),
                                    at,
                                    bytes = p - at,
                                    reason = %why,
                                    "journal: skipped the remains of a failed write; the same events follow whole"
                                );
                                at = p;
                                continue;
                            }
                            Some((p, first)) => {
                                return Err(invalid(format!(
                                    "{} is corrupt at byte {at} ({why}), and whole groups follow it \
                                     (from byte {p}, event {first}): they were acknowledged, so \
                                     hourtally will not cut them off. Keep a copy of the data \
                                     directory; README, \"Durability\", says how to start \
                                     without them",
                                    path.display()
                                )));
                            }
                            None if !is_last => {
                                return Err(invalid(format!(
                                    "{} is corrupt at byte {at} ({why}), and segments follow it: \
                                     move the directory aside and restore a backup",
                                    path.display()
                                )));
                            }
                            None => {}
                        }
                        let cut = (bytes.len() - at) as u64;
                        recovery.cut = Some((
                            cut,
                            if torn {
                                format!("torn last group: {why}")
                            } else {
                                why
                            },
                        ));
                        break;
                    }
                }
            }
            if is_last {
                last = Some((path.clone(), at as u64));
            }
        }
        // A power loss can take journal writes that a snapshot already holds (one written
        // before this version synced the journal ahead of every snapshot, or a tail that was
        // torn or cut above): the snapshot has those events, so the journal goes on from its
        // position, in a segment of its own.
        let behind = (next_seq < from).then_some(next_seq);
        if let Some(ended) = behind {
            tracing::warn!(
                journal_ends = ended,
                snapshot_covers = from,
                "journal: ends before the newest snapshot (writes it holds were lost); \
                 going on from the snapshot"
            );
            next_seq = from;
        }
        let mut firsts: Vec<u64> = segments.iter().map(|s| s.0).collect();
        let (path, len) = match (last, behind) {
            (Some(last), None) => last,
            (last, _) => {
                if let Some((old, len)) = last {
                    // Its tail (if torn) is cut; appending goes on in the new segment.
                    cut_to(&old, len)?;
                }
                firsts.push(next_seq);
                (dir.join(segment_name(next_seq)), 0)
            }
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&path)?;
        if file.metadata()?.len() != len {
            cut_file(&file, len)?;
        }
        file.seek(SeekFrom::Start(len))?;
        sync_dir(&dir)?;
        let journal = Journal {
            snapshots: Snapshots::new(snapshots_dir, snapshot_every)?,
            dir,
            segments: firsts,
            file,
            segment_bytes: SEGMENT_BYTES,
            waiters: None,
            len,
            next_seq,
            policy,
            unsynced: false,
            last_sync: Instant::now(),
            pending: Vec::new(),
            health,
        };
        Ok((journal, recovery))
    }
}

/// Cuts the segment at `path` to `len` bytes, durably, if it is longer.
fn cut_to(path: &Path, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    if file.metadata()?.len() != len {
        cut_file(&file, len)?;
    }
    Ok(())
}

fn cut_file(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len)?;
    file.sync_data()
}

/// The first whole group at or after byte `from` of `bytes`: its offset and its first event's
/// position. Looks for a magic number first, so a long run of junk costs little.
fn next_whole_group(bytes: &[u8], from: usize) -> Option<(usize, u64)> {
    let magics = [MAGIC.to_le_bytes(), MAGIC_IDS.to_le_bytes()];
    let mut at = from;
    while at + HEADER_BYTES <= bytes.len() {
        let found = bytes[at..]
            .windows(4)
            .position(|w| magics.iter().any(|m| w == m))?;
        at += found;
        if let Ok(g) = decode_group(&bytes[at..]) {
            return Some((at, g.first_seq));
        }
        at += 1;
    }
    None
}
