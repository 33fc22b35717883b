//! Restarting control-plane static pods, one at a time, each followed by a bounded wait for
//! health and (optionally) the served-certificate proof.
//!
//! Methods:
//! - [`RestartMethod::ManifestMove`]: move `<manifests>/<component>.yaml` to a park dir
//!   beside the manifests dir (same filesystem: a rename), wait until the pod has stopped
//!   (a stop command, by default "the component is unhealthy", or a fixed delay), move it
//!   back. The manifest is always moved back, on error too; one left parked by a killed run
//!   is moved back by [`recover_parked`].
//! - [`RestartMethod::Crictl`]: `crictl ps --quiet --name ^<component>$`, then
//!   `crictl stop <ids>`; the kubelet starts the containers again.
//! - [`RestartMethod::Command`]: run a command template (e.g. `systemctl restart {component}`).
//! - [`RestartMethod::None`]: nothing is restarted.
//!
//! Then the component's health is polled until healthy within the health bound: with its
//! health command when one is given, else natively ([`super::health`]).
//!
//! Command templates run with `/bin/sh -c`; `{component}` and `{manifest}` are replaced, and
//! `KUBECERT_COMPONENT` / `KUBECERT_MANIFEST` are set in their environment. Component names
//! come from the fixed [`Component`] enum, never from free text.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::endpoints::EndpointOverride;
use super::health::{self, HealthOptions};
use super::leader::{self, EtcdLeadership};
use super::served::{self, ServedEndpoint, ServedOptions, Verdict, COMPONENTS};
use crate::pki::inventory::Component;
use crate::Error;

/// How components are restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartMethod {
    /// Move the static pod manifest out and back.
    ManifestMove,
    /// Stop the component's containers with crictl (the kubelet starts them again).
    Crictl,
    /// Run the restart command template.
    Command,
    /// Do not restart.
    None,
}

/// How to tell that a component's old pod has stopped (manifest-move method).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopWait {
    /// Poll until the component is unhealthy.
    HealthFails,
    /// Poll until this command template succeeds.
    Command(String),
    /// Sleep this long.
    Delay(Duration),
}

/// kubeadm's static pod manifests dir.
pub fn default_park_dir(manifests_dir: &Path) -> PathBuf {
    let abs = std::path::absolute(manifests_dir).unwrap_or_else(|_| manifests_dir.to_path_buf());
    abs.parent()
        .map(|p| p.join("kubecert-parked-manifests"))
        .unwrap_or_else(|| PathBuf::from("kubecert-parked-manifests"))
}

/// Resolved options of a restart.
#[derive(Debug, Clone)]
pub struct RestartOptions {
    /// Method.
    pub method: RestartMethod,
    /// The static pod manifests dir.
    pub manifests_dir: PathBuf,
    /// Where manifests are parked while their pod stops.
    pub park_dir: PathBuf,
    /// Template for [`RestartMethod::Command`].
    pub restart_command: Option<String>,
    /// The crictl binary for [`RestartMethod::Crictl`].
    pub crictl: String,
    /// How to wait for the old pod to stop (manifest-move).
    pub stop_wait: StopWait,
    /// Bound on that wait and on the restart command.
    pub stop_timeout: Duration,
    /// Health command template per component (absent: native health check).
    pub health_commands: Vec<(Component, String)>,
    /// The native health check's layout and per-request bound.
    pub health: HealthOptions,
    /// Bound on the wait for health.
    pub health_timeout: Duration,
    /// Pause between polls.
    pub poll_interval: Duration,
    /// Bound on one command invocation.
    pub command_timeout: Duration,
    /// Run the served-certificate proof after each restart (None: do not).
    pub served: Option<ServedProof>,
}

/// Options of the served proof after a restart.
#[derive(Debug, Clone)]
pub struct ServedProof {
    /// Endpoint overrides.
    pub overrides: Vec<EndpointOverride>,
    /// Bound per endpoint.
    pub timeout: Duration,
    /// An unreachable endpoint fails the restart (else it is only reported).
    pub require_reachable: bool,
    /// Components that need not answer (not running on this host): their unreachable
    /// endpoints are only reported, even with `require_reachable`. A stale one still fails.
    pub not_required: Vec<Component>,
}

impl RestartOptions {
    fn health_command(&self, c: Component) -> Option<&str> {
        self.health_commands
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v.as_str())
    }
}

/// What happened to one component.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestartOutcome {
    /// The component.
    pub component: Component,
    /// The method used.
    pub method: RestartMethod,
    /// Restarted, healthy and (when proven) serving its certificate files.
    pub ok: bool,
    /// Seconds from the start of the restart until done (or the failure).
    pub seconds: f64,
    /// What happened.
    pub message: String,
    /// The failed step: `leadership:etcd`, `restart:<c>`, `health:<c>`, `served:<c>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The served proof of its endpoints, when run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub served: Vec<ServedEndpoint>,
    /// etcd: the leadership step before the stop (moved to another member when this one
    /// led a multi-member cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leadership: Option<EtcdLeadership>,
}

fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "fsync of directory failed");
    }
}

/// An exclusive lock serializing restarts on this node (`restart` calls and `auto-renew`):
/// `<park_dir>.lock`, an flock held while the value lives.
pub struct RestartLock {
    _file: File,
}

impl RestartLock {
    /// The lock path of `park_dir`.
    pub fn path(park_dir: &Path) -> PathBuf {
        let mut s = park_dir.as_os_str().to_os_string();
        s.push(".lock");
        PathBuf::from(s)
    }

    /// Waits up to `timeout` for the lock.
    pub fn acquire(park_dir: &Path, timeout: Duration) -> crate::Result<Self> {
        let path = Self::path(park_dir);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(RestartLock { _file: file }),
                Err(fs::TryLockError::WouldBlock) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(Error::io(
                        &path,
                        std::io::Error::new(
                            std::io::ErrorKind::WouldBlock,
                            format!(
                                "another kubecert restart holds this lock (waited {}s)",
                                start.elapsed().as_secs()
                            ),
                        ),
                    ))
                }
                Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
    }
}

/// Moves parked manifests back when the manifests dir lacks them (a run was killed while a
/// pod was down). Returns the manifests moved back.
pub fn recover_parked(manifests_dir: &Path, park_dir: &Path) -> crate::Result<Vec<String>> {
    let entries = match fs::read_dir(park_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io(park_dir, e)),
    };
    let mut moved = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(park_dir, e))?;
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
        fs::rename(&parked, &target).map_err(|e| Error::io(&target, e))?;
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
pub struct Parked {
    manifest: PathBuf,
    parked: PathBuf,
    restored: bool,
}

impl Parked {
    /// Moves `manifest` into `park_dir` (created 0700).
    pub fn park(manifest: &Path, park_dir: &Path) -> crate::Result<Self> {
        let name = manifest.file_name().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "manifest path {} has no file name",
                manifest.display()
            ))
        })?;
        {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(park_dir)
                .map_err(|e| Error::io(park_dir, e))?;
        }
        let parked = park_dir.join(name);
        fs::rename(manifest, &parked).map_err(|e| Error::io(manifest, e))?;
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

    /// Moves it back.
    pub fn restore(&mut self) -> crate::Result<()> {
        if self.restored {
            return Ok(());
        }
        fs::rename(&self.parked, &self.manifest).map_err(|e| Error::io(&self.manifest, e))?;
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
            tracing::error!(manifest = %self.manifest.display(), error = %e, "could not move the manifest back; the next run will retry");
        }
    }
}

/// The outcome of one bounded command invocation.
#[derive(Debug)]
pub struct CmdOutcome {
    /// Exit status 0.
    pub success: bool,
    /// Killed at its bound.
    pub timed_out: bool,
    /// Its stdout (up to 64 KiB).
    pub stdout: String,
    /// The tail of stdout + stderr (for messages).
    pub output: String,
}

/// Expands `{component}` and `{manifest}`.
pub fn expand(template: &str, component: Component, manifest: &Path) -> String {
    template
        .replace("{component}", component.name())
        .replace("{manifest}", &manifest.display().to_string())
}

fn read_tail(f: &mut File, max: u64) -> String {
    let len = f.seek(SeekFrom::End(0)).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).trim().to_string()
}

/// Runs `cmd` with a bound; on timeout its process group is killed.
pub fn run_command(mut cmd: Command, what: &str, timeout: Duration) -> crate::Result<CmdOutcome> {
    use std::os::unix::process::CommandExt;
    let spawn_err = |e| Error::io(what, e);
    let mut out = tempfile::tempfile().map_err(spawn_err)?;
    let mut err = tempfile::tempfile().map_err(spawn_err)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().map_err(spawn_err)?))
        .stderr(Stdio::from(err.try_clone().map_err(spawn_err)?))
        .process_group(0)
        .spawn()
        .map_err(spawn_err)?;
    let deadline = Instant::now() + timeout;
    let (success, timed_out) = loop {
        match child.try_wait() {
            Ok(Some(status)) => break (status.success(), false),
            Ok(None) if Instant::now() >= deadline => {
                // The whole group: `sh -c` may have forked. The child leads its group
                // (`process_group(0)`), so the group id is its pid.
                let group = i32::try_from(child.id())
                    .ok()
                    .and_then(rustix::process::Pid::from_raw);
                if let Some(pgid) = group {
                    let _ =
                        rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                break (false, true);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(spawn_err(e)),
        }
    };
    let stdout = read_tail(&mut out, 64 << 10);
    let stderr = read_tail(&mut err, 400);
    let mut output: String = stdout
        .chars()
        .rev()
        .take(400)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if !stderr.is_empty() {
        if !output.is_empty() {
            output.push('\n');
        }
        output.push_str(&stderr);
    }
    Ok(CmdOutcome {
        success,
        timed_out,
        stdout,
        output,
    })
}

/// Runs `sh -c <template expanded>` with a bound.
pub fn run_bounded(
    template: &str,
    component: Component,
    manifest: &Path,
    timeout: Duration,
) -> crate::Result<CmdOutcome> {
    let cmd = expand(template, component, manifest);
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(&cmd)
        .env("KUBECERT_COMPONENT", component.name())
        .env("KUBECERT_MANIFEST", manifest);
    run_command(c, &cmd, timeout)
}

fn suffix(s: &str) -> String {
    if s.trim().is_empty() {
        String::new()
    } else {
        format!(" (last output: {})", s.trim())
    }
}

/// One health probe of `c`: its command, or the native check. Ok(Ok) healthy, Ok(Err(why))
/// not.
fn probe(
    o: &RestartOptions,
    c: Component,
    manifest: &Path,
    bound: Duration,
    want_success: bool,
) -> crate::Result<Result<(), String>> {
    match o.health_command(c) {
        Some(t) => {
            let r = run_bounded(t, c, manifest, bound)?;
            let reached = if want_success {
                r.success
            } else {
                !r.success && !r.timed_out
            };
            if reached {
                Ok(Ok(()))
            } else if r.timed_out {
                Ok(Err(format!(
                    "command timed out after {}s; {}",
                    bound.as_secs(),
                    r.output
                )))
            } else {
                Ok(Err(r.output))
            }
        }
        None => {
            // One check (an interval as long as the bound): the caller's loop repeats it.
            let mut h = o.health.clone();
            h.request_timeout = bound;
            h.interval = bound;
            let r = health::wait_healthy(&h, &[c], bound)?;
            let detail = r
                .components
                .first()
                .map(|x| x.detail.clone())
                .unwrap_or_default();
            Ok(if r.healthy == want_success {
                Ok(())
            } else {
                Err(detail)
            })
        }
    }
}

/// Polls until `c` is healthy (`want_success`) or not (`!want_success`), within `timeout`.
/// Returns the last output on timeout.
fn poll(
    o: &RestartOptions,
    c: Component,
    manifest: &Path,
    timeout: Duration,
    want_success: bool,
    stop_command: Option<&str>,
) -> crate::Result<Result<(), String>> {
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let bound = o
            .command_timeout
            .min(remaining)
            .max(Duration::from_millis(100));
        let r = match stop_command {
            Some(t) => {
                let r = run_bounded(t, c, manifest, bound)?;
                if r.success {
                    Ok(())
                } else {
                    Err(r.output)
                }
            }
            None => probe(o, c, manifest, bound, want_success)?,
        };
        match r {
            Ok(()) => return Ok(Ok(())),
            Err(last) if Instant::now() >= deadline => return Ok(Err(last)),
            Err(_) => {}
        }
        std::thread::sleep(
            o.poll_interval
                .min(deadline.saturating_duration_since(Instant::now())),
        );
    }
}

/// A failed restart step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepFailure {
    /// `leadership:etcd`, `restart:<c>`, `health:<c>`, `served:<c>`.
    pub stage: String,
    /// Why.
    pub message: String,
    /// etcd: the leadership step, when it ran.
    pub leadership: Option<Box<EtcdLeadership>>,
}

fn fail(stage: &str, c: Component, message: String) -> StepFailure {
    StepFailure {
        stage: format!("{stage}:{}", c.name()),
        message,
        leadership: None,
    }
}

/// A component restarted, healthy and (when asked) proven.
#[derive(Debug, Clone, PartialEq)]
pub struct Restarted {
    /// Seconds from the start until done.
    pub seconds: f64,
    /// The served proof of its endpoints.
    pub served: Vec<ServedEndpoint>,
    /// etcd: the leadership step before the stop.
    pub leadership: Option<EtcdLeadership>,
}

fn crictl_stop(o: &RestartOptions, c: Component) -> Result<String, StepFailure> {
    let mut ps = Command::new(&o.crictl);
    ps.args(["ps", "--quiet", "--name", &format!("^{}$", c.name())]);
    let r = run_command(ps, &format!("{} ps", o.crictl), o.stop_timeout)
        .map_err(|e| fail("restart", c, e.to_string()))?;
    if !r.success {
        return Err(fail(
            "restart",
            c,
            format!("{} ps failed{}", o.crictl, suffix(&r.output)),
        ));
    }
    let ids: Vec<&str> = r
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && l.chars().all(|ch| ch.is_ascii_alphanumeric()))
        .collect();
    if ids.is_empty() {
        return Ok(format!("no running {} container", c.name()));
    }
    let mut stop = Command::new(&o.crictl);
    stop.arg("stop").args(&ids);
    let s = run_command(stop, &format!("{} stop", o.crictl), o.stop_timeout)
        .map_err(|e| fail("restart", c, e.to_string()))?;
    if !s.success {
        return Err(fail(
            "restart",
            c,
            format!(
                "{} stop {}{}",
                o.crictl,
                if s.timed_out { "timed out" } else { "failed" },
                suffix(&s.output)
            ),
        ));
    }
    Ok(format!("stopped {} container(s)", ids.len()))
}

/// Restarts one component and waits for it to be healthy, then (when asked) proves it serves
/// its certificate files. etcd: first moves the leadership off the member when it leads a
/// multi-member cluster ([`leader::move_leadership_off`], within the command bound); when
/// that fails nothing is stopped (stage `leadership:etcd`).
pub fn restart_one(o: &RestartOptions, c: Component) -> Result<Restarted, StepFailure> {
    let started = Instant::now();
    let leadership = if c == Component::Etcd && o.method != RestartMethod::None {
        let l = leader::move_leadership_off(&o.health, o.command_timeout)
            .map_err(|e| fail("leadership", c, crate::error::report(&e)))?;
        tracing::info!(member = %l.member, action = ?l.action, "{}", l.message);
        Some(l)
    } else {
        None
    };
    let with = |mut f: StepFailure| {
        f.leadership = leadership.clone().map(Box::new);
        f
    };
    let (seconds, served) = restart_steps(o, c, started).map_err(with)?;
    Ok(Restarted {
        seconds,
        served,
        leadership,
    })
}

/// The restart itself, the health wait and the proof.
fn restart_steps(
    o: &RestartOptions,
    c: Component,
    started: Instant,
) -> Result<(f64, Vec<ServedEndpoint>), StepFailure> {
    let manifest = o.manifests_dir.join(format!("{}.yaml", c.name()));
    match o.method {
        RestartMethod::None => return Ok((0.0, vec![])),
        RestartMethod::ManifestMove => {
            if !manifest.is_file() {
                return Err(fail(
                    "restart",
                    c,
                    format!("static pod manifest {} not found", manifest.display()),
                ));
            }
            let mut parked = Parked::park(&manifest, &o.park_dir)
                .map_err(|e| fail("restart", c, e.to_string()))?;
            tracing::info!(
                component = c.name(),
                "manifest parked; waiting for the pod to stop"
            );
            let stopped = match &o.stop_wait {
                StopWait::Delay(d) => {
                    std::thread::sleep(*d);
                    Ok(Ok(()))
                }
                StopWait::Command(t) => poll(o, c, &manifest, o.stop_timeout, true, Some(t)),
                StopWait::HealthFails => poll(o, c, &manifest, o.stop_timeout, false, None),
            };
            // Move it back whatever happened.
            let restored = parked.restore();
            match stopped {
                Err(e) => return Err(fail("restart", c, e.to_string())),
                Ok(Err(last)) => {
                    return Err(fail(
                        "restart",
                        c,
                        format!(
                            "the pod did not stop within {}s (manifest moved back){}",
                            o.stop_timeout.as_secs(),
                            suffix(&last)
                        ),
                    ))
                }
                Ok(Ok(())) => {}
            }
            restored.map_err(|e| fail("restart", c, e.to_string()))?;
        }
        RestartMethod::Crictl => {
            let what = crictl_stop(o, c)?;
            tracing::info!(component = c.name(), "{what}");
        }
        RestartMethod::Command => {
            let Some(t) = &o.restart_command else {
                return Err(fail("restart", c, "no restart command given".into()));
            };
            let r = run_bounded(t, c, &manifest, o.stop_timeout)
                .map_err(|e| fail("restart", c, e.to_string()))?;
            if !r.success {
                return Err(fail(
                    "restart",
                    c,
                    format!(
                        "restart command {}{}",
                        if r.timed_out {
                            format!("timed out after {}s", o.stop_timeout.as_secs())
                        } else {
                            "failed".to_string()
                        },
                        suffix(&r.output)
                    ),
                ));
            }
        }
    }
    tracing::info!(component = c.name(), "waiting for health");
    match poll(o, c, &manifest, o.health_timeout, true, None) {
        Ok(Ok(())) => {}
        Ok(Err(last)) => {
            return Err(fail(
                "health",
                c,
                format!(
                    "{} did not become healthy within {}s{}",
                    c.name(),
                    o.health_timeout.as_secs(),
                    suffix(&last)
                ),
            ))
        }
        Err(e) => return Err(fail("health", c, e.to_string())),
    }
    let mut proof = Vec::new();
    if let Some(p) = &o.served {
        let r = served::served(&ServedOptions {
            components: vec![c.into()],
            cert_dir: o.health.cert_dir.clone(),
            manifests_dir: o.manifests_dir.clone(),
            overrides: p.overrides.clone(),
            timeout: p.timeout,
            now: crate::timefmt::now_unix(),
            // Only static pods are restarted: the kubelet's endpoint is never probed here.
            kubelet_config: crate::ops::endpoints::DEFAULT_KUBELET_CONFIG.into(),
            kubelet_pki: crate::pki::DEFAULT_KUBELET_PKI.into(),
        });
        proof = r.endpoints;
        let bad: Vec<&ServedEndpoint> = proof
            .iter()
            .filter(|e| {
                e.verdict == Verdict::Stale
                    || (p.require_reachable
                        && e.verdict == Verdict::Unreachable
                        && !e
                            .component
                            .static_pod()
                            .is_some_and(|c| p.not_required.contains(&c)))
            })
            .collect();
        if !bad.is_empty() {
            let msgs: Vec<&str> = bad.iter().map(|e| e.message.as_str()).collect();
            return Err(fail(
                "served",
                c,
                format!(
                    "{} was restarted and is healthy but still does not serve the certificate \
                     on disk: {}",
                    c.name(),
                    msgs.join("; ")
                ),
            ));
        }
    }
    Ok((started.elapsed().as_secs_f64(), proof))
}

/// Restarts `components` in order, one at a time, stopping at the first failure. Returns the
/// outcomes and that failure.
pub fn restart_all(
    o: &RestartOptions,
    components: &[Component],
) -> (Vec<RestartOutcome>, Option<StepFailure>) {
    let mut out = Vec::new();
    for &c in components {
        let t = Instant::now();
        match restart_one(o, c) {
            Ok(r) => out.push(RestartOutcome {
                component: c,
                method: o.method,
                ok: true,
                seconds: r.seconds,
                message: if o.method == RestartMethod::None {
                    "not restarted (method none)".into()
                } else if r.served.iter().any(|e| e.verdict == Verdict::Current) {
                    "restarted, healthy, serving the certificates on disk".into()
                } else {
                    "restarted and healthy".into()
                },
                stage: None,
                served: r.served,
                leadership: r.leadership,
            }),
            Err(f) => {
                out.push(RestartOutcome {
                    component: c,
                    method: o.method,
                    ok: false,
                    seconds: t.elapsed().as_secs_f64(),
                    message: f.message.clone(),
                    stage: Some(f.stage.clone()),
                    served: vec![],
                    leadership: f.leadership.clone().map(|b| *b),
                });
                return (out, Some(f));
            }
        }
    }
    (out, None)
}

/// Default bound on the stop wait and on a restart command.
pub const DEFAULT_STOP_TIMEOUT_MS: u64 = 120_000;
/// Default bound on the wait for health after a restart.
pub const DEFAULT_HEALTH_TIMEOUT_MS: u64 = 300_000;
/// Default pause between polls.
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 2_000;
/// Default bound on one stop/health command.
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 30_000;

/// Params of `restart`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartParams {
    /// Components to restart, one at a time, in kubeadm's order (etcd, kube-apiserver,
    /// kube-controller-manager, kube-scheduler) whatever the order given. Required.
    pub components: Vec<Component>,
    /// Method (default manifest-move).
    #[serde(default)]
    pub method: Option<RestartMethod>,
    /// PKI dir, for the native health check and the served proof (default /etc/kubernetes/pki).
    #[serde(default)]
    pub cert_dir: Option<String>,
    /// Static pod manifests dir (default /etc/kubernetes/manifests).
    #[serde(default)]
    pub manifests_dir: Option<String>,
    /// Where manifests wait while their pod stops (default <manifests_dir>/../kubecert-parked-manifests).
    #[serde(default)]
    pub park_dir: Option<String>,
    /// Method `command`: the shell command template (`{component}`, `{manifest}`). Root only.
    #[serde(default)]
    pub restart_command: Option<String>,
    /// Method `crictl`: the crictl binary (default `crictl`). Root only.
    #[serde(default)]
    pub crictl: Option<String>,
    /// Manifest-move: a command template that succeeds once the old pod has stopped
    /// (default: poll until the component is unhealthy). Root only.
    #[serde(default)]
    pub stop_command: Option<String>,
    /// Manifest-move: wait this long instead, in milliseconds.
    #[serde(default)]
    pub stop_delay_ms: Option<u64>,
    /// Bound on the stop wait and on the restart command, in milliseconds (default 120000).
    #[serde(default)]
    pub stop_timeout_ms: Option<u64>,
    /// Health command template for every component (default: the native check). Root only.
    #[serde(default)]
    pub health_command: Option<String>,
    /// Bound on the wait for health after each restart, in milliseconds (default 300000).
    #[serde(default)]
    pub health_timeout_ms: Option<u64>,
    /// Pause between polls, in milliseconds (default 2000).
    #[serde(default)]
    pub poll_interval_ms: Option<u64>,
    /// Bound on one stop/health command or request, in milliseconds (default 30000).
    #[serde(default)]
    pub command_timeout_ms: Option<u64>,
    /// Endpoint overrides for the health check and the served proof.
    #[serde(default)]
    pub endpoints: Vec<EndpointOverride>,
    /// Prove after each restart that every endpoint of the component serves its certificate
    /// files (default true): a stale one fails the restart.
    #[serde(default)]
    pub served: Option<bool>,
    /// With the proof: an unreachable endpoint fails the restart too (default true).
    #[serde(default)]
    pub served_require_reachable: Option<bool>,
    /// Components whose endpoints need not answer the proof (they do not run on this host):
    /// unreachable is reported for them, never a failure; serving a stale certificate still
    /// fails.
    #[serde(default)]
    pub served_not_required: Vec<Component>,
    /// Bound on connect + handshake of each endpoint of the proof, in milliseconds (default 3000).
    #[serde(default)]
    pub served_timeout_ms: Option<u64>,
    /// Only say what would be restarted.
    #[serde(default)]
    pub dry_run: bool,
}

/// Result of `restart`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestartResult {
    /// Whether this was a dry run (nothing moved, run or restarted).
    pub dry_run: bool,
    /// Every component restarted, healthy and (when proven) serving its files.
    pub ok: bool,
    /// The method.
    pub method: RestartMethod,
    /// The components, in the order they are (or would be) restarted.
    pub components: Vec<Component>,
    /// Manifests an interrupted run had left parked, moved back first (manifest-move).
    #[serde(default)]
    pub recovered_manifests: Vec<String>,
    /// Per component, in order, up to the first failure.
    pub restarts: Vec<RestartOutcome>,
    /// The failed step (`leadership:etcd`, `restart:<c>`, `health:<c>`, `served:<c>`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_stage: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RestartParams {
    /// Resolves defaults and checks the values (components required; the method's command).
    pub fn resolve(&self) -> crate::Result<(RestartOptions, Vec<Component>)> {
        use super::served::{components_or_all, timeout_ms, DEFAULT_MANIFESTS_DIR};
        if self.components.is_empty() {
            return Err(Error::InvalidArgument(
                "components: name at least one component to restart".into(),
            ));
        }
        if self.endpoints.iter().any(|o| o.endpoint.is_none()) {
            return Err(Error::InvalidArgument(
                "endpoints[]: each override needs an endpoint".into(),
            ));
        }
        let method = self.method.unwrap_or(RestartMethod::ManifestMove);
        if method == RestartMethod::Command && self.restart_command.is_none() {
            return Err(Error::InvalidArgument(
                "method command needs restart_command".into(),
            ));
        }
        if self.stop_command.is_some() && self.stop_delay_ms.is_some() {
            return Err(Error::InvalidArgument(
                "stop_command and stop_delay_ms exclude each other".into(),
            ));
        }
        let cert_dir = PathBuf::from(
            self.cert_dir
                .as_deref()
                .unwrap_or(crate::pki::DEFAULT_CERT_DIR),
        );
        let manifests_dir = PathBuf::from(
            self.manifests_dir
                .as_deref()
                .unwrap_or(DEFAULT_MANIFESTS_DIR),
        );
        let park_dir = self
            .park_dir
            .as_deref()
            .map(PathBuf::from)
            .unwrap_or_else(|| default_park_dir(&manifests_dir));
        let command_timeout = timeout_ms(
            "command_timeout_ms",
            self.command_timeout_ms,
            DEFAULT_COMMAND_TIMEOUT_MS,
        )?;
        let mut health = HealthOptions::new(&cert_dir, &manifests_dir);
        health.overrides = self.endpoints.clone();
        health.request_timeout = command_timeout;
        let stop_wait = match (&self.stop_command, self.stop_delay_ms) {
            (Some(c), _) => StopWait::Command(c.clone()),
            (None, Some(ms)) => StopWait::Delay(Duration::from_millis(ms.min(86_400_000))),
            (None, None) => StopWait::HealthFails,
        };
        let o = RestartOptions {
            method,
            park_dir,
            restart_command: self.restart_command.clone(),
            crictl: self.crictl.clone().unwrap_or_else(|| "crictl".into()),
            stop_wait,
            stop_timeout: timeout_ms(
                "stop_timeout_ms",
                self.stop_timeout_ms,
                DEFAULT_STOP_TIMEOUT_MS,
            )?,
            health_commands: match &self.health_command {
                Some(t) => COMPONENTS.iter().map(|c| (*c, t.clone())).collect(),
                None => vec![],
            },
            health,
            health_timeout: timeout_ms(
                "health_timeout_ms",
                self.health_timeout_ms,
                DEFAULT_HEALTH_TIMEOUT_MS,
            )?,
            poll_interval: timeout_ms(
                "poll_interval_ms",
                self.poll_interval_ms,
                DEFAULT_POLL_INTERVAL_MS,
            )?,
            command_timeout,
            served: if self.served.unwrap_or(true) {
                Some(ServedProof {
                    overrides: self.endpoints.clone(),
                    timeout: timeout_ms(
                        "served_timeout_ms",
                        self.served_timeout_ms,
                        super::served::DEFAULT_TIMEOUT_MS,
                    )?,
                    require_reachable: self.served_require_reachable.unwrap_or(true),
                    not_required: self.served_not_required.clone(),
                })
            } else {
                None
            },
            manifests_dir,
        };
        Ok((o, components_or_all(&self.components)))
    }
}

/// The `restart` method: recover parked manifests (manifest-move), then restart each
/// component, wait for health, prove what it serves. Failures are in the result
/// (`ok: false`); `Err` is bad params or an unusable park dir.
pub fn restart(p: &RestartParams) -> crate::Result<RestartResult> {
    let (o, components) = p.resolve()?;
    let mut r = RestartResult {
        dry_run: p.dry_run,
        ok: true,
        method: o.method,
        components: components.clone(),
        recovered_manifests: vec![],
        restarts: vec![],
        failed_stage: None,
        error: None,
    };
    if p.dry_run {
        return Ok(r);
    }
    let _lock = RestartLock::acquire(&o.park_dir, Duration::from_secs(300))?;
    if o.method == RestartMethod::ManifestMove {
        r.recovered_manifests = recover_parked(&o.manifests_dir, &o.park_dir)?;
    }
    let (outcomes, failure) = restart_all(&o, &components);
    r.restarts = outcomes;
    if let Some(f) = failure {
        r.ok = false;
        r.failed_stage = Some(f.stage);
        r.error = Some(f.message);
    }
    Ok(r)
}

/// Human-readable lines.
pub fn render_text(r: &RestartResult) -> String {
    let mut s = String::new();
    for m in &r.recovered_manifests {
        s.push_str(&format!("[restart] moved back parked manifest {m}\n"));
    }
    if r.dry_run {
        let names: Vec<&str> = r.components.iter().map(|c| c.name()).collect();
        s.push_str(&format!(
            "[restart] [dry-run] would restart: {}\n",
            names.join(", ")
        ));
        return s;
    }
    for o in &r.restarts {
        if o.ok {
            s.push_str(&format!(
                "[restart] {}: {} after {:.1}s\n",
                o.component.name(),
                o.message,
                o.seconds
            ));
        } else {
            s.push_str(&format!(
                "[restart] {}: {}\n",
                o.component.name(),
                o.message
            ));
        }
        if let Some(l) = &o.leadership {
            s.push_str(&format!("[restart]   etcd leadership: {}\n", l.message));
        }
        for e in &o.served {
            s.push_str(&format!("[restart]   {}\n", e.message));
        }
    }
    match (&r.failed_stage, &r.error) {
        (Some(st), Some(e)) => s.push_str(&format!("[restart] FAILED at {st}: {e}\n")),
        _ => s.push_str("[restart] done\n"),
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
        assert_eq!(r.stdout, "hello");
        assert!(r.output.contains("hello") && r.output.contains("etcd"));
    }

    #[test]
    fn timeout_kills_the_whole_process_group() {
        let d = tempfile::tempdir().expect("tempdir");
        let pidfile = d.path().join("pid");
        let r = run_bounded(
            &format!("sleep 30 & echo $! > {}; wait", pidfile.display()),
            Component::Etcd,
            Path::new("/nonexistent"),
            Duration::from_millis(500),
        )
        .expect("run");
        assert!(r.timed_out && !r.success);
        let pid = std::fs::read_to_string(&pidfile).expect("pid written");
        let stat = format!("/proc/{}/stat", pid.trim());
        // The grandchild `sleep` got SIGKILL with its group: gone, or a zombie until reaped.
        let t = Instant::now();
        let alive = || {
            std::fs::read_to_string(&stat)
                .ok()
                .and_then(|s| s.rsplit(") ").next().map(|r| !r.starts_with('Z')))
                .unwrap_or(false)
        };
        while alive() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(), "{stat} still running");
    }

    #[test]
    fn native_stop_wait_checks_once_and_health_wait_is_bounded() {
        use super::super::endpoints::Endpoint;
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("manifests");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("kube-scheduler.yaml"), "x").unwrap();
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let overrides = vec![EndpointOverride {
            endpoint: Some(Endpoint::KubeScheduler),
            address: Some(dead),
            cert: None,
        }];
        let mut health = HealthOptions::new(d.path(), &m);
        health.overrides = overrides;
        let o = RestartOptions {
            method: RestartMethod::ManifestMove,
            manifests_dir: m.clone(),
            park_dir: d.path().join("parked"),
            restart_command: None,
            crictl: "crictl".into(),
            stop_wait: StopWait::HealthFails,
            stop_timeout: Duration::from_secs(10),
            health_commands: vec![],
            health,
            health_timeout: Duration::from_secs(1),
            poll_interval: Duration::from_millis(100),
            command_timeout: Duration::from_secs(5),
            served: None,
        };
        let t = Instant::now();
        let e = restart_one(&o, Component::KubeScheduler).expect_err("never healthy");
        let took = t.elapsed();
        assert_eq!(e.stage, "health:kube-scheduler");
        assert!(
            e.message.starts_with(
                "kube-scheduler did not become healthy within 1s (last output: cannot connect"
            ),
            "{}",
            e.message
        );
        // The stop is seen at the first check (not after a 5 s command bound); the health
        // wait ends at its 1 s bound.
        assert!(took < Duration::from_millis(3000), "{took:?}");
        assert!(
            m.join("kube-scheduler.yaml").is_file(),
            "manifest moved back"
        );
    }

    #[test]
    fn restart_lock_excludes_a_second_holder() {
        let d = tempfile::tempdir().unwrap();
        let park = d.path().join("parked");
        let held = RestartLock::acquire(&park, Duration::from_secs(1)).unwrap();
        let e = RestartLock::acquire(&park, Duration::from_millis(200))
            .err()
            .expect("held");
        assert!(
            crate::error::report(&e).contains("another kubecert restart holds this lock"),
            "{e}"
        );
        drop(held);
        RestartLock::acquire(&park, Duration::from_millis(200)).expect("released");
    }

    #[test]
    fn default_park_dir_is_beside_the_manifests() {
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
