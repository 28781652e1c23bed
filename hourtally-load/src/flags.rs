//! The command line: every flag, its help text and its range, and the parsers of shares
//! and durations.

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "hourtally-load",
    version,
    about = "HTTP/1.1 load generator for hourtally: POST clicks/impressions and GET hourly counts \
             (the \"Tapad mix\"), closed loop or open loop (--rate), with latency percentiles.",
    long_about = "HTTP/1.1 load generator for hourtally: POST clicks/impressions and GET hourly \
                  counts (the \"Tapad mix\"), closed loop or open loop (--rate), with latency \
                  percentiles (HdrHistogram, microseconds, 3 significant digits).\n\n\
                  Requests: `POST /analytics?timestamp=T&user=uN&click|impression` and \
                  `GET /analytics?timestamp=T`, on keep-alive connections; with \
                  --other-share, also `HEAD /analytics?timestamp=T`, \
                  `GET /analytics/hours?from=F&to=T` and `GET /metrics`.\n\n\
                  Closed loop (default): each connection writes --pipeline requests in one \
                  write, reads their answers in order, then writes the next batch. Latency: \
                  from the write of the batch to the read of the answer.\n\n\
                  Open loop (--rate): requests leave on a fixed schedule whatever the server \
                  does, and latency is measured from each request's intended send time, not \
                  from when it was actually sent: this corrects for coordinated omission (a \
                  stalled server is charged for every request that should have left during \
                  the stall). One thread drives every connection with epoll (--threads for \
                  more); a connection has one request in flight and queues the ones that fall \
                  due meanwhile. --lag-every N adds POST→GET visibility-lag probes.\n\n\
                  The last stdout line is machine-readable: `RESULT rps=... p50_us=... \
                  p99_us=... errors=...`.\n\n\
                  --verify checks every answer as it arrives (POST: 204 or 503; GET: 200 and \
                  exactly the counts; HEAD: 200, no body, a counts body's Content-Length; \
                  /analytics/hours: 200 and one documented row per hour asked for; /metrics: \
                  200 and hourtally_ metrics; on one connection no hour's counter goes down), \
                  and at the end GETs every touched hour and compares it with the POSTs \
                  answered 204.\n\n\
                  Exit status: 0 success; 1 with --verify, when anything was wrong: a \
                  difference at the end, a wrong answer, a transport or protocol error, or a \
                  request without an answer (without --verify these only show in the \
                  report); 2 bad flags, cannot connect, or no request got an answer."
)]
pub struct Args {
    /// Server address, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,

    /// Keep-alive connections to open.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: u32,

    /// Requests each connection writes in one write before reading their answers (1 = no
    /// pipelining). Open loop (--rate) always uses 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub pipeline: u32,

    /// Seconds to measure (after --warmup). Default 10 unless --requests is given.
    #[arg(long, conflicts_with = "requests", value_parser = positive_f64)]
    pub duration: Option<f64>,

    /// Total requests to measure (instead of --duration).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// Share of requests that are POSTs (0.0-1.0); the rest are GETs. With --other-share,
    /// a share of the requests that share leaves.
    #[arg(long, default_value_t = 0.5, value_parser = share)]
    pub post_share: f64,

    /// Share of requests (0.0-1.0) that are, uniformly, one of `HEAD /analytics?timestamp=T`,
    /// `GET /analytics/hours?from=F&to=T` (1 to 6 hours ending at the request's hour, half
    /// of them asking for CSV, half for JSON) and `GET /metrics`; the rest are the POSTs and
    /// GETs of --post-share. At 0 (the default) nothing more is drawn: a seed gives the same
    /// requests as without this flag.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub other_share: f64,

    /// Share of requests for the current hour (0.0-1.0); the rest pick one of the previous
    /// 24 hours uniformly.
    #[arg(long, default_value_t = 0.95, value_parser = share)]
    pub current_share: f64,

    /// Size of the user space: POSTs use user `uN` with N uniform in 0..users.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub users: u64,

    /// Share of POSTs that are clicks (0.0-1.0); the rest are impressions.
    #[arg(long, default_value_t = 0.5, value_parser = share)]
    pub click_share: f64,

    /// Every POST carries an event id of its own (`&event_id=` and 16 hex digits, random):
    /// what remembering ids costs the server. Each id is new, so every event still counts.
    #[arg(long)]
    pub event_ids: bool,

    /// Open loop: total requests per second, spread evenly over the connections, each sent at
    /// its scheduled time; latency is measured from that intended time (coordinated-omission
    /// correction). Absent: closed loop, as fast as the server answers.
    #[arg(long, value_parser = positive_f64)]
    pub rate: Option<f64>,

    /// Client threads; connections are spread over them round-robin. Closed loop: each
    /// thread reads the answers of one connection and writes its next batch, then moves on;
    /// default min(connections, 2 × available CPUs). Open loop (--rate): each thread drives
    /// its connections with epoll, one request in flight per connection; default 1.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub threads: Option<u32>,

    /// Seed of the random request mix (the same seed gives the same mix of requests).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Check every answer as it arrives against its request (status, body, and on each
    /// connection no hour's counter going down); tally what the server accepted (POSTs
    /// answered 204) per hour, and at the end check that GET answers exactly that for every
    /// touched hour. Exit 1 on a difference, a wrong answer, a transport or protocol error,
    /// or a request without an answer. The end check is absolute: it needs a fresh server
    /// (no other writer to those hours).
    #[arg(long)]
    pub verify: bool,

    /// No live progress line on stderr (it is also off when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,

    /// Seconds of load before measuring starts (not counted in the results).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative_f64)]
    pub warmup: f64,

    /// Seconds a connection waits for an answer (or to write) before it counts a timeout and
    /// reconnects.
    #[arg(long, default_value_t = 10.0, value_parser = positive_f64)]
    pub timeout: f64,

    /// Open loop: when the next scheduled send is less than N µs away, poll the sockets
    /// instead of sleeping in epoll. Sleeps wake up late (the output's "send lag" shows by
    /// how much); polling sends on time but burns client CPU.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub spin_us: u64,

    /// Open loop: make one POST in N a visibility probe (0: none). A probe is a POST by a
    /// user of its own in an hour no other request touches (--lag-hours-back); after its
    /// 204, a connection of its own GETs that hour back to back until the answer counts it.
    /// The time from the 204 to that answer is the POST→GET visibility lag. One probe at a
    /// time: POSTs due while one is being watched are ordinary POSTs.
    #[arg(long, default_value_t = 0)]
    pub lag_every: u64,

    /// The probes' hour: this many hours before the current hour at the start of the run.
    /// Past the mix's 24 historic hours, inside the server's retention (48 by default).
    #[arg(long, default_value_t = 36, value_parser = clap::value_parser!(u64).range(25..=100_000))]
    pub lag_hours_back: u64,
}

fn share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be between 0.0 and 1.0".into())
    }
}

fn positive_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err("must be a positive number".into())
    }
}

fn non_negative_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err("must be a number >= 0".into())
    }
}
