//! The cold tier (README, "The cold tier"), against the real binary over real TCP: hours that
//! left the ring are counted in ranges from their files, under load, after a kill -9 and its
//! replay and after a graceful stop and its snapshot; a damaged file fails the range naming
//! it; a stop during a replay stores what left; files past the cold retention are removed
//! and a range over them is refused.

mod common;

use std::time::Duration;

use common::ranges::{assert_every_range, post_while_asking, range, range_counts, wait_applied};
use common::{not_near_an_hour_boundary, now_ms, DataDir, Model, TestServer};
use hourtally::event::{fingerprint, Event, Kind, MILLIS_PER_HOUR};

const HOUR: u64 = MILLIS_PER_HOUR;

/// A journal of `hours` hours before `h` (users from a pool of 40, so that hours share
/// most), for a ring of 3 slots, and what it holds.
fn journal_of_past_hours(dir: &DataDir, h: u64, hours: u64) -> Model {
    journal_of_past_hours_of(dir, h, hours, 30)
}

/// [`journal_of_past_hours`] with `per_hour` events an hour.
fn journal_of_past_hours_of(dir: &DataDir, h: u64, hours: u64, per_hour: usize) -> Model {
    let mut model = Model::default();
    let mut events = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for back in (1..=hours).rev() {
        for _ in 0..per_hour {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let user = format!("u{}", x % 40);
            let click = x >> 40 & 1 == 1;
            let kind = if click { Kind::Click } else { Kind::Impression };
            events.push(Event::new(
                (h - back) as u32,
                fingerprint(user.as_bytes()),
                kind,
            ));
            model.add(h - back, &user, click);
        }
    }
    dir.with_journal(3, &events);
    model
}

/// The hours `cold/` holds files of, once it holds `n` (bounded wait).
fn wait_cold_files(dir: &DataDir, n: usize) -> Vec<u64> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let hours = cold_files(dir);
        if hours.len() == n {
            return hours;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cold/ holds {hours:?}, not {n} hours"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Three clients POST `per_client` events each to the current hour `h` while ranges from
/// `first` to `h` are asked for and checked. Returns what they sent.
fn load_current_hour(s: &TestServer, h: u64, first: u64, per_client: u64) -> Model {
    let event = move |c: u64, i: u64| {
        let user = format!("u{}", (i * 7 + c * 13) % 60);
        (h * HOUR + i, user, !i.is_multiple_of(3))
    };
    post_while_asking(
        s,
        3,
        per_client,
        event,
        |asked| first + asked % 4,
        h,
        |(u, c, i)| {
            // At most the pools' 60 users, and never fewer than the past hours' events.
            assert!(u <= 60 && u <= c + i, "{u} {c} {i}");
        },
    )
}

#[test]
fn hours_that_left_the_ring_are_counted_from_their_cold_files_under_load_and_after_restarts() {
    not_near_an_hour_boundary(Duration::from_secs(60));
    let h = now_ms() / HOUR;
    let dir = DataDir::new("range-cold");
    // Replaying 12 hours into a ring of 3: hours h-12..=h-4 leave it, into cold/.
    let mut model = journal_of_past_hours(&dir, h, 12);
    let args = ["--data-dir", dir.arg(), "--retention-hours", "3"];
    let s = TestServer::start(&args);
    let stored: Vec<u64> = (h - 12..=h - 4).collect();
    assert_eq!(wait_cold_files(&dir, 9), stored);
    // The current hour takes h-3's slot: h-3 leaves too.
    model.merge(load_current_hour(&s, h, h - 12, 400));
    wait_applied(&s, &model);
    let stored: Vec<u64> = (h - 12..=h - 3).collect();
    assert_eq!(wait_cold_files(&dir, 10), stored);
    assert_every_range(&s, &model, h - 13..=h);
    let metrics = s.get("/metrics").text();
    assert!(metrics.contains("\nhourtally_cold_hours 10\n"), "{metrics}");
    // Not a sum by accident: the hours share the pool's users.
    let summed: u64 = model.users.values().map(|u| u.len() as u64).sum();
    assert!(model.range(h - 12, h).0 < summed);

    // A kill -9: the replay makes the hours leave the ring again; their files are the same.
    s.kill9();
    let s = TestServer::start(&args);
    wait_applied(&s, &model);
    assert_eq!(wait_cold_files(&dir, 10), stored);
    assert_every_range(&s, &model, h - 13..=h);

    // A graceful stop and a start from its snapshot: the hours that left are in no journal
    // the server reads any more, only in their files.
    let (status, _) = s.terminate();
    assert!(status.success());
    let s = TestServer::start(&args);
    wait_applied(&s, &model);
    assert_every_range(&s, &model, h - 13..=h);

    // A damaged file: a range over its hour fails naming it; one without it is counted.
    let file = dir.0.join("cold").join(format!("{:010}.hcs", h - 8));
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&file, bytes).unwrap();
    let r = range(&s, (h - 9) * HOUR, (h - 7) * HOUR);
    r.assert_reason(500, "cannot be read");
    assert!(
        r.text()
            .contains(&format!("cold/{:010}.hcs: checksum mismatch", h - 8)),
        "{}",
        r.text()
    );
    assert_eq!(range_counts(&s, h - 7, h), model.range(h - 7, h));
    assert!(s
        .get("/metrics")
        .text()
        .contains("hourtally_http_rejections_total{reason=\"cold_set_unreadable\"} 1"));
}

/// Review of issue 23's cold tier: a stop that came while the journal was replayed used to
/// find no store asked for (the writer asks after a batch, and had taken none), so its last
/// snapshot waited 30 s for the hours that had left and failed. Hours are stored as they
/// leave, during the replay too: the stop is prompt, and its snapshot stands with them.
#[test]
fn a_stop_during_a_replay_that_made_hours_leave_stores_them_and_is_prompt() {
    not_near_an_hour_boundary(Duration::from_secs(60));
    let h = now_ms() / HOUR;
    let dir = DataDir::new("range-cold-stop");
    // About a second or two of replay in a debug build.
    let model = journal_of_past_hours_of(&dir, h, 8, 150_000);
    let args = ["--data-dir", dir.arg(), "--retention-hours", "3"];
    let s = TestServer::start_unready(&args);
    s.signal("TERM");
    let (status, lines) = s.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status} {lines:?}");
    assert_eq!(
        wait_cold_files(&dir, 5),
        (h - 8..=h - 4).collect::<Vec<_>>()
    );
    let s = TestServer::start(&args);
    wait_applied(&s, &model);
    assert_every_range(&s, &model, h - 9..=h);
}

#[test]
fn hours_past_the_cold_retention_lose_their_files_and_a_range_over_them_is_refused() {
    not_near_an_hour_boundary(Duration::from_secs(90));
    let h = now_ms() / HOUR;
    let dir = DataDir::new("range-cold-retention");
    let mut model = journal_of_past_hours(&dir, h, 12);
    let s = TestServer::start(&[
        "--data-dir",
        dir.arg(),
        "--retention-hours",
        "3",
        "--cold-retention-hours",
        "5",
        "--snapshot-interval-s",
        "1",
    ]);
    // Every hour that left is stored: a file goes only once the older of the two kept
    // snapshots had taken an hour more than 5 hours after it.
    assert_eq!(
        wait_cold_files(&dir, 9),
        (h - 12..=h - 4).collect::<Vec<_>>()
    );
    // The current hour (h-3 leaves), and events while snapshots are taken (one a second,
    // when there is something new): the kept snapshots move on to newest hour h, and hours
    // before h-5 lose their files.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    let files = loop {
        let ts = h * HOUR + i;
        assert_eq!(
            s.post(&format!("/analytics?timestamp={ts}&user=n{i}&click"))
                .status,
            204
        );
        model.add(h, &format!("n{i}"), true);
        i += 1;
        let files = cold_files(&dir);
        if files == vec![h - 5, h - 4, h - 3] {
            break files;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "cold/ holds {files:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(files.len(), 3);
    wait_applied(&s, &model);
    assert_eq!(range_counts(&s, h - 5, h), model.range(h - 5, h));
    let r = range(&s, (h - 6) * HOUR, h * HOUR);
    r.assert_reason(422, "past --cold-retention-hours");
    assert!(
        r.text().contains(&format!("{} ms", (h - 6) * HOUR)),
        "{}",
        r.text()
    );
    // Its totals stay.
    assert_eq!(s.counts((h - 6) * HOUR), model.range(h - 6, h - 6));
}

/// Review of issue 23's late events: the older kept snapshot's newest hour is what lets the
/// cold tier remove files, and it was known only for snapshots the running server wrote. With
/// snapshots only at stops, the older kept one is always the last run's, so no file was ever
/// removed. The snapshot a start restores from counts too.
#[test]
fn with_snapshots_only_at_stops_hours_past_the_cold_retention_still_lose_their_files() {
    not_near_an_hour_boundary(Duration::from_secs(60));
    let h = now_ms() / HOUR;
    let dir = DataDir::new("range-cold-stops");
    journal_of_past_hours(&dir, h, 12);
    let args = [
        "--data-dir",
        dir.arg(),
        "--retention-hours",
        "3",
        "--cold-retention-hours",
        "5",
        "--snapshot-interval-s",
        "0",
    ];
    // The first run stores every hour that left, and its stop writes the first snapshot.
    let s = TestServer::start(&args);
    assert_eq!(
        wait_cold_files(&dir, 9),
        (h - 12..=h - 4).collect::<Vec<_>>()
    );
    assert!(s.terminate().0.success());
    // The second restores it (newest hour h-1) and takes an event; its stop writes the second,
    // which makes the first the older kept one: hours before h-6 go.
    let s = TestServer::start(&args);
    let ts = h * HOUR;
    assert_eq!(
        s.post(&format!("/analytics?timestamp={ts}&user=n&click"))
            .status,
        204
    );
    assert!(s.terminate().0.success());
    assert_eq!(cold_files(&dir), (h - 6..=h - 3).collect::<Vec<_>>());
}

/// The hours `cold/` holds files of, now.
fn cold_files(dir: &DataDir) -> Vec<u64> {
    let mut hours: Vec<u64> = std::fs::read_dir(dir.0.join("cold"))
        .map(|entries| {
            entries
                .filter_map(|e| {
                    e.ok()?
                        .file_name()
                        .to_str()?
                        .strip_suffix(".hcs")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    hours.sort_unstable();
    hours
}
