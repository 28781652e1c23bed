//! Memory per unique user per hour: the heap bytes of one hour's user set divided by its
//! users, at sizes up to 10 M users, and the process's resident memory growth alongside.
//! Criterion measures time, not bytes, so this is a plain program.
//!
//! `cargo bench --bench memory` prints the table. Under `cargo test --benches` (test mode) it
//! runs the small sizes only and checks the bound.

use hourtally::event::{fingerprint, Event, Kind};
use hourtally::ring::{Ring, RingWriter};
use hourtally::sync::Arc;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[u64] = if full {
        &[
            1_000, 10_000, 100_000, 1_000_000, 2_000_000, 7_000_000, 10_000_000,
        ]
    } else {
        &[1_000, 100_000]
    };
    println!(
        "{:>12} {:>14} {:>12} {:>14} {:>12}",
        "users", "set bytes", "bytes/user", "RSS growth", "RSS/user"
    );
    for &users in sizes {
        let before = rss_kib();
        let mut w = RingWriter::new(Arc::new(Ring::new(48)));
        for u in 0..users {
            w.apply(Event::new(
                1,
                fingerprint(&u.to_le_bytes()),
                Kind::Impression,
            ));
        }
        w.publish();
        let after = rss_kib();
        let (hour, n, bytes) = w.user_sets().next().expect("one hour");
        assert_eq!((hour, n), (1, users));
        let per_user = bytes as f64 / users as f64;
        let rss = after.saturating_sub(before) * 1024;
        println!(
            "{users:>12} {bytes:>14} {per_user:>12.2} {:>12} KiB {:>12.2}",
            rss / 1024,
            rss as f64 / users as f64
        );
        if users >= 100_000 {
            assert!(
                per_user <= 12.0,
                "{per_user:.2} bytes per user at {users} users"
            );
        }
    }
}
