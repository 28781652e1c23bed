//! The hourtally server binary: parse the flags, start, wait for SIGTERM or Ctrl-C, drain.

use std::process::ExitCode;

use clap::Parser;
use hourtally::config::Config;
use hourtally::server::Server;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

fn main() -> ExitCode {
    let config = Config::parse();
    // Register the handlers before the server exists, so no signal finds it half-started
    // with the default (killing) disposition.
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hourtally: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match Server::start(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hourtally: cannot listen on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let l = config.limits();
    println!(
        "hourtally listening on {} retention_hours={} queue_capacity={} max_future_hours={} \
         max_head_bytes={} max_headers={} head_timeout={}s idle_timeout={}s max_connections={} \
         workers={} pin_workers={}",
        server.local_addr(),
        config.retention_hours,
        config.queue_capacity,
        config.max_future_hours,
        l.max_head_bytes,
        l.max_headers,
        l.head_timeout.as_secs(),
        l.idle_timeout.as_secs(),
        l.max_connections,
        server.workers(),
        config.pin_workers,
    );
    let signal = signals.forever().next().unwrap_or(SIGTERM);
    println!("hourtally stopping (signal {signal}): draining the queue");
    let report = server.shutdown();
    println!(
        "hourtally stopped: applied={} sealed_drops={} queued={}",
        report.applied, report.sealed_drops, report.queued
    );
    ExitCode::SUCCESS
}
