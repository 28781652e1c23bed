//! Snapshots of a large hour: how long the writer stalls while one is captured, and how long
//! writing, reading and restoring one takes. Durations of single operations, so a plain
//! program rather than criterion.
//!
//! `cargo bench --bench snapshot` uses one hour of 10 M users; under `cargo test --benches`
//! (test mode) 100 k, and it checks that the image restores to the same counts.
//!
//! The stall: with a capture under way, the writer applies batches of 1 024 events (of users
//! already in the hour and new ones) and after each copies `CAPTURE_BUDGET` stripes,
//! as `Writer::run` does; every turn is timed, and the longest turn is the stall. A turn
//! without a capture is timed as well, for comparison.

use std::time::{Duration, Instant};

use hourtally::event::{fingerprint, Event, Kind};
use hourtally::journal::snapshot;
use hourtally::ring::{Ring, RingWriter};
use hourtally::sync::Arc;
use hourtally::writer::{BATCH, CAPTURE_BUDGET};

const HOUR: u32 = 491_000;

fn fp(u: u64) -> u64 {
    fingerprint(&u.to_le_bytes())
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let users: u64 = if full { 10_000_000 } else { 100_000 };
    let mut w = RingWriter::new(Arc::new(Ring::new(48)));
    for u in 0..users {
        w.apply(Event::new(HOUR, fp(u), Kind::Impression));
    }
    w.publish();
    println!("one hour of {users} users");

    // Turns of the writer: one batch, then (with a capture under way) a capture step.
    let mut next_user = users;
    let mut turn = |w: &mut RingWriter, capture: bool| -> (Duration, Option<_>) {
        let started = Instant::now();
        for i in 0..BATCH as u64 {
            // Half repeat users spread over the hour (they hit every stripe), half new ones.
            let user = if i % 2 == 0 {
                (i * 7_919 + next_user) % users
            } else {
                next_user
            };
            next_user += i % 2;
            w.apply(Event::new(HOUR, fp(user), Kind::Click));
        }
        w.publish();
        let image = if capture {
            w.capture_step(CAPTURE_BUDGET)
        } else {
            None
        };
        (started.elapsed(), image)
    };
    let plain: Duration = (0..200)
        .map(|_| turn(&mut w, false).0)
        .max()
        .unwrap_or_default();
    let begun = Instant::now();
    w.begin_capture(users);
    let begin = begun.elapsed();
    let (mut longest, mut turns) = (Duration::ZERO, 0);
    let image = loop {
        let (took, image) = turn(&mut w, true);
        longest = longest.max(took);
        turns += 1;
        if let Some(image) = image {
            break image;
        }
    };
    println!(
        "capture: begin {begin:?}; {turns} turns of {BATCH} events + {CAPTURE_BUDGET} fingerprints, \
         longest turn {longest:?} (longest of 200 turns without a capture: {plain:?})"
    );

    let dir = std::env::temp_dir().join(format!("hourtally-bench-snapshot-{}", std::process::id()));
    let started = Instant::now();
    let path = snapshot::write(&dir, &image).expect("write");
    let written = started.elapsed();
    let bytes = std::fs::metadata(&path).expect("file").len();
    let started = Instant::now();
    let (read, skipped) = snapshot::load_newest(&dir).expect("read");
    let read = read.expect("a snapshot");
    let decoded = started.elapsed();
    assert!(skipped.is_empty());
    let started = Instant::now();
    let restored = Arc::new(Ring::new(48));
    RingWriter::new(restored.clone())
        .restore(&read)
        .expect("restore");
    let restore = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "snapshot: {bytes} bytes ({:.2} per user); write + fsync {written:?}; read + check {decoded:?}; restore {restore:?}",
        bytes as f64 / users as f64
    );
    let slot = &image.slots[HOUR as usize % 48];
    assert_eq!(restored.read(HOUR), slot.counts);
    assert_eq!(read, image);
}
