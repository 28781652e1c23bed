//! A link that delays and loses packets, for fault tests on a kernel without `netem` (`tc
//! qdisc ... netem` fails here): a pair of TUN devices, one in each host's namespace and
//! addressed like a veth pair (`common::netns`), and a thread per direction in the test
//! process that reads each IP packet the kernel routes into one device and writes it into the
//! other, where the kernel receives it. While the [`Impairment`] is on, a packet is dropped
//! with probability [`LOSS_PER_MILLION`] / 10⁶, else written after a uniformly random delay in
//! [`DELAY_US`] (held in a timer heap, so packets are reordered, as netem's jitter reorders
//! them); while it is off, a packet is written at once. The hosts' processes exchange real
//! packets over real sockets; only the wire between them is the test's.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A packet's chance of being dropped while impaired: 5 %.
pub const LOSS_PER_MILLION: u64 = 50_000;
/// The delay of a packet that is not dropped, while impaired: 200 ± 100 ms.
pub const DELAY_US: std::ops::RangeInclusive<u64> = 100_000..=300_000;

/// The longest a forwarder sleeps before it looks at its stop flag again.
const TICK: Duration = Duration::from_millis(50);

/// Whether the links built with it are impaired now, and what their forwarders did. Shared
/// by every impaired link of a test.
pub struct Impairment {
    on: AtomicBool,
    /// Each direction of each link draws from its own generator, seeded from this.
    seed: u64,
    at_once: AtomicU64,
    delayed: AtomicU64,
    dropped: AtomicU64,
}

/// Packets the forwarders handled, counted over every impaired link and direction.
#[derive(Debug, Clone, Copy)]
pub struct Packets {
    /// Written at once (the impairment was off).
    pub at_once: u64,
    pub delayed: u64,
    pub dropped: u64,
}

impl Impairment {
    /// Off at first.
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Impairment {
            on: AtomicBool::new(false),
            seed,
            at_once: AtomicU64::new(0),
            delayed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Turns the delay and the loss on or off (packets held already keep their time).
    pub fn set(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn packets(&self) -> Packets {
        Packets {
            at_once: self.at_once.load(Ordering::Relaxed),
            delayed: self.delayed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// A TUN device (IP packets without the packet-information header) created in the test's
/// namespace; the kernel deletes it when its file is closed, wherever it was moved since.
pub struct Tun {
    file: File,
}

impl Tun {
    /// Creates the device `name` (at most 15 bytes), down and without an address, its file
    /// non-blocking. Move it with `ip link set <name> netns <ns>`: the file stays its own.
    pub fn new(name: &str) -> Tun {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .expect("open /dev/net/tun (the fault tests need root)");
        assert!(
            name.len() < libc::IFNAMSIZ,
            "interface name {name:?} too long"
        );
        // SAFETY: `ifreq` is plain data (a name array and a union of integers, addresses and
        // pointers), for which all zero bytes are a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (to, from) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *to = from as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: the fd is open (owned by `file`), and TUNSETIFF reads and writes one
        // `struct ifreq`, which `req` is, alive and exclusively borrowed for the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        assert!(
            rc == 0,
            "TUNSETIFF {name}: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: F_GETFL and F_SETFL take and return plain integers on an open fd.
        let rc = unsafe {
            let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK)
        };
        assert!(rc == 0, "O_NONBLOCK: {}", std::io::Error::last_os_error());
        Tun { file }
    }
}

/// The two forwarder threads of one link; dropping it stops them and closes both devices.
pub struct Forwarder {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Forwards packets both ways between `a` and `b` (the two ends of link number `link`, which
/// seeds its generators) under `impairment`.
pub fn forward(a: Tun, b: Tun, impairment: &Arc<Impairment>, link: u64) -> Forwarder {
    let stop = Arc::new(AtomicBool::new(false));
    let (a, b) = (Arc::new(a.file), Arc::new(b.file));
    let threads = [(a.clone(), b.clone(), 0), (b, a, 1)]
        .into_iter()
        .map(|(from, to, direction)| {
            let (impairment, stop) = (impairment.clone(), stop.clone());
            let mut rng =
                Rng(impairment.seed ^ ((link << 1) | direction).wrapping_mul(0x9e37_79b9));
            std::thread::Builder::new()
                .name(format!("impair-{link}-{direction}"))
                .spawn(move || run(&from, &to, &impairment, &mut rng, &stop))
                .expect("a forwarder thread")
        })
        .collect();
    Forwarder { stop, threads }
}

/// One direction: reads what `from` holds, drops or holds each packet, and writes each held
/// packet into `to` once its time has come, until `stop`.
fn run(from: &File, to: &File, impairment: &Impairment, rng: &mut Rng, stop: &AtomicBool) {
    // (when, a tie-breaker, the packet)
    let mut held: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>> = BinaryHeap::new();
    let mut n = 0u64;
    let mut buf = vec![0u8; 65_536];
    // A write into a device that is down fails (EIO): that packet is lost, as on a cut wire.
    let send = |p: &[u8]| {
        let _ = (&*to).write(p);
    };
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while held.peek().is_some_and(|Reverse((when, ..))| *when <= now) {
            let Some(Reverse((_, _, p))) = held.pop() else {
                break;
            };
            send(&p);
        }
        let wait = held
            .peek()
            .map_or(TICK, |Reverse((when, ..))| {
                when.saturating_duration_since(now)
            })
            .min(TICK);
        if !readable(from, wait) {
            continue;
        }
        loop {
            let len = match (&*from).read(&mut buf) {
                Ok(len) => len,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // WouldBlock: all read; anything else: the device is going away.
                Err(_) => break,
            };
            let p = &buf[..len];
            if !impairment.on.load(Ordering::Relaxed) {
                impairment.at_once.fetch_add(1, Ordering::Relaxed);
                send(p);
            } else if rng.below(1_000_000) < LOSS_PER_MILLION {
                impairment.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                impairment.delayed.fetch_add(1, Ordering::Relaxed);
                let span = DELAY_US.end() - DELAY_US.start() + 1;
                let delay = Duration::from_micros(DELAY_US.start() + rng.below(span));
                n += 1;
                held.push(Reverse((Instant::now() + delay, n, p.to_vec())));
            }
        }
    }
}

/// Waits up to `wait` (rounded up to a millisecond) for `f` to hold a packet.
fn readable(f: &File, wait: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `pfd` is one valid `pollfd`, alive for the call, and its fd is open (`f`).
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    rc > 0 && pfd.revents & libc::POLLIN != 0
}

/// splitmix64: enough randomness for a coin and a delay, and repeatable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (the modulo's bias is far below what matters here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
