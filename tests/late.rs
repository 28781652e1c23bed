//! Late events (README, "Late events"), against the real binary over real TCP: a POST for an
//! hour that left the ring, within the cold retention, is answered 204 and counted exactly
//! (its user against the hour's users when it left), in the hour's GET and in every range;
//! after a kill -9 and its replay, and after a graceful stop and its snapshot; a POST further
//! back than the retention is refused.

mod common;

use std::time::Duration;

use common::{not_near_an_hour_boundary, now_ms, DataDir, Model, TestServer};
use hourtally::event::{fingerprint, Event, Kind, MILLIS_PER_HOUR};

const HOUR: u64 = MILLIS_PER_HOUR;

/// A journal of the 12 hours before `h` (users from a pool of 40), for a ring of 3 slots.
fn journal(dir: &DataDir, h: u64) -> Model {
    let mut model = Model::default();
    let mut events = Vec::new();
    for back in (1..=12u64).rev() {
        for i in 0..30u64 {
            let user = format!("u{}", (i * 7 + back * 3) % 40);
            events.push(Event::new(
                (h - back) as u32,
                fingerprint(user.as_bytes()),
                Kind::Click,
            ));
            model.add(h - back, &user, true);
        }
    }
    dir.with_journal(3, &events);
    model
}

/// Every hour of `hours` reads its model's counts (waiting, bounded, for the late thread),
/// and every range of them its union.
fn assert_everything(s: &TestServer, model: &Model, hours: std::ops::RangeInclusive<u64>) {
    for hour in hours.clone() {
        let want = model.hour(hour);
        assert_eq!(s.wait_counts(hour * HOUR, want), want, "hour {hour}");
    }
    common::ranges::assert_every_range(s, model, hours);
}

#[test]
fn late_events_count_exactly_in_hours_and_ranges_after_kill_9_and_after_a_snapshot() {
    not_near_an_hour_boundary(Duration::from_secs(60));
    let h = now_ms() / HOUR;
    let dir = DataDir::new("late");
    let mut model = journal(&dir, h);
    let args = ["--data-dir", dir.arg(), "--retention-hours", "3"];
    let s = TestServer::start(&args);
    // Late events for the hours that left the ring (users of the pool and new ones), for
    // an hour 30 back that never had one, and events of the current hour.
    let mut c = s.connect();
    let mut posts = String::new();
    let mut sent = Vec::new();
    for i in 0..400u64 {
        let hour = match i % 5 {
            0 => h,
            4 => h - 30,
            k => h - 4 - (i / 5 + k) % 8,
        };
        let user = format!("u{}", (i * 13) % 60);
        let click = i % 3 != 0;
        let kind = if click { "click" } else { "impression" };
        posts.push_str(&format!(
            "POST /analytics?timestamp={}&user={user}&{kind} HTTP/1.1\r\nHost: t\r\n\r\n",
            hour * HOUR + i
        ));
        sent.push((hour, user, click));
    }
    c.write(posts.as_bytes());
    for (hour, user, click) in sent {
        let r = c.response(false);
        assert_eq!(r.status, 204, "hour {hour}: {r:?}");
        model.add(hour, &user, click);
    }
    assert_everything(&s, &model, h - 31..=h);
    // Review: once late events were counted for h-30 (never in the ring), its archive entry
    // has users, and the edge took that for users not kept: every later late POST for the
    // hour was refused. It reads the hour's base from its late view.
    let r = s.post(&format!(
        "/analytics?timestamp={}&user=again&click",
        (h - 30) * HOUR
    ));
    assert_eq!(r.status, 204, "{r:?}");
    model.add(h - 30, "again", true);
    assert_everything(&s, &model, h - 31..=h);

    // A kill -9: the journal's replay counts the late events again, against the files.
    s.kill9();
    let s = TestServer::start(&args);
    assert_everything(&s, &model, h - 31..=h);

    // A graceful stop: its snapshot holds the late users; nothing is replayed.
    let (status, _) = s.terminate();
    assert!(status.success());
    let s = TestServer::start(&args);
    assert_everything(&s, &model, h - 31..=h);

    // Further back than --cold-retention-hours (720): refused, not counted.
    let r = s.post(&format!(
        "/analytics?timestamp={}&user=x&click",
        (h - 800) * HOUR
    ));
    r.assert_reason(422, "too old");
}

/// An hour that left the ring before the server kept a cold tier has no users to count a
/// late event against: its late POST is refused (never counted without them), and one of an
/// hour whose file exists is counted.
#[test]
fn a_late_post_for_an_hour_whose_users_were_not_kept_is_refused() {
    not_near_an_hour_boundary(Duration::from_secs(30));
    let h = now_ms() / HOUR;
    let dir = DataDir::new("late-unkept");
    let mut model = journal(&dir, h);
    // First without a cold tier: the replay makes h-12..=h-4 leave with only their totals.
    let s = TestServer::start(&[
        "--data-dir",
        dir.arg(),
        "--retention-hours",
        "3",
        "--cold-retention-hours",
        "0",
    ]);
    let (status, _) = s.terminate();
    assert!(status.success());
    let s = TestServer::start(&["--data-dir", dir.arg(), "--retention-hours", "3"]);
    let r = s.post(&format!(
        "/analytics?timestamp={}&user=late&click",
        (h - 6) * HOUR
    ));
    r.assert_reason(422, "before this server kept its users");
    assert_eq!(s.counts((h - 6) * HOUR), model.hour(h - 6));
    // The current hour takes h-3's slot: h-3 leaves now, with a file; a late POST counts.
    let now = h * HOUR;
    assert_eq!(
        s.post(&format!("/analytics?timestamp={now}&user=n&click"))
            .status,
        204
    );
    model.add(h, "n", true);
    let want = (model.hour(h - 3).0, model.hour(h - 3).1, 0);
    assert_eq!(s.wait_counts((h - 3) * HOUR, want), want);
    // In the ring, waiting to be stored, or stored: its users are kept, so it counts.
    let r = s.post(&format!(
        "/analytics?timestamp={}&user=late&click",
        (h - 3) * HOUR
    ));
    assert_eq!(r.status, 204, "{r:?}");
    model.add(h - 3, "late", true);
    let want = model.hour(h - 3);
    assert_eq!(s.wait_counts((h - 3) * HOUR, want), want);
}
