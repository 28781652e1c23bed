//! The dashboard (`GET /`) in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, the `fantoccini` client) against the real binary. It loads the page, posts
//! known events for the current hour and two earlier ones, and checks that the page shows
//! those numbers for those hours within two refreshes, that the health panel moves, and that
//! a 375 px wide viewport has no horizontal scroll, and that the browser reported no violation
//! of the page's Content-Security-Policy. Screenshots go to target/test-artifacts/
//! (`HOURTALLY_UPDATE_SCREENSHOT=1` also writes docs/dashboard.png for the README).
//!
//! Chromium and chromedriver are Debian's `chromium` and `chromium-driver`, which
//! scripts/test.sh installs: without them this test fails, it does not skip.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{now_ms, parse_counts, TestServer};
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

const HOUR: u64 = 3_600_000;
/// The whole test, browser start included, must end within this.
const BUDGET: Duration = Duration::from_secs(60);
/// How often the page fetches the whole 48 hours (FULL_EVERY_MS in dashboard.js) and the
/// current hour (NOW_EVERY_MS): "within two refreshes" is checked against its own counters.
const FULL_EVERY: Duration = Duration::from_secs(5);

/// chromedriver in a process group of its own, so that the browser it starts goes with it
/// however the test ends.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    fn start() -> Self {
        for (tool, package) in [
            ("chromium", "chromium"),
            ("chromedriver", "chromium-driver"),
        ] {
            let found = Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                found,
                "{tool} is not installed: this browser test needs Debian's `{package}` \
                 (`bash scripts/test.sh` installs it; or `apt-get install chromium chromium-driver`)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let profile =
            std::env::temp_dir().join(format!("hourtally-chromium-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile dir");
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            port,
            profile,
        }
    }

    fn capabilities(&self) -> serde_json::Map<String, Value> {
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--window-size=1000,1700",
            &format!("--user-data-dir={}", self.profile.display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
        });
        caps.as_object().expect("an object").clone()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: kill(2) with the negated pid of the group this child leads; it touches no
        // memory of ours.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Unique users, clicks, impressions of a list of `(user, is_click)` events.
fn tally(events: &[(&str, bool)]) -> (u64, u64, u64) {
    let users: BTreeSet<&str> = events.iter().map(|e| e.0).collect();
    let clicks = events.iter().filter(|e| e.1).count() as u64;
    (users.len() as u64, clicks, events.len() as u64 - clicks)
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.expect("execute script")
}

/// Polls `script` until it returns something `done` accepts; panics at `deadline`.
async fn wait_for(c: &Client, what: &str, script: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + 3 * FULL_EVERY;
    loop {
        let v = js(c, script).await;
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: the page shows {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The page's numbers: its refresh counters, the current hour, the per-hour table, health.
const READ_PAGE: &str = r#"
    const d = window.hourtallyDashboard || {};
    const rows = {};
    for (const tr of document.querySelectorAll('#hours tbody tr')) {
        rows[tr.dataset.hourStartMs] = [tr.dataset.users, tr.dataset.clicks, tr.dataset.impressions];
    }
    const now = document.getElementById('now');
    const val = id => document.getElementById(id).dataset.value;
    const rejections = {};
    for (const tr of document.querySelectorAll('#rejections tbody tr')) {
        rejections[tr.dataset.reason] = tr.dataset.value;
    }
    return {
        full: d.fullRefreshes, now: d.nowRefreshes, scrapes: d.metricsScrapes, errors: d.errors,
        status: document.getElementById('status').dataset.state,
        nowHour: now.dataset.hourStartMs,
        nowCounts: [val('now-users'), val('now-clicks'), val('now-impressions')],
        rows, rate: val('events-rate'), accepted: val('events-accepted'),
        depth: val('queue-depth'), rejections, spanRefreshes: d.spanRefreshes,
        spans: [val('span-today'), val('span-day'), val('span-week')],
    };
"#;

fn num(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

fn counts_of(v: &Value) -> Option<(u64, u64, u64)> {
    let a = v.as_array()?;
    let n = |i: usize| a.get(i)?.as_str()?.parse().ok();
    Some((n(0)?, n(1)?, n(2)?))
}

fn artifact(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir.join(name)
}

#[test]
fn dashboard_shows_posted_hours_and_health_and_fits_a_phone() {
    // Not across an hour boundary: the test posts to "the current hour" and reads it back.
    let left = HOUR - now_ms() % HOUR;
    if left < 25_000 {
        std::thread::sleep(Duration::from_millis(left + 100));
    }
    let server = TestServer::start(&[]);
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(BUDGET, drive(&server, &base, &driver))
            .await
            .expect("the browser test took over a minute")
    });
}

async fn drive(server: &TestServer, base: &str, driver: &Driver) {
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(driver.capabilities())
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session with Chromium");
    client.goto(base).await.expect("load the dashboard");
    let first = wait_for(&client, "first load", READ_PAGE, |v| {
        v["full"].as_u64() >= Some(1) && v["scrapes"].as_u64() >= Some(1)
    })
    .await;
    assert_eq!(first["accepted"], "0", "{first}");
    // The page works under its Content-Security-Policy (src/http/assets.rs): the browser
    // reported no violation since the page began to load (a buffered ReportingObserver sees
    // the reports of before it was made). A blocked script would also leave the numbers
    // above unread; this also catches a blocked style sheet, icon or fetch.
    let violations = client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               const seen = [];
               const keep = reports => {
                   for (const r of reports) {
                       seen.push(r.body.effectiveDirective + " blocked " + r.body.blockedURL);
                   }
               };
               const o = new ReportingObserver(keep, { types: ["csp-violation"], buffered: true });
               o.observe();
               setTimeout(() => { keep(o.takeRecords()); o.disconnect(); done(seen); }, 300);"#,
            vec![],
        )
        .await
        .expect("read the CSP reports");
    assert_eq!(violations, json!([]), "CSP violations");

    // The load, as the browser saw it: navigation timing and the bytes of every file.
    let timing = js(
        &client,
        r#"const n = performance.getEntriesByType('navigation')[0];
           const files = [n, ...performance.getEntriesByType('resource')]
               .filter(e => !e.name.includes('/analytics/') && !e.name.endsWith('/metrics'));
           return { dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd,
                    firstChart: window.hourtallyDashboard.firstChartMs,
                    bytes: files.reduce((s, e) => s + e.encodedBodySize, 0),
                    files: files.length };"#,
    )
    .await;
    println!("dashboard load (fresh profile, loopback): {timing}");
    assert!(timing["firstChart"].as_f64().is_some(), "{timing}");

    // Events for the current hour and two earlier ones.
    let h = now_ms() / HOUR;
    let mut posted: BTreeMap<u64, Vec<(&str, bool)>> = BTreeMap::new();
    posted.insert(
        h,
        vec![("ann", true), ("bob", true), ("ann", false), ("cy", true)],
    );
    posted.insert(
        h - 1,
        vec![("dee", false), ("dee", false), ("eve", true), ("ann", true)],
    );
    posted.insert(
        h - 5,
        vec![
            ("fay", true),
            ("gus", false),
            ("hal", false),
            ("ivy", false),
        ],
    );
    let before = js(&client, READ_PAGE).await;
    let mut sent = 0;
    for (&hour, events) in &posted {
        for (i, &(user, click)) in events.iter().enumerate() {
            let kind = if click { "click" } else { "impression" };
            let ts = hour * HOUR + 1000 * i as u64;
            let r = server.post(&format!("/analytics?timestamp={ts}&user={user}&{kind}"));
            assert_eq!(r.status, 204, "{r:?}");
            sent += 1;
        }
    }
    // One refusal, for the panel's table of reasons.
    assert_eq!(server.get("/analytics?timestamp=soon").status, 400);

    let want: BTreeMap<String, (u64, u64, u64)> = posted
        .iter()
        .map(|(hour, events)| ((hour * HOUR).to_string(), tally(events)))
        .collect();
    for (start, counts) in &want {
        let ts: u64 = start.parse().expect("ms");
        assert_eq!(
            server.wait_counts(ts, *counts),
            *counts,
            "the server's own GET"
        );
    }
    let full = |v: &Value| v["full"].as_u64().unwrap_or(0);
    let now = |v: &Value| v["now"].as_u64().unwrap_or(0);
    // The current hour, refetched every second: within two of those refreshes.
    let current = want[&(h * HOUR).to_string()];
    let shown = wait_for(&client, "the current hour", READ_PAGE, |v| {
        counts_of(&v["nowCounts"]) == Some(current)
    })
    .await;
    assert!(now(&shown) - now(&before) <= 2, "{before} → {shown}");
    assert_eq!(shown["nowHour"], (h * HOUR).to_string());
    // Every posted hour in the table, within two refreshes of the whole range.
    let shown = wait_for(&client, "the posted hours", READ_PAGE, |v| {
        want.iter()
            .all(|(start, c)| counts_of(&v["rows"][start]) == Some(*c))
    })
    .await;
    assert!(full(&shown) - full(&before) <= 2, "{before} → {shown}");
    // Hours nobody posted to are zeros, not blanks; the table holds the 48 hours.
    let quiet = ((h - 2) * HOUR).to_string();
    assert_eq!(
        counts_of(&shown["rows"][&quiet]),
        Some((0, 0, 0)),
        "{shown}"
    );
    assert_eq!(shown["rows"].as_object().map(|r| r.len()), Some(48));

    // Unique users over the spans: unions. Over 24 hours and 7 days, the nine users of the
    // three hours (ann is in two of them); today, what the server answers for today's UTC
    // hours.
    let day_start = now_ms() / (24 * HOUR) * (24 * HOUR);
    let today = server.get(&format!(
        "/analytics/range?from={day_start}&to={}",
        now_ms()
    ));
    assert_eq!(today.status, 200, "{today:?}");
    let today = parse_counts(&today.body).0.to_string();
    let spans = wait_for(&client, "the spans", READ_PAGE, |v| {
        v["spans"] == json!([today, "9", "9"])
    })
    .await;
    assert_eq!(spans["errors"], 0, "{spans}");
    // Not a sum: the hours' own counts add up to 3 + 3 + 4.
    let summed: u64 = want.values().map(|c| c.0).sum();
    assert_eq!(summed, 10);

    // The health panel moves: every accepted event counted, the refusal under its reason.
    let health = wait_for(&client, "the health panel", READ_PAGE, |v| {
        num(&v["accepted"]) == sent as f64
            && v["rejections"]["timestamp_not_digits"] == "1"
            && v["depth"] == "0"
    })
    .await;
    assert_eq!(health["errors"], 0, "{health}");
    assert_eq!(health["status"], "ok", "{health}");
    // And events/s: above zero while events keep coming (a poster thread, 20 a second).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poster = {
        let (addr, stop) = (server.addr, stop.clone());
        std::thread::spawn(move || {
            let mut c = common::Conn::new(TcpStream::connect(addr).expect("connect"));
            let mut i = 0;
            // Relaxed: a stop hint; the join after the store orders everything else.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 400 {
                let ts = now_ms();
                c.write(
                    format!("POST /analytics?timestamp={ts}&user=steady{i}&click HTTP/1.1\r\nHost: t\r\n\r\n")
                        .as_bytes(),
                );
                assert_eq!(c.response(false).status, 204);
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let moving = wait_for(&client, "events/s", READ_PAGE, |v| {
        num(&v["rate"]) > 0.0 && num(&v["accepted"]) > sent as f64
    })
    .await;
    // Relaxed: see the poster above.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    poster.join().expect("the poster thread");
    println!("health panel while posting: {}", moving["rate"]);

    let png = client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    std::fs::write(artifact("dashboard.png"), &png).expect("write screenshot");
    if std::env::var_os("HOURTALLY_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).expect("docs dir");
        std::fs::write(docs.join("dashboard.png"), &png).expect("write docs/dashboard.png");
    }

    // The page reads /metrics leniently: OpenMetrics (with `_created`, exemplars, a
    // timestamp, escaped label values and `# EOF`) gives the same samples as the
    // Prometheus text it reads above.
    let parsed = js(
        &client,
        r#"const text = [
             '# HELP hourtally_events_accepted POSTs whose event was queued.',
             '# TYPE hourtally_events_accepted counter',
             'hourtally_events_accepted_total 42',
             'hourtally_events_accepted_created 1.7e9',
             'hourtally_http_rejections_total{reason="timestamp_not_digits"} 3',
             'hourtally_http_rejections_total{code="400",reason="odd \\"one\\", {x}"} 1 1700000000',
             'hourtally_request_seconds_bucket{route="get",le="0.001"} 5 # {trace_id="a"} 0.0004',
             '  hourtally_queue_depth   7  ',
             'broken{reason="unterminated} 1',
             '# EOF',
           ].join('\n');
           return window.hourtallyDashboard.parseMetrics(text)
               .map(s => [s.name, s.labels.reason || s.labels.le || '', s.value]);"#,
    )
    .await;
    assert_eq!(
        parsed,
        json!([
            ["hourtally_events_accepted_total", "", 42],
            ["hourtally_events_accepted_created", "", 1_700_000_000],
            ["hourtally_http_rejections_total", "timestamp_not_digits", 3],
            ["hourtally_http_rejections_total", "odd \"one\", {x}", 1],
            ["hourtally_request_seconds_bucket", "0.001", 5],
            ["hourtally_queue_depth", "", 7],
        ]),
    );

    // A phone: 375 CSS pixels wide, and nothing wider than that.
    client
        .set_window_size(375, 812)
        .await
        .expect("resize the window");
    let fits = wait_for(
        &client,
        "a 375 px viewport",
        r#"const e = document.documentElement;
           return { inner: window.innerWidth, client: e.clientWidth, scroll: e.scrollWidth,
                    chart: document.querySelector('#chart-users .uplot').offsetWidth };"#,
        |v| v["inner"] == 375 && v["chart"].as_u64() <= v["client"].as_u64(),
    )
    .await;
    assert!(
        fits["scroll"].as_u64() <= fits["client"].as_u64(),
        "horizontal scroll at 375 px: {fits}"
    );
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(artifact("dashboard-375px.png"), &png).expect("write screenshot");
    client.close().await.expect("end the session");
}
