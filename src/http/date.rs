//! The clock of the HTTP edge: the `Date` header (IMF-fixdate) and the current hour, read
//! once per batch of requests and formatted again only when the second changes; with it the
//! heads that only the date changes (a 200's first two lines, a whole keep-alive 204), so
//! that answering copies them instead of assembling them.

use super::status::Status;
use crate::civil::civil_from_days;
use crate::clock::coarse_now_ms;
use crate::event::MILLIS_PER_HOUR;

/// `Date: Tue, 24 Nov 2026 08:10:00 GMT\r\n`
pub const DATE_LINE_LEN: usize = 37;

/// `HTTP/1.1 ` + the status table's line + CRLF.
const fn status_line_len(status: Status) -> usize {
    b"HTTP/1.1 ".len() + status.line().len() + 2
}

/// Writes `HTTP/1.1 200 OK\r\n` (for `status`) at the start of `out`.
fn put_status_line(status: Status, out: &mut [u8]) {
    let line = status.line().as_bytes();
    out[..9].copy_from_slice(b"HTTP/1.1 ");
    out[9..9 + line.len()].copy_from_slice(line);
    out[9 + line.len()..status_line_len(status)].copy_from_slice(b"\r\n");
}

const OK_LINE_LEN: usize = status_line_len(Status::Ok);
const NO_CONTENT_LINE_LEN: usize = status_line_len(Status::NoContent);
const OK_HEAD_LEN: usize = OK_LINE_LEN + DATE_LINE_LEN;
const NO_CONTENT_LEN: usize = NO_CONTENT_LINE_LEN + DATE_LINE_LEN + 2;

/// A per-connection cache of the wall clock, and of the answer heads that change only with
/// it: formatted once a second rather than once per answer.
#[derive(Debug, Clone)]
pub struct Clock {
    /// Whole seconds since the epoch that the lines below show.
    second: u64,
    /// Milliseconds since the epoch at the last `tick`.
    now_ms: u64,
    /// The status line of a 200 and the `Date` line, the date at `[OK_LINE_LEN..]`.
    ok_head: [u8; OK_HEAD_LEN],
    /// A whole keep-alive 204: status line, `Date` line and the blank line.
    no_content: [u8; NO_CONTENT_LEN],
}

impl Default for Clock {
    fn default() -> Self {
        let mut ok_head = [0; OK_HEAD_LEN];
        put_status_line(Status::Ok, &mut ok_head);
        let mut no_content = [0; NO_CONTENT_LEN];
        put_status_line(Status::NoContent, &mut no_content);
        no_content[NO_CONTENT_LEN - 2..].copy_from_slice(b"\r\n");
        let mut clock = Self {
            second: u64::MAX,
            now_ms: 0,
            ok_head,
            no_content,
        };
        clock.tick();
        clock
    }
}

impl Clock {
    /// Reads the wall clock and reformats if the second changed. Once per batch of
    /// requests, so the coarse clock: the kernel's time at its last tick (a few ms behind),
    /// read without touching the TSC; on this project's VM a precise read costs 50 ns, as
    /// much as parsing a request, and neither a `Date` nor an hour needs its precision.
    pub fn tick(&mut self) {
        self.set(coarse_now_ms());
    }

    /// Sets the clock to `ms` since the epoch (tests and benchmarks).
    pub fn set(&mut self, ms: u64) {
        self.now_ms = ms;
        let second = ms / 1000;
        if second != self.second {
            self.second = second;
            let mut line = [0; DATE_LINE_LEN];
            format_date_line(second, &mut line);
            self.ok_head[OK_LINE_LEN..].copy_from_slice(&line);
            self.no_content[NO_CONTENT_LINE_LEN..NO_CONTENT_LEN - 2].copy_from_slice(&line);
        }
    }

    /// The current UTC hour.
    pub fn hour(&self) -> u64 {
        self.now_ms / MILLIS_PER_HOUR
    }

    /// The `Date` header line, with its CRLF.
    pub fn date_line(&self) -> &[u8] {
        &self.ok_head[OK_LINE_LEN..]
    }

    /// `HTTP/1.1 200 OK` and the `Date` line, each with its CRLF: the head of a 200 up to
    /// its other headers.
    pub fn ok_head(&self) -> &[u8] {
        &self.ok_head
    }

    /// The whole answer of a 204 on a connection that stays open (HTTP/1.1): its status
    /// line, the `Date` line and the blank line that ends the head.
    pub fn no_content(&self) -> &[u8] {
        &self.no_content
    }
}

fn format_date_line(secs: u64, out: &mut [u8; DATE_LINE_LEN]) {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let year = year.clamp(0, 9999) as u32;
    let two = |n: u32| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
    out[..6].copy_from_slice(b"Date: ");
    out[6..9].copy_from_slice(DAYS[(days % 7) as usize]);
    out[9..11].copy_from_slice(b", ");
    out[11..13].copy_from_slice(&two(day));
    out[13] = b' ';
    out[14..17].copy_from_slice(MONTHS[month as usize - 1]);
    out[17] = b' ';
    out[18..20].copy_from_slice(&two(year / 100));
    out[20..22].copy_from_slice(&two(year % 100));
    out[22] = b' ';
    out[23..25].copy_from_slice(&two((rem / 3600) as u32));
    out[25] = b':';
    out[26..28].copy_from_slice(&two((rem / 60 % 60) as u32));
    out[28] = b':';
    out[29..31].copy_from_slice(&two((rem % 60) as u32));
    out[31..37].copy_from_slice(b" GMT\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ms: u64) -> String {
        let mut c = Clock::default();
        c.set(ms);
        String::from_utf8(c.date_line().to_vec()).unwrap()
    }

    #[test]
    fn formats_imf_fixdate() {
        assert_eq!(line(0), "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n");
        assert_eq!(
            line(1_795_507_800_000),
            "Date: Tue, 24 Nov 2026 08:10:00 GMT\r\n"
        );
        assert_eq!(
            line(951_782_400_000),
            "Date: Tue, 29 Feb 2000 00:00:00 GMT\r\n"
        );
        assert_eq!(
            line(4_133_980_799_000),
            "Date: Fri, 31 Dec 2100 23:59:59 GMT\r\n"
        );
    }

    #[test]
    fn pre_rendered_heads_follow_the_second() {
        let mut c = Clock::default();
        c.set(1_795_507_800_000);
        assert_eq!(
            c.ok_head(),
            b"HTTP/1.1 200 OK\r\nDate: Tue, 24 Nov 2026 08:10:00 GMT\r\n"
        );
        assert_eq!(
            c.no_content(),
            b"HTTP/1.1 204 No Content\r\nDate: Tue, 24 Nov 2026 08:10:00 GMT\r\n\r\n"
        );
        c.set(1_795_507_801_999);
        assert_eq!(c.date_line(), b"Date: Tue, 24 Nov 2026 08:10:01 GMT\r\n");
        assert!(c.ok_head().ends_with(c.date_line()));
        assert!(c.no_content().ends_with(b"08:10:01 GMT\r\n\r\n"));
    }

    #[test]
    fn hour_follows_the_clock() {
        let mut c = Clock::default();
        c.set(7_200_000);
        assert_eq!(c.hour(), 2);
        assert!(Clock::default().hour() > 490_000); // after 2026
    }
}
