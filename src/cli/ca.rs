//! Flags of `kubecert ca check|renew|export|install`: thin faces over [`kubecert::ca`],
//! building the same params as the JSON-RPC methods `ca-check`, `ca-renew`, `ca-export`
//! and `ca-install`. Exit codes: 0 ok; 1 error (nothing written); 2 usage; `ca check`: 4 when a CA is
//! missing, unreadable or expired, or an inventory certificate is not signed by its CA.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use kubecert::ca::{self, CaCheckParams, CaExportParams, CaInstallParams, CaRenewParams};
use kubecert::render;

use super::{duration_arg, location, path_str, print, TextJson};

/// Where the PKI is (the same flags as `renew`).
#[derive(Args, Debug)]
pub struct Where {
    /// PKI dir.
    #[arg(long, default_value = kubecert::pki::DEFAULT_CERT_DIR)]
    cert_dir: PathBuf,
    /// Kubeconfig dir.
    #[arg(long, default_value = kubecert::pki::DEFAULT_KUBECONFIG_DIR)]
    kubeconfig_dir: PathBuf,
    /// Treat etcd as external (no etcd-ca).
    #[arg(long)]
    external_etcd: bool,
}

impl Where {
    fn location(&self) -> kubecert::pki::PkiLocation {
        location(&self.cert_dir, &self.kubeconfig_dir, self.external_etcd)
    }
}

/// `kubecert ca ...`.
#[derive(Subcommand, Debug)]
pub enum CaCmd {
    /// Each CA: expiry, key algorithm, join hash (sha256 of the SubjectPublicKeyInfo), the
    /// certificates it signed and the trust bundles (CA files, kubeconfigs) that hold it.
    Check {
        #[command(flatten)]
        at: Where,
        /// Fixed clock (RFC 3339).
        #[arg(long)]
        now: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
        output: TextJson,
    },
    /// Re-issue CAs with the same key, subject and SKI (new serial and validity) and rewrite
    /// the certificate-authority-data of the node's kubeconfigs, in one transaction.
    Renew {
        /// ca, front-proxy-ca, etcd-ca (default: every CA of the layout).
        names: Vec<String>,
        #[command(flatten)]
        at: Where,
        /// Validity of the renewed CA.
        #[arg(long, default_value = "87600h", value_parser = duration_arg)]
        validity: String,
        /// Print what would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Backup root (default <cert-dir>/../kubecert-backup).
        #[arg(long)]
        backup_dir: Option<PathBuf>,
        /// Fixed clock (RFC 3339).
        #[arg(long)]
        now: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
        output: TextJson,
    },
    /// Staged rotation to a new key, one phase: stage (trust old+new), promote (re-sign every
    /// leaf with the new CA, which becomes the signing CA), distrust (trust new only).
    /// `--rollback` undoes the phase. The phase is derived from the files.
    Rotate {
        /// ca, front-proxy-ca, etcd-ca.
        name: String,
        /// stage, promote or distrust.
        #[arg(long, value_parser = ["stage", "promote", "distrust"])]
        phase: String,
        /// Undo the phase (stage -> none, promote -> staged, distrust -> promoted).
        #[arg(long)]
        rollback: bool,
        #[command(flatten)]
        at: Where,
        /// Validity of the new CA stage makes.
        #[arg(long, default_value = "87600h", value_parser = duration_arg)]
        validity: String,
        /// Admin kubeconfig: for `ca`, update the cluster-info ConfigMap in kube-public with the
        /// new bundle after the files are committed (resourceVersion-checked).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Print what would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Backup root (default <cert-dir>/../kubecert-backup).
        #[arg(long)]
        backup_dir: Option<PathBuf>,
        /// kubelet PKI dir: promote of `ca` re-issues kubelet.conf's client certificate file
        /// when it is this dir's kubelet-client-current.pem.
        #[arg(long, default_value = "/var/lib/kubelet/pki")]
        kubelet_pki: PathBuf,
        /// Fixed clock (RFC 3339).
        #[arg(long)]
        now: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
        output: TextJson,
    },
    /// Write a CA certificate (never its key) to a file, for `ca install` on the other nodes.
    Export {
        /// ca, front-proxy-ca, etcd-ca.
        name: String,
        /// The file to write (mode 0644).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        at: Where,
    },
    /// Install a CA certificate renewed on another node: it must have this node's CA key,
    /// subject and SKI, be a self-signed CA valid now. Same transaction as `ca renew`.
    Install {
        /// ca, front-proxy-ca, etcd-ca.
        name: String,
        /// The PEM file `ca export` wrote.
        file: PathBuf,
        #[command(flatten)]
        at: Where,
        /// Print what would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Backup root (default <cert-dir>/../kubecert-backup).
        #[arg(long)]
        backup_dir: Option<PathBuf>,
        /// Fixed clock (RFC 3339).
        #[arg(long)]
        now: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = TextJson::Text)]
        output: TextJson,
    },
}

fn out(output: TextJson, text: String, r: &impl serde::Serialize) -> Result<()> {
    match output {
        TextJson::Text => print(&text),
        TextJson::Json => print(&render::json(r)?),
    }
}

/// Runs one `ca` subcommand.
pub fn run(cmd: CaCmd) -> Result<ExitCode> {
    match cmd {
        CaCmd::Check { at, now, output } => {
            let r = ca::check(&CaCheckParams {
                location: at.location(),
                now,
            })?;
            out(output, ca::render_check(&r), &r)?;
            let failures = ca::failures(&r);
            if !failures.is_empty() {
                for f in failures {
                    eprintln!("error: {f}");
                }
                return Ok(ExitCode::from(4));
            }
        }
        CaCmd::Renew {
            names,
            at,
            validity,
            dry_run,
            backup_dir,
            now,
            output,
        } => {
            let r = ca::renew(&CaRenewParams {
                location: at.location(),
                cas: names,
                validity: Some(validity),
                dry_run,
                now,
                backup_dir: backup_dir.as_deref().map(path_str),
            })?;
            out(output, ca::render_renew(&r), &r)?;
        }
        CaCmd::Rotate {
            name,
            phase,
            rollback,
            at,
            validity,
            kubeconfig,
            dry_run,
            backup_dir,
            kubelet_pki,
            now,
            output,
        } => {
            let phase = match phase.as_str() {
                "stage" => ca::rotate::Phase::Stage,
                "promote" => ca::rotate::Phase::Promote,
                _ => ca::rotate::Phase::Distrust,
            };
            #[cfg(feature = "k8s")]
            let rotate = kubecert::kubeapi::clusterinfo::rotate;
            #[cfg(not(feature = "k8s"))]
            let rotate = ca::rotate::rotate;
            let r = rotate(&ca::rotate::CaRotateParams {
                location: at.location(),
                ca: name,
                phase,
                rollback,
                dry_run,
                validity: Some(validity),
                kubeconfig: kubeconfig.as_deref().map(path_str),
                now,
                backup_dir: backup_dir.as_deref().map(path_str),
                kubelet_pki: Some(path_str(&kubelet_pki)),
            });
            let r = match r {
                // The files are committed, cluster-info is not: show the result, then fail.
                Err(kubecert::Error::ClusterInfo { ref result, .. }) => {
                    if let Ok(done) =
                        serde_json::from_value::<ca::rotate::CaRotateResult>((**result).clone())
                    {
                        out(output, ca::rotate::render(&done), &done)?;
                    }
                    r?
                }
                r => r?,
            };
            out(output, ca::rotate::render(&r), &r)?;
        }
        CaCmd::Export {
            name,
            out: file,
            at,
        } => {
            let r = ca::export(&CaExportParams {
                location: at.location(),
                ca: name,
            })?;
            kubecert::pki::store::write_atomic(&file, r.pem.as_bytes(), 0o644)?;
            print(&format!(
                "{} (serial {}, NotAfter {}, join hash {}) written to {}\n",
                r.name,
                r.serial,
                r.not_after,
                r.spki_sha256,
                file.display()
            ))?;
        }
        CaCmd::Install {
            name,
            file,
            at,
            dry_run,
            backup_dir,
            now,
            output,
        } => {
            let bytes = kubecert::pki::fsread::read(&file)?;
            let pem = String::from_utf8(bytes)
                .with_context(|| format!("{} is not a PEM text file", file.display()))?;
            let r = ca::install(&CaInstallParams {
                location: at.location(),
                ca: name,
                pem,
                dry_run,
                now,
                backup_dir: backup_dir.as_deref().map(path_str),
            })?;
            out(output, ca::render_renew(&r), &r)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
