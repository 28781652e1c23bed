//! The words of a cold set: its own, or a file's, mapped read-only into memory.
//!
//! A set built from values, or parsed from bytes, owns its words. A set read from a file for
//! a union (`ColdSet::map_file`) uses the file's pages where they are: no copy and no heap,
//! so a range over many hours costs page cache (counted in the process's RSS while resident,
//! but clean pages the kernel can take back under pressure and read again) rather than a
//! heap the size of every hour it reads. The price: a disk's read error under a mapped page
//! arrives as `SIGBUS`, which stops the process, where a `read` would have failed one range.

use std::fs::File;
use std::io;
use std::ops::Deref;

// Not `crate::sync`'s: see `coldset`'s import.
use std::sync::Arc;

/// A file mapped read-only, unmapped when dropped.
#[derive(Debug)]
pub(super) struct Mapping {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only (`PROT_READ`, private), nothing of this process writes it
// and `ColdSet::map_file`'s caller promises that nothing else writes the file in place, so
// sharing its address between threads shares immutable bytes; it is unmapped only by `Drop`,
// once no `Words` holds it.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`: no interior mutability, every access is a read.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the whole of `file` read-only (an empty file: a mapping of no bytes).
    pub(super) fn of(file: &File) -> io::Result<Mapping> {
        use std::os::fd::AsRawFd;
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::other("a file larger than the address space"))?;
        if len == 0 {
            // mmap refuses a length of 0; no bytes need no mapping.
            return Ok(Mapping {
                ptr: std::ptr::NonNull::<u64>::dangling().as_ptr().cast(),
                len: 0,
            });
        }
        // SAFETY: a new private read-only mapping of `len` bytes of an open file descriptor;
        // the kernel picks the address, so it overlaps nothing of ours. The result is checked
        // against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: ptr as *const u8,
            len,
        })
    }

    /// How many bytes are mapped (the file's length when it was mapped).
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The file's bytes.
    pub(super) fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is the start of a live read-only mapping of `len` bytes (unmapped only
        // in `drop`, which needs `&mut self`), or a dangling aligned pointer with `len` 0. The
        // bytes do not change under the slice: `ColdSet::map_file`'s caller promises that
        // nothing writes or truncates the file in place (the cold tier replaces files by
        // renaming a new one over them, which leaves the mapped inode whole).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: `ptr`/`len` are the mapping `of` made; no slice of it outlives `self` (every
        // `Words` that reads it holds an `Arc` of it).
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
    }
}

/// A set's words (`u64`, little-endian in a file).
#[derive(Clone)]
pub(super) enum Words {
    Owned(Vec<u64>),
    /// `len` words of a mapping, from byte `start` (a multiple of 8).
    Mapped {
        map: Arc<Mapping>,
        start: usize,
        len: usize,
    },
}

impl Words {
    /// `len` words of `map` from byte `start`, if they are within it and aligned, and the
    /// target reads little-endian words as they are stored; `None` otherwise (the caller
    /// copies them).
    pub(super) fn mapped(map: &Arc<Mapping>, start: usize, len: usize) -> Option<Words> {
        let aligned = (map.ptr as usize + start).is_multiple_of(std::mem::align_of::<u64>());
        let inside = len
            .checked_mul(8)
            .and_then(|b| b.checked_add(start))
            .is_some_and(|end| end <= map.len);
        (cfg!(target_endian = "little") && aligned && inside).then(|| Words::Mapped {
            map: Arc::clone(map),
            start,
            len,
        })
    }
}

impl Deref for Words {
    type Target = [u64];

    #[inline]
    fn deref(&self) -> &[u64] {
        match self {
            Words::Owned(words) => words,
            Words::Mapped { map, start, len } => {
                // SAFETY: `Words::mapped` checked that the `len` words from `start` lie inside
                // the mapping and are aligned for `u64`, and that the target is little-endian,
                // so the stored bytes are the words' values; every bit pattern is a valid
                // `u64`. The mapping lives as long as the `Arc` this `Words` holds.
                unsafe { std::slice::from_raw_parts(map.ptr.add(*start).cast::<u64>(), *len) }
            }
        }
    }
}

impl PartialEq for Words {
    fn eq(&self, other: &Words) -> bool {
        **self == **other
    }
}

impl Eq for Words {}

impl std::fmt::Debug for Words {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Words::Owned(_) => "owned",
            Words::Mapped { .. } => "mapped",
        };
        write!(f, "Words({} {kind})", self.len())
    }
}
