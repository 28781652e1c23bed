//! The engine without HTTP: applying events (the writer's work) and reading a slot (a GET's).
//!
//! `cargo bench --bench ring`. Under `cargo test --benches` every benchmark runs once, with
//! the 10 M-user case left out (its set-up alone takes seconds in a debug build) and the
//! `apply_flood` group at 20 k users instead of 400 k.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use hourtally::event::{fingerprint, Event, Kind};
use hourtally::ring::{Ring, RingWriter};

/// The current hour of the benchmarks (any hour works; the ring has no clock).
const NOW: u32 = 491_000;
/// Events applied per measured iteration.
const EVENTS: usize = 64 * 1024;

fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A small, fast, deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
}

/// The fingerprints of users `u0` .. `u{users-1}`.
fn user_fps(users: u64) -> Vec<u64> {
    (0..users)
        .map(|u| fingerprint(format!("u{u}").as_bytes()))
        .collect()
}

/// `n` events by users drawn uniformly from `fps` (or brand-new users if `fps` is empty);
/// `historic` of them for one of the previous 24 hours, the rest for `NOW`; half clicks.
fn events(n: usize, fps: &[u64], historic: f64, seed: u64) -> Vec<Event> {
    let mut rng = Rng(seed | 1);
    (0..n)
        .map(|_| {
            let hour = if (rng.below(1_000_000) as f64) < historic * 1e6 {
                NOW - 1 - rng.below(24) as u32
            } else {
                NOW
            };
            let user = if fps.is_empty() {
                rng.next()
            } else {
                fps[rng.below(fps.len() as u64) as usize]
            };
            let kind = if rng.next() & 1 == 0 {
                Kind::Click
            } else {
                Kind::Impression
            };
            Event::new(hour, user, kind)
        })
        .collect()
}

/// A ring whose current hour already holds every user of `fps` (and the previous 24 hours a
/// few each), so the measurement is the steady state of a busy hour.
fn warmed(fps: &[u64]) -> RingWriter {
    let mut w = RingWriter::new(Arc::new(Ring::new(48)));
    for h in 1..=24 {
        w.apply(Event::new(NOW - h, h as u64, Kind::Click));
    }
    for &user in fps {
        w.apply(Event::new(NOW, user, Kind::Impression));
    }
    w.publish();
    w
}

/// Applies `events` as the writer does: batches of 1024, each applied with
/// `apply_batch` (which prefetches set cells ahead) and then published.
fn apply_all(w: &mut RingWriter, events: &[Event]) {
    for batch in events.chunks(hourtally::writer::BATCH) {
        w.apply_batch(black_box(batch));
        w.publish();
    }
}

fn apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("apply");
    g.throughput(Throughput::Elements(EVENTS as u64));
    let sizes: &[u64] = if full_run() {
        &[1_000, 100_000, 10_000_000]
    } else {
        &[1_000, 100_000]
    };
    for &users in sizes {
        if users >= 10_000_000 {
            g.sample_size(20).measurement_time(Duration::from_secs(10));
        }
        let fps = user_fps(users);
        let mut w = warmed(&fps);
        for (mix, historic) in [("current", 0.0), ("historic5", 0.05)] {
            // Repeat users of the warmed hour: lookups, the common case.
            let evs = events(EVENTS, &fps, historic, users ^ 0x5eed);
            g.bench_with_input(BenchmarkId::new(mix, users), &evs, |b, evs| {
                b.iter(|| apply_all(&mut w, evs))
            });
        }
    }
    // Recycling: the hour moves on every 4096 events, so each slot is sealed into the archive
    // and starts an empty user set again and again (hours only grow across iterations, so no
    // event is ever dropped as sealed).
    let mut w = RingWriter::new(Arc::new(Ring::new(48)));
    let evs = events(EVENTS, &user_fps(4096), 0.0, 99);
    let mut base = NOW;
    g.bench_function("recycle_every_4096", |b| {
        b.iter(|| {
            for (i, batch) in evs.chunks(4096).enumerate() {
                for e in batch {
                    black_box(w.apply(Event::new(base + i as u32, e.user, e.kind)));
                }
                w.publish();
            }
            base += (EVENTS / 4096) as u32;
        })
    });
    // New users only: inserts and table growth, the first minutes of every hour.
    g.bench_function("new_users", |b| {
        b.iter_batched_ref(
            || {
                (
                    RingWriter::new(Arc::new(Ring::new(48))),
                    events(EVENTS, &[], 0.0, 3),
                )
            },
            |(w, evs)| apply_all(w, evs),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Users of each `apply_flood` benchmark: the outside review's 400 k, or 20 k in test mode.
fn flood_users() -> usize {
    if full_run() {
        400_000
    } else {
        20_000
    }
}

/// Whether a fingerprint sits in the first sixteenth of its stripe under the user set's OLD,
/// public placement (stripe = top 8 bits, home cell = the bits below scaled to the table): bits
/// 55..52 all zero. About 1 name in 16 qualifies, so a client finds one per ~16 hash calls.
fn crafted_against_old_placement(fp: u64) -> bool {
    (fp << 8) >> 60 == 0
}

/// The fingerprints of the first `n` names `a0`, `a1`, ... crafted against the old placement.
fn crafted_fps(n: usize) -> Vec<u64> {
    use std::fmt::Write;
    let mut name = String::new();
    (0u64..)
        .map(|i| {
            name.clear();
            write!(name, "a{i}").expect("write to a String");
            fingerprint(name.as_bytes())
        })
        .filter(|&fp| crafted_against_old_placement(fp))
        .take(n)
        .collect()
}

/// One event of the current hour per user of `fps`, in order (half clicks).
fn one_visit_each(fps: &[u64]) -> Vec<Event> {
    fps.iter()
        .enumerate()
        .map(|(i, &user)| {
            let kind = if i & 1 == 0 {
                Kind::Click
            } else {
                Kind::Impression
            };
            Event::new(NOW, user, kind)
        })
        .collect()
}

/// Hash flooding: users whose names were crafted against the old, public placement of the
/// user set, beside the same number of ordinary names. Each pair should run at about the same
/// rate; under the old placement the crafted users pile into one probe run per stripe.
fn apply_flood(c: &mut Criterion) {
    let n = flood_users();
    let crafted = crafted_fps(n);
    let random = user_fps(n as u64);
    // Honest newcomers, none of them among `random` (`u…`) or `crafted` (`a…`).
    let newcomers: Vec<u64> = (0..n)
        .map(|i| fingerprint(format!("h{i}").as_bytes()))
        .collect();
    let mut g = c.benchmark_group("apply_flood");
    g.throughput(Throughput::Elements(n as u64));
    // One iteration takes milliseconds (seconds under the old placement): a fixed number of
    // iterations per sample, and few samples.
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    for (name, fps) in [("random", &random), ("crafted", &crafted)] {
        // First visits: `n` new users into an empty hour (inserts and table growth).
        let evs = one_visit_each(fps);
        g.bench_with_input(
            BenchmarkId::new(format!("new_{name}"), n),
            &evs,
            |b, evs| {
                b.iter_batched_ref(
                    || RingWriter::new(Arc::new(Ring::new(48))),
                    |w| apply_all(w, evs),
                    BatchSize::LargeInput,
                )
            },
        );
    }
    for (name, fps) in [("random", &random), ("crafted", &crafted)] {
        // Repeat visits: the hour already holds the `n` users; `n` more events of them, in a
        // random order (lookups only, so the warmed ring can be reused across iterations).
        let mut w = warmed(fps);
        let evs = events(n, fps, 0.0, 0xf100d);
        g.bench_with_input(
            BenchmarkId::new(format!("repeat_{name}"), n),
            &evs,
            |b, evs| b.iter(|| apply_all(&mut w, evs)),
        );
    }
    let newcomer_evs = one_visit_each(&newcomers);
    for (name, fps) in [("random", &random), ("crafted", &crafted)] {
        // Honest newcomers: `n` new, ordinary users into an hour that already holds the `n`
        // users of `fps` (the review's "honest events into an hour already holding them").
        g.bench_with_input(
            BenchmarkId::new(format!("newcomers_after_{name}"), n),
            &newcomer_evs,
            |b, evs| {
                b.iter_batched_ref(|| warmed(fps), |w| apply_all(w, evs), BatchSize::LargeInput)
            },
        );
    }
    g.finish();
}

fn read(c: &mut Criterion) {
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Elements(1));
    let mut w = warmed(&user_fps(1_000));
    let ring = w.ring().clone();
    g.bench_function("slot_uncontended", |b| {
        b.iter(|| black_box(ring.try_read(black_box(NOW))))
    });
    g.bench_function("empty_hour", |b| {
        b.iter(|| black_box(ring.try_read(black_box(NOW + 1))))
    });
    // An hour that left the ring, answered from the archive: NOW - 47 takes its (empty)
    // slot, then NOW + 1 recycles that slot and seals NOW - 47.
    w.apply(Event::new(NOW + 1 - 48, 2, Kind::Click));
    w.apply(Event::new(NOW + 1, 2, Kind::Click));
    w.publish();
    assert_eq!(ring.read(NOW + 1 - 48).clicks, 1);
    g.bench_function("archived_hour", |b| {
        b.iter(|| black_box(ring.try_read(black_box(NOW + 1 - 48))))
    });

    // The same read while the writer keeps publishing the very slot being read. The
    // measurement starts only once the writer has published, so it is contended from the
    // first iteration (in test mode there is only one).
    let before = ring.read(NOW);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    i += 1;
                    w.apply(Event::new(NOW, i % 5_000, Kind::Click));
                }
                w.publish();
            }
        })
    };
    while ring.read(NOW) == before {
        std::hint::spin_loop();
    }
    g.bench_function("slot_while_writer_applies", |b| {
        b.iter(|| black_box(ring.try_read(black_box(NOW))))
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer thread");
    g.finish();
}

criterion_group!(benches, apply, apply_flood, read);
criterion_main!(benches);
