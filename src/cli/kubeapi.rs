//! Flags and arms of the certificates-API commands: `renew --use-api`, `sign`, `approve`.
//! Each arm creates a tokio runtime and calls the async library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use kubecert::kubeapi::approve::{self, ApproveParams, Decision};
use kubecert::kubeapi::renew::{self as api_renew, ApiRenewOptions};
use kubecert::kubeapi::sign::{self, SignAction, SignOptions};
use kubecert::kubeapi::DEFAULT_KUBECONFIG;
use kubecert::pki::Layout;
use kubecert::renew::RenewOptions;
use kubecert::{render, timefmt};

use super::{location, path_str, print, TextJson};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

fn seconds(flag: &str, s: &str) -> Result<i64> {
    let n = timefmt::parse_duration(s)?;
    if n <= 0 {
        anyhow::bail!("{flag} must be positive");
    }
    Ok(n)
}

fn kubeconfig_or_default(k: Option<PathBuf>) -> PathBuf {
    k.unwrap_or_else(|| PathBuf::from(DEFAULT_KUBECONFIG))
}

/// `renew NAME... --use-api`.
pub(super) fn renew_use_api(
    opts: RenewOptions,
    kubeconfig: Option<PathBuf>,
    signer_name: Option<String>,
    timeout: &str,
    output: TextJson,
) -> Result<ExitCode> {
    let o = ApiRenewOptions {
        renew: opts,
        kubeconfig: kubeconfig_or_default(kubeconfig),
        signer_name,
        timeout: Duration::from_secs(seconds("--timeout", timeout)?.unsigned_abs()),
        request_expiration: true,
    };
    let progress = |line: &str| {
        if output == TextJson::Text {
            let _ = print(&format!("{line}\n"));
        } else {
            eprintln!("{line}");
        }
    };
    let r = runtime()?.block_on(api_renew::renew_with_api(&o, &progress))?;
    match output {
        TextJson::Text => print(&api_renew::render_text(&r))?,
        TextJson::Json => print(&render::json(&r)?)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Flags of `kubecert sign`.
#[derive(clap::Args, Debug)]
pub(super) struct SignArgs {
    /// The signer name to sign for (e.g. kubecert.io/apiserver).
    #[arg(long)]
    signer_name: String,
    /// Keep running: sign requests as they are approved (SIGTERM/SIGINT stop it).
    #[arg(long)]
    watch: bool,
    /// Longest validity issued (expirationSeconds is capped at this and at the CA).
    #[arg(long, default_value = "8760h")]
    max_duration: String,
    /// Kubeconfig to reach the API server with (default /etc/kubernetes/admin.conf).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// PKI dir (the CAs and the certificates requests are matched against).
    #[arg(long, default_value = kubecert::pki::DEFAULT_CERT_DIR)]
    cert_dir: PathBuf,
    /// Kubeconfig dir (admin.conf & co. are inventory rows too).
    #[arg(long, default_value = kubecert::pki::DEFAULT_KUBECONFIG_DIR)]
    kubeconfig_dir: PathBuf,
    /// Treat etcd as external.
    #[arg(long)]
    external_etcd: bool,
    /// Output format (one pass; with --watch, one JSON object per line).
    #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
    output: TextJson,
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {},
                _ = i.recv() => {},
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

pub(super) fn sign_cmd(a: SignArgs) -> Result<ExitCode> {
    let o = SignOptions {
        layout: Layout::new(
            &a.cert_dir,
            &a.kubeconfig_dir,
            a.external_etcd.then_some(true),
        ),
        kubeconfig: kubeconfig_or_default(a.kubeconfig),
        signer_name: a.signer_name,
        max_duration: seconds("--max-duration", &a.max_duration)?,
    };
    if !o.layout.cert_dir.is_dir() {
        anyhow::bail!("{}: cert dir not found", o.layout.cert_dir.display());
    }
    let rt = runtime()?;
    if a.watch {
        let output = a.output;
        let report = move |it: &sign::SignItem| {
            let line = match output {
                TextJson::Text => sign::item_line(it),
                TextJson::Json => serde_json::to_string(it).unwrap_or_default(),
            };
            let _ = print(&format!("{line}\n"));
        };
        rt.block_on(sign::run_watch(&o, shutdown_signal(), &report))?;
        return Ok(ExitCode::SUCCESS);
    }
    let r = rt.block_on(sign::sign_once(&o))?;
    match a.output {
        TextJson::Text => print(&sign::render_text(&r))?,
        TextJson::Json => print(&render::json(&r)?)?,
    }
    Ok(
        if r.requests.iter().any(|i| i.action == SignAction::Failed) {
            ExitCode::from(3)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// Flags of `kubecert approve`.
#[derive(clap::Args, Debug)]
pub(super) struct ApproveArgs {
    /// CertificateSigningRequest names (or --all-pending).
    names: Vec<String>,
    /// Judge every pending request.
    #[arg(long, conflicts_with = "names")]
    all_pending: bool,
    /// Policy file (YAML or JSON): signerNames, users, groups, maxExpirationSeconds, unmatched,
    /// issuedWithinSeconds.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Decide and report; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Judge kubelet serving certificate requests (signer kubernetes.io/kubelet-serving):
    /// requester and subject system:node:NAME in system:nodes, serving usages, and only DNS
    /// names and IPs of that Node's status.addresses. Exit 3 when an approved request was
    /// not issued within --issued-within.
    #[arg(long)]
    kubelet_serving: bool,
    /// With --kubelet-serving: report a request approved but not issued after this long
    /// [default: the policy's issuedWithinSeconds, 5m].
    #[arg(long, requires = "kubelet_serving")]
    issued_within: Option<String>,
    /// With --kubelet-serving: fixed clock for --issued-within, RFC 3339.
    #[arg(long, requires = "kubelet_serving")]
    now: Option<String>,
    /// Kubeconfig to reach the API server with (default /etc/kubernetes/admin.conf).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// PKI dir (requests must match a certificate in it; not read with --kubelet-serving).
    #[arg(long, default_value = kubecert::pki::DEFAULT_CERT_DIR)]
    cert_dir: PathBuf,
    /// Kubeconfig dir.
    #[arg(long, default_value = kubecert::pki::DEFAULT_KUBECONFIG_DIR)]
    kubeconfig_dir: PathBuf,
    /// Treat etcd as external.
    #[arg(long)]
    external_etcd: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
    output: TextJson,
}

fn opt_path(p: &Option<PathBuf>) -> Option<String> {
    p.as_deref().map(|x: &Path| path_str(x))
}

pub(super) fn approve_cmd(a: ApproveArgs) -> Result<ExitCode> {
    let p = ApproveParams {
        names: a.names,
        all_pending: a.all_pending,
        kubeconfig: Some(path_str(&kubeconfig_or_default(a.kubeconfig))),
        policy: opt_path(&a.policy),
        dry_run: a.dry_run,
        kubelet_serving: a.kubelet_serving,
        issued_within: a.issued_within,
        now: a.now,
        location: location(&a.cert_dir, &a.kubeconfig_dir, a.external_etcd),
    };
    let r = runtime()?.block_on(approve::approve(&p))?;
    match a.output {
        TextJson::Text => print(&approve::render_text(&r))?,
        TextJson::Json => print(&render::json(&r)?)?,
    }
    // 1: a named request does not exist; 3: an approved request was not issued in time.
    Ok(
        if r.requests.iter().any(|i| i.decision == Decision::NotFound) {
            ExitCode::from(1)
        } else if !r.not_issued().is_empty() {
            ExitCode::from(3)
        } else {
            ExitCode::SUCCESS
        },
    )
}
