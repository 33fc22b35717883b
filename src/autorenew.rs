//! `auto-renew`: the scheduled, conditional renewal run by `kubecert-renew.timer`.
//!
//! One run: take the run lock → put back any manifest an interrupted run left parked →
//! [`crate::renew::renew`] what expires within the window → restart, one at a time, only the
//! static pods whose certificates changed (plus any a failed earlier run left pending) →
//! wait, bounded, for each to be healthy → record success or failure in the state file
//! (read by [`crate::metrics`]) → optionally refresh the node_exporter textfile.
//!
//! Restarts, health waits and the served-certificate proof are [`crate::ops`]'s (shared with
//! the `restart`, `health` and `served` methods): after each restart the component must be
//! healthy and, unless disabled, serve the certificate files on disk; "restarted but still
//! serving the old certificate" fails the run at stage `served:<component>`.
//!
//! Missing files (e.g. super-admin.conf on a node that joined) are reported `missing` by
//! renew and never trigger a renewal or a restart. A due certificate that cannot be renewed
//! (CA key absent, file missing; super-admin.conf excepted) fails the run at stage
//! `unrenewable` after the rest was renewed and restarted, unless `--allow-unrenewable`
//! accepts it.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::ops::restart::{
    default_park_dir, recover_parked, RestartMethod, RestartOptions, RestartOutcome, StopWait,
};
pub use crate::ops::served::COMPONENTS;
use crate::pki::inventory::Component;
use crate::renew::{RenewAction, RenewOptions, RenewResult};
use crate::timefmt;

/// Errors of `auto-renew` that stop it before it can record an outcome, or that it records.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AutoRenewError {
    /// A library error (renew, file I/O).
    #[error(transparent)]
    Library(#[from] crate::Error),
    /// Another `auto-renew` holds the run lock.
    #[error("another kubecert auto-renew is running (lock {path} held for {waited_secs}s)")]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// How long this run waited.
        waited_secs: u64,
    },
    /// The state file is not kubecert's JSON.
    #[error("{path}: invalid state file: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
}

impl AutoRenewError {
    fn io(path: &Path, e: std::io::Error) -> Self {
        AutoRenewError::Library(crate::Error::io(path, e))
    }
}

/// `<cert_dir>/../kubecert-state.json` (e.g. /etc/kubernetes/kubecert-state.json).
pub fn default_state_file(cert_dir: &Path) -> PathBuf {
    let abs = std::path::absolute(cert_dir).unwrap_or_else(|_| cert_dir.to_path_buf());
    abs.parent()
        .map(|p| p.join("kubecert-state.json"))
        .unwrap_or_else(|| PathBuf::from("kubecert-state.json"))
}

/// One recorded run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// When, RFC 3339.
    pub time: String,
    /// When, Unix seconds.
    pub timestamp: i64,
    /// Certificates renewed by the run.
    #[serde(default)]
    pub renewed: Vec<String>,
    /// Components restarted (and healthy).
    #[serde(default)]
    pub restarted: Vec<String>,
    /// The backup of the replaced files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_dir: Option<String>,
    /// The failed step (`renew`, `restart:<component>`, `health:<component>`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The state file: the last success and the last failure of the scheduled renewal.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RenewState {
    /// The last successful run.
    #[serde(default)]
    pub last_success: Option<RunRecord>,
    /// The last failed run.
    #[serde(default)]
    pub last_failure: Option<RunRecord>,
    /// Components renewed by an earlier run but not restarted successfully: the next run
    /// restarts them even when it renews nothing.
    #[serde(default)]
    pub pending_restart: Vec<String>,
}

/// Reads the state file; `Ok(None)` when it does not exist.
pub fn read_state(path: &Path) -> Result<Option<RenewState>, AutoRenewError> {
    match crate::pki::fsread::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| AutoRenewError::State {
                path: path.to_path_buf(),
                reason: crate::error::describe_json(&e),
            }),
        Err(crate::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes the state file atomically (mode 0644: it holds no secret).
pub fn write_state(path: &Path, state: &RenewState) -> Result<(), AutoRenewError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| AutoRenewError::io(dir, e))?;
    }
    let mut text = serde_json::to_string_pretty(state).map_err(|e| AutoRenewError::State {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    text.push('\n');
    crate::metrics::write_atomic(path, text.as_bytes(), 0o644)?;
    Ok(())
}

/// Resolved options of a run.
#[derive(Debug, Clone)]
pub struct AutoRenewOptions {
    /// The renewal (names, window, validity, ...). `dry_run` plans only.
    pub renew: RenewOptions,
    /// The state file.
    pub state_file: PathBuf,
    /// How to restart, wait for health and prove what is served.
    pub restart: RestartOptions,
    /// Refresh `<dir>/kubecert.prom` after the run.
    pub textfile_dir: Option<PathBuf>,
    /// How long to wait for another run's lock.
    pub lock_timeout: Duration,
}

/// The failure of a run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunFailure {
    /// The step: `renew`, `restart:<component>`, `health:<component>`, `state`.
    pub stage: String,
    /// Why.
    pub message: String,
}

/// Result of `auto-renew`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutoRenewResult {
    /// Whether this was a dry run (nothing written, nothing restarted, nothing recorded).
    pub dry_run: bool,
    /// The renewal, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew: Option<RenewResult>,
    /// Components that needed a restart (renewed now, or pending from an earlier run).
    pub components_to_restart: Vec<Component>,
    /// Per component, in order.
    pub restarts: Vec<RestartOutcome>,
    /// Manifests an interrupted run had left parked, moved back first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovered_manifests: Vec<String>,
    /// The failure, if the run failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<RunFailure>,
    /// The state file the outcome was recorded in.
    pub state_file: String,
    /// The textfile refreshed after the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub textfile: Option<String>,
}

impl AutoRenewResult {
    /// Whether the run succeeded.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }
}

/// An exclusive lock serializing `auto-renew` runs on this node (the PKI lock only covers
/// the renewal itself; this one also covers the restarts).
struct RunLock {
    _file: File,
}

impl RunLock {
    fn acquire(path: &Path, timeout: Duration) -> Result<Self, AutoRenewError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| AutoRenewError::io(dir, e))?;
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| AutoRenewError::io(path, e))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(RunLock { _file: file }),
                Err(fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= timeout {
                        return Err(AutoRenewError::Busy {
                            path: path.to_path_buf(),
                            waited_secs: start.elapsed().as_secs(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(fs::TryLockError::Error(e)) => return Err(AutoRenewError::io(path, e)),
            }
        }
    }
}

/// Only moves back manifests a killed run left parked (the unit's `ExecStopPost=`), under
/// the run lock so that a run in progress is not disturbed.
pub fn recover_manifests(o: &AutoRenewOptions) -> Result<Vec<String>, AutoRenewError> {
    let _lock = RunLock::acquire(&lock_path(&o.state_file), o.lock_timeout)?;
    let _restart_lock =
        crate::ops::restart::RestartLock::acquire(&o.restart.park_dir, o.lock_timeout)?;
    Ok(recover_parked(
        &o.restart.manifests_dir,
        &o.restart.park_dir,
    )?)
}

fn lock_path(state_file: &Path) -> PathBuf {
    let mut s = state_file.to_path_buf().into_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

/// Runs the scheduled renewal. `Ok` carries the outcome (check [`AutoRenewResult::failure`]);
/// `Err` means the run could not start or could not record its outcome.
pub fn auto_renew(o: &AutoRenewOptions) -> Result<AutoRenewResult, AutoRenewError> {
    let lock_path = lock_path(&o.state_file);
    let dry_run = o.renew.dry_run;
    let _lock = if dry_run {
        None
    } else {
        Some(RunLock::acquire(&lock_path, o.lock_timeout)?)
    };
    let now = o.renew.now;
    let mut state = read_state(&o.state_file)?.unwrap_or_default();
    let mut result = AutoRenewResult {
        dry_run,
        renew: None,
        components_to_restart: vec![],
        restarts: vec![],
        recovered_manifests: vec![],
        failure: None,
        state_file: o.state_file.display().to_string(),
        textfile: None,
    };
    let mut failure: Option<RunFailure> = None;
    // Serializes with `restart` calls of the agent (the run lock only excludes other runs).
    let _restart_lock = if dry_run || o.restart.method == RestartMethod::None {
        None
    } else {
        Some(crate::ops::restart::RestartLock::acquire(
            &o.restart.park_dir,
            o.lock_timeout,
        )?)
    };
    if !dry_run && o.restart.method == RestartMethod::ManifestMove {
        match recover_parked(&o.restart.manifests_dir, &o.restart.park_dir) {
            Ok(m) => result.recovered_manifests = m,
            Err(e) => {
                failure = Some(RunFailure {
                    stage: "recover-manifests".into(),
                    message: crate::error::report(&e),
                })
            }
        }
    }
    let mut renewed: Vec<String> = vec![];
    let mut backup_dir = None;
    // Due certificates that could not be renewed: the run fails, after what could be renewed
    // was installed and restarted.
    let mut unrenewable: Option<String> = None;
    if failure.is_none() {
        match crate::renew::renew(&o.renew) {
            Ok(r) => {
                renewed = r
                    .certificates
                    .iter()
                    .filter(|i| i.action == RenewAction::Renewed)
                    .map(|i| i.name.clone())
                    .collect();
                backup_dir = r.backup_dir.clone();
                unrenewable = crate::renew::unrenewable_message(&r);
                let mut wanted: BTreeSet<Component> =
                    r.components_to_restart.iter().copied().collect();
                if o.restart.method != RestartMethod::None {
                    // Names the state file holds that are no component are ignored.
                    wanted.extend(
                        COMPONENTS
                            .into_iter()
                            .filter(|c| state.pending_restart.iter().any(|n| n == c.name())),
                    );
                }
                result.components_to_restart = wanted.into_iter().collect();
                result.renew = Some(r);
            }
            Err(e) => {
                failure = Some(RunFailure {
                    stage: "renew".into(),
                    message: crate::error::report(&e),
                })
            }
        }
    }
    let unrenewable_failure = |failure: &mut Option<RunFailure>| {
        if failure.is_none() {
            if let Some(m) = &unrenewable {
                *failure = Some(RunFailure {
                    stage: "unrenewable".into(),
                    message: m.clone(),
                });
            }
        }
    };
    if dry_run {
        unrenewable_failure(&mut failure);
        result.failure = failure;
        return Ok(result);
    }
    // Remember what must restart before restarting anything: a run killed from here on
    // leaves the next run (or `--recover-manifests` + the next run) a list to finish.
    if failure.is_none()
        && o.restart.method != RestartMethod::None
        && state.pending_restart != component_names(&result.components_to_restart)
    {
        state.pending_restart = component_names(&result.components_to_restart);
        write_state(&o.state_file, &state)?;
    }
    let mut restarted: Vec<String> = vec![];
    if failure.is_none() && o.restart.method != RestartMethod::None {
        let (outcomes, fail) =
            crate::ops::restart::restart_all(&o.restart, &result.components_to_restart);
        restarted = outcomes
            .iter()
            .filter(|x| x.ok)
            .map(|x| x.component.name().to_string())
            .collect();
        result.restarts = outcomes;
        if let Some(f) = fail {
            failure = Some(RunFailure {
                stage: f.stage,
                message: f.message,
            });
        }
    }
    unrenewable_failure(&mut failure);
    // Record.
    let record = RunRecord {
        time: timefmt::rfc3339(now),
        timestamp: now,
        renewed,
        restarted: restarted.clone(),
        backup_dir,
        stage: failure.as_ref().map(|f| f.stage.clone()),
        error: failure.as_ref().map(|f| f.message.clone()),
    };
    if o.restart.method != RestartMethod::None {
        state.pending_restart = result
            .components_to_restart
            .iter()
            .filter(|c| !restarted.iter().any(|n| n == c.name()))
            .map(|c| c.name().to_string())
            .collect();
    }
    if failure.is_some() {
        state.last_failure = Some(record);
    } else {
        state.last_success = Some(record);
    }
    write_state(&o.state_file, &state)?;
    result.failure = failure;
    if let Some(dir) = &o.textfile_dir {
        let p = crate::metrics::MetricsParams {
            location: crate::pki::PkiLocation {
                cert_dir: Some(o.renew.layout.cert_dir.display().to_string()),
                kubeconfig_dir: Some(o.renew.layout.kubeconfig_dir.display().to_string()),
                external_etcd: Some(o.renew.layout.external_etcd),
            },
            now: Some(timefmt::rfc3339(now)),
            kubelet_pki: None,
            state_file: Some(o.state_file.display().to_string()),
            textfile_dir: Some(dir.display().to_string()),
        };
        match crate::metrics::metrics(&p) {
            Ok(m) => result.textfile = m.textfile,
            Err(e) => {
                tracing::warn!(error = %crate::error::report(&e), "could not refresh the metrics textfile")
            }
        }
    }
    Ok(result)
}

/// Human-readable summary of a run.
pub fn render_text(r: &AutoRenewResult) -> String {
    let mut s = String::new();
    for m in &r.recovered_manifests {
        s.push_str(&format!("[auto-renew] moved back parked manifest {m}\n"));
    }
    if let Some(renew) = &r.renew {
        for i in &renew.certificates {
            s.push_str(&format!("[auto-renew] {}\n", crate::renew::item_line(i)));
        }
        if let Some(b) = &renew.backup_dir {
            s.push_str(&format!("[auto-renew] backup of the replaced files: {b}\n"));
        }
    }
    if r.components_to_restart.is_empty() {
        s.push_str("[auto-renew] no component needs a restart\n");
    } else if r.dry_run {
        s.push_str(&format!(
            "[auto-renew] [dry-run] would restart: {}\n",
            crate::pki::inventory::join_components(&r.components_to_restart)
        ));
    } else if r.restarts.is_empty() && r.failure.is_none() {
        s.push_str(&format!(
            "[auto-renew] restart these components yourself: {}\n",
            crate::pki::inventory::join_components(&r.components_to_restart)
        ));
    }
    for o in &r.restarts {
        if o.ok {
            s.push_str(&format!(
                "[auto-renew] {} {} after {:.1}s\n",
                o.component.name(),
                o.message,
                o.seconds
            ));
        } else {
            s.push_str(&format!(
                "[auto-renew] {}: {}\n",
                o.component.name(),
                o.message
            ));
        }
    }
    match &r.failure {
        Some(f) => s.push_str(&format!(
            "[auto-renew] FAILED at {}: {}\n",
            f.stage, f.message
        )),
        None if !r.dry_run => s.push_str("[auto-renew] done\n"),
        None => {}
    }
    if !r.dry_run {
        s.push_str(&format!(
            "[auto-renew] outcome recorded in {}\n",
            r.state_file
        ));
    }
    if let Some(t) = &r.textfile {
        s.push_str(&format!("[auto-renew] metrics written to {t}\n"));
    }
    s
}

/// The names the state file records for `components`.
fn component_names(components: &[Component]) -> Vec<String> {
    components.iter().map(|c| c.name().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_roundtrip_and_default_paths() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/state.json");
        assert_eq!(read_state(&p).unwrap(), None);
        let s = RenewState {
            last_success: Some(RunRecord {
                time: "2025-01-01T00:00:00Z".into(),
                timestamp: 1735689600,
                renewed: vec!["apiserver".into()],
                ..Default::default()
            }),
            last_failure: None,
            pending_restart: vec!["etcd".into()],
        };
        write_state(&p, &s).unwrap();
        assert_eq!(read_state(&p).unwrap(), Some(s));
        std::fs::write(&p, "not json").unwrap();
        assert!(matches!(read_state(&p), Err(AutoRenewError::State { .. })));
        assert_eq!(
            default_state_file(Path::new("/etc/kubernetes/pki")),
            Path::new("/etc/kubernetes/kubecert-state.json")
        );
        assert_eq!(
            default_park_dir(Path::new("/etc/kubernetes/manifests")),
            Path::new("/etc/kubernetes/kubecert-parked-manifests")
        );
    }
}
