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

use std::sync::mpsc;

use crate::ring::freeze::{freeze, FreezeJob, Frozen, Retired};
use crate::ring::RingWriter;

/// Turns between two looks for an hour to freeze again.
pub const RESCAN_TURNS: u32 = 4096;

enum Work {
    Freeze(FreezeJob),
    Free(Retired),
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
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Work::Freeze(job) => write!(f, "Freeze(hour {})", job.hour()),
            Work::Free(_) => f.write_str("Free"),
        }
    }
}

/// Returns the allocator's free memory to the OS. A freeze frees an hour's user set and log
/// (tables under 64 KiB come from the allocator, `ring/zeroed.rs`) and its own sorting
/// buffers, and glibc keeps freed heap memory, and raises its mapping threshold after each
/// big free, so without this a frozen hour's memory would stay resident as holes
/// (`FROZEN=1 scripts/bench-memory.sh` measured 25.5 bytes a user at 1 M users frozen,
/// more than live).
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free memory of glibc's own arenas; it reads or
    // writes no memory of ours, and may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Freezer {
    /// Starts the thread; it calls `wake` after each freeze it finishes, so that a sleeping
    /// writer wakes to install it.
    pub fn start(wake: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let (work, jobs) = mpsc::channel::<Work>();
        let (frozen, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("hourtally-freeze".into())
            .spawn(move || {
                for w in jobs {
                    match w {
                        Work::Freeze(job) => {
                            if frozen.send(freeze(job)).is_err() {
                                return;
                            }
                            wake();
                        }
                        Work::Free(retired) => {
                            drop(retired);
                            give_back_freed_memory();
                        }
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
        })
    }

    /// One turn between batches, after a publish.
    pub fn turn(&mut self, ring: &mut RingWriter) {
        let mut look = false;
        if self.under_way {
            let Some(frozen) = self.held.take().or_else(|| self.done.try_recv().ok()) else {
                return;
            };
            match ring.install(frozen) {
                Err(frozen) => {
                    self.held = Some(frozen);
                    return;
                }
                Ok(retired) => {
                    self.under_way = false;
                    if let Some(retired) = retired {
                        // The thread is gone only if it panicked: then drop here.
                        let _ = self.work.send(Work::Free(retired));
                    }
                    look = true;
                }
            }
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

    /// Waits until every freeze there is to do is installed (tests and the benchmarks: the
    /// writer does not).
    pub fn settle(&mut self, ring: &mut RingWriter) {
        loop {
            self.turns = RESCAN_TURNS;
            self.turn(ring);
            // Done, or held behind a capture that only the writer's turns finish.
            if !self.under_way || self.held.is_some() {
                return;
            }
            if let Ok(frozen) = self.done.recv() {
                self.held = Some(frozen);
            } else {
                return;
            }
        }
    }
}
