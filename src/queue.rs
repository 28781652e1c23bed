//! The bounded multi-producer queue between the HTTP edge and the writer, behind the small
//! interface the writer protocol needs.
//!
//! Outside loom it is crossbeam's `ArrayQueue`: lock-free, a fixed ring allocated once, a
//! push or pop is one compare-and-swap. `ArrayQueue` is not built on loom's atomics, so loom
//! could not see inside it; under `--cfg hourtally_loom` the same interface is backed by
//! [`loom_array_queue::ArrayQueue`], a port of crossbeam-queue 0.3's algorithm (same stamps,
//! lap bits and memory orderings) onto loom's atomics and `UnsafeCell`. The loom models
//! therefore check the protocol around the queue *with* the queue's own synchronization:
//! in particular the park handshake's two SeqCst fences, which a lock-based stand-in would
//! make redundant.

#[cfg(not(hourtally_loom))]
use crossbeam_queue::ArrayQueue;
#[cfg(hourtally_loom)]
use loom_array_queue::ArrayQueue;

/// A bounded FIFO queue: any number of producers, one consumer.
#[derive(Debug)]
pub struct Queue<T> {
    inner: ArrayQueue<T>,
}

impl<T> Queue<T> {
    /// A queue holding at most `capacity` items. Panics if `capacity` is zero.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "queue capacity must be at least 1");
        Self {
            inner: ArrayQueue::new(capacity),
        }
    }

    /// Appends `item`, or gives it back if the queue is full.
    ///
    /// The push is a SeqCst CAS on the queue's tail, which the writer's park handshake
    /// relies on (together with its two SeqCst fences).
    #[inline]
    pub fn push(&self, item: T) -> Result<(), T> {
        self.inner.push(item)
    }

    /// Removes the oldest item.
    #[inline]
    pub fn pop(&self) -> Option<T> {
        self.inner.pop()
    }

    /// Whether the queue is empty at this instant.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Items queued at this instant.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// The most items the queue holds.
    pub fn capacity(&self) -> usize {
        self.inner.capacity()
    }
}

/// crossbeam-queue 0.3's `ArrayQueue` (Dmitry Vyukov's bounded MPMC queue) on loom's atomics,
/// for the loom models only. Only what `Queue` uses is ported (no `force_push`, no
/// `*_mut`); indices are `usize` (crossbeam uses `u64` where it has it: same algorithm).
///
/// Head and tail are `{ lap, index }` packed in one word: the low bits (below `one_lap`, the
/// smallest power of two above `cap`) are the slot index, the high bits count laps. A slot's
/// stamp is `tail + 1` once it holds a value pushed at `tail`, and `head + one_lap` once the
/// value was popped at `head` (free for the next lap).
#[cfg(hourtally_loom)]
mod loom_array_queue {
    use std::mem::MaybeUninit;

    use loom::cell::UnsafeCell;

    use crate::sync::{fence, spin_loop, AtomicUsize, Ordering};

    struct Slot<T> {
        /// The slot's lap and index, as described above.
        stamp: AtomicUsize,
        /// Initialized exactly while `stamp == tail + 1` for the push that wrote it. A loom
        /// cell: loom reports any access that is not ordered after the previous one.
        value: UnsafeCell<MaybeUninit<T>>,
    }

    pub(super) struct ArrayQueue<T> {
        head: AtomicUsize,
        tail: AtomicUsize,
        buffer: Box<[Slot<T>]>,
        cap: usize,
        one_lap: usize,
    }

    // SAFETY: as crossbeam's: a value moves from the pushing thread to the popping thread
    // (hence `T: Send`), and the stamps give each slot's value to one thread at a time.
    unsafe impl<T: Send> Sync for ArrayQueue<T> {}
    // SAFETY: the queue owns its values; sending it sends them (`T: Send`).
    unsafe impl<T: Send> Send for ArrayQueue<T> {}

    impl<T> std::fmt::Debug for ArrayQueue<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.pad("ArrayQueue { .. }")
        }
    }

    impl<T> ArrayQueue<T> {
        pub(super) fn new(cap: usize) -> Self {
            assert!(cap > 0, "capacity must be non-zero");
            let buffer = (0..cap)
                .map(|i| Slot {
                    // `{ lap: 0, index: i }`: free for the push at tail `i`.
                    stamp: AtomicUsize::new(i),
                    value: UnsafeCell::new(MaybeUninit::uninit()),
                })
                .collect();
            let one_lap = (cap + 1).next_power_of_two();
            Self {
                head: AtomicUsize::new(0),
                tail: AtomicUsize::new(0),
                buffer,
                cap,
                one_lap,
            }
        }

        /// The position after `pos`: next index, or index 0 of the next lap.
        fn next(&self, pos: usize) -> usize {
            let index = pos & (self.one_lap - 1);
            let lap = pos & !(self.one_lap - 1);
            if index + 1 < self.cap {
                pos + 1
            } else {
                lap.wrapping_add(self.one_lap)
            }
        }

        fn slot(&self, pos: usize) -> &Slot<T> {
            let index = pos & (self.one_lap - 1);
            debug_assert!(index < self.buffer.len());
            // SAFETY: positions are only ever built by `next` from 0, so their index is
            // below `cap == buffer.len()` (checked just above in debug builds).
            unsafe { self.buffer.get_unchecked(index) }
        }

        pub(super) fn push(&self, value: T) -> Result<(), T> {
            // Relaxed: only a guess; the stamp (Acquire) and the CAS decide.
            let mut tail = self.tail.load(Ordering::Relaxed);
            loop {
                let new_tail = self.next(tail);
                let slot = self.slot(tail);
                // Acquire: pairs with the pop that freed the slot (its Release stamp store),
                // so our write below comes after its read of the old value.
                let stamp = slot.stamp.load(Ordering::Acquire);
                if tail == stamp {
                    // SeqCst: crossbeam's; the tail's CAS is what the writer's `is_empty`
                    // (SeqCst loads) and the park handshake's fences are ordered against.
                    // Relaxed on failure: we only retry with the value seen.
                    match self.tail.compare_exchange_weak(
                        tail,
                        new_tail,
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            // SAFETY: the CAS made this thread the only one to own the slot
                            // until the stamp store below, and the stamp said it is free.
                            slot.value
                                .with_mut(|v| unsafe { v.write(MaybeUninit::new(value)) });
                            // Release: publishes the value to the pop that sees this stamp.
                            slot.stamp.store(tail + 1, Ordering::Release);
                            return Ok(());
                        }
                        Err(t) => {
                            tail = t;
                            spin_loop();
                        }
                    }
                } else if stamp.wrapping_add(self.one_lap) == tail + 1 {
                    // The slot still holds last lap's value: the queue may be full.
                    // SeqCst fence: crossbeam's; orders the head load after the stamp load.
                    fence(Ordering::SeqCst);
                    // Relaxed: ordered by the fence above.
                    let head = self.head.load(Ordering::Relaxed);
                    if head.wrapping_add(self.one_lap) == tail {
                        return Err(value);
                    }
                    spin_loop();
                    // Relaxed: a new guess, as at the top.
                    tail = self.tail.load(Ordering::Relaxed);
                } else {
                    // Another push moved the tail but has not written its stamp yet: wait.
                    spin_loop();
                    // Relaxed: a new guess, as at the top.
                    tail = self.tail.load(Ordering::Relaxed);
                }
            }
        }

        pub(super) fn pop(&self) -> Option<T> {
            // Relaxed: only a guess; the stamp (Acquire) and the CAS decide.
            let mut head = self.head.load(Ordering::Relaxed);
            loop {
                let slot = self.slot(head);
                // Acquire: pairs with the push's Release stamp store, so the value is visible.
                let stamp = slot.stamp.load(Ordering::Acquire);
                if head + 1 == stamp {
                    // SeqCst: crossbeam's (head and tail CASes in one total order).
                    // Relaxed on failure: we only retry with the value seen.
                    match self.head.compare_exchange_weak(
                        head,
                        self.next(head),
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            // SAFETY: the stamp said a value was written (and the Acquire
                            // load made it visible); the CAS made this thread the only one
                            // to take it, and the stamp store below frees the slot after.
                            let value = slot.value.with(|v| unsafe { v.read().assume_init() });
                            // Release: the next lap's push writes only after this read.
                            slot.stamp
                                .store(head.wrapping_add(self.one_lap), Ordering::Release);
                            return Some(value);
                        }
                        Err(h) => {
                            head = h;
                            spin_loop();
                        }
                    }
                } else if stamp == head {
                    // The slot is free: the queue may be empty.
                    // SeqCst fence: crossbeam's; orders the tail load after the stamp load.
                    fence(Ordering::SeqCst);
                    // Relaxed: ordered by the fence above.
                    let tail = self.tail.load(Ordering::Relaxed);
                    if tail == head {
                        return None;
                    }
                    spin_loop();
                    // Relaxed: a new guess, as at the top.
                    head = self.head.load(Ordering::Relaxed);
                } else {
                    // A push moved the tail but has not written its value yet: wait.
                    spin_loop();
                    // Relaxed: a new guess, as at the top.
                    head = self.head.load(Ordering::Relaxed);
                }
            }
        }

        pub(super) fn is_empty(&self) -> bool {
            // SeqCst: crossbeam's. If the head moves before the tail load, the queue was
            // non-empty at some instant, so `false` is a correct answer.
            let head = self.head.load(Ordering::SeqCst);
            let tail = self.tail.load(Ordering::SeqCst);
            tail == head
        }

        pub(super) fn len(&self) -> usize {
            loop {
                // SeqCst: crossbeam's; a tail unchanged across the head load gives a
                // consistent pair.
                let tail = self.tail.load(Ordering::SeqCst);
                let head = self.head.load(Ordering::SeqCst);
                if self.tail.load(Ordering::SeqCst) == tail {
                    return self.distance(head, tail);
                }
                spin_loop();
            }
        }

        /// Items between `head` and `tail`.
        fn distance(&self, head: usize, tail: usize) -> usize {
            let hix = head & (self.one_lap - 1);
            let tix = tail & (self.one_lap - 1);
            if hix < tix {
                tix - hix
            } else if hix > tix {
                self.cap - hix + tix
            } else if tail == head {
                0
            } else {
                self.cap
            }
        }

        pub(super) fn capacity(&self) -> usize {
            self.cap
        }
    }

    impl<T> Drop for ArrayQueue<T> {
        fn drop(&mut self) {
            // `&mut self`: no other thread can touch the queue, so a loom load is exact.
            let head = self.head.load(Ordering::Relaxed);
            let tail = self.tail.load(Ordering::Relaxed);
            let hix = head & (self.one_lap - 1);
            for i in 0..self.distance(head, tail) {
                let index = (hix + i) % self.cap;
                debug_assert!(index < self.buffer.len());
                // SAFETY: `index < cap` (above); the `len` slots from the head hold values
                // pushed and never popped, each dropped once here.
                let slot = unsafe { self.buffer.get_unchecked(index) };
                // SAFETY: as just said, this slot holds an initialized value.
                slot.value.with_mut(|v| unsafe { (*v).assume_init_drop() });
            }
        }
    }
}

#[cfg(all(test, not(hourtally_loom)))]
mod tests {
    use super::*;

    #[test]
    fn bounded_fifo() {
        let q = Queue::new(2);
        assert!(q.is_empty());
        assert_eq!(q.push(1), Ok(()));
        assert_eq!(q.push(2), Ok(()));
        assert_eq!(q.push(3), Err(3));
        assert_eq!((q.len(), q.capacity()), (2, 2));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), None);
    }
}
