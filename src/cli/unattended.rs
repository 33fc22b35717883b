//! Flags of the unattended-operation commands: `metrics` and `auto-renew` (and the
//! Prometheus rendering of `check -o prometheus`). Every flag of `auto-renew` can also come
//! from the environment (`KUBECERT_*`), so that `/etc/default/kubecert` configures the
//! `kubecert-renew.service` unit without editing it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use kubecert::autorenew::{self, AutoRenewOptions, RestartMethod, StopWait};
use kubecert::check::CheckResult;
use kubecert::metrics::{self, MetricsParams, RenderContext};
use kubecert::ops::health::HealthOptions;
use kubecert::ops::restart::{RestartOptions, ServedProof};
use kubecert::pki::inventory::Component;
use kubecert::pki::Layout;
use kubecert::renew::RenewParams;
use kubecert::{render, timefmt};

use super::{location, path_str, print, TextJson};

/// `check -o prometheus`: the same rendering as `kubecert metrics`, with the state file at
/// its default place.
pub(super) fn check_prometheus(report: &CheckResult, layout: &Layout) -> String {
    let state = kubecert::renew_state::default_state_file(&layout.cert_dir);
    metrics::render(report, &RenderContext::for_layout(layout, &state))
}

/// Flags of `kubecert metrics`.
#[derive(clap::Args, Debug)]
pub(super) struct MetricsArgs {
    /// PKI dir.
    #[arg(long, default_value = kubecert::pki::DEFAULT_CERT_DIR, env = "KUBECERT_CERT_DIR")]
    cert_dir: PathBuf,
    /// Dir with admin.conf, controller-manager.conf, scheduler.conf, super-admin.conf.
    #[arg(
        long,
        default_value = kubecert::pki::DEFAULT_KUBECONFIG_DIR,
        env = "KUBECERT_KUBECONFIG_DIR"
    )]
    kubeconfig_dir: PathBuf,
    /// Treat etcd as external (default: auto-detect from <cert-dir>/etcd).
    #[arg(long)]
    external_etcd: bool,
    /// kubelet PKI dir (for the kubelet.conf series).
    #[arg(long, default_value = kubecert::pki::DEFAULT_KUBELET_PKI)]
    kubelet_pki: PathBuf,
    /// The state file auto-renew records its runs in (default <cert-dir>/../kubecert-state.json).
    #[arg(long, env = "KUBECERT_STATE_FILE")]
    state_file: Option<PathBuf>,
    /// Write DIR/kubecert.prom atomically (node_exporter --collector.textfile.directory)
    /// instead of printing.
    #[arg(long, value_name = "DIR", env = "KUBECERT_TEXTFILE_DIR")]
    textfile_dir: Option<PathBuf>,
    /// Fixed clock (RFC 3339).
    #[arg(long)]
    now: Option<String>,
    #[command(flatten)]
    served: super::ops::ServedProbeArgs,
    /// Also the CA series (kubecert_ca_*: NotAfter with the join hash, key present,
    /// certificates signed, trust bundles).
    #[arg(long)]
    ca: bool,
    /// Also the drift series (kubecert_drift_*) against the kubeadm config file --config.
    #[arg(long)]
    drift: bool,
    /// The kubeadm config file (InitConfiguration/JoinConfiguration + ClusterConfiguration).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub(super) fn metrics_cmd(a: MetricsArgs) -> Result<ExitCode> {
    let r = metrics::metrics(&MetricsParams {
        location: location(&a.cert_dir, &a.kubeconfig_dir, a.external_etcd),
        now: a.now,
        kubelet_pki: Some(path_str(&a.kubelet_pki)),
        state_file: a.state_file.as_deref().map(path_str),
        textfile_dir: a.textfile_dir.as_deref().map(path_str),
        served: a.served.probe()?,
        ca: a.ca,
        drift: a.drift,
        kubeadm: kubecert::config::ConfigParams {
            config: a.config.as_deref().map(path_str),
            ..Default::default()
        },
    })?;
    match r.textfile {
        Some(f) => eprintln!("[metrics] wrote {f}"),
        None => print(&r.text)?,
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq)]
pub(super) enum RestartArg {
    /// Move the static pod manifest out of the manifests dir and back.
    ManifestMove,
    /// Stop the component's containers with crictl (the kubelet starts them again).
    Crictl,
    /// Run --restart-command for each component.
    Command,
    /// Renew only; print what needs a restart.
    None,
}

/// Flags of `kubecert auto-renew`.
#[derive(clap::Args, Debug)]
pub(super) struct AutoRenewArgs {
    /// `all` or inventory names.
    #[arg(default_value = "all")]
    names: Vec<String>,
    /// Renew what expires within this duration.
    #[arg(long, default_value = "30d", env = "KUBECERT_WITHIN", value_parser = super::duration_arg)]
    within: String,
    /// Accept that these due certificates (names, comma-separated, or `all`) cannot be
    /// renewed (CA key absent, file missing); otherwise the run fails at stage `unrenewable`.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "NAME",
        alias = "allow-external",
        env = "KUBECERT_ALLOW_UNRENEWABLE"
    )]
    allow_unrenewable: Vec<String>,
    /// PKI dir.
    #[arg(long, default_value = kubecert::pki::DEFAULT_CERT_DIR, env = "KUBECERT_CERT_DIR")]
    cert_dir: PathBuf,
    /// Kubeconfig dir.
    #[arg(
        long,
        default_value = kubecert::pki::DEFAULT_KUBECONFIG_DIR,
        env = "KUBECERT_KUBECONFIG_DIR"
    )]
    kubeconfig_dir: PathBuf,
    /// Validity of renewed certificates.
    #[arg(long, default_value = "8760h", env = "KUBECERT_VALIDITY", value_parser = super::duration_arg)]
    validity: String,
    /// same|rsa-2048|rsa-3072|rsa-4096|ecdsa-p256|ecdsa-p384.
    #[arg(long, default_value = "same", env = "KUBECERT_KEY_ALGORITHM")]
    key_algorithm: String,
    /// Backup root (default <cert-dir>/../kubecert-backup).
    #[arg(long, env = "KUBECERT_BACKUP_DIR")]
    backup_dir: Option<PathBuf>,
    /// Treat etcd as external.
    #[arg(long)]
    external_etcd: bool,
    /// State file for the metrics (default <cert-dir>/../kubecert-state.json).
    #[arg(long, env = "KUBECERT_STATE_FILE")]
    state_file: Option<PathBuf>,
    /// How to restart the components whose certificates changed.
    #[arg(long, value_enum, default_value_t = RestartArg::ManifestMove, env = "KUBECERT_RESTART")]
    restart: RestartArg,
    /// Static pod manifests dir.
    #[arg(
        long,
        default_value = kubecert::ops::served::DEFAULT_MANIFESTS_DIR,
        env = "KUBECERT_MANIFESTS_DIR"
    )]
    manifests_dir: PathBuf,
    /// Where manifests wait while their pod stops (default <manifests-dir>/../kubecert-parked-manifests).
    #[arg(long, env = "KUBECERT_PARK_DIR")]
    park_dir: Option<PathBuf>,
    /// With --restart command: the command ({component}, {manifest} are replaced). Implies
    /// --restart command.
    #[arg(long, value_name = "TEMPLATE", env = "KUBECERT_RESTART_COMMAND")]
    restart_command: Option<String>,
    /// Manifest-move: a command that succeeds once the old pod has stopped (default: poll
    /// until the health command fails).
    #[arg(
        long,
        value_name = "TEMPLATE",
        env = "KUBECERT_STOP_COMMAND",
        conflicts_with = "stop_delay"
    )]
    stop_command: Option<String>,
    /// Manifest-move: wait this long instead of a stop command (e.g. 20s).
    #[arg(long, env = "KUBECERT_STOP_DELAY")]
    stop_delay: Option<String>,
    /// Bound on the wait for the old pod to stop (and on --restart-command).
    #[arg(long, default_value = "120s", env = "KUBECERT_STOP_TIMEOUT")]
    stop_timeout: String,
    /// Health command for every component (default: kubecert's own check, as `kubecert
    /// health`: etcd members over TLS, /readyz, /healthz).
    #[arg(long, value_name = "TEMPLATE", env = "KUBECERT_HEALTH_COMMAND")]
    health_command: Option<String>,
    /// Health command for etcd.
    #[arg(long, value_name = "TEMPLATE", env = "KUBECERT_HEALTH_COMMAND_ETCD")]
    health_command_etcd: Option<String>,
    /// Health command for kube-apiserver.
    #[arg(
        long,
        value_name = "TEMPLATE",
        env = "KUBECERT_HEALTH_COMMAND_KUBE_APISERVER"
    )]
    health_command_kube_apiserver: Option<String>,
    /// Health command for kube-controller-manager.
    #[arg(
        long,
        value_name = "TEMPLATE",
        env = "KUBECERT_HEALTH_COMMAND_KUBE_CONTROLLER_MANAGER"
    )]
    health_command_kube_controller_manager: Option<String>,
    /// Health command for kube-scheduler.
    #[arg(
        long,
        value_name = "TEMPLATE",
        env = "KUBECERT_HEALTH_COMMAND_KUBE_SCHEDULER"
    )]
    health_command_kube_scheduler: Option<String>,
    /// Bound on the wait for a restarted component to be healthy.
    #[arg(long, default_value = "300s", env = "KUBECERT_HEALTH_TIMEOUT")]
    health_timeout: String,
    /// Pause between two polls of a stop or health command.
    #[arg(long, default_value = "2s", env = "KUBECERT_POLL_INTERVAL")]
    poll_interval: String,
    /// Bound on one invocation of a stop or health command.
    #[arg(long, default_value = "30s", env = "KUBECERT_COMMAND_TIMEOUT")]
    command_timeout: String,
    /// With --restart crictl: the crictl binary.
    #[arg(long, default_value = "crictl", env = "KUBECERT_CRICTL")]
    crictl: String,
    /// Skip the served-certificate proof after each restart.
    #[arg(long, env = "KUBECERT_NO_SERVED_PROOF")]
    no_served_proof: bool,
    /// The proof fails the run when an endpoint is unreachable too (default: only a stale
    /// certificate fails it; unreachable is reported).
    #[arg(long, env = "KUBECERT_SERVED_REQUIRE_REACHABLE")]
    served_require_reachable: bool,
    /// Bound on connect + handshake of each endpoint of the proof.
    #[arg(long, default_value = "3s", env = "KUBECERT_SERVED_TIMEOUT")]
    served_timeout: String,
    /// Refresh DIR/kubecert.prom after the run.
    #[arg(long, value_name = "DIR", env = "KUBECERT_TEXTFILE_DIR")]
    textfile_dir: Option<PathBuf>,
    /// Only move back manifests a killed run left parked, then exit (the unit's ExecStopPost).
    #[arg(long)]
    recover_manifests: bool,
    /// Plan only: renew nothing, restart nothing, record nothing.
    #[arg(long)]
    dry_run: bool,
    /// Fixed clock (RFC 3339).
    #[arg(long)]
    now: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
    output: TextJson,
}

/// A duration flag that also takes milliseconds (`500ms`).
pub(super) fn millis(flag: &str, s: &str) -> Result<Duration> {
    match s.trim().strip_suffix("ms") {
        Some(n) => n
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| anyhow::anyhow!("--{flag}: invalid duration {s:?}")),
        None => secs(flag, s),
    }
}

pub(super) fn secs(flag: &str, s: &str) -> Result<Duration> {
    let v = timefmt::parse_duration(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))?;
    u64::try_from(v)
        .map(Duration::from_secs)
        .map_err(|_| anyhow::anyhow!("--{flag} must not be negative"))
}

pub(super) fn auto_renew_cmd(a: AutoRenewArgs) -> Result<ExitCode> {
    let params = RenewParams {
        names: a.names,
        location: location(&a.cert_dir, &a.kubeconfig_dir, a.external_etcd),
        within: Some(a.within),
        dry_run: a.dry_run,
        key_algorithm: a.key_algorithm.parse()?,
        validity: Some(a.validity),
        backup_dir: a.backup_dir.as_deref().map(path_str),
        now: a.now,
        allow_expired_ca: false,
        allow_foreign_identity: false,
        allow_unrenewable: a.allow_unrenewable,
        ..Default::default()
    };
    let renew = params.resolve()?;
    let restart = match (a.restart, &a.restart_command) {
        (RestartArg::None, _) => RestartMethod::None,
        (RestartArg::Crictl, _) => RestartMethod::Crictl,
        (_, Some(_)) | (RestartArg::Command, None) => RestartMethod::Command,
        (RestartArg::ManifestMove, None) => RestartMethod::ManifestMove,
    };
    if restart == RestartMethod::Command && a.restart_command.is_none() {
        anyhow::bail!("--restart command needs --restart-command TEMPLATE");
    }
    let stop_wait = match (&a.stop_command, &a.stop_delay) {
        (Some(c), _) => StopWait::Command(c.clone()),
        (None, Some(d)) => StopWait::Delay(secs("stop-delay", d)?),
        (None, None) => StopWait::HealthFails,
    };
    let mut health_commands = Vec::new();
    for (c, specific) in [
        (Component::Etcd, &a.health_command_etcd),
        (Component::KubeApiserver, &a.health_command_kube_apiserver),
        (
            Component::KubeControllerManager,
            &a.health_command_kube_controller_manager,
        ),
        (Component::KubeScheduler, &a.health_command_kube_scheduler),
    ] {
        if let Some(t) = specific.as_ref().or(a.health_command.as_ref()) {
            health_commands.push((c, t.clone()));
        }
    }
    let state_file = a
        .state_file
        .unwrap_or_else(|| kubecert::renew_state::default_state_file(&renew.layout.cert_dir));
    let park_dir = a
        .park_dir
        .unwrap_or_else(|| autorenew::default_park_dir(&a.manifests_dir));
    let command_timeout = secs("command-timeout", &a.command_timeout)?;
    let mut health = HealthOptions::new(&renew.layout.cert_dir, &a.manifests_dir);
    health.request_timeout = command_timeout;
    let restart = RestartOptions {
        method: restart,
        manifests_dir: a.manifests_dir,
        park_dir,
        restart_command: a.restart_command,
        crictl: a.crictl,
        stop_wait,
        stop_timeout: secs("stop-timeout", &a.stop_timeout)?,
        health_commands,
        health,
        health_timeout: secs("health-timeout", &a.health_timeout)?,
        poll_interval: secs("poll-interval", &a.poll_interval)?,
        command_timeout,
        served: (!a.no_served_proof)
            .then(|| -> Result<ServedProof> {
                Ok(ServedProof {
                    overrides: vec![],
                    timeout: millis("served-timeout", &a.served_timeout)?,
                    require_reachable: a.served_require_reachable,
                    not_required: vec![],
                })
            })
            .transpose()?,
    };
    let opts = AutoRenewOptions {
        renew,
        state_file,
        restart,
        textfile_dir: a.textfile_dir,
        lock_timeout: Duration::from_secs(600),
    };
    if a.recover_manifests {
        let moved = autorenew::recover_manifests(&opts)?;
        match a.output {
            TextJson::Text => {
                for m in &moved {
                    println!("[auto-renew] moved back parked manifest {m}");
                }
            }
            TextJson::Json => print(&render::json(&moved)?)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let r = autorenew::auto_renew(&opts)?;
    match a.output {
        TextJson::Text => print(&autorenew::render_text(&r))?,
        TextJson::Json => print(&render::json(&r)?)?,
    }
    Ok(if r.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
