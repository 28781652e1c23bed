//! Writes a data directory whose journal holds `HOURS` past hours of `USERS` users each, half
//! of them the same users in every hour, for a ring of 3 slots: started on it with
//! `--retention-hours 3`, a server replays the journal and all but the last 3 hours leave
//! the ring, into the cold tier. `scripts/bench-cold.sh` measures the cold tier with it.
//!
//! ```sh
//! cargo run --release --example journal_of_hours -- DIR HOURS USERS
//! ```
//!
//! The hours end 2 hours before the clock's hour. The first stdout line is the first hour's
//! first millisecond, the second the number of distinct users over all the hours.

use std::io::Write;
use std::process::ExitCode;

use hourtally::event::{fingerprint, Event, Kind, MILLIS_PER_HOUR};
use hourtally::record::{encode_group, MAX_GROUP};

/// Events per segment file (the server's own segments hold 64 MiB; these about as much).
const SEGMENT_EVENTS: usize = 4 << 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(hours), Some(users)) = (
        args.first(),
        args.get(1).and_then(|h| h.parse::<u64>().ok()),
        args.get(2).and_then(|u| u.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: journal_of_hours DIR HOURS USERS");
        return ExitCode::from(2);
    };
    match write(std::path::Path::new(dir), hours, users) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("journal_of_hours: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write(dir: &std::path::Path, hours: u64, users: u64) -> std::io::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(std::io::Error::other)?
        .as_millis() as u64;
    let first = now / MILLIS_PER_HOUR - 2 - hours;
    std::fs::create_dir_all(dir.join("journal"))?;
    std::fs::write(dir.join("meta"), "hourtally-data 1\nretention_hours=3\n")?;
    let mut seq = 0u64;
    let mut segment = Vec::new();
    let mut segment_first = 0u64;
    let mut group = Vec::with_capacity(MAX_GROUP);
    let flush_segment = |segment: &mut Vec<u8>, first: u64| -> std::io::Result<()> {
        if !segment.is_empty() {
            std::fs::write(
                dir.join("journal").join(format!("{first:020}.htj")),
                &segment,
            )?;
            segment.clear();
        }
        Ok(())
    };
    for h in first..first + hours {
        for i in 0..users {
            let name = if i < users / 2 {
                format!("s{i}")
            } else {
                format!("h{h}-{i}")
            };
            group.push(Event::new(
                h as u32,
                fingerprint(name.as_bytes()),
                Kind::Click,
            ));
            if group.len() == MAX_GROUP {
                encode_group(&mut segment, seq, &group);
                seq += group.len() as u64;
                group.clear();
                if (seq - segment_first) as usize >= SEGMENT_EVENTS {
                    flush_segment(&mut segment, segment_first)?;
                    segment_first = seq;
                }
            }
        }
    }
    if !group.is_empty() {
        encode_group(&mut segment, seq, &group);
    }
    flush_segment(&mut segment, segment_first)?;
    let distinct = users / 2 + hours * (users - users / 2);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", first * MILLIS_PER_HOUR)?;
    writeln!(out, "{distinct}")?;
    Ok(())
}
