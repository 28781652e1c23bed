//! The cluster of `tests/partition.rs`: three NATS nodes and hourtally servers, each on a host
//! of its own (a network namespace of `netns::Net`), so that a test can cut, split and
//! impair the links between them.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use super::nats::nats_server;
use super::netns::Net;
use super::TestServer;

/// The NATS nodes' hosts.
pub const NODES: [&str; 3] = ["n0", "n1", "n2"];

/// How long a fault lasts: `short`, times `HOURTALLY_PARTITION_LONG` if set.
pub fn hold(short: Duration) -> Duration {
    let factor = std::env::var("HOURTALLY_PARTITION_LONG").map_or(1, |f| {
        f.parse()
            .unwrap_or_else(|_| panic!("HOURTALLY_PARTITION_LONG={f:?}: a whole factor"))
    });
    short * factor
}

/// The NATS nodes, killed on drop.
pub struct Nats {
    children: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Nats {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three NATS nodes, one per host `n0`–`n2`, routed to each other over their own links.
pub fn start_nats(net: &Net, tag: &str) -> Nats {
    let dir =
        std::env::temp_dir().join(format!("hourtally-partition-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory for NATS");
    let bin = nats_server();
    let children = NODES
        .iter()
        .map(|node| {
            let routes: Vec<String> = NODES
                .iter()
                .filter(|other| *other != node)
                .map(|other| format!("nats://{}:6222", net.addr(Some(node), other)))
                .collect();
            let args: Vec<String> = [
                "-a", "0.0.0.0", "-p", "4222", "-m", "8222", "-n", node, "-js", "-sd",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .chain([
                dir.join(node).display().to_string(),
                "--cluster_name".into(),
                "partition".into(),
                "--cluster".into(),
                "nats://0.0.0.0:6222".into(),
                "--routes".into(),
                routes.join(","),
            ])
            .collect();
            let log = std::fs::File::create(dir.join(format!("{node}.log"))).expect("a log");
            net.spawn(node, Path::new(&bin), &args, log)
        })
        .collect();
    Nats { children, dir }
}

/// The NATS URLs `host` reaches `nodes` at.
pub fn urls(net: &Net, host: Option<&str>, nodes: &[&str]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| format!("nats://{}:4222", net.addr(host, n)))
        .collect()
}

/// A hourtally server on `host`, with the NATS nodes `nodes` as its `--nats`.
pub fn server(net: &Net, host: &str, nodes: &[&str]) -> TestServer {
    let nats = urls(net, Some(host), nodes).join(",");
    TestServer::start_in_netns(
        &net.ns(host),
        net.addr(None, host).into(),
        &[
            "--nats",
            &nats,
            "--workers",
            "1",
            "--fresh-timeout-ms",
            "2000",
        ],
    )
}
