//! Smoke test of the load generator: the real `hourtally-load` binary drives the real
//! `hourtally` binary (in its default configuration: a worker per CPU) over loopback for a
//! few seconds, with `--verify`, closed loop with pipelining and open loop (`--rate`, with
//! visibility probes), with and without the HEADs, ranges and `/metrics` of
//! `--other-share`. It must exit 0, get 204s, find every answer right as it arrives, and
//! find that every hour it touched (the probes' hour among them) reads exactly what the
//! server accepted.
//!
//! The server binary is not built by `cargo test -p hourtally-load`: run `cargo build --bins`
//! first (`scripts/test.sh` does); the test fails and says so when it is missing.

mod server;

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use server::TestServer;

/// Upper bound for one load run; the runs below take a few seconds.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Runs `hourtally-load --addr ADDR ARGS...` (bounded); its exit status and stdout.
fn run_load(server: &TestServer, args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hourtally-load"))
        .arg("--addr")
        .arg(server.addr.to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start hourtally-load");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for hourtally-load") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hourtally-load did not finish within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().expect("stdout reader");
    (status, out)
}

/// The count after `  CODE:` in the answers table.
fn answers(out: &str, code: u16) -> u64 {
    let prefix = format!("{code}:");
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{code}:` line in\n{out}"))
}

fn check(status: ExitStatus, out: &str) {
    assert!(status.success(), "hourtally-load failed ({status}):\n{out}");
    let verify = out
        .lines()
        .find(|l| l.starts_with("verify: ") && l.ends_with(" differences"))
        .unwrap_or_else(|| panic!("no verify line in\n{out}"));
    let hours: u64 = verify
        .strip_prefix("verify: ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad verify line {verify:?}"));
    assert!(hours > 0, "{verify}");
    assert!(verify.ends_with(" hours, 0 differences"), "{out}");
    assert!(answers(out, 204) > 0, "{out}");
    let result = out
        .lines()
        .last()
        .filter(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT last line in\n{out}"));
    assert!(result.contains(" errors=0 "), "{result}");
    assert!(result.contains(" lost=0 "), "{result}");
    assert!(result.contains(" verify_diffs=0 "), "{result}");
    assert!(result.contains(" wrong_answers=0 "), "{result}");
    assert!(
        out.contains("\nwrong answers 0 (every answer checked"),
        "{out}"
    );
    assert!(
        out.contains("\nverify: passed: every answer right"),
        "{out}"
    );
}

/// The count of answers to `kind` in the `answers by request` table (--other-share).
fn answers_to(out: &str, kind: &str) -> u64 {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(kind)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{kind}` line in\n{out}"))
}

/// Every kind of request was sent and answered.
fn check_every_kind_answered(out: &str) {
    for kind in [
        "POST /analytics ",
        "GET /analytics ",
        "HEAD /analytics ",
        "GET /analytics/hours ",
        "GET /metrics ",
    ] {
        assert!(answers_to(out, kind) > 0, "no {kind} in\n{out}");
    }
}

#[test]
fn closed_loop_pipelined_verifies() {
    let server = TestServer::start(&[]);
    let (status, out) = run_load(
        &server,
        &[
            "--verify",
            "--requests",
            "20000",
            "--connections",
            "4",
            "--pipeline",
            "8",
            "--users",
            "500",
            "--post-share",
            "0.7",
            "--no-progress",
        ],
    );
    check(status, &out);
    assert!(out.contains("\nrequests      20000\n"), "{out}");
}

#[test]
fn closed_loop_pipelined_with_heads_ranges_and_metrics_finds_every_answer_right() {
    let server = TestServer::start(&[]);
    let (status, out) = run_load(
        &server,
        &[
            "--verify",
            "--duration",
            "2",
            "--connections",
            "8",
            "--pipeline",
            "16",
            "--other-share",
            "0.2",
            "--users",
            "500",
            "--no-progress",
        ],
    );
    check(status, &out);
    check_every_kind_answered(&out);
}

#[test]
fn open_loop_with_heads_ranges_and_metrics_finds_every_answer_right() {
    let server = TestServer::start(&[]);
    let (status, out) = run_load(
        &server,
        &[
            "--verify",
            "--rate",
            "2000",
            "--duration",
            "2",
            "--connections",
            "4",
            "--other-share",
            "0.3",
            "--users",
            "500",
            "--no-progress",
        ],
    );
    check(status, &out);
    check_every_kind_answered(&out);
}

/// The value of `key=` in the RESULT line.
fn result_field(out: &str, key: &str) -> u64 {
    let result = out.lines().last().unwrap_or_default();
    result
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {result:?}"))
}

#[test]
fn open_loop_verifies_and_measures_the_visibility_lag() {
    let server = TestServer::start(&[]);
    let (status, out) = run_load(
        &server,
        &[
            "--verify",
            "--rate",
            "2000",
            "--duration",
            "2",
            "--connections",
            "4",
            "--users",
            "500",
            "--post-share",
            "0.7",
            "--current-share",
            "1.0",
            "--lag-every",
            "20",
            "--no-progress",
        ],
    );
    check(status, &out);
    assert!(out.contains("coordinated omission"), "{out}");
    // About 70 probes are due (2 s × 2000/s × 0.7 / 20); each is seen within milliseconds.
    assert!(result_field(&out, "lag_probes") >= 10, "{out}");
    assert!(!out.contains("probing stopped early"), "{out}");
    // The probes' hour is verified beside the mix's (the current hour, two if the run
    // crosses into the next one).
    let verify = out
        .lines()
        .find(|l| l.ends_with(" differences"))
        .unwrap_or_default();
    assert!(
        verify.starts_with("verify: 2 hours") || verify.starts_with("verify: 3 hours"),
        "{out}"
    );
}

#[test]
fn open_loop_on_two_threads_sends_at_the_rate() {
    let server = TestServer::start(&[]);
    let (status, out) = run_load(
        &server,
        &[
            "--verify",
            "--rate",
            "3000",
            "--requests",
            "3000",
            "--connections",
            "6",
            "--threads",
            "2",
            "--no-progress",
        ],
    );
    check(status, &out);
    assert!(out.contains("\nrequests      3000\n"), "{out}");
    assert!(out.contains(" threads=2 "), "{out}");
}
