//! The one place this crate takes its atomics, locks and thread primitives from.
//!
//! Normal builds get `std` atomics and `parking_lot` locks. Builds with `--cfg hourtally_loom`
//! get loom's instrumented versions, so that the loom models in `loom-tests/` explore every
//! interleaving of the real protocol code (the seqlock in `ring::slot`, the archive hand-off
//! in `ring`, the queue / park / shutdown handshake in `writer`). A crate-specific cfg rather
//! than plain `loom`, as crossbeam does with `crossbeam_loom`, so that dependencies which
//! also know a `loom` cfg do not switch with us.
//!
//! No other module may import from `std::sync::atomic`, `parking_lot` or `std::thread` for
//! anything that another thread observes; `grep -rn "std::sync::atomic" src/` should find
//! only this file.

#[cfg(not(hourtally_loom))]
pub use std::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(not(hourtally_loom))]
pub use std::sync::Arc;

#[cfg(hourtally_loom)]
pub use loom::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(hourtally_loom)]
pub use loom::sync::Arc;

/// Called once per turn of a spin loop. Outside loom a CPU pause hint; under loom a yield,
/// which tells the model checker this thread cannot progress until another one runs
/// (without it loom would explore the spin forever).
#[inline]
pub fn spin_loop() {
    #[cfg(not(hourtally_loom))]
    std::hint::spin_loop();
    #[cfg(hourtally_loom)]
    loom::thread::yield_now();
}

/// Gives up the OS thread's time slice (loom: a scheduling point). Only ever called from
/// OS threads the crate owns (the writer, shutdown), never from a `may` coroutine.
#[inline]
pub fn yield_thread() {
    #[cfg(not(hourtally_loom))]
    std::thread::yield_now();
    #[cfg(hourtally_loom)]
    loom::thread::yield_now();
}

/// Sleeps the OS thread for `d` (loom: a scheduling point; models never sleep). Only ever
/// called from OS threads the crate owns (the writer), never from a `may` coroutine.
#[inline]
pub fn sleep_thread(d: std::time::Duration) {
    #[cfg(not(hourtally_loom))]
    std::thread::sleep(d);
    #[cfg(hourtally_loom)]
    {
        let _ = d;
        loom::thread::yield_now();
    }
}

/// A reader-writer lock with the small surface the archive needs. `parking_lot` outside loom
/// (no poisoning, a short fast path), loom's `RwLock` under loom.
#[derive(Debug, Default)]
pub struct RwLock<T> {
    #[cfg(not(hourtally_loom))]
    inner: parking_lot::RwLock<T>,
    #[cfg(hourtally_loom)]
    inner: loom::sync::RwLock<T>,
}

impl<T> RwLock<T> {
    pub fn new(value: T) -> Self {
        Self {
            #[cfg(not(hourtally_loom))]
            inner: parking_lot::RwLock::new(value),
            #[cfg(hourtally_loom)]
            inner: loom::sync::RwLock::new(value),
        }
    }

    /// Runs `f` under the read lock, waiting for it if a writer holds it.
    pub fn with_read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        #[cfg(not(hourtally_loom))]
        return f(&self.inner.read());
        #[cfg(hourtally_loom)]
        return f(&self
            .inner
            .read()
            .expect("loom RwLock is never poisoned here"));
    }

    /// Runs `f` under the read lock if it can be had at once; `None` when a writer holds it.
    /// The HTTP edge uses this so that a coroutine never parks its OS thread on the lock.
    pub fn try_with_read<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        #[cfg(not(hourtally_loom))]
        return self.inner.try_read().map(|guard| f(&guard));
        #[cfg(hourtally_loom)]
        return self.inner.try_read().ok().map(|guard| f(&guard));
    }

    /// Runs `f` under the write lock if it can be had at once; `None` when it is held.
    pub fn try_with_write<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        #[cfg(not(hourtally_loom))]
        return self.inner.try_write().map(|mut guard| f(&mut guard));
        #[cfg(hourtally_loom)]
        return self.inner.try_write().ok().map(|mut guard| f(&mut guard));
    }

    /// Runs `f` under the write lock.
    pub fn with_write<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        #[cfg(not(hourtally_loom))]
        return f(&mut self.inner.write());
        #[cfg(hourtally_loom)]
        return f(&mut self
            .inner
            .write()
            .expect("loom RwLock is never poisoned here"));
    }
}

/// A one-token parker for the writer thread: `unpark` leaves a token, `park` consumes it or
/// waits for one. A token left before `park` is never lost, so a producer's unpark that races
/// with the writer going to sleep cannot be missed. Built from a mutex and a condition
/// variable (parking_lot's, or loom's under loom) rather than `std::thread::park`, so that
/// the producer side can hold an unparker before the writer thread exists.
#[derive(Debug, Default)]
pub struct Parker {
    #[cfg(not(hourtally_loom))]
    token: parking_lot::Mutex<bool>,
    #[cfg(not(hourtally_loom))]
    wake: parking_lot::Condvar,
    #[cfg(hourtally_loom)]
    token: loom::sync::Mutex<bool>,
    #[cfg(hourtally_loom)]
    wake: loom::sync::Condvar,
}

impl Parker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Blocks until a token is available, then consumes it.
    pub fn park(&self) {
        #[cfg(not(hourtally_loom))]
        {
            let mut token = self.token.lock();
            while !*token {
                self.wake.wait(&mut token);
            }
            *token = false;
        }
        #[cfg(hourtally_loom)]
        {
            let mut token = self
                .token
                .lock()
                .expect("loom Mutex is never poisoned here");
            while !*token {
                token = self
                    .wake
                    .wait(token)
                    .expect("loom Mutex is never poisoned here");
            }
            *token = false;
        }
    }

    /// [`park`](Self::park), but returns after `timeout` at the latest (with or without a
    /// token; a caller re-checks its condition either way, as after any wake-up). Under loom
    /// it is `park`: loom's condition variable never times out, so a model cannot rely on
    /// the timeout, and none does.
    pub fn park_timeout(&self, timeout: std::time::Duration) {
        #[cfg(not(hourtally_loom))]
        {
            let deadline = std::time::Instant::now() + timeout;
            let mut token = self.token.lock();
            while !*token {
                if self.wake.wait_until(&mut token, deadline).timed_out() {
                    return;
                }
            }
            *token = false;
        }
        #[cfg(hourtally_loom)]
        {
            let _ = timeout;
            self.park();
        }
    }

    /// Leaves a token and wakes the parked thread, if any.
    pub fn unpark(&self) {
        #[cfg(not(hourtally_loom))]
        {
            *self.token.lock() = true;
        }
        #[cfg(hourtally_loom)]
        {
            *self
                .token
                .lock()
                .expect("loom Mutex is never poisoned here") = true;
        }
        self.wake.notify_one();
    }
}
