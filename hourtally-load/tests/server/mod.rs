//! Starts the real `hourtally` server binary on a free loopback port for a test, and kills it
//! when the handle drops.
//!
//! Cargo builds only this package's binaries for its tests, so the server is found next to
//! `hourtally-load` in the same target directory: build it first (`cargo build --bins`, as
//! `scripts/test.sh` does).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
}

/// `target/<profile>/hourtally`, beside this package's `hourtally-load`.
fn server_binary() -> PathBuf {
    let load = PathBuf::from(env!("CARGO_BIN_EXE_hourtally-load"));
    let bin = load.with_file_name(format!("hourtally{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the server binary {} is missing: run `cargo build --bins` (at the workspace root, \
         same profile) before these tests",
        bin.display()
    );
    bin
}

impl TestServer {
    /// Starts `hourtally --listen 127.0.0.1:0 ARGS...` and reads its address from the
    /// `addr=` field of its `listening` log line.
    pub fn start(args: &[&str]) -> Self {
        let child = Command::new(server_binary())
            .args(["--listen", "127.0.0.1:0", "--ephemeral"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start hourtally");
        // Owned by the guard from here on, so a failed start never leaves a server behind.
        let mut server = TestServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let stdout = server.child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Reads every line, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server printed its start-up line");
        server.addr = first
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .filter(|_| first.contains(" listening "))
            .unwrap_or_else(|| panic!("unexpected start-up line: {first}"))
            .parse()
            .expect("address in start-up line");
        // It serves once its writer says `ready` (after replaying a journal, if it had one).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(" ready") => break server,
                Ok(_) => {}
                Err(_) => panic!("the server never said it was ready"),
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
