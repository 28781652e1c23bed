//! What the writer thread spends while an hour is sealed (issue 23's goal: its longest stall
//! while an hour of 10 M users is sealed ≤ 10 ms). Each step the writer itself takes, timed
//! on the real `RingWriter` of a ring that keeps sealed users (a server with a cold tier):
//!
//! - the install of the hour's frozen set, built on another thread (`ring::freeze`): the
//!   writer swaps it in under the slot's lock; what it replaced is freed on another thread,
//!   as the server's freezing thread frees it;
//! - the recycle of the frozen hour's slot by an event of a newer hour: the archive seal, the
//!   hand-off to `Leaving` (whose store runs on another thread) and the new hour;
//! - for comparison, the recycle of a 10 M-user hour that was never frozen: its user set is
//!   freed by the writer (a server whose freezing thread is gone).
//!
//! `cargo bench --bench seal` prints the steps over 3 rounds (10 M users); `cargo test
//! --benches` runs 10 000 users once, as a check that it runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hourtally::event::{fingerprint, Event, Kind};
use hourtally::ring::freeze::freeze;
use hourtally::ring::{Ring, RingWriter};

const HOUR: u32 = 1_000;

/// A writer of a 3-slot ring keeping sealed users whose hour `HOUR` counted `users` users.
fn writer_with_an_hour(users: u64) -> RingWriter {
    let mut w = RingWriter::new(Arc::new(Ring::new(3).keeping_sealed_users()));
    for u in 0..users {
        w.apply(Event::new(HOUR, fingerprint(&u.to_le_bytes()), Kind::Click));
    }
    w.publish();
    w
}

fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (users, rounds) = if full { (10_000_000, 3) } else { (10_000, 1) };
    println!("users {users}: the writer's own time per step (ms)");
    println!("round  install  recycle(frozen)  recycle(never frozen)");
    for round in 0..rounds {
        // Frozen, then recycled.
        let mut w = writer_with_an_hour(users);
        w.apply(Event::new(HOUR + 2, 1, Kind::Click));
        w.publish();
        let job = w.freeze_job().expect("the hour is over: a freeze job");
        let frozen = std::thread::spawn(move || freeze(job))
            .join()
            .expect("the freeze");
        let mut installed = None;
        let install = timed(|| installed = Some(w.install(frozen)));
        let installed = installed.expect("installed");
        assert!(installed.is_done(), "the install was refused");
        // Freed elsewhere, as the freezing thread frees it.
        let freeing = std::thread::spawn(move || drop(installed));
        freeing.join().expect("freed");
        let recycle_frozen = timed(|| {
            w.apply(Event::new(HOUR + 3, 2, Kind::Click));
            w.publish();
        });
        let leaving = w.ring().leaving().expect("keeps sealed users").clone();
        assert_eq!(leaving.len(), 1);

        // Never frozen, then recycled.
        let mut live = writer_with_an_hour(users);
        let recycle_live = timed(|| {
            live.apply(Event::new(HOUR + 3, 2, Kind::Click));
            live.publish();
        });
        println!(
            "{round:<6} {:>7.3}  {:>15.3}  {:>21.3}",
            ms(install),
            ms(recycle_frozen),
            ms(recycle_live)
        );
        // The leaving hours' members go on other threads, as the store lets them go.
        let rings = (w, live);
        std::thread::spawn(move || drop(rings))
            .join()
            .expect("dropped");
    }
}
