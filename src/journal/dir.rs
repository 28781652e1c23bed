//! The data directory: created if missing, locked while a server uses it, and stamped with
//! what its files mean (format version, ring capacity).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Version of the directory's format (the journal's bytes and `meta` itself).
pub const FORMAT_VERSION: u32 = 1;

/// Why a data directory cannot be used. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}: another hourtally server is using this data directory (its LOCK is held); stop it, or give this one another --data-dir")]
    Locked(PathBuf),
    #[error("{path}: written with --retention-hours {found}, this server has {wanted}: start it with --retention-hours {found}, or give it a new --data-dir")]
    OtherRetention {
        path: PathBuf,
        found: u32,
        wanted: u32,
    },
    #[error("{path}: written with --cold-retention-hours {found}, this server has {wanted}: the journal's late events were counted under {found} and would be replayed under another rule; start it with --cold-retention-hours {found}, or give it a new --data-dir")]
    OtherColdRetention {
        path: PathBuf,
        found: u32,
        wanted: u32,
    },
    #[error("{path}: format version {found}, this build reads {FORMAT_VERSION}: run the build that wrote it, or give this one a new --data-dir")]
    OtherVersion { path: PathBuf, found: String },
    #[error("{0}: not an hourtally meta file (expected `hourtally-data VERSION` and `retention_hours=N`)")]
    BadMeta(PathBuf),
}

/// An open, locked data directory. The locks are released when this is dropped (or the
/// process exits, however it exits).
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    /// Holds the `flock` on `LOCK`: what an older build checks.
    _lock: File,
    /// Holds the `flock` on the directory itself, which no one can unlink from under a
    /// running server (removing `LOCK` used to let a second server share the directory).
    _dir_lock: File,
    /// `meta` was missing: [`stamp`](Self::stamp) writes it once the start has succeeded,
    /// so a start that fails leaves the directory as it found it.
    unstamped: bool,
    retention_hours: u32,
    /// The cold retention `meta` records (`None`: written before it recorded one), and the
    /// one this server runs with (`with_cold_retention`; 0: no cold tier).
    recorded_cold: Option<u32>,
    cold_retention_hours: u32,
}

/// Takes an exclusive `flock` on `file` without waiting: `Ok(false)` if another holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: `flock` reads no memory of ours; the fd is `file`'s, open for the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

impl DataDir {
    /// Opens (creating if missing) and locks `path` for a ring of `retention_hours` slots.
    /// A missing `meta` is not written here: see [`stamp`](Self::stamp).
    pub fn open(path: &Path, retention_hours: u32) -> Result<DataDir, DataDirError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DataDirError::Io { path, source }
        };
        create_dir_durable(path).map_err(io_err(path))?;
        let dir_lock = File::open(path).map_err(io_err(path))?;
        if !try_lock(&dir_lock).map_err(io_err(path))? {
            return Err(DataDirError::Locked(path.to_path_buf()));
        }
        let lock_path = path.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        if !try_lock(&lock).map_err(io_err(&lock_path))? {
            return Err(DataDirError::Locked(path.to_path_buf()));
        }
        let meta_path = path.join("meta");
        let (unstamped, recorded_cold) = match fs::read_to_string(&meta_path) {
            Ok(text) => (false, check_meta(&meta_path, &text, retention_hours)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (true, None),
            Err(e) => return Err(io_err(&meta_path)(e)),
        };
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
            _dir_lock: dir_lock,
            unstamped,
            retention_hours,
            recorded_cold,
            cold_retention_hours: 0,
        })
    }

    /// The server runs with a cold tier of `hours` (0: none). Whether an event of a sealed
    /// hour is late depends on it (`ring::late`), so a directory whose journal may hold late
    /// events counted under another retention is refused; one that recorded none (or 0) takes
    /// any, and records it at the [`stamp`](Self::stamp).
    pub fn with_cold_retention(mut self, hours: u32) -> Result<Self, DataDirError> {
        match self.recorded_cold {
            Some(found) if found != 0 && found != hours => {
                return Err(DataDirError::OtherColdRetention {
                    path: self.path.join("meta"),
                    found,
                    wanted: hours,
                })
            }
            Some(found) if found == hours => {}
            _ => self.unstamped = true,
        }
        self.cold_retention_hours = hours;
        Ok(self)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `meta` if it was missing: called once recovery has succeeded, so that a
    /// start refused for another reason writes nothing.
    pub fn stamp(&mut self) -> io::Result<()> {
        if self.unstamped {
            write_meta(&self.path, self.retention_hours, self.cold_retention_hours)?;
            self.unstamped = false;
            self.recorded_cold = Some(self.cold_retention_hours);
        }
        Ok(())
    }
}

/// Creates `path` and its missing parents, each one's entry synced in its own parent: every
/// journal write synced inside a directory is lost with it if a power loss takes the
/// directory's own entry (POSIX makes a new entry durable only by an fsync of its parent).
/// The parent of a directory that was already there is synced too (an earlier start may have
/// died between making it and syncing), unless it may not be read.
fn create_dir_durable(path: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(path);
    while let Some(dir) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(dir);
        at = dir.parent();
    }
    fs::create_dir_all(path)?;
    for dir in missing.iter().rev() {
        sync_parent(dir)?;
    }
    match sync_parent(path) {
        Err(e) if missing.is_empty() && e.kind() == io::ErrorKind::PermissionDenied => Ok(()),
        other => other,
    }
}

/// Syncs the directory that holds `path` (`.` for a bare name).
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// Checks `meta`'s version and retention; returns the cold retention it records, if any.
fn check_meta(path: &Path, text: &str, wanted: u32) -> Result<Option<u32>, DataDirError> {
    let mut lines = text.lines();
    let version = lines
        .next()
        .and_then(|l| l.strip_prefix("hourtally-data "))
        .ok_or_else(|| DataDirError::BadMeta(path.to_path_buf()))?;
    if version != FORMAT_VERSION.to_string() {
        return Err(DataDirError::OtherVersion {
            path: path.to_path_buf(),
            found: version.to_string(),
        });
    }
    let found: u32 = lines
        .next()
        .and_then(|l| l.strip_prefix("retention_hours="))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| DataDirError::BadMeta(path.to_path_buf()))?;
    if found != wanted {
        return Err(DataDirError::OtherRetention {
            path: path.to_path_buf(),
            found,
            wanted,
        });
    }
    match lines
        .next()
        .map(|l| l.strip_prefix("cold_retention_hours="))
    {
        None => Ok(None),
        Some(Some(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| DataDirError::BadMeta(path.to_path_buf())),
        Some(None) => Err(DataDirError::BadMeta(path.to_path_buf())),
    }
}

/// Writes `meta` atomically: a temporary file, synced, renamed, and the directory synced.
fn write_meta(dir: &Path, retention_hours: u32, cold_retention_hours: u32) -> io::Result<()> {
    let tmp = dir.join("meta.tmp");
    let mut f = File::create(&tmp)?;
    // An older build reads the first two lines only.
    write!(
        f,
        "hourtally-data {FORMAT_VERSION}\nretention_hours={retention_hours}\ncold_retention_hours={cold_retention_hours}\n"
    )?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join("meta"))?;
    File::open(dir)?.sync_all()
}
