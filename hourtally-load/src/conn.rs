//! One client connection's pieces: connecting with the run's timeouts, the buffered reader
//! of replies, and the ways a connection fails.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::plan::Plan;
use crate::response::{parse_response, Framing, Parsed, Reply, MAX_RESPONSE_BYTES};

/// Read buffer per connection (grows up to `MAX_RESPONSE_BYTES` when a reply needs it).
const READ_BUF: usize = 16 * 1024;
/// A connection that cannot reconnect for this long gives up.
pub const RECONNECT_GIVE_UP: Duration = Duration::from_secs(5);

/// Why a connection stopped: it is dropped and its requests in flight are lost.
#[derive(Debug, Clone, Copy)]
pub enum Fail {
    Write,
    Read,
    Timeout,
    Closed,
    Protocol(&'static str),
}

/// A connection to the plan's address: no Nagle, the run's read and write timeouts.
pub fn connect(plan: &Plan) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&plan.addr, plan.timeout)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(plan.timeout))?;
    s.set_write_timeout(Some(plan.timeout))?;
    Ok(s)
}

/// Buffered reads of replies from one socket.
pub struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Reader {
    pub fn new() -> Self {
        Reader {
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
        }
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// The next complete reply, the answer to a request framed as `framing` says (a HEAD's
    /// has no body), reading (blocking) as needed. `arrived` is set to the time of each read
    /// that brought bytes: the arrival time of the replies in them. The reply's body is
    /// `self.body(&reply)` until the next call.
    pub fn next_reply(
        &mut self,
        stream: &mut TcpStream,
        arrived: &mut Instant,
        framing: Framing,
    ) -> Result<Reply, Fail> {
        loop {
            if let Some(r) = self.buffered(framing)? {
                return Ok(r);
            }
            match self.fill(stream) {
                Ok(0) => return Err(Fail::Closed),
                Ok(_) => *arrived = Instant::now(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    return Err(Fail::Protocol("answer too large"))
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Fail::Timeout)
                }
                Err(_) => return Err(Fail::Read),
            }
        }
    }

    /// The next complete reply already in the buffer, if any (interim `1xx` replies are
    /// skipped), the answer to a request framed as `framing` says. The reply's body is
    /// `self.body(&reply)` until the next call.
    pub fn buffered(&mut self, framing: Framing) -> Result<Option<Reply>, Fail> {
        loop {
            match parse_response(&self.buf[self.start..self.end], framing) {
                Parsed::Done(mut a) => {
                    a.at = self.start;
                    self.start += a.len;
                    if self.start == self.end {
                        // The bytes stay in place until the next read, so `body` still works.
                        self.start = 0;
                        self.end = 0;
                    }
                    return Ok(Some(a));
                }
                Parsed::Interim(n) => self.start += n,
                Parsed::Bad(why) => return Err(Fail::Protocol(why)),
                Parsed::Partial => return Ok(None),
            }
        }
    }

    /// One `read` into the free end of the buffer (making room first); the bytes read (0:
    /// the peer closed). A reply too large to buffer is an `InvalidData` error.
    pub fn fill(&mut self, stream: &mut TcpStream) -> io::Result<usize> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < 4 * MAX_RESPONSE_BYTES {
                self.buf.resize(self.buf.len() * 2, 0);
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "answer too large",
                ));
            }
        }
        let n = stream.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Free room at the end of the buffer: a read that fills less than this drained the
    /// socket's receive queue.
    pub fn room(&self) -> usize {
        self.buf.len() - self.end
    }

    pub fn body(&self, a: &Reply) -> &[u8] {
        &self.buf[a.at + a.head_len..a.at + a.len]
    }

    /// The whole reply, head and body, as it came (valid as long as `body` is).
    pub fn raw(&self, a: &Reply) -> &[u8] {
        &self.buf[a.at..a.at + a.len]
    }
}
