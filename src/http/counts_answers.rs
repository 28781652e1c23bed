//! The answers to `GET /analytics`, rendered once per change of an hour's counts and copied
//! for every GET until the next change.
//!
//! An answer's headers after the `Date` line and its body depend on the counts alone, and
//! readers ask for the same few hours (the current one, above all) many times between two
//! changes, so each connection keeps the rendered tail of the last answer of a few hours
//! ([`Rendered`]) and checks it against the counts it just read. The check compares the
//! counts themselves, not a version of the slot: an entry is reused only for the very counts
//! it was rendered from, so it cannot be stale, and the ring needs no new accessor.
//!
//! Per connection, owned by its session: the entries are plain memory that only the
//! connection's coroutine touches, so no reader waits for another or for the writer, and no
//! atomic is involved. Never per thread: a coroutine moves to another worker thread when it
//! yields, and with the connection loop inlined the compiler may keep a thread-local's
//! address across the yield, so two workers would write one entry at once. That happened
//! (answers whose body ran past or fell short of their own `Content-Length` at two workers,
//! pipelined), and `clippy.toml` now refuses `thread_local!` outside plain OS threads.

use super::date::Clock;
use super::response::{self, AfterAnswer, TEXT_PLAIN};
use super::status::Status;
use crate::counts::{Counts, LONGEST_BODY};

/// Hours remembered per connection, direct-mapped by `hour % WAYS`: the current hour and
/// the hours next to it, which are the ones read most.
const WAYS: usize = 4;

/// The longest tail: the `Content-Type` line (41 bytes), `Content-Length: 95` and its CRLF
/// (20), the blank line (2) and the longest body (95): 158 bytes.
const TAIL_MAX: usize = "Content-Type: ".len()
    + TEXT_PLAIN.len()
    + "\r\nContent-Length: ".len()
    + 2
    + "\r\n\r\n".len()
    + LONGEST_BODY;
// The `2` above: the longest body's length has two digits; `Entry` keeps lengths in a u8.
const _: () = assert!(LONGEST_BODY >= 10 && LONGEST_BODY < 100 && TAIL_MAX <= u8::MAX as usize);

/// The rendered tail of one hour's answer.
#[derive(Clone, Copy)]
struct Entry {
    /// The hour, or [`NO_HOUR`] for an entry never filled.
    hour: u32,
    /// The counts the tail was rendered from.
    counts: Counts,
    /// Bytes of `tail` that end with the blank line: a HEAD's answer stops there.
    head_len: u8,
    /// Bytes of `tail` in use.
    len: u8,
    /// `Content-Type: …`, `Content-Length: …`, the blank line, the body.
    tail: [u8; TAIL_MAX],
}

// ARCHITECTURE.md ("Memory per connection") gives this size.
const _: () = assert!(std::mem::size_of::<[Entry; WAYS]>() == 768);

/// No GET names this hour: the largest timestamp (year 9999) is hour 70 389 527.
const NO_HOUR: u32 = u32::MAX;

impl Entry {
    const EMPTY: Entry = Entry {
        hour: NO_HOUR,
        counts: Counts {
            unique_users: 0,
            clicks: 0,
            impressions: 0,
        },
        head_len: 0,
        len: 0,
        tail: [0; TAIL_MAX],
    };

    /// Renders the tail of `hour`'s answer for `counts`.
    fn fill(&mut self, hour: u32, counts: Counts) {
        let body = counts.render();
        let body = body.as_bytes();
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            self.tail[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
            len
        };
        put(b"Content-Type: ");
        put(TEXT_PLAIN.as_bytes());
        put(b"\r\nContent-Length: ");
        put(itoa::Buffer::new().format(body.len()).as_bytes());
        let head_len = put(b"\r\n\r\n");
        let len = put(body);
        // Both fit in a u8: TAIL_MAX is under 256.
        self.head_len = head_len as u8;
        self.len = len as u8;
        self.hour = hour;
        self.counts = counts;
    }

    /// The tail to send: without the body for a HEAD.
    fn tail(&self, head_only: bool) -> &[u8] {
        let len = if head_only { self.head_len } else { self.len };
        &self.tail[..usize::from(len)]
    }
}

/// One connection's rendered answers: allocated on its first GET of `/analytics` (a
/// connection that only POSTs never pays for it), off the coroutine's fixed stack.
#[derive(Default)]
pub struct Rendered {
    entries: Option<Box<[Entry; WAYS]>>,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("allocated", &self.entries.is_some())
            .finish()
    }
}

impl Rendered {
    /// Appends the `200` answering a GET (or, `head_only`, a HEAD) of `hour`, whose counts
    /// are `counts`: the same bytes as [`response::write`] of the rendered counts.
    #[inline]
    pub fn write(
        &mut self,
        out: &mut Vec<u8>,
        hour: u32,
        counts: Counts,
        after: AfterAnswer,
        clock: &Clock,
        head_only: bool,
    ) {
        response::write_head(out, Status::Ok, after, clock);
        let entries = self
            .entries
            .get_or_insert_with(|| Box::new([Entry::EMPTY; WAYS]));
        let entry = &mut entries[hour as usize % WAYS];
        if entry.hour != hour || entry.counts != counts {
            entry.fill(hour, counts);
        }
        out.extend_from_slice(entry.tail(head_only));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The answer as `response::write` renders it, without the cache.
    fn uncached(counts: Counts, after: AfterAnswer, clock: &Clock, head_only: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let body = counts.render();
        response::write(
            &mut out,
            Status::Ok,
            after,
            clock,
            "",
            TEXT_PLAIN,
            body.as_bytes(),
            head_only,
        );
        out
    }

    fn cached(
        rendered: &mut Rendered,
        hour: u32,
        counts: Counts,
        after: AfterAnswer,
        clock: &Clock,
        head_only: bool,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        rendered.write(&mut out, hour, counts, after, clock, head_only);
        out
    }

    #[test]
    fn the_longest_answer_fits() {
        let max = Counts {
            unique_users: u64::MAX,
            clicks: u64::MAX,
            impressions: u64::MAX,
        };
        let mut entry = Entry::EMPTY;
        entry.fill(7, max);
        assert!(entry.tail(false).ends_with(max.render().as_bytes()));
        // Exactly: the longest answer fills the tail, so the bound is neither short nor loose.
        assert_eq!(usize::from(entry.len), TAIL_MAX);
        assert_eq!(TAIL_MAX, 158);
    }

    #[test]
    fn a_change_of_counts_or_clock_is_never_answered_from_an_old_rendering() {
        let mut clock = Clock::default();
        clock.set(1_795_507_800_000);
        let a = Counts {
            unique_users: 1,
            clicks: 2,
            impressions: 3,
        };
        let b = Counts { clicks: 20, ..a };
        let mut r = Rendered::default();
        let keep = AfterAnswer::KeepOpen;
        assert_eq!(
            cached(&mut r, 5, a, keep, &clock, false),
            uncached(a, keep, &clock, false)
        );
        assert_eq!(
            cached(&mut r, 5, b, keep, &clock, false),
            uncached(b, keep, &clock, false)
        );
        // Another hour in the same way, then the first again.
        let other = 5 + WAYS as u32;
        assert_eq!(
            cached(&mut r, other, a, keep, &clock, false),
            uncached(a, keep, &clock, false)
        );
        assert_eq!(
            cached(&mut r, 5, b, keep, &clock, true),
            uncached(b, keep, &clock, true)
        );
        clock.set(1_795_507_801_000);
        let close = AfterAnswer::Close;
        assert_eq!(
            cached(&mut r, 5, b, close, &clock, false),
            uncached(b, close, &clock, false)
        );
    }

    proptest! {
        #[test]
        fn answers_equal_the_uncached_rendering(
            reads in proptest::collection::vec(
                (0u32..24, 0u64..4, 0u64..3, 0u64..2, 0usize..3, any::<bool>()),
                1..64,
            )
        ) {
            let mut clock = Clock::default();
            clock.set(1_795_507_800_000);
            let afters = [AfterAnswer::KeepOpen, AfterAnswer::KeepOpenAnnounced, AfterAnswer::Close];
            let mut r = Rendered::default();
            for (hour, users, clicks, impressions, after, head_only) in reads {
                // Few distinct counts per hour, so that entries are both hit and replaced.
                let counts = Counts { unique_users: users, clicks, impressions };
                let after = afters[after];
                prop_assert_eq!(
                    cached(&mut r, hour, counts, after, &clock, head_only),
                    uncached(counts, after, &clock, head_only)
                );
            }
        }
    }
}
