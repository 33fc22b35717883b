//! Every write to a PKI goes through here: an exclusive lock on the PKI dir, a backup of each
//! file about to be replaced, new files staged beside the old ones and fsynced, a journal,
//! renames, and a directory fsync. A run killed at any instant is finished (rolled forward) or
//! undone (rolled back) by [`recover`], which every kubecert command runs first.
//!
//! Journal states: `staging` (new files may be partly written: recovery deletes them, the old
//! files are untouched) → `prepared` (every staged file is complete and durable: recovery
//! renames the remaining ones into place) → removed (done).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const JOURNAL_FILE: &str = ".kubecert-journal.json";
const STAGED_SUFFIX: &str = ".kubecert-new";

/// Test hook, compiled in only with the `failpoints` feature (which `cargo test` enables):
/// `KUBECERT_FAILPOINT=<name>` aborts the process at that point;
/// `KUBECERT_STEP_DELAY_MS=<n>` sleeps before every step (widens the window for random
/// SIGKILL tests). Both are read once. Without the feature it does nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn failpoint(_name: &str) {}

/// See the no-op version above.
#[cfg(feature = "failpoints")]
pub fn failpoint(name: &str) {
    static FP: std::sync::OnceLock<(Option<String>, u64)> = std::sync::OnceLock::new();
    let (fp, delay) = FP.get_or_init(|| {
        (
            std::env::var("KUBECERT_FAILPOINT").ok(),
            std::env::var("KUBECERT_STEP_DELAY_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        )
    });
    if *delay > 0 {
        std::thread::sleep(Duration::from_millis(*delay));
    }
    if fp.as_deref() == Some(name) {
        eprintln!("kubecert: failpoint {name} hit, aborting");
        std::process::abort();
    }
}

/// Test hook for readers (check's row loop): sleeps `KUBECERT_STEP_DELAY_MS` like the
/// store's steps, so that a test can land a renewal's swap in the middle of a read. Not a
/// failpoint (nothing aborts here). Without the `failpoints` feature it does nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn read_step_delay() {}

/// See the no-op version above.
#[cfg(feature = "failpoints")]
pub fn read_step_delay() {
    static DELAY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let delay = DELAY.get_or_init(|| {
        std::env::var("KUBECERT_STEP_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    });
    if *delay > 0 {
        std::thread::sleep(Duration::from_millis(*delay));
    }
}

/// An exclusive lock on a PKI dir, held while this value lives.
#[derive(Debug)]
pub struct Lock {
    file: File,
    dir: PathBuf,
}

impl Lock {
    /// Takes the lock on `dir`, waiting up to `timeout` for another holder.
    ///
    /// The lock is a flock(2) on the directory itself, so taking it creates no file, and a
    /// run that is killed leaves nothing behind. A waiter learns who holds it from
    /// `/proc/locks` ([`holder_pid`]).
    pub fn acquire(dir: &Path, timeout: Duration) -> Result<Lock> {
        refuse_symlink(dir)?;
        let file = File::open(dir).map_err(|e| Error::io(dir, e))?;
        let start = Instant::now();
        let mut announced = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {
                    let pid = holder_pid(&file);
                    if start.elapsed() >= timeout {
                        return Err(Error::Locked {
                            dir: dir.to_path_buf(),
                            pid,
                        });
                    }
                    if !announced {
                        tracing::info!(pid, dir = %dir.display(), "waiting for the PKI lock");
                        announced = true;
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(fs::TryLockError::Error(e)) => return Err(Error::io(dir, e)),
            }
        }
        Ok(Lock {
            file,
            dir: dir.to_path_buf(),
        })
    }

    /// The locked dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// The pid of the process holding the flock(2) on `file`, from `/proc/locks` (a line
/// `1: FLOCK  ADVISORY  WRITE <pid> <major>:<minor>:<inode> 0 EOF`); 0 when unknown.
fn holder_pid(file: &File) -> u32 {
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = file.metadata() else {
        return 0;
    };
    // glibc's encoding of dev_t (gnu_dev_major / gnu_dev_minor).
    let dev = m.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let id = format!("{major:02x}:{minor:02x}:{}", m.ino());
    let mut text = String::new();
    let read = File::open("/proc/locks").and_then(|f| {
        f.take(crate::pki::fsread::MAX_FILE_BYTES)
            .read_to_string(&mut text)
    });
    if read.is_err() {
        return 0;
    }
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Waiters' lines have `->` in the second field.
            match f.as_slice() {
                [_, "FLOCK", _, _, pid, dev_ino, ..] if *dev_ino == id => pid.parse().ok(),
                _ => None,
            }
        })
        .unwrap_or(0)
}

/// An open PKI store: the exclusive lock on the cert dir is held and any run an earlier crash
/// interrupted has been finished or undone. Every mutating path (renew, csr import,
/// kubelet-conf, the certificates API, auto-renew, restore) writes through one of these.
#[derive(Debug)]
pub struct Store {
    lock: Lock,
    recovered: Option<String>,
}

impl Store {
    /// Takes the lock on `cert_dir` (waiting up to `timeout` for another holder) and
    /// recovers an interrupted run ([`recover`]).
    pub fn open(cert_dir: &Path, timeout: Duration) -> Result<Store> {
        if !cert_dir.is_dir() {
            return Err(Error::io(
                cert_dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "cert dir not found"),
            ));
        }
        let lock = Lock::acquire(cert_dir, timeout)?;
        let recovered = recover(&lock);
        if !matches!(recovered, Ok(None)) {
            // A recovery renames or removes files anywhere its journal names.
            crate::pki::filestate::note_writes([Path::new("/")]);
        }
        let recovered = recovered?;
        Ok(Store { lock, recovered })
    }

    /// What recovery did when the store was opened, if anything (for the result and logs).
    pub fn recovered(&self) -> Option<&str> {
        self.recovered.as_deref()
    }

    /// The locked cert dir.
    pub fn dir(&self) -> &Path {
        self.lock.dir()
    }

    /// Applies `writes` as one transaction with a backup into a new dir
    /// `<backup_root>/<stamp>[-N]` (see [`stamp`]). Returns the backup dir. Runs every check of
    /// [`plan`] first.
    pub fn commit(
        &mut self,
        writes: &[Write_],
        backup_root: &Path,
        stamp: &str,
    ) -> Result<Option<PathBuf>> {
        commit(&self.lock, writes, Some(backup_root), stamp)
    }

    /// The first half of [`Store::commit`], for a caller that knows which files it will
    /// write before it has their contents (renew: the targets are in the plan, the new keys
    /// take longer): every check of [`plan`] on `targets`, the backup dir, the `staging`
    /// journal, the backups and their manifest. [`Prepared::commit`] then stages the
    /// contents and swaps them in; a [`Prepared`] dropped without it undoes what it made,
    /// and a run killed in between leaves a `staging` journal that recovery undoes (the
    /// crash argument in `commit_begin`/`commit_finish`).
    pub fn prepare(
        &mut self,
        targets: &[PathBuf],
        backup_root: &Path,
        stamp: &str,
    ) -> Result<Prepared<'_>> {
        let meta = preflight_targets(targets.iter().map(PathBuf::as_path))?;
        for t in targets {
            let parent = t.parent().unwrap_or(Path::new("."));
            if !parent.is_dir() {
                fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
        }
        let mut made = Made::default();
        let changes = Changes {
            meta: &meta,
            links: &[],
            link_meta: &[],
            removes: &[],
            backup_root: Some(backup_root),
            stamp,
        };
        let begun = commit_begin(&self.lock, targets, &changes, &mut made);
        let begun = match begun {
            Ok(b) => b,
            Err(e) => {
                made.undo(&self.lock);
                return Err(e);
            }
        };
        Ok(Prepared {
            lock: &self.lock,
            targets: targets.to_vec(),
            meta,
            begun: Some(begun),
            made,
        })
    }

    /// [`Store::commit`] plus symlinks, in the same transaction: each [`Link`] is staged as a
    /// symlink beside its target and renamed over it (after every file of `writes`), so a
    /// crash leaves either the old link or the new one, never none — the way the kubelet
    /// itself swaps `kubelet-client-current.pem`. An existing link is recorded in the backup
    /// manifest (`linkTarget`); an existing regular file in its place is backed up as a copy.
    pub fn commit_with_links(
        &mut self,
        writes: &[Write_],
        links: &[Link],
        backup_root: &Path,
        stamp: &str,
    ) -> Result<Option<PathBuf>> {
        commit_ops(&self.lock, writes, links, Some(backup_root), stamp)
    }

    /// [`Store::commit`] plus files to remove, in the same transaction (after every write):
    /// each removed file is backed up as a copy first (CA rotation: the staged `.next`
    /// files a promote consumes, the old key a distrust drops).
    pub fn commit_with_removes(
        &mut self,
        writes: &[Write_],
        removes: &[PathBuf],
        backup_root: &Path,
        stamp: &str,
    ) -> Result<Option<PathBuf>> {
        commit_all(&self.lock, writes, &[], removes, Some(backup_root), stamp)
    }

    /// [`Store::commit_with_links`] and [`Store::commit_with_removes`] at once: writes, then
    /// links, then removed files, one transaction with one backup (CA rotation's promote of
    /// `ca`: the `.next` files it consumes, and the kubelet's `kubelet-client-current.pem`
    /// swapped to its re-issued pair).
    pub fn commit_with_links_and_removes(
        &mut self,
        writes: &[Write_],
        links: &[Link],
        removes: &[PathBuf],
        backup_root: &Path,
        stamp: &str,
    ) -> Result<Option<PathBuf>> {
        commit_all(&self.lock, writes, links, removes, Some(backup_root), stamp)
    }

    /// Puts a backup back (the [`RestoreOps`] of [`restore_ops`]) as one transaction,
    /// without making a backup of its own: files rewritten from their copies, links
    /// re-pointed at their old targets, and the files the backed-up run created removed.
    /// A crash leaves the state before the restore or after it.
    pub fn restore(&mut self, ops: &RestoreOps) -> Result<()> {
        commit_all(
            &self.lock,
            &ops.writes,
            &ops.links,
            &ops.removes,
            None,
            "restore",
        )
        .map(|_| ())
    }
}

/// `<cert_dir>/../kubecert-backup` (e.g. /etc/kubernetes/kubecert-backup).
pub fn default_backup_root(cert_dir: &Path) -> PathBuf {
    let abs = std::path::absolute(cert_dir).unwrap_or_else(|_| cert_dir.to_path_buf());
    abs.parent()
        .map(|p| p.join("kubecert-backup"))
        .unwrap_or_else(|| PathBuf::from("kubecert-backup"))
}

/// A backup dir name for `now`: `20261129T041500Z`.
pub fn stamp(now: i64) -> String {
    crate::timefmt::rfc3339(now).replace(['-', ':'], "")
}

/// Every check a [`Store::commit`] of `writes` makes before it changes anything, without
/// changing anything and without the lock: the dry runs of renew and csr import run it, so a
/// plan never says OK where the apply then fails.
pub fn plan(writes: &[Write_]) -> Result<()> {
    preflight(writes).map(|_| ())
}

/// [`plan`] for a [`Store::commit_with_links`].
pub fn plan_with_links(writes: &[Write_], links: &[Link]) -> Result<()> {
    preflight(writes)?;
    preflight_links(links).map(|_| ())
}

/// [`plan`] for a [`Store::commit_with_removes`].
pub fn plan_with_removes(writes: &[Write_], removes: &[PathBuf]) -> Result<()> {
    preflight(writes)?;
    preflight_removes(removes)
}

/// [`plan`] for a [`Store::commit_with_links_and_removes`].
pub fn plan_with_links_and_removes(
    writes: &[Write_],
    links: &[Link],
    removes: &[PathBuf],
) -> Result<()> {
    preflight(writes)?;
    preflight_links(links)?;
    preflight_removes(removes)
}

/// One symlink to (re)point: `target` becomes a symlink whose contents are `points_to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The symlink's path.
    pub target: PathBuf,
    /// What it points to (written as given; the kubelet writes absolute paths).
    pub points_to: PathBuf,
}

/// Refuses a symlink at `path` (absent paths are fine).
pub fn refuse_symlink(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::Symlink(path.to_path_buf())),
        _ => Ok(()),
    }
}

/// One file to write.
#[derive(Clone)]
pub struct Write_ {
    /// Final path.
    pub target: PathBuf,
    /// New contents.
    pub contents: Vec<u8>,
    /// Mode for a new file; an existing file keeps its mode unless `force_mode`.
    pub mode: u32,
    /// Apply `mode` even when the file exists (keys are always 0600).
    pub force_mode: bool,
}

impl std::fmt::Debug for Write_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Write")
            .field("target", &self.target)
            .field("bytes", &self.contents.len())
            .finish()
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum State {
    Staging,
    Prepared,
}

#[derive(Debug, Serialize, Deserialize)]
struct JournalEntry {
    target: PathBuf,
    staged: PathBuf,
    /// The target is removed, not replaced (restore of a file the backed-up run created):
    /// nothing is staged; a `prepared` recovery removes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    remove: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    state: State,
    backup_dir: Option<PathBuf>,
    entries: Vec<JournalEntry>,
}

/// A backup manifest entry.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct BackupEntry {
    /// The original path.
    pub target: PathBuf,
    /// The copy inside the backup dir; `None` when the target did not exist (or was a
    /// symlink: see `link_target`).
    pub copy: Option<PathBuf>,
    /// When the target was a symlink: what it pointed to.
    #[serde(
        default,
        rename = "linkTarget",
        skip_serializing_if = "Option::is_none"
    )]
    pub link_target: Option<PathBuf>,
}

/// `manifest.json` of a backup dir.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct BackupManifest {
    /// When it was made (RFC 3339).
    pub created: String,
    /// What the backup holds.
    pub entries: Vec<BackupEntry>,
}

fn staged_path(target: &Path) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(STAGED_SUFFIX);
    PathBuf::from(s)
}

/// Replaces `path` atomically and durably with `bytes`: the one atomic write of kubecert
/// (the journal, backup manifests, CSR-dir files, the state file, the metrics textfile).
///
/// A symlink at `path` is refused. The new contents go to `<path>.kubecert-new` (any stale
/// one is removed first, and it is created exclusively, so a symlink planted there is never
/// followed), get `mode` regardless of the umask, are fsynced, renamed over `path`, and the
/// directory is fsynced. On failure the temp file is removed, so a full disk leaves no stray
/// `*.kubecert-new`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    refuse_symlink(path)?;
    let tmp = staged_path(path);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&tmp, e)),
    }
    let r = write_atomic_inner(path, &tmp, bytes, mode);
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

fn write_atomic_inner(path: &Path, tmp: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    {
        let mut f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(mode)
            .open(tmp)
            .map_err(|e| Error::io(tmp, e))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(tmp, e))?;
        f.sync_all().map_err(|e| Error::io(tmp, e))?;
    }
    fs::rename(tmp, path).map_err(|e| Error::io(path, e))?;
    sync_dir(dir)
}

/// fsyncs a directory, so that a rename or a new entry in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Linux 5.8 on: `syncfs(2)` reports the writeback errors of its file system that happened
/// since the descriptor was opened (before, it returned 0 whatever happened).
fn syncfs_reports_errors() -> bool {
    static YES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *YES.get_or_init(|| {
        let u = rustix::system::uname();
        let release = u.release().to_string_lossy();
        let mut it = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse::<u32>().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0)) >= (5, 8)
    })
}

/// Local file systems whose `syncfs(2)` writes back every dirty page and inode, commits the
/// file system's journal and flushes the device cache before it returns: ext2/3/4, XFS,
/// Btrfs (and tmpfs, where nothing is durable anyway). Elsewhere (NFS, FUSE, ...) each file
/// is fsynced.
fn syncfs_is_whole(dir: &File) -> bool {
    const EXT4: i64 = 0xEF53;
    const XFS: i64 = 0x5846_5342;
    const BTRFS: i64 = 0x9123_683E;
    const TMPFS: i64 = 0x0102_1994;
    match rustix::fs::fstatfs(dir) {
        #[allow(clippy::unnecessary_cast)]
        Ok(st) => matches!(st.f_type as i64, EXT4 | XFS | BTRFS | TMPFS),
        Err(_) => false,
    }
}

/// Test hook: every batch fsyncs file by file (the fallback), to test it on any machine.
#[cfg(test)]
static FORCE_FSYNC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The files and directory entries one phase of a [`commit`] writes, made durable together at
/// its end ([`Batch::finish`]) rather than one `fsync` after another: 49 fsyncs for a
/// `renew all` of a kubeadm PKI became 7 syncs (2 per journal state, one `syncfs` for the
/// backup and staged files, one for the renames, one for the journal's removal).
///
/// With `syncfs`, one descriptor per file system (by device) is opened *before* the phase's
/// first write, so that the error check of `syncfs` (writeback errors since the descriptor
/// was opened, Linux ≥ 5.8) covers every write of the phase; each file written is closed at
/// once. Otherwise (older kernels, other file systems) each file is fsynced when handed over,
/// as before, and each directory at the end.
struct Batch {
    /// One open directory per file system, when `syncfs` is trusted for all of them.
    whole: Option<Vec<(PathBuf, File)>>,
    dirs: Vec<PathBuf>,
}

impl Batch {
    /// Starts a phase that writes files and entries in `dirs` (each must exist).
    fn begin(dirs: &[PathBuf]) -> Result<Batch> {
        let mut fs_fds: Vec<(u64, PathBuf, File)> = Vec::new();
        let mut whole = syncfs_reports_errors();
        #[cfg(test)]
        {
            whole &= !FORCE_FSYNC.load(std::sync::atomic::Ordering::SeqCst);
        }
        for d in dirs {
            if !whole {
                break;
            }
            let f = File::open(d).map_err(|e| Error::io(d, e))?;
            let dev = f.metadata().map_err(|e| Error::io(d, e))?.dev();
            if fs_fds.iter().any(|(v, _, _)| *v == dev) {
                continue;
            }
            whole = syncfs_is_whole(&f);
            fs_fds.push((dev, d.clone(), f));
        }
        Ok(Batch {
            whole: whole.then(|| fs_fds.into_iter().map(|(_, d, f)| (d, f)).collect()),
            dirs: dirs.to_vec(),
        })
    }

    /// A file of the phase is written (`f`, still open for writing): fsynced now in the
    /// fallback, else closed (its durability is [`Batch::finish`]'s).
    fn wrote(&self, path: &Path, f: File) -> Result<()> {
        if self.whole.is_none() {
            f.sync_all().map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    }

    /// Every file handed over and every entry made in the phase's dirs is durable when this
    /// returns `Ok`.
    fn finish(self) -> Result<()> {
        match self.whole {
            Some(fds) => {
                for (d, f) in &fds {
                    rustix::fs::syncfs(f).map_err(|e| Error::io(d, e.into()))?;
                }
                Ok(())
            }
            None => {
                for d in &self.dirs {
                    sync_dir(d)?;
                }
                Ok(())
            }
        }
    }
}

fn journal_path(lock: &Lock) -> PathBuf {
    lock.dir.join(JOURNAL_FILE)
}

/// Whether an interrupted run left a journal in `dir`, or the temp file of a journal it was
/// killed while writing (recovery removes that debris too, so a reader must open the store).
pub fn journal_exists(dir: &Path) -> bool {
    let jp = dir.join(JOURNAL_FILE);
    jp.exists() || staged_path(&jp).exists()
}

/// Whether a transaction may be swapping files in `dir` right now: its journal is in place
/// and `prepared` (or unreadable). A `staging` journal (or only the temp file of the first
/// journal write) means no file has been replaced yet: the old files are all in place.
/// Check's consistent read waits while this is true (a renewal's renames come after its
/// `prepared` journal is in place and before the journal is removed).
pub fn swapping(dir: &Path) -> bool {
    match crate::pki::fsread::read(&dir.join(JOURNAL_FILE)) {
        Ok(bytes) => !matches!(
            serde_json::from_slice::<Journal>(&bytes),
            Ok(Journal {
                state: State::Staging,
                ..
            })
        ),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => true,
    }
}

/// Backs up `target` into the backup dir as `<index>-<file name>`, made durable by `batch`:
/// the copy of a file a run replaces or removes. It is a hard link to the old file when
/// [`backup_link`] can make one, else a copy (0600, new file).
fn backup_copy(dir: &Path, index: usize, target: &Path, batch: &Batch) -> Result<PathBuf> {
    let name = format!(
        "{index:02}-{}",
        target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let dst = dir.join(name);
    if backup_link(target, &dst, batch)? {
        return Ok(dst);
    }
    let bytes = crate::pki::fsread::read(target)?;
    write_new(&dst, &bytes, batch)?;
    Ok(dst)
}

/// The backup of `target` as a hard link `dst` to its inode (issue 18 item 4: nothing to read,
/// write or sync for the copy, and the swap's rename frees no blocks; a `renew all` makes 18
/// backups). `Ok(false)`, with nothing made, when a copy must be made instead.
///
/// Why the link is as good as a copy: a commit never writes into a file it replaces — the
/// new contents go to a new inode renamed over the name — so once swapped, the old inode is
/// reachable only through the backup dir (0700) and nothing writes it again. That holds only
/// when the file has no other link (someone could write it in place through that name): a
/// file with `nlink != 1` is copied, and so is one the link(2) fails for (another file
/// system, `protected_hardlinks`), a symlink, anything but a regular file, or one larger
/// than a copy may be (the copy then reports why). The link keeps the old file's mode and
/// owner (a copy is 0600). Durability is the phase's, as for a copy: the new entry is in the
/// backup dir, which the batch syncs (`syncfs`, or its fsync at `finish`); the inode's link
/// count is fsynced here in the fallback.
fn backup_link(target: &Path, dst: &Path, batch: &Batch) -> Result<bool> {
    let plain = |m: &fs::Metadata| {
        m.file_type().is_file() && m.nlink() == 1 && m.len() <= crate::pki::fsread::MAX_FILE_BYTES
    };
    let Ok(before) = fs::symlink_metadata(target) else {
        return Ok(false);
    };
    if !plain(&before) || fs::hard_link(target, dst).is_err() {
        return Ok(false);
    }
    // The inode linked is the one checked, and has no link but its name and ours (else it
    // was replaced or linked meanwhile: copy instead).
    let linked = fs::symlink_metadata(dst).map_err(|e| Error::io(dst, e))?;
    if linked.ino() != before.ino() || linked.dev() != before.dev() || linked.nlink() != 2 {
        fs::remove_file(dst).map_err(|e| Error::io(dst, e))?;
        return Ok(false);
    }
    if batch.whole.is_none() {
        File::open(dst)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(dst, e))?;
    }
    Ok(true)
}

/// Writes `bytes` to the new file `path` (0600; fails if it exists), made durable by `batch`.
fn write_new(path: &Path, bytes: &[u8], batch: &Batch) -> Result<()> {
    let mut f = OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    batch.wrote(path, f)
}

/// Finishes or undoes an interrupted run. Must be called with the lock held; a no-op when
/// there is no journal. Returns what it did, for logging.
fn recover(lock: &Lock) -> Result<Option<String>> {
    let jp = journal_path(lock);
    // A run killed inside the journal's own atomic write leaves its temp file: the journal in
    // place (or its absence) is what counts, so the temp file is only debris.
    let stray = staged_path(&jp);
    // Killed between making the backup dir and renaming the first (staging) journal into
    // place: the temp file may already name that (still empty) backup dir. Nothing else can
    // have been written yet (files are staged after the journal), so only the dir is undone.
    if !jp.exists() {
        if let Ok(bytes) = crate::pki::fsread::read(&stray) {
            if let Ok(Journal {
                state: State::Staging,
                backup_dir: Some(dir),
                ..
            }) = serde_json::from_slice::<Journal>(&bytes)
            {
                remove_partial_backup(&dir)?;
            }
        }
    }
    match fs::remove_file(&stray) {
        Ok(()) => sync_dir(&lock.dir)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&stray, e)),
    }
    let bytes = match crate::pki::fsread::read(&jp) {
        Ok(b) => b,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let journal: Journal = match serde_json::from_slice(&bytes) {
        Ok(j) => j,
        Err(e) => {
            // The journal is written atomically, so a torn journal cannot happen; an
            // unreadable one means someone edited it. Refuse to guess.
            return Err(Error::Recovery {
                reason: crate::error::Reason::with(
                    jp.display().to_string(),
                    crate::error::JsonError(e),
                ),
            });
        }
    };
    let what = match journal.state {
        State::Staging => {
            for e in &journal.entries {
                match fs::remove_file(&e.staged) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(Error::io(&e.staged, err)),
                }
            }
            if let Some(dir) = &journal.backup_dir {
                remove_partial_backup(dir)?;
            }
            "rolled back an interrupted run (no file had been replaced)".to_string()
        }
        State::Prepared => {
            let mut dirs = Vec::new();
            for e in &journal.entries {
                if e.remove {
                    match fs::remove_file(&e.target) {
                        Ok(()) => {}
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                        Err(err) => return Err(Error::io(&e.target, err)),
                    }
                } else if fs::symlink_metadata(&e.staged).is_ok() {
                    // Not `exists()`: a staged symlink may point to a file renamed later.
                    fs::rename(&e.staged, &e.target).map_err(|err| Error::io(&e.target, err))?;
                }
                if let Some(d) = e.target.parent() {
                    if !dirs.contains(&d.to_path_buf()) {
                        dirs.push(d.to_path_buf());
                    }
                }
            }
            for d in dirs {
                sync_dir(&d)?;
            }
            "completed an interrupted run (all staged files installed)".to_string()
        }
    };
    fs::remove_file(&jp).map_err(|e| Error::io(&jp, e))?;
    sync_dir(&lock.dir)?;
    tracing::warn!(journal = %jp.display(), "{what}");
    Ok(Some(what))
}

/// Removes the backup a rolled-back run was making: only what [`commit`] writes there
/// (`NN-<name>` copies, `manifest.json` and its temp file), then the dir if that left it
/// empty. Anything else in it is left alone, so a journal naming another dir cannot make
/// recovery delete what is not ours.
fn remove_partial_backup(dir: &Path) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let ours = |n: &str| {
        n == "manifest.json"
            || n == "manifest.json.kubecert-new"
            || (n.len() > 3 && n.as_bytes()[..2].iter().all(u8::is_ascii_digit) && &n[2..3] == "-")
    };
    for e in rd {
        let e = e.map_err(|err| Error::io(dir, err))?;
        let name = e.file_name();
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if is_file && name.to_str().is_some_and(ours) {
            let p = e.path();
            fs::remove_file(&p).map_err(|err| Error::io(&p, err))?;
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        Err(e) => tracing::warn!(dir = %dir.display(), "partial backup left in place: {e}"),
    }
    Ok(())
}

/// Makes a fresh backup dir `<root>/<stamp>[-N]` with mode 0700.
fn make_backup_dir(root: &Path, stamp: &str, made: &mut Made) -> Result<PathBuf> {
    if !root.exists() {
        fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        made.backup_root = Some(root.to_path_buf());
    }
    for n in 0..1000 {
        let p = if n == 0 {
            root.join(stamp)
        } else {
            root.join(format!("{stamp}-{n}"))
        };
        match fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Err(Error::InvalidArgument(format!(
        "cannot create a backup dir under {}",
        root.display()
    )))
}

/// Refuses a symlink at `dir` or at any directory above it (absent ones are fine: they are
/// created as real directories).
fn refuse_symlinked_dirs(dir: &Path) -> Result<()> {
    refuse_symlinked_dirs_once(dir, &mut Vec::new())
}

/// [`refuse_symlinked_dirs`] for many paths of one check: a directory found in `checked` was
/// checked with all its ancestors by an earlier call, so the walk stops there (a `renew all`
/// checks 18 targets in 3 directories: 3 walks instead of 18).
fn refuse_symlinked_dirs_once(dir: &Path, checked: &mut Vec<PathBuf>) -> Result<()> {
    let abs = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
    for a in abs.ancestors() {
        if checked.iter().any(|c| c == a) {
            break;
        }
        refuse_symlink(a)?;
        checked.push(a.to_path_buf());
    }
    Ok(())
}

/// Every check [`commit`] makes before it changes anything, without changing anything: no
/// target and no directory above it is a symlink; an existing target is a regular
/// file that can be read (for its backup). Returns each target's metadata (`None`: absent).
fn preflight(writes: &[Write_]) -> Result<Vec<Option<fs::Metadata>>> {
    preflight_targets(writes.iter().map(|w| w.target.as_path()))
}

/// [`preflight`] of the targets alone.
fn preflight_targets<'a>(
    targets: impl ExactSizeIterator<Item = &'a Path>,
) -> Result<Vec<Option<fs::Metadata>>> {
    let mut meta = Vec::with_capacity(targets.len());
    let mut checked = Vec::new();
    for target in targets {
        // One lstat for the symlink check (first, as `refuse_symlink`) and the metadata.
        let lstat = fs::symlink_metadata(target);
        if lstat.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::Symlink(target.to_path_buf()));
        }
        refuse_symlinked_dirs_once(target.parent().unwrap_or(Path::new(".")), &mut checked)?;
        let m = match lstat {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(target, e)),
        };
        if let Some(m) = &m {
            if !m.file_type().is_file() {
                let what = if m.is_dir() {
                    "a directory"
                } else {
                    "not a regular file"
                };
                return Err(Error::io(
                    target,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("is {what}; refusing to replace it"),
                    ),
                ));
            }
            File::open(target).map_err(|e| Error::io(target, e))?;
        }
        meta.push(m);
    }
    Ok(meta)
}

/// The checks of [`preflight`] for links: no directory above a link is a symlink; what is at
/// the link's path is a symlink, a regular file (backed up as a copy) or nothing. Returns the
/// current link target (`Some(Some(t))`), `Some(None)` for a regular file, `None` if absent.
fn preflight_links(links: &[Link]) -> Result<Vec<Option<Option<PathBuf>>>> {
    let mut out = Vec::with_capacity(links.len());
    for l in links {
        refuse_symlinked_dirs(l.target.parent().unwrap_or(Path::new(".")))?;
        let m = match fs::symlink_metadata(&l.target) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.push(None);
                continue;
            }
            Err(e) => return Err(Error::io(&l.target, e)),
        };
        if m.file_type().is_symlink() {
            let t = fs::read_link(&l.target).map_err(|e| Error::io(&l.target, e))?;
            out.push(Some(Some(t)));
        } else if m.file_type().is_file() {
            File::open(&l.target).map_err(|e| Error::io(&l.target, e))?;
            out.push(Some(None));
        } else {
            return Err(Error::io(
                &l.target,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "is neither a symlink nor a regular file; refusing to replace it",
                ),
            ));
        }
    }
    Ok(out)
}

/// Applies `writes` as one transaction: backup (into a new dir under `backup_root`, if
/// given), stage, journal, rename. Returns the backup dir. A run that fails before every
/// staged file is durable removes what it made (staged files, journal, backup dir); once the
/// journal says `prepared`, it is left for [`recover`] to roll forward.
fn commit(
    lock: &Lock,
    writes: &[Write_],
    backup_root: Option<&Path>,
    stamp: &str,
) -> Result<Option<PathBuf>> {
    commit_ops(lock, writes, &[], backup_root, stamp)
}

/// [`commit`] with symlinks (see [`Store::commit_with_links`]); the links come after the
/// writes in the journal, the staging and the swap (their failpoint indices continue the
/// writes').
fn commit_ops(
    lock: &Lock,
    writes: &[Write_],
    links: &[Link],
    backup_root: Option<&Path>,
    stamp: &str,
) -> Result<Option<PathBuf>> {
    commit_all(lock, writes, links, &[], backup_root, stamp)
}

/// The checks of [`preflight`] for files to remove: no directory above is a symlink; what is
/// there is a regular file or nothing.
fn preflight_removes(removes: &[PathBuf]) -> Result<()> {
    for r in removes {
        refuse_symlink(r)?;
        refuse_symlinked_dirs(r.parent().unwrap_or(Path::new(".")))?;
        match fs::symlink_metadata(r) {
            Ok(m) if m.file_type().is_file() => {}
            Ok(_) => {
                return Err(Error::io(
                    r,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "is not a regular file; refusing to remove it",
                    ),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(r, e)),
        }
    }
    Ok(())
}

/// [`commit_ops`] plus removals: the removals come last in the journal and the swap, after
/// every file and link is in place. With a backup, each file to remove that exists is backed
/// up as a copy (so a restore writes it back).
fn commit_all(
    lock: &Lock,
    writes: &[Write_],
    links: &[Link],
    removes: &[PathBuf],
    backup_root: Option<&Path>,
    stamp: &str,
) -> Result<Option<PathBuf>> {
    let meta = preflight(writes)?;
    let link_meta = preflight_links(links)?;
    preflight_removes(removes)?;
    for t in writes
        .iter()
        .map(|w| &w.target)
        .chain(links.iter().map(|l| &l.target))
    {
        let parent = t.parent().unwrap_or(Path::new("."));
        if !parent.is_dir() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
    }
    let mut made = Made::default();
    let changes = Changes {
        meta: &meta,
        links,
        link_meta: &link_meta,
        removes,
        backup_root,
        stamp,
    };
    let r = commit_inner(lock, writes, &changes, &mut made);
    if r.is_err() && !made.prepared {
        made.undo(lock);
    }
    if made.prepared {
        // Files were (or may have been) swapped: caches drop what they read of them.
        crate::pki::filestate::note_writes(
            writes
                .iter()
                .map(|w| w.target.as_path())
                .chain(links.iter().map(|l| l.target.as_path()))
                .chain(removes.iter().map(PathBuf::as_path)),
        );
    }
    r
}

/// A commit whose targets are backed up and journaled (`staging`), waiting for their
/// contents: [`Store::prepare`].
pub struct Prepared<'a> {
    lock: &'a Lock,
    targets: Vec<PathBuf>,
    meta: Vec<Option<fs::Metadata>>,
    /// `None` once [`Prepared::commit`] ran.
    begun: Option<Begun>,
    made: Made,
}

impl Prepared<'_> {
    /// Stages `writes` — exactly one per prepared target, in any order — and swaps them in
    /// as [`Store::commit`] does. Returns the backup dir. Writes that do not match the
    /// targets are refused (typed error) before anything is staged, and the preparation
    /// undone.
    pub fn commit(mut self, writes: Vec<Write_>) -> Result<Option<PathBuf>> {
        let mut by_target: Vec<Option<Write_>> = writes.into_iter().map(Some).collect();
        let mut ordered = Vec::with_capacity(self.targets.len());
        for t in &self.targets {
            let w = by_target
                .iter_mut()
                .find(|w| w.as_ref().is_some_and(|w| &w.target == t))
                .and_then(Option::take);
            match w {
                Some(w) => ordered.push(w),
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "prepared commit: no write for {}",
                        t.display()
                    )))
                }
            }
        }
        if let Some(w) = by_target.into_iter().flatten().next() {
            return Err(Error::InvalidArgument(format!(
                "prepared commit: {} was not prepared",
                w.target.display()
            )));
        }
        let Some(begun) = self.begun.take() else {
            return Err(Error::InvalidArgument("prepared commit ran twice".into()));
        };
        let r = commit_finish(
            self.lock,
            begun,
            &ordered,
            &self.meta,
            &[],
            &[],
            &mut self.made,
        );
        if self.made.prepared {
            crate::pki::filestate::note_writes(self.targets.iter().map(PathBuf::as_path));
        }
        r
    }
}

impl Drop for Prepared<'_> {
    /// Undoes the preparation unless the commit reached its `prepared` journal (from there
    /// on, recovery rolls it forward).
    fn drop(&mut self) {
        if !self.made.prepared {
            // The batch's open dirs are closed first.
            self.begun = None;
            self.made.undo(self.lock);
        }
    }
}

/// What a [`commit`] created, so that a failure before `prepared` can take it back.
#[derive(Default)]
struct Made {
    /// The backup root, when this commit created it.
    backup_root: Option<PathBuf>,
    backup_dir: Option<PathBuf>,
    staged: Vec<PathBuf>,
    journal: bool,
    prepared: bool,
}

impl Made {
    fn undo(&self, lock: &Lock) {
        for s in &self.staged {
            let _ = fs::remove_file(s);
        }
        if self.journal {
            let _ = fs::remove_file(journal_path(lock));
            let _ = fs::remove_file(staged_path(&journal_path(lock)));
            let _ = sync_dir(&lock.dir);
        }
        if let Some(d) = &self.backup_dir {
            let _ = fs::remove_dir_all(d);
        }
        if let Some(r) = &self.backup_root {
            // Only when empty: another run may have put its backup there since.
            let _ = fs::remove_dir(r);
        }
    }
}

/// A commit whose first half ([`commit_begin`]) is done: what its second half needs.
struct Begun {
    backup_dir: Option<PathBuf>,
    jp: PathBuf,
    journal: Journal,
    dirs: Vec<PathBuf>,
    batch: Batch,
}

fn journal_bytes(jp: &Path, j: &Journal) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(j).map_err(|e| Error::StoreCorrupt {
        path: jp.to_path_buf(),
        reason: crate::error::describe_json(&e),
    })
}

/// What a commit changes besides the contents of its writes, as [`commit_begin`] needs it
/// (and [`commit_finish`] part of it): the metadata of each write's target before (in the
/// writes' order), the links and their previous targets, the removals, and where and under
/// which stamp the backup goes.
#[derive(Clone, Copy)]
struct Changes<'a> {
    meta: &'a [Option<fs::Metadata>],
    links: &'a [Link],
    link_meta: &'a [Option<Option<PathBuf>>],
    removes: &'a [PathBuf],
    backup_root: Option<&'a Path>,
    stamp: &'a str,
}

fn commit_inner(
    lock: &Lock,
    writes: &[Write_],
    changes: &Changes<'_>,
    made: &mut Made,
) -> Result<Option<PathBuf>> {
    let targets: Vec<PathBuf> = writes.iter().map(|w| w.target.clone()).collect();
    let begun = commit_begin(lock, &targets, changes, made)?;
    let Changes {
        meta,
        links,
        removes,
        ..
    } = *changes;
    commit_finish(lock, begun, writes, meta, links, removes, made)
}

/// The first half of a commit, which needs only the targets (not their new contents):
/// the backup dir, the `staging` journal, the backup of every existing target and the
/// manifest (points 1 and 2 of the crash argument below). Ends at the `after-backup`
/// failpoint, with the batch of point 2 still open for the staged files.
fn commit_begin(
    lock: &Lock,
    targets: &[PathBuf],
    changes: &Changes<'_>,
    made: &mut Made,
) -> Result<Begun> {
    let Changes {
        meta,
        links,
        link_meta,
        removes,
        backup_root,
        stamp,
    } = *changes;
    // The backup dir is made first and named in the journal before anything is copied into
    // it, so that a run killed while backing up leaves a `staging` journal whose recovery
    // removes the partial backup (no orphan backup dirs, no stray temp files).
    let backup_dir = match backup_root {
        Some(root) => {
            let dir = make_backup_dir(root, stamp, made)?;
            made.backup_dir = Some(dir.clone());
            Some(dir)
        }
        None => None,
    };
    let jp = journal_path(lock);
    let entries: Vec<JournalEntry> = targets
        .iter()
        .map(|t| (t, false))
        .chain(links.iter().map(|l| (&l.target, false)))
        .chain(removes.iter().map(|r| (r, true)))
        .map(|(t, remove)| JournalEntry {
            target: t.clone(),
            staged: staged_path(t),
            remove,
        })
        .collect();
    let journal = Journal {
        state: State::Staging,
        backup_dir: backup_dir.clone(),
        entries,
    };
    made.journal = true;
    write_atomic(&jp, &journal_bytes(&jp, &journal)?, 0o600)?;
    failpoint("after-journal-staging");
    // Why one sync per phase keeps the guarantee (after a kill -9 or a power cut at any
    // instant, recovery leaves the old tree or the new one). The protocol needs order only
    // *between* journal states, never among the files of one phase:
    // 1. the `staging` journal is durable (write_atomic: fsync, rename, fsync of the dir)
    //    before any backup copy or staged file exists, so recovery always knows what to
    //    delete;
    // 2. every backup copy (or hard link to the old inode, `backup_link`: a new directory
    //    entry and link count; the old contents, if still dirty, are flushed by the same
    //    `syncfs` of their file system, the link's own), the manifest and every staged file
    //    — contents, inode and directory entry — is durable before the `prepared` journal can be (a `prepared`
    //    journal promises recovery complete staged files to rename): the batch below opens
    //    the file systems first, writes them all, then one `syncfs` per file system returns
    //    only once all of it is on stable storage (or fails: then nothing was renamed, the
    //    run undoes itself, old tree). Until that `prepared` journal is durable, a crash
    //    leaves `staging`, whatever subset of the phase reached the disk: recovery deletes
    //    it;
    // 3. every rename is durable before the journal's removal can be (a second batch);
    //    before that, a crash leaves `prepared`: recovery renames what is still staged.
    // Where `syncfs` cannot be trusted for that (kernels before 5.8 do not report its
    // writeback errors; file systems other than ext2/3/4, XFS, Btrfs), the batch fsyncs
    // each file and directory as before.
    // A commit may stop between this half and `commit_finish` for as long as its caller
    // needs (`Store::prepare`: renew generates the keys meanwhile, the lock held). Nothing
    // is staged or renamed before the contents are there, so a kill in that gap is a kill
    // at the `after-backup` failpoint: a `staging` journal, a complete or partial backup
    // (its manifest written, not yet synced), which the next open removes — the old tree.
    // A caller that fails instead drops its `Prepared`, which undoes the same (`Made`). The
    // backups are hard links, so a file rewritten *in place* by someone ignoring the lock
    // during the gap would change its backup too; kubeadm, the kubelet and kubecert replace
    // files by rename (a new inode), which leaves the linked old inode as it was.
    let mut dirs: Vec<PathBuf> = Vec::new();
    for t in targets.iter().chain(links.iter().map(|l| &l.target)) {
        if let Some(d) = t.parent() {
            if !dirs.contains(&d.to_path_buf()) {
                dirs.push(d.to_path_buf());
            }
        }
    }
    let batch = Batch::begin(
        &backup_dir
            .iter()
            .cloned()
            .chain(dirs.iter().cloned())
            .collect::<Vec<_>>(),
    )?;
    // Backup.
    if let Some(dir) = &backup_dir {
        let dir = dir.clone();
        let mut manifest = BackupManifest {
            created: stamp.to_string(),
            entries: vec![],
        };
        for (i, t) in targets.iter().enumerate() {
            let copy = if meta.get(i).is_some_and(Option::is_some) {
                Some(backup_copy(&dir, i, t, &batch)?)
            } else {
                None
            };
            manifest.entries.push(BackupEntry {
                target: t.clone(),
                copy,
                link_target: None,
            });
        }
        for (j, l) in links.iter().enumerate() {
            let (copy, link_target) = match link_meta.get(j) {
                Some(Some(Some(t))) => (None, Some(t.clone())),
                Some(Some(None)) => (
                    Some(backup_copy(&dir, targets.len() + j, &l.target, &batch)?),
                    None,
                ),
                _ => (None, None),
            };
            manifest.entries.push(BackupEntry {
                target: l.target.clone(),
                copy,
                link_target,
            });
        }
        for (j, r) in removes.iter().enumerate() {
            if fs::symlink_metadata(r).is_ok() {
                let copy = backup_copy(&dir, targets.len() + links.len() + j, r, &batch)?;
                manifest.entries.push(BackupEntry {
                    target: r.clone(),
                    copy: Some(copy),
                    link_target: None,
                });
            }
        }
        let mp = dir.join("manifest.json");
        let mj = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::StoreCorrupt {
            path: mp.clone(),
            reason: crate::error::describe_json(&e),
        })?;
        // A new file in the backup dir this run made (no temp file needed: while the journal
        // is `staging`, a partial backup dir is removed whole by recovery).
        write_new(&mp, &mj, &batch)?;
    }
    failpoint("after-backup");
    Ok(Begun {
        backup_dir,
        jp,
        journal,
        dirs,
        batch,
    })
}

/// The second half of a commit: `writes` (in the order of the targets given to
/// [`commit_begin`]) staged, the batch synced, the `prepared` journal, the swap.
fn commit_finish(
    lock: &Lock,
    begun: Begun,
    writes: &[Write_],
    meta: &[Option<fs::Metadata>],
    links: &[Link],
    removes: &[PathBuf],
    made: &mut Made,
) -> Result<Option<PathBuf>> {
    let Begun {
        backup_dir,
        jp,
        mut journal,
        mut dirs,
        batch,
    } = begun;
    // Stage.
    for (i, w) in writes.iter().enumerate() {
        let staged = staged_path(&w.target);
        let _ = fs::remove_file(&staged);
        let old = meta.get(i).and_then(Option::as_ref);
        let mode = match old {
            Some(m) if !w.force_mode => m.permissions().mode() & 0o7777,
            _ => w.mode,
        };
        let mut f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&staged)
            .map_err(|e| Error::io(&staged, e))?;
        made.staged.push(staged.clone());
        f.write_all(&w.contents)
            .map_err(|e| Error::io(&staged, e))?;
        if let Some(m) = old {
            // Keep owners; failure (not root) is fine when they are already ours.
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
        }
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(&staged, e))?;
        batch.wrote(&staged, f)?;
        failpoint(&format!("after-stage-{i}"));
    }
    for (j, l) in links.iter().enumerate() {
        let i = writes.len() + j;
        let staged = staged_path(&l.target);
        let _ = fs::remove_file(&staged);
        std::os::unix::fs::symlink(&l.points_to, &staged).map_err(|e| Error::io(&staged, e))?;
        made.staged.push(staged.clone());
        failpoint(&format!("after-stage-{i}"));
    }
    batch.finish()?;
    journal.state = State::Prepared;
    write_atomic(&jp, &journal_bytes(&jp, &journal)?, 0o600)?;
    made.prepared = true;
    failpoint("after-journal-prepared");
    // Swap.
    for r in removes {
        if let Some(d) = r.parent() {
            if !dirs.contains(&d.to_path_buf()) {
                dirs.push(d.to_path_buf());
            }
        }
    }
    let batch = Batch::begin(&dirs)?;
    for (i, t) in writes
        .iter()
        .map(|w| &w.target)
        .chain(links.iter().map(|l| &l.target))
        .enumerate()
    {
        fs::rename(staged_path(t), t).map_err(|e| Error::io(t, e))?;
        failpoint(&format!("after-rename-{i}"));
    }
    for (j, r) in removes.iter().enumerate() {
        match fs::remove_file(r) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(r, e)),
        }
        let i = writes.len() + links.len() + j;
        failpoint(&format!("after-rename-{i}"));
    }
    batch.finish()?;
    fs::remove_file(&jp).map_err(|e| Error::io(&jp, e))?;
    sync_dir(&lock.dir)?;
    failpoint("after-commit");
    Ok(backup_dir)
}

/// Largest `manifest.json` restore reads (a real one lists a few dozen entries).
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024;
/// Largest backed-up file restore copies back (kubeadm's files are a few KiB).
pub const MAX_BACKUP_FILE_BYTES: u64 = 1024 * 1024;

/// `p` made absolute (against the current dir) with `.` and `..` resolved lexically and no
/// trailing separator. Touches no file.
pub fn normalize(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn refused(path: &Path, reason: impl Into<String>) -> Error {
    Error::BackupRefused {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The backup dir `dir` as restore may use it: a direct child of `root` (lexically), a real
/// directory (not a symlink). Returns the normalised path.
pub fn backup_dir_in(root: &Path, dir: &Path) -> Result<PathBuf> {
    let d = normalize(dir);
    let r = normalize(root);
    if d.parent() != Some(r.as_path()) || d.file_name().is_none() {
        return Err(refused(
            dir,
            format!(
                "not a backup of this PKI: backups are read only from directories directly \
                 under the backup root {}",
                r.display()
            ),
        ));
    }
    match fs::symlink_metadata(&d) {
        Ok(m) if m.file_type().is_symlink() => Err(refused(dir, "is a symlink")),
        Ok(m) if m.is_dir() => Ok(d),
        Ok(_) => Err(refused(dir, "not a directory")),
        Err(e) => Err(Error::io(&d, e)),
    }
}

/// Reads a file of a backup through the one bounded reader ([`crate::pki::fsread::read`]:
/// no symlink, regular file, at most 1 MiB), refusing anything larger than `limit` bytes and
/// saying why in restore's own terms.
fn read_plain_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let bytes = crate::pki::fsread::read(path).map_err(|e| match e {
        Error::Symlink(_) => refused(path, "is a symlink"),
        Error::NotRegularFile { kind, .. } => refused(path, format!("not a regular file ({kind})")),
        Error::FileTooLarge { .. } => refused(path, format!("more than {limit} bytes")),
        other => other,
    })?;
    if bytes.len() as u64 > limit {
        return Err(refused(
            path,
            format!(
                "{} bytes, more than the {limit} a backup file may hold",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// Reads a backup dir's manifest (a regular file, not a symlink, at most
/// [`MAX_MANIFEST_BYTES`]). `dir` should come from [`backup_dir_in`].
pub fn read_manifest(dir: &Path) -> Result<BackupManifest> {
    let p = dir.join("manifest.json");
    let bytes = read_plain_bounded(&p, MAX_MANIFEST_BYTES)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        refused(
            &p,
            format!(
                "not a kubecert manifest (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

/// What a backup may put back, lexically normalised paths (see [`restore_ops`]).
#[derive(Debug, Clone, Default)]
pub struct Restorable {
    /// Files a copy of the backup may be written over.
    pub files: BTreeSet<PathBuf>,
    /// Symlinks that may be re-pointed (`linkTarget` entries).
    pub links: BTreeSet<PathBuf>,
    /// What a re-pointed link may point to: existing files only.
    pub link_targets: BTreeSet<PathBuf>,
    /// Files the backed-up run may have created: an entry saying one did not exist (no
    /// copy, no link target) removes it.
    pub removable: BTreeSet<PathBuf>,
}

/// What puts a backup back in place: one [`Store::restore`] transaction.
#[derive(Debug, Clone, Default)]
pub struct RestoreOps {
    /// Files rewritten from their copies.
    pub writes: Vec<Write_>,
    /// Links re-pointed at their old targets.
    pub links: Vec<Link>,
    /// Files the backed-up run created, removed.
    pub removes: Vec<PathBuf>,
}

/// The writes that put a backup back in place: [`restore_ops`] with files only (no link,
/// nothing removed).
pub fn restore_writes(
    dir: &Path,
    manifest: &BackupManifest,
    allowed: &BTreeSet<PathBuf>,
) -> Result<Vec<Write_>> {
    let r = Restorable {
        files: allowed.clone(),
        ..Restorable::default()
    };
    restore_ops(dir, manifest, &r).map(|o| o.writes)
}

/// What puts a backup back in place.
///
/// Every entry is checked before anything is read back, and any failure is
/// [`Error::BackupRefused`]:
/// - `target` must be one of `allowed` (files, links or removable files, compared lexically
///   normalised) and listed once;
/// - `copy` must name a plain file directly inside `dir` (an absolute path in `dir`, as
///   [`commit`] writes it, or a bare file name), not a symlink, a regular file of at most
///   [`MAX_BACKUP_FILE_BYTES`], and `target` one of `allowed.files`;
/// - `linkTarget` (an absolute path, or one relative to the link's dir) needs `target` in
///   `allowed.links` and must resolve to one of `allowed.link_targets`;
/// - an entry with neither (the file did not exist) removes `target` when it is one of
///   `allowed.removable`, and is left alone otherwise.
pub fn restore_ops(
    dir: &Path,
    manifest: &BackupManifest,
    allowed: &Restorable,
) -> Result<RestoreOps> {
    let dir = normalize(dir);
    let mut seen = BTreeSet::new();
    let mut plan = Vec::new();
    let mut ops = RestoreOps::default();
    for e in &manifest.entries {
        let target = normalize(&e.target);
        if !(allowed.files.contains(&target)
            || allowed.links.contains(&target)
            || allowed.removable.contains(&target))
        {
            return Err(refused(
                &dir,
                format!(
                    "manifest entry {} is not a certificate, key or kubeconfig of the PKI \
                     being restored",
                    e.target.display()
                ),
            ));
        }
        if !seen.insert(target.clone()) {
            return Err(refused(
                &dir,
                format!("manifest lists {} twice", e.target.display()),
            ));
        }
        match (&e.copy, &e.link_target) {
            (Some(_), Some(_)) => {
                return Err(refused(
                    &dir,
                    format!(
                        "manifest entry {} has both a copy and a link target",
                        e.target.display()
                    ),
                ))
            }
            (None, Some(lt)) => {
                if !allowed.links.contains(&target) {
                    return Err(refused(
                        &dir,
                        format!(
                            "manifest entry {} is not a kubelet link that restore may re-point",
                            e.target.display()
                        ),
                    ));
                }
                let resolved = if lt.is_absolute() {
                    normalize(lt)
                } else {
                    normalize(&target.parent().unwrap_or(Path::new("/")).join(lt))
                };
                if !allowed.link_targets.contains(&resolved) {
                    return Err(refused(
                        &dir,
                        format!(
                            "link target {} of {} is not an existing rotated pair beside it",
                            lt.display(),
                            e.target.display()
                        ),
                    ));
                }
                ops.links.push(Link {
                    target,
                    points_to: lt.clone(),
                });
            }
            (None, None) => {
                if allowed.removable.contains(&target) {
                    ops.removes.push(target);
                }
            }
            (Some(copy), None) => {
                if !allowed.files.contains(&target) {
                    return Err(refused(
                        &dir,
                        format!(
                            "manifest entry {} cannot be restored from a copy",
                            e.target.display()
                        ),
                    ));
                }
                let name = match copy.file_name() {
                    Some(n) if n != ".." && n != "." => n,
                    _ => {
                        return Err(refused(
                            &dir,
                            format!("copy {} is not a file name", copy.display()),
                        ))
                    }
                };
                let inside = dir.join(name);
                let plain = copy.components().count() == 1 || normalize(copy) == inside;
                if !plain || copy.to_string_lossy().contains("..") {
                    return Err(refused(
                        &dir,
                        format!(
                            "copy {} is not a file inside the backup dir",
                            copy.display()
                        ),
                    ));
                }
                plan.push((target, inside));
            }
        }
    }
    for (target, copy) in plan {
        let contents = read_plain_bounded(&copy, MAX_BACKUP_FILE_BYTES)?;
        // A file the backed-up run removed (a CA rotation's `.next`/`.prev` files) comes
        // back with kubeadm's mode: certificates 0644, anything else 0600.
        let mode = fs::metadata(&target)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(if target.extension().is_some_and(|x| x == "crt") {
                0o644
            } else {
                0o600
            });
        ops.writes.push(Write_ {
            target,
            contents,
            mode,
            force_mode: false,
        });
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_backs_up_and_replaces() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.crt");
        fs::write(&a, b"old").unwrap();
        fs::set_permissions(&a, fs::Permissions::from_mode(0o644)).unwrap();
        let lock = Lock::acquire(d.path(), Duration::from_secs(1)).unwrap();
        let writes = vec![
            Write_ {
                target: a.clone(),
                contents: b"new".to_vec(),
                mode: 0o600,
                force_mode: false,
            },
            Write_ {
                target: d.path().join("sub/b.key"),
                contents: b"k".to_vec(),
                mode: 0o600,
                force_mode: true,
            },
        ];
        let bd = commit(&lock, &writes, Some(&d.path().join("bk")), "T")
            .unwrap()
            .unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"new");
        assert_eq!(
            fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(
            fs::metadata(d.path().join("sub/b.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&bd).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let m = read_manifest(&bd).unwrap();
        assert_eq!(m.entries.len(), 2);
        assert!(m.entries[1].copy.is_none());
        let allowed = [a.clone(), d.path().join("sub/b.key")]
            .iter()
            .map(|p| normalize(p))
            .collect();
        let back = restore_writes(&bd, &m, &allowed).unwrap();
        commit(&lock, &back, None, "T2").unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"old");
        assert!(!journal_exists(d.path()));
    }

    /// A commit of many files in several directories, each with an old version, leaves
    /// every new file in place with its contents, a backup copy of every old one listed in
    /// the manifest, and no staged file or journal behind.
    #[test]
    fn commit_of_many_files_in_several_dirs_backs_up_and_replaces_each() {
        let d = tempfile::tempdir().unwrap();
        let mut writes = Vec::new();
        for i in 0..24 {
            let sub = ["", "etcd/", "kc/"][i % 3];
            let target = d.path().join(format!("{sub}f{i}.crt"));
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            fs::write(&target, format!("old {i}")).unwrap();
            writes.push(Write_ {
                target,
                contents: format!("new {i}").into_bytes(),
                mode: 0o644,
                force_mode: false,
            });
        }
        let lock = Lock::acquire(d.path(), Duration::from_secs(1)).unwrap();
        let bd = commit(&lock, &writes, Some(&d.path().join("bk")), "T")
            .unwrap()
            .unwrap();
        let m = read_manifest(&bd).unwrap();
        assert_eq!(m.entries.len(), 24);
        for (i, (w, e)) in writes.iter().zip(&m.entries).enumerate() {
            assert_eq!(fs::read(&w.target).unwrap(), format!("new {i}").as_bytes());
            assert!(!staged_path(&w.target).exists());
            assert_eq!(e.target, w.target);
            let copy = e.copy.as_ref().expect("a copy of the old file");
            assert_eq!(fs::read(copy).unwrap(), format!("old {i}").as_bytes());
        }
        assert!(!journal_exists(d.path()));
    }

    /// The same with the fallback of old kernels and other file systems (each file and
    /// directory fsynced, no `syncfs`); and the batch's choice on this machine is reported.
    #[test]
    fn commit_with_fsync_per_file_backs_up_and_replaces_each() {
        eprintln!(
            "syncfs reports errors here: {}; the test dir's fs is trusted: {}",
            syncfs_reports_errors(),
            syncfs_is_whole(&File::open(std::env::temp_dir()).unwrap())
        );
        FORCE_FSYNC.store(true, std::sync::atomic::Ordering::SeqCst);
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.crt");
        fs::write(&a, b"old").unwrap();
        let writes = vec![
            Write_ {
                target: a.clone(),
                contents: b"new".to_vec(),
                mode: 0o644,
                force_mode: false,
            },
            Write_ {
                target: d.path().join("sub/b.key"),
                contents: b"k".to_vec(),
                mode: 0o600,
                force_mode: true,
            },
        ];
        let lock = Lock::acquire(d.path(), Duration::from_secs(1)).unwrap();
        let batch = Batch::begin(&[d.path().to_path_buf()]).unwrap();
        assert!(batch.whole.is_none(), "the fallback was not taken");
        drop(batch);
        let r = commit(&lock, &writes, Some(&d.path().join("bk")), "T");
        FORCE_FSYNC.store(false, std::sync::atomic::Ordering::SeqCst);
        let bd = r.unwrap().unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"new");
        assert_eq!(fs::read(d.path().join("sub/b.key")).unwrap(), b"k");
        let m = read_manifest(&bd).unwrap();
        assert_eq!(m.entries.len(), 2);
        assert_eq!(
            fs::read(m.entries[0].copy.as_ref().unwrap()).unwrap(),
            b"old"
        );
        assert!(!journal_exists(d.path()));
        assert!(!staged_path(&a).exists());
    }

    /// Issue 18 item 4: the backup of a file with no other link is a hard link to the old
    /// inode (same inode, old contents: nothing is copied, and the rename frees nothing),
    /// and stays the old contents after the new file is rewritten in place; a file with
    /// another hard link (which someone could write in place) is copied, as is any file the
    /// link cannot be made for.
    #[test]
    fn backup_is_a_hard_link_to_the_replaced_file_unless_it_has_other_links() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.crt");
        let b = d.path().join("b.key");
        let b_extra = d.path().join("b-extra");
        fs::write(&a, b"old a").unwrap();
        fs::write(&b, b"old b").unwrap();
        fs::hard_link(&b, &b_extra).unwrap();
        let ino = |p: &Path| fs::symlink_metadata(p).unwrap().ino();
        let (a_ino, b_ino) = (ino(&a), ino(&b));
        let writes: Vec<Write_> = [(&a, "new a"), (&b, "new b")]
            .iter()
            .map(|(t, c)| Write_ {
                target: t.to_path_buf(),
                contents: c.as_bytes().to_vec(),
                mode: 0o600,
                force_mode: false,
            })
            .collect();
        let lock = Lock::acquire(d.path(), Duration::from_secs(1)).unwrap();
        let bd = commit(&lock, &writes, Some(&d.path().join("bk")), "T")
            .unwrap()
            .unwrap();
        let m = read_manifest(&bd).unwrap();
        let a_copy = m.entries[0].copy.clone().unwrap();
        let b_copy = m.entries[1].copy.clone().unwrap();
        assert_eq!(ino(&a_copy), a_ino, "a's backup is not a link to the old a");
        assert_ne!(ino(&a), a_ino);
        assert_eq!(fs::symlink_metadata(&a_copy).unwrap().nlink(), 1);
        assert_ne!(ino(&b_copy), b_ino, "b (2 links) was linked, not copied");
        assert_eq!(fs::read(&b_copy).unwrap(), b"old b");
        assert_eq!(fs::read(&b_extra).unwrap(), b"old b");
        assert_eq!(fs::read(&a).unwrap(), b"new a");
        fs::write(&a, b"rewritten in place").unwrap();
        assert_eq!(fs::read(&a_copy).unwrap(), b"old a");
        // And it restores like a copy.
        let allowed = [a.clone(), b.clone()]
            .iter()
            .map(|p| normalize(p))
            .collect();
        let back = restore_writes(&bd, &m, &allowed).unwrap();
        commit(&lock, &back, None, "T2").unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"old a");
        assert_eq!(fs::read(&b).unwrap(), b"old b");
        assert_eq!(fs::read(&a_copy).unwrap(), b"old a");
        assert!(!journal_exists(d.path()));
    }

    #[test]
    fn second_lock_times_out_with_pid() {
        let d = tempfile::tempdir().unwrap();
        let _l = Lock::acquire(d.path(), Duration::from_secs(1)).unwrap();
        let err = Lock::acquire(d.path(), Duration::from_millis(100)).unwrap_err();
        match err {
            Error::Locked { pid, .. } => assert_eq!(pid, std::process::id()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn symlink_target_refused() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        fs::write(&real, b"x").unwrap();
        let link = d.path().join("link.crt");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let lock = Lock::acquire(d.path(), Duration::from_secs(1)).unwrap();
        let w = Write_ {
            target: link,
            contents: b"y".to_vec(),
            mode: 0o644,
            force_mode: false,
        };
        assert!(matches!(
            commit(&lock, &[w], None, "T"),
            Err(Error::Symlink(_))
        ));
        assert_eq!(fs::read(&real).unwrap(), b"x");
    }

    /// Issue 15: a link is swapped in the same transaction as the files, its old target is
    /// in the manifest, and a regular file in a link's place is refused only when it is
    /// neither a file nor a link.
    #[test]
    fn commit_with_links_swaps_the_link_and_records_the_old_one() {
        let d = tempfile::tempdir().unwrap();
        let pki = d.path().join("pki");
        fs::create_dir(&pki).unwrap();
        let old = pki.join("kubelet-client-2020-01-01-00-00-00.pem");
        fs::write(&old, b"old").unwrap();
        let cur = pki.join("kubelet-client-current.pem");
        std::os::unix::fs::symlink(&old, &cur).unwrap();
        let new = pki.join("kubelet-client-2026-12-01-00-00-00.pem");
        let lock = Lock::acquire(&pki, Duration::from_secs(1)).unwrap();
        let writes = vec![Write_ {
            target: new.clone(),
            contents: b"new".to_vec(),
            mode: 0o600,
            force_mode: true,
        }];
        let links = vec![Link {
            target: cur.clone(),
            points_to: new.clone(),
        }];
        let bd = commit_ops(&lock, &writes, &links, Some(&d.path().join("bk")), "T")
            .unwrap()
            .unwrap();
        assert_eq!(fs::read_link(&cur).unwrap(), new);
        assert_eq!(fs::read(&cur).unwrap(), b"new");
        assert_eq!(fs::read(&old).unwrap(), b"old");
        let m = read_manifest(&bd).unwrap();
        assert_eq!(m.entries[1].link_target.as_deref(), Some(old.as_path()));
        assert!(m.entries[1].copy.is_none());
        assert!(!journal_exists(&pki));
        // A directory where the link goes: refused before anything is written.
        fs::remove_file(&cur).unwrap();
        fs::create_dir(&cur).unwrap();
        let e = commit_ops(&lock, &[], &links, None, "T2").unwrap_err();
        assert_eq!(e.path(), Some(cur.as_path()));
    }

    /// Recovery of a prepared journal renames a staged symlink even when what it points to
    /// is itself still staged (`exists()` would follow the link and skip it).
    #[test]
    fn recovery_rolls_a_staged_link_forward() {
        let d = tempfile::tempdir().unwrap();
        let pki = d.path().join("pki");
        fs::create_dir(&pki).unwrap();
        let cur = pki.join("kubelet-client-current.pem");
        let new = pki.join("kubelet-client-new.pem");
        std::os::unix::fs::symlink(&new, staged_path(&cur)).unwrap();
        fs::write(staged_path(&new), b"pem").unwrap();
        let j = Journal {
            state: State::Prepared,
            backup_dir: None,
            entries: vec![
                JournalEntry {
                    target: cur.clone(),
                    staged: staged_path(&cur),
                    remove: false,
                },
                JournalEntry {
                    target: new.clone(),
                    staged: staged_path(&new),
                    remove: false,
                },
            ],
        };
        fs::write(pki.join(JOURNAL_FILE), serde_json::to_vec(&j).unwrap()).unwrap();
        let s = Store::open(&pki, Duration::from_secs(1)).unwrap();
        assert!(s.recovered().is_some());
        assert_eq!(fs::read_link(&cur).unwrap(), new);
        assert_eq!(fs::read(&cur).unwrap(), b"pem");
    }

    /// Issue 12 item 9: a commit that failed writing its journal left the backup dir and a
    /// stray `.kubecert-journal.json.kubecert-new` behind.
    #[test]
    fn failed_commit_removes_its_backup_and_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let pki = d.path().join("pki");
        fs::create_dir(&pki).unwrap();
        let a = pki.join("a.crt");
        fs::write(&a, b"old").unwrap();
        // The journal cannot be renamed into place: its path is a directory.
        fs::create_dir(pki.join(JOURNAL_FILE)).unwrap();
        let lock = Lock::acquire(&pki, Duration::from_secs(1)).unwrap();
        let w = Write_ {
            target: a.clone(),
            contents: b"new".to_vec(),
            mode: 0o644,
            force_mode: false,
        };
        let backups = d.path().join("backup");
        let err = commit(&lock, &[w], Some(&backups), "T").unwrap_err();
        assert_eq!(err.path(), Some(pki.join(JOURNAL_FILE).as_path()));
        assert_eq!(fs::read(&a).unwrap(), b"old");
        assert!(!backups.exists(), "backup root left");
        let mut left: Vec<String> = fs::read_dir(&pki)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [JOURNAL_FILE, "a.crt"]);
    }

    #[test]
    fn a_waiter_names_the_holder_without_a_pid_file() {
        let d = tempfile::tempdir().unwrap();
        let held = Lock::acquire(d.path(), Duration::from_secs(1)).unwrap();
        // Another open file description of the same dir: flock(2) makes it wait.
        match Lock::acquire(d.path(), Duration::ZERO) {
            Err(Error::Locked { pid, dir }) => {
                assert_eq!(pid, std::process::id());
                assert_eq!(dir, d.path());
            }
            other => panic!("not locked: {other:?}"),
        }
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            0,
            "a file was made"
        );
        drop(held);
        Lock::acquire(d.path(), Duration::ZERO).unwrap();
    }

    /// A run killed while making its backup leaves a `staging` journal naming the partial
    /// backup dir; recovery removes what commit wrote there and the dir, but never a file
    /// commit does not write.
    #[test]
    fn recovery_of_a_staging_journal_removes_the_partial_backup() {
        for foreign in [false, true] {
            let d = tempfile::tempdir().unwrap();
            let pki = d.path().join("pki");
            fs::create_dir(&pki).unwrap();
            let b = d.path().join("backup").join("T");
            fs::create_dir_all(&b).unwrap();
            fs::write(b.join("00-a.crt"), b"old").unwrap();
            fs::write(b.join("manifest.json.kubecert-new"), b"{").unwrap();
            if foreign {
                fs::write(b.join("notes.txt"), b"mine").unwrap();
            }
            let j = Journal {
                state: State::Staging,
                backup_dir: Some(b.clone()),
                entries: vec![],
            };
            fs::write(pki.join(JOURNAL_FILE), serde_json::to_vec(&j).unwrap()).unwrap();
            let s = Store::open(&pki, Duration::from_secs(1)).unwrap();
            assert!(s.recovered().is_some());
            if foreign {
                let left: Vec<_> = fs::read_dir(&b)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                assert_eq!(left, ["notes.txt"]);
            } else {
                assert!(!b.exists(), "partial backup left");
            }
        }
    }

    /// Killed after making the backup dir and writing the staging journal's temp file, before
    /// its rename (found by the random SIGKILL trials of `kubelet-conf rebuild`): the next open
    /// removes the temp file and the empty backup dir it names.
    #[test]
    fn open_undoes_a_backup_dir_named_by_a_stray_staging_journal() {
        let d = tempfile::tempdir().unwrap();
        let pki = d.path().join("pki");
        fs::create_dir(&pki).unwrap();
        let backup = d.path().join("kubecert-backup").join("20270201T000000Z");
        fs::create_dir_all(&backup).unwrap();
        let j = Journal {
            state: State::Staging,
            backup_dir: Some(backup.clone()),
            entries: vec![],
        };
        let stray = staged_path(&pki.join(JOURNAL_FILE));
        fs::write(&stray, serde_json::to_vec(&j).unwrap()).unwrap();
        assert!(journal_exists(&pki));
        Store::open(&pki, Duration::from_secs(1)).unwrap();
        assert!(!stray.exists());
        assert!(!backup.exists(), "the empty backup dir is left");
        assert!(!journal_exists(&pki));
    }

    /// A run killed while writing a journal (the staging journal before its rename, or the
    /// `prepared` one over a staging journal) leaves `<journal>.kubecert-new`; the next open
    /// removes it, with or without a journal in place (found by the random SIGKILL trials of
    /// `kubelet-conf rebuild`).
    #[test]
    fn open_removes_a_stale_staged_journal() {
        for with_journal in [false, true] {
            let d = tempfile::tempdir().unwrap();
            let pki = d.path().join("pki");
            fs::create_dir(&pki).unwrap();
            let stray = staged_path(&pki.join(JOURNAL_FILE));
            fs::write(&stray, b"{\"state\":\"prepared\"").unwrap();
            if with_journal {
                let j = Journal {
                    state: State::Staging,
                    backup_dir: None,
                    entries: vec![],
                };
                fs::write(pki.join(JOURNAL_FILE), serde_json::to_vec(&j).unwrap()).unwrap();
            }
            // A reader (check) must see that there is something to recover.
            assert!(journal_exists(&pki), "with_journal={with_journal}");
            let s = Store::open(&pki, Duration::from_secs(1)).unwrap();
            assert!(
                !stray.exists(),
                "with_journal={with_journal}: stray journal left"
            );
            assert_eq!(s.recovered().is_some(), with_journal);
            assert!(!journal_exists(&pki));
        }
    }

    /// Every file under `dir` (relative path → contents; directories as `<dir>`).
    fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
        fn walk(root: &Path, d: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
            for e in fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                if p.is_dir() {
                    out.insert(rel, b"<dir>".to_vec());
                    walk(root, &p, out);
                } else {
                    out.insert(rel, fs::read(&p).unwrap());
                }
            }
        }
        let mut out = std::collections::BTreeMap::new();
        walk(dir, dir, &mut out);
        out
    }

    fn two_writes(pki: &Path) -> Vec<Write_> {
        vec![
            Write_ {
                target: pki.join("a.crt"),
                contents: b"new".to_vec(),
                mode: 0o644,
                force_mode: false,
            },
            Write_ {
                target: pki.join("sub/b.key"),
                contents: b"k".to_vec(),
                mode: 0o600,
                force_mode: true,
            },
        ]
    }

    /// `prepare` does the transaction's first half from the targets alone — the `staging`
    /// journal, the backup of the existing file and the manifest exist, nothing is replaced —
    /// and `commit` of the contents (in another order) finishes it like a whole commit.
    #[test]
    fn prepared_commit_journals_and_backs_up_first_then_replaces() {
        let d = tempfile::tempdir().unwrap();
        let pki = d.path().join("pki");
        fs::create_dir(&pki).unwrap();
        fs::write(pki.join("a.crt"), b"old").unwrap();
        let mut store = Store::open(&pki, Duration::from_secs(1)).unwrap();
        let writes = two_writes(&pki);
        let targets: Vec<PathBuf> = writes.iter().map(|w| w.target.clone()).collect();
        let backups = d.path().join("backup");
        let prep = store.prepare(&targets, &backups, "T").unwrap();
        assert!(journal_exists(&pki), "no staging journal after prepare");
        let bd = backups.join("T");
        let m = read_manifest(&bd).unwrap();
        assert_eq!(m.entries.len(), 2);
        let copy = m.entries[0].copy.as_ref().expect("a.crt backed up");
        assert_eq!(fs::read(copy).unwrap(), b"old");
        assert!(m.entries[1].copy.is_none());
        assert_eq!(
            fs::read(pki.join("a.crt")).unwrap(),
            b"old",
            "replaced early"
        );
        assert!(!pki.join("sub/b.key").exists());
        let got = prep
            .commit(writes.into_iter().rev().collect())
            .unwrap()
            .unwrap();
        assert_eq!(got, bd);
        assert_eq!(fs::read(pki.join("a.crt")).unwrap(), b"new");
        assert_eq!(fs::read(pki.join("sub/b.key")).unwrap(), b"k");
        assert_eq!(
            fs::metadata(pki.join("sub/b.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(fs::read(copy).unwrap(), b"old");
        assert!(!journal_exists(&pki));
        let left: Vec<_> = fs::read_dir(&pki)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".kubecert-new"))
            .collect();
        assert!(left.is_empty(), "staged files left: {left:?}");
    }

    /// A prepared commit dropped (the keys could not be made) or given writes other than its
    /// targets (refused: typed error naming the file) leaves the tree as it was: no journal,
    /// no backup dir, no staged file.
    #[test]
    fn a_prepared_commit_dropped_or_given_other_writes_changes_nothing() {
        for case in ["dropped", "missing", "extra"] {
            let d = tempfile::tempdir().unwrap();
            let pki = d.path().join("pki");
            fs::create_dir(&pki).unwrap();
            fs::write(pki.join("a.crt"), b"old").unwrap();
            let mut store = Store::open(&pki, Duration::from_secs(1)).unwrap();
            let before = tree(d.path());
            let mut writes = two_writes(&pki);
            let targets: Vec<PathBuf> = writes.iter().map(|w| w.target.clone()).collect();
            let prep = store
                .prepare(&targets, &d.path().join("backup"), "T")
                .unwrap();
            assert_ne!(tree(d.path()), before, "{case}: prepare made nothing");
            match case {
                "dropped" => drop(prep),
                "missing" => {
                    writes.pop();
                    let e = prep.commit(writes).unwrap_err();
                    assert!(matches!(e, Error::InvalidArgument(_)), "{case}: {e:?}");
                    assert!(e.to_string().contains("no write for"), "{case}: {e}");
                    assert!(e.to_string().contains("b.key"), "{case}: {e}");
                }
                _ => {
                    writes.push(Write_ {
                        target: pki.join("c.crt"),
                        contents: b"c".to_vec(),
                        mode: 0o644,
                        force_mode: false,
                    });
                    let e = prep.commit(writes).unwrap_err();
                    assert!(e.to_string().contains("c.crt"), "{case}: {e}");
                    assert!(e.to_string().contains("was not prepared"), "{case}: {e}");
                }
            }
            let mut after = tree(d.path());
            // The target's parent dir is made by the preflight, like a whole commit's.
            after.remove("pki/sub");
            assert_eq!(after, before, "{case}");
        }
    }

    /// A run killed between `prepare` and `commit` (while its keys were being made) leaves a
    /// `staging` journal: the next open removes the backup and the journal, and the tree is
    /// the one before the run.
    #[test]
    fn a_run_killed_after_prepare_is_undone_by_the_next_open() {
        let d = tempfile::tempdir().unwrap();
        let pki = d.path().join("pki");
        fs::create_dir(&pki).unwrap();
        fs::write(pki.join("a.crt"), b"old").unwrap();
        fs::write(pki.join("b.key"), b"oldk").unwrap();
        let before = tree(&pki);
        let backups = d.path().join("backup");
        {
            let mut store = Store::open(&pki, Duration::from_secs(1)).unwrap();
            let targets = [pki.join("a.crt"), pki.join("b.key")];
            let prep = store.prepare(&targets, &backups, "T").unwrap();
            assert!(backups.join("T").join("manifest.json").exists());
            // As a kill: nothing of the preparation is undone by the process itself.
            std::mem::forget(prep);
        }
        let s = Store::open(&pki, Duration::from_secs(1)).unwrap();
        assert!(s.recovered().is_some(), "nothing recovered");
        assert!(!backups.join("T").exists(), "partial backup left");
        assert_eq!(tree(&pki), before);
    }

    /// The symlink walk of many targets checks each directory once, and still refuses a
    /// symlinked directory met after others that share its ancestors.
    #[test]
    fn a_symlinked_dir_after_a_checked_sibling_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, d.path().join("etcd")).unwrap();
        let w = |t: PathBuf| Write_ {
            target: t,
            contents: b"x".to_vec(),
            mode: 0o644,
            force_mode: false,
        };
        let writes = [
            w(d.path().join("a.crt")),
            w(d.path().join("b.crt")),
            w(d.path().join("etcd/c.crt")),
        ];
        match plan(&writes) {
            Err(Error::Symlink(p)) => assert_eq!(p, d.path().join("etcd")),
            other => panic!("{other:?}"),
        }
        assert!(!real.join("c.crt").exists());
        assert!(plan(&writes[..2]).is_ok());
    }
}
