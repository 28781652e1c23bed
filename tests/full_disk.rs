//! A server with a data directory on a full disk (README, "Durability"): POSTs are refused
//! while the journal cannot write, nothing answered 204 is lost, a graceful stop waits for
//! space (a second signal gives up and says how many were lost), and with `--fsync always`
//! each POST is answered 204 and counted or 503 and never counted; a full cold tier (the
//! hours that left the ring) holds up neither POSTs nor reads, loses nothing and heals. Each
//! disk is a small tmpfs the test mounts (as root, as CI runs). Against the real binary.

mod common;

use std::time::Duration;

use common::{now_ms, DataDir, TestServer};

/// POSTs an impression of user `healed` at `ts` every 100 ms until one gets 204 (space came
/// back and the journal took it); fails past 10 s.
fn post_until_taken(s: &TestServer, ts: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.post(&format!("/analytics?timestamp={ts}&user=healed&impression"));
        if r.status == 204 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "still refused: {r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A tmpfs of `size` mounted on a fresh directory; unmounted when dropped. Needs root (the
/// test script runs as root, as CI does).
struct SmallDisk(DataDir);

/// Mounts a tmpfs of `size` on the directory `at` (made if missing).
fn mount_tmpfs(at: &std::path::Path, size: &str) {
    std::fs::create_dir_all(at).expect("mount point");
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .expect("run mount");
    assert!(
        ok.success(),
        "mounting a tmpfs needs root (scripts/test.sh runs as root)"
    );
}

impl SmallDisk {
    fn mount(name: &str, size: &str) -> Self {
        let dir = DataDir::new(name);
        mount_tmpfs(&dir.0, size);
        SmallDisk(dir)
    }

    fn grow(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}"), self.0.arg()])
            .status()
            .expect("run mount");
        assert!(ok.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.arg())
            .status();
    }
}

/// POSTs clicks of new users at `ts` until one is refused with 503 (the disk is full);
/// returns the 204s and the refusal.
fn fill_the_disk(s: &TestServer, ts: u64) -> (u64, common::Response) {
    let mut acked = 0u64;
    let mut refused = None;
    let mut c = s.connect();
    for round in 0..200 {
        let batch: String = (0..200)
            .map(|i| format!("POST /analytics?timestamp={ts}&user=f{round}x{i}&click HTTP/1.1\r\nHost: t\r\n\r\n"))
            .collect();
        c.write(batch.as_bytes());
        for _ in 0..200 {
            let r = c.response(false);
            match r.status {
                204 => acked += 1,
                503 => refused = Some(r),
                _ => panic!("unexpected {r:?}"),
            }
        }
        if refused.is_some() {
            break;
        }
    }
    (acked, refused.expect("the disk never filled"))
}

/// A full disk: POSTs get 503 with the reason while journal writes fail, reads go on, and it
/// heals by itself when space returns; nothing answered 204 is lost by it.
#[test]
fn a_full_disk_refuses_posts_and_heals_when_space_returns() {
    let disk = SmallDisk::mount("full-disk", "64k");
    let data = disk.0 .0.join("data");
    let data = data.to_str().expect("utf-8");
    let ts = now_ms();
    let s = TestServer::start(&["--data-dir", data]);
    let (acked, refused) = fill_the_disk(&s, ts);
    refused.assert_reason(503, "cannot write to its disk");
    assert_eq!(refused.header("Retry-After"), Some("1"));
    assert!(acked > 1000, "{acked}");
    // Reads go on, and the operator can see it. A 204 went out when its event was queued, so
    // the last ones ahead of the failed write may still be on their way through the writer
    // (CI once read 3 800 of 4 400 here): every one of them shows up, and nothing else.
    assert_eq!(s.wait_counts(ts, (acked, acked, 0)), (acked, acked, 0));
    let page = s.get("/metrics").text();
    assert!(page.contains("hourtally_journal_failing 1\n"), "{page}");
    // Space returns: the writer's retries heal it without a restart.
    disk.grow("8m");
    post_until_taken(&s, ts);
    let page = s.get("/metrics").text();
    assert!(page.contains("hourtally_journal_failing 0\n"), "{page}");
    assert!(s.terminate().0.success());
    // Every 204 is in the journal.
    let s = TestServer::start(&["--data-dir", data]);
    let (_, clicks, impressions) = s.counts(ts);
    assert_eq!((clicks, impressions), (acked, 1));
}

/// Issue 20, item 4: a graceful stop while the disk is full used to exit at once, losing
/// the events answered 204 that the disk had not taken (16 to 1 264 in three runs). It waits
/// for the disk, says so, and stops with every one of them once space returns.
#[test]
fn a_graceful_stop_on_a_full_disk_waits_for_space_and_loses_nothing() {
    let disk = SmallDisk::mount("stop-full", "64k");
    let data = disk.0 .0.join("data");
    let data = data.to_str().expect("utf-8");
    let ts = now_ms();
    let mut s = TestServer::start(&["--data-dir", data]);
    let (acked, _) = fill_the_disk(&s, ts);
    s.signal("TERM");
    let waiting = s
        .wait_for_line("disk refuses events answered 204", Duration::from_secs(10))
        .expect("the stop never said it waits for the disk");
    assert!(s.running(), "stopped on a full disk: {waiting}");
    disk.grow("8m");
    let (status, lines) = s.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status} {lines:?}");
    let s = TestServer::start(&["--data-dir", data]);
    assert_eq!(s.counts(ts), (acked, acked, 0));
}

/// Issue 20, item 4: only a second signal gives up on a full disk; the exit is then
/// non-zero, and says how many events answered 204 were lost: exactly those missing after
/// a restart.
#[test]
fn a_second_signal_gives_up_on_a_full_disk_and_says_how_many_were_lost() {
    let disk = SmallDisk::mount("stop-give-up", "64k");
    let data = disk.0 .0.join("data");
    let data = data.to_str().expect("utf-8");
    let ts = now_ms();
    let s = TestServer::start(&["--data-dir", data]);
    let (acked, _) = fill_the_disk(&s, ts);
    s.signal("TERM");
    s.wait_for_line("disk refuses events answered 204", Duration::from_secs(10))
        .expect("the stop never said it waits for the disk");
    s.signal("TERM");
    let (status, lines) = s.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(1), "{lines:?}");
    let said = lines
        .iter()
        .find(|l| l.contains("stopped having lost"))
        .unwrap_or_else(|| panic!("no loss line in {lines:?}"));
    let lost: u64 = said
        .split("lost ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {said}"));
    assert!(lost > 0 && lost <= acked, "{said}");
    disk.grow("8m");
    let s = TestServer::start(&["--data-dir", data]);
    assert_eq!(s.counts(ts), (acked - lost, acked - lost, 0));
}

/// Issue 20, item 4: with `--fsync always`, a group the disk would not take used to hold its
/// POSTs for 15 s and then close their connection unanswered (the client could not tell
/// whether they counted). Now each POST gets its answer at once: `204` and counted, or `503`
/// and never counted. Every 204 counts, before and after a restart, and the journal heals
/// by itself when space returns.
#[test]
fn with_fsync_always_a_full_disk_answers_each_post_204_or_503_and_counts_exactly_the_204s() {
    let disk = SmallDisk::mount("always-full", "64k");
    let data = disk.0 .0.join("data");
    let data = data.to_str().expect("utf-8");
    let args = ["--data-dir", data, "--fsync", "always"];
    let ts = now_ms();
    let s = TestServer::start(&args);
    let mut c = s.connect();
    // Shorter than the 15 s a connection used to be held: an answer that has not come by
    // then fails the read.
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (mut acked, mut refused, mut rounds_refused) = (0u64, 0u64, 0);
    for round in 0..200 {
        let batch: String = (0..50)
            .map(|i| format!("POST /analytics?timestamp={ts}&user=a{round}x{i}&click HTTP/1.1\r\nHost: t\r\n\r\n"))
            .collect();
        c.write(batch.as_bytes());
        let mut refused_here = false;
        for _ in 0..50 {
            let r = c.response(false);
            match r.status {
                204 => acked += 1,
                503 => {
                    r.assert_reason(503, "cannot write to its disk");
                    refused += 1;
                    refused_here = true;
                }
                _ => panic!("unexpected {r:?}"),
            }
        }
        rounds_refused += usize::from(refused_here);
        if rounds_refused >= 3 {
            break;
        }
    }
    assert!(refused > 0, "the disk never filled ({acked} acknowledged)");
    assert!(acked > 100, "{acked}");
    // Exactly the 204s count: no refused event was applied.
    assert_eq!(s.wait_counts(ts, (acked, acked, 0)), (acked, acked, 0));
    // Space returns: the next POST finds it.
    disk.grow("8m");
    post_until_taken(&s, ts);
    assert!(s.terminate().0.success());
    let s = TestServer::start(&args);
    assert_eq!(s.counts(ts), (acked + 1, acked, 1));
}

/// A data directory whose `cold/` is a full tmpfs of its own: the journal writes, the cold
/// tier cannot. Unmounted when dropped.
struct FullColdTier(DataDir);

impl FullColdTier {
    fn new(name: &str) -> Self {
        let dir = DataDir::new(name);
        let cold = dir.0.join("cold");
        mount_tmpfs(&cold, "16k");
        // Fill it: write until the disk says no.
        let mut f = std::fs::File::create(cold.join("filler")).expect("filler");
        let block = [0u8; 4096];
        while std::io::Write::write_all(&mut f, &block).is_ok() {}
        FullColdTier(dir)
    }

    fn make_room(&self) {
        std::fs::remove_file(self.0 .0.join("cold").join("filler")).expect("remove the filler");
    }

    fn cold_files(&self) -> usize {
        std::fs::read_dir(self.0 .0.join("cold"))
            .expect("cold/")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".hcs"))
            })
            .count()
    }
}

impl Drop for FullColdTier {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0 .0.join("cold"))
            .status();
    }
}

/// A full disk under the cold tier while hours leave the ring: the hours stay in memory (a
/// range over them is exact), POSTs and reads of the current hour go on, no snapshot stands
/// in for the journal of hours not stored (a kill -9 then loses nothing), and once there is
/// room the stores finish by themselves.
#[test]
fn a_full_cold_tier_neither_loses_a_204_nor_holds_up_the_current_hour_and_heals() {
    const HOUR: u64 = hourtally::event::MILLIS_PER_HOUR;
    common::not_near_an_hour_boundary(Duration::from_secs(60));
    let h = now_ms() / HOUR;
    let disk = FullColdTier::new("cold-full");
    // Four past hours of the same 5 users, for a ring of 3: replaying them into it makes h-6
    // leave it, and the current hour's first POST h-3.
    let events: Vec<_> = (3..=6u64)
        .rev()
        .flat_map(|back| {
            (0..5u64).map(move |u| {
                hourtally::event::Event::new(
                    (h - back) as u32,
                    hourtally::event::fingerprint(format!("p{u}").as_bytes()),
                    hourtally::event::Kind::Click,
                )
            })
        })
        .collect();
    disk.0.with_journal(3, &events);
    let args = [
        "--data-dir",
        disk.0.arg(),
        "--retention-hours",
        "3",
        "--snapshot-interval-s",
        "1",
    ];
    let s = TestServer::start(&args);
    // The current hour: new users and the past hours' five, every POST 204.
    let mut c = s.connect();
    let posts: String = (0..300u64)
        .map(|i| {
            format!(
                "POST /analytics?timestamp={}&user=p{}&impression HTTP/1.1\r\nHost: t\r\n\r\n",
                h * HOUR + i,
                i % 20
            )
        })
        .collect();
    c.write(posts.as_bytes());
    for _ in 0..300 {
        assert_eq!(c.response(false).status, 204);
    }
    assert_eq!(s.wait_counts(h * HOUR, (20, 0, 300)), (20, 0, 300));
    let range = |s: &TestServer| {
        let r = s.get(&format!(
            "/analytics/range?from={}&to={}",
            (h - 6) * HOUR,
            h * HOUR
        ));
        assert_eq!(r.status, 200, "{r:?}");
        common::parse_counts(&r.body)
    };
    // The hours that left wait in memory: the union is exact.
    assert_eq!(range(&s), (20, 20, 300));
    assert!(s.metric("hourtally_cold_store_failures_total") >= 1);
    assert_eq!(s.metric("hourtally_cold_hours"), 0);
    // Snapshots are due every second while events come; none may stand in for the journal
    // of the hours not stored.
    for i in 0..15 {
        let r = s.post(&format!(
            "/analytics?timestamp={}&user=p0&impression",
            h * HOUR + i
        ));
        assert_eq!(r.status, 204, "{r:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(s.wait_counts(h * HOUR, (20, 0, 315)), (20, 0, 315));
    s.kill9();
    let s = TestServer::start(&args);
    assert_eq!(s.wait_counts(h * HOUR, (20, 0, 315)), (20, 0, 315));
    assert_eq!(range(&s), (20, 20, 315));
    // Room again: the stores retry by themselves.
    disk.make_room();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while disk.cold_files() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} cold files",
            disk.cold_files()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.metric("hourtally_cold_hours"), 2);
    assert!(s.terminate().0.success());
    // From the snapshot of the stop and the files alone.
    let s = TestServer::start(&args);
    assert_eq!(range(&s), (20, 20, 315));
}
