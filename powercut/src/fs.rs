//! The FUSE side: answers the kernel's requests from a [`Tree`].
//!
//! Nothing the kernel caches may outlive a cut, so every answer says so: entries and
//! attributes are valid for zero seconds (every path is looked up again, every size asked
//! again), and every file is opened with `FOPEN_DIRECT_IO` (no page cache: every read and
//! write comes here). Directory listings are not cached either (no `FOPEN_CACHE_DIR`).
//! `flock` is left to the kernel, which handles it locally when the filesystem does not
//! implement it (no `FUSE_FLOCK_LOCKS`): a lock between processes on this machine works.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::tree::{self, Attr, Kind, Tree};

/// How long the kernel may trust an entry or an attribute: not at all.
const TTL: Duration = Duration::ZERO;

/// The filesystem the kernel talks to: the shared [`Tree`] and who owns its files.
pub struct PowerFs {
    /// The contents; the test holds the same `Arc` to cut.
    pub(crate) tree: Arc<Mutex<Tree>>,
    /// Owner reported for every inode (the mounting user).
    uid: u32,
    /// Group reported for every inode.
    gid: u32,
}

impl PowerFs {
    /// A filesystem over `tree`, whose files belong to `uid`/`gid`.
    pub fn new(tree: Arc<Mutex<Tree>>, uid: u32, gid: u32) -> Self {
        PowerFs { tree, uid, gid }
    }

    fn tree(&self) -> MutexGuard<'_, Tree> {
        // A panic while holding the lock leaves a tree that is still whole (every operation
        // checks before it changes anything): go on with it.
        self.tree.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn file_attr(&self, a: Attr) -> FileAttr {
        let (kind, nlink) = match a.kind {
            Kind::File => (FileType::RegularFile, 1),
            Kind::Dir => (FileType::Directory, 2),
        };
        FileAttr {
            ino: INodeNo(a.ino),
            size: a.size,
            blocks: a.size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm: a.perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn entry(&self, result: Result<Attr, tree::Errno>, reply: ReplyEntry) {
        match result {
            Ok(a) => reply.entry(&TTL, &self.file_attr(a), Generation(0)),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn attr(&self, result: Result<Attr, tree::Errno>, reply: ReplyAttr) {
        match result {
            Ok(a) => reply.attr(&TTL, &self.file_attr(a)),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }
}

fn empty(result: Result<(), tree::Errno>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(Errno::from_i32(e)),
    }
}

fn perm(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

impl Filesystem for PowerFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let t = self.tree();
        let result = t.lookup(parent.0, name).and_then(|ino| t.attr(ino));
        drop(t);
        self.entry(result, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let result = self.tree().attr(ino.0);
        self.attr(result, reply);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut t = self.tree();
        let result = (|| {
            if let Some(size) = size {
                t.set_len(ino.0, size)?;
            }
            if let Some(mode) = mode {
                t.set_perm(ino.0, perm(mode, 0))?;
            }
            t.attr(ino.0)
        })();
        drop(t);
        self.attr(result, reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut t = self.tree();
        let result = t
            .mkdir(parent.0, name, perm(mode, umask))
            .and_then(|ino| t.attr(ino));
        drop(t);
        self.entry(result, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.tree().remove(parent.0, name, false), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.tree().remove(parent.0, name, true), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            reply.error(Errno::EINVAL);
            return;
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        empty(
            self.tree()
                .rename(parent.0, name, newparent.0, newname, no_replace),
            reply,
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut t = self.tree();
        let result = t.attr(ino.0).and_then(|a| match a.kind {
            Kind::Dir => Err(libc::EISDIR),
            // The kernel sends O_TRUNC as a setattr unless the filesystem asks for
            // FUSE_ATOMIC_O_TRUNC; honour it here all the same.
            Kind::File if flags.0 & libc::O_TRUNC != 0 => t.set_len(ino.0, 0),
            Kind::File => Ok(()),
        });
        drop(t);
        match result {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let t = self.tree();
        match t.read(ino.0, offset, size) {
            Ok(bytes) => reply.data(bytes),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let append = flags.0 & libc::O_APPEND != 0;
        match self.tree().write(ino.0, offset, data, append) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) makes nothing durable.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(self.tree().sync(ino.0), reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.tree().entries(ino.0) {
            Ok(entries) => entries,
            Err(e) => {
                reply.error(Errno::from_i32(e));
                return;
            }
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (name, child, kind)) in entries.into_iter().enumerate().skip(skip) {
            let kind = match kind {
                Kind::File => FileType::RegularFile,
                Kind::Dir => FileType::Directory,
            };
            // The offset of an entry is where the next call goes on from.
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Must be answered: an ENOSYS would make the kernel treat every later directory
        // fsync as done, and nothing would ever make an entry durable.
        empty(self.tree().sync(ino.0), reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Room enough for any test (the bytes live in memory).
        reply.statfs(1 << 24, 1 << 24, 1 << 24, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut t = self.tree();
        let result = match t.lookup(parent.0, name) {
            Ok(_) if flags & libc::O_EXCL != 0 => Err(libc::EEXIST),
            Ok(ino) if flags & libc::O_TRUNC != 0 => t.set_len(ino, 0).map(|()| ino),
            Ok(ino) => Ok(ino),
            Err(_) => t.create_file(parent.0, name, perm(mode, umask)),
        }
        .and_then(|ino| t.attr(ino))
        .and_then(|a| match a.kind {
            Kind::Dir => Err(libc::EISDIR),
            Kind::File => Ok(a),
        });
        drop(t);
        match result {
            Ok(a) => reply.created(
                &TTL,
                &self.file_attr(a),
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(Errno::from_i32(e)),
        }
    }
}
