use super::*;
use crate::http::metrics_page::Gauges;
use openmetrics_parser::{prometheus::parse_prometheus, PrometheusType, PrometheusValue};

/// The page parsed by an exposition-format parser (a page it rejects fails the test).
fn parsed(page: &str) -> openmetrics_parser::MetricsExposition<PrometheusType, PrometheusValue> {
    match parse_prometheus(page) {
        Ok(p) => p,
        Err(e) => panic!("not valid exposition format: {e:?}\n{page}"),
    }
}

/// The value of the sample of family `name` whose labels include `labels`.
fn value(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let exposition = parsed(page);
    let family = exposition
        .families
        .get(name)
        .unwrap_or_else(|| panic!("no family {name}"));
    let sample = family
        .iter_samples()
        .find(|s| {
            let set = s.get_labelset().expect("labels");
            labels
                .iter()
                .all(|(k, v)| set.get_label_value(k) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample of {name} with {labels:?}"));
    match &sample.value {
        PrometheusValue::Counter(c) => c.value.as_f64(),
        PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
        PrometheusValue::Histogram(h) => h.count.map_or(f64::NAN, |c| c as f64),
        PrometheusValue::Summary(_) => f64::NAN,
    }
}

#[test]
fn flush_adds_and_zeroes_the_tally() {
    let m = Metrics::default();
    let mut t = Tally::default();
    t.respond(Status::NoContent);
    t.respond(Status::NoContent);
    t.accepted = 2;
    m.flush(&mut t);
    m.flush(&mut t);
    assert_eq!(m.responses(Status::NoContent), 2);
    assert_eq!(m.accepted(), 2);
    let page = crate::http::metrics_page::render(&m, &Gauges::default());
    assert!(
        page.contains("hourtally_http_responses_total{code=\"204\"} 2\n"),
        "{page}"
    );
    assert!(page.contains(
        "# TYPE hourtally_events_accepted_total counter\nhourtally_events_accepted_total 2\n"
    ));
    assert!(page.contains("hourtally_build_info{version=\""), "{page}");
}

#[test]
fn refusals_are_flushed_once_each() {
    let m = Metrics::default();
    let mut t = Tally::default();
    let err = ApiError::from(crate::http::error::HttpError::NotFound);
    t.refuse(&err);
    m.flush(&mut t);
    t.respond(Status::Ok);
    m.flush(&mut t);
    t.refuse(&err);
    t.refuse(&err);
    m.flush(&mut t);
    m.flush(&mut t);
    assert_eq!(m.rejections(err.reason()), 3);
    assert_eq!(m.responses(Status::NotFound), 3);
    assert_eq!(m.responses(Status::Ok), 1);
}

#[test]
fn a_timed_flush_files_each_routed_request_under_its_route() {
    let m = Metrics::default();
    let mut t = Tally::default();
    let since = Stopwatch::start();
    t.route(Route::AnalyticsPost);
    t.route(Route::AnalyticsPost);
    t.route(Route::AnalyticsGet);
    std::thread::sleep(std::time::Duration::from_millis(2));
    m.flush_timed(&mut t, since);
    // Untimed flushes drop the routes they find: nothing more is filed.
    t.route(Route::Healthz);
    m.flush(&mut t);
    m.flush_timed(&mut t, Stopwatch::start());
    let post = m.latency(Route::AnalyticsPost);
    assert_eq!(post.count, 2);
    // Both were filed in a bucket above the 2 ms slept, and their sum is at least 4 ms.
    assert!(post.sum >= 4_000_000, "{post:?}");
    let at_most_1ms: u64 = post
        .buckets
        .iter()
        .filter(|(b, _)| *b <= 1_000_000)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(at_most_1ms, 0, "{post:?}");
    assert_eq!(m.latency(Route::AnalyticsGet).count, 1);
    assert_eq!(m.latency(Route::Healthz).count, 0);
}

#[test]
fn shards_add_up_across_threads() {
    let m = Metrics::default();
    std::thread::scope(|s| {
        for _ in 0..(SHARDS + 3) {
            s.spawn(|| {
                let mut t = Tally::default();
                for _ in 0..1000 {
                    t.respond(Status::Ok);
                    t.route(Route::AnalyticsGet);
                }
                t.accepted = 5;
                m.flush_timed(&mut t, Stopwatch::start());
            });
        }
    });
    let threads = (SHARDS + 3) as u64;
    assert_eq!(m.responses(Status::Ok), 1000 * threads);
    assert_eq!(m.accepted(), 5 * threads);
    assert_eq!(m.latency(Route::AnalyticsGet).count, 1000 * threads);
}

#[test]
fn the_page_parses_as_exposition_format_and_holds_every_histogram() {
    let m = Metrics::default();
    let mut t = Tally::default();
    t.respond(Status::Ok);
    t.route(Route::AnalyticsGet);
    t.refuse(&ApiError::from(crate::http::error::HttpError::NotFound));
    t.route(Route::Other);
    m.flush_timed(&mut t, Stopwatch::start());
    m.writer.record(1000, std::time::Duration::from_micros(30));
    m.writer.record(3, std::time::Duration::from_micros(2));
    let page = crate::http::metrics_page::render(
        &m,
        &Gauges {
            journal: Some((0, 0, 10, 1)),
            ..Gauges::default()
        },
    );
    assert_eq!(
        value(&page, "hourtally_http_responses_total", &[("code", "200")]),
        1.0
    );
    assert_eq!(
        value(
            &page,
            "hourtally_http_rejections_total",
            &[("reason", "not_found")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &page,
            "hourtally_http_request_duration_seconds",
            &[("path", "/analytics"), ("method", "GET")]
        ),
        1.0
    );
    assert_eq!(value(&page, "hourtally_writer_batch_events", &[]), 2.0);
    assert_eq!(
        value(&page, "hourtally_writer_batch_duration_seconds", &[]),
        2.0
    );
    assert_eq!(value(&page, "hourtally_journal_bytes_total", &[]), 10.0);
    assert!(value(&page, "process_resident_memory_bytes", &[]) > 0.0);
    // Bounds print as the decimal they are meant to be, and the writer's sum is in events.
    assert!(
        page.contains("le=\"1e-6\"") || page.contains("le=\"1e-06\""),
        "{page}"
    );
    assert!(
        page.contains("hourtally_writer_batch_events_sum 1003.0\n"),
        "{page}"
    );
    assert!(
        page.contains("hourtally_writer_batch_events_bucket{le=\"1024\"} 2\n"),
        "{page}"
    );
}
