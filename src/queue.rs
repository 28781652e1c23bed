//! The bounded multi-producer queue between the HTTP edge and the writer, behind the small
//! interface the writer protocol needs.
//!
//! Outside loom it is crossbeam's `ArrayQueue`: lock-free, a fixed ring allocated once, a
//! push or pop is one compare-and-swap. `ArrayQueue` is not built on loom's atomics, so loom
//! could not see inside it; under `--cfg hourtally_loom` the same interface is backed by a
//! loom `Mutex<VecDeque>`, which loom does see. The loom models therefore check the protocol
//! *around* the queue (every push popped once, FIFO order, the park handshake, shutdown) and
//! take `ArrayQueue`'s own correctness from crossbeam's tests.

#[cfg(not(hourtally_loom))]
use crossbeam_queue::ArrayQueue;

/// A bounded FIFO queue: any number of producers, one consumer.
#[derive(Debug)]
pub struct Queue<T> {
    #[cfg(not(hourtally_loom))]
    inner: ArrayQueue<T>,
    #[cfg(hourtally_loom)]
    inner: loom::sync::Mutex<std::collections::VecDeque<T>>,
    #[cfg(hourtally_loom)]
    capacity: usize,
}

impl<T> Queue<T> {
    /// A queue holding at most `capacity` items. Panics if `capacity` is zero.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "queue capacity must be at least 1");
        Self {
            #[cfg(not(hourtally_loom))]
            inner: ArrayQueue::new(capacity),
            #[cfg(hourtally_loom)]
            inner: loom::sync::Mutex::new(std::collections::VecDeque::with_capacity(capacity)),
            #[cfg(hourtally_loom)]
            capacity,
        }
    }

    /// Appends `item`, or gives it back if the queue is full.
    ///
    /// The push is a sequentially consistent operation (ArrayQueue: a SeqCst CAS on its tail;
    /// the stand-in: a mutex), which the writer's park handshake relies on.
    #[inline]
    pub fn push(&self, item: T) -> Result<(), T> {
        #[cfg(not(hourtally_loom))]
        return self.inner.push(item);
        #[cfg(hourtally_loom)]
        {
            let mut q = self
                .inner
                .lock()
                .expect("loom Mutex is never poisoned here");
            if q.len() == self.capacity {
                return Err(item);
            }
            q.push_back(item);
            Ok(())
        }
    }

    /// Removes the oldest item.
    #[inline]
    pub fn pop(&self) -> Option<T> {
        #[cfg(not(hourtally_loom))]
        return self.inner.pop();
        #[cfg(hourtally_loom)]
        return self
            .inner
            .lock()
            .expect("loom Mutex is never poisoned here")
            .pop_front();
    }

    /// Whether the queue is empty at this instant.
    #[inline]
    pub fn is_empty(&self) -> bool {
        #[cfg(not(hourtally_loom))]
        return self.inner.is_empty();
        #[cfg(hourtally_loom)]
        return self
            .inner
            .lock()
            .expect("loom Mutex is never poisoned here")
            .is_empty();
    }

    /// Items queued at this instant.
    pub fn len(&self) -> usize {
        #[cfg(not(hourtally_loom))]
        return self.inner.len();
        #[cfg(hourtally_loom)]
        return self
            .inner
            .lock()
            .expect("loom Mutex is never poisoned here")
            .len();
    }

    /// The most items the queue holds.
    pub fn capacity(&self) -> usize {
        #[cfg(not(hourtally_loom))]
        return self.inner.capacity();
        #[cfg(hourtally_loom)]
        return self.capacity;
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
