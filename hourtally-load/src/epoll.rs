//! A thin safe wrapper over Linux epoll (through `libc`), for the open loop: one thread
//! watches many non-blocking sockets and sleeps until the next send is due with nanosecond
//! precision (`epoll_pwait2`), which `epoll_wait`'s milliseconds cannot give.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;
use std::time::Duration;

/// One readiness event: its token is `u64` (copied out: the struct is packed on x86-64).
pub type Event = libc::epoll_event;

/// The token an event carries.
pub fn token(e: &Event) -> u64 {
    e.u64
}

/// The event reports something to read, a hang-up or an error (a read will tell which).
pub fn readable(e: &Event) -> bool {
    e.events & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
}

/// The event reports room to write.
pub fn writable(e: &Event) -> bool {
    e.events & libc::EPOLLOUT as u32 != 0
}

/// An epoll instance; closed on drop.
pub struct Epoll {
    fd: OwnedFd,
    /// `epoll_pwait2` failed with ENOSYS (kernel before 5.11, or a seccomp filter): waits
    /// fall back to `epoll_wait`, in whole milliseconds.
    no_pwait2: bool,
}

impl Epoll {
    pub fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor just created for us, owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll {
            fd,
            no_pwait2: false,
        })
    }

    /// Watches `sock` for input, output and hang-ups, edge-triggered: an event comes when
    /// something changes, so the caller reads until a short read and writes until done.
    /// Closing the socket removes it.
    pub fn add(&self, sock: &impl AsRawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call (the kernel
        // copies it); both descriptors are open.
        let r = unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                sock.as_raw_fd(),
                &mut ev,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for events for at most `timeout` (`None`: until one comes; zero: only polls)
    /// and fills the front of `events` with them; returns how many.
    pub fn wait(&mut self, events: &mut [Event], timeout: Option<Duration>) -> io::Result<usize> {
        let max = events.len().min(i32::MAX as usize) as i32;
        loop {
            let n = if self.no_pwait2 {
                let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
                // SAFETY: `events` has room for `max` events and outlives the call.
                unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, ms) }
            } else {
                let ts = timeout.map(|t| libc::timespec {
                    tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
                    tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
                });
                let ts_ptr = ts
                    .as_ref()
                    .map_or(ptr::null(), |t| t as *const libc::timespec);
                // SAFETY: `events` has room for `max` events and outlives the call; `ts_ptr`
                // is null or points at `ts`, alive until the call returns; no signal mask.
                unsafe {
                    libc::epoll_pwait2(
                        self.fd.as_raw_fd(),
                        events.as_mut_ptr(),
                        max,
                        ts_ptr,
                        ptr::null(),
                    )
                }
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => return Ok(0),
                Some(libc::ENOSYS) if !self.no_pwait2 => self.no_pwait2 = true,
                _ => return Err(e),
            }
        }
    }
}

/// A zeroed event buffer of `n` entries for [`Epoll::wait`].
pub fn buffer(n: usize) -> Vec<Event> {
    vec![libc::epoll_event { events: 0, u64: 0 }; n]
}
