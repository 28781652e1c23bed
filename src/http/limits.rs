//! Named limits of the HTTP edge, each with its default and the flag that sets it.

use std::time::Duration;

/// Largest request line plus headers (`--max-head-bytes`).
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header fields in one request (`--max-headers`), as Apache and hyper.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// The most `--max-headers` may be: the header array lives on the coroutine stack.
pub const MAX_HEADERS_CAP: usize = 128;
/// Largest request body, read and thrown away; larger gets 413 and a close.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Time to send a complete request head, from accept or from its first byte.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle keep-alive connections are closed after this (`--idle-timeout`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A peer that does not take our answers within this is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections past which new ones are accepted and closed at once (`--max-connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Most hours one `GET /analytics/hours` may ask for (`--max-range-hours`): a week.
pub const DEFAULT_MAX_RANGE_HOURS: u32 = 168;
/// The most `--max-range-hours` may be: about 1.4 MB of JSON at the longest counts.
pub const MAX_RANGE_HOURS_CAP: u32 = 10_000;
/// Answers buffered before they are written mid-batch, bounding memory per connection.
pub const MAX_PENDING_OUTPUT: usize = 64 * 1024;

/// The limits one server runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub head_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_range_hours: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_range_hours: DEFAULT_MAX_RANGE_HOURS,
        }
    }
}

impl Limits {
    /// The largest the read buffer of a connection grows: one full head plus room to read.
    pub fn max_read_buffer(&self) -> usize {
        self.max_head_bytes + 8 * 1024
    }
}
