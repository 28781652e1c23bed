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
//! ([`StoreLeft`], `cold`): the writer tells it after a turn in which an hour left; a store
//! that failed (a full disk) is tried again every [`STORE_RETRY`] on its own.

use std::sync::mpsc;

use crate::ring::freeze::{freeze, FreezeJob, Frozen, Installed, Retired};
use crate::ring::RingWriter;

/// Turns between two looks for an hour to freeze again.
pub const RESCAN_TURNS: u32 = 4096;

/// How soon a store of the hours that left the ring is tried again after one failed.
pub const STORE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Stores the hours that left the ring (`cold::ColdTier::store_leaving`): `true` once none
/// is left to store, `false` if one failed and the store is to be tried again.
pub type StoreLeft = Box<dyn FnMut() -> bool + Send>;

enum Work {
    /// Hours left the ring: store them.
    Store,
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
    /// Hours that had left the ring at the last turn (`RingWriter::left`).
    seen_left: u64,
    /// Turns since the last look.
    turns: u32,
    /// The thread is gone (it panicked, which the panic hook printed): no more freezes.
    gone: bool,
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Work::Store => f.write_str("Store"),
            Work::Freeze(job) => write!(f, "Freeze(hour {})", job.hour()),
            Work::Free(_) => f.write_str("Free"),
            Work::Discard(_) => f.write_str("Discard"),
        }
    }
}

impl Freezer {
    /// Starts the thread; it calls `wake` after each freeze it finishes, so that a sleeping
    /// writer wakes to install it, and `store` (if any) when hours left the ring.
    pub fn start(
        wake: impl Fn() + Send + 'static,
        mut store: Option<StoreLeft>,
    ) -> std::io::Result<Self> {
        let (work, jobs) = mpsc::channel::<Work>();
        let (frozen, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("hourtally-freeze".into())
            .spawn(move || {
                // Whether a store failed and is to be tried again.
                let mut retry = false;
                loop {
                    let w = if retry {
                        match jobs.recv_timeout(STORE_RETRY) {
                            Ok(w) => Some(w),
                            Err(mpsc::RecvTimeoutError::Timeout) => None,
                            Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        }
                    } else {
                        match jobs.recv() {
                            Ok(w) => Some(w),
                            Err(mpsc::RecvError) => break,
                        }
                    };
                    match w {
                        Some(Work::Freeze(job)) => {
                            if frozen.send(freeze(job)).is_err() {
                                break;
                            }
                            wake();
                        }
                        Some(Work::Free(retired)) => drop(retired),
                        Some(Work::Discard(frozen)) => drop(frozen),
                        Some(Work::Store) | None => {
                            if let Some(store) = store.as_mut() {
                                retry = !store();
                            }
                        }
                    }
                }
                // The writer is gone (a stop): store what left, once more, for the stop's
                // last snapshot, which waits for it.
                if let Some(store) = store.as_mut() {
                    store();
                }
            })?;
        Ok(Self {
            work,
            done,
            under_way: false,
            held: None,
            seen_newest: crate::ring::EMPTY,
            seen_left: 0,
            turns: 0,
            gone: false,
        })
    }

    /// One turn between batches, after a publish.
    pub fn turn(&mut self, ring: &mut RingWriter) {
        let mut look = false;
        if self.gone {
            return;
        }
        if ring.left() != self.seen_left {
            self.seen_left = ring.left();
            let _ = self.work.send(Work::Store);
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
            if self.work.send(Work::Freeze(job)).is_ok() {
                self.under_way = true;
            }
        }
    }
}
