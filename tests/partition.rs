//! Cluster mode under network partitions, as Jepsen tests them: hosts of their own on one
//! machine (a network namespace each, a link between every two, `common::netns`), three NATS
//! nodes (one JetStream cluster, R=3) and two hourtally servers, a load whose every answer is
//! recorded, and links cut and healed. After healing, every server must answer exactly the
//! acknowledged events (those that got no answer may count or not), and no read may have
//! answered counts below what was acknowledged before it was sent.
//!
//! `cargo test` holds each fault for 15–20 s; `HOURTALLY_PARTITION_LONG=N` holds each N times
//! as long (`scripts/partition-long.sh` runs the file so, several times over).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::cluster::{
    assert_within, fresh_counts, serial, stream_leader_at, wait_until, Loader, Tally,
};
use common::impair::Impairment;
use common::netns::Net;
use common::partitioned::{hold, server, start_nats, urls, NODES};
use common::{now_ms, parse_counts, Conn, Response, TestServer};

/// `GET /analytics?timestamp={ts}&fresh=1` on server `name`. One that gives no answer fails
/// the test, named: a server that stopped said why on its stderr, above.
fn fresh_read(s: &TestServer, name: &str, ts: u64) -> Response {
    let answer = TcpStream::connect(s.addr).ok().and_then(|stream| {
        let mut c = Conn::new(stream);
        let get = format!("GET /analytics?timestamp={ts}&fresh=1 HTTP/1.1\r\nHost: t\r\n\r\n");
        c.reader.get_mut().write_all(get.as_bytes()).ok()?;
        c.try_response(false)
    });
    answer.unwrap_or_else(|| {
        panic!("{name} gave no answer to a fresh read: did it stop? (its stderr, above, says why)")
    })
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
    let until = Instant::now() + hold(Duration::from_secs(15));
    while Instant::now() < until {
        let acked_before = load.acked_so_far();
        let r = fresh_read(&s0, "s0", ts);
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
                let r = fresh_read(s, name, ts);
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

/// Links between hosts, named by host, given the stream's leader and the other two nodes.
type Links = fn(&str, &[&str]) -> Vec<(String, String)>;

/// What a [`scenario`] does to the network while the load runs.
enum Fault {
    /// Cuts these links.
    Cut(Links),
    /// Delays and drops packets on every link between a NATS node and another host (the
    /// test's own links excepted), as `common::impair` does.
    Impair,
}

/// Runs a load on both servers (each on every NATS node), brings about `fault` for `hold`,
/// checking every fresh read on both servers meanwhile, heals, and checks that both count
/// exactly what was acknowledged. Prints what each server's clients saw.
fn scenario(tag: &str, hold: Duration, fault: Fault) {
    let _serial = serial();
    let hosts = ["n0", "n1", "n2", "s0", "s1"];
    let impairment = Impairment::new(seed());
    let net = match fault {
        Fault::Cut(_) => Net::new(tag, &hosts),
        Fault::Impair => {
            let nats_links: Vec<(&str, &str)> = NODES
                .iter()
                .enumerate()
                .flat_map(|(i, n)| hosts.iter().skip(i + 1).map(move |h| (*n, *h)))
                .collect();
            println!(
                "{tag}: {} links through the test's forwarder, seed {} (HOURTALLY_PARTITION_SEED)",
                nats_links.len(),
                impairment.seed()
            );
            Net::impaired(tag, &hosts, &nats_links, &impairment)
        }
    };
    let _nats = start_nats(&net, tag);
    let s0 = server(&net, "s0", &NODES);
    let s1 = server(&net, "s1", &NODES);
    let leader = stream_leader_at(urls(&net, None, &NODES), "hourtally").expect("a leader");
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != leader).collect();
    let ts = now_ms();
    // (server, its loaders)
    let loads: Vec<(&str, Vec<Loader>)> = [("s0", &s0, "a"), ("s1", &s1, "b")]
        .into_iter()
        .map(|(name, s, p)| {
            let loaders = match fault {
                Fault::Cut(_) => vec![Loader::start(s, ts, &format!("{tag}{p}"), u64::MAX)],
                // Slow answers are no reason to stop posting; several connections keep
                // several batches on their way to the log at once.
                Fault::Impair => (0..4)
                    .map(|k| Loader::start_reconnecting(s, ts, &format!("{tag}{p}{k}-")))
                    .collect(),
            };
            (name, loaders)
        })
        .collect();
    let acked_so_far = || -> u64 {
        loads
            .iter()
            .flat_map(|(_, ls)| ls.iter().map(Loader::acked_so_far))
            .sum()
    };
    wait_until("load", Duration::from_secs(30), || {
        loads
            .iter()
            .all(|(_, ls)| ls.iter().map(Loader::acked_so_far).sum::<u64>() > 300)
    });
    let links = match fault {
        Fault::Cut(cut) => cut(&leader, &others),
        Fault::Impair => Vec::new(),
    };
    for (a, b) in &links {
        net.set_link(a, b, false);
    }
    impairment.set(matches!(fault, Fault::Impair));
    let began = acked_so_far();
    let mut stale = Vec::new();
    let (mut current, mut refused) = (0u64, 0u64);
    let until = Instant::now() + hold;
    while Instant::now() < until {
        let acked_before = acked_so_far();
        for (name, s) in [("s0", &s0), ("s1", &s1)] {
            let r = fresh_read(s, name, ts);
            match r.status {
                200 if parse_counts(&r.body).0 < acked_before => {
                    stale.push((parse_counts(&r.body).0, acked_before));
                }
                200 => current += 1,
                504 => refused += 1,
                _ => panic!("{r:?}"),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let during = acked_so_far() - began;
    for (a, b) in &links {
        net.set_link(a, b, true);
    }
    impairment.set(false);
    let tallies: Vec<(&str, Tally)> = loads
        .into_iter()
        .map(|(name, ls)| {
            let tally = ls
                .into_iter()
                .map(Loader::finish)
                .fold(Tally::default(), Tally::add);
            (name, tally)
        })
        .collect();
    let t = tallies
        .iter()
        .fold(Tally::default(), |all, (_, tally)| all.add(*tally));
    for (name, tally) in tallies {
        println!(
            "{tag}: {name}'s clients: acknowledged {}, refused {}, unanswered {}",
            tally.acked(),
            tally.refused,
            tally.unanswered
        );
    }
    println!(
        "{tag}: during the {hold:?} fault: {during} acknowledged; fresh reads {current} current, {refused} 504, {} stale",
        stale.len()
    );
    if let Fault::Impair = fault {
        let p = impairment.packets();
        println!(
            "{tag}: packets on the impaired links: {} delayed, {} dropped, {} passed at once (before and after)",
            p.delayed, p.dropped, p.at_once
        );
    }
    assert!(stale.is_empty(), "{tag}: stale fresh reads: {stale:?}");
    for (name, s) in [("s0", &s0), ("s1", &s1)] {
        wait_until(
            &format!("{tag}: {name} converges"),
            Duration::from_secs(120),
            || {
                let r = fresh_read(s, name, ts);
                r.status == 200 && parse_counts(&r.body).0 >= t.acked()
            },
        );
        let got = fresh_counts(s, ts);
        println!("{tag}: {name} counts {got:?}");
        assert_within(got, t, &format!("{tag}: {name}"));
    }
}

/// The seed of the impaired links' coin flips and delays: `HOURTALLY_PARTITION_SEED`, else
/// the clock (printed, to run a failure again with it; the threads' timing still differs).
fn seed() -> u64 {
    std::env::var("HOURTALLY_PARTITION_SEED").map_or_else(
        |_| now_ms(),
        |s| s.parse().expect("HOURTALLY_PARTITION_SEED: a number"),
    )
}

/// One server cut from every NATS node for 20 s: its POSTs wait for the log, then are
/// closed unanswered or refused (503); the other server goes on; after healing, the cut
/// server publishes what it held (with the same de-duplication ids) and both count exactly.
#[test]
fn a_server_cut_from_every_nats_node_for_20_s_loses_no_acknowledged_event() {
    scenario(
        "cut",
        hold(Duration::from_secs(20)),
        Fault::Cut(|_, _| {
            NODES
                .iter()
                .map(|n| ("s0".to_owned(), (*n).to_owned()))
                .collect()
        }),
    );
}

/// A split that leaves s0 able to reach only the minority node (the leader, cut off from the
/// other two), and s1 only the majority: s0's POSTs cannot be acknowledged, its fresh reads
/// answer 504, s1 goes on with the new leader; after healing, both count exactly.
#[test]
fn a_split_that_leaves_a_server_only_the_minority_node_loses_no_acknowledged_event() {
    scenario(
        "split",
        hold(Duration::from_secs(15)),
        Fault::Cut(|leader, others| {
            let mut links = Vec::new();
            for o in others {
                links.push((leader.to_owned(), (*o).to_owned()));
                links.push(("s0".to_owned(), (*o).to_owned()));
            }
            links.push((leader.to_owned(), "s1".to_owned()));
            links
        }),
    );
}

/// The stream's leader node isolated from the other two NATS nodes for 15 s (the servers
/// still reach every node): the other two elect a new leader; publishes through the old one
/// are not acknowledged and are retried with their ids; after healing, both servers count
/// exactly, and no fresh read meanwhile answered stale counts.
#[test]
fn the_stream_leader_isolated_from_the_other_nats_nodes_loses_no_acknowledged_event() {
    scenario(
        "iso",
        hold(Duration::from_secs(15)),
        Fault::Cut(|leader, others| {
            others
                .iter()
                .map(|o| (leader.to_owned(), (*o).to_owned()))
                .collect()
        }),
    );
}

/// Every link of every NATS node (to the other nodes and to both servers) delays each packet
/// by 200 ± 100 ms and drops 5 % of them for 20 s, under load on both servers: publishes,
/// pings and the nodes' own replication all wait and retry; POSTs answer late, are refused
/// (503) or go unanswered, fresh reads answer 504 or current counts; after the links are
/// clean again, both servers count exactly what was acknowledged.
#[test]
fn a_200_ms_delay_with_5_percent_loss_on_every_nats_link_loses_no_acknowledged_event() {
    scenario("delay", hold(Duration::from_secs(20)), Fault::Impair);
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
