//! File identities, and the record of what a read looked at: the dependency tracking behind
//! the agent's check cache ([`crate::check::cache`]) and behind check's consistent read of a
//! PKI that a renewal may be swapping at the same time.
//!
//! - [`Ident`] is a file's identity: device, inode, size, mtime and ctime in nanoseconds,
//!   and its mode. A file replaced by rename has a new inode; one rewritten in place has a
//!   new ctime even when its size and mtime are put back (ctime cannot be set from user
//!   space). Nothing is compared by content.
//! - While a thread records ([`Recording`]), every input read through [`super::fsread`] and
//!   every existence test ([`super::file_exists`], [`super::fsread::exists_nofollow`])
//!   notes the path and what it was ([`Observed`]): the file opened (its `fstat`), a symlink
//!   (its own identity and its target, read again on every validation, so a re-pointed link
//!   is seen even when no file changed), absent, or an error.
//! - [`still`] stats every recorded path again: all the same means that what was read is
//!   what is on disk now.
//! - Writes through the [`super::store::Store`] are announced with [`note_writes`] (a
//!   generation counter and a bounded log of the paths written), so a cache drops what a
//!   kubecert write touched even where the identity could not tell (an inode reused within
//!   one timestamp tick).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A file's identity (what [`std::fs::Metadata`] says of it, without its contents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ident {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i128,
    /// Type and permission bits.
    pub mode: u32,
}

impl Ident {
    /// The identity in `m`.
    pub fn of(m: &std::fs::Metadata) -> Ident {
        Ident {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            mode: m.mode(),
        }
    }
}

/// Whether a path was looked at through symlinks or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// `lstat`: a symlink is itself (fsread's `O_NOFOLLOW` reads).
    NoFollow,
    /// `stat`: through symlinks (existence tests like kubeadm's).
    Follow,
}

/// What was at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// Nothing.
    Absent,
    /// The stat failed otherwise (its `errno`).
    Error(i32),
    /// A file (of any type but a symlink seen with [`How::NoFollow`]).
    File(Ident),
    /// A symlink (with [`How::NoFollow`]): its own identity and where it points.
    Link(Ident, PathBuf),
}

/// Looks at `path` now.
pub fn observe(path: &Path, how: How) -> Observed {
    let m = match how {
        How::NoFollow => std::fs::symlink_metadata(path),
        How::Follow => std::fs::metadata(path),
    };
    match m {
        Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(path) {
            Ok(t) => Observed::Link(Ident::of(&m), t),
            Err(e) => Observed::Error(e.raw_os_error().unwrap_or(-1)),
        },
        Ok(m) => Observed::File(Ident::of(&m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Observed::Absent,
        Err(e) => Observed::Error(e.raw_os_error().unwrap_or(-1)),
    }
}

/// One path a read depended on, and what it was then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    /// The path as given.
    pub path: PathBuf,
    /// How it was looked at.
    pub how: How,
    /// What it was.
    pub seen: Observed,
}

impl Dep {
    /// Whether the path is still what it was.
    pub fn holds(&self) -> bool {
        observe(&self.path, self.how) == self.seen
    }

    /// Rough heap size, for the cache's byte bound.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Dep>()
            + self.path.as_os_str().len()
            + match &self.seen {
                Observed::Link(_, t) => t.as_os_str().len(),
                _ => 0,
            }
    }
}

thread_local! {
    static RECORD: RefCell<Option<Vec<Dep>>> = const { RefCell::new(None) };
}

/// Records what this thread reads until [`Recording::finish`] (or drop).
pub struct Recording(());

impl Recording {
    /// Starts recording on this thread (a recording already running is replaced).
    pub fn start() -> Recording {
        RECORD.with(|r| *r.borrow_mut() = Some(Vec::new()));
        Recording(())
    }

    /// Stops, returning every path looked at, in order, each once (the first sight).
    pub fn finish(self) -> Vec<Dep> {
        RECORD.with(|r| r.borrow_mut().take()).unwrap_or_default()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        RECORD.with(|r| r.borrow_mut().take());
    }
}

/// Notes that `path` was `seen` (when this thread records).
pub fn record(path: &Path, how: How, seen: impl FnOnce() -> Observed) {
    RECORD.with(|r| {
        if let Some(v) = r.borrow_mut().as_mut() {
            // Compared as bytes, not `Path ==` (component by component, which was ~0.2 M
            // instructions of a CLI `check`: every record scans every earlier one). The
            // paths come from the same layout joins, so one file has one spelling; a second
            // spelling would only add a dependency that is validated twice.
            let key = path.as_os_str().as_encoded_bytes();
            if !v
                .iter()
                .any(|d| d.how == how && d.path.as_os_str().as_encoded_bytes() == key)
            {
                v.push(Dep {
                    path: path.to_path_buf(),
                    how,
                    seen: seen(),
                });
            }
        }
    });
}

/// Whether this thread records (so that a caller can skip work only a record needs).
pub fn recording() -> bool {
    RECORD.with(|r| r.borrow().is_some())
}

/// Whether every path is still what it was.
pub fn still(deps: &[Dep]) -> bool {
    deps.iter().all(Dep::holds)
}

/// The deps whose validation proves all of `deps` still hold: a path looked at through
/// symlinks (`stat`) that was also looked at without (`lstat`) and seen as the very same
/// regular file (or absent both ways) needs no `stat` of its own. `lstat` and `stat`
/// resolve every directory of the path alike and differ only when its last component is a
/// symlink; so an `lstat` that still finds the same non-link file `id` proves that `stat`
/// finds `id` too, and a still-absent name is absent both ways. (A symlink seen by `lstat`
/// proves nothing about its target: its `stat` is kept.) check looks at each key both
/// ways (the pair's existence test, then the read): this saves a third of a cache hit's
/// system calls.
pub fn validation_set(deps: &[Dep]) -> Vec<Dep> {
    deps.iter()
        .filter(|d| {
            d.how == How::NoFollow
                || !matches!(d.seen, Observed::File(_) | Observed::Absent)
                || !deps
                    .iter()
                    .any(|n| n.how == How::NoFollow && n.path == d.path && n.seen == d.seen)
        })
        .cloned()
        .collect()
}

/// How long after a file's last change a read must have started for its identity to prove
/// that the file is still what was read ("racily clean", as git calls it).
///
/// The kernel stamps a change with its coarse clock (the time of the last timer tick, up to
/// one tick — 1 to 10 ms — behind the clock a reader sees) and, on a file system that keeps
/// timestamps in whole seconds, truncated to the second. So a file rewritten in place by
/// another program right after a read — same size, mtime put back — can keep the very ctime
/// the read recorded: its identity is unchanged, its contents are not. That can only happen
/// when the recorded ctime is not older than the read's start by more than the granularity.
/// A read that started [`RACY_WINDOW`] after the last change of every file it read is safe:
/// any later change gets a later ctime. 100 ms leaves ten ticks of the slowest kernel clock
/// (HZ=100) for a late tick in a virtual machine. (Kernels with multigrain timestamps,
/// Linux 6.13 on, give a fine-grained ctime to a change after a stat, which closes the gap
/// there; this does not rely on it.)
pub const RACY_WINDOW: Duration = Duration::from_millis(100);
/// The same for a change time with no nanoseconds: the file system may keep whole seconds
/// (ext4 with 128-byte inodes, ext3) or two (FAT). A file system with nanoseconds shows 0
/// about once in 10⁹ files, which costs one cache miss.
pub const RACY_WINDOW_WHOLE_SECONDS: Duration = Duration::from_secs(2);

impl Ident {
    /// Whether a read that started at `started_ns` (ns since the epoch) cannot tell by this
    /// identity a later in-place rewrite (see [`RACY_WINDOW`]). The ctime decides: every
    /// change of contents or metadata sets it and nothing can set it back; the mtime can be
    /// put anywhere, so it proves nothing.
    fn racy(&self, started_ns: i128) -> bool {
        let window = if self.ctime_ns % 1_000_000_000 == 0 {
            RACY_WINDOW_WHOLE_SECONDS
        } else {
            RACY_WINDOW
        };
        self.ctime_ns > started_ns - window.as_nanos() as i128
    }
}

/// Whether a read that started at `started` cannot prove, by identity, that some file it
/// read is still what it read (see [`RACY_WINDOW`]): such a read must not be cached — the
/// next call reads again, and is cached once the files are old enough. Paths absent or in
/// error have no contents to rewrite; a symlink counts by its own identity (its target is
/// compared as well).
pub fn racily_clean(deps: &[Dep], started: SystemTime) -> bool {
    // A clock before the epoch proves nothing.
    let Ok(since) = started.duration_since(UNIX_EPOCH) else {
        return true;
    };
    let started_ns = since.as_nanos() as i128;
    deps.iter().any(|d| match &d.seen {
        Observed::File(id) | Observed::Link(id, _) => id.racy(started_ns),
        Observed::Absent | Observed::Error(_) => false,
    })
}

/// How many writes the log below remembers.
const WRITE_LOG: usize = 4096;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static WRITES: Mutex<VecDeque<(u64, PathBuf)>> = Mutex::new(VecDeque::new());

/// The write generation: it grows with every [`note_writes`].
pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// Announces that kubecert wrote (renamed over, created, removed) `paths`; a directory
/// stands for everything under it.
pub fn note_writes<'a>(paths: impl IntoIterator<Item = &'a Path>) {
    let mut log = WRITES.lock().unwrap_or_else(|p| p.into_inner());
    let generation = GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    for p in paths {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        log.push_back((generation, abs));
        if log.len() > WRITE_LOG {
            log.pop_front();
        }
    }
}

/// Whether a kubecert write after generation `since` touched one of `deps` (true as well
/// when the log no longer reaches back that far).
pub fn written_since(since: u64, deps: &[Dep]) -> bool {
    if generation() == since {
        return false;
    }
    let log = WRITES.lock().unwrap_or_else(|p| p.into_inner());
    if log.front().is_none_or(|(g, _)| *g > since + 1) {
        return true;
    }
    let abs: Vec<PathBuf> = deps
        .iter()
        .map(|d| std::path::absolute(&d.path).unwrap_or_else(|_| d.path.clone()))
        .collect();
    log.iter()
        .filter(|(g, _)| *g > since)
        .any(|(_, w)| abs.iter().any(|d| d.starts_with(w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ns: i128) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap())
    }

    fn file_dep(ctime_ns: i128) -> Dep {
        Dep {
            path: PathBuf::from("/x"),
            how: How::NoFollow,
            seen: Observed::File(Ident {
                dev: 1,
                ino: 2,
                size: 3,
                mtime_ns: 0,
                ctime_ns,
                mode: 0o100644,
            }),
        }
    }

    #[test]
    fn a_file_changed_within_the_timestamp_granularity_of_a_read_is_racily_clean() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("a.crt");
        std::fs::write(&f, b"one").unwrap();
        let rec = Recording::start();
        record(&f, How::NoFollow, || observe(&f, How::NoFollow));
        let deps = rec.finish();
        let Observed::File(id) = deps[0].seen else {
            panic!("{:?}", deps[0].seen)
        };
        let w = RACY_WINDOW.as_nanos() as i128;
        let ms = 1_000_000;
        // A read that started before the change, in the same timestamp tick, or less than
        // the window after it: a rewrite right after it could keep the same ctime.
        assert!(racily_clean(&deps, at(id.ctime_ns - 1_000 * ms)));
        assert!(racily_clean(&deps, at(id.ctime_ns)));
        assert!(racily_clean(&deps, at(id.ctime_ns + w - ms)));
        // Later: any change after the read has a later ctime.
        assert!(!racily_clean(&deps, at(id.ctime_ns + w + ms)));
        // The same, through a symlink's own identity.
        let l = t.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        let link = Dep {
            path: l.clone(),
            how: How::NoFollow,
            seen: observe(&l, How::NoFollow),
        };
        let Observed::Link(lid, _) = link.seen else {
            panic!("{:?}", link.seen)
        };
        assert!(racily_clean(std::slice::from_ref(&link), at(lid.ctime_ns)));
        assert!(!racily_clean(&[link], at(lid.ctime_ns + w + ms)));
        // Whole seconds (no nanoseconds: a file system that keeps seconds, FAT's two): the
        // wider window.
        let s = 1_700_000_000_000_000_000;
        assert!(racily_clean(&[file_dep(s)], at(s + 1_500 * ms)));
        assert!(!racily_clean(&[file_dep(s)], at(s + 2_001 * ms)));
        assert!(racily_clean(&[file_dep(s + 7)], at(s + w - ms)));
        assert!(!racily_clean(&[file_dep(s + 7)], at(s + w + ms)));
        // Nothing there or an error: nothing that could be rewritten in place.
        let absent = Dep {
            path: t.path().join("none"),
            how: How::Follow,
            seen: Observed::Absent,
        };
        assert!(!racily_clean(&[absent], at(0)));
        // One racy file among old ones makes the whole read racy.
        assert!(racily_clean(
            &[file_dep(s), deps[0].clone()],
            at(id.ctime_ns)
        ));
    }

    #[test]
    fn validation_set_drops_only_a_stat_that_an_lstat_of_the_same_file_proves() {
        let t = tempfile::tempdir().unwrap();
        let (f, x, l, none) = (
            t.path().join("a.key"),
            t.path().join("x"),
            t.path().join("l"),
            t.path().join("none"),
        );
        std::fs::write(&f, b"one").unwrap();
        std::fs::write(&x, b"x").unwrap();
        std::os::unix::fs::symlink(&x, &l).unwrap();
        let rec = Recording::start();
        for p in [&f, &l, &none] {
            record(p, How::Follow, || observe(p, How::Follow));
            record(p, How::NoFollow, || observe(p, How::NoFollow));
        }
        // Seen only through symlinks: nothing proves it but its own stat.
        record(&x, How::Follow, || observe(&x, How::Follow));
        let deps = rec.finish();
        assert_eq!(deps.len(), 7);
        let v = validation_set(&deps);
        let kept: Vec<(&Path, How)> = v.iter().map(|d| (d.path.as_path(), d.how)).collect();
        assert_eq!(
            kept,
            vec![
                (f.as_path(), How::NoFollow),
                (l.as_path(), How::Follow),
                (l.as_path(), How::NoFollow),
                (none.as_path(), How::NoFollow),
                (x.as_path(), How::Follow),
            ]
        );
        assert!(still(&v));
        // The link's target rewritten in place: the kept stats through the link see it.
        let h = std::fs::OpenOptions::new().write(true).open(&x).unwrap();
        use std::io::Write;
        (&h).write_all(b"y").unwrap();
        drop(h);
        assert!(!still(&v));
        // A file that replaced the name the lstat found absent: the lstat sees it.
        let v2 = validation_set(&deps[..6]);
        std::fs::write(&x, b"x").unwrap();
        std::fs::write(&none, b"now").unwrap();
        assert!(!still(&v2[v2.len() - 1..]));
    }

    #[test]
    fn identity_sees_rename_in_place_rewrite_and_link_swap() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("a.crt");
        std::fs::write(&f, b"one").unwrap();
        let rec = Recording::start();
        record(&f, How::NoFollow, || observe(&f, How::NoFollow));
        let missing = t.path().join("none");
        record(&missing, How::Follow, || observe(&missing, How::Follow));
        let deps = rec.finish();
        assert_eq!(deps.len(), 2);
        assert_eq!(deps[1].seen, Observed::Absent);
        assert!(still(&deps));
        // Not recording: nothing noted.
        record(&f, How::NoFollow, || unreachable!());
        // In place, same size, mtime put back: the ctime tells.
        let before = std::fs::metadata(&f).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let h = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
        use std::io::Write;
        (&h).write_all(b"two").unwrap();
        h.set_times(std::fs::FileTimes::new().set_modified(before.modified().unwrap()))
            .unwrap();
        drop(h);
        assert!(!still(&deps));
        // A link: re-pointed, seen without any file changing.
        let (x, y, l) = (t.path().join("x"), t.path().join("y"), t.path().join("l"));
        std::fs::write(&x, b"x").unwrap();
        std::fs::write(&y, b"x").unwrap();
        std::os::unix::fs::symlink(&x, &l).unwrap();
        let dep = Dep {
            path: l.clone(),
            how: How::NoFollow,
            seen: observe(&l, How::NoFollow),
        };
        assert!(matches!(dep.seen, Observed::Link(_, _)) && dep.holds());
        std::fs::remove_file(&l).unwrap();
        std::os::unix::fs::symlink(&y, &l).unwrap();
        assert!(!dep.holds());
        // A write announced by kubecert.
        let g = generation();
        assert!(!written_since(g, &deps));
        note_writes([t.path()]);
        assert!(written_since(g, &deps));
        assert!(!written_since(generation(), &deps));
    }
}
