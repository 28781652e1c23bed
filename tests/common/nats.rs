//! Real `nats-server` processes for the cluster tests: a JetStream cluster of three nodes on
//! free loopback ports with store directories of their own, killed when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `n` distinct ports the OS says are free now. All are held until all are chosen: a port
/// taken and let go one at a time can come back for the next call (a node once got the same
/// port as client and monitor port, and its nats-server could not start).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("a bound port").port())
        .collect()
}

struct Node {
    name: String,
    client: u16,
    route: u16,
    monitor: u16,
    store: PathBuf,
    child: Option<Child>,
}

/// The nats-server binary the tests run: `HOURTALLY_NATS_SERVER` (set by `scripts/test.sh`),
/// else the one `scripts/current-nats.sh` installs, else `nats-server` on the `PATH`.
pub fn nats_server() -> PathBuf {
    if let Some(bin) = std::env::var_os("HOURTALLY_NATS_SERVER") {
        return bin.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/nats-venv/bin/nats-server");
    if venv.exists() {
        return venv;
    }
    "nats-server".into()
}

/// A JetStream cluster of `nats-server` processes.
pub struct NatsCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
    /// The nats-server binary.
    bin: PathBuf,
}

impl NatsCluster {
    /// Starts `n` nodes (1 or 3) of [`nats_server`] and waits until each answers its health
    /// check.
    pub fn start(tag: &str, n: usize) -> Self {
        Self::start_with(nats_server(), tag, n)
    }

    /// [`start`](Self::start), with the nats-server binary `bin`.
    pub fn start_with(bin: PathBuf, tag: &str, n: usize) -> Self {
        let dir = std::env::temp_dir().join(format!("hourtally-nats-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ports = free_ports(3 * n);
        let nodes = (0..n)
            .map(|i| Node {
                name: format!("{tag}-n{i}"),
                client: ports[3 * i],
                route: ports[3 * i + 1],
                monitor: ports[3 * i + 2],
                store: dir.join(format!("n{i}")),
                child: None,
            })
            .collect();
        let mut cluster = NatsCluster { nodes, dir, bin };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.wait_healthy(i);
        }
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let routes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| format!("nats://127.0.0.1:{}", n.route))
            .collect();
        let node = &self.nodes[i];
        let mut cmd = Command::new(&self.bin);
        cmd.args(["-a", "127.0.0.1", "-p", &node.client.to_string()])
            .args(["-n", &node.name, "-m", &node.monitor.to_string()])
            .args(["-js", "-sd", node.store.to_str().expect("utf-8 path")]);
        if self.nodes.len() > 1 {
            cmd.args(["--cluster_name", "hourtally-test"])
                .args(["--cluster", &format!("nats://127.0.0.1:{}", node.route)])
                .args(["--routes", &routes.join(",")]);
        }
        // Its log, appended across restarts, is printed if it never becomes healthy.
        let _ = std::fs::create_dir_all(&self.dir);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .expect("a nats-server log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server (the test script installs it)");
        self.nodes[i].child = Some(child);
    }

    /// Waits (bounded) until node `i` says it is healthy, JetStream included.
    fn wait_healthy(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = self.nodes[i].monitor;
        while Instant::now() < deadline {
            if http_status(port, "/healthz") == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        panic!(
            "nats-server {} never became healthy (ports: client {}, route {}, monitor {}); the end of its log:\n{}",
            self.nodes[i].name,
            self.nodes[i].client,
            self.nodes[i].route,
            port,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }

    /// Where node `i` writes its log (standard error).
    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}.log", self.nodes[i].name))
    }

    /// `nats://...` of every node, comma-separated (for `--nats`).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The URL of node `i` alone.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The node name of node `i` (as JetStream names a stream's leader).
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// Node `i`'s JetStream store directory (`-sd`).
    pub fn store(&self, i: usize) -> &std::path::Path {
        &self.nodes[i].store
    }

    /// Kills node `i` with SIGKILL.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again on the same ports and store, without waiting.
    pub fn restart(&mut self, i: usize) {
        self.kill9(i);
        self.spawn(i);
    }

    /// Waits until node `i` is healthy again.
    pub fn wait(&self, i: usize) {
        self.wait_healthy(i);
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The status code of `GET path` on 127.0.0.1:`port`, if it answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
