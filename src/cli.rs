//! Command-line flags ("low args") and their conversion into library params. Exit codes:
//! 0 success; 1 error; 2 usage error; `check`: 3 when something expires within
//! `--warn-within`, 4 within `--fail-within` (or a certificate is unusable and a threshold
//! was given).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use kubecert::check::{self, CheckParams};
use kubecert::renew::{self, RenewParams, RestoreParams};
use kubecert::{demo, kubelet, render, timefmt};

#[derive(Parser, Debug)]
#[command(
    name = "kubecert",
    version,
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
        #[arg(long, default_value = "/etc/kubernetes")]
        kubeconfig_dir: PathBuf,
        /// PKI dir (ca.crt, and the lock).
        #[arg(long, default_value = "/etc/kubernetes/pki")]
        cert_dir: PathBuf,
        /// kubelet PKI dir.
        #[arg(long, default_value = "/var/lib/kubelet/pki")]
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
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Renew certificates: `all` or names (apiserver, etcd-peer, admin.conf, ...).
    Renew {
        /// `all` or inventory names.
        #[arg(required = true)]
        names: Vec<String>,
        /// PKI dir.
        #[arg(long, default_value = "/etc/kubernetes/pki")]
        cert_dir: PathBuf,
        /// Kubeconfig dir.
        #[arg(long, default_value = "/etc/kubernetes")]
        kubeconfig_dir: PathBuf,
        /// Renew only what expires within this duration (default: unconditionally, like kubeadm).
        #[arg(long)]
        within: Option<String>,
        /// Print the plan, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// same|rsa-2048|rsa-3072|rsa-4096|ecdsa-p256|ecdsa-p384.
        #[arg(long, default_value = "same")]
        key_algorithm: String,
        /// Validity of renewed certificates.
        #[arg(long, default_value = "8760h")]
        validity: String,
        /// Backup root (default <cert-dir>/../kubecert-backup).
        #[arg(long)]
        backup_dir: Option<PathBuf>,
        /// Fixed clock (RFC 3339).
        #[arg(long)]
        now: Option<String>,
        /// Sign even when the CA has expired.
        #[arg(long)]
        allow_expired_ca: bool,
        /// Treat etcd as external.
        #[arg(long)]
        external_etcd: bool,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
        output: TextJson,
    },
    /// Put a backup made by renew back in place.
    Restore {
        /// The backup dir renew reported.
        backup_dir: PathBuf,
        /// PKI dir (its lock serializes the restore).
        #[arg(long, default_value = "/etc/kubernetes/pki")]
        cert_dir: PathBuf,
        /// Kubeconfig dir.
        #[arg(long, default_value = "/etc/kubernetes")]
        kubeconfig_dir: PathBuf,
        /// Report only.
        #[arg(long)]
        dry_run: bool,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
        output: TextJson,
    },
    /// kubelet.conf diagnosis and repair.
    KubeletConf {
        #[command(subcommand)]
        cmd: KubeletConfCmd,
    },
    /// Check certificate expiration (output identical to `kubeadm certs check-expiration`).
    Check {
        /// PKI dir.
        #[arg(long, default_value = "/etc/kubernetes/pki")]
        cert_dir: PathBuf,
        /// Dir with admin.conf, controller-manager.conf, scheduler.conf, super-admin.conf.
        #[arg(long, default_value = "/etc/kubernetes")]
        kubeconfig_dir: PathBuf,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = CheckOutput::Text)]
        output: CheckOutput,
        /// Fixed clock (RFC 3339), for reproducible output.
        #[arg(long)]
        now: Option<String>,
        /// Exit 3 when a certificate expires within this duration (e.g. 30d, 720h).
        #[arg(long)]
        warn_within: Option<String>,
        /// Exit 4 when a certificate expires within this duration.
        #[arg(long)]
        fail_within: Option<String>,
        /// Treat etcd as external (default: auto-detect from <cert-dir>/etcd).
        #[arg(long)]
        external_etcd: bool,
        /// kubelet PKI dir (for the kubelet.conf diagnosis).
        #[arg(long, default_value = "/var/lib/kubelet/pki")]
        kubelet_pki: PathBuf,
    },
    /// Make a kubeadm-like demo PKI.
    DemoPki {
        /// Output dir (mimics /etc/kubernetes; with --nodes N, DIR/node-K for each node).
        dir: PathBuf,
        /// Number of control-plane nodes sharing the CAs.
        #[arg(long, default_value_t = 1)]
        nodes: u32,
        /// Leaf validity (e.g. 8760h, 20d).
        #[arg(long, default_value = "8760h")]
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
    },
}

fn init_logging(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
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

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Renew {
            names,
            cert_dir,
            kubeconfig_dir,
            within,
            dry_run,
            key_algorithm,
            validity,
            backup_dir,
            now,
            allow_expired_ca,
            external_etcd,
            output,
        } => {
            let params = RenewParams {
                names,
                cert_dir: Some(path_str(&cert_dir)),
                kubeconfig_dir: Some(path_str(&kubeconfig_dir)),
                external_etcd: external_etcd.then_some(true),
                within,
                dry_run,
                key_algorithm: key_algorithm.parse().map_err(anyhow::Error::msg)?,
                validity: Some(validity),
                backup_dir: backup_dir.as_deref().map(path_str),
                now,
                allow_expired_ca,
            };
            let opts = params.resolve()?;
            let result = renew::renew(&opts)?;
            match output {
                TextJson::Text => print(&renew::render_text(&result, opts.all))?,
                TextJson::Json => print(&render::json(&result))?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Restore {
            backup_dir,
            cert_dir,
            kubeconfig_dir,
            dry_run,
            output,
        } => {
            let r = renew::restore(&RestoreParams {
                backup_dir: path_str(&backup_dir),
                cert_dir: Some(path_str(&cert_dir)),
                kubeconfig_dir: Some(path_str(&kubeconfig_dir)),
                dry_run,
            })?;
            match output {
                TextJson::Json => print(&render::json(&r))?,
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
                    if r.restored.is_empty() {
                        println!("nothing to restore: every file already matches the backup");
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
                TextJson::Json => print(&render::json(&r))?,
                TextJson::Text => println!("[kubelet-conf] {}: {}", r.action, r.reason),
            }
            Ok(if r.action == "refused" {
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
        } => {
            let params = CheckParams {
                cert_dir: Some(path_str(&cert_dir)),
                kubeconfig_dir: Some(path_str(&kubeconfig_dir)),
                external_etcd: external_etcd.then_some(true),
                now,
                warn_within,
                fail_within,
                kubelet_pki: Some(path_str(&kubelet_pki)),
            };
            let opts = params.resolve()?;
            let report = check::check(&opts);
            match output {
                CheckOutput::Text => {
                    print(&render::check_text(&report))?;
                    for n in render::check_notes(&report) {
                        eprintln!("{n}");
                    }
                }
                CheckOutput::Json => print(&render::json(&report))?,
                CheckOutput::Yaml => print(&render::yaml(&report))?,
            }
            let code = report.status.as_ref().map(|s| s.exit_code).unwrap_or(0);
            Ok(ExitCode::from(match code {
                2 => 4,
                1 => 3,
                _ => 0,
            }))
        }
        Cmd::DemoPki {
            dir,
            nodes,
            expires_in,
            key_algorithm,
            now,
            force,
        } => {
            let now = match now {
                Some(s) => timefmt::parse_rfc3339(&s).map_err(anyhow::Error::msg)?,
                None => timefmt::now_unix(),
            };
            let opts = demo::DemoOptions {
                dir,
                nodes,
                leaf_validity: timefmt::parse_duration(&expires_in).map_err(anyhow::Error::msg)?,
                key_algorithm: key_algorithm.parse().map_err(anyhow::Error::msg)?,
                now,
                force,
            };
            let roots = demo::demo_pki(&opts).context("demo-pki")?;
            for r in roots {
                println!("[demo-pki] wrote {}", r.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
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
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
