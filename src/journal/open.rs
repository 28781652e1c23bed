//! Opening a journal: finding its segments, replaying them from a snapshot's position, and
//! cutting off a torn or corrupt tail.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::record::{decode_group, GroupError};
use super::snapshots::Snapshots;
use super::{
    invalid, segment_name, sync_dir, DataDir, FsyncPolicy, Journal, JournalHealth, Recovery,
    SEGMENT_BYTES,
};
use crate::event::Event;
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
                        if !is_last {
                            return Err(invalid(format!(
                                "{} is corrupt at byte {at} ({why}), and segments follow it: \
                                 move the directory aside and restore a backup",
                                path.display()
                            )));
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
        if next_seq < from {
            return Err(invalid(format!(
                "the journal ends at event {next_seq}, but the snapshot covers {from}: \
                 the journal is behind its snapshot; restore the directory from a backup"
            )));
        }
        let mut firsts: Vec<u64> = segments.iter().map(|s| s.0).collect();
        let (path, len) = match last {
            Some(last) => last,
            None => {
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
            file.set_len(len)?;
            file.sync_data()?;
        }
        file.seek(SeekFrom::Start(len))?;
        sync_dir(&dir)?;
        let journal = Journal {
            snapshots: Snapshots::new(data.path().join("snapshots"), snapshot_every)?,
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
