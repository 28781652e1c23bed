//! The tests' HTTP/1.1 client: a connection with a buffered reader, its answers, the
//! answer format's parser, and a thread that posts pipelined batches.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::IO_TIMEOUT;

/// `unique_users,U\nclicks,C\nimpressions,I\n` → (U, C, I), read by the library's one parser
/// of the answer format; panics on anything else.
pub fn parse_counts(body: &[u8]) -> (u64, u64, u64) {
    let c = hourtally::counts::Counts::parse(body)
        .unwrap_or_else(|| panic!("not an answer: {:?}", String::from_utf8_lossy(body)));
    (c.unique_users, c.clicks, c.impressions)
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body is one line of plain text that names `what`.
    pub fn assert_reason(&self, status: u16, what: &str) {
        assert_eq!(self.status, status, "{self:?}");
        let text = self.text();
        assert!(
            text.ends_with('\n') && text.matches('\n').count() == 1,
            "{text:?}"
        );
        assert!(text.contains(what), "{text:?} should mention {what:?}");
        assert_eq!(
            self.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
    }
}

/// A client connection with a buffered reader.
pub struct Conn {
    pub reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Self {
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            reader: BufReader::new(stream),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn write(&mut self, raw: &[u8]) {
        self.reader.get_mut().write_all(raw).expect("write request");
    }

    /// Reads one answer (`head_only`: the request was HEAD, so no body follows).
    pub fn response(&mut self, head_only: bool) -> Response {
        self.try_response(head_only).expect("read a response")
    }

    pub fn try_response(&mut self, head_only: bool) -> Option<Response> {
        // Skip interim 1xx answers.
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let status: u16 = line
                .strip_prefix("HTTP/1.1 ")
                .and_then(|s| s.get(..3))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad status line {line:?}"));
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                self.reader.read_line(&mut h).ok()?;
                let h = h.trim_end_matches(['\r', '\n']);
                if h.is_empty() {
                    break;
                }
                let (n, v) = h.split_once(':').expect("header line");
                headers.push((n.to_string(), v.trim().to_string()));
            }
            if status < 200 {
                continue;
            }
            let mut r = Response {
                status,
                headers,
                body: Vec::new(),
            };
            if !head_only {
                let len: usize = r
                    .header("Content-Length")
                    .map_or(0, |v| v.parse().expect("length"));
                r.body = vec![0; len];
                self.reader.read_exact(&mut r.body).ok()?;
            }
            return Some(r);
        }
    }

    /// True if the server closed the connection (EOF or reset) within the read timeout;
    /// false if it sent a byte or stayed open and silent.
    pub fn is_closed_by_server(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.reader.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}

/// What a [`pipelining_poster`] saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Posted {
    /// POSTs answered 204.
    pub acked: u64,
    /// POSTs answered 503 (queue full, shutting down), each with `Retry-After`.
    pub refused: u64,
    /// POSTs written.
    pub sent: u64,
}

/// A client thread that writes the 64 POSTs `request(0..64)` (each a full request) as one
/// pipelined batch, reads their answers, and repeats until the server goes away.
pub fn pipelining_poster(
    addr: SocketAddr,
    request: impl Fn(usize) -> String,
) -> std::thread::JoinHandle<Posted> {
    let batch: String = (0..64).map(request).collect();
    std::thread::spawn(move || {
        let mut seen = Posted::default();
        let Ok(stream) = TcpStream::connect(addr) else {
            return seen;
        };
        let mut c = Conn::new(stream);
        loop {
            if c.reader.get_mut().write_all(batch.as_bytes()).is_err() {
                return seen;
            }
            seen.sent += 64;
            for _ in 0..64 {
                match c.try_response(false) {
                    Some(r) if r.status == 204 => seen.acked += 1,
                    Some(r) if r.status == 503 && r.header("Retry-After") == Some("1") => {
                        seen.refused += 1
                    }
                    Some(r) => panic!("unexpected {r:?}"),
                    None => return seen,
                }
            }
        }
    })
}
