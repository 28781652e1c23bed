//! The process's clocks, read in one place: the wall clock (coarse, for the current hour and
//! the `Date` header), the coarse monotonic clock (connection deadlines) and the precise
//! monotonic clock (request latency). Each is one vDSO `clock_gettime`, no system call.

use std::time::{SystemTime, UNIX_EPOCH};

/// Reads `clock` as `(seconds, nanoseconds)`, or `None` if the system lacks it. The one
/// `clock_gettime` of the crate: the connections' deadlines, the `Date` line and the request
/// latency histograms all read their clocks here.
#[inline]
pub fn read_clock(clock: libc::clockid_t) -> Option<(u64, u64)> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` through the pointer, which points at a live
    // local `timespec`.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    // A clock before its origin (a wall clock set before 1970) reads as the origin.
    (rc == 0).then(|| {
        (
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u64::try_from(ts.tv_nsec).unwrap_or(0),
        )
    })
}

/// Milliseconds of `CLOCK_MONOTONIC_COARSE` (the kernel's monotonic time at its last tick, a
/// few ms behind; a few ns to read): the clock of connection deadlines (`alarms`), which must
/// not jump with the wall clock. The precise monotonic clock if there is no coarse one.
pub fn coarse_monotonic_ms() -> u64 {
    let (secs, nanos) = read_clock(libc::CLOCK_MONOTONIC_COARSE)
        .or_else(|| read_clock(libc::CLOCK_MONOTONIC))
        .unwrap_or((0, 0));
    secs * 1000 + nanos / 1_000_000
}

/// Milliseconds since the epoch by `CLOCK_REALTIME_COARSE`, or by the precise clock if the
/// system has no coarse one.
pub fn coarse_now_ms() -> u64 {
    match read_clock(libc::CLOCK_REALTIME_COARSE) {
        Some((secs, nanos)) => secs * 1000 + nanos / 1_000_000,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds. What `Instant::now()` reads, without the `Duration`
/// arithmetic around it (a normalised subtraction and a 128-bit `as_nanos`, about a hundred
/// instructions per request at depth 1 by `scripts/instructions.sh`).
#[inline]
pub fn monotonic_nanos() -> u64 {
    // CLOCK_MONOTONIC exists on every Linux.
    let (secs, nanos) = read_clock(libc::CLOCK_MONOTONIC).unwrap_or((0, 0));
    secs.wrapping_mul(1_000_000_000).wrapping_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_is_the_wall_clock() {
        let precise = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        };
        let before = precise();
        let coarse = coarse_now_ms();
        let after = precise();
        // Behind by at most a kernel tick (1 to 10 ms); a second is generous.
        assert!(
            coarse <= after && coarse + 1000 >= before,
            "{before} {coarse} {after}"
        );
    }
}
