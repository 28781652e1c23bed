//! ARCHITECTURE.md, "The API": the routes beside `/analytics` (`/healthz`, `/readyz`,
//! `/metrics`, `/openapi.json`) and HEAD, against the real binary over real TCP.

mod common;

use common::{now_ms, parse_counts, TestServer};

fn post_q(server: &TestServer, query: &str) -> common::Response {
    server.post(&format!("/analytics?{query}"))
}

#[test]
fn health_readiness_metrics_and_head() {
    let s = TestServer::start(&[]);
    let r = s.get("/healthz");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let r = s.get("/readyz");
    assert_eq!((r.status, r.text().as_str()), (200, "ready\n"));
    let ts = now_ms();
    assert_eq!(
        post_q(&s, &format!("timestamp={ts}&user=a&click")).status,
        204
    );
    assert_eq!(s.wait_counts(ts, (1, 1, 0)), (1, 1, 0));
    // Two connections are open while the page is rendered: an idle one and the asker.
    let mut idle = s.connect();
    idle.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(idle.response(false).status, 200); // admitted, now idle
                                                  // Earlier requests' connections close on the server a moment after the client drops
                                                  // them: ask again (bounded) until only these two are open.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let m = loop {
        let m = s.get("/metrics");
        if m.text().contains("hourtally_connections_open 2\n")
            || std::time::Instant::now() > deadline
        {
            break m;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(
        m.text().contains("hourtally_connections_open 2\n"),
        "{}",
        m.text()
    );
    drop(idle);
    assert_eq!(m.status, 200);
    // The process's own figures: its resident memory is the server's, megabytes of it.
    let rss: u64 = m
        .text()
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.parse().ok())
        .expect("process_resident_memory_bytes");
    assert!(rss > 1 << 20, "{rss}");
    assert!(m.text().contains("\nprocess_cpu_seconds_total "));
    assert!(m.text().contains("\nhourtally_build_info{version=\""));
    assert!(m
        .header("Content-Type")
        .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    let page = m.text();
    assert!(
        page.contains("hourtally_events_accepted_total 1\n"),
        "{page}"
    );
    assert!(
        page.contains("hourtally_events_applied_total 1\n"),
        "{page}"
    );
    assert!(
        page.contains("hourtally_http_responses_total{code=\"204\"} 1\n"),
        "{page}"
    );
    // HEAD: the GET's head, no body.
    let get = s.get(&format!("/analytics?timestamp={ts}"));
    let head =
        s.send(format!("HEAD /analytics?timestamp={ts} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length"), get.header("Content-Length"));
    assert_eq!(parse_counts(&get.body), (1, 1, 0));
    // A HEAD answer really carries no body: the next answer on the connection follows it.
    let mut c = s.connect();
    c.write(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(true).status, 200);
    assert_eq!(c.response(false).text(), "ok\n");
}

/// `GET /openapi.json` is JSON, and its paths are exactly the routes the server answers: every
/// listed path and method is routed (not 404 or 405), every routed path is listed.
#[test]
fn openapi_json_describes_every_route() {
    let s = TestServer::start(&[]);
    let r = s.get("/openapi.json");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let doc: serde_json::Value = serde_json::from_slice(&r.body).expect("valid JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = doc["paths"].as_object().expect("paths");
    let mut listed: Vec<&str> = paths.keys().map(String::as_str).collect();
    listed.sort_unstable();
    let mut routed = vec![
        "/analytics",
        "/analytics/hours",
        "/analytics/range",
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/readyz",
    ];
    // The dashboard and its files (src/http/assets.rs).
    routed.extend(hourtally::http::assets::ASSETS.iter().map(|a| a.path));
    routed.sort_unstable();
    assert_eq!(listed, routed);
    let ts = now_ms();
    for (path, item) in paths {
        let methods: Vec<&str> = item
            .as_object()
            .expect("path item")
            .keys()
            .map(String::as_str)
            .collect();
        for method in &methods {
            let method = method.to_ascii_uppercase();
            let query = match (path.as_str(), method.as_str()) {
                ("/analytics", "POST") => format!("?timestamp={ts}&user=openapi&click"),
                ("/analytics/hours" | "/analytics/range", _) => format!("?from={ts}&to={ts}"),
                ("/analytics", _) => format!("?timestamp={ts}"),
                _ => String::new(),
            };
            let raw = format!("{method} {path}{query} HTTP/1.1\r\nHost: t\r\n\r\n");
            let r = if method == "HEAD" {
                let mut c = s.connect();
                c.write(raw.as_bytes());
                c.response(true)
            } else {
                s.send(raw.as_bytes())
            };
            assert!(
                matches!(r.status, 200 | 204),
                "{method} {path}{query}: {r:?}"
            );
            // Every status the route answered is one the document lists for it.
            let listed = &item[method.to_ascii_lowercase().as_str()]["responses"];
            assert!(
                listed.get(r.status.to_string()).is_some(),
                "{method} {path}: {}",
                r.status
            );
        }
    }
    // HEAD of the document: its length, no body.
    let mut c = s.connect();
    c.write(b"HEAD /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.response(true);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("Content-Length"),
        Some(r.body.len().to_string().as_str())
    );
    assert!(head.body.is_empty());
}

/// The dashboard and its files: a Content-Security-Policy that allows only the server's own
/// files (no inline code, no other origin, no framing), `X-Frame-Options: DENY`, `nosniff`,
/// and an `ETag` per file: a request that names it (`If-None-Match`) gets `304 Not
/// Modified` with no body and the same validators, so a reload downloads nothing again.
#[test]
fn the_dashboard_forbids_framing_and_foreign_content_and_revalidates_by_etag() {
    let s = TestServer::start(&[]);
    let mut tags = std::collections::BTreeSet::new();
    for a in hourtally::http::assets::ASSETS {
        let r = s.get(a.path);
        assert_eq!(r.status, 200, "{}: {r:?}", a.path);
        let csp = r.header("Content-Security-Policy").unwrap_or_default();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{}: {csp:?}", a.path);
        }
        assert!(!csp.contains("unsafe"), "{}: {csp:?}", a.path);
        assert_eq!(r.header("X-Frame-Options"), Some("DENY"), "{}", a.path);
        assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
        let tag = r.header("ETag").unwrap_or_default().to_owned();
        assert!(
            tag.len() > 2 && tag.starts_with('"') && tag.ends_with('"'),
            "{}: {tag:?}",
            a.path
        );
        assert!(tags.insert(tag.clone()), "{}: {tag} twice", a.path);
        let cache = r.header("Cache-Control").map(str::to_owned);
        // The tag, alone, among others, weak, or `*`: not modified, for GET and HEAD.
        for (method, value) in [
            ("GET", tag.clone()),
            ("GET", format!("\"other\", W/{tag}")),
            ("HEAD", tag.clone()),
            ("GET", "*".to_owned()),
        ] {
            let mut c = s.connect();
            c.write(
                format!(
                    "{method} {} HTTP/1.1\r\nHost: t\r\nIf-None-Match: {value}\r\n\r\n\
                     GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
                    a.path
                )
                .as_bytes(),
            );
            let r = c.response(true);
            assert_eq!(r.status, 304, "{method} {} with {value}: {r:?}", a.path);
            assert_eq!(r.header("ETag"), Some(tag.as_str()));
            assert_eq!(r.header("Cache-Control").map(str::to_owned), cache);
            assert_eq!(r.header("Content-Length"), None, "{r:?}");
            // No body: the next answer on the connection follows at once.
            assert_eq!(c.response(false).text(), "ok\n");
        }
        // Another tag, or a malformed one: the whole file.
        for value in ["\"other\"", &tag[1..], "W/", ""] {
            let r = s.send(
                format!(
                    "GET {} HTTP/1.1\r\nHost: t\r\nIf-None-Match: {value}\r\n\r\n",
                    a.path
                )
                .as_bytes(),
            );
            assert_eq!(r.status, 200, "{} with {value:?}", a.path);
            assert_eq!(r.body, a.body, "{}", a.path);
        }
    }
}
