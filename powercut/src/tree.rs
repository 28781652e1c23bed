//! The filesystem's contents, in memory, each inode in two states: what a program sees now
//! (`current`) and what would survive a power loss (`durable`).
//!
//! What becomes durable, and when (the rules of Jepsen's LazyFS, and of POSIX at its
//! strictest):
//! - a file's data and size: when the file is `fsync`'ed or `fdatasync`'ed;
//! - a directory's entries (a file or directory created, renamed into or out of it, or
//!   unlinked): when the directory itself is `fsync`'ed. An entry that is durable names an
//!   inode; after a cut that inode has its own durable state, which may be empty (a file
//!   whose data was never synced) or older than what the program last wrote.
//!
//! A [`Tree::cut`] is the power loss: every inode's current state becomes its durable one.
//! Inodes are never freed (an unlinked file may come back with its directory's durable
//! entries), which is fine for a filesystem that lives as long as one test.
//!
//! Attributes other than the size (mode, times) are not versioned: nothing the tests look at
//! depends on them.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};

/// The root directory's inode number (FUSE's `FUSE_ROOT_ID`).
pub const ROOT: u64 = 1;

/// An error as an errno value (`libc::ENOENT`, …), as FUSE answers it.
pub type Errno = i32;

/// A regular file's bytes, now and as last synced.
#[derive(Debug, Default)]
pub struct FileData {
    /// What reads see now.
    current: Vec<u8>,
    /// What a cut leaves: the bytes as of the last `fsync`/`fdatasync`.
    durable: Vec<u8>,
    /// `current` and `durable` agree on every byte below this (and both are at least this
    /// long): a sync copies only what lies past it, so syncing an append-only journal costs
    /// the bytes appended, not the whole file.
    same_below: usize,
}

impl FileData {
    /// Notes that bytes from `at` on (may) differ from `durable`.
    fn touched(&mut self, at: usize) {
        self.same_below = self.same_below.min(at);
    }

    /// Makes the current bytes durable.
    fn sync(&mut self) {
        self.durable.truncate(self.same_below);
        self.durable
            .extend_from_slice(&self.current[self.same_below..]);
        self.same_below = self.current.len();
    }

    /// Bytes past the last sync (what a cut drops, or a torn cut may keep a prefix of).
    fn unsynced(&self) -> usize {
        self.current.len().saturating_sub(self.same_below)
    }

    /// A power loss after the OS wrote back, in order, the first `k` of the bytes changed
    /// since the last sync (at most all of them): the file keeps its current bytes up to
    /// there, and they are durable now.
    fn cut_keeping(&mut self, k: usize) {
        let keep = self.same_below + k.min(self.unsynced());
        self.current.truncate(keep);
        self.durable.clone_from(&self.current);
        self.same_below = keep;
    }

    /// Drops every byte written since the last sync.
    fn cut(&mut self) {
        self.current.truncate(self.same_below);
        self.current
            .extend_from_slice(&self.durable[self.same_below..]);
        self.same_below = self.durable.len();
    }
}

/// A directory's entries, now and as last synced.
#[derive(Debug, Default)]
pub struct DirData {
    /// What lookups see now: name → inode.
    current: BTreeMap<OsString, u64>,
    /// What a cut leaves: the entries as of the directory's last `fsync`.
    durable: BTreeMap<OsString, u64>,
}

/// What an inode holds.
#[derive(Debug)]
pub enum Node {
    /// A regular file.
    File(FileData),
    /// A directory.
    Dir(DirData),
}

/// An inode's kind, as `readdir` and `getattr` tell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// What `getattr` answers for one inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    /// The inode number.
    pub ino: u64,
    /// File or directory.
    pub kind: Kind,
    /// Bytes (a file's current length; 0 for a directory).
    pub size: u64,
    /// Permission bits.
    pub perm: u16,
}

/// Every inode; inode `n` is `nodes[n - 1]`.
#[derive(Debug)]
pub struct Tree {
    /// The inodes, with their permission bits.
    nodes: Vec<(Node, u16)>,
    /// Power losses so far.
    cuts: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// An empty filesystem: a root directory with no entries (durably none).
    pub fn new() -> Self {
        Tree {
            nodes: vec![(Node::Dir(DirData::default()), 0o755)],
            cuts: 0,
        }
    }

    /// How many times [`cut`](Self::cut) ran.
    pub fn cuts(&self) -> u64 {
        self.cuts
    }

    fn node(&self, ino: u64) -> Result<&Node, Errno> {
        let i = usize::try_from(ino.wrapping_sub(1)).map_err(|_| libc::ENOENT)?;
        self.nodes.get(i).map(|n| &n.0).ok_or(libc::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut (Node, u16), Errno> {
        let i = usize::try_from(ino.wrapping_sub(1)).map_err(|_| libc::ENOENT)?;
        self.nodes.get_mut(i).ok_or(libc::ENOENT)
    }

    fn dir(&self, ino: u64) -> Result<&DirData, Errno> {
        match self.node(ino)? {
            Node::Dir(d) => Ok(d),
            Node::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut DirData, Errno> {
        match &mut self.node_mut(ino)?.0 {
            Node::Dir(d) => Ok(d),
            Node::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn file(&self, ino: u64) -> Result<&FileData, Errno> {
        match self.node(ino)? {
            Node::File(f) => Ok(f),
            Node::Dir(_) => Err(libc::EISDIR),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileData, Errno> {
        match &mut self.node_mut(ino)?.0 {
            Node::File(f) => Ok(f),
            Node::Dir(_) => Err(libc::EISDIR),
        }
    }

    /// The attributes of `ino` now.
    pub fn attr(&self, ino: u64) -> Result<Attr, Errno> {
        let i = usize::try_from(ino.wrapping_sub(1)).map_err(|_| libc::ENOENT)?;
        let (node, perm) = self.nodes.get(i).ok_or(libc::ENOENT)?;
        let (kind, size) = match node {
            Node::File(f) => (Kind::File, f.current.len() as u64),
            Node::Dir(_) => (Kind::Dir, 0),
        };
        Ok(Attr {
            ino,
            kind,
            size,
            perm: *perm,
        })
    }

    /// The inode `name` names in directory `parent` now.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.dir(parent)?
            .current
            .get(name)
            .copied()
            .ok_or(libc::ENOENT)
    }

    /// Adds a new inode under `parent` as `name` (not durable until `parent` is synced).
    fn add(&mut self, parent: u64, name: &OsStr, node: Node, perm: u16) -> Result<u64, Errno> {
        if self.dir(parent)?.current.contains_key(name) {
            return Err(libc::EEXIST);
        }
        self.nodes.push((node, perm));
        let ino = self.nodes.len() as u64;
        self.dir_mut(parent)?.current.insert(name.to_owned(), ino);
        Ok(ino)
    }

    /// Creates an empty file `name` in `parent`.
    pub fn create_file(&mut self, parent: u64, name: &OsStr, perm: u16) -> Result<u64, Errno> {
        self.add(parent, name, Node::File(FileData::default()), perm)
    }

    /// Creates an empty directory `name` in `parent`.
    pub fn mkdir(&mut self, parent: u64, name: &OsStr, perm: u16) -> Result<u64, Errno> {
        self.add(parent, name, Node::Dir(DirData::default()), perm)
    }

    /// Writes `data` at `offset` (at the end when `append`), zero-filling any hole; returns
    /// the bytes written.
    pub fn write(
        &mut self,
        ino: u64,
        offset: u64,
        data: &[u8],
        append: bool,
    ) -> Result<usize, Errno> {
        let f = self.file_mut(ino)?;
        let len = f.current.len();
        let at = if append {
            len
        } else {
            usize::try_from(offset).map_err(|_| libc::EFBIG)?
        };
        let end = at.checked_add(data.len()).ok_or(libc::EFBIG)?;
        f.touched(at.min(len));
        if f.current.len() < end {
            f.current.resize(end, 0);
        }
        f.current[at..end].copy_from_slice(data);
        Ok(data.len())
    }

    /// Up to `size` bytes of `ino` from `offset`.
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<&[u8], Errno> {
        let f = self.file(ino)?;
        let len = f.current.len();
        let at = usize::try_from(offset).map_or(len, |o| o.min(len));
        let end = at.saturating_add(size as usize).min(len);
        Ok(&f.current[at..end])
    }

    /// Cuts or extends (with zeros) `ino` to `len` bytes.
    pub fn set_len(&mut self, ino: u64, len: u64) -> Result<(), Errno> {
        let len = usize::try_from(len).map_err(|_| libc::EFBIG)?;
        let f = self.file_mut(ino)?;
        f.touched(len.min(f.current.len()));
        f.current.resize(len, 0);
        Ok(())
    }

    /// Sets the permission bits of `ino`.
    pub fn set_perm(&mut self, ino: u64, perm: u16) -> Result<(), Errno> {
        self.node_mut(ino)?.1 = perm;
        Ok(())
    }

    /// Removes the entry `name` from `parent`: a file (`dir` false) or an empty directory.
    pub fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        match (self.node(ino)?, dir) {
            (Node::File(_), true) => return Err(libc::ENOTDIR),
            (Node::Dir(_), false) => return Err(libc::EISDIR),
            (Node::Dir(d), true) if !d.current.is_empty() => return Err(libc::ENOTEMPTY),
            _ => {}
        }
        self.dir_mut(parent)?.current.remove(name);
        Ok(())
    }

    /// Moves the entry `name` of `parent` to `new_name` in `new_parent`, replacing what was
    /// there (a file, or an empty directory) in one step, as `rename(2)` does; refuses to
    /// replace anything when `no_replace`.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        let moving_dir = matches!(self.node(ino)?, Node::Dir(_));
        if let Ok(old) = self.lookup(new_parent, new_name) {
            if old == ino {
                return Ok(());
            }
            if no_replace {
                return Err(libc::EEXIST);
            }
            match (self.node(old)?, moving_dir) {
                (Node::Dir(d), true) if !d.current.is_empty() => return Err(libc::ENOTEMPTY),
                (Node::Dir(_), false) => return Err(libc::EISDIR),
                (Node::File(_), true) => return Err(libc::ENOTDIR),
                _ => {}
            }
        }
        self.dir_mut(new_parent)?;
        self.dir_mut(parent)?.current.remove(name);
        self.dir_mut(new_parent)?
            .current
            .insert(new_name.to_owned(), ino);
        Ok(())
    }

    /// The entries of directory `ino` now, in name order: name, inode, kind.
    pub fn entries(&self, ino: u64) -> Result<Vec<(OsString, u64, Kind)>, Errno> {
        let d = self.dir(ino)?;
        d.current
            .iter()
            .map(|(name, &child)| Ok((name.clone(), child, self.attr(child)?.kind)))
            .collect()
    }

    /// `fsync`/`fdatasync` of `ino`: a file's current bytes become durable; a directory's
    /// current entries do.
    pub fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        match &mut self.node_mut(ino)?.0 {
            Node::File(f) => f.sync(),
            Node::Dir(d) => d.durable.clone_from(&d.current),
        }
        Ok(())
    }

    /// A power loss that tears writes: each file keeps a prefix of what was written since its
    /// last sync, `keep(unsynced)` bytes of it (at most all), as if the OS had written that
    /// much back in order before the power went; directories go back to their durable
    /// entries, as in [`cut`](Self::cut). An append-only file then ends in a torn record,
    /// which is what its reader must cut off.
    pub fn cut_torn(&mut self, keep: &mut dyn FnMut(usize) -> usize) {
        for (node, _) in &mut self.nodes {
            match node {
                Node::File(f) => {
                    let k = keep(f.unsynced());
                    f.cut_keeping(k);
                }
                Node::Dir(d) => d.current.clone_from(&d.durable),
            }
        }
        self.cuts += 1;
    }

    /// The power loss: every inode goes back to its durable state.
    pub fn cut(&mut self) {
        for (node, _) in &mut self.nodes {
            match node {
                Node::File(f) => f.cut(),
                Node::Dir(d) => d.current.clone_from(&d.durable),
            }
        }
        self.cuts += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn a_cut_drops_a_file_whose_directory_was_never_synced_even_if_its_data_was() {
        let mut t = Tree::new();
        let f = t.create_file(ROOT, name("a"), 0o644).expect("create");
        t.write(f, 0, b"hello", false).expect("write");
        t.sync(f).expect("sync");
        t.cut();
        assert_eq!(t.lookup(ROOT, name("a")), Err(libc::ENOENT));
    }

    #[test]
    fn a_synced_directory_keeps_its_entry_with_the_files_durable_bytes_only() {
        let mut t = Tree::new();
        let f = t.create_file(ROOT, name("a"), 0o644).expect("create");
        t.write(f, 0, b"hello", false).expect("write");
        t.sync(ROOT).expect("sync dir");
        t.cut();
        assert_eq!(t.lookup(ROOT, name("a")), Ok(f));
        assert_eq!(t.read(f, 0, 100), Ok(&b""[..]), "data never synced");
        t.write(f, 0, b"hello", false).expect("write");
        t.sync(f).expect("sync");
        t.write(f, 5, b" world", true).expect("append");
        t.cut();
        assert_eq!(t.read(f, 0, 100), Ok(&b"hello"[..]));
    }

    #[test]
    fn a_sync_after_overwrites_and_truncations_keeps_exactly_the_current_bytes() {
        let mut t = Tree::new();
        let f = t.create_file(ROOT, name("a"), 0o644).expect("create");
        t.sync(ROOT).expect("sync dir");
        t.write(f, 0, b"0123456789", false).expect("write");
        t.sync(f).expect("sync");
        t.write(f, 2, b"xx", false).expect("overwrite");
        t.set_len(f, 6).expect("truncate");
        t.write(f, 8, b"yy", false).expect("write past the end");
        t.sync(f).expect("sync");
        t.write(f, 0, b"zzzz", false).expect("unsynced");
        t.set_len(f, 1).expect("unsynced truncate");
        t.cut();
        assert_eq!(t.read(f, 0, 100), Ok(&b"01xx45\0\0yy"[..]));
    }

    #[test]
    fn a_rename_is_durable_only_once_the_directory_is_synced_and_replaces_atomically() {
        let mut t = Tree::new();
        let old = t.create_file(ROOT, name("meta"), 0o644).expect("create");
        t.write(old, 0, b"old", false).expect("write");
        t.sync(old).expect("sync");
        t.sync(ROOT).expect("sync dir");
        let tmp = t
            .create_file(ROOT, name("meta.tmp"), 0o644)
            .expect("create");
        t.write(tmp, 0, b"new", false).expect("write");
        t.sync(tmp).expect("sync");
        t.rename(ROOT, name("meta.tmp"), ROOT, name("meta"), false)
            .expect("rename");
        assert_eq!(t.lookup(ROOT, name("meta")), Ok(tmp));
        t.cut();
        assert_eq!(t.lookup(ROOT, name("meta")), Ok(old), "rename not synced");
        assert_eq!(t.lookup(ROOT, name("meta.tmp")), Err(libc::ENOENT));
        t.rename(ROOT, name("meta"), ROOT, name("other"), false)
            .expect("rename");
        t.sync(ROOT).expect("sync dir");
        t.cut();
        assert_eq!(t.lookup(ROOT, name("other")), Ok(old));
        assert_eq!(t.lookup(ROOT, name("meta")), Err(libc::ENOENT));
    }

    #[test]
    fn a_torn_cut_keeps_a_prefix_of_the_unsynced_bytes_and_makes_it_durable() {
        let mut t = Tree::new();
        let f = t.create_file(ROOT, name("log"), 0o644).expect("create");
        t.sync(ROOT).expect("sync dir");
        t.write(f, 0, b"abcd", false).expect("write");
        t.sync(f).expect("sync");
        t.write(f, 4, b"efghij", false).expect("append");
        let mut seen = Vec::new();
        t.cut_torn(&mut |unsynced| {
            seen.push(unsynced);
            3
        });
        assert_eq!(seen, [6], "only the file's unsynced bytes are offered");
        assert_eq!(t.read(f, 0, 100).expect("read"), b"abcdefg");
        // What the torn cut kept is durable: a plain cut now keeps it all.
        t.cut();
        assert_eq!(t.read(f, 0, 100).expect("read"), b"abcdefg");
    }

    #[test]
    fn an_unlink_not_synced_comes_back_after_a_cut() {
        let mut t = Tree::new();
        let d = t.mkdir(ROOT, name("d"), 0o755).expect("mkdir");
        let f = t.create_file(d, name("seg"), 0o644).expect("create");
        t.write(f, 0, b"events", false).expect("write");
        t.sync(f).expect("sync");
        t.sync(d).expect("sync d");
        t.sync(ROOT).expect("sync root");
        assert_eq!(t.remove(ROOT, name("d"), true), Err(libc::ENOTEMPTY));
        t.remove(d, name("seg"), false).expect("unlink");
        t.cut();
        assert_eq!(t.lookup(d, name("seg")), Ok(f));
        assert_eq!(t.read(f, 0, 100), Ok(&b"events"[..]));
        assert_eq!(t.cuts(), 1);
    }
}
