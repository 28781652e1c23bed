//! Cluster mode under network partitions, as Jepsen tests them: hosts of their own on one
//! machine (a network namespace each, a link between every two, `common::netns`), three NATS
//! nodes (one JetStream cluster, R=3) and two hourtally servers, a load whose every answer is
//! recorded, and links cut and healed. After healing, every server must answer exactly the
//! acknowledged events (those that got no answer may count or not), and no read may have
//! answered counts below what was acknowledged before it was sent.

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::cluster::{assert_within, fresh_counts, serial, stream_leader_at, wait_until, Loader};
use common::nats::nats_server;
use common::netns::Net;
use common::{now_ms, parse_counts, TestServer};

const NODES: [&str; 3] = ["n0", "n1", "n2"];

/// The NATS nodes, killed on drop.
struct Nats {
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
fn start_nats(net: &Net, tag: &str) -> Nats {
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
fn urls(net: &Net, host: Option<&str>, nodes: &[&str]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| format!("nats://{}:4222", net.addr(host, n)))
        .collect()
}

/// A hourtally server on `host`, with the NATS nodes `nodes` as its `--nats`.
fn server(net: &Net, host: &str, nodes: &[&str]) -> TestServer {
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

/// A server that reaches only the stream's leader, while that node is cut off from the other
/// two NATS nodes (and from the other server), must not answer `fresh=1` from the leader's
/// stale copy: every `200` it gives counts at least every event acknowledged before the read
/// was sent; otherwise it answers `504`. Before, its fresh reads asked for the stream's last
/// sequence with a stream-info request, which the cut-off node answered from its copy: `200`
/// with frozen counts for 10–16 s.
#[test]
fn a_fresh_read_through_a_cut_off_stream_leader_never_answers_stale_counts() {
    let _serial = serial();
    let hosts = ["n0", "n1", "n2", "s0", "s1"];
    let net = Net::new("p", &hosts);
    let _nats = start_nats(&net, "stale");
    let s1 = server(&net, "s1", &NODES);
    let leader = stream_leader_at(urls(&net, None, &NODES), "hourtally").expect("a leader");
    let leader = NODES
        .iter()
        .copied()
        .find(|n| *n == leader)
        .expect("the leader is one of the nodes");
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != leader).collect();
    // s0 reaches only the leader's node.
    for o in &others {
        net.set_link("s0", o, false);
    }
    let s0 = server(&net, "s0", &[leader]);
    let ts = now_ms();
    let load = Loader::start(&s1, ts, "p", u64::MAX);
    wait_until("load", Duration::from_secs(30), || {
        load.acked_so_far() > 500
    });
    // The partition: the leader's node loses the other two and s1.
    for o in &others {
        net.set_link(leader, o, false);
    }
    net.set_link(leader, "s1", false);
    let (mut fresh, mut refused, mut stale) = (0u64, 0u64, Vec::new());
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        let acked_before = load.acked_so_far();
        let r = s0.get(&format!("/analytics?timestamp={ts}&fresh=1"));
        match r.status {
            200 => {
                let users = parse_counts(&r.body).0;
                if users < acked_before {
                    stale.push((users, acked_before));
                } else {
                    fresh += 1;
                }
            }
            504 => refused += 1,
            _ => panic!("{r:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for o in &others {
        net.set_link(leader, o, true);
        net.set_link("s0", o, true);
    }
    net.set_link(leader, "s1", true);
    let t = load.finish();
    println!(
        "stale leader: acknowledged {}, refused {}, unanswered {}; s0's fresh reads during the partition: {fresh} current, {refused} 504, {} stale",
        t.acked(),
        t.refused,
        t.unanswered,
        stale.len()
    );
    assert!(
        stale.is_empty(),
        "fresh reads answered stale counts (counted, acknowledged before): {stale:?}"
    );
    for (name, s) in [("s0", &s0), ("s1", &s1)] {
        let mut got = (0, 0, 0);
        wait_until(
            &format!("{name} converges"),
            Duration::from_secs(60),
            || {
                let r = s.get(&format!("/analytics?timestamp={ts}&fresh=1"));
                r.status == 200 && {
                    got = parse_counts(&r.body);
                    got.0 >= t.acked()
                }
            },
        );
        println!("stale leader: {name} counts {got:?}");
        assert_within(fresh_counts(s, ts), t, name);
    }
}

/// Runs a load on both servers (each on every NATS node), cuts the links `cut` names (given
/// the stream's leader and the two other nodes) for `hold`, checking every fresh read on both
/// servers meanwhile, heals, and checks that both count exactly what was acknowledged.
/// Prints what each server's clients saw.
fn scenario(tag: &str, hold: Duration, cut: impl Fn(&str, &[&str]) -> Vec<(String, String)>) {
    let _serial = serial();
    let hosts = ["n0", "n1", "n2", "s0", "s1"];
    let net = Net::new(tag, &hosts);
    let _nats = start_nats(&net, tag);
    let s0 = server(&net, "s0", &NODES);
    let s1 = server(&net, "s1", &NODES);
    let leader = stream_leader_at(urls(&net, None, &NODES), "hourtally").expect("a leader");
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != leader).collect();
    let ts = now_ms();
    let loads = [
        Loader::start(&s0, ts, &format!("{tag}a"), u64::MAX),
        Loader::start(&s1, ts, &format!("{tag}b"), u64::MAX),
    ];
    wait_until("load", Duration::from_secs(30), || {
        loads.iter().all(|l| l.acked_so_far() > 300)
    });
    let links = cut(&leader, &others);
    for (a, b) in &links {
        net.set_link(a, b, false);
    }
    let mut stale = Vec::new();
    let until = Instant::now() + hold;
    while Instant::now() < until {
        let acked_before: u64 = loads.iter().map(Loader::acked_so_far).sum();
        for s in [&s0, &s1] {
            let r = s.get(&format!("/analytics?timestamp={ts}&fresh=1"));
            match r.status {
                200 if parse_counts(&r.body).0 < acked_before => {
                    stale.push((parse_counts(&r.body).0, acked_before));
                }
                200 | 504 => {}
                _ => panic!("{r:?}"),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for (a, b) in &links {
        net.set_link(a, b, true);
    }
    let [l0, l1] = loads;
    let (t0, t1) = (l0.finish(), l1.finish());
    let t = t0.add(t1);
    for (name, tally) in [("s0", t0), ("s1", t1)] {
        println!(
            "{tag}: {name}'s clients: acknowledged {}, refused {}, unanswered {}",
            tally.acked(),
            tally.refused,
            tally.unanswered
        );
    }
    assert!(stale.is_empty(), "{tag}: stale fresh reads: {stale:?}");
    for (name, s) in [("s0", &s0), ("s1", &s1)] {
        wait_until(
            &format!("{tag}: {name} converges"),
            Duration::from_secs(120),
            || {
                let r = s.get(&format!("/analytics?timestamp={ts}&fresh=1"));
                r.status == 200 && parse_counts(&r.body).0 >= t.acked()
            },
        );
        let got = fresh_counts(s, ts);
        println!("{tag}: {name} counts {got:?}");
        assert_within(got, t, &format!("{tag}: {name}"));
    }
}

/// One server cut from every NATS node for 20 s: its POSTs wait for the log, then are
/// closed unanswered or refused (503); the other server goes on; after healing, the cut
/// server publishes what it held (with the same de-duplication ids) and both count exactly.
#[test]
fn a_server_cut_from_every_nats_node_for_20_s_loses_no_acknowledged_event() {
    scenario("cut", Duration::from_secs(20), |_, _| {
        NODES
            .iter()
            .map(|n| ("s0".to_owned(), (*n).to_owned()))
            .collect()
    });
}

/// A split that leaves s0 able to reach only the minority node (the leader, cut off from the
/// other two), and s1 only the majority: s0's POSTs cannot be acknowledged, its fresh reads
/// answer 504, s1 goes on with the new leader; after healing, both count exactly.
#[test]
fn a_split_that_leaves_a_server_only_the_minority_node_loses_no_acknowledged_event() {
    scenario("split", Duration::from_secs(15), |leader, others| {
        let mut links = Vec::new();
        for o in others {
            links.push((leader.to_owned(), (*o).to_owned()));
            links.push(("s0".to_owned(), (*o).to_owned()));
        }
        links.push((leader.to_owned(), "s1".to_owned()));
        links
    });
}

/// The stream's leader node isolated from the other two NATS nodes for 15 s (the servers
/// still reach every node): the other two elect a new leader; publishes through the old one
/// are not acknowledged and are retried with their ids; after healing, both servers count
/// exactly, and no fresh read meanwhile answered stale counts.
#[test]
fn the_stream_leader_isolated_from_the_other_nats_nodes_loses_no_acknowledged_event() {
    scenario("iso", Duration::from_secs(15), |leader, others| {
        others
            .iter()
            .map(|o| (leader.to_owned(), (*o).to_owned()))
            .collect()
    });
}

/// A server whose NATS node is cut off from the other two while its own link to that node is
/// up (its pings are answered) must not stay there: once its log has refused events for
/// `--log-timeout-s`, it moves to another node and takes POSTs again while the partition
/// lasts. Before, it answered 503 until the partition healed.
#[test]
fn a_server_on_a_cut_off_nats_node_moves_to_another_and_takes_posts_again() {
    let _serial = serial();
    let hosts = ["n0", "n1", "n2", "s0"];
    let net = Net::new("mv", &hosts);
    let _nats = start_nats(&net, "move");
    let leader = {
        // The stream exists once a server made it: a first server, stopped once ready.
        let first = server(&net, "s0", &NODES);
        let leader = stream_leader_at(urls(&net, None, &NODES), "hourtally").expect("a leader");
        drop(first);
        leader
    };
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != leader).collect();
    // s0 starts while it reaches only the leader's node, so that its client is on it...
    for o in &others {
        net.set_link("s0", o, false);
    }
    let nats = urls(&net, Some("s0"), &NODES).join(",");
    let s0 = TestServer::start_in_netns(
        &net.ns("s0"),
        net.addr(None, "s0").into(),
        &["--nats", &nats, "--workers", "1", "--log-timeout-s", "3"],
    );
    // ...then reaches every node again, and the leader's node loses the other two.
    for o in &others {
        net.set_link("s0", o, true);
        net.set_link(&leader, o, false);
    }
    let ts = now_ms();
    let started = Instant::now();
    let mut i = 0u64;
    let moved = loop {
        // A POST may wait for the log and be closed unanswered: no answer is not a failure.
        let mut c = s0.connect();
        c.write(
            format!("POST /analytics?timestamp={ts}&user=mv{i}&click HTTP/1.1\r\nHost: t\r\n\r\n")
                .as_bytes(),
        );
        i += 1;
        match c.try_response(false).map(|r| r.status) {
            Some(204) if started.elapsed() > Duration::from_secs(5) => {
                break Some(started.elapsed())
            }
            Some(204 | 503) | None => {}
            Some(other) => panic!("status {other}"),
        }
        if started.elapsed() > Duration::from_secs(40) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for o in &others {
        net.set_link(&leader, o, true);
    }
    let moved =
        moved.expect("s0 took no POST in 40 s of the partition: it stayed on the cut-off node");
    println!("move: s0 took POSTs again {moved:?} after the partition began");
}
