//! How the server's sweeper wakes a connection whose deadline has passed (`alarms`): through
//! `may`'s waker of the connection's socket.

use crate::alarms::Wake;

/// Wakes a connection asleep in `wait_io` (`may`'s waker of its socket).
pub struct IoWaker(pub may::io::WaitIoWaker);

impl Wake for IoWaker {
    fn wake(&self) {
        self.0.wakeup();
    }
}

impl std::fmt::Debug for IoWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IoWaker")
    }
}
