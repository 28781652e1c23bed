//! Hosts on one machine, for fault tests: a Linux network namespace per host, a veth pair
//! between every two hosts (a link of their own, so that any one can be cut) and between the
//! test (the root namespace) and every host. Each link is a /30 of 10.213.0.0/16, a range
//! that exists only inside these namespaces; nothing leaves the machine. Needs root and
//! `ip` (iproute2). Dropping the `Net` deletes the namespaces, and their links with them.
//! [`Net::impaired`] makes some links TUN pairs whose packets the test forwards, and can delay
//! and drop (`common::impair`).

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use super::impair::{self, Impairment};

/// The namespaces and links of one test.
pub struct Net {
    /// Namespace names start with this (`ht<pid>`).
    prefix: String,
    hosts: Vec<String>,
    /// Every link: its two ends (`None`: the test's own, root namespace).
    links: Vec<Link>,
}

struct Link {
    ends: [Option<usize>; 2],
    /// The interface at each end.
    devs: [String; 2],
    /// The address at each end.
    addrs: [Ipv4Addr; 2],
    /// A TUN pair's forwarder threads (`None`: a veth pair).
    forwarder: Option<impair::Forwarder>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2; scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "ip {}: {} (the fault tests need root)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Net {
    /// A namespace per host in `hosts`, fully meshed, each linked to the test too.
    pub fn new(tag: &str, hosts: &[&str]) -> Net {
        Self::build(tag, hosts, &[], None)
    }

    /// [`new`](Self::new), but the links between the hosts `impaired` names are each a pair of
    /// TUN devices whose packets go through `impairment` (`common::impair`): at once while it
    /// is off, delayed or dropped while it is on.
    pub fn impaired(
        tag: &str,
        hosts: &[&str],
        impaired: &[(&str, &str)],
        impairment: &Arc<Impairment>,
    ) -> Net {
        Self::build(tag, hosts, impaired, Some(impairment))
    }

    fn build(
        tag: &str,
        hosts: &[&str],
        impaired: &[(&str, &str)],
        impairment: Option<&Arc<Impairment>>,
    ) -> Net {
        let prefix = format!("ht{}{tag}", std::process::id() % 100_000);
        let mut net = Net {
            prefix,
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            links: Vec::new(),
        };
        for h in 0..hosts.len() {
            let ns = net.ns_of(h);
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        let mut pairs: Vec<[Option<usize>; 2]> =
            (0..hosts.len()).map(|h| [None, Some(h)]).collect();
        for a in 0..hosts.len() {
            for b in a + 1..hosts.len() {
                pairs.push([Some(a), Some(b)]);
            }
        }
        for (k, ends) in pairs.into_iter().enumerate() {
            let addrs = [
                Ipv4Addr::new(10, 213, k as u8, 1),
                Ipv4Addr::new(10, 213, k as u8, 2),
            ];
            // In a host's namespace an end is named after the other end; in the root
            // namespace, after the test and the host, so that tests running at once differ.
            let dev = |end: usize| match (ends[end], ends[1 - end]) {
                (None, Some(other)) => format!("{}{}", net.prefix, hosts[other]),
                (_, Some(other)) => format!("to{}", hosts[other]),
                (_, None) => "toroot".to_owned(),
            };
            let devs = [dev(0), dev(1)];
            let ns0 = ends[0].map(|h| net.ns_of(h));
            let ns1 = ends[1].map(|h| net.ns_of(h));
            let name = |end: usize| ends[end].map(|h| hosts[h]);
            let tun = impairment.filter(|_| {
                impaired.iter().any(|&(a, b)| {
                    [name(0), name(1)] == [Some(a), Some(b)]
                        || [name(0), name(1)] == [Some(b), Some(a)]
                })
            });
            let forwarder = if let (Some(impairment), Some(ns0), Some(ns1)) = (tun, &ns0, &ns1) {
                // Made here under names of this test's, then moved to the hosts and renamed
                // as a veth end would be; the files (the forwarder's) stay valid.
                let tuns = [0, 1].map(|end| {
                    let made = format!("htt{:05}{k:02}{end}", std::process::id() % 100_000);
                    let tun = impair::Tun::new(&made);
                    let ns = [ns0, ns1][end].as_str();
                    ip(&["link", "set", &made, "netns", ns]);
                    ip(&["-n", ns, "link", "set", &made, "name", &devs[end]]);
                    tun
                });
                let [a, b] = tuns;
                Some(impair::forward(a, b, impairment, k as u64))
            } else {
                let mut add = vec!["link", "add", &devs[0]];
                if let Some(ns) = &ns0 {
                    add.extend(["netns", ns.as_str()]);
                }
                add.extend(["type", "veth", "peer", "name", &devs[1]]);
                if let Some(ns) = &ns1 {
                    add.extend(["netns", ns.as_str()]);
                }
                ip(&add);
                None
            };
            for end in 0..2 {
                let ns = [&ns0, &ns1][end];
                let cidr = format!("{}/30", addrs[end]);
                let mut a: Vec<&str> = Vec::new();
                if let Some(ns) = ns {
                    a.extend(["-n", ns.as_str()]);
                }
                let mut addr = a.clone();
                addr.extend(["addr", "add", &cidr, "dev", &devs[end]]);
                ip(&addr);
                let mut up = a;
                up.extend(["link", "set", &devs[end], "up"]);
                ip(&up);
            }
            net.links.push(Link {
                ends,
                devs,
                addrs,
                forwarder,
            });
        }
        net
    }

    fn index(&self, host: &str) -> usize {
        self.hosts
            .iter()
            .position(|h| h == host)
            .unwrap_or_else(|| panic!("no host {host}"))
    }

    fn ns_of(&self, h: usize) -> String {
        format!("{}{}", self.prefix, self.hosts[h])
    }

    /// The namespace of `host`.
    pub fn ns(&self, host: &str) -> String {
        self.ns_of(self.index(host))
    }

    fn link(&self, a: Option<usize>, b: Option<usize>) -> (&Link, usize) {
        self.links
            .iter()
            .find_map(|l| {
                if l.ends == [a, b] {
                    Some((l, 1))
                } else if l.ends == [b, a] {
                    Some((l, 0))
                } else {
                    None
                }
            })
            .expect("every two hosts are linked")
    }

    /// The address at which `from` (a host, or `None` for the test) reaches host `to`.
    pub fn addr(&self, from: Option<&str>, to: &str) -> Ipv4Addr {
        let (link, end) = self.link(from.map(|f| self.index(f)), Some(self.index(to)));
        link.addrs[end]
    }

    /// Cuts (`up` false) or heals the link between hosts `a` and `b`: both ends go down or up.
    pub fn set_link(&self, a: &str, b: &str, up: bool) {
        let (link, _) = self.link(Some(self.index(a)), Some(self.index(b)));
        for end in 0..2 {
            let ns = link.ends[end].map(|h| self.ns_of(h)).expect("a host's end");
            ip(&[
                "-n",
                &ns,
                "link",
                "set",
                &link.devs[end],
                if up { "up" } else { "down" },
            ]);
        }
    }

    /// Starts `program` with `args` in `host`'s namespace, its output into `log`.
    pub fn spawn(
        &self,
        host: &str,
        program: &std::path::Path,
        args: &[String],
        log: std::fs::File,
    ) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(host)])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a program in a namespace")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // The test's own ends first. A deleted namespace lives on while anything still holds
        // it (a killed process's socket whose last packets an impaired link lost kept three
        // for minutes), and so would its links' ends here, with addresses the next `Net`
        // gives out again; deleting one end of a veth pair deletes both.
        for link in &self.links {
            if link.ends[0].is_none() {
                let _ = Command::new("ip")
                    .args(["link", "del", &link.devs[0]])
                    .output();
            }
        }
        // The forwarders: their threads stop and the TUN devices close.
        for link in &mut self.links {
            link.forwarder = None;
        }
        for h in 0..self.hosts.len() {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns_of(h)])
                .output();
        }
    }
}
