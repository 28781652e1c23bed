//! Durability of one server (README, "Durability"): the journal in `--data-dir` survives a
//! graceful stop and a kill -9, a torn tail is cut off, and a directory that belongs to
//! another server or another ring is refused. Against the real binary.

mod common;

use std::time::Duration;

use common::{now_ms, DataDir, TestServer};

/// POSTs `n` events of `users` users (clicks) at `ts` on one connection, pipelined; returns
/// how many got 204.
fn post_pipelined(s: &TestServer, ts: u64, n: usize, users: usize) -> u64 {
    let mut c = s.connect();
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend_from_slice(
            format!(
                "POST /analytics?timestamp={ts}&user=u{}&click HTTP/1.1\r\nHost: t\r\n\r\n",
                i % users
            )
            .as_bytes(),
        );
    }
    c.write(&batch);
    (0..n).filter(|_| c.response(false).status == 204).count() as u64
}
#[test]
fn a_graceful_stop_loses_nothing() {
    let dir = DataDir::new("graceful");
    let ts = now_ms();
    let s = TestServer::start(&["--data-dir", dir.arg()]);
    let acked = post_pipelined(&s, ts, 3000, 700);
    assert_eq!(acked, 3000);
    let (status, _) = s.terminate();
    assert!(status.success());
    let s = TestServer::start(&["--data-dir", dir.arg()]);
    assert_eq!(s.counts(ts), (700, 3000, 0));
    let recovered = s
        .early_lines()
        .iter()
        .find(|l| l.contains(" recovered "))
        .expect("a recovered line");
    // The stop took a snapshot of all 3 000 events: nothing is left to replay.
    assert_eq!(
        common::log_field(recovered, "snapshot_covers"),
        Some("3000"),
        "{recovered}"
    );
    assert_eq!(
        common::log_field(recovered, "events"),
        Some("0"),
        "{recovered}"
    );
    assert_eq!(
        common::log_field(recovered, "hours_in_ring"),
        Some("1"),
        "{recovered}"
    );
    // And it goes on counting from there (u0..u9 are users it knows already).
    assert_eq!(post_pipelined(&s, ts, 10, 1000), 10);
    assert_eq!(s.wait_counts(ts, (700, 3010, 0)), (700, 3010, 0));
}
/// Under load: four pipelining clients, SIGTERM, restart. The drain answers every request it
/// took, and the restarted server counts exactly the 204s the clients received.
#[test]
fn a_graceful_stop_under_load_restarts_with_exactly_the_acknowledged_events() {
    let dir = DataDir::new("graceful-load");
    let ts = now_ms();
    let s = TestServer::start(&["--data-dir", dir.arg()]);
    let addr = s.addr;
    let clients: Vec<_> = (0..4)
        .map(|t| {
            common::pipelining_poster(addr, move |i| {
                format!("POST /analytics?timestamp={ts}&user=g{t}x{i}&impression HTTP/1.1\r\nHost: t\r\n\r\n")
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    assert!(s.terminate().0.success());
    let seen: Vec<_> = clients
        .into_iter()
        .map(|c| c.join().expect("client"))
        .collect();
    assert!(seen.iter().all(|p| p.refused == 0), "{seen:?}");
    let acked: u64 = seen.iter().map(|p| p.acked).sum();
    assert!(acked > 0);
    let s = TestServer::start(&["--data-dir", dir.arg()]);
    assert_eq!(s.counts(ts), (256, 0, acked));
}
/// `--fsync interval` with an interval longer than the test: the only sync that can come is the
/// one a writer makes once the queue has stayed empty for `writer::QUIET` (1 ms).
#[test]
fn a_quiet_writer_syncs_what_it_wrote_without_waiting_out_the_interval() {
    let dir = DataDir::new("quiet-sync");
    let ts = now_ms();
    let s = TestServer::start(&["--data-dir", dir.arg(), "--fsync-interval-ms", "60000"]);
    let syncs = |s: &TestServer| -> u64 {
        let page = s.get("/metrics").text();
        let line = page
            .lines()
            .find(|l| l.starts_with("hourtally_journal_syncs_total "))
            .unwrap_or_else(|| panic!("no syncs counter in {page}"));
        line["hourtally_journal_syncs_total ".len()..]
            .parse()
            .expect("a count")
    };
    let before = syncs(&s);
    assert_eq!(post_pipelined(&s, ts, 100, 10), 100);
    common::cluster::wait_until("a sync after going quiet", Duration::from_secs(5), || {
        syncs(&s) > before
    });
}
#[test]
fn kill_9_after_the_writer_went_idle_loses_nothing() {
    // Once the answers are in and the writer has taken every event off the queue, a kill -9
    // of the process loses nothing: each was written to the journal before it was applied.
    // (A crash of the machine could still lose what was not synced: the test above checks
    // that a quiet writer syncs.)
    let dir = DataDir::new("kill9-idle");
    let ts = now_ms();
    let s = TestServer::start(&["--data-dir", dir.arg()]);
    let acked = post_pipelined(&s, ts, 2000, 500);
    assert_eq!(s.wait_counts(ts, (500, acked, 0)), (500, acked, 0));
    std::thread::sleep(Duration::from_millis(300));
    s.kill9();
    let s = TestServer::start(&["--data-dir", dir.arg()]);
    assert_eq!(s.counts(ts), (500, acked, 0));
}
/// A kill -9 (the process dies, the machine does not) loses at most the events still in the
/// queue and the writer's batch in hand: what was written to the journal is in the page
/// cache. So the restarted count lies between what was acknowledged minus the queue's
/// capacity and a batch, and what was sent.
#[test]
fn kill_9_under_load_loses_at_most_the_queue() {
    const QUEUE: u64 = 4096;
    const BATCH: u64 = hourtally::writer::BATCH as u64;
    let dir = DataDir::new("kill9-load");
    let ts = now_ms();
    let s = TestServer::start(&[
        "--data-dir",
        dir.arg(),
        "--queue-capacity",
        &QUEUE.to_string(),
    ]);
    let addr = s.addr;
    let client = common::pipelining_poster(addr, move |i| {
        format!("POST /analytics?timestamp={ts}&user=k{i}&click HTTP/1.1\r\nHost: t\r\n\r\n")
    });
    std::thread::sleep(Duration::from_millis(700));
    s.kill9();
    let common::Posted { acked, sent, .. } = client.join().expect("client");
    assert!(acked > 0);
    let s = TestServer::start(&[
        "--data-dir",
        dir.arg(),
        "--queue-capacity",
        &QUEUE.to_string(),
    ]);
    let (users, clicks, _) = s.counts(ts);
    assert!(clicks <= sent, "{clicks} counted, {sent} sent");
    assert!(
        clicks + QUEUE + BATCH >= acked,
        "{clicks} counted, {acked} acknowledged: more lost than the queue holds"
    );
    assert_eq!(users, 64);
}
#[test]
fn a_torn_tail_is_cut_off_and_logged() {
    let dir = DataDir::new("torn");
    let ts = now_ms();
    let s = TestServer::start(&["--data-dir", dir.arg()]);
    assert_eq!(post_pipelined(&s, ts, 100, 10), 100);
    assert!(s.terminate().0.success());
    // A group whose write was cut short by a crash: a valid header, then nothing.
    let mut bytes = std::fs::read(dir.segment()).expect("segment");
    let header = bytes[..24].to_vec();
    bytes.extend_from_slice(&header);
    std::fs::write(dir.segment(), &bytes).expect("write");
    let s = TestServer::start(&["--data-dir", dir.arg()]);
    assert_eq!(s.counts(ts), (10, 100, 0));
    let cut = s
        .early_lines()
        .iter()
        .find(|l| l.contains("cut off"))
        .unwrap_or_else(|| panic!("no cut line in {:?}", s.early_lines()));
    assert_eq!(common::log_field(cut, "bytes"), Some("24"), "{cut}");
}
/// Snapshots every second: each restart replays only the journal after the newest one; a
/// corrupt newest snapshot falls back on the previous one and more of the journal; segments
/// every kept snapshot covers are deleted.
#[test]
fn snapshots_shorten_recovery_fall_back_when_corrupt_and_free_old_segments() {
    let dir = DataDir::new("snapshots");
    let ts = now_ms();
    let args = [
        "--data-dir",
        dir.arg(),
        "--snapshot-interval-s",
        "1",
        "--journal-segment-bytes",
        "4096",
    ];
    let s = TestServer::start(&args);
    let mut acked = 0;
    for round in 0..3 {
        acked += post_pipelined(&s, ts, 1000, 300 + round);
        // Long enough for a snapshot to come due, be captured and written.
        std::thread::sleep(Duration::from_millis(1300));
        assert_eq!(
            s.post(&format!(
                "/analytics?timestamp={ts}&user=tick{round}&impression"
            ))
            .status,
            204
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, lines) = s.terminate();
    assert!(status.success());
    let written = lines
        .iter()
        .filter(|l| l.contains("snapshot written"))
        .count();
    assert!(written >= 3, "{written} snapshots in {lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("deleted a segment")),
        "no segment deleted: {lines:?}"
    );
    let snapshots = dir.0.join("snapshots");
    let mut kept: Vec<_> = std::fs::read_dir(&snapshots)
        .expect("snapshots")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "hts"))
        .collect();
    kept.sort();
    assert_eq!(kept.len(), 2, "{kept:?}");
    // Restart: the stop's snapshot covers everything.
    let s = TestServer::start(&args);
    assert_eq!(s.counts(ts), (305, acked, 3));
    assert!(s.terminate().0.success());
    // Corrupt the newest snapshot: the previous one and the journal after it serve.
    let newest = kept.last().expect("newest").clone();
    let mut bytes = std::fs::read(&newest).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&newest, &bytes).expect("write");
    let s = TestServer::start(&args);
    assert_eq!(s.counts(ts), (305, acked, 3));
    let early = s.early_lines();
    assert!(
        early
            .iter()
            .any(|l| l.contains("snapshot unreadable") && l.contains("checksum mismatch")),
        "{early:?}"
    );
    let recovered = early
        .iter()
        .find(|l| l.contains(" recovered "))
        .expect("recovered");
    let replayed: u64 = common::log_field(recovered, "events")
        .and_then(|v| v.parse().ok())
        .expect("events");
    assert!(replayed > 0, "{recovered}");
}
/// Runs the binary on `dir` with `args` and returns its exit code and stderr. A server that
/// starts instead of refusing is killed after [`REFUSE_WAIT`] (exit code `None`).
fn refused(dir: &DataDir, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["--listen", "127.0.0.1:0", "--data-dir", dir.arg()];
    all.extend_from_slice(args);
    common::exit_of(&all, REFUSE_WAIT)
}
const REFUSE_WAIT: Duration = Duration::from_secs(15);

/// Also once `LOCK` was removed from under the running server (issue 20, item 5: that let a
/// second server share the directory): the directory itself is locked.
#[test]
fn a_second_server_on_the_same_directory_is_refused_even_with_lock_removed() {
    let dir = DataDir::new("locked");
    let s = TestServer::start(&["--data-dir", dir.arg()]);
    for remove_lock in [false, true] {
        if remove_lock {
            std::fs::remove_file(dir.0.join("LOCK")).expect("rm LOCK");
        }
        let (code, err) = refused(&dir, &[]);
        assert_eq!(code, Some(1), "LOCK removed: {remove_lock}: {err}");
        assert!(err.contains("another hourtally server"), "{err}");
    }
    assert_eq!(s.get("/healthz").status, 200);
}
#[test]
fn a_directory_of_another_retention_is_refused() {
    let dir = DataDir::new("retention");
    let s = TestServer::start(&["--data-dir", dir.arg()]);
    assert!(s.terminate().0.success());
    let (code, err) = refused(&dir, &["--retention-hours", "24"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--retention-hours 48"), "{err}");
}
/// `--fsync always`: a 204 goes out only once its event is journaled and synced, so a
/// kill -9 under load loses none of them: the restarted count is at least every 204 the
/// client received (and at most what it sent).
#[test]
fn with_fsync_always_kill_9_under_load_loses_no_acknowledged_event() {
    let dir = DataDir::new("always");
    let ts = now_ms();
    let args = ["--data-dir", dir.arg(), "--fsync", "always"];
    let s = TestServer::start(&args);
    assert_eq!(post_pipelined(&s, ts, 500, 100), 500);
    let addr = s.addr;
    let clients: Vec<_> = (0..4)
        .map(|t| {
            common::pipelining_poster(addr, move |i| {
                format!("POST /analytics?timestamp={ts}&user=a{t}x{i}&impression HTTP/1.1\r\nHost: t\r\n\r\n")
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(600));
    s.kill9();
    let seen: Vec<_> = clients
        .into_iter()
        .map(|c| c.join().expect("client"))
        .collect();
    let acked: u64 = seen.iter().map(|p| p.acked).sum();
    let sent: u64 = seen.iter().map(|p| p.sent).sum();
    assert!(acked > 0, "{seen:?}");
    let s = TestServer::start(&args);
    let (_, clicks, impressions) = s.counts(ts);
    assert_eq!(clicks, 500);
    assert!(
        impressions >= acked,
        "{impressions} counted, {acked} acknowledged"
    );
    assert!(impressions <= sent, "{impressions} counted, {sent} sent");
}
/// Where each group of a journal segment starts (read from the headers: magic, count).
fn group_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut offsets = Vec::new();
    while at + 24 <= bytes.len() && &bytes[at..at + 4] == b"HTJ1" {
        offsets.push(at);
        let count = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        at += 24 + 16 * count as usize;
    }
    offsets
}
/// Issue 20, item 3: one flipped bit in an acknowledged group with acknowledged groups after
/// it is corruption, not a torn tail: the start is refused, says which byte failed its
/// checksum, and leaves every byte in place (it used to cut off all the groups after it).
#[test]
fn a_corrupt_group_with_acknowledged_groups_after_it_refuses_to_start_and_keeps_them() {
    let dir = DataDir::new("corrupt-middle");
    let ts = now_ms();
    let args = ["--data-dir", dir.arg(), "--fsync", "always"];
    let s = TestServer::start(&args);
    // One at a time: with `always`, each 204 waits for its own group.
    for i in 0..30 {
        let r = s.post(&format!("/analytics?timestamp={ts}&user=u{i}&click"));
        assert_eq!(r.status, 204);
    }
    s.kill9();
    let mut bytes = std::fs::read(dir.segment()).expect("segment");
    let groups = group_offsets(&bytes);
    assert!(groups.len() > 12, "{} groups", groups.len());
    let bad = groups[11];
    bytes[bad + 24 + 3] ^= 0x10;
    std::fs::write(dir.segment(), &bytes).expect("write");
    let (code, err) = refused(&dir, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("corrupt at byte {bad} (checksum mismatch)"))
            && err.contains("whole groups follow it"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.segment()).expect("segment"),
        bytes,
        "the refused start changed the journal"
    );
}
/// Issue 20, item 2: a power loss can leave the journal shorter than its newest snapshot
/// (here: cut back to a third of its groups, and 7 torn bytes). The snapshot holds every
/// event, so the server starts from it with every acknowledged event, and goes on.
#[test]
fn a_journal_cut_back_behind_its_snapshot_starts_from_the_snapshot() {
    let dir = DataDir::new("behind-snapshot");
    let ts = now_ms();
    let args = ["--data-dir", dir.arg(), "--fsync", "never"];
    let s = TestServer::start(&args);
    let mut acked = 0;
    for i in 0..60 {
        let r = s.post(&format!("/analytics?timestamp={ts}&user=u{}&click", i % 10));
        acked += u64::from(r.status == 204);
    }
    // A graceful stop writes a snapshot of everything.
    assert!(s.terminate().0.success());
    let bytes = std::fs::read(dir.segment()).expect("segment");
    let groups = group_offsets(&bytes);
    assert!(groups.len() >= 3, "{} groups", groups.len());
    let keep = groups[groups.len() / 3] + 7;
    std::fs::write(dir.segment(), &bytes[..keep]).expect("cut");
    let s = TestServer::start(&args);
    assert_eq!(s.counts(ts), (10, acked, 0));
    assert!(
        s.early_lines()
            .iter()
            .any(|l| l.contains("ends before the newest snapshot")),
        "{:?}",
        s.early_lines()
    );
    assert_eq!(
        s.post(&format!("/analytics?timestamp={ts}&user=late&impression"))
            .status,
        204
    );
    assert!(s.terminate().0.success());
    let s = TestServer::start(&args);
    assert_eq!(s.counts(ts), (11, acked, 1));
}
/// Issue 20, item 5: with `meta` missing, a start that fails (a snapshot of another ring)
/// used to write `meta` anyway, after which neither retention started. A failed start
/// writes nothing, and the right flags start with every event.
#[test]
fn a_failed_start_on_a_directory_without_meta_writes_nothing() {
    let dir = DataDir::new("meta-missing");
    let ts = now_ms();
    let s = TestServer::start(&["--data-dir", dir.arg()]);
    assert_eq!(post_pipelined(&s, ts, 40, 8), 40);
    assert!(s.terminate().0.success());
    std::fs::remove_file(dir.0.join("meta")).expect("rm meta");
    let (code, err) = refused(&dir, &["--retention-hours", "24"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(!dir.0.join("meta").exists(), "the failed start wrote meta");
    let s = TestServer::start(&["--data-dir", dir.arg()]);
    assert_eq!(s.counts(ts), (8, 40, 0));
    assert!(s.terminate().0.success());
    let meta = std::fs::read_to_string(dir.0.join("meta")).expect("meta");
    assert!(meta.contains("retention_hours=48"), "{meta}");
}
/// Issue 20, item 4: a snapshot's temporary file, left by a crash or a full disk, is
/// removed at start (it took room the journal needed, forever).
#[test]
fn an_unfinished_snapshot_file_is_removed_at_start() {
    let dir = DataDir::new("snapshot-tmp");
    let s = TestServer::start(&["--data-dir", dir.arg()]);
    assert!(s.terminate().0.success());
    let tmp = dir.0.join("snapshots").join("00000000000000000007.hts.tmp");
    std::fs::write(&tmp, b"half a snapshot").expect("write");
    let s = TestServer::start(&["--data-dir", dir.arg()]);
    assert!(!tmp.exists(), "the unfinished snapshot is still there");
    assert!(s.terminate().0.success());
}
