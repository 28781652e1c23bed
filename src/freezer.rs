//! The thread that freezes the ring's hours that are over (`ring::freeze`), and the writer's
//! side of it.
//!
//! The writer calls [`Freezer::turn`] between batches. A turn costs a compare when nothing
//! is to be done; it looks for a slot to freeze only when the ring took a newer hour, after
//! a freeze was installed (there may be more), and every [`RESCAN_TURNS`] turns (a frozen
//! hour's late users may have grown enough to fold in). One freeze is under way at a time.
//!
//! The hand-off is two channels: jobs (and what a freeze replaced, to be freed there) go to
//! the thread, frozen sets come back. The writer never waits on either.
//!
//! The same thread stores the hours that left the ring in the cold tier, when there is one
//! ([`StoreLeft`], `cold`): the ring's `Leaving` wakes it as each hour leaves (also during a
//! journal's replay, when the writer takes no turns); a store that failed (a full disk) is
//! tried again every [`STORE_RETRY`] on its own. And it counts late events (`late`), woken
//! by the ring's late queue, before any store that comes after them: one thread, one order.

use std::sync::mpsc;
use std::time::Instant;

use crate::ring::freeze::{freeze, FreezeJob, Frozen, Installed, Retired};
use crate::ring::{Ring, RingWriter};

/// Turns between two looks for an hour to freeze again.
pub const RESCAN_TURNS: u32 = 4096;

/// How soon a store of the hours that left the ring is tried again after one failed.
pub const STORE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Stores the hours that left the ring (`cold::ColdTier::store_leaving`): `true` once none
/// is left to store, `false` if one failed and the store is to be tried again.
pub type StoreLeft = Box<dyn FnMut() -> bool + Send>;

/// Counts the late events queued so far (`late::LateCounts::apply`). Never fails: an event
/// whose hour's users cannot be read is dropped, and counted as such.
pub type CountLate = Box<dyn FnMut() + Send>;

enum Work {
    /// Hours left the ring: store them.
    Store,
    /// Late events (or a snapshot's mark) were queued: count them.
    Late,
    /// The writer is done (its `Freezer` dropped): store what is left and end.
    Stop,
    Freeze(FreezeJob),
    /// What an install replaced.
    Free(Retired),
    /// A frozen set whose slot moved on.
    Discard(Frozen),
}

/// The writer's side of the freezing thread.
#[derive(Debug)]
pub struct Freezer {
    work: mpsc::Sender<Work>,
    done: mpsc::Receiver<Frozen>,
    /// A freeze was sent and not yet installed.
    under_way: bool,
    /// A frozen set that could not be installed yet (a capture was under way).
    held: Option<Frozen>,
    /// The ring's newest hour at the last look.
    seen_newest: u32,
    /// Turns since the last look.
    turns: u32,
    /// The thread is gone (it panicked, which the panic hook printed): no more freezes.
    gone: bool,
    /// The thread, joined when this is dropped.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Work::Store => f.write_str("Store"),
            Work::Late => f.write_str("Late"),
            Work::Stop => f.write_str("Stop"),
            Work::Freeze(job) => write!(f, "Freeze(hour {})", job.hour()),
            Work::Free(_) => f.write_str("Free"),
            Work::Discard(_) => f.write_str("Discard"),
        }
    }
}

impl Freezer {
    /// Starts the thread; it calls `wake` after each freeze it finishes, so that a sleeping
    /// writer wakes to install it, `store` (if any) whenever an hour leaves `ring`, and
    /// `late` (if any) whenever the writer queues a late event or a snapshot's mark.
    pub fn start(
        wake: impl Fn() + Send + 'static,
        ring: &Ring,
        mut store: Option<StoreLeft>,
        mut late: Option<CountLate>,
    ) -> std::io::Result<Self> {
        let (work, jobs) = mpsc::channel::<Work>();
        if let (Some(leaving), Some(_)) = (ring.leaving(), &store) {
            let tell = work.clone();
            leaving.wake_with(Box::new(move || {
                // Gone only after a stop; nothing is left to store then.
                let _ = tell.send(Work::Store);
            }));
        }
        if let (Some(queue), Some(_)) = (ring.late(), &late) {
            let tell = work.clone();
            queue.wake_with(Box::new(move || {
                let _ = tell.send(Work::Late);
            }));
        }
        let (frozen, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("hourtally-freeze".into())
            .spawn(move || {
                // What failed and is to be tried again, and when (`None`: nothing failed).
                let mut store_failing = false;
                let mut retry_at: Option<Instant> = None;
                loop {
                    let w = match retry_at {
                        Some(at) => {
                            match jobs.recv_timeout(at.saturating_duration_since(Instant::now())) {
                                Ok(w) => Some(w),
                                Err(mpsc::RecvTimeoutError::Timeout) => None,
                                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                            }
                        }
                        None => match jobs.recv() {
                            Ok(w) => Some(w),
                            Err(mpsc::RecvError) => break,
                        },
                    };
                    let due = retry_at.is_some_and(|at| Instant::now() >= at);
                    let mut store_now = due && store_failing;
                    let mut late_now = false;
                    match w {
                        Some(Work::Freeze(job)) => {
                            if frozen.send(freeze(job)).is_err() {
                                break;
                            }
                            wake();
                        }
                        // Every hour that left before the stop was stored first: each add
                        // sent its `Store` ahead of this.
                        Some(Work::Stop) => break,
                        Some(Work::Free(retired)) => drop(retired),
                        Some(Work::Discard(frozen)) => drop(frozen),
                        Some(Work::Store) => store_now = true,
                        Some(Work::Late) => late_now = true,
                        None => {}
                    }
                    // Late events first, then the stores (the late thread also removes the
                    // files past the retention, after the late events it has).
                    if let (true, Some(late)) = (late_now, late.as_mut()) {
                        late();
                    }
                    if let (true, Some(store)) = (store_now, store.as_mut()) {
                        store_failing = !store();
                    }
                    if store_now {
                        // Other work never holds a retry off past its time.
                        retry_at = match retry_at {
                            _ if !store_failing => None,
                            // A try that is not due yet keeps its time.
                            Some(at) if !due => Some(at),
                            _ => Some(Instant::now() + STORE_RETRY),
                        };
                    }
                }
            })?;
        Ok(Self {
            work,
            done,
            under_way: false,
            held: None,
            seen_newest: crate::ring::EMPTY,
            turns: 0,
            gone: false,
            thread: Some(thread),
        })
    }

    /// One turn between batches, after a publish.
    pub fn turn(&mut self, ring: &mut RingWriter) {
        let mut look = false;
        if self.gone {
            return;
        }
        if self.under_way {
            let frozen = match self.held.take() {
                Some(frozen) => frozen,
                None => match self.done.try_recv() {
                    Ok(frozen) => frozen,
                    Err(mpsc::TryRecvError::Empty) => return,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        // The hours stay as they are (live hours count and list their users
                        // as before); only the memory a freeze saves is not saved.
                        self.gone = true;
                        self.under_way = false;
                        return;
                    }
                },
            };
            // The thread frees what the writer lets go of (if it is gone: here).
            match ring.install(frozen) {
                Installed::Wait(frozen) => {
                    self.held = Some(frozen);
                    return;
                }
                Installed::Stale(frozen) => {
                    let _ = self.work.send(Work::Discard(frozen));
                }
                Installed::Done(retired) => {
                    let _ = self.work.send(Work::Free(retired));
                }
            }
            self.under_way = false;
            look = true;
        }
        self.turns += 1;
        let newest = ring.newest();
        if newest != self.seen_newest || self.turns >= RESCAN_TURNS {
            look = true;
        }
        if !look {
            return;
        }
        self.seen_newest = newest;
        self.turns = 0;
        if let Some(job) = ring.freeze_job() {
            match self.work.send(Work::Freeze(job)) {
                Ok(()) => self.under_way = true,
                // The thread is gone (it panicked, which the hook printed).
                Err(_) => self.gone = true,
            }
        }
    }
}

impl Drop for Freezer {
    /// Ends the thread once it has done what it was given (the ring's waker keeps the
    /// channel open, so the thread would not see it close), and waits for it: a stop's last
    /// stores, late events and removals of files past the retention are done before the
    /// data directory's lock is let go.
    fn drop(&mut self) {
        let _ = self.work.send(Work::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
