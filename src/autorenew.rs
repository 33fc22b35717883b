//! `auto-renew`: the scheduled, conditional renewal run by `kubecert-renew.timer`.
//!
//! One run: take the run lock → put back any manifest an interrupted run left parked →
//! [`crate::renew::renew`] what expires within the window → restart, one at a time, only the
//! static pods whose certificates changed (plus any a failed earlier run left pending) →
//! wait, bounded, for each to be healthy → record success or failure in the state file
//! (read by [`crate::metrics`]) → optionally refresh the node_exporter textfile.
//!
//! Restart methods:
//! - [`RestartMethod::ManifestMove`] (default): move `<manifests>/<component>.yaml` to a park
//!   dir beside the manifests dir (same filesystem: a rename), wait until the pod has stopped
//!   (a stop command, by default "the health command fails", or a fixed delay), move it
//!   back, then poll the health command until it succeeds. The manifest is always moved back,
//!   on error too; one left parked by a killed run is moved back by the next run.
//! - [`RestartMethod::Command`]: run a command template (e.g. `crictl stop …`), then poll
//!   the health command.
//! - [`RestartMethod::None`]: renew only; the report lists what needs a restart.
//!
//! Command templates run with `/bin/sh -c`; `{component}` and `{manifest}` are replaced, and
//! `KUBECERT_COMPONENT` / `KUBECERT_MANIFEST` are set in their environment. Component names
//! come from kubecert's fixed inventory, never from input.
//!
//! Missing files (e.g. super-admin.conf on a node that joined) are reported `missing` by
//! renew and never trigger a renewal or a restart.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// A restart step failed.
    #[error("restart of {component} failed: {reason}")]
    Restart {
        /// The component.
        component: String,
        /// What failed.
        reason: String,
    },
    /// The component did not become healthy in time.
    #[error("{component} did not become healthy within {timeout_secs}s{}", last_output_suffix(.last_output))]
    Unhealthy {
        /// The component.
        component: String,
        /// The bound.
        timeout_secs: u64,
        /// The tail of the health command's last output.
        last_output: String,
    },
    /// A command could not be started.
    #[error("cannot run {what}")]
    Spawn {
        /// Which command.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn last_output_suffix(s: &str) -> String {
    if s.trim().is_empty() {
        String::new()
    } else {
        format!(" (last output: {})", s.trim())
    }
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

/// `<manifests_dir>/../kubecert-parked-manifests`.
pub fn default_park_dir(manifests_dir: &Path) -> PathBuf {
    let abs = std::path::absolute(manifests_dir).unwrap_or_else(|_| manifests_dir.to_path_buf());
    abs.parent()
        .map(|p| p.join("kubecert-parked-manifests"))
        .unwrap_or_else(|| PathBuf::from("kubecert-parked-manifests"))
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

/// How components are restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartMethod {
    /// Move the static pod manifest out and back.
    ManifestMove,
    /// Run `restart_command`.
    Command,
    /// Do not restart.
    None,
}

/// How to tell that a component's old pod has stopped (manifest-move method).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopWait {
    /// Poll until the component's health command fails.
    HealthFails,
    /// Poll until this command template succeeds.
    Command(String),
    /// Sleep this long.
    Delay(Duration),
}

/// kubeadm's own probe endpoints for each control-plane component.
pub fn default_health_command(c: Component) -> &'static str {
    match c {
        Component::Etcd => "curl -fsS --max-time 5 -o /dev/null http://127.0.0.1:2381/health",
        Component::KubeApiserver => {
            "curl -fsSk --max-time 5 -o /dev/null https://127.0.0.1:6443/readyz"
        }
        Component::KubeControllerManager => {
            "curl -fsSk --max-time 5 -o /dev/null https://127.0.0.1:10257/healthz"
        }
        Component::KubeScheduler => {
            "curl -fsSk --max-time 5 -o /dev/null https://127.0.0.1:10259/healthz"
        }
    }
}

/// Every component, in restart order (etcd first, then the API server, then its clients).
pub const COMPONENTS: [Component; 4] = [
    Component::Etcd,
    Component::KubeApiserver,
    Component::KubeControllerManager,
    Component::KubeScheduler,
];

fn component_by_name(name: &str) -> Option<Component> {
    COMPONENTS.into_iter().find(|c| c.name() == name)
}

/// Resolved options of a run.
#[derive(Debug, Clone)]
pub struct AutoRenewOptions {
    /// The renewal (names, window, validity, ...). `dry_run` plans only.
    pub renew: RenewOptions,
    /// The state file.
    pub state_file: PathBuf,
    /// Restart method.
    pub restart: RestartMethod,
    /// The static pod manifests dir.
    pub manifests_dir: PathBuf,
    /// Where manifests are parked while their pod stops.
    pub park_dir: PathBuf,
    /// Template for [`RestartMethod::Command`].
    pub restart_command: Option<String>,
    /// How to wait for the old pod to stop (manifest-move).
    pub stop_wait: StopWait,
    /// Bound on that wait.
    pub stop_timeout: Duration,
    /// Health command template per component (defaults: [`default_health_command`]).
    pub health_commands: Vec<(Component, String)>,
    /// Bound on the wait for health.
    pub health_timeout: Duration,
    /// Pause between polls.
    pub poll_interval: Duration,
    /// Bound on one command invocation.
    pub command_timeout: Duration,
    /// Refresh `<dir>/kubecert.prom` after the run.
    pub textfile_dir: Option<PathBuf>,
    /// How long to wait for another run's lock.
    pub lock_timeout: Duration,
}

impl AutoRenewOptions {
    fn health_command(&self, c: Component) -> String {
        self.health_commands
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| default_health_command(c).to_string())
    }
}

/// What happened to one component.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestartOutcome {
    /// The component.
    pub component: String,
    /// The method used.
    pub method: RestartMethod,
    /// Restarted and healthy.
    pub ok: bool,
    /// Seconds from the start of the restart until healthy (or the failure).
    pub seconds: f64,
    /// What happened.
    pub message: String,
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
    pub components_to_restart: Vec<String>,
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

fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "fsync of directory failed");
    }
}

/// Moves parked manifests back when the manifests dir lacks them (a run was killed while a
/// pod was down). Returns the manifests moved back.
pub fn recover_parked(
    manifests_dir: &Path,
    park_dir: &Path,
) -> Result<Vec<String>, AutoRenewError> {
    let entries = match fs::read_dir(park_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(AutoRenewError::io(park_dir, e)),
    };
    let mut moved = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| AutoRenewError::io(park_dir, e))?;
        let name = entry.file_name();
        let parked = entry.path();
        // Only what kubecert parks: `<component>.yaml` of the four control-plane pods.
        let ours = COMPONENTS
            .iter()
            .any(|c| name.to_str() == Some(format!("{}.yaml", c.name()).as_str()));
        if !ours || !parked.is_file() {
            continue;
        }
        let target = manifests_dir.join(&name);
        if target.exists() {
            tracing::warn!(
                parked = %parked.display(),
                "a parked manifest exists but so does {}; leaving both",
                target.display()
            );
            continue;
        }
        fs::rename(&parked, &target).map_err(|e| AutoRenewError::io(&target, e))?;
        tracing::warn!(manifest = %target.display(), "moved back a manifest an interrupted run had parked");
        moved.push(target.display().to_string());
    }
    if !moved.is_empty() {
        sync_dir(manifests_dir);
        sync_dir(park_dir);
    }
    Ok(moved)
}

/// A manifest moved to the park dir; moved back by [`Parked::restore`] or, failing that,
/// when dropped.
struct Parked {
    manifest: PathBuf,
    parked: PathBuf,
    restored: bool,
}

impl Parked {
    fn park(manifest: &Path, park_dir: &Path) -> Result<Self, AutoRenewError> {
        let name = manifest
            .file_name()
            .ok_or_else(|| AutoRenewError::Restart {
                component: manifest.display().to_string(),
                reason: "manifest path has no file name".into(),
            })?;
        {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(park_dir)
                .map_err(|e| AutoRenewError::io(park_dir, e))?;
        }
        let parked = park_dir.join(name);
        fs::rename(manifest, &parked).map_err(|e| AutoRenewError::io(manifest, e))?;
        if let Some(d) = manifest.parent() {
            sync_dir(d);
        }
        sync_dir(park_dir);
        Ok(Parked {
            manifest: manifest.to_path_buf(),
            parked,
            restored: false,
        })
    }

    fn restore(&mut self) -> Result<(), AutoRenewError> {
        if self.restored {
            return Ok(());
        }
        fs::rename(&self.parked, &self.manifest)
            .map_err(|e| AutoRenewError::io(&self.manifest, e))?;
        self.restored = true;
        if let Some(d) = self.manifest.parent() {
            sync_dir(d);
        }
        if let Some(d) = self.parked.parent() {
            sync_dir(d);
        }
        Ok(())
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            tracing::error!(manifest = %self.manifest.display(), error = %crate::error::report(&e), "could not move the manifest back; the next run will retry");
        }
    }
}

/// The outcome of one bounded command invocation.
struct CmdOutcome {
    success: bool,
    timed_out: bool,
    output: String,
}

fn expand(template: &str, component: Component, manifest: &Path) -> String {
    template
        .replace("{component}", component.name())
        .replace("{manifest}", &manifest.display().to_string())
}

/// Runs `sh -c <template expanded>` with a bound; on timeout its process group is killed.
fn run_bounded(
    template: &str,
    component: Component,
    manifest: &Path,
    timeout: Duration,
) -> Result<CmdOutcome, AutoRenewError> {
    use std::os::unix::process::CommandExt;
    let cmd = expand(template, component, manifest);
    let spawn_err = |source| AutoRenewError::Spawn {
        what: cmd.clone(),
        source,
    };
    let mut out = tempfile::tempfile().map_err(spawn_err)?;
    let out2 = out.try_clone().map_err(spawn_err)?;
    let out3 = out.try_clone().map_err(spawn_err)?;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(&cmd)
        .env("KUBECERT_COMPONENT", component.name())
        .env("KUBECERT_MANIFEST", manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out2))
        .stderr(Stdio::from(out3))
        .process_group(0)
        .spawn()
        .map_err(spawn_err)?;
    let deadline = Instant::now() + timeout;
    let (success, timed_out) = loop {
        match child.try_wait() {
            Ok(Some(status)) => break (status.success(), false),
            Ok(None) if Instant::now() >= deadline => {
                // The whole group: `sh -c` may have forked.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                break (false, true);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(spawn_err(e)),
        }
    };
    let mut output = String::new();
    let len = out.seek(SeekFrom::End(0)).unwrap_or(0);
    let _ = out.seek(SeekFrom::Start(len.saturating_sub(400)));
    let mut buf = Vec::new();
    let _ = out.read_to_end(&mut buf);
    output.push_str(String::from_utf8_lossy(&buf).trim());
    Ok(CmdOutcome {
        success,
        timed_out,
        output,
    })
}

/// Polls `template` until it succeeds (`want_success`) or fails (`!want_success`), within
/// `timeout`. Returns the last outcome's output on timeout.
fn poll(
    o: &AutoRenewOptions,
    template: &str,
    component: Component,
    manifest: &Path,
    timeout: Duration,
    want_success: bool,
) -> Result<Result<(), String>, AutoRenewError> {
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let bound = o.command_timeout.min(remaining).max(Duration::from_secs(1));
        let r = run_bounded(template, component, manifest, bound)?;
        let reached = if want_success {
            r.success
        } else {
            !r.success && !r.timed_out
        };
        if reached {
            return Ok(Ok(()));
        }
        if Instant::now() >= deadline {
            let mut last = r.output;
            if r.timed_out {
                last = format!("command timed out after {}s; {last}", bound.as_secs());
            }
            return Ok(Err(last));
        }
        std::thread::sleep(
            o.poll_interval
                .min(deadline.saturating_duration_since(Instant::now())),
        );
    }
}

/// Restarts one component and waits for it to be healthy. Err = (stage, error).
fn restart_one(o: &AutoRenewOptions, c: Component) -> Result<f64, (String, AutoRenewError)> {
    let started = Instant::now();
    let manifest = o.manifests_dir.join(format!("{}.yaml", c.name()));
    let health = o.health_command(c);
    let restart_err = |reason: String| {
        (
            format!("restart:{}", c.name()),
            AutoRenewError::Restart {
                component: c.name().to_string(),
                reason,
            },
        )
    };
    match o.restart {
        RestartMethod::None => return Ok(0.0),
        RestartMethod::ManifestMove => {
            if !manifest.is_file() {
                return Err(restart_err(format!(
                    "static pod manifest {} not found",
                    manifest.display()
                )));
            }
            let mut parked = Parked::park(&manifest, &o.park_dir)
                .map_err(|e| (format!("restart:{}", c.name()), e))?;
            tracing::info!(
                component = c.name(),
                "manifest parked; waiting for the pod to stop"
            );
            let stopped = match &o.stop_wait {
                StopWait::Delay(d) => {
                    std::thread::sleep(*d);
                    Ok(Ok(()))
                }
                StopWait::Command(t) => poll(o, t, c, &manifest, o.stop_timeout, true),
                StopWait::HealthFails => poll(o, &health, c, &manifest, o.stop_timeout, false),
            };
            // Move it back whatever happened.
            let restored = parked.restore();
            match stopped {
                Err(e) => return Err((format!("restart:{}", c.name()), e)),
                Ok(Err(last)) => {
                    return Err(restart_err(format!(
                        "the pod did not stop within {}s (manifest moved back){}",
                        o.stop_timeout.as_secs(),
                        last_output_suffix(&last)
                    )))
                }
                Ok(Ok(())) => {}
            }
            restored.map_err(|e| (format!("restart:{}", c.name()), e))?;
        }
        RestartMethod::Command => {
            let Some(t) = &o.restart_command else {
                return Err(restart_err("no --restart-command given".into()));
            };
            let r = run_bounded(t, c, &manifest, o.stop_timeout)
                .map_err(|e| (format!("restart:{}", c.name()), e))?;
            if !r.success {
                return Err(restart_err(format!(
                    "restart command {}{}",
                    if r.timed_out {
                        format!("timed out after {}s", o.stop_timeout.as_secs())
                    } else {
                        "failed".to_string()
                    },
                    last_output_suffix(&r.output)
                )));
            }
        }
    }
    tracing::info!(component = c.name(), "waiting for health");
    match poll(o, &health, c, &manifest, o.health_timeout, true) {
        Ok(Ok(())) => Ok(started.elapsed().as_secs_f64()),
        Ok(Err(last)) => Err((
            format!("health:{}", c.name()),
            AutoRenewError::Unhealthy {
                component: c.name().to_string(),
                timeout_secs: o.health_timeout.as_secs(),
                last_output: last,
            },
        )),
        Err(e) => Err((format!("health:{}", c.name()), e)),
    }
}

/// Only moves back manifests a killed run left parked (the unit's `ExecStopPost=`), under
/// the run lock so that a run in progress is not disturbed.
pub fn recover_manifests(o: &AutoRenewOptions) -> Result<Vec<String>, AutoRenewError> {
    let _lock = RunLock::acquire(&lock_path(&o.state_file), o.lock_timeout)?;
    recover_parked(&o.manifests_dir, &o.park_dir)
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
    if !dry_run && o.restart == RestartMethod::ManifestMove {
        match recover_parked(&o.manifests_dir, &o.park_dir) {
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
                let mut wanted: BTreeSet<&str> =
                    r.components_to_restart.iter().map(String::as_str).collect();
                if o.restart != RestartMethod::None {
                    wanted.extend(state.pending_restart.iter().map(String::as_str));
                }
                result.components_to_restart = COMPONENTS
                    .iter()
                    .filter(|c| wanted.contains(c.name()))
                    .map(|c| c.name().to_string())
                    .collect();
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
    if dry_run {
        result.failure = failure;
        return Ok(result);
    }
    // Remember what must restart before restarting anything: a run killed from here on
    // leaves the next run (or `--recover-manifests` + the next run) a list to finish.
    if failure.is_none()
        && o.restart != RestartMethod::None
        && state.pending_restart != result.components_to_restart
    {
        state.pending_restart = result.components_to_restart.clone();
        write_state(&o.state_file, &state)?;
    }
    let mut restarted: Vec<String> = vec![];
    if failure.is_none() && o.restart != RestartMethod::None {
        for name in result.components_to_restart.clone() {
            let Some(c) = component_by_name(&name) else {
                continue;
            };
            match restart_one(o, c) {
                Ok(secs) => {
                    result.restarts.push(RestartOutcome {
                        component: name.clone(),
                        method: o.restart,
                        ok: true,
                        seconds: secs,
                        message: "restarted and healthy".into(),
                    });
                    restarted.push(name);
                }
                Err((stage, e)) => {
                    result.restarts.push(RestartOutcome {
                        component: name.clone(),
                        method: o.restart,
                        ok: false,
                        seconds: 0.0,
                        message: crate::error::report(&e),
                    });
                    failure = Some(RunFailure {
                        stage,
                        message: crate::error::report(&e),
                    });
                    break;
                }
            }
        }
    }
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
    if o.restart != RestartMethod::None {
        state.pending_restart = result
            .components_to_restart
            .iter()
            .filter(|c| !restarted.contains(c))
            .cloned()
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
            cert_dir: Some(o.renew.layout.cert_dir.display().to_string()),
            kubeconfig_dir: Some(o.renew.layout.kubeconfig_dir.display().to_string()),
            external_etcd: Some(o.renew.layout.external_etcd),
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
            r.components_to_restart.join(", ")
        ));
    } else if r.restarts.is_empty() && r.failure.is_none() {
        s.push_str(&format!(
            "[auto-renew] restart these components yourself: {}\n",
            r.components_to_restart.join(", ")
        ));
    }
    for o in &r.restarts {
        if o.ok {
            s.push_str(&format!(
                "[auto-renew] {} restarted and healthy after {:.1}s\n",
                o.component, o.seconds
            ));
        } else {
            s.push_str(&format!("[auto-renew] {}: {}\n", o.component, o.message));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand() {
        assert_eq!(
            expand(
                "crictl ps --name '^{component}$' # {manifest}",
                Component::KubeApiserver,
                Path::new("/m/kube-apiserver.yaml")
            ),
            "crictl ps --name '^kube-apiserver$' # /m/kube-apiserver.yaml"
        );
    }

    #[test]
    fn bounded_command_is_killed() {
        let t = Instant::now();
        let r = run_bounded(
            "sleep 30",
            Component::Etcd,
            Path::new("/nonexistent"),
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(r.timed_out && !r.success);
        assert!(t.elapsed() < Duration::from_secs(10));
        let r = run_bounded(
            "echo hello; echo $KUBECERT_COMPONENT >&2",
            Component::Etcd,
            Path::new("/x"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(r.success);
        assert!(r.output.contains("hello") && r.output.contains("etcd"));
    }

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

    #[test]
    fn parked_manifests_come_back() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("manifests");
        let park = d.path().join("parked");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("etcd.yaml"), "x").unwrap();
        {
            let _p = Parked::park(&m.join("etcd.yaml"), &park).unwrap();
            assert!(!m.join("etcd.yaml").exists());
            assert!(park.join("etcd.yaml").exists());
        } // dropped → moved back
        assert!(m.join("etcd.yaml").exists());
        // Simulate a killed run.
        std::fs::rename(m.join("etcd.yaml"), park.join("etcd.yaml")).unwrap();
        let moved = recover_parked(&m, &park).unwrap();
        assert_eq!(moved.len(), 1);
        assert!(m.join("etcd.yaml").exists());
        assert!(recover_parked(&m, &park).unwrap().is_empty());
        // Files kubecert never parks stay where they are.
        std::fs::write(park.join("haproxy.yaml"), "x").unwrap();
        assert!(recover_parked(&m, &park).unwrap().is_empty());
        assert!(!m.join("haproxy.yaml").exists());
    }
}
