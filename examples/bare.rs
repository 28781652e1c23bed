//! The bare baseline: a may_minihttp hello-world server that answers every request with
//! `200` and a short body. It does no work beyond HTTP, so its request rate is the ceiling
//! hourtally's HTTP edge is measured against (`scripts/bench-compare.sh`).
//!
//! ```sh
//! cargo run --release --example bare -- 127.0.0.1:8081
//! ```
//!
//! The first argument is the address (default `127.0.0.1:8081`; port 0 picks a free port).
//! The first stdout line is `bare listening on ADDR`. The `may` runtime is configured as
//! hourtally configures it: one worker per available CPU (as `taskset` allows), no pinning.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::process::ExitCode;

use may_minihttp::{HttpServer, HttpService, Request, Response};

#[derive(Clone)]
struct Bare;

impl HttpService for Bare {
    fn call(&mut self, _req: Request, rsp: &mut Response) -> io::Result<()> {
        rsp.body("Hello, world!");
        Ok(())
    }
}

/// Resolves `arg`; port 0 becomes a free port (found by binding and releasing it, since
/// may_minihttp does not report the port it bound).
fn resolve(arg: &str) -> io::Result<SocketAddr> {
    let addr = arg
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
    if addr.port() != 0 {
        return Ok(addr);
    }
    TcpListener::bind(addr)?.local_addr()
}

fn main() -> ExitCode {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_string());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    may::config().set_workers(workers).set_worker_pin(false);
    let addr = match resolve(&arg) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bare: bad address {arg}: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match HttpServer(Bare).start(addr) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bare: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("bare listening on {addr} workers={workers}");
    let _ = io::stdout().flush();
    let _ = server.join();
    ExitCode::SUCCESS
}
