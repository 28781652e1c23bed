//! The HTTP edge without a socket: query parsing, and whole requests as bytes in → parse →
//! validate → enqueue (a real writer thread drains the queue) → answer bytes out.
//!
//! `cargo bench --bench edge`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hourtally::http::date::Clock;
use hourtally::http::limits::Limits;
use hourtally::http::session::Session;
use hourtally::http::status::Status;
use hourtally::http::{Admission, Service};
use hourtally::query::{parse_get, parse_post};
use hourtally::ring::{Ring, RingWriter};
use hourtally::sync::Arc;
use hourtally::writer::{Ingest, Writer};

const TS: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn query(c: &mut Criterion) {
    let mut g = c.benchmark_group("query");
    g.throughput(Throughput::Elements(1));
    let post = format!("timestamp={TS}&user=user123456&click");
    let post_escaped =
        format!("timestamp={TS}&user=J%C3%BCrgen+K%C3%B6nig%40example.com&impression");
    let get = format!("timestamp={TS}");
    g.bench_function("post", |b| {
        b.iter(|| black_box(parse_post(black_box(post.as_bytes()))))
    });
    g.bench_function("post_percent_encoded", |b| {
        b.iter(|| black_box(parse_post(black_box(post_escaped.as_bytes()))))
    });
    g.bench_function("get", |b| {
        b.iter(|| black_box(parse_get(black_box(get.as_bytes()))))
    });
    g.finish();
}

/// A Service with a running writer; the clock is set so that `TS` is the current hour.
struct Harness {
    service: Service,
    /// The writer's queue (the service's too).
    ingest: Arc<Ingest>,
    writer: Option<std::thread::JoinHandle<RingWriter>>,
    clock: Clock,
}

impl Harness {
    fn new() -> Self {
        let ring = Arc::new(Ring::new(48));
        let ingest = Arc::new(Ingest::new(1 << 20));
        let writer = Writer::new(ingest.clone(), RingWriter::new(ring.clone()));
        let writer = std::thread::spawn(move || writer.run());
        let admission = Admission::new(48, 1).expect("a window");
        let service = Service::new(ring, ingest.clone(), Limits::default(), admission);
        service.set_ready();
        let mut clock = Clock::default();
        clock.set(TS);
        Harness {
            service,
            ingest,
            writer: Some(writer),
            clock,
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.ingest.close();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn request(c: &mut Criterion) {
    let h = Harness::new();
    let mut g = c.benchmark_group("request");
    let post = |i: u32| {
        format!("POST /analytics?timestamp={TS}&user=u{i}&click HTTP/1.1\r\nHost: bench\r\n\r\n")
    };
    let get = format!("GET /analytics?timestamp={TS} HTTP/1.1\r\nHost: bench\r\n\r\n");
    for depth in [1u32, 16] {
        g.throughput(Throughput::Elements(u64::from(depth)));
        let posts: String = (0..depth).map(post).collect();
        let gets: String = (0..depth).map(|_| get.as_str()).collect();
        for (name, input) in [("post", posts), ("get", gets)] {
            let mut out = Vec::with_capacity(64 * 1024);
            g.bench_with_input(BenchmarkId::new(name, depth), &input, |b, input| {
                b.iter(|| {
                    out.clear();
                    let mut session = Session::new(&h.service);
                    let o = session.feed(black_box(input.as_bytes()), &h.clock, &mut out);
                    // As the connection loop does after every batch.
                    h.service.metrics().flush(&mut session.tally);
                    debug_assert_eq!(o.answered as u32, depth);
                    black_box(o)
                })
            });
        }
    }
    g.finish();
    // Every POST was accepted (a 503 would mean the bench measured refusals).
    let refused = h.service.metrics().responses(Status::ServiceUnavailable);
    assert_eq!(refused, 0);
}

/// `GET /analytics/hours` of 48 hours (what the dashboard asks every 5 s), as JSON and as
/// CSV, beside the same 48 hours asked as 48 pipelined `GET /analytics`.
fn hours(c: &mut Criterion) {
    let h = Harness::new();
    // Counts in the 46 hours a POST may reach (the admission window of a ring of 48), so
    // rows are read from live slots; the two oldest hours are looked up in the archive.
    let mut out = Vec::new();
    let mut session = Session::new(&h.service);
    for i in 0..46u64 {
        let ts = TS - i * 3_600_000;
        let post = format!(
            "POST /analytics?timestamp={ts}&user=u{i}&impression HTTP/1.1\r\nHost: bench\r\n\r\n"
        );
        session.feed(post.as_bytes(), &h.clock, &mut out);
    }
    h.service.metrics().flush(&mut session.tally);
    assert_eq!(h.service.metrics().responses(Status::NoContent), 46);
    while h.ingest.applied() < 46 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let mut g = c.benchmark_group("hours");
    g.throughput(Throughput::Elements(48));
    let first = TS - 47 * 3_600_000;
    let range = format!("GET /analytics/hours?from={first}&to={TS} HTTP/1.1\r\nHost: bench\r\n");
    let gets: String = (0..48u64)
        .map(|i| {
            format!(
                "GET /analytics?timestamp={} HTTP/1.1\r\nHost: bench\r\n\r\n",
                first + i * 3_600_000
            )
        })
        .collect();
    let inputs = [
        ("range_json", format!("{range}\r\n"), 1),
        ("range_csv", format!("{range}Accept: text/csv\r\n\r\n"), 1),
        ("gets_pipelined", gets, 48),
    ];
    for (name, input, answers) in inputs {
        let mut out = Vec::with_capacity(64 * 1024);
        // What is measured: 200s carrying the 48 hours, 46 of them with an event.
        Session::new(&h.service).feed(input.as_bytes(), &h.clock, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert_eq!(
            text.matches("HTTP/1.1 200 OK\r\n").count(),
            answers,
            "{text}"
        );
        let with_event = [",1,0,1\n", "\"unique_users\":1,", "unique_users,1\n"];
        assert_eq!(
            with_event
                .iter()
                .map(|p| text.matches(p).count())
                .sum::<usize>(),
            46,
            "{text}"
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let mut session = Session::new(&h.service);
                let o = session.feed(black_box(input.as_bytes()), &h.clock, &mut out);
                h.service.metrics().flush(&mut session.tally);
                debug_assert_eq!(o.answered, answers);
                black_box(o)
            })
        });
    }
    g.finish();
    assert!(h.service.metrics().responses(Status::Ok) > 0);
    assert_eq!(h.service.metrics().responses(Status::BadRequest), 0);
}

criterion_group!(benches, query, request, hours);
criterion_main!(benches);
