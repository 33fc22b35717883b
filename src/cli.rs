//! Command-line flags ("low args") and their conversion into library params. Exit codes:
//! 0 success; 1 error; 2 usage error; `check`: 3 when something expires within
//! `--warn-within`, 4 within `--fail-within` (or a certificate is unusable and a threshold
//! was given), and 4 whatever the thresholds when one is expired, has a missing or mismatched
//! key or is not signed by its CA. Any command: 5 when a clock check finds a certificate's
//! NotBefore ahead of the local clock (clock skew, `kubelet-conf rebuild`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use kubecert::check::{self, CheckParams};
use kubecert::csr::{self, CsrExportParams, CsrImportParams};
use kubecert::pki::restore::{self, RestoreParams};
use kubecert::renew::{self, RenewParams};
use kubecert::{demo, kubelet, render, timefmt};

mod ca;
mod docs;
#[cfg(feature = "k8s")]
mod kubeapi;
mod ops;
mod unattended;

/// `kubecert config ...`.
#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// What kubeadm would issue for a kubeadm config file: per certificate its SANs (by
    /// kubeadm's rules), validity and key algorithm.
    Expected {
        /// The kubeadm configuration (a file, or the ConfigMap with --kubeconfig).
        #[command(flatten)]
        kubeadm: KubeadmSourceArgs,
        /// Treat etcd as external (no etcd rows).
        #[arg(long)]
        external_etcd: bool,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
        output: TextJson,
    },
}

/// Where the kubeadm configuration comes from (check --drift, config expected).
#[derive(clap::Args, Debug, Default)]
struct KubeadmSourceArgs {
    /// The kubeadm config file (InitConfiguration/JoinConfiguration + ClusterConfiguration,
    /// v1beta3 or v1beta4).
    #[arg(long, value_name = "FILE", conflicts_with = "kubeconfig")]
    config: Option<PathBuf>,
    /// Instead of --config: read the ClusterConfiguration from the ConfigMap
    /// kube-system/kubeadm-config through the API server of this kubeconfig (the node's
    /// name and advertise address then come from the static pod manifests, the hostname,
    /// or --node-name/--advertise-address).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    node: NodeFactArgs,
}

impl KubeadmSourceArgs {
    fn params(self) -> kubecert::config::ConfigParams {
        kubecert::config::ConfigParams {
            config: self.config.as_deref().map(path_str),
            kubeconfig: self.kubeconfig.as_deref().map(path_str),
            node_name: self.node.node_name,
            advertise_address: self.node.advertise_address,
        }
    }
}

/// The node's own facts over the kubeadm configuration's (an HA node's name and address).
#[derive(clap::Args, Debug, Default)]
struct NodeFactArgs {
    /// The node's name (over nodeRegistration.name, etcd's --name and the hostname).
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// The node's advertise address (over the configuration's and kube-apiserver's
    /// --advertise-address).
    #[arg(long, value_name = "IP")]
    advertise_address: Option<String>,
}

/// The text of `config expected`.
fn expected_text(r: &kubecert::config::Expected) -> String {
    let mut out = format!(
        "{} ({}): node {}{}, keys {}\n",
        if r.config.starts_with("configmap ") {
            r.config.clone()
        } else {
            format!("kubeadm config {}", r.config)
        },
        r.api_version,
        r.node_name,
        r.advertise_address
            .as_deref()
            .map(|a| format!(", {a}"))
            .unwrap_or_default(),
        r.encryption_algorithm
    );
    for c in &r.certificates {
        let sans = match (&c.sans, &c.sans_error) {
            (Some(s), _) if s.is_empty() => "no SANs".to_string(),
            (Some(s), _) => s.join(", "),
            (None, Some(e)) => format!("SANs unknown: {e}"),
            (None, None) => "SANs not compared".to_string(),
        };
        out.push_str(&format!(
            "{:<26}{:<8}{}\n",
            c.name,
            timefmt::format_duration(c.validity_seconds),
            sans
        ));
    }
    if !r.ignored_sans.is_empty() {
        out.push_str(&format!(
            "left out by kubeadm (not an IP nor an RFC 1123 name): {}\n",
            r.ignored_sans.join(", ")
        ));
    }
    out
}

#[derive(Parser, Debug)]
#[command(
    name = "kubecert",
    version = kubecert::build_info::LONG_VERSION,
    about = "Keeps the certificates of kubeadm clusters alive"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// More logging (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum CheckOutput {
    Text,
    Json,
    Yaml,
    /// Prometheus text exposition (same as `kubecert metrics`).
    Prometheus,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum TextJson {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum KubeletConfCmd {
    /// Point kubelet.conf at kubelet-client-current.pem (kubeadm#1753).
    Repair {
        /// Dir holding kubelet.conf.
        #[arg(long, default_value = kubecert::pki::DEFAULT_KUBECONFIG_DIR)]
        kubeconfig_dir: PathBuf,
        /// PKI dir (ca.crt, and the lock).
        #[arg(long, default_value = kubecert::pki::DEFAULT_CERT_DIR)]
        cert_dir: PathBuf,
        /// kubelet PKI dir.
        #[arg(long, default_value = kubecert::pki::DEFAULT_KUBELET_PKI)]
        kubelet_pki: PathBuf,
        /// Report only.
        #[arg(long)]
        dry_run: bool,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
        output: TextJson,
        /// Fixed clock (RFC 3339).
        #[arg(long)]
        now: Option<String>,
    },
    /// Break-glass: the kubelet client certificate has expired. Issue a new one for
    /// system:node:NAME with the local ca.key (as `kubeadm kubeconfig user --org system:nodes
    /// --client-name system:node:NAME` would), install it as the kubelet rotates it, and point
    /// kubelet.conf at kubelet-client-current.pem; one transaction with backup. Exit 5 on
    /// clock skew.
    Rebuild {
        /// The node's name (the certificate is for system:node:NAME).
        #[arg(long)]
        node_name: String,
        /// Dir holding kubelet.conf.
        #[arg(long, default_value = kubecert::pki::DEFAULT_KUBECONFIG_DIR)]
        kubeconfig_dir: PathBuf,
        /// PKI dir (ca.crt, ca.key, and the lock).
        #[arg(long, default_value = kubecert::pki::DEFAULT_CERT_DIR)]
        cert_dir: PathBuf,
        /// kubelet PKI dir.
        #[arg(long, default_value = kubecert::pki::DEFAULT_KUBELET_PKI)]
        kubelet_pki: PathBuf,
        /// Print the plan; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// How far a NotBefore may lie ahead of the clock before it is clock skew.
        #[arg(long, value_parser = duration_arg)]
        clock_skew: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
        output: TextJson,
        /// Fixed clock (RFC 3339).
        #[arg(long)]
        now: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum CsrCmd {
    /// Write <name>.csr and <name>.key for an external CA to sign (never touches the PKI).
    Export(CsrExportArgs),
    /// Validate the signed <name>.crt files (with their <name>.key) and install all of them in
    /// one transaction, or none.
    Import(CsrImportArgs),
}

// The flags of `csr import` (its help is the doc comment of the variant).
#[derive(clap::Args, Debug)]
struct CsrImportArgs {
    /// `all` or inventory names.
    #[arg(required = true)]
    names: Vec<String>,
    /// Where the signed certificates and their keys are.
    #[arg(long)]
    csr_dir: PathBuf,
    /// PKI dir.
    #[arg(long, default_value = kubecert::pki::DEFAULT_CERT_DIR)]
    cert_dir: PathBuf,
    /// Kubeconfig dir.
    #[arg(long, default_value = kubecert::pki::DEFAULT_KUBECONFIG_DIR)]
    kubeconfig_dir: PathBuf,
    /// Treat etcd as external.
    #[arg(long)]
    external_etcd: bool,
    /// Validate and report; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Fixed clock (RFC 3339).
    #[arg(long)]
    now: Option<String>,
    /// Backup root (default <cert-dir>/../kubecert-backup).
    #[arg(long)]
    backup_dir: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
    output: TextJson,
}

// The flags of `csr export` (its help is the doc comment of the variant).
#[derive(clap::Args, Debug)]
struct CsrExportArgs {
    /// `all` or inventory names (apiserver, etcd-server, admin.conf, ...).
    #[arg(required = true)]
    names: Vec<String>,
    /// Where the CSRs and keys go (created 0700); never a place holding live files.
    #[arg(long)]
    csr_dir: PathBuf,
    /// PKI dir.
    #[arg(long, default_value = kubecert::pki::DEFAULT_CERT_DIR)]
    cert_dir: PathBuf,
    /// Kubeconfig dir.
    #[arg(long, default_value = kubecert::pki::DEFAULT_KUBECONFIG_DIR)]
    kubeconfig_dir: PathBuf,
    /// Treat etcd as external.
    #[arg(long)]
    external_etcd: bool,
    /// Reuse each certificate's current key instead of generating a new one.
    #[arg(long)]
    reuse_key: bool,
    /// New keys: same|rsa-2048|rsa-3072|rsa-4096|ecdsa-p256|ecdsa-p384.
    #[arg(long, default_value = "same")]
    key_algorithm: String,
    /// Replace existing <name>.csr/<name>.key files in the CSR dir.
    #[arg(long)]
    force: bool,
    /// Request key usages and extended key usages in the CSR (kubeadm requests none).
    #[arg(long)]
    request_usages: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
    output: TextJson,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// External CA: export CSRs, import signed certificates.
    Csr {
        #[command(subcommand)]
        cmd: CsrCmd,
    },
    /// Renew certificates: `all` or names (apiserver, etcd-peer, admin.conf, ...).
    Renew(RenewArgs),
    /// Put a backup made by renew, csr import or kubelet-conf back in place.
    Restore(RestoreArgs),
    /// kubelet.conf diagnosis and repair.
    KubeletConf {
        #[command(subcommand)]
        cmd: KubeletConfCmd,
    },
    /// Check certificate expiration (output identical to `kubeadm certs check-expiration`).
    Check {
        /// PKI dir.
        #[arg(long, default_value = kubecert::pki::DEFAULT_CERT_DIR)]
        cert_dir: PathBuf,
        /// Dir with admin.conf, controller-manager.conf, scheduler.conf, super-admin.conf.
        #[arg(long, default_value = kubecert::pki::DEFAULT_KUBECONFIG_DIR)]
        kubeconfig_dir: PathBuf,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = CheckOutput::Text)]
        output: CheckOutput,
        /// Fixed clock (RFC 3339), for reproducible output.
        #[arg(long)]
        now: Option<String>,
        /// Exit 3 when a certificate expires within this duration (e.g. 30d, 720h).
        #[arg(long, value_parser = duration_arg)]
        warn_within: Option<String>,
        /// Exit 4 when a certificate expires within this duration.
        #[arg(long, value_parser = duration_arg)]
        fail_within: Option<String>,
        /// Treat etcd as external (default: auto-detect from <cert-dir>/etcd).
        #[arg(long)]
        external_etcd: bool,
        /// kubelet PKI dir (for the kubelet.conf diagnosis).
        #[arg(long, default_value = kubecert::pki::DEFAULT_KUBELET_PKI)]
        kubelet_pki: PathBuf,
        #[command(flatten)]
        served: ops::ServedProbeArgs,
        /// Add the kubelet's certificates (client, serving) in a section of their own.
        #[arg(long)]
        kubelet: bool,
        /// Add the CAs as `ca check` sees them (JSON key `ca`; text under the table).
        #[arg(long)]
        ca: bool,
        /// Compare each certificate with the kubeadm configuration --config: SANs missing or
        /// beyond it, validity, key algorithm (JSON key `drift`; text under the table). A
        /// drift is a warning (exit 3), never a failure by itself.
        #[arg(long)]
        drift: bool,
        /// The kubeadm configuration --drift compares with.
        #[command(flatten)]
        kubeadm: KubeadmSourceArgs,
    },
    /// kubeadm configuration: `config expected` lists what kubeadm would issue for it.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Make a kubeadm-like demo PKI.
    DemoPki(DemoPkiArgs),
    /// Prometheus metrics of a check (x509-certificate-exporter names + kubecert_*), on stdout
    /// or atomically into a node_exporter textfile dir.
    Metrics(unattended::MetricsArgs),
    /// The scheduled renewal: renew what expires within --within, restart the affected static
    /// pods one by one with a bounded health wait, record the outcome for the metrics.
    AutoRenew(Box<unattended::AutoRenewArgs>),
    /// Restart control-plane static pods one at a time (manifest-move, crictl or a command),
    /// wait for each to be healthy and prove it serves the certificates on disk. Exit 4 on
    /// a failed step.
    Restart(Box<ops::RestartArgs>),
    /// Health of the control plane within one bound: etcd members over TLS, kube-apiserver
    /// /readyz, controller-manager and scheduler /healthz. Exit 4 when not healthy.
    Health(ops::HealthArgs),
    /// Served-certificate proof: does each component serve the certificate on disk? Exit 4
    /// on a stale or expired served certificate, 3 when an endpoint is unreachable.
    Served(ops::ServedArgs),
    /// CA lifecycle: `ca check`, same-key `ca renew`, `ca export`, `ca install`
    /// (docs/ca-rotation.md).
    Ca {
        #[command(subcommand)]
        cmd: ca::CaCmd,
    },
    /// Run the JSON-RPC agent (docs/rpc.md) on a unix socket, or on stdin/stdout with --stdio.
    Serve(ServeArgs),
    /// Certificates API signer: sign approved CertificateSigningRequests of a signer name with
    /// the CA of the matching certificate of this PKI.
    #[cfg(feature = "k8s")]
    Sign(kubeapi::SignArgs),
    /// Certificates API approver: approve pending CertificateSigningRequests that renew a
    /// certificate of this PKI and satisfy the policy; deny the ones that break it.
    #[cfg(feature = "k8s")]
    Approve(Box<kubeapi::ApproveArgs>),
    /// Write schema/<method>.params.json, schema/<method>.result.json and schema/openrpc.json.
    Schema {
        /// Output dir.
        #[arg(long, default_value = "schema")]
        out: PathBuf,
    },
    /// Print the shell completion script (bash: `kubecert completions bash >
    /// /etc/bash_completion.d/kubecert`; the packages install them).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (kubecert.1, kubecert-<command>.1, ...) into a dir (the packages
    /// install them).
    Man {
        /// Output dir.
        #[arg(long)]
        out: PathBuf,
    },
}

// The flags of `demo-pki` (its help is the doc comment of the variant).
#[derive(clap::Args, Debug)]
struct DemoPkiArgs {
    /// Output dir (mimics /etc/kubernetes; with --nodes N, DIR/node-K for each node).
    dir: PathBuf,
    /// Number of control-plane nodes sharing the CAs.
    #[arg(long, default_value_t = 1)]
    nodes: u32,
    /// Leaf validity (e.g. 8760h, 20d).
    #[arg(long, default_value = "8760h", value_parser = duration_arg)]
    expires_in: String,
    /// Key algorithm (rsa-2048, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384).
    #[arg(long, default_value = "rsa-2048")]
    key_algorithm: String,
    /// Fixed clock (RFC 3339).
    #[arg(long)]
    now: Option<String>,
    /// Overwrite an existing PKI.
    #[arg(long)]
    force: bool,
    /// Also write a kubelet PKI (<DIR>/kubelet-pki: rotated client pair behind
    /// kubelet-client-current.pem, self-generated kubelet.crt) and a kubelet.conf that
    /// references kubelet-client-current.pem.
    #[arg(long)]
    kubelet: bool,
}

// The flags of `restore` (its help is the doc comment of the variant).
#[derive(clap::Args, Debug)]
struct RestoreArgs {
    /// The backup dir renew reported.
    backup_dir: PathBuf,
    /// PKI dir (its lock serializes the restore).
    #[arg(long, default_value = kubecert::pki::DEFAULT_CERT_DIR)]
    cert_dir: PathBuf,
    /// Kubeconfig dir.
    #[arg(long, default_value = kubecert::pki::DEFAULT_KUBECONFIG_DIR)]
    kubeconfig_dir: PathBuf,
    /// kubelet PKI dir (a kubelet-conf rebuild backup re-points kubelet-client-current.pem
    /// there and removes the pair the rebuild created).
    #[arg(long, default_value = kubecert::pki::DEFAULT_KUBELET_PKI)]
    kubelet_pki: PathBuf,
    /// The backup root: BACKUP_DIR must be a directory directly under it (default
    /// <cert-dir>/../kubecert-backup, where renew puts backups).
    #[arg(long)]
    backup_root: Option<PathBuf>,
    /// Report only.
    #[arg(long)]
    dry_run: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
    output: TextJson,
}

// The flags of `renew` (the subcommand's help is the doc comment of `Cmd::Renew`).
#[derive(clap::Args, Debug)]
struct RenewArgs {
    /// `all` or inventory names.
    #[arg(required = true)]
    names: Vec<String>,
    /// PKI dir.
    #[arg(long, default_value = kubecert::pki::DEFAULT_CERT_DIR)]
    cert_dir: PathBuf,
    /// Kubeconfig dir.
    #[arg(long, default_value = kubecert::pki::DEFAULT_KUBECONFIG_DIR)]
    kubeconfig_dir: PathBuf,
    /// Renew only what expires within this duration (default: unconditionally, like kubeadm).
    #[arg(long, value_parser = duration_arg)]
    within: Option<String>,
    /// Print the plan, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// same|rsa-2048|rsa-3072|rsa-4096|ecdsa-p256|ecdsa-p384.
    #[arg(long, default_value = "same")]
    key_algorithm: String,
    /// Validity of renewed certificates [default: 8760h].
    #[arg(long, value_parser = duration_arg)]
    validity: Option<String>,
    /// The kubeadm config file (v1beta3/v1beta4): renewed certificates get its
    /// certificateValidityPeriod and keys of its encryptionAlgorithm (a key of another
    /// algorithm is replaced). Not with --validity or --key-algorithm. Without --use-api,
    /// --kubeconfig reads the same from the kubeadm-config ConfigMap instead.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["csr_only", "use_api", "kubeconfig"])]
    config: Option<PathBuf>,
    #[command(flatten)]
    node: NodeFactArgs,
    /// With --config or --kubeconfig: issue the apiserver and etcd server/peer certificates with the SANs
    /// kubeadm's rules give for that configuration, adding the missing ones.
    #[arg(long)]
    reconcile_sans: bool,
    /// With --reconcile-sans: the SANs become exactly the expected ones (extras dropped).
    #[arg(long)]
    exact: bool,
    /// Backup root (default <cert-dir>/../kubecert-backup).
    #[arg(long)]
    backup_dir: Option<PathBuf>,
    /// Fixed clock (RFC 3339).
    #[arg(long)]
    now: Option<String>,
    /// Sign even when the CA has expired or is not yet valid.
    #[arg(long)]
    allow_expired_ca: bool,
    /// Renew certificates that the signing CA did not issue, or whose subject, SANs or
    /// usages are not what kubeadm issues for them (logged as a warning).
    #[arg(long)]
    allow_foreign_identity: bool,
    /// Accept that these due certificates (inventory names, comma-separated, or `all`)
    /// cannot be renewed (CA key absent: externally managed; file missing). Without it
    /// such a certificate fails the run: exit 4, the names on stderr.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "NAME",
        alias = "allow-external"
    )]
    allow_unrenewable: Vec<String>,
    /// Treat etcd as external.
    #[arg(long)]
    external_etcd: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
    output: TextJson,
    /// Write CSRs and keys instead of renewing (kubeadm v1.15 `--csr-only`); same as
    /// `csr export`.
    #[arg(long, conflicts_with_all = ["dry_run", "within", "backup_dir", "allow_expired_ca"])]
    csr_only: bool,
    /// With --csr-only: where the CSRs and keys go (default: the cert dir).
    #[arg(long, requires = "csr_only")]
    csr_dir: Option<PathBuf>,
    /// Renew through the Kubernetes certificates API: a CertificateSigningRequest per
    /// certificate, installed once approved and issued (kubeadm 1.15-1.18 `--use-api`).
    #[arg(long, conflicts_with_all = ["dry_run", "within", "allow_expired_ca", "csr_only", "now"])]
    use_api: bool,
    /// With --use-api: kubeconfig to reach the API server (default /etc/kubernetes/admin.conf).
    /// Without --use-api: the kubeadm configuration is the ClusterConfiguration of the
    /// ConfigMap kube-system/kubeadm-config read through this kubeconfig (as --config).
    #[arg(long, value_name = "FILE", conflicts_with = "csr_only")]
    kubeconfig: Option<PathBuf>,
    /// With --use-api: signer name of the requests (default kubernetes.io/kube-apiserver-client
    /// for client certificates of the cluster CA; required for every other certificate).
    #[arg(long, requires = "use_api")]
    signer_name: Option<String>,
    /// With --use-api: how long to wait for approval and issuance.
    #[arg(long, requires = "use_api")]
    timeout: Option<String>,
}

/// stderr for log lines: every event goes through the library's one scrubber
/// ([`kubecert::error::scrub`]) on its way out (the fmt layer writes one event per call).
struct ScrubbedStderr;

impl Write for ScrubbedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = kubecert::error::scrub(&String::from_utf8_lossy(buf));
        std::io::stderr().lock().write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn init_logging(format: LogFormat, verbose: u8) {
    use std::io::IsTerminal;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // The audit lines of mutating agent calls (target kubecert::audit) show by default.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("{default},kubecert::audit=info"))
        });
    // Colour only for a terminal: no escape codes in a file, a pipe or the journal.
    let b = tracing_subscriber::fmt()
        .with_writer(|| ScrubbedStderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
}

/// clap value parser of a duration flag: a malformed or negative duration is a usage error
/// (exit 2), reported before anything runs.
pub(crate) fn duration_arg(s: &str) -> std::result::Result<String, timefmt::TimeError> {
    timefmt::parse_duration(s).map(|_| s.to_string())
}

fn print(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn path_str(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// The PKI location params of the `--cert-dir`, `--kubeconfig-dir` and `--external-etcd`
/// flags (`--external-etcd` absent: auto-detect).
pub(crate) fn location(
    cert_dir: &std::path::Path,
    kubeconfig_dir: &std::path::Path,
    external_etcd: bool,
) -> kubecert::pki::PkiLocation {
    kubecert::pki::PkiLocation {
        cert_dir: Some(path_str(cert_dir)),
        kubeconfig_dir: Some(path_str(kubeconfig_dir)),
        external_etcd: external_etcd.then_some(true),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Renew(args) => renew_cmd(args),
        Cmd::Csr {
            cmd: CsrCmd::Export(args),
        } => csr_export_cmd(args),
        Cmd::Csr {
            cmd: CsrCmd::Import(args),
        } => csr_import_cmd(args),
        Cmd::Restore(args) => restore_cmd(args),
        Cmd::KubeletConf {
            cmd:
                KubeletConfCmd::Rebuild {
                    node_name,
                    kubeconfig_dir,
                    cert_dir,
                    kubelet_pki,
                    dry_run,
                    clock_skew,
                    output,
                    now,
                },
        } => {
            let r = kubelet::rebuild::rebuild(&kubelet::rebuild::KubeletRebuildParams {
                node_name,
                kubeconfig_dir: Some(path_str(&kubeconfig_dir)),
                cert_dir: Some(path_str(&cert_dir)),
                kubelet_pki: Some(path_str(&kubelet_pki)),
                backup_dir: None,
                dry_run,
                now,
                clock_skew,
            })?;
            match output {
                TextJson::Json => print(&render::json(&r)?)?,
                TextJson::Text => {
                    let tag = if dry_run {
                        "[kubelet-conf rebuild] [dry-run] would"
                    } else {
                        "[kubelet-conf rebuild]"
                    };
                    for w in &r.warnings {
                        eprintln!("warning: {w}");
                    }
                    for step in &r.plan {
                        println!("{tag} {step}");
                    }
                    if let Some(b) = &r.backup_dir {
                        println!("[kubelet-conf rebuild] backup: {b}");
                    }
                    if !dry_run {
                        println!(
                            "[kubelet-conf rebuild] done: {} -> {}",
                            r.link, r.link_target
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::KubeletConf {
            cmd:
                KubeletConfCmd::Repair {
                    kubeconfig_dir,
                    cert_dir,
                    kubelet_pki,
                    dry_run,
                    output,
                    now,
                },
        } => {
            let r = kubelet::repair(&kubelet::KubeletConfParams {
                kubeconfig_dir: Some(path_str(&kubeconfig_dir)),
                cert_dir: Some(path_str(&cert_dir)),
                kubelet_pki: Some(path_str(&kubelet_pki)),
                dry_run,
                repair: true,
                now,
            })?;
            match output {
                TextJson::Json => print(&render::json(&r)?)?,
                TextJson::Text => println!("[kubelet-conf] {}: {}", r.action, r.reason),
            }
            Ok(if r.action == kubelet::KubeletConfAction::Refused {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Check {
            cert_dir,
            kubeconfig_dir,
            output,
            now,
            warn_within,
            fail_within,
            external_etcd,
            kubelet_pki,
            served,
            kubelet,
            ca,
            drift,
            kubeadm,
        } => {
            let params = CheckParams {
                location: location(&cert_dir, &kubeconfig_dir, external_etcd),
                now,
                warn_within,
                fail_within,
                kubelet_pki: Some(path_str(&kubelet_pki)),
                served: served.probe()?,
                kubelet,
                ca,
                drift,
                kubeadm: kubeadm.params(),
            };
            let opts = params.resolve_with(kubecert::kubeadm_configmap_reader())?;
            let report = check::check(&opts)?;
            match output {
                CheckOutput::Text => {
                    print(&render::check_text(&report))?;
                    if let Some(k) = &report.kubelet {
                        print(&format!("\n{}", render::kubelet_text(k)))?;
                    }
                    if let Some(s) = &report.served {
                        print(&kubecert::ops::served::render_check_section(s))?;
                    }
                    if let Some(c) = &report.ca {
                        print(&format!("\n{}", kubecert::ca::render_check(c)))?;
                    }
                    if let Some(d) = &report.drift {
                        print(&check::drift::render_text(d))?;
                    }
                    for n in render::check_notes(&report) {
                        eprintln!("{n}");
                    }
                }
                CheckOutput::Json => print(&render::json(&report)?)?,
                CheckOutput::Yaml => print(&render::yaml(&report)?)?,
                CheckOutput::Prometheus => {
                    print(&unattended::check_prometheus(&report, &opts.layout))?
                }
            }
            let code = report.status.as_ref().map(|s| s.exit_code).unwrap_or(0);
            Ok(ExitCode::from(match code {
                2 => 4,
                1 => 3,
                _ => 0,
            }))
        }
        Cmd::Config {
            cmd:
                ConfigCmd::Expected {
                    kubeadm,
                    external_etcd,
                    output,
                },
        } => {
            let r = kubecert::config::expected(
                &kubecert::config::ExpectedParams {
                    source: kubeadm.params(),
                    external_etcd,
                },
                kubecert::kubeadm_configmap_reader(),
            )?;
            match output {
                TextJson::Json => print(&render::json(&r)?)?,
                TextJson::Text => print(&expected_text(&r))?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::DemoPki(args) => demo_pki_cmd(args),
        Cmd::Metrics(args) => unattended::metrics_cmd(args),
        Cmd::AutoRenew(args) => unattended::auto_renew_cmd(*args),
        Cmd::Restart(args) => ops::restart_cmd(*args),
        Cmd::Health(args) => ops::health_cmd(args),
        Cmd::Served(args) => ops::served_cmd(args),
        Cmd::Ca { cmd } => ca::run(cmd),
        Cmd::Serve(args) => serve(args),
        #[cfg(feature = "k8s")]
        Cmd::Sign(args) => kubeapi::sign_cmd(args),
        #[cfg(feature = "k8s")]
        Cmd::Approve(args) => kubeapi::approve_cmd(*args),
        Cmd::Schema { out } => {
            for p in kubecert::rpc::openrpc::write_schema_dir(&out)
                .with_context(|| format!("writing {}", out.display()))?
            {
                println!("[schema] wrote {}", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Completions { shell } => docs::completions(shell).map(|()| ExitCode::SUCCESS),
        Cmd::Man { out } => {
            for p in docs::man_pages(&out)? {
                println!("[man] wrote {}", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `kubecert renew` (also `--csr-only` and `--use-api`).
fn renew_cmd(args: RenewArgs) -> Result<ExitCode> {
    let RenewArgs {
        names,
        cert_dir,
        kubeconfig_dir,
        within,
        dry_run,
        key_algorithm,
        validity,
        config,
        node,
        reconcile_sans,
        exact,
        backup_dir,
        now,
        allow_expired_ca,
        allow_foreign_identity,
        allow_unrenewable,
        external_etcd,
        output,
        csr_only,
        csr_dir,
        use_api,
        kubeconfig,
        signer_name,
        timeout,
    } = args;
    if csr_only {
        let r = csr::export(&CsrExportParams {
            names,
            csr_dir: path_str(csr_dir.as_deref().unwrap_or(&cert_dir)),
            location: location(&cert_dir, &kubeconfig_dir, external_etcd),
            key_algorithm: key_algorithm.parse()?,
            ..Default::default()
        })?;
        match output {
            TextJson::Text => print(&csr::render_export_text(&r))?,
            TextJson::Json => print(&render::json(&r)?)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let params = RenewParams {
        names,
        location: location(&cert_dir, &kubeconfig_dir, external_etcd),
        within,
        dry_run,
        key_algorithm: key_algorithm.parse()?,
        validity,
        backup_dir: backup_dir.as_deref().map(path_str),
        now,
        allow_expired_ca,
        allow_foreign_identity,
        allow_unrenewable,
        kubeadm: kubecert::config::ConfigParams {
            config: config.as_deref().map(path_str),
            // With --use-api the kubeconfig reaches the certificates API instead.
            kubeconfig: kubeconfig.as_deref().filter(|_| !use_api).map(path_str),
            node_name: node.node_name,
            advertise_address: node.advertise_address,
        },
        reconcile_sans,
        exact,
    };
    let opts = params.resolve_with(kubecert::kubeadm_configmap_reader())?;
    if use_api {
        return renew_use_api(opts, kubeconfig, signer_name, timeout, output);
    }
    let result = renew::renew(&opts)?;
    match output {
        TextJson::Text => print(&renew::render_text(&result, opts.all))?,
        TextJson::Json => print(&render::json(&result)?)?,
    }
    if let Some(m) = renew::unrenewable_message(&result) {
        eprintln!("error: {m}");
        return Ok(ExitCode::from(4));
    }
    Ok(ExitCode::SUCCESS)
}

/// `kubecert restore`.
fn restore_cmd(args: RestoreArgs) -> Result<ExitCode> {
    let RestoreArgs {
        backup_dir,
        cert_dir,
        kubeconfig_dir,
        kubelet_pki,
        backup_root,
        dry_run,
        output,
    } = args;
    let r = restore::restore(&RestoreParams {
        backup_dir: path_str(&backup_dir),
        cert_dir: Some(path_str(&cert_dir)),
        kubeconfig_dir: Some(path_str(&kubeconfig_dir)),
        kubelet_pki: Some(path_str(&kubelet_pki)),
        backup_root: backup_root.as_deref().map(path_str),
        dry_run,
    })?;
    match output {
        TextJson::Json => print(&render::json(&r)?)?,
        TextJson::Text => {
            for f in &r.restored {
                println!(
                    "{} {f}",
                    if dry_run {
                        "[dry-run] would restore"
                    } else {
                        "restored"
                    }
                );
            }
            for f in &r.removed {
                println!(
                    "{} {f}",
                    if dry_run {
                        "[dry-run] would remove"
                    } else {
                        "removed"
                    }
                );
            }
            if r.restored.is_empty() && r.removed.is_empty() {
                println!("nothing to restore: every file already matches the backup");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `kubecert demo-pki`.
fn demo_pki_cmd(args: DemoPkiArgs) -> Result<ExitCode> {
    let DemoPkiArgs {
        dir,
        nodes,
        expires_in,
        key_algorithm,
        now,
        force,
        kubelet,
    } = args;
    let now = match now {
        Some(s) => timefmt::parse_rfc3339(&s)?,
        None => timefmt::now_unix(),
    };
    let opts = demo::DemoOptions {
        dir,
        nodes,
        leaf_validity: timefmt::parse_duration(&expires_in)?,
        key_algorithm: key_algorithm.parse()?,
        now,
        force,
        kubelet,
    };
    let roots = demo::demo_pki(&opts).context("demo-pki")?;
    for r in roots {
        println!("[demo-pki] wrote {}", r.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `kubecert csr export`.
fn csr_export_cmd(args: CsrExportArgs) -> Result<ExitCode> {
    let CsrExportArgs {
        names,
        csr_dir,
        cert_dir,
        kubeconfig_dir,
        external_etcd,
        reuse_key,
        key_algorithm,
        force,
        request_usages,
        output,
    } = args;
    let r = csr::export(&CsrExportParams {
        names,
        csr_dir: path_str(&csr_dir),
        location: location(&cert_dir, &kubeconfig_dir, external_etcd),
        reuse_key,
        key_algorithm: key_algorithm.parse()?,
        force,
        request_usages,
    })?;
    match output {
        TextJson::Text => print(&csr::render_export_text(&r))?,
        TextJson::Json => print(&render::json(&r)?)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `kubecert csr import`.
fn csr_import_cmd(args: CsrImportArgs) -> Result<ExitCode> {
    let CsrImportArgs {
        names,
        csr_dir,
        cert_dir,
        kubeconfig_dir,
        external_etcd,
        dry_run,
        now,
        backup_dir,
        output,
    } = args;
    let r = csr::import(&CsrImportParams {
        names,
        csr_dir: path_str(&csr_dir),
        location: location(&cert_dir, &kubeconfig_dir, external_etcd),
        dry_run,
        now,
        backup_dir: backup_dir.as_deref().map(path_str),
    })?;
    match output {
        TextJson::Text => print(&csr::render_import_text(&r))?,
        TextJson::Json => print(&render::json(&r)?)?,
    }
    if r.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: csr import refused; nothing was changed");
        Ok(ExitCode::from(1))
    }
}

/// `renew --use-api` (the certificates API), when built with the `k8s` feature.
fn renew_use_api(
    opts: renew::RenewOptions,
    kubeconfig: Option<PathBuf>,
    signer_name: Option<String>,
    timeout: Option<String>,
    output: TextJson,
) -> Result<ExitCode> {
    #[cfg(feature = "k8s")]
    {
        kubeapi::renew_use_api(
            opts,
            kubeconfig,
            signer_name,
            timeout.as_deref().unwrap_or("5m"),
            output,
        )
    }
    #[cfg(not(feature = "k8s"))]
    {
        let _ = (opts, kubeconfig, signer_name, timeout, output);
        anyhow::bail!("--use-api: kubecert was built without the k8s feature")
    }
}

/// Flags of `kubecert serve`.
#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Serve newline-delimited JSON-RPC on stdin/stdout (the caller's own rights apply).
    #[arg(long, conflicts_with_all = ["socket", "group", "allow_uid", "allow_write_uid"])]
    stdio: bool,
    /// Unix socket path (JSON-RPC over HTTP/1.1).
    #[arg(long, default_value = kubecert::rpc::unix::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Group whose members may call read methods (socket becomes 0660, group-owned).
    #[arg(long)]
    group: Option<String>,
    /// Uid that may call read methods (repeatable).
    #[arg(long, value_name = "UID")]
    allow_uid: Vec<u32>,
    /// Uid that may call mutating methods as well (repeatable).
    #[arg(long, value_name = "UID")]
    allow_write_uid: Vec<u32>,
    /// Largest request accepted (a stdio line or an HTTP body), in bytes.
    #[arg(long, default_value_t = kubecert::rpc::DEFAULT_MAX_REQUEST_BYTES)]
    max_request_bytes: usize,
    /// Largest batch (request objects in one array); a longer one gets -31008 and nothing runs.
    #[arg(long, default_value_t = kubecert::rpc::wire::DEFAULT_MAX_BATCH)]
    max_batch: usize,
    /// Bound of the responses to one request or batch, in bytes (over it: -31008).
    #[arg(long, default_value_t = kubecert::rpc::wire::DEFAULT_MAX_RESPONSE_BYTES)]
    max_response_bytes: usize,
    /// Socket: a request (headers and body) must arrive within this time of its first byte.
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    request_timeout: String,
    /// Close a socket connection with no request in flight after this long.
    #[arg(long, default_value = "60s", value_parser = duration_arg)]
    idle_timeout: String,
    /// Socket connections served at once (more wait in the listen backlog).
    #[arg(long, default_value_t = 1024)]
    max_connections: u32,
    /// On SIGTERM/SIGINT, wait this long for in-flight calls.
    #[arg(long, default_value = "60s", value_parser = duration_arg)]
    shutdown_timeout: String,
    /// The PKI dir served: absent `cert_dir` params mean this, and socket callers other than
    /// root (and the agent's own uid) may pass no other.
    #[arg(long, default_value = kubecert::pki::DEFAULT_CERT_DIR)]
    cert_dir: PathBuf,
    /// The kubeconfig dir served (admin.conf & co).
    #[arg(long, default_value = kubecert::pki::DEFAULT_KUBECONFIG_DIR)]
    kubeconfig_dir: PathBuf,
    /// The kubelet PKI dir served.
    #[arg(long, default_value = kubecert::pki::DEFAULT_KUBELET_PKI)]
    kubelet_pki: PathBuf,
    /// The kubelet config served (the kubelet's endpoint in the served proof).
    #[arg(long, default_value = kubecert::ops::endpoints::DEFAULT_KUBELET_CONFIG)]
    kubelet_config: PathBuf,
    /// Where backups go and the only place restore reads them from [default:
    /// <cert-dir>/../kubecert-backup].
    #[arg(long)]
    backup_root: Option<PathBuf>,
    /// The scheduled renewal's state file `metrics` reads [default:
    /// <cert-dir>/../kubecert-state.json].
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// The CSR dir of csr-export/csr-import [default: none, so only root may pass one].
    #[arg(long)]
    csr_dir: Option<PathBuf>,
    /// node_exporter's textfile dir `metrics` may write [default: none, so only root may
    /// pass one].
    #[arg(long)]
    textfile_dir: Option<PathBuf>,
    /// Kubeconfig `approve` reaches the API server with [default: <kubeconfig-dir>/admin.conf].
    #[arg(long)]
    api_kubeconfig: Option<PathBuf>,
    /// Policy file of `approve` [default: none, the built-in policy].
    #[arg(long)]
    approve_policy: Option<PathBuf>,
    /// The kubeadm config file `check`/`metrics` with `drift` may read [default: none, so
    /// only root may pass one].
    #[arg(long)]
    kubeadm_config: Option<PathBuf>,
}

impl ServeArgs {
    /// The roots the agent serves.
    fn roots(&self) -> kubecert::confine::Roots {
        use kubecert::confine::{normalize, Roots};
        let mut r = Roots::for_dirs(&self.cert_dir, &self.kubeconfig_dir);
        r.kubelet_pki = normalize(&self.kubelet_pki);
        r.kubelet_config = normalize(&self.kubelet_config);
        let set = |v: &Option<PathBuf>, d: &mut PathBuf| {
            if let Some(v) = v {
                *d = normalize(v);
            }
        };
        set(&self.backup_root, &mut r.backup_root);
        set(&self.state_file, &mut r.state_file);
        set(&self.api_kubeconfig, &mut r.api_kubeconfig);
        r.csr_dir = self.csr_dir.as_deref().map(normalize);
        r.textfile_dir = self.textfile_dir.as_deref().map(normalize);
        r.approve_policy = self.approve_policy.as_deref().map(normalize);
        r.kubeadm_config = self.kubeadm_config.as_deref().map(normalize);
        r
    }
}

fn serve(a: ServeArgs) -> Result<ExitCode> {
    use kubecert::rpc::{stdio, unix, wire};
    let roots = a.roots();
    let limits = wire::Limits {
        max_batch: a.max_batch.max(1),
        max_response_bytes: a.max_response_bytes,
    };
    if a.stdio {
        stdio::run(
            stdio::StdioOptions {
                max_request_bytes: a.max_request_bytes,
                limits,
            },
            roots,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let secs = |s: &str| -> Result<std::time::Duration> {
        let n = timefmt::parse_duration(s)?;
        Ok(std::time::Duration::from_secs(n.max(1).unsigned_abs()))
    };
    let opts = unix::SocketOptions {
        path: a.socket,
        group: a.group,
        allow_uids: a.allow_uid,
        allow_write_uids: a.allow_write_uid,
        max_request_bytes: a.max_request_bytes,
        limits,
        request_timeout: secs(&a.request_timeout)?,
        max_connections: a.max_connections,
        idle_timeout: secs(&a.idle_timeout)?,
        shutdown_timeout: secs(&a.shutdown_timeout)?,
        roots,
    };
    unix::run(opts, systemd_listener()?)?;
    Ok(ExitCode::SUCCESS)
}

/// systemd socket activation (sd_listen_fds(3)): when LISTEN_PID is this process and
/// LISTEN_FDS >= 1, fd 3 is the listening socket. Taking ownership of a raw fd needs
/// `unsafe`; the library forbids unsafe code, so this one block lives in the binary (no
/// extra crate such as `listenfd` is needed for a single fd).
fn systemd_listener() -> Result<Option<std::os::unix::net::UnixListener>> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        == Some(std::process::id());
    let fds = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    if !ours || fds < 1 {
        return Ok(None);
    }
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    // SAFETY: systemd passed fd 3 to this very process (LISTEN_PID checked above) and nothing
    // else in the process owns it; ownership moves into the listener exactly once.
    let fd = unsafe { OwnedFd::from_raw_fd(3) };
    let l = std::os::unix::net::UnixListener::from(fd);
    l.local_addr()
        .context("systemd socket activation: fd 3 is not a unix socket")?;
    Ok(Some(l))
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_logging(cli.log_format, cli.verbose);
    match run(cli) {
        Ok(c) => c,
        Err(e) => {
            // The chain, each cause once (library errors never repeat their source), scrubbed.
            eprintln!("error: {}", kubecert::error::scrub(&format!("{e:#}")));
            match e.downcast_ref::<kubecert::Error>() {
                Some(kubecert::Error::ClockSkew { .. }) => ExitCode::from(5),
                _ => ExitCode::from(1),
            }
        }
    }
}
