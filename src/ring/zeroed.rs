//! Zero-filled memory for the user sets' tables, taken from the OS for big tables.
//!
//! Why not the allocator: the writer's tables grow by 5/4 at a time, all 256 stripes of an
//! hour at about the same moment, and each growth frees a table a little smaller than the
//! one it allocates. glibc serves such sizes from the writer thread's arena (its mmap
//! threshold applies only when the arena has no room), so the freed tables stay resident as
//! holes that the larger new ones do not fit: `scripts/bench-memory.sh` measured 12.2 bytes
//! of RSS growth per user at 2 M users where the tables held 10.6. A table of its own
//! mapping is returned to the OS the moment it is dropped, and its fresh pages are zero
//! already, so nothing is cleared either.
//!
//! Tables below [`MAP_MIN`] bytes (hours of fewer than about 2 M users spread over the 256
//! stripes) come from the allocator: there a mapping would waste up to a page per table
//! and a system call per growth for memory that does not matter.

use std::ptr::NonNull;

/// Tables of at least this many bytes get a mapping of their own (on Unix).
pub(super) const MAP_MIN: usize = 64 * 1024;

/// Bytes of a page, for [`Zeroed::footprint`] (the common size; a larger page would only
/// make the footprint an underestimate by less than a page per table).
const PAGE: usize = 4096;

/// `len` zero-initialised bytes, owned like a `Box<[u8]>`.
pub(super) struct Zeroed {
    ptr: NonNull<u8>,
    len: usize,
    /// From `mmap` (released with `munmap`) rather than a `Box<[u8]>`.
    mapped: bool,
}

// SAFETY: `Zeroed` owns its bytes exclusively, as a `Box<[u8]>` does; nothing else holds the
// pointer, so moving it to another thread or sharing `&Zeroed` is as safe as for a box.
unsafe impl Send for Zeroed {}
// SAFETY: as above; `&Zeroed` only gives `&[u8]`.
unsafe impl Sync for Zeroed {}

impl Zeroed {
    /// `len` zero bytes: a mapping of their own if `len >= MAP_MIN` (and the OS gives one),
    /// else from the allocator.
    pub(super) fn new(len: usize) -> Self {
        if len >= MAP_MIN {
            if let Some(z) = Self::map(len) {
                return z;
            }
        }
        let boxed: Box<[u8]> = vec![0u8; len].into_boxed_slice();
        let ptr = NonNull::from(Box::leak(boxed)).cast::<u8>();
        Self {
            ptr,
            len,
            mapped: false,
        }
    }

    #[cfg(unix)]
    fn map(len: usize) -> Option<Self> {
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing
        // touches no existing memory; the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        // Anonymous pages read as zero until written: the bytes are zero-initialised.
        NonNull::new(p.cast::<u8>()).map(|ptr| Self {
            ptr,
            len,
            mapped: true,
        })
    }

    #[cfg(not(unix))]
    fn map(_len: usize) -> Option<Self> {
        None
    }

    /// Bytes of memory this takes: its length, rounded up to whole pages when mapped.
    pub(super) fn footprint(&self) -> usize {
        if self.mapped {
            self.len.div_ceil(PAGE) * PAGE
        } else {
            self.len
        }
    }
}

impl Default for Zeroed {
    fn default() -> Self {
        Self::new(0)
    }
}

impl std::ops::Deref for Zeroed {
    type Target = [u8];

    #[inline(always)]
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` initialised bytes (zeroed at creation) for as long
        // as `self` lives, and only `&mut self` hands out a mutable view.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for Zeroed {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes this view the only one.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Zeroed {
    fn drop(&mut self) {
        if self.mapped {
            #[cfg(unix)]
            // SAFETY: `ptr`/`len` are exactly the mapping `map` made, and no view of it
            // outlives `self`. A failure would only leave the pages mapped.
            unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), self.len);
            }
        } else {
            let slice = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
            // SAFETY: `ptr`/`len` came from `Box::leak` of a `Box<[u8]>` of this length in
            // `new`, and ownership was never given away since.
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}

impl std::fmt::Debug for Zeroed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zeroed")
            .field("len", &self.len)
            .field("mapped", &self.mapped)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_big_tables_are_zeroed_writable_and_sized() {
        for len in [0, 1, 7 * 100 + 1, MAP_MIN - 1, MAP_MIN, 3 * MAP_MIN + 5] {
            let mut z = Zeroed::new(len);
            assert_eq!(z.len(), len);
            assert!(z.iter().all(|&b| b == 0));
            if len > 0 {
                z[len - 1] = 7;
                z[0] = 9;
                assert_eq!((z[0], z[len - 1]), (9, if len == 1 { 9 } else { 7 }));
            }
            assert_eq!(z.mapped, cfg!(unix) && len >= MAP_MIN);
            assert!(z.footprint() >= len && z.footprint() < len + PAGE);
        }
    }
}
