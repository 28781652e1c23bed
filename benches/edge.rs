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
        let service = Service::new(ring, ingest, Limits::default(), admission);
        service.set_ready();
        let mut clock = Clock::default();
        clock.set(TS);
        Harness {
            service,
            writer: Some(writer),
            clock,
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.service.ingest.close();
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
                    h.service.metrics.flush(&mut session.tally);
                    debug_assert_eq!(o.answered as u32, depth);
                    black_box(o)
                })
            });
        }
    }
    g.finish();
    // Every POST was accepted (a 503 would mean the bench measured refusals).
    let refused = h.service.metrics.responses(Status::ServiceUnavailable);
    assert_eq!(refused, 0);
}

criterion_group!(benches, query, request);
criterion_main!(benches);
