//! Files written so that a crash or a power cut leaves the old file or the new one, never
//! half of one: snapshots (`journal::snapshot`) and cold sets (`cold`).
//!
//! A file is written whole under a temporary name (`{name}.tmp`), synced, renamed over its
//! real name, and its directory synced, so that the rename itself survives a power cut. A
//! temporary file is all a crash or a full disk can leave behind, and a directory's are
//! removed before it is written again ([`remove_unfinished`]).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` as `dir/name`, durably and whole (module doc); returns the file's path. On
/// an error the temporary file is removed (a full disk gets its room back) and `dir/name` is
/// as it was.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(path)
}

/// Makes a directory's entries (a new, renamed or removed file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes the temporary files of writes that never finished (a crash, or a disk that filled
/// up): they hold nothing that is not elsewhere, and take room. Returns how many. A missing
/// directory has none.
pub fn remove_unfinished(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "tmp") {
                    fs::remove_file(&path)?;
                    removed += 1;
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(removed)
}

/// A fresh, empty directory under the system's temp dir, removed when dropped (the crate's
/// unit tests of files on disk).
#[cfg(test)]
pub(crate) struct TempDir(pub PathBuf);

#[cfg(test)]
impl TempDir {
    /// A new directory whose name starts with `hourtally-{what}-test`.
    pub fn new(what: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering as O};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "hourtally-{what}-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, O::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

#[cfg(test)]
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
