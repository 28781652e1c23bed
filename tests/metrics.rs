//! `/metrics` against the real binary: the page parses as Prometheus exposition format (with
//! a parser crate, not string matching), its counters and histograms move as requests
//! arrive, and a burst of bad requests writes a bounded number of log lines.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{now_ms, TestServer};
use openmetrics_parser::{prometheus::parse_prometheus, PrometheusValue};

/// Every sample of the page: `name{sorted labels}` → value (a histogram by its count). Panics
/// if the page is not valid exposition format.
fn scrape(s: &TestServer) -> HashMap<String, f64> {
    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    let page = r.text();
    let exposition = match parse_prometheus(&page) {
        Ok(e) => e,
        Err(e) => panic!("/metrics is not valid exposition format: {e:?}\n{page}"),
    };
    let mut samples = HashMap::new();
    for (name, family) in &exposition.families {
        for sample in family.iter_samples() {
            let set = sample.get_labelset().expect("labels");
            let mut labels: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let value = match &sample.value {
                PrometheusValue::Counter(c) => c.value.as_f64(),
                PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
                PrometheusValue::Histogram(h) => h.count.map_or(f64::NAN, |c| c as f64),
                PrometheusValue::Summary(_) => f64::NAN,
            };
            samples.insert(format!("{name}{{{}}}", labels.join(",")), value);
        }
    }
    samples
}

/// How much `key` grew from `before` to `after` (a missing key counts as 0).
fn grew(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    assert!(after.contains_key(key), "no sample {key}: {after:?}");
    after[key] - before.get(key).copied().unwrap_or(0.0)
}

/// Writes `count` copies of `request` on one connection, `chunk` at a time, and reads every
/// answer; returns the statuses seen.
fn pipeline(s: &TestServer, request: &str, count: usize, chunk: usize) -> HashMap<u16, usize> {
    let mut c = s.connect();
    let mut statuses = HashMap::new();
    let mut left = count;
    while left > 0 {
        let n = left.min(chunk);
        c.write(request.repeat(n).as_bytes());
        for _ in 0..n {
            *statuses.entry(c.response(false).status).or_insert(0) += 1;
        }
        left -= n;
    }
    statuses
}

#[test]
fn the_page_parses_and_its_series_move_with_the_requests() {
    let s = TestServer::start(&[]);
    let before = scrape(&s);
    let ts = now_ms();
    let posts = pipeline(
        &s,
        &format!("POST /analytics?timestamp={ts}&user=u&click HTTP/1.1\r\nHost: t\r\n\r\n"),
        300,
        100,
    );
    assert_eq!(posts.get(&204), Some(&300), "{posts:?}");
    let gets = pipeline(
        &s,
        &format!("GET /analytics?timestamp={ts} HTTP/1.1\r\nHost: t\r\n\r\n"),
        50,
        50,
    );
    assert_eq!(gets.get(&200), Some(&50), "{gets:?}");
    let hours = pipeline(
        &s,
        &format!("GET /analytics/hours?from={ts}&to={ts} HTTP/1.1\r\nHost: t\r\n\r\n"),
        3,
        3,
    );
    assert_eq!(hours.get(&200), Some(&3), "{hours:?}");
    let page = pipeline(&s, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", 2, 2);
    assert_eq!(page.get(&200), Some(&2), "{page:?}");
    let bad = pipeline(&s, "GET /analytics HTTP/1.1\r\nHost: t\r\n\r\n", 20, 20);
    assert_eq!(bad.get(&400), Some(&20), "{bad:?}");
    // Counters are flushed per batch, right after the batch's answers are written (its
    // latency runs to that write), so the last batch's can come a moment after the client
    // read its answers; and the writer applies the 300 events a moment after their 204s.
    // Wait (bounded) for both.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = scrape(&s);
        if (grew(&before, &after, "hourtally_events_applied_total{}") >= 300.0
            && grew(&before, &after, "hourtally_http_responses_total{code=400}") >= 20.0)
            || Instant::now() > deadline
        {
            break after;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let g = |key: &str| grew(&before, &after, key);
    assert_eq!(g("hourtally_events_accepted_total{}"), 300.0);
    assert_eq!(g("hourtally_events_applied_total{}"), 300.0);
    assert_eq!(g("hourtally_http_responses_total{code=204}"), 300.0);
    // 50 GETs, 3 ranges, 2 pages, and the scrapes while the writer caught up.
    assert!(g("hourtally_http_responses_total{code=200}") >= 55.0);
    assert_eq!(g("hourtally_http_responses_total{code=400}"), 20.0);
    assert_eq!(
        g("hourtally_http_rejections_total{reason=timestamp_missing}"),
        20.0
    );
    assert_eq!(
        g("hourtally_http_request_duration_seconds{method=POST,path=/analytics}"),
        300.0
    );
    // 50 good GETs and 20 refused ones: latency is by route, whatever the answer.
    assert_eq!(
        g("hourtally_http_request_duration_seconds{method=GET,path=/analytics}"),
        70.0
    );
    assert_eq!(
        g("hourtally_http_request_duration_seconds{method=GET,path=/analytics/hours}"),
        3.0
    );
    assert_eq!(
        g("hourtally_http_request_duration_seconds{method=GET,path=dashboard}"),
        2.0
    );
    // Each scrape is timed once its answer is written: the later ones see the first.
    assert!(g("hourtally_http_request_duration_seconds{method=GET,path=/metrics}") >= 1.0);
    // The writer applied 300 events in at least one batch, at most 300.
    let batches = g("hourtally_writer_batch_events{}");
    assert!((1.0..=300.0).contains(&batches), "{batches}");
    assert!(after["process_resident_memory_bytes{}"] > 1e6);
    assert_eq!(after["hourtally_build_info{version=0.1.0}"], 1.0);
}

#[test]
fn a_burst_of_ten_thousand_bad_requests_logs_a_bounded_number_of_lines() {
    let s = TestServer::start(&[]);
    let started = Instant::now();
    let statuses = pipeline(
        &s,
        "GET /analytics?timestamp=x HTTP/1.1\r\nHost: t\r\n\r\n",
        10_000,
        500,
    );
    assert_eq!(statuses.get(&400), Some(&10_000), "{statuses:?}");
    let took = started.elapsed();
    let (status, lines) = s.terminate();
    assert!(status.success(), "{status:?}");
    // The refusals are summarised, one line per interval (10 s) at most, plus the last one at
    // stop; with the start, ready and stop lines a handful in all, not one per request.
    let summaries: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("requests refused"))
        .collect();
    let intervals = 1 + (took.as_secs() / 10) as usize;
    assert!(
        (1..=intervals + 1).contains(&summaries.len()),
        "{summaries:?}"
    );
    assert!(
        summaries
            .iter()
            .any(|l| l.contains("timestamp_not_digits=")),
        "{summaries:?}"
    );
    assert!(
        lines.len() <= intervals + 10,
        "{} lines: {lines:?}",
        lines.len()
    );
    assert!(took < Duration::from_secs(120));
}
