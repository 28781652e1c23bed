//! Tests of `journal`: replay, torn and corrupt tails, the data directory's lock and stamp.

use super::*;
use crate::event::Kind;
use crate::record::encode_group;
use crate::ring::{Ring, RingWriter};
use crate::writer::Sink;
use proptest::prelude::*;
use std::fs;

use crate::durable::TempDir;

fn ev(hour: u32, user: u64, click: bool) -> Event {
    Event::new(
        hour,
        user,
        if click { Kind::Click } else { Kind::Impression },
    )
}

/// Opens the journal in `dir` and returns it with every event it replayed.
fn open(data: &DataDir) -> (Journal, Recovery, Vec<Event>) {
    let mut seen = Vec::new();
    let (j, r) = Journal::open(
        data,
        FsyncPolicy::Interval(DEFAULT_FSYNC_INTERVAL),
        None,
        Arc::new(JournalHealth::default()),
        0,
        |e| seen.push(e),
    )
    .expect("open");
    (j, r, seen)
}

fn segment(dir: &TempDir) -> PathBuf {
    dir.0.join("journal").join(segment_name(0))
}

#[test]
fn a_reopened_journal_replays_every_event_in_order() {
    let dir = TempDir::new("journal");
    let data = DataDir::open(&dir.0, 48).expect("data dir");
    let batches = [vec![ev(1, 1, true), ev(1, 2, false)], vec![ev(2, 1, true)]];
    {
        let (mut j, r, seen) = open(&data);
        assert_eq!((r.events, seen.len()), (0, 0));
        for b in &batches {
            j.batch(b, false);
        }
        j.finish();
        assert_eq!(j.next_seq(), 3);
    }
    let (mut j, r, seen) = open(&data);
    assert_eq!(seen, batches.concat());
    assert_eq!((r.events, r.cut.clone()), (3, None));
    // It goes on from there, numbering from 3.
    j.batch(&[ev(3, 9, false)], false);
    j.finish();
    drop(j);
    let (_, r, seen) = open(&data);
    assert_eq!(r.events, 4);
    assert_eq!(seen[3], ev(3, 9, false));
    // One group is 24 bytes of header and 16 per event.
    let len = fs::metadata(segment(&dir)).expect("segment").len();
    assert_eq!(len, 3 * 24 + 4 * 16);
}

#[test]
fn a_torn_last_group_is_cut_off_and_never_applied() {
    let dir = TempDir::new("journal");
    let data = DataDir::open(&dir.0, 48).expect("data dir");
    {
        let (mut j, _, _) = open(&data);
        j.batch(&[ev(1, 1, true)], false);
        j.batch(&[ev(1, 2, true), ev(1, 3, true)], false);
        j.finish();
    }
    let path = segment(&dir);
    let whole = fs::metadata(&path).expect("segment").len();
    // Tear the last group: its last 5 bytes never reached the disk.
    let f = OpenOptions::new().write(true).open(&path).expect("open");
    f.set_len(whole - 5).expect("truncate");
    drop(f);
    let (mut j, r, seen) = open(&data);
    assert_eq!(seen, [ev(1, 1, true)]);
    let (cut, why) = r.cut.expect("a cut");
    assert_eq!(cut, 24 + 2 * 16 - 5);
    assert!(why.contains("torn"), "{why}");
    // The file was cut back, and appending goes on cleanly from event 1.
    j.batch(&[ev(2, 4, false)], false);
    j.finish();
    drop(j);
    let (_, r, seen) = open(&data);
    assert_eq!(seen, [ev(1, 1, true), ev(2, 4, false)]);
    assert_eq!(r.cut, None);
}

#[test]
fn a_corrupt_last_group_is_cut_off() {
    let dir = TempDir::new("journal");
    let data = DataDir::open(&dir.0, 48).expect("data dir");
    {
        let (mut j, _, _) = open(&data);
        j.batch(&[ev(1, 1, true)], false);
        j.batch(&[ev(1, 2, true)], false);
        j.finish();
    }
    let path = segment(&dir);
    let mut bytes = fs::read(&path).expect("read");
    let last = bytes.len() - 3;
    bytes[last] ^= 0x40;
    fs::write(&path, &bytes).expect("write");
    let (_, r, seen) = open(&data);
    assert_eq!(seen, [ev(1, 1, true)]);
    let (cut, why) = r.cut.expect("a cut");
    assert_eq!((cut, why.as_str()), (24 + 16, "checksum mismatch"));
}

#[test]
fn corruption_before_the_last_segment_refuses_to_start() {
    let dir = TempDir::new("journal");
    let data = DataDir::open(&dir.0, 48).expect("data dir");
    let jdir = dir.0.join("journal");
    fs::create_dir_all(&jdir).expect("mkdir");
    let mut first = Vec::new();
    encode_group(&mut first, 0, &[ev(1, 1, true), ev(1, 2, true)]);
    first[30] ^= 1;
    fs::write(jdir.join(segment_name(0)), &first).expect("write");
    let mut second = Vec::new();
    encode_group(&mut second, 2, &[ev(1, 3, true)]);
    fs::write(jdir.join(segment_name(2)), &second).expect("write");
    let err = Journal::open(
        &data,
        FsyncPolicy::Never,
        None,
        Arc::new(JournalHealth::default()),
        0,
        |_| {},
    )
    .expect_err("refused");
    assert!(err.to_string().contains("segments follow it"), "{err}");
}

/// Opens the journal in `data` from position `from` (a snapshot's) with `policy`.
fn open_from(
    data: &DataDir,
    policy: FsyncPolicy,
    from: u64,
) -> io::Result<(Journal, Recovery, Vec<Event>)> {
    let mut seen = Vec::new();
    let (j, r) = Journal::open(
        data,
        policy,
        None,
        Arc::new(JournalHealth::default()),
        from,
        |e| seen.push(e),
    )?;
    Ok((j, r, seen))
}

/// Twenty groups of one event each (event `i` is user `i`), journaled and closed.
fn twenty_groups(data: &DataDir) -> Vec<Event> {
    let events: Vec<Event> = (0..20).map(|i| ev(1, i, true)).collect();
    let (mut j, _, _) = open(data);
    for e in &events {
        j.batch(std::slice::from_ref(e), false);
    }
    j.finish();
    events
}

/// Bytes of a group of one event.
const ONE: usize = 24 + 16;

#[test]
fn a_corrupt_group_followed_by_whole_groups_refuses_to_start_and_keeps_every_byte() {
    let dir = TempDir::new("journal");
    let data = DataDir::open(&dir.0, 48).expect("data dir");
    twenty_groups(&data);
    let path = segment(&dir);
    let mut bytes = fs::read(&path).expect("read");
    // One flipped bit in group 11's record: nine whole groups follow it.
    bytes[11 * ONE + 30] ^= 1;
    fs::write(&path, &bytes).expect("write");
    let err = open_from(&data, FsyncPolicy::Never, 0).expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("corrupt at byte 440 (checksum mismatch)"),
        "{msg}"
    );
    assert!(msg.contains("whole groups follow it"), "{msg}");
    assert!(msg.contains("event 12"), "{msg}");
    assert_eq!(fs::read(&path).expect("read"), bytes, "a byte was changed");
    // A snapshot covering the bad group changes nothing: the checksum is named, not a
    // journal that ends early.
    let err = open_from(&data, FsyncPolicy::Never, 20).expect_err("refused");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    assert_eq!(fs::read(&path).expect("read"), bytes, "a byte was changed");
}

#[test]
fn the_remains_of_a_failed_write_before_the_same_group_written_whole_are_skipped() {
    let dir = TempDir::new("journal");
    let data = DataDir::open(&dir.0, 48).expect("data dir");
    let events = twenty_groups(&data);
    let path = segment(&dir);
    let bytes = fs::read(&path).expect("read");
    // Group 5 was written part-way, could not be cut back, and was written again whole.
    let mut healed = bytes[..5 * ONE].to_vec();
    healed.extend_from_slice(&bytes[5 * ONE..5 * ONE + 29]);
    healed.extend_from_slice(&bytes[5 * ONE..]);
    fs::write(&path, &healed).expect("write");
    let (_, r, seen) = open_from(&data, FsyncPolicy::Never, 0).expect("open");
    assert_eq!(seen, events);
    assert_eq!(r.cut, None);
}

#[test]
fn a_journal_that_ends_before_its_snapshot_goes_on_from_the_snapshot() {
    for torn in [0, 7] {
        let dir = TempDir::new("journal");
        let data = DataDir::open(&dir.0, 48).expect("data dir");
        twenty_groups(&data);
        // A power loss kept 12 groups (and `torn` bytes of the 13th); a snapshot covers 20.
        let path = segment(&dir);
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.set_len((12 * ONE + torn) as u64).expect("cut");
        drop(f);
        let (mut j, r, seen) = open_from(&data, FsyncPolicy::Never, 20).expect("starts");
        assert_eq!((seen.len(), r.events), (0, 0), "torn {torn}");
        assert_eq!(j.next_seq(), 20);
        assert_eq!(fs::metadata(&path).expect("old").len(), (12 * ONE) as u64);
        j.batch(&[ev(2, 7, false)], false);
        j.finish();
        drop(j);
        // The next start replays what came after the snapshot, and nothing else.
        let (_, r, seen) = open_from(&data, FsyncPolicy::Never, 20).expect("starts again");
        assert_eq!(seen, [ev(2, 7, false)], "torn {torn}");
        assert_eq!(r.cut, None);
    }
}

#[test]
fn a_snapshot_is_begun_only_once_the_journal_it_covers_is_synced() {
    let dir = TempDir::new("journal");
    let data = DataDir::open(&dir.0, 48).expect("data dir");
    let health = Arc::new(JournalHealth::default());
    let (mut j, _) =
        Journal::open(&data, FsyncPolicy::Never, None, health.clone(), 0, |_| {}).expect("open");
    j.batch(&[ev(1, 1, true)], false);
    j.batch(&[ev(1, 2, true)], false);
    assert_eq!(health.figures().3, 0, "`never` syncs nothing by itself");
    assert_eq!(j.snapshot_due(true), Some(2));
    assert_eq!(
        health.figures().3,
        1,
        "the snapshot's events were synced first"
    );
    assert!(!j.unsynced);
}

#[test]
fn a_second_server_on_a_locked_directory_is_refused() {
    let dir = TempDir::new("journal");
    let first = DataDir::open(&dir.0, 48).expect("first");
    let second = DataDir::open(&dir.0, 48).expect_err("locked");
    assert!(matches!(second, DataDirError::Locked(_)), "{second}");
    assert!(second.to_string().contains("another hourtally server"));
    drop(first);
    DataDir::open(&dir.0, 48).expect("free again");
}

#[test]
fn removing_lock_from_under_a_server_does_not_let_a_second_one_in() {
    let dir = TempDir::new("journal");
    let first = DataDir::open(&dir.0, 48).expect("first");
    fs::remove_file(dir.0.join("LOCK")).expect("rm LOCK");
    let second = DataDir::open(&dir.0, 48).expect_err("the directory itself is locked");
    assert!(matches!(second, DataDirError::Locked(_)), "{second}");
    drop(first);
    DataDir::open(&dir.0, 48).expect("free again");
}

#[test]
fn a_start_that_fails_before_its_stamp_writes_no_meta() {
    let dir = TempDir::new("journal");
    // Opened, then the start fails (say, the snapshot is of another ring): no stamp.
    drop(DataDir::open(&dir.0, 24).expect("open"));
    assert!(!dir.0.join("meta").exists());
    // So the right flags still start, and stamp it.
    let mut data = DataDir::open(&dir.0, 48).expect("open with the right retention");
    data.stamp().expect("stamp");
    drop(data);
    let meta = fs::read_to_string(dir.0.join("meta")).expect("meta");
    assert!(meta.contains("retention_hours=48"), "{meta}");
}

#[test]
fn a_directory_of_another_capacity_or_version_is_refused() {
    let dir = TempDir::new("journal");
    let mut first = DataDir::open(&dir.0, 48).expect("new");
    first.stamp().expect("stamp");
    drop(first);
    let err = DataDir::open(&dir.0, 24).expect_err("other retention");
    assert!(err.to_string().contains("--retention-hours 48"), "{err}");
    fs::write(
        dir.0.join("meta"),
        "hourtally-data 99\nretention_hours=48\n",
    )
    .expect("write");
    let err = DataDir::open(&dir.0, 48).expect_err("other version");
    assert!(matches!(err, DataDirError::OtherVersion { .. }), "{err}");
    fs::write(dir.0.join("meta"), "something else\n").expect("write");
    let err = DataDir::open(&dir.0, 48).expect_err("bad meta");
    assert!(matches!(err, DataDirError::BadMeta(_)), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Replay is deterministic: a ring rebuilt from the journal answers every hour as the
    /// ring that applied the events live, recycling and sealed drops included.
    #[test]
    fn replay_rebuilds_the_same_ring(
        events in proptest::collection::vec((0u32..20, 0u64..30, any::<bool>()), 1..300),
        batch in 1usize..9,
        cap in 1usize..5,
    ) {
        let dir = TempDir::new("journal");
        let data = DataDir::open(&dir.0, cap as u32).expect("data dir");
        let events: Vec<Event> = events.into_iter().map(|(h, u, c)| ev(h, u, c)).collect();
        let live = Arc::new(Ring::new(cap));
        let mut live_writer = RingWriter::new(live.clone());
        {
            let (mut j, _, _) = open(&data);
            for chunk in events.chunks(batch) {
                j.batch(chunk, false);
                for &e in chunk {
                    live_writer.apply(e);
                }
                live_writer.publish();
            }
            j.finish();
        }
        let replayed = Arc::new(Ring::new(cap));
        let mut replay_writer = RingWriter::new(replayed.clone());
        let (_, r, _) = {
            let mut seen = Vec::new();
            let (j, r) = Journal::open(&data, FsyncPolicy::Never, None, Arc::new(JournalHealth::default()), 0, |e| {
                replay_writer.apply(e);
                seen.push(e);
            }).expect("open");
            (j, r, seen)
        };
        replay_writer.publish();
        prop_assert_eq!(r.events, events.len() as u64);
        for hour in 0..20 {
            prop_assert_eq!(replayed.read(hour), live.read(hour), "hour {}", hour);
        }
        prop_assert_eq!(replayed.sealed_drops(), live.sealed_drops());
        prop_assert_eq!(replayed.archive().try_len(), live.archive().try_len());
    }
}

#[test]
fn a_data_directory_keeps_its_cold_retention_and_refuses_another() {
    let dir = TempDir::new("journal");
    let open = |cold: u32| DataDir::open(&dir.0, 48).and_then(|d| d.with_cold_retention(cold));
    // A directory an older build stamped: no cold retention recorded, any is taken.
    fs::write(dir.0.join("meta"), "hourtally-data 1\nretention_hours=48\n").expect("meta");
    let mut data = open(720).expect("taken");
    data.stamp().expect("stamp");
    drop(data);
    let meta = fs::read_to_string(dir.0.join("meta")).expect("meta");
    assert!(meta.ends_with("cold_retention_hours=720\n"), "{meta}");
    // The journal's late events were counted under 720: another retention, or none, would
    // replay them under another rule.
    for other in [0, 100] {
        let err = open(other).expect_err("refused");
        assert!(
            matches!(err, DataDirError::OtherColdRetention { found: 720, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("--cold-retention-hours 720"),
            "{err}"
        );
    }
    drop(open(720).expect("the same one"));
    // A directory that ran without a cold tier takes one.
    fs::write(
        dir.0.join("meta"),
        "hourtally-data 1\nretention_hours=48\ncold_retention_hours=0\n",
    )
    .expect("meta");
    drop(open(100).expect("taken"));
}
