//! The three counters of one hour, and the one place their wire format lives.
//!
//! A GET of `/analytics` answers `unique_users,U\nclicks,C\nimpressions,I\n`. The server
//! renders it with [`Counts::render`]; the load generator and the tests read it back with
//! [`Counts::parse`], so the format is written down once.

/// Bytes of the longest rendered body, three `u64::MAX`: `unique_users,` (13), `clicks,` (7)
/// and `impressions,` (12), three times 20 digits and three newlines.
pub const LONGEST_BODY: usize = 13 + 7 + 12 + 3 * 20 + 3;

/// The counters of one hour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counts {
    pub unique_users: u64,
    pub clicks: u64,
    pub impressions: u64,
}

/// A rendered answer body, on the stack: at most [`LONGEST_BODY`] (95) bytes.
#[derive(Clone, Copy)]
pub struct CountsBody {
    buf: [u8; LONGEST_BODY],
    len: usize,
}

impl CountsBody {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Debug for CountsBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CountsBody")
            .field(&String::from_utf8_lossy(self.as_bytes()))
            .finish()
    }
}

impl Counts {
    pub const fn new(unique_users: u64, clicks: u64, impressions: u64) -> Counts {
        Counts {
            unique_users,
            clicks,
            impressions,
        }
    }

    /// `unique_users,U\nclicks,C\nimpressions,I\n`, without allocating.
    pub fn render(&self) -> CountsBody {
        let mut body = CountsBody {
            buf: [0; LONGEST_BODY],
            len: 0,
        };
        let mut put = |bytes: &[u8]| {
            debug_assert!(body.len + bytes.len() <= body.buf.len());
            body.buf[body.len..body.len + bytes.len()].copy_from_slice(bytes);
            body.len += bytes.len();
        };
        let mut num = itoa::Buffer::new();
        put(b"unique_users,");
        put(num.format(self.unique_users).as_bytes());
        put(b"\nclicks,");
        put(num.format(self.clicks).as_bytes());
        put(b"\nimpressions,");
        put(num.format(self.impressions).as_bytes());
        put(b"\n");
        body
    }

    /// Reads a body [`render`](Self::render) wrote; `None` for anything else (other names,
    /// other order, a missing final newline, signs, spaces, or a number over `u64`).
    pub fn parse(body: &[u8]) -> Option<Counts> {
        let mut rest = body;
        let mut field = |name: &[u8]| -> Option<u64> {
            let line_end = rest.iter().position(|&b| b == b'\n')?;
            let (line, tail) = (&rest[..line_end], &rest[line_end + 1..]);
            rest = tail;
            let digits = line.strip_prefix(name)?.strip_prefix(b",")?;
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            digits.iter().try_fold(0u64, |n, &d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
        };
        let counts = Counts {
            unique_users: field(b"unique_users")?,
            clicks: field(b"clicks")?,
            impressions: field(b"impressions")?,
        };
        rest.is_empty().then_some(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn renders_the_largest_and_the_smallest_answer() {
        let max = Counts {
            unique_users: u64::MAX,
            clicks: u64::MAX,
            impressions: u64::MAX,
        };
        assert_eq!(
            max.render().as_bytes(),
            format!("unique_users,{0}\nclicks,{0}\nimpressions,{0}\n", u64::MAX).as_bytes()
        );
        assert_eq!(
            Counts::default().render().as_bytes(),
            b"unique_users,0\nclicks,0\nimpressions,0\n"
        );
    }

    #[test]
    fn the_longest_body_is_as_long_as_said() {
        let max = Counts {
            unique_users: u64::MAX,
            clicks: u64::MAX,
            impressions: u64::MAX,
        };
        assert_eq!(max.render().as_bytes().len(), LONGEST_BODY);
    }

    #[test]
    fn parse_reads_the_three_counters_in_order() {
        assert_eq!(
            Counts::parse(b"unique_users,1\nclicks,2\nimpressions,3\n"),
            Some(Counts {
                unique_users: 1,
                clicks: 2,
                impressions: 3
            })
        );
    }

    #[test]
    fn parse_refuses_anything_but_the_exact_format() {
        let bad: [&[u8]; 10] = [
            b"",
            b"unique_users,1\nclicks,2\nimpressions,3",
            b"unique_users,1\nclicks,2\n",
            b"unique_users,1\nclicks,2\nimpressions,3\n\n",
            b"clicks,2\nunique_users,1\nimpressions,3\n",
            b"unique_users,1\nclicks,+2\nimpressions,3\n",
            b"unique_users,1\nclicks, 2\nimpressions,3\n",
            b"unique_users,1\nclicks,\nimpressions,3\n",
            b"unique_users,18446744073709551616\nclicks,2\nimpressions,3\n",
            b"unique_users,1\r\nclicks,2\nimpressions,3\n",
        ];
        for body in bad {
            assert_eq!(
                Counts::parse(body),
                None,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    proptest! {
        #[test]
        fn parse_inverts_render(u in any::<u64>(), c in any::<u64>(), i in any::<u64>()) {
            let counts = Counts { unique_users: u, clicks: c, impressions: i };
            prop_assert_eq!(Counts::parse(counts.render().as_bytes()), Some(counts));
        }
    }
}
