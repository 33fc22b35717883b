//! External CA: `csr export` and a validated `csr import`.
//!
//! - [`export`] writes `<name>.csr` + `<name>.key` for each selected certificate, flat and by
//!   inventory name (`apiserver.csr`, `etcd-server.csr`, `admin.conf.csr`) exactly as kubeadm
//!   1.15's `renew --csr-only --csr-dir` did. The CSR carries the existing certificate's subject
//!   (verbatim DER) and SANs and, like kubeadm, requests no usages unless asked to. It needs no
//!   CA key and never touches the PKI: a target that would land on a live key, certificate or
//!   kubeconfig stops the command before anything is written.
//! - [`import`] takes each signed `<name>.crt` (optionally followed by its chain) with its
//!   `<name>.key` from the CSR dir, checks it against the PKI and against the certificate it
//!   replaces (issuing CA by signature, key match, subject DER, SAN sets, EKU for the row's
//!   role, not a CA, valid now, not outliving its CA), and installs every accepted certificate
//!   through the same locked, journaled, backed-up transaction as `renew` — or, when anything
//!   is refused, installs nothing and says exactly what is wrong with each file.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pki::cert::{self, Cert, CertInfo, KeyFormat, PrivateKey};
use crate::pki::inventory::{self, CaId, Component, Entry, Location};
use crate::pki::issue::{self, KeyAlgorithm, LeafSpec};
use crate::pki::kubeconfig::{Kubeconfig, Source};
use crate::pki::store::{self, Write_};
use crate::pki::{self, Cas, Found, KeyOrigin, Layout, Material, PkiLocation};
use crate::renew::{self, CertSnapshot};
use crate::timefmt;

const LOCK_TIMEOUT: Duration = Duration::from_secs(300);
const TMP_SUFFIX: &str = ".kubecert-new";

// ---------------------------------------------------------------------------------------------
// Shared
// ---------------------------------------------------------------------------------------------

fn csr_dir_of(s: &str) -> Result<PathBuf> {
    if s.trim().is_empty() {
        // kubeadm 1.15's message for `--csr-only` without `--csr-dir`.
        return Err(Error::InvalidArgument(
            "please provide a path where CSR request should be stored (--csr-dir)".into(),
        ));
    }
    Ok(PathBuf::from(s))
}

/// `<dir>/<name>.<ext>`, flat, by inventory name (as kubeadm 1.15 named them).
pub fn file_in(dir: &Path, e: &Entry, ext: &str) -> PathBuf {
    dir.join(format!("{}.{ext}", e.name))
}

fn exists_nofollow(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// A private key as PEM in the encoding it was loaded from (PKCS#1 `RSA PRIVATE KEY`, SEC1
/// `EC PRIVATE KEY` or PKCS#8 `PRIVATE KEY`), the DER kept verbatim.
fn key_pem_same_format(k: &PrivateKey) -> String {
    let label = match k.format {
        KeyFormat::Pkcs1 => "RSA PRIVATE KEY",
        KeyFormat::Sec1 => "EC PRIVATE KEY",
        KeyFormat::Pkcs8 => "PRIVATE KEY",
    };
    issue::pem_lf(&::pem::Pem::new(label, k.pair.serialized_der().to_vec()))
}

// ---------------------------------------------------------------------------------------------
// Live-file collisions
// ---------------------------------------------------------------------------------------------

fn push_kubeconfig(v: &mut Vec<PathBuf>, path: PathBuf) {
    if let Ok(kc) = Kubeconfig::load(&path) {
        for s in [&kc.client_cert, &kc.client_key, &kc.ca] {
            if let Source::File(f) = s {
                v.push(f.clone());
            }
        }
    }
    v.push(path);
}

/// Every file a cluster of this layout uses: the `.crt`/`.key` of every inventory row (CAs
/// and etcd rows included, whatever the etcd mode), `sa.key`/`sa.pub`, every kubeconfig
/// (kubelet.conf too) and the files they reference.
pub fn live_files(layout: &Layout) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in inventory::INVENTORY.iter() {
        match e.location {
            Location::Pki { base } => {
                v.push(layout.pki_crt(base));
                v.push(layout.pki_key(base));
            }
            Location::Kubeconfig { file } => {
                push_kubeconfig(&mut v, layout.kubeconfig_dir.join(file))
            }
        }
    }
    v.push(layout.pki_key("sa"));
    v.push(layout.cert_dir.join("sa.pub"));
    push_kubeconfig(&mut v, layout.kubeconfig_dir.join("kubelet.conf"));
    v
}

/// An absolute path with symlinks in its existing part resolved.
fn resolved(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    if let Ok(c) = fs::canonicalize(&abs) {
        return c;
    }
    match (abs.parent(), abs.file_name()) {
        (Some(d), Some(n)) => fs::canonicalize(d)
            .map(|d| d.join(n))
            .unwrap_or_else(|_| abs.clone()),
        _ => abs,
    }
}

/// Whether `a` and `b` name the same file (same resolved path, or same inode).
fn same_file(a: &Path, b: &Path) -> bool {
    if resolved(a) == resolved(b) {
        return true;
    }
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The first of `paths` that is (or would land on) a live file, with that live file.
pub fn find_collision(layout: &Layout, paths: &[PathBuf]) -> Option<(PathBuf, PathBuf)> {
    let live = live_files(layout);
    paths.iter().find_map(|p| {
        live.iter()
            .find(|l| same_file(p, l))
            .map(|l| (p.clone(), l.clone()))
    })
}

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

/// Parameters of `csr export` (CLI flags and JSON-RPC params of `csr-export`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CsrExportParams {
    /// Inventory names, or `["all"]` (the default).
    #[serde(default)]
    pub names: Vec<String>,
    /// Where `<name>.csr` and `<name>.key` go (created 0700): a directory of its own, never
    /// one that holds live files of the cluster (the cert dir, `pki/etcd`, the kubeconfig dir).
    pub csr_dir: String,
    /// Where the PKI is: `cert_dir`, `kubeconfig_dir`, `external_etcd` (top-level params).
    #[serde(flatten)]
    pub location: PkiLocation,
    /// Reuse the certificate's current private key instead of generating one.
    #[serde(default)]
    pub reuse_key: bool,
    /// Algorithm of new keys (default `same` as the current key); not with `reuse_key`.
    #[serde(default)]
    pub key_algorithm: KeyAlgorithm,
    /// Replace existing `<name>.csr`/`<name>.key` files in the CSR dir (never live files).
    #[serde(default)]
    pub force: bool,
    /// Put the key usages and extended key usages into the CSR (kubeadm requests none).
    #[serde(default)]
    pub request_usages: bool,
}

/// What `csr export` did for one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExportAction {
    /// A CSR and key were written.
    Exported,
    /// `<name>.csr` or `<name>.key` already existed and was kept (no `force`).
    Kept,
    /// The certificate is absent, so there is nothing to base a CSR on.
    Missing,
}

/// One certificate's outcome of `csr export`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExportItem {
    /// Inventory name.
    pub name: String,
    /// What happened.
    pub action: ExportAction,
    /// Why / details.
    pub reason: String,
    /// The CA that must sign the CSR.
    pub ca_name: String,
    /// Whether that CA's key is absent from the PKI (external CA).
    pub externally_managed: bool,
    /// Extended key usages the signed certificate must carry (what `csr import` requires).
    pub required_usages: Vec<String>,
    /// The CSR file.
    pub csr_path: String,
    /// The key file.
    pub key_path: String,
    /// Subject of the request.
    pub subject: Option<String>,
    /// DNS SANs of the request.
    pub dns_names: Vec<String>,
    /// IP SANs of the request.
    pub ip_addresses: Vec<String>,
    /// Usages put into the request (empty unless `request_usages`).
    pub requested_usages: Vec<String>,
    /// Algorithm of the key in `keyPath`.
    pub key_algorithm: Option<String>,
    /// Whether the current key was reused.
    pub key_reused: bool,
}

/// Result of `csr export`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CsrExportResult {
    /// The CSR dir.
    pub csr_dir: String,
    /// Per certificate.
    pub certificates: Vec<ExportItem>,
    /// Whether any file was written.
    pub changed: bool,
}

struct Output {
    path: PathBuf,
    contents: Vec<u8>,
}

/// Builds the CSR (DER) and key PEM for one certificate.
fn build_request(
    e: &Entry,
    found: &Found,
    p: &CsrExportParams,
    item: &mut ExportItem,
) -> Result<(Vec<u8>, String)> {
    let info = &found.cert.info;
    let issue_err = |reason: String| Error::Issue {
        cert: e.name.to_string(),
        reason,
    };
    let mut spec = LeafSpec::from_existing(info, 0, 0);
    spec.normalize();
    for u in e.role.ext_key_usages() {
        if !spec.ext_key_usage.iter().any(|x| x == u) {
            spec.ext_key_usage.push((*u).to_string());
        }
    }
    let key = if p.reuse_key {
        let k = found.load_key()?;
        if !k.matches(info) {
            let path = match &found.key {
                KeyOrigin::File(f) | KeyOrigin::Embedded(f) => f.display().to_string(),
                KeyOrigin::Absent => found.cert_path.display().to_string(),
            };
            return Err(Error::Validation {
                cert: e.name.to_string(),
                reason: format!(
                    "the current key ({path}) does not match the current certificate; cannot reuse it"
                ),
            });
        }
        item.key_reused = true;
        item.key_algorithm = Some(info.key_algorithm.to_string());
        k
    } else {
        let alg = p.key_algorithm.resolve(&info.key_algorithm);
        let (key, _pem) = issue::new_key(alg).map_err(|e| issue_err(e.to_string()))?;
        item.key_algorithm = Some(alg.display().to_string());
        key
    };
    let der =
        issue::csr_der(&spec, &key.pair, p.request_usages).map_err(|e| issue_err(e.to_string()))?;
    // Never hand out a request we would not accept ourselves.
    {
        use x509_parser::certification_request::X509CertificationRequest;
        use x509_parser::prelude::FromDer;
        let (_, req) = X509CertificationRequest::from_der(&der)
            .map_err(|e| issue_err(format!("the CSR does not parse: {e}")))?;
        req.verify_signature()
            .map_err(|e| issue_err(format!("the CSR signature does not verify: {e}")))?;
        if req.certification_request_info.subject.as_raw() != info.subject_der.as_slice() {
            return Err(issue_err(
                "the CSR subject differs from the certificate's".into(),
            ));
        }
    }
    item.subject = Some(info.subject.clone());
    item.dns_names = spec.dns_names.clone();
    item.ip_addresses = spec.ip_addresses.iter().map(|i| i.to_string()).collect();
    if p.request_usages {
        item.requested_usages = vec!["digitalSignature".into(), "keyEncipherment".into()];
        item.requested_usages
            .extend(spec.ext_key_usage.iter().cloned());
    }
    Ok((der, key_pem_same_format(&key)))
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Writes a 0600 file durably via a temp file and a rename.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    store::refuse_symlink(&tmp)?;
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&tmp, e)),
    }
    {
        let mut f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Writes a CSR and a private key for each selected certificate into the CSR dir. Nothing is
/// written unless every request could be built, and nothing in the PKI is ever touched.
pub fn export(p: &CsrExportParams) -> Result<CsrExportResult> {
    let layout = p.location.layout();
    let (entries, _) = renew::select(&p.names, &layout)?;
    let dir = csr_dir_of(&p.csr_dir)?;
    if p.reuse_key && p.key_algorithm != KeyAlgorithm::Same {
        return Err(Error::InvalidArgument(
            "--reuse-key keeps the current key; it cannot be combined with --key-algorithm".into(),
        ));
    }
    if exists_nofollow(&dir) && !dir.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "--csr-dir {} exists and is not a directory",
            dir.display()
        )));
    }
    // Refuse before writing anything: no target may be a live file, none may be a symlink.
    let targets: Vec<PathBuf> = entries
        .iter()
        .flat_map(|e| [file_in(&dir, e, "csr"), file_in(&dir, e, "key")])
        .collect();
    if let Some((target, live)) = find_collision(&layout, &targets) {
        return Err(Error::InvalidArgument(format!(
            "refusing to write {}: it is the live file {} in use by the cluster; pass --csr-dir \
             with a directory of its own (nothing was written)",
            target.display(),
            live.display()
        )));
    }
    // Nor may the CSR dir be a directory the cluster keeps live files in (the cert dir,
    // pki/etcd, the kubeconfig dir): new keys do not belong next to the ones in use.
    let here = resolved(&dir);
    if let Some(live) = live_files(&layout)
        .into_iter()
        .find(|l| exists_nofollow(l) && l.parent().is_some_and(|d| resolved(d) == here))
    {
        return Err(Error::InvalidArgument(format!(
            "refusing --csr-dir {}: it holds live files of the cluster (such as {}); pass \
             --csr-dir with a directory of its own (nothing was written)",
            dir.display(),
            live.display()
        )));
    }
    for t in &targets {
        store::refuse_symlink(t)?;
    }
    let cas = Cas::load(&layout);
    let mut items = Vec::new();
    let mut outputs: Vec<Output> = Vec::new();
    for e in &entries {
        let ca =
            e.ca.ok_or_else(|| Error::UnknownCertificate(e.name.to_string()))?;
        let csr_path = file_in(&dir, e, "csr");
        let key_path = file_in(&dir, e, "key");
        let mut item = ExportItem {
            name: e.name.to_string(),
            action: ExportAction::Missing,
            reason: String::new(),
            ca_name: ca.name().to_string(),
            externally_managed: cas.get(ca).is_some_and(|c| c.externally_managed()),
            required_usages: e
                .role
                .ext_key_usages()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            csr_path: csr_path.display().to_string(),
            key_path: key_path.display().to_string(),
            subject: None,
            dns_names: vec![],
            ip_addresses: vec![],
            requested_usages: vec![],
            key_algorithm: None,
            key_reused: false,
        };
        let found = match pki::load(&layout, e) {
            Material::Missing => {
                item.reason = format!("{} does not exist", layout.primary_path(e).display());
                items.push(item);
                continue;
            }
            Material::Broken(err) => return Err(err),
            Material::Present(f) => f,
        };
        let present: Vec<String> = [&csr_path, &key_path]
            .into_iter()
            .filter(|p| exists_nofollow(p))
            .map(|p| p.display().to_string())
            .collect();
        if !present.is_empty() && !p.force {
            item.action = ExportAction::Kept;
            item.subject = Some(found.cert.info.subject.clone());
            item.reason = format!(
                "{} already exist{}; kept (pass --force to replace)",
                present.join(" and "),
                if present.len() == 1 { "s" } else { "" }
            );
            items.push(item);
            continue;
        }
        let (der, key_pem) = build_request(e, &found, p, &mut item)?;
        item.action = ExportAction::Exported;
        item.reason = if p.reuse_key {
            "CSR for the current key".to_string()
        } else {
            "CSR for a new key".to_string()
        };
        if !present.is_empty() {
            item.reason
                .push_str(&format!("; replaced {}", present.join(" and ")));
        }
        let signed = file_in(&dir, e, "crt");
        if exists_nofollow(&signed) && !p.reuse_key {
            item.reason.push_str(&format!(
                "; {} is now stale (it cannot match the new key)",
                signed.display()
            ));
        }
        outputs.push(Output {
            path: key_path,
            contents: key_pem.into_bytes(),
        });
        outputs.push(Output {
            path: csr_path,
            contents: issue::csr_pem(&der).into_bytes(),
        });
        items.push(item);
    }
    if !outputs.is_empty() {
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| Error::io(&dir, e))?;
        }
        for o in &outputs {
            write_private(&o.path, &o.contents)?;
        }
        sync_dir(&dir)?;
    }
    Ok(CsrExportResult {
        csr_dir: dir.display().to_string(),
        changed: !outputs.is_empty(),
        certificates: items,
    })
}

/// Text output of `csr export`.
pub fn render_export_text(r: &CsrExportResult) -> String {
    let mut s = String::new();
    for i in &r.certificates {
        match i.action {
            ExportAction::Exported => s.push_str(&format!(
                "[csr] {}: wrote {} and {} ({}; sign with {} as a {} certificate: {})\n",
                i.name,
                i.csr_path,
                i.key_path,
                i.reason,
                i.ca_name,
                inventory::find(&i.name).map_or("unknown", |e| e.role.short_name()),
                i.required_usages.join("+"),
            )),
            ExportAction::Kept => s.push_str(&format!("[csr] {}: {}\n", i.name, i.reason)),
            ExportAction::Missing => {
                let long = inventory::find(&i.name)
                    .map(|e| e.long_name)
                    .unwrap_or(i.name.as_str());
                s.push_str(&format!("MISSING! {long}\n"));
            }
        }
    }
    let exported: Vec<&str> = r
        .certificates
        .iter()
        .filter(|i| i.action == ExportAction::Exported)
        .map(|i| i.name.as_str())
        .collect();
    if !exported.is_empty() {
        let names = if exported.len() == r.certificates.len() && exported.len() > 1 {
            "all".to_string()
        } else {
            exported.join(" ")
        };
        s.push_str(&format!(
            "Sign each CSR with its CA, save the certificate as <name>.crt in {}, then run \
             `kubecert csr import {names} --csr-dir {}`.\n",
            r.csr_dir, r.csr_dir
        ));
    } else {
        s.push_str("No file was written.\n");
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------------------------

/// Parameters of `csr import` (CLI flags and JSON-RPC params of `csr-import`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CsrImportParams {
    /// Inventory names, or `["all"]` (the default).
    #[serde(default)]
    pub names: Vec<String>,
    /// Where the signed `<name>.crt` files and their `<name>.key` are.
    pub csr_dir: String,
    /// Where the PKI is: `cert_dir`, `kubeconfig_dir`, `external_etcd` (top-level params).
    #[serde(flatten)]
    pub location: PkiLocation,
    /// Validate and report only; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Fixed clock, RFC 3339 (validity is judged at this instant).
    #[serde(default)]
    pub now: Option<String>,
    /// Where backups go (default `<cert_dir>/../kubecert-backup`).
    #[serde(default)]
    pub backup_dir: Option<String>,
}

/// What `csr import` did for one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ImportAction {
    /// Installed.
    Installed,
    /// Valid; not installed (dry run, or another certificate of the run was refused).
    WouldInstall,
    /// The signed certificate and key are already the ones in use.
    Unchanged,
    /// Not acceptable: see the findings.
    Refused,
    /// No `<name>.crt` in the CSR dir.
    Absent,
}

/// Why a signed certificate was refused: the one finding vocabulary of check, csr and kubeapi.
pub use crate::pki::finding::FindingCode;

/// One thing wrong with a signed certificate.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Machine-readable code.
    pub code: FindingCode,
    /// What exactly is wrong.
    pub message: String,
}

/// One certificate's outcome of `csr import`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImportItem {
    /// Inventory name.
    pub name: String,
    /// kubeadm's long name.
    pub long_name: String,
    /// What happened.
    pub action: ImportAction,
    /// Why.
    pub reason: String,
    /// The CA it must chain to.
    pub ca_name: String,
    /// The signed certificate file.
    pub crt_path: String,
    /// Its key file.
    pub key_path: String,
    /// Everything wrong with it (empty unless refused, or absent when explicitly named).
    pub findings: Vec<Finding>,
    /// The certificate in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<CertSnapshot>,
    /// The signed certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<CertSnapshot>,
    /// Files written (or that would be).
    pub files: Vec<String>,
}

/// Result of `csr import`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CsrImportResult {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The CSR dir.
    pub csr_dir: String,
    /// The backup of every replaced file (null when nothing was written).
    pub backup_dir: Option<String>,
    /// Per certificate.
    pub certificates: Vec<ImportItem>,
    /// Components whose certificates changed (or would) and must restart.
    pub components_to_restart: Vec<Component>,
    /// Whether anything changed (or would, in a dry run).
    pub changed: bool,
    /// What recovery of an interrupted earlier run did, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
}

impl CsrImportResult {
    /// Whether every certificate was acceptable (no findings anywhere).
    pub fn ok(&self) -> bool {
        self.certificates.iter().all(|i| i.findings.is_empty())
    }
}

fn finding(code: FindingCode, message: impl Into<String>) -> Finding {
    Finding {
        code,
        message: message.into(),
    }
}

/// Walks from the leaf to the PKI CA through the certificates that follow it in the file.
/// Returns the chain to install after the leaf: the intermediates in chain order, then the CA
/// and its own issuers once each when the file carried them (never duplicates or strays).
#[allow(clippy::too_many_arguments)]
fn check_chain(
    e: &Entry,
    ca_id: CaId,
    ca: &Cert,
    ca_path: &Path,
    signed: &Cert,
    cas: &Cas,
    now: i64,
    out: &mut Vec<Finding>,
) -> Vec<Vec<u8>> {
    let n = signed.chain.len();
    let mut used = vec![false; n];
    let mut path: Vec<usize> = Vec::new();
    let mut cur: &[u8] = &signed.der;
    let reached = loop {
        if cert::signed_by(cur, &ca.der) {
            break true;
        }
        let next = (0..n).find(|&i| {
            !used[i]
                && signed.chain.get(i).is_some_and(|c| cert::signed_by(cur, c))
                && signed.chain.get(i).map(Vec::as_slice) != Some(cur)
        });
        match next.and_then(|i| signed.chain.get(i).map(|c| (i, c))) {
            Some((i, c)) => {
                used[i] = true;
                path.push(i);
                cur = c;
            }
            None => break false,
        }
    };
    if !reached {
        let msg = if path.is_empty() {
            match cas.signer_of(&signed.der).filter(|o| *o != ca_id) {
                Some(other) => format!(
                    "signed by {} (the {} of this PKI), but {} must be signed by {} ({})",
                    other.name(),
                    other.base_name(),
                    e.name,
                    ca_id.name(),
                    ca_path.display()
                ),
                None => format!(
                    "not signed by {} ({}): its issuer is \"{}\" and its signature does not \
                     verify with the {} key{}",
                    ca_id.name(),
                    ca_path.display(),
                    signed.info.issuer,
                    ca_id.name(),
                    if n > 0 {
                        ", nor with any certificate that follows it in the file"
                    } else {
                        ""
                    }
                ),
            }
        } else {
            format!(
                "the chain in the file ends at \"{}\", which is not signed by {} ({})",
                cert::parse_der(cur).map(|i| i.subject).unwrap_or_default(),
                ca_id.name(),
                ca_path.display()
            )
        };
        out.push(finding(FindingCode::WrongCa, msg));
        return Vec::new();
    }
    for &i in &path {
        let Some(der) = signed.chain.get(i) else {
            continue;
        };
        match cert::parse_der(der) {
            Err(err) => out.push(finding(
                FindingCode::ChainInvalid,
                format!("certificate #{} in the file is invalid: {err}", i + 2),
            )),
            Ok(info) => {
                if !info.is_ca {
                    out.push(finding(
                        FindingCode::ChainInvalid,
                        format!(
                            "intermediate \"{}\" (certificate #{} in the file) is not a CA",
                            info.subject,
                            i + 2
                        ),
                    ));
                }
                if !info.valid_at(now) {
                    out.push(finding(
                        FindingCode::ChainInvalid,
                        format!(
                            "intermediate \"{}\" (certificate #{} in the file) is not valid now \
                             (NotBefore {}, NotAfter {})",
                            info.subject,
                            i + 2,
                            timefmt::rfc3339(info.not_before),
                            timefmt::rfc3339(info.not_after)
                        ),
                    ));
                }
                if signed.info.not_after > info.not_after {
                    out.push(finding(
                        FindingCode::OutlivesCa,
                        format!(
                            "NotAfter {} is after the NotAfter {} of intermediate \"{}\"",
                            timefmt::rfc3339(signed.info.not_after),
                            timefmt::rfc3339(info.not_after),
                            info.subject
                        ),
                    ));
                }
            }
        }
    }
    let mut keep: Vec<Vec<u8>> = path
        .iter()
        .filter_map(|&i| signed.chain.get(i).cloned())
        .collect();
    if signed.chain.contains(&ca.der) {
        keep.push(ca.der.clone());
    }
    // Whatever else follows must be the CA itself or the CA's own issuers.
    let mut cur: &[u8] = &ca.der;
    while let Some(j) = (0..n).find(|&j| {
        !used[j]
            && signed
                .chain
                .get(j)
                .is_some_and(|c| c.as_slice() != cur && cert::signed_by(cur, c))
    }) {
        used[j] = true;
        match signed.chain.get(j) {
            Some(c) => {
                if !keep.contains(c) {
                    keep.push(c.clone());
                }
                cur = c
            }
            None => break,
        }
    }
    for (j, c) in signed.chain.iter().enumerate() {
        if !used.get(j).copied().unwrap_or(true) && *c != ca.der {
            out.push(finding(
                FindingCode::ChainInvalid,
                format!(
                    "certificate #{} in the file (\"{}\") is not part of the chain to {}",
                    j + 2,
                    cert::parse_der(c).map(|i| i.subject).unwrap_or_default(),
                    ca_id.name()
                ),
            ));
        }
    }
    keep
}

/// Whether two subjects (as text) hold the same attributes, ignoring their order.
fn same_attributes(a: &str, b: &str) -> bool {
    let parts = |s: &str| {
        let mut v: Vec<String> = s.split(", ").map(str::to_string).collect();
        v.sort();
        v
    };
    parts(a) == parts(b)
}

fn san_diff(old: &CertInfo, new: &CertInfo) -> Option<String> {
    let (o, n) = (old.san_set(), new.san_set());
    if o == n {
        return None;
    }
    let (missing, added) = cert::san_difference(&o, &n);
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing SAN(s) {}", missing.join(", ")));
    }
    if !added.is_empty() {
        parts.push(format!("unexpected SAN(s) {}", added.join(", ")));
    }
    Some(format!(
        "{} (the SANs must equal those of the certificate it replaces)",
        parts.join("; ")
    ))
}

/// Checks the signed certificate's own attributes (role, CA flag, validity).
fn check_leaf(
    e: &Entry,
    info: &CertInfo,
    ca_id: CaId,
    ca: &CertInfo,
    now: i64,
    out: &mut Vec<Finding>,
) {
    let need = e.role.ext_key_usages();
    let lacking: Vec<&str> = need
        .iter()
        .copied()
        .filter(|u| !info.ext_key_usage.iter().any(|x| x == u))
        .collect();
    if info.ext_key_usage.is_empty() {
        out.push(finding(
            FindingCode::EkuMismatch,
            format!(
                "has no extendedKeyUsage; a {} certificate needs {}",
                e.role.describe(),
                need.join(" and ")
            ),
        ));
    } else if !lacking.is_empty() {
        out.push(finding(
            FindingCode::EkuMismatch,
            format!(
                "extendedKeyUsage is {} but a {} certificate needs {} (missing {})",
                info.ext_key_usage.join(", "),
                e.role.describe(),
                need.join(" and "),
                lacking.join(", ")
            ),
        ));
    }
    if !info.key_usage.is_empty() {
        let mut bad = Vec::new();
        if !info.key_usage.iter().any(|k| k == "digitalSignature") {
            bad.push("lacks digitalSignature, which TLS requires".to_string());
        }
        if info.key_usage.iter().any(|k| k == "keyCertSign") {
            bad.push("includes keyCertSign, which a leaf must not have".to_string());
        }
        if !bad.is_empty() {
            out.push(finding(
                FindingCode::KeyUsage,
                format!(
                    "keyUsage {} {}",
                    info.key_usage.join(", "),
                    bad.join(" and ")
                ),
            ));
        }
    }
    if info.is_ca {
        out.push(finding(
            FindingCode::IsCa,
            "is a CA certificate (basicConstraints CA:TRUE); a leaf certificate is required",
        ));
    }
    if now < info.not_before {
        out.push(finding(
            FindingCode::NotYetValid,
            format!(
                "not valid yet: NotBefore is {} (now is {})",
                timefmt::rfc3339(info.not_before),
                timefmt::rfc3339(now)
            ),
        ));
    }
    if now > info.not_after {
        out.push(finding(
            FindingCode::Expired,
            format!(
                "expired: NotAfter was {} (now is {})",
                timefmt::rfc3339(info.not_after),
                timefmt::rfc3339(now)
            ),
        ));
    }
    if info.not_after > ca.not_after {
        out.push(finding(
            FindingCode::OutlivesCa,
            format!(
                "NotAfter {} is after the {} NotAfter {}",
                timefmt::rfc3339(info.not_after),
                ca_id.name(),
                timefmt::rfc3339(ca.not_after)
            ),
        ));
    }
}

/// A signed certificate that passed every check of [`judge`].
struct Judged {
    unchanged: bool,
    writes: Vec<Write_>,
    current_der: Vec<u8>,
}

/// The checks of `csr import` for one signed certificate and its key, wherever they came
/// from (files in the CSR dir, or the certificates API): pushes findings, returns the
/// snapshot of the certificate being replaced and, when acceptable, the writes.
#[allow(clippy::too_many_arguments)]
fn judge(
    e: &Entry,
    layout: &Layout,
    cas: &Cas,
    ca_pem: Option<&[u8]>,
    now: i64,
    signed: Option<&Cert>,
    key: Option<&PrivateKey>,
    key_desc: &str,
    out: &mut Vec<Finding>,
) -> (Option<CertSnapshot>, Option<Judged>) {
    let Some(ca_id) = e.ca else {
        return (None, None);
    };
    let mut old = None;
    // The certificate being replaced.
    let found = match pki::load(layout, e) {
        Material::Missing => {
            out.push(finding(
                FindingCode::NoCurrentCertificate,
                format!(
                    "{} does not exist, so there is no certificate to compare with and replace",
                    layout.primary_path(e).display()
                ),
            ));
            None
        }
        Material::Broken(err) => {
            out.push(finding(
                FindingCode::CurrentUnreadable,
                crate::error::report(&err),
            ));
            None
        }
        Material::Present(found) => {
            old = Some(CertSnapshot::of(&found.cert.info));
            Some(found)
        }
    };
    let ca_cert = cas.get(ca_id).and_then(|c| c.cert());
    if ca_cert.is_none() {
        out.push(finding(
            FindingCode::CaMissing,
            format!(
                "the {} certificate {} is missing or unreadable",
                ca_id.name(),
                layout.ca_crt(ca_id).display()
            ),
        ));
    }
    let mut chain: Vec<Vec<u8>> = Vec::new();
    if let Some(s) = signed {
        if let Some(ca) = ca_cert {
            if ca.info.is_ca {
                chain = check_chain(e, ca_id, ca, &layout.ca_crt(ca_id), s, cas, now, out);
            } else {
                out.push(finding(
                    FindingCode::CaNotACa,
                    format!(
                        "the {} certificate {} is not a certificate authority (CA:FALSE), so \
                         nothing signed by it can be trusted as {}",
                        ca_id.name(),
                        layout.ca_crt(ca_id).display(),
                        e.name
                    ),
                ));
            }
        }
        if let Some(k) = key {
            if !k.matches(&s.info) {
                out.push(finding(
                    FindingCode::KeyMismatch,
                    format!(
                        "the certificate's public key ({}) does not belong to {}",
                        s.info.key_algorithm, key_desc
                    ),
                ));
            }
        }
        if let Some(old) = &found {
            let old = &old.cert.info;
            if s.info.subject_der != old.subject_der {
                let msg = if s.info.subject == old.subject {
                    format!(
                        "subject \"{}\" is encoded differently from the current certificate's; \
                         the signer must copy the requested subject verbatim",
                        s.info.subject
                    )
                } else if same_attributes(&s.info.subject, &old.subject) {
                    format!(
                        "subject \"{}\" has the attributes of the current certificate's \"{}\" \
                         in a different order; the signer must keep the requested order \
                         (openssl ca reorders by its policy unless given -preserveDN)",
                        s.info.subject, old.subject
                    )
                } else {
                    format!(
                        "subject \"{}\" differs from the current certificate's \"{}\"",
                        s.info.subject, old.subject
                    )
                };
                out.push(finding(FindingCode::SubjectMismatch, msg));
            }
            if let Some(msg) = san_diff(old, &s.info) {
                out.push(finding(FindingCode::SanMismatch, msg));
            }
        }
        if let Some(ca) = ca_cert {
            check_leaf(e, &s.info, ca_id, &ca.info, now, out);
        }
    }
    let accepted = match (signed, key, &found, out.is_empty()) {
        (Some(s), Some(k), Some(found), true) => {
            let unchanged = s.der == found.cert.der && chain == found.cert.chain;
            if unchanged {
                Some(Judged {
                    unchanged: true,
                    writes: Vec::new(),
                    current_der: found.cert.der.clone(),
                })
            } else {
                let mut cert_pem = issue::cert_pem(&s.der);
                for c in &chain {
                    cert_pem.push_str(&issue::cert_pem(c));
                }
                let key_pem = key_pem_same_format(k);
                match crate::renew::install_writes(e, found, layout, &cert_pem, &key_pem, ca_pem) {
                    Ok(w) => Some(Judged {
                        unchanged: false,
                        writes: w,
                        current_der: found.cert.der.clone(),
                    }),
                    Err(err) => {
                        out.push(finding(
                            FindingCode::NotInstallable,
                            crate::error::report(&err),
                        ));
                        None
                    }
                }
            }
        }
        _ => None,
    };
    (old, accepted)
}

/// A certificate issued elsewhere (e.g. through the certificates API) that passed the checks
/// of `csr import`.
#[derive(Debug)]
pub struct ValidatedIssue {
    /// The files that install it (empty when it is already the certificate in use).
    pub writes: Vec<Write_>,
    /// Whether it is already the certificate in use.
    pub unchanged: bool,
    /// DER of the certificate in use when it was validated (to detect concurrent changes).
    pub current_der: Vec<u8>,
    /// The certificate in use.
    pub old: Option<CertSnapshot>,
    /// The issued certificate.
    pub new: CertSnapshot,
}

/// Validates a signed certificate held in memory exactly as `csr import` validates
/// `<name>.crt`: chain to the row's CA of the PKI by signature, key match, subject DER and
/// SAN set equal to the current certificate's, EKU for the role, not a CA, valid at `now`,
/// not outliving its CA. `key_desc` names the key in messages (never its contents).
pub fn validate_issued(
    e: &Entry,
    layout: &Layout,
    cas: &Cas,
    signed: &Cert,
    key: &PrivateKey,
    key_desc: &str,
    now: i64,
) -> std::result::Result<ValidatedIssue, Vec<Finding>> {
    let ca_pem = cas
        .get(CaId::Ca)
        .and_then(|c| c.cert())
        .map(|c| issue::cert_pem(&c.der).into_bytes());
    let mut f = Vec::new();
    let (old, judged) = judge(
        e,
        layout,
        cas,
        ca_pem.as_deref(),
        now,
        Some(signed),
        Some(key),
        key_desc,
        &mut f,
    );
    match judged {
        Some(j) if f.is_empty() => Ok(ValidatedIssue {
            writes: j.writes,
            unchanged: j.unchanged,
            current_der: j.current_der,
            old,
            new: CertSnapshot::of(&signed.info),
        }),
        _ => {
            if f.is_empty() {
                f.push(finding(
                    FindingCode::NotInstallable,
                    "refused for an unknown reason",
                ));
            }
            Err(f)
        }
    }
}

/// A signed certificate that passed every check.
struct Accepted {
    idx: usize,
    unchanged: bool,
    writes: Vec<Write_>,
}

/// Examines one row; fills `item` (findings, snapshots, files) and returns the writes when
/// the certificate is acceptable.
#[allow(clippy::too_many_arguments)]
fn examine(
    e: &Entry,
    crt: &Path,
    key_path: &Path,
    layout: &Layout,
    cas: &Cas,
    ca_pem: Option<&[u8]>,
    now: i64,
    item: &mut ImportItem,
) -> Option<(bool, Vec<Write_>)> {
    let mut f: Vec<Finding> = Vec::new();
    e.ca?;
    // The signed certificate.
    let signed = match cert::read_file(crt) {
        Err(err) => {
            f.push(finding(FindingCode::Unreadable, crate::error::report(&err)));
            None
        }
        Ok(bytes) => match cert::parse_pem_bundle(&bytes) {
            Ok(c) => Some(c),
            Err(err) => {
                f.push(finding(
                    FindingCode::BadCertificate,
                    format!("{}: {err}", crt.display()),
                ));
                None
            }
        },
    };
    if let Some(s) = &signed {
        item.new = Some(CertSnapshot::of(&s.info));
    }
    // Its key (errors never carry key bytes).
    let key = if !exists_nofollow(key_path) {
        f.push(finding(
            FindingCode::KeyMissing,
            format!(
                "{} is absent: the key that {} was requested for must sit next to it",
                key_path.display(),
                crt.display()
            ),
        ));
        None
    } else {
        match cert::read_file(key_path) {
            Err(err) => {
                f.push(finding(FindingCode::Unreadable, crate::error::report(&err)));
                None
            }
            Ok(bytes) => match cert::parse_private_key(&bytes) {
                Ok(k) => Some(k),
                Err(err) => {
                    f.push(finding(
                        FindingCode::BadKey,
                        format!("{}: {err}", key_path.display()),
                    ));
                    None
                }
            },
        }
    };
    let key_desc = key_path.display().to_string();
    let (old, accepted) = judge(
        e,
        layout,
        cas,
        ca_pem,
        now,
        signed.as_ref(),
        key.as_ref(),
        &key_desc,
        &mut f,
    );
    item.old = old;
    let accepted = accepted.map(|a| (a.unchanged, a.writes));
    item.findings = f;
    accepted
}

/// Validates every signed certificate in the CSR dir and installs them all in one
/// transaction — or none of them, when any is refused.
pub fn import(p: &CsrImportParams) -> Result<CsrImportResult> {
    let layout = p.location.layout();
    let (entries, all) = renew::select(&p.names, &layout)?;
    let dir = csr_dir_of(&p.csr_dir)?;
    let now = match &p.now {
        Some(s) => timefmt::parse_rfc3339(s)?,
        None => timefmt::now_unix(),
    };
    let backup_root = match &p.backup_dir {
        Some(b) => PathBuf::from(b),
        None => renew::default_backup_root(&layout.cert_dir),
    };
    if !dir.is_dir() {
        return Err(Error::io(
            &dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "CSR dir not found"),
        ));
    }
    let sources: Vec<PathBuf> = entries
        .iter()
        .flat_map(|e| [file_in(&dir, e, "crt"), file_in(&dir, e, "key")])
        .collect();
    if let Some((src, live)) = find_collision(&layout, &sources) {
        return Err(Error::InvalidArgument(format!(
            "{} is the live file {}: signed certificates are imported from a directory of \
             their own; pass --csr-dir",
            src.display(),
            live.display()
        )));
    }
    let (lock, recovered) = if p.dry_run {
        (None, None)
    } else {
        let (l, r) = renew::lock_and_recover(&layout, LOCK_TIMEOUT)?;
        (Some(l), r)
    };
    let cas = Cas::load(&layout);
    let ca_pem = cas
        .get(CaId::Ca)
        .and_then(|c| c.cert())
        .map(|c| issue::cert_pem(&c.der).into_bytes());
    let mut items: Vec<ImportItem> = Vec::new();
    let mut accepted: Vec<Accepted> = Vec::new();
    for e in &entries {
        let ca =
            e.ca.ok_or_else(|| Error::UnknownCertificate(e.name.to_string()))?;
        let crt = file_in(&dir, e, "crt");
        let key = file_in(&dir, e, "key");
        let mut item = ImportItem {
            name: e.name.to_string(),
            long_name: e.long_name.to_string(),
            action: ImportAction::Absent,
            reason: String::new(),
            ca_name: ca.name().to_string(),
            crt_path: crt.display().to_string(),
            key_path: key.display().to_string(),
            findings: vec![],
            old: None,
            new: None,
            files: vec![],
        };
        if !exists_nofollow(&crt) {
            item.reason = format!("{} does not exist", crt.display());
            if !all {
                item.findings.push(finding(
                    FindingCode::NotFound,
                    format!("{} was named but {} does not exist", e.name, crt.display()),
                ));
            }
            items.push(item);
            continue;
        }
        match examine(
            e,
            &crt,
            &key,
            &layout,
            &cas,
            ca_pem.as_deref(),
            now,
            &mut item,
        ) {
            Some((unchanged, writes)) => {
                item.files = writes
                    .iter()
                    .map(|w| w.target.display().to_string())
                    .collect();
                accepted.push(Accepted {
                    idx: items.len(),
                    unchanged,
                    writes,
                });
            }
            None => {
                item.action = ImportAction::Refused;
                item.reason = format!("{} finding(s); see below", item.findings.len().max(1));
                if item.findings.is_empty() {
                    item.findings.push(finding(
                        FindingCode::NotInstallable,
                        "refused for an unknown reason",
                    ));
                }
            }
        }
        items.push(item);
    }
    let failed: Vec<String> = items
        .iter()
        .filter(|i| !i.findings.is_empty())
        .map(|i| i.name.clone())
        .collect();
    let mut all_writes: Vec<Write_> = Vec::new();
    let mut dry_writes: Vec<Write_> = Vec::new();
    for a in &accepted {
        let Some(item) = items.get_mut(a.idx) else {
            continue;
        };
        if a.unchanged {
            item.action = ImportAction::Unchanged;
            item.reason = "already installed: the signed certificate is the one in use".into();
        } else if !failed.is_empty() {
            item.action = ImportAction::WouldInstall;
            item.reason = format!(
                "valid, but not installed: {} refused and csr import installs all or nothing",
                failed.join(", ")
            );
        } else if p.dry_run {
            item.action = ImportAction::WouldInstall;
            item.reason = "valid; dry run".into();
            dry_writes.extend(a.writes.iter().cloned());
        } else {
            item.action = ImportAction::Installed;
            item.reason = "valid; installed".into();
            all_writes.extend(a.writes.iter().cloned());
        }
    }
    // A dry run makes every check the apply makes on its writes.
    store::preflight(&dry_writes)?;
    let mut backup_dir = None;
    if !all_writes.is_empty() {
        if let Some(lock) = &lock {
            backup_dir = store::commit(lock, &all_writes, Some(&backup_root), &renew::stamp(now))?;
        }
    }
    drop(lock);
    let changing = |i: &ImportItem| {
        i.action == ImportAction::Installed
            || (i.action == ImportAction::WouldInstall && failed.is_empty())
    };
    let components = inventory::components_of(
        items
            .iter()
            .filter(|i| changing(i))
            .filter_map(|i| inventory::find(&i.name)),
    );
    let changed = items.iter().any(changing);
    Ok(CsrImportResult {
        dry_run: p.dry_run,
        csr_dir: dir.display().to_string(),
        backup_dir: backup_dir.map(|d| d.display().to_string()),
        components_to_restart: components,
        changed,
        certificates: items,
        recovered,
    })
}

/// Text output of `csr import`.
pub fn render_import_text(r: &CsrImportResult) -> String {
    let mut s = String::new();
    if let Some(rec) = &r.recovered {
        s.push_str(&format!("[csr-import] {rec}\n"));
    }
    for i in &r.certificates {
        let action = match i.action {
            ImportAction::Installed => "installed",
            ImportAction::WouldInstall => "would install",
            ImportAction::Unchanged => "unchanged",
            ImportAction::Refused => "REFUSED",
            ImportAction::Absent => "absent",
        };
        let detail = match (&i.action, &i.new) {
            (ImportAction::Installed | ImportAction::WouldInstall, Some(n)) => format!(
                " (serial {}, NotAfter {}): {}",
                n.serial.as_deref().unwrap_or("?"),
                n.not_after,
                i.reason
            ),
            (ImportAction::Refused, _) => format!(" {}", i.crt_path),
            _ => format!(": {}", i.reason),
        };
        s.push_str(&format!("[csr-import] {}: {action}{detail}\n", i.name));
        for f in &i.findings {
            s.push_str(&format!("    - {}: {}\n", f.code.as_str(), f.message));
        }
    }
    if !r.ok() {
        let n = r
            .certificates
            .iter()
            .filter(|i| !i.findings.is_empty())
            .count();
        s.push_str(&format!(
            "Nothing was changed: {n} certificate(s) refused (csr import installs all or nothing).\n"
        ));
    } else if r.components_to_restart.is_empty() {
        if r.changed {
            s.push_str("No component needs a restart.\n");
        } else if r
            .certificates
            .iter()
            .all(|i| i.action == ImportAction::Absent)
        {
            s.push_str(&format!(
                "No signed certificate (<name>.crt) found in {}; nothing to import.\n",
                r.csr_dir
            ));
        } else {
            s.push_str("No certificate changed; no component needs a restart.\n");
        }
    } else {
        let verb = if r.dry_run { "would change" } else { "changed" };
        s.push_str(&format!(
            "Components whose certificates {verb}: {}\n",
            inventory::join_components(&r.components_to_restart)
        ));
    }
    if let Some(b) = &r.backup_dir {
        s.push_str(&format!("Backup of the replaced files: {b}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::inventory::Role;

    #[test]
    fn usages_follow_role() {
        assert_eq!(Role::Server.ext_key_usages(), ["serverAuth"]);
        assert_eq!(Role::Client.ext_key_usages(), ["clientAuth"]);
        assert_eq!(
            Role::ServerAndClient.ext_key_usages(),
            ["serverAuth", "clientAuth"]
        );
        let e = inventory::find("etcd-server").map(|e| e.role);
        assert_eq!(e, Some(Role::ServerAndClient));
    }

    #[test]
    fn flat_names_like_kubeadm_115() {
        let d = Path::new("/x");
        let f = |n: &str| inventory::find(n).map(|e| file_in(d, e, "csr"));
        assert_eq!(f("etcd-server"), Some(PathBuf::from("/x/etcd-server.csr")));
        assert_eq!(f("admin.conf"), Some(PathBuf::from("/x/admin.conf.csr")));
    }

    #[test]
    fn params_reject_unknown_fields() {
        let bad = serde_json::from_str::<CsrImportParams>(r#"{"csr_dir":"/x","bogus":1}"#);
        assert!(bad.is_err());
        let ok = serde_json::from_str::<CsrExportParams>(r#"{"csr_dir":"/x","names":["all"]}"#);
        assert!(ok.is_ok());
    }

    #[test]
    fn collision_detected_by_path_and_inode() {
        let d = tempfile::tempdir().expect("tempdir");
        let pki = d.path().join("pki");
        fs::create_dir_all(&pki).expect("mkdir");
        fs::write(pki.join("apiserver.key"), b"k").expect("write");
        let layout = Layout::new(&pki, d.path(), Some(true));
        // Same dir: apiserver.key is live (exists), etcd-server.key is not a live name.
        let hit = find_collision(
            &layout,
            &[pki.join("etcd-server.key"), pki.join("apiserver.key")],
        );
        assert_eq!(hit.map(|h| h.1), Some(pki.join("apiserver.key")));
        // A live path that does not exist yet still collides.
        assert!(find_collision(&layout, &[pki.join("apiserver.crt")]).is_some());
        // Via a symlinked dir.
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&pki, &link).expect("symlink");
        assert!(find_collision(&layout, &[link.join("apiserver.key")]).is_some());
        // Via a hard link.
        let other = d.path().join("out");
        fs::create_dir_all(&other).expect("mkdir");
        fs::hard_link(pki.join("apiserver.key"), other.join("apiserver.key")).expect("link");
        assert!(find_collision(&layout, &[other.join("apiserver.key")]).is_some());
        assert!(find_collision(&layout, &[other.join("apiserver.csr")]).is_none());
    }
}
