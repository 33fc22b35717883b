//! Check's consistent read of a PKI, and the agent's cache of it.
//!
//! **Consistent read.** A renewal replaces its files one rename after the other, between
//! writing its `prepared` journal and removing it ([`crate::pki::store`]). [`read`] makes a
//! check see the PKI before or after such a transaction, never half-way, without taking the
//! PKI lock (so a check never queues behind a renewal that holds or waits for it):
//!
//! 1. a journal left by a crashed run is recovered first (the lock is free); while a live
//!    writer's journal is `prepared` (it may be renaming), the check waits for it to go;
//! 2. the rows are read while [`filestate`] records every path read and what it was;
//! 3. afterwards no `prepared` journal may be in place and every recorded path must still
//!    be what was read (a renamed file has a new inode, a rewrite a new ctime, a re-pointed
//!    symlink a new target); otherwise the check reads again. What was read is then the
//!    state of the disk at the instant of the last read, and no swap was in progress then
//!    (any swap in progress then has finished before step 3, so a file it had still to
//!    rename would differ).
//!
//! **Cache** (enabled by the agent, [`enable`]; the CLI reads once anyway). The [`Core`]
//! of a check (every row and kubelet.conf, without the clock's part) is kept per layout
//! with the paths it depends on. A call whose every path is still what it was (one `lstat`,
//! `stat` or `readlink` each; a `stat` that an `lstat` of the same regular file proves is
//! skipped, [`filestate::validation_set`]) and that no write through the store touched since
//! ([`filestate::written_since`]) reuses it: no file is read, parsed or verified; the
//! residual times and expiry findings are computed per call from the cached NotBefore and
//! NotAfter. A hit is exact for the same reason as a consistent read: every path was what
//! the entry holds when it was stat'ed, hence at the start of the call too. A read is kept
//! only when every file it read had last changed at least [`filestate::RACY_WINDOW`] before
//! it started (git's "racily clean" rule): a rewrite in place within one kernel timestamp
//! tick of the read could otherwise keep the same ctime, and be served stale. Bounded by
//! [`MAX_ENTRIES`] layouts and [`MAX_BYTES`] (least recently used evicted first), reported by
//! the `stats` RPC method ([`stats`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CheckOptions, Core, Problem};
use crate::error::report;
use crate::pki::filestate::{self, Dep, Recording};
use crate::pki::finding::FindingCode;
use crate::pki::store;

/// Most layouts kept.
pub const MAX_ENTRIES: usize = 16;
/// Most bytes kept (rows as JSON plus the recorded paths).
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
/// How long a check waits for a swap in progress (as long as a writer waits for the lock).
const SWAP_WAIT: Duration = Duration::from_secs(300);

/// Counters and bounds of the check cache (the `stats` RPC method).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CacheStats {
    /// Whether this process caches (the agent does; a CLI run does not).
    pub enabled: bool,
    /// Layouts kept.
    pub entries: u64,
    /// Their size in bytes (rows as JSON plus the paths they depend on).
    pub bytes: u64,
    /// Most layouts kept.
    pub max_entries: u64,
    /// Most bytes kept.
    pub max_bytes: u64,
    /// Checks answered from the cache.
    pub hits: u64,
    /// Checks that read the files.
    pub misses: u64,
    /// Entries dropped because a file changed or a kubecert write touched them.
    pub invalidations: u64,
    /// Entries dropped for the bounds.
    pub evictions: u64,
    /// Reads done again because a file changed while they ran or a swap was in progress.
    pub retries: u64,
    /// Checks that waited for a transaction's swap to finish.
    pub waits: u64,
    /// Checks read but not kept: a file they read had changed too shortly before for its
    /// identity to tell a rewrite right after the read (racily clean).
    pub racy: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    cert_dir: std::path::PathBuf,
    kubeconfig_dir: std::path::PathBuf,
    external_etcd: bool,
    kubelet_pki: std::path::PathBuf,
}

struct Entry {
    key: Key,
    core: Core,
    deps: Vec<Dep>,
    /// The subset of `deps` a hit stats ([`filestate::validation_set`]).
    checks: Vec<Dep>,
    generation: u64,
    bytes: usize,
    /// When last used (the cache's tick): least recently used goes first.
    used: AtomicU64,
}

#[derive(Default)]
struct Cache {
    entries: Vec<Arc<Entry>>,
    tick: u64,
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static CACHE: Mutex<Cache> = Mutex::new(Cache {
    entries: Vec::new(),
    tick: 0,
});
static HITS: AtomicU64 = AtomicU64::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);
static INVALIDATIONS: AtomicU64 = AtomicU64::new(0);
static EVICTIONS: AtomicU64 = AtomicU64::new(0);
static RETRIES: AtomicU64 = AtomicU64::new(0);
static WAITS: AtomicU64 = AtomicU64::new(0);
static RACY: AtomicU64 = AtomicU64::new(0);

fn cache() -> std::sync::MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Turns the cache on for this process (the agent, at start).
pub fn enable() {
    ENABLED.store(true, Ordering::SeqCst);
}

/// The counters and bounds.
pub fn stats() -> CacheStats {
    let c = cache();
    CacheStats {
        enabled: ENABLED.load(Ordering::SeqCst),
        entries: c.entries.len() as u64,
        bytes: c.entries.iter().map(|e| e.bytes as u64).sum(),
        max_entries: MAX_ENTRIES as u64,
        max_bytes: MAX_BYTES as u64,
        hits: HITS.load(Ordering::Relaxed),
        misses: MISSES.load(Ordering::Relaxed),
        invalidations: INVALIDATIONS.load(Ordering::Relaxed),
        evictions: EVICTIONS.load(Ordering::Relaxed),
        retries: RETRIES.load(Ordering::Relaxed),
        waits: WAITS.load(Ordering::Relaxed),
        racy: RACY.load(Ordering::Relaxed),
    }
}

fn key(opts: &CheckOptions) -> Key {
    Key {
        cert_dir: opts.layout.cert_dir.clone(),
        kubeconfig_dir: opts.layout.kubeconfig_dir.clone(),
        external_etcd: opts.layout.external_etcd,
        kubelet_pki: opts.kubelet_pki.clone(),
    }
}

/// The cached core of `key`, when every path it depends on is still what it was.
fn lookup(key: &Key) -> Option<Core> {
    let entry = {
        let mut c = cache();
        c.tick += 1;
        let tick = c.tick;
        let e = c.entries.iter().find(|e| &e.key == key)?;
        e.used.store(tick, Ordering::Relaxed);
        e.clone()
    };
    // The stats run without the lock: other calls are not held up by them.
    if !filestate::written_since(entry.generation, &entry.deps) && filestate::still(&entry.checks) {
        return Some(entry.core.clone());
    }
    let mut c = cache();
    let before = c.entries.len();
    c.entries.retain(|e| !Arc::ptr_eq(e, &entry));
    if c.entries.len() < before {
        INVALIDATIONS.fetch_add(1, Ordering::Relaxed);
    }
    None
}

fn insert(key: Key, core: &Core, deps: Vec<Dep>, generation: u64) {
    let rows = serde_json::to_vec(&(&core.certificates, &core.authorities, &core.kubelet_conf))
        .map(|v| v.len())
        .unwrap_or(MAX_BYTES);
    let checks = filestate::validation_set(&deps);
    let bytes = rows + deps.iter().chain(&checks).map(Dep::bytes).sum::<usize>();
    if bytes > MAX_BYTES {
        return;
    }
    let mut c = cache();
    c.tick += 1;
    let used = c.tick;
    c.entries.retain(|e| e.key != key);
    c.entries.push(Arc::new(Entry {
        key,
        core: core.clone(),
        deps,
        checks,
        generation,
        bytes,
        used: AtomicU64::new(used),
    }));
    while c.entries.len() > MAX_ENTRIES
        || c.entries.iter().map(|e| e.bytes).sum::<usize>() > MAX_BYTES
    {
        let Some(oldest) = c
            .entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.used.load(Ordering::Relaxed))
            .map(|(i, _)| i)
        else {
            break;
        };
        c.entries.remove(oldest);
        EVICTIONS.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a check finds of a transaction before reading.
enum Journal {
    /// Nothing in the way (no journal, a recovered one, or a writer still staging).
    Clear,
    /// A live writer may be renaming files: wait.
    Swapping,
    /// A recovery that was needed failed: the files may be half-installed.
    Failed(Problem),
}

fn journal(cert_dir: &std::path::Path, waited_out: bool) -> Journal {
    if !store::journal_exists(cert_dir) {
        return Journal::Clear;
    }
    // Lock free: a crashed run's journal, recovered now (as any kubecert run does first).
    // Lock held: a live writer; in its `staging` phase no file has been replaced yet.
    let e = match store::Store::open(cert_dir, Duration::ZERO) {
        Ok(st) => {
            if let Some(r) = st.recovered() {
                tracing::warn!("{r}");
            }
            return Journal::Clear;
        }
        Err(crate::Error::Locked { .. }) if !store::swapping(cert_dir) => return Journal::Clear,
        Err(e @ crate::Error::Locked { .. }) if waited_out => e,
        Err(crate::Error::Locked { .. }) => return Journal::Swapping,
        Err(e) => e,
    };
    let what = match e {
        crate::Error::Recovery { .. } => report(&e),
        _ => format!("recovery of an interrupted run failed: {}", report(&e)),
    };
    tracing::error!("{what}");
    Journal::Failed(Problem::new(
        FindingCode::RecoveryFailed,
        format!(
            "{what}; the files may be half-installed until a kubecert run that can write the PKI recovers them"
        ),
    ))
}

/// The cached [`Core`] of `opts`' layout when a call can use it at once: the cache is
/// enabled, no journal is in the cert dir (no recovery or swap to wait for) and every path
/// it depends on is still what it was. Counted as a hit; `None` (a miss, or a journal):
/// [`read`] does the rest, which may block.
pub fn hit(opts: &CheckOptions) -> Option<Core> {
    if !ENABLED.load(Ordering::Relaxed) || store::journal_exists(&opts.layout.cert_dir) {
        return None;
    }
    let core = lookup(&key(opts))?;
    HITS.fetch_add(1, Ordering::Relaxed);
    Some(core)
}

/// The [`Core`] of a check as one consistent state of the disk (see the module docs), from
/// the cache when enabled and still true; with the problems of the PKI as a whole
/// (`recovery-failed`).
pub fn read(opts: &CheckOptions) -> (Vec<Problem>, Core) {
    let cert_dir = &opts.layout.cert_dir;
    let enabled = ENABLED.load(Ordering::Relaxed);
    let key = key(opts);
    let deadline = Instant::now() + SWAP_WAIT;
    let mut waited = false;
    loop {
        let mut global = Vec::new();
        match journal(cert_dir, Instant::now() >= deadline) {
            Journal::Clear => {}
            Journal::Swapping => {
                if !waited {
                    waited = true;
                    WAITS.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Journal::Failed(p) => global.push(p),
        }
        if enabled && global.is_empty() {
            if let Some(core) = lookup(&key) {
                HITS.fetch_add(1, Ordering::Relaxed);
                return (global, core);
            }
        }
        let generation = filestate::generation();
        let started = SystemTime::now();
        let rec = Recording::start();
        let core = super::read_core(opts);
        let deps = rec.finish();
        // A failed recovery is reported as is: nothing to be consistent with.
        if global.is_empty()
            && Instant::now() < deadline
            && (store::swapping(cert_dir) || !filestate::still(&deps))
        {
            RETRIES.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if enabled {
            MISSES.fetch_add(1, Ordering::Relaxed);
            // A file changed too shortly before this read for its identity to tell a
            // rewrite right after it: answer, but read again next time.
            if global.is_empty() && filestate::racily_clean(&deps, started) {
                RACY.fetch_add(1, Ordering::Relaxed);
            } else if global.is_empty() {
                insert(key, &core, deps, generation);
            }
        }
        return (global, core);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{check, check_cached, CheckParams};

    #[test]
    fn a_hit_is_answered_inline_only_for_the_pki_alone_with_no_journal_and_nothing_changed() {
        enable();
        let t = tempfile::tempdir().expect("tempdir");
        let now = crate::timefmt::now_unix();
        crate::demo::demo_pki(&crate::demo::DemoOptions {
            dir: t.path().to_path_buf(),
            nodes: 1,
            leaf_validity: 365 * 86400,
            key_algorithm: crate::pki::issue::KeyAlgorithm::EcdsaP256,
            now,
            force: false,
            kubelet: false,
        })
        .expect("demo pki");
        // Old enough to be cached (not racily clean).
        std::thread::sleep(filestate::RACY_WINDOW + Duration::from_millis(50));
        let cert_dir = t.path().join("pki");
        let mut p = CheckParams::default();
        p.location.cert_dir = Some(cert_dir.display().to_string());
        p.location.kubeconfig_dir = Some(t.path().display().to_string());
        p.kubelet_pki = Some(t.path().join("kubelet-pki").display().to_string());
        p.now = Some(crate::timefmt::rfc3339(now + 3600));
        let json = |r: &crate::check::CheckResult| serde_json::to_value(r).expect("json");
        // Nothing cached yet: the blocking read must run.
        assert!(check_cached(&p).is_none());
        let full = check(&p.resolve().expect("params")).expect("check");
        let hit = check_cached(&p).expect("a hit").expect("check");
        assert_eq!(json(&hit), json(&full));
        assert_eq!(json(&full)["status"]["level"], "ok", "{}", json(&full));
        // Sections that read more than the PKI's files (or the network) never run inline.
        let mut kubelet = p.clone();
        kubelet.kubelet = true;
        let mut ca = p.clone();
        ca.ca = true;
        let mut served = p.clone();
        served.served.served = true;
        let mut drift = p.clone();
        drift.drift = true;
        for q in [&kubelet, &ca, &served, &drift] {
            assert!(check_cached(q).is_none(), "{q:?}");
        }
        // Bad params are the same error inline.
        let mut bad = p.clone();
        bad.warn_within = Some("soon".into());
        assert!(matches!(check_cached(&bad), Some(Err(_))));
        // A journal (even only the temp file of one) in the cert dir: recovery or a swap to
        // wait for, which only the blocking read does.
        let debris = cert_dir.join(".kubecert-journal.json.kubecert-new");
        std::fs::write(&debris, b"{").expect("write");
        assert!(check_cached(&p).is_none());
        std::fs::remove_file(&debris).expect("remove");
        assert!(check_cached(&p).is_some());
        // A certificate replaced by rename: a miss, left to the blocking read.
        let crt = cert_dir.join("apiserver.crt");
        let tmp = cert_dir.join("apiserver.crt.new");
        std::fs::copy(&crt, &tmp).expect("copy");
        std::fs::rename(&tmp, &crt).expect("rename");
        assert!(check_cached(&p).is_none());
    }
}
