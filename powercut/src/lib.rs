//! powercut: a filesystem for tests that can lose power.
//!
//! `kill -9` keeps the page cache, so it never shows what a crash of the machine does to a
//! program's files. [`PowerCut::mount`] mounts an in-memory FUSE filesystem (on the `fuser`
//! crate's pure-Rust mount: no libfuse) that keeps two states of everything, as Jepsen's
//! LazyFS does: what programs see now, and what a power loss would leave. Only `fsync` and
//! `fdatasync` move the second forward: a file's data and size when the file is synced, a
//! directory's entries (created, renamed, unlinked) when the directory is synced.
//! [`PowerCut::cut`] is the power loss: everything not synced is gone, and the next program
//! to open the files sees what a machine that rebooted would see. The rules are in
//! [`tree`].
//!
//! Mounting needs `/dev/fuse` and the right to mount (root, or `fusermount3`). A missing
//! `/dev/fuse` is an error that says so, never a silent skip.

pub mod fs;
pub mod tree;

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use fuser::{BackgroundSession, Config, MountOption};

use crate::fs::PowerFs;
use crate::tree::Tree;

/// A mounted power-loss filesystem; unmounted (and its mount point removed) when dropped,
/// also while a panic unwinds.
pub struct PowerCut {
    /// The contents, shared with the FUSE session's thread.
    tree: Arc<Mutex<Tree>>,
    /// The session serving the kernel; `None` once unmounted.
    session: Option<BackgroundSession>,
    /// Where it is mounted (a directory this created).
    mountpoint: PathBuf,
}

impl PowerCut {
    /// Mounts an empty filesystem at `mountpoint` (created if missing; must be empty).
    pub fn mount(mountpoint: &Path) -> io::Result<PowerCut> {
        if !Path::new("/dev/fuse").exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "/dev/fuse is missing: the power-loss filesystem needs FUSE (load the fuse \
                 module, or give the container --device /dev/fuse)",
            ));
        }
        std::fs::create_dir_all(mountpoint)?;
        let tree = Arc::new(Mutex::new(Tree::new()));
        // SAFETY: getuid and getgid take no arguments, touch no memory of ours and cannot
        // fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let fs = PowerFs::new(Arc::clone(&tree), uid, gid);
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("powercut".into()),
            MountOption::Subtype("powercut".into()),
            MountOption::NoDev,
            MountOption::NoSuid,
        ];
        let session = fuser::spawn_mount(fs, mountpoint, &config).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "mount the power-loss filesystem at {}: {e}",
                    mountpoint.display()
                ),
            )
        })?;
        Ok(PowerCut {
            tree,
            session: Some(session),
            mountpoint: mountpoint.to_path_buf(),
        })
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The power loss: every file and directory goes back to what was last synced.
    ///
    /// Call it only once every program writing here is gone (killed and reaped): a write
    /// still on its way would land after the cut, which no power loss does.
    pub fn cut(&self) {
        self.tree.lock().unwrap_or_else(|e| e.into_inner()).cut();
    }

    /// A power loss that tears writes ([`Tree::cut_torn`]): each file keeps a prefix of its
    /// unsynced bytes, of a length drawn from `seed` (none, all, or anything between).
    /// Call it, like [`cut`](Self::cut), only once every writer here is gone.
    pub fn cut_torn(&self, seed: u64) {
        let mut state = seed | 1;
        let mut keep = |unsynced: usize| {
            // xorshift64*: repeatable from the seed.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            match r % 4 {
                0 => 0,
                1 => unsynced,
                _ => (r >> 8) as usize % (unsynced + 1),
            }
        };
        self.tree
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cut_torn(&mut keep);
    }

    /// How many cuts so far.
    pub fn cuts(&self) -> u64 {
        self.tree.lock().unwrap_or_else(|e| e.into_inner()).cuts()
    }
}

impl Drop for PowerCut {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            // Unmounts, then waits for the session thread, which ends when the kernel closes
            // the connection. If the unmount fails (a process still inside), the session is
            // dropped unjoined and a lazy unmount detaches the mount instead: never a hang.
            if session.umount_and_join().is_err() {
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(&self.mountpoint)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = std::fs::remove_dir(&self.mountpoint);
    }
}
