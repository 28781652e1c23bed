//! Starts the real `hourtally` binary on a free loopback port and talks HTTP/1.1 to it over
//! real TCP. Every server is killed when its handle drops; every socket has timeouts, so a
//! broken server fails a test instead of hanging it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

// Each test binary uses a part of the helpers (as `dead_code` above says for the rest).
#[allow(unused_imports)]
pub use client::{parse_counts, pipelining_poster, Conn, Posted, Response};
#[allow(unused_imports)]
pub use ranges::Model;

/// Milliseconds since the epoch now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// How a test server's process is started.
#[derive(Clone, Copy)]
enum Wrap<'a> {
    None,
    /// Under `taskset -c`.
    Cpus(&'a str),
    /// In a network namespace, reached at an address of it.
    Netns(&'a str, std::net::IpAddr),
}

pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
    /// Lines the server printed after `ready`.
    lines: mpsc::Receiver<String>,
    /// Lines between the start-up line and `ready`.
    early: Vec<String>,
}

impl TestServer {
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(Wrap::None, args)
    }

    /// Starts the server and returns as soon as it listens, without waiting for `ready`
    /// (for a server that is not ready yet: recovering, or waiting for NATS).
    pub fn start_unready(args: &[&str]) -> Self {
        Self::launch(Wrap::None, args, None, false).unwrap_or_else(|why| panic!("{why}"))
    }

    /// Starts the server confined to CPU 0 (`taskset -c 0`), so that its HTTP worker and its
    /// writer thread share one core.
    pub fn start_on_one_core(args: &[&str]) -> Self {
        Self::start_with(Wrap::Cpus("0"), args)
    }

    /// Starts the server in network namespace `ns` (`ip netns exec`), listening on every
    /// address there; the test reaches it at `reach`.
    pub fn start_in_netns(ns: &str, reach: std::net::IpAddr, args: &[&str]) -> Self {
        Self::start_with(Wrap::Netns(ns, reach), args)
    }

    fn start_with(wrap: Wrap<'_>, args: &[&str]) -> Self {
        Self::launch(wrap, args, None, true).unwrap_or_else(|why| panic!("{why}"))
    }

    /// Starts the server, or says why it did not start (the server refused, or never said it
    /// was ready), with everything it wrote to stderr, instead of panicking. Its stderr goes
    /// into `stderr` as it comes, also once it runs.
    pub fn try_start(
        args: &[&str],
        stderr: std::sync::Arc<std::sync::Mutex<String>>,
    ) -> Result<Self, String> {
        Self::launch(Wrap::None, args, Some(stderr), true)
    }

    /// Starts the server (and waits, bounded, for its start-up line); with `wait_ready`, also
    /// for its `ready` (the writer replays the journal, if any, before it serves).
    fn launch(
        wrap: Wrap<'_>,
        args: &[&str],
        capture: Option<std::sync::Arc<std::sync::Mutex<String>>>,
        wait_ready: bool,
    ) -> Result<Self, String> {
        let bin = env!("CARGO_BIN_EXE_hourtally");
        let mut cmd = match wrap {
            Wrap::Cpus(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus, bin]);
                c
            }
            Wrap::Netns(ns, _) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            Wrap::None => Command::new(bin),
        };
        cmd.args([
            "--listen",
            match wrap {
                Wrap::Netns(..) => "0.0.0.0:0",
                _ => "127.0.0.1:0",
            },
        ]);
        // Nothing on disk unless the test gives a data directory.
        if !args.contains(&"--data-dir") {
            cmd.arg("--ephemeral");
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if capture.is_some() {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        let mut child = cmd.spawn().expect("start hourtally");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_done = match (capture.clone(), child.stderr.take()) {
            (Some(into), Some(mut pipe)) => Some(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    into.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_str(&text);
                }
            })),
            _ => None,
        };
        // Ends a start that failed: no server left behind, and its stderr (all of it: the
        // process is gone, so the reader ends) in the reason.
        let give_up = |mut child: Child, why: String| -> Result<Self, String> {
            let _ = child.kill();
            let status = child
                .wait()
                .map_or_else(|e| e.to_string(), |s| s.to_string());
            let mut why = format!("{why} ({status})");
            if let (Some(done), Some(text)) = (stderr_done, &capture) {
                let _ = done.join();
                why.push_str("; its stderr: ");
                why.push_str(&text.lock().unwrap_or_else(|e| e.into_inner()));
            }
            Err(why)
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        let addr = log_field(&first, "addr")
            .filter(|_| first.contains(" listening "))
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .map(|mut a| {
                if let Wrap::Netns(_, reach) = wrap {
                    a.set_ip(reach);
                }
                a
            });
        let Some(addr) = addr else {
            // Never leave a server behind a failed start.
            return give_up(
                child,
                format!("no start-up line with addr= from the server: {first:?}"),
            );
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut early = Vec::new();
        if wait_ready {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(line) if line.contains(" ready") => break,
                    Ok(line) => early.push(line),
                    Err(_) => {
                        return give_up(
                            child,
                            format!("the server never said it was ready; it said {early:?}"),
                        );
                    }
                }
            }
        }
        Ok(TestServer {
            child,
            addr,
            lines: rx,
            early,
        })
    }

    /// Lines the server printed between its start-up line and `ready` (the recovery's).
    pub fn early_lines(&self) -> &[String] {
        &self.early
    }

    /// Waits up to `timeout` for a line (printed after `ready`) that contains `needle`;
    /// lines before it are dropped.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn connect(&self) -> Conn {
        Conn::new(TcpStream::connect(self.addr).expect("connect"))
    }

    /// One request on a fresh connection; its answer.
    pub fn send(&self, raw: &[u8]) -> Response {
        let mut c = self.connect();
        c.write(raw);
        c.response(raw.starts_with(b"HEAD"))
    }

    pub fn get(&self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
    }

    pub fn post(&self, path: &str) -> Response {
        self.send(format!("POST {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
    }

    /// The counts line of `GET /analytics?timestamp=ts`.
    pub fn counts(&self, ts: u64) -> (u64, u64, u64) {
        let r = self.get(&format!("/analytics?timestamp={ts}"));
        assert_eq!(r.status, 200, "{r:?}");
        parse_counts(&r.body)
    }

    /// Waits (bounded) until the hour of `ts` reads `want`; returns what it last read.
    pub fn wait_counts(&self, ts: u64, want: (u64, u64, u64)) -> (u64, u64, u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.counts(ts);
            if got == want || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The value of the series `name` (no labels) on the server's `/metrics` page.
    pub fn metric(&self, name: &str) -> u64 {
        let page = self.get("/metrics").text();
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {page}"))
    }

    /// The server's resident set size, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS line")
    }

    /// Kills the server with SIGKILL (no chance to flush anything) and waits for it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns the status and what the server
    /// printed after start-up.
    pub fn terminate(self) -> (ExitStatus, Vec<String>) {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(20))
    }

    /// Sends signal `name` (`TERM`, `INT`, ...) and returns at once.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success());
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// Waits up to `timeout` for the exit (panics past it); returns the status and what the
    /// server printed after start-up (and after any line a `wait_for_line` consumed).
    pub fn wait_exit(mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            lines.push(line);
        }
        (status, lines)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `name=value` in a text log line.
pub fn log_field<'l>(line: &'l str, name: &str) -> Option<&'l str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

/// A fresh data directory under the system's temp dir, removed when dropped.
pub struct DataDir(pub std::path::PathBuf);

impl DataDir {
    pub fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("hourtally-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        DataDir(p)
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }

    /// The journal's first segment file.
    pub fn segment(&self) -> std::path::PathBuf {
        self.0.join("journal").join(format!("{:020}.htj", 0))
    }

    /// Makes this the data directory an earlier run of a ring of `retention_hours` slots
    /// left: its journal holds `events` (in groups of at most `MAX_GROUP`), replayed at the
    /// next start.
    pub fn with_journal(&self, retention_hours: u32, events: &[hourtally::event::Event]) {
        std::fs::create_dir_all(self.0.join("journal")).expect("mkdir");
        std::fs::write(
            self.0.join("meta"),
            format!("hourtally-data 1\nretention_hours={retention_hours}\n"),
        )
        .expect("meta");
        let mut segment = Vec::new();
        for (k, group) in events.chunks(hourtally::record::MAX_GROUP).enumerate() {
            let first = (k * hourtally::record::MAX_GROUP) as u64;
            hourtally::record::encode_group(&mut segment, first, group);
        }
        std::fs::write(self.segment(), segment).expect("write the segment");
    }
}

/// Sleeps into the next hour if this one ends within `margin`, so that a test that posts to
/// "the current hour" (or reads hours relative to it) does not straddle a boundary.
pub fn not_near_an_hour_boundary(margin: Duration) {
    const HOUR: u64 = hourtally::event::MILLIS_PER_HOUR;
    let left = HOUR - now_ms() % HOUR;
    if left < margin.as_millis() as u64 {
        std::thread::sleep(Duration::from_millis(left + 50));
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary with `args` until it exits, and returns its exit code and stderr: for a
/// start that must be refused. One that starts instead is killed after `wait` (exit code
/// `None`).
pub fn exit_of(args: &[&str], wait: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hourtally"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hourtally");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + wait;
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, reader.join().expect("stderr reader"))
}

pub mod client;
pub mod cluster;
pub mod impair;
pub mod nats;
pub mod netns;
pub mod partitioned;
pub mod ranges;
