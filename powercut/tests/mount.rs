//! The mounted filesystem, driven through the kernel with `std::fs` as a program drives it:
//! what survives a cut is exactly what was synced. Needs root and `/dev/fuse` (CI has both);
//! without them these tests fail, saying why.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use powercut::PowerCut;

fn mounted(name: &str) -> PowerCut {
    let dir = std::env::temp_dir().join(format!("powercut-{name}-{}", std::process::id()));
    PowerCut::mount(&dir).unwrap_or_else(|e| panic!("{e}"))
}

fn sync_dir(dir: &Path) {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("sync a directory");
}

fn read(path: &Path) -> Option<Vec<u8>> {
    fs::read(path).ok()
}

#[test]
fn a_cut_keeps_synced_data_under_synced_entries_and_drops_everything_else() {
    let fs = mounted("basic");
    let root = fs.path().to_path_buf();
    let data = root.join("data");
    fs::create_dir(&data).expect("mkdir");
    sync_dir(&root);
    // Synced data, synced entry.
    let mut kept = File::create(data.join("kept")).expect("create");
    kept.write_all(b"synced").expect("write");
    kept.sync_data().expect("fdatasync");
    kept.write_all(b" and not").expect("write");
    // Synced data, entry never synced.
    let mut orphan_path = PathBuf::from(&data);
    orphan_path.push("orphan");
    sync_dir(&data);
    let mut orphan = File::create(&orphan_path).expect("create");
    orphan.write_all(b"lost").expect("write");
    orphan.sync_all().expect("fsync");
    drop((kept, orphan));
    assert_eq!(
        read(&data.join("kept")).as_deref(),
        Some(&b"synced and not"[..])
    );
    fs.cut();
    assert_eq!(read(&data.join("kept")).as_deref(), Some(&b"synced"[..]));
    assert_eq!(read(&orphan_path), None, "its directory was not synced");
    assert_eq!(fs.cuts(), 1);
}

#[test]
fn positional_writes_appends_and_set_len_read_back_and_survive_once_synced() {
    let fs = mounted("io");
    let root = fs.path().to_path_buf();
    let path = root.join("segment");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open for append");
    sync_dir(&root);
    f.write_all(b"0123").expect("append");
    f.write_all(b"4567").expect("append");
    f.sync_data().expect("fdatasync");
    let mut g = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open rw");
    g.seek(SeekFrom::Start(2)).expect("seek");
    g.write_all(b"ab").expect("overwrite");
    g.set_len(6).expect("set_len");
    let mut all = Vec::new();
    g.seek(SeekFrom::Start(0)).expect("seek");
    g.read_to_end(&mut all).expect("read");
    assert_eq!(all, b"01ab45");
    assert_eq!(fs::metadata(&path).expect("stat").len(), 6);
    drop((f, g));
    fs.cut();
    assert_eq!(read(&path).as_deref(), Some(&b"01234567"[..]));
}

#[test]
fn a_rename_replaces_atomically_and_is_durable_once_its_directory_is_synced() {
    let fs = mounted("rename");
    let root = fs.path().to_path_buf();
    fs::write(root.join("meta"), b"old").expect("write");
    File::open(root.join("meta"))
        .and_then(|f| f.sync_all())
        .expect("fsync");
    sync_dir(&root);
    fs::write(root.join("meta.tmp"), b"new").expect("write");
    File::open(root.join("meta.tmp"))
        .and_then(|f| f.sync_all())
        .expect("fsync");
    fs::rename(root.join("meta.tmp"), root.join("meta")).expect("rename");
    assert_eq!(read(&root.join("meta")).as_deref(), Some(&b"new"[..]));
    fs.cut();
    assert_eq!(read(&root.join("meta")).as_deref(), Some(&b"old"[..]));
    fs::write(root.join("meta.tmp"), b"new").expect("write");
    File::open(root.join("meta.tmp"))
        .and_then(|f| f.sync_all())
        .expect("fsync");
    fs::rename(root.join("meta.tmp"), root.join("meta")).expect("rename");
    sync_dir(&root);
    fs.cut();
    assert_eq!(read(&root.join("meta")).as_deref(), Some(&b"new"[..]));
    let mut names: Vec<_> = fs::read_dir(&root)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["meta"]);
}

#[test]
fn an_unlink_that_was_not_synced_comes_back_after_a_cut() {
    let fs = mounted("unlink");
    let root = fs.path().to_path_buf();
    let path = root.join("old-segment");
    fs::write(&path, b"events").expect("write");
    File::open(&path)
        .and_then(|f| f.sync_data())
        .expect("fsync");
    sync_dir(&root);
    fs::remove_file(&path).expect("unlink");
    assert!(!path.exists());
    fs.cut();
    assert_eq!(read(&path).as_deref(), Some(&b"events"[..]));
}

#[test]
fn flock_on_a_file_here_excludes_a_second_holder_and_statfs_answers() {
    let fs = mounted("flock");
    let lock_path = fs.path().join("LOCK");
    let open = || {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .expect("open LOCK")
    };
    let flock = |f: &File| {
        // SAFETY: `flock` reads no memory of ours; the fd is `f`'s, open for the call.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }
    };
    let first = open();
    assert_eq!(flock(&first), 0, "{}", std::io::Error::last_os_error());
    let second = open();
    assert_eq!(
        flock(&second),
        -1,
        "a second open file must not get the lock"
    );
    drop(first);
    assert_eq!(flock(&second), 0, "released with the first holder");
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    let path = std::ffi::CString::new(fs.path().as_os_str().as_encoded_bytes())
        .expect("a path without NUL");
    // SAFETY: `path` is a NUL-terminated string and `st` a buffer of the right type; both
    // outlive the call.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}
