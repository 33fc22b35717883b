//! The CA lifecycle of a node (issue 16 items 1 and 2): `ca check` (each CA's expiry, key,
//! join hash, the leaves and kubeconfigs that chain to it, the trust bundles that hold it),
//! same-key `ca renew` (the ten-year cliff), and `ca export` / `ca install` to give every
//! control-plane node the same renewed bytes. Staged rotation to a new key is not here.
//!
//! A renewal or an install writes the CA certificate and the `certificate-authority-data` of
//! the node's kubeconfigs that hold that CA in one [`Store`] transaction with a backup.

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pki::cert::{self, Cert, PrivateKey};
use crate::pki::inventory::CaId;
use crate::pki::issue::{self, CaSigner};
use crate::pki::kubeconfig::{self, Kubeconfig, Source};
use crate::pki::store::{self, Store, Write_};
use crate::pki::{self, fsread, Layout, Material, PkiLocation};
use crate::timefmt;

pub mod rotate;

/// The kubeconfigs kubeadm writes on a control-plane node, whose
/// `certificate-authority-data` is the cluster CA.
pub const NODE_KUBECONFIGS: [&str; 5] = [
    "admin.conf",
    "super-admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
    "kubelet.conf",
];

/// kubeadm's discovery hash of a CA (`--discovery-token-ca-cert-hash`): `sha256:` and the
/// hex SHA-256 of the certificate's DER SubjectPublicKeyInfo (kubeadm's `pubkeypin.Hash`).
pub fn join_hash(spki_der: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der);
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn ca_id(name: &str) -> Result<CaId> {
    CaId::ALL
        .into_iter()
        .find(|c| c.name() == name)
        .ok_or_else(|| {
            Error::InvalidArgument(format!("unknown CA {name:?} (ca|front-proxy-ca|etcd-ca)"))
        })
}

fn clock(now: &Option<String>) -> Result<i64> {
    Ok(match now {
        Some(s) => timefmt::parse_rfc3339(s)?,
        None => timefmt::now_unix(),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// ca check

/// Parameters of `ca check` (RPC `ca-check`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CaCheckParams {
    /// Where the PKI is.
    #[serde(flatten)]
    pub location: PkiLocation,
    /// Fixed clock, RFC 3339.
    #[serde(default)]
    pub now: Option<String>,
}

/// A certificate that chains to a CA (verified by signature).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct Chained {
    /// Inventory name (`apiserver`, `admin.conf`).
    pub name: String,
    /// The file.
    pub path: String,
}

/// How a trust bundle holds a CA.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BundleMatch {
    /// The very certificate (same DER).
    Exact,
    /// Another certificate of the same key and subject (e.g. before or after a same-key
    /// renewal): trusted the same, but not the bytes of the CA file.
    SameKey,
}

/// A trust bundle that holds a CA.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct Bundle {
    /// The file (a CA `.crt`, or a kubeconfig).
    pub path: String,
    /// `ca-file` or `kubeconfig`.
    pub kind: String,
    /// Exact or same-key.
    #[serde(rename = "match")]
    pub matches: BundleMatch,
}

/// One CA as `ca check` sees it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CaReport {
    /// `ca`, `etcd-ca`, `front-proxy-ca`.
    pub name: String,
    /// The CA certificate file.
    pub path: String,
    /// Whether the certificate was found and parsed.
    pub present: bool,
    /// Why not, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Whether `<ca>.key` exists (absent: externally managed, cannot be renewed here).
    pub key_present: bool,
    /// Subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Serial, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// NotBefore, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// NotAfter, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// Seconds until NotAfter (negative: expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residual_seconds: Option<i64>,
    /// `RSA-2048`, `ECDSA-P256`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_algorithm: Option<String>,
    /// kubeadm's join hash `sha256:<hex>` (SHA-256 of the DER SubjectPublicKeyInfo).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spki_sha256: Option<String>,
    /// Subject key identifier, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_key_id: Option<String>,
    /// Inventory leaves and kubeconfigs whose certificate this CA signed.
    pub chained: Vec<Chained>,
    /// Inventory rows of this CA whose certificate it did not sign (or that could not be
    /// read).
    pub not_chained: Vec<Chained>,
    /// Trust bundles that hold this CA: CA files and the `certificate-authority(-data)` of
    /// every kubeconfig in the kubeconfig dir.
    pub bundles: Vec<Bundle>,
    /// A CA rotation in progress (`ca rotate`): absent when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<rotate::RotationStatus>,
}

/// Result of `ca check`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct CaCheckResult {
    /// One entry per CA of the layout (no etcd-ca with external etcd).
    pub cas: Vec<CaReport>,
}

/// The CA certificates held by one trust location.
struct TrustFile {
    path: PathBuf,
    kind: &'static str,
    certs: Vec<Vec<u8>>,
}

fn bundle_ders(bytes: &[u8]) -> Vec<Vec<u8>> {
    cert::parse_pem_bundle(bytes)
        .map(|c| std::iter::once(c.der).chain(c.chain).collect())
        .unwrap_or_default()
}

/// The kubeconfigs of [`NODE_KUBECONFIGS`] that exist (the name itself, not a symlink's
/// target), with their file names, loaded; the first that does not load is the error.
fn node_kubeconfigs(layout: &Layout) -> Result<Vec<(&'static str, PathBuf, Kubeconfig)>> {
    let mut out = Vec::new();
    for f in NODE_KUBECONFIGS {
        let p = layout.kubeconfig_dir.join(f);
        if fsread::exists_nofollow(&p) {
            let kc = Kubeconfig::load(&p)?;
            out.push((f, p, kc));
        }
    }
    Ok(out)
}

/// A node kubeconfig whose CA data is embedded.
struct EmbeddedCa {
    path: PathBuf,
    kubeconfig: Kubeconfig,
    /// The certificates of that data (DER, in their order).
    ders: Vec<Vec<u8>>,
}

/// Those of [`node_kubeconfigs`] whose CA is embedded.
fn embedded_ca_kubeconfigs(layout: &Layout) -> Result<Vec<EmbeddedCa>> {
    let mut out = Vec::new();
    for (_, path, kubeconfig) in node_kubeconfigs(layout)? {
        let Source::Embedded(b64) = &kubeconfig.ca else {
            continue;
        };
        let ders = bundle_ders(&kubeconfig::decode_data(&path, b64)?);
        out.push(EmbeddedCa {
            path,
            kubeconfig,
            ders,
        });
    }
    Ok(out)
}

fn kubeconfig_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
        .collect();
    v.sort();
    v
}

fn trust_files(layout: &Layout) -> Vec<TrustFile> {
    let mut out = Vec::new();
    for id in layout.cas() {
        let p = layout.ca_crt(id);
        if let Ok(b) = fsread::read(&p) {
            out.push(TrustFile {
                path: p,
                kind: "ca-file",
                certs: bundle_ders(&b),
            });
        }
    }
    for p in kubeconfig_files(&layout.kubeconfig_dir) {
        let Ok(kc) = Kubeconfig::load(&p) else {
            continue;
        };
        let bytes = match &kc.ca {
            Source::Embedded(b) => kubeconfig::decode_data(&p, b).ok(),
            Source::File(f) => fsread::read(f).ok(),
            Source::Absent => None,
        };
        if let Some(b) = bytes {
            out.push(TrustFile {
                path: p,
                kind: "kubeconfig",
                certs: bundle_ders(&b),
            });
        }
    }
    out
}

/// `ca check`: every CA of the layout.
pub fn check(p: &CaCheckParams) -> Result<CaCheckResult> {
    Ok(check_layout(&p.location.layout(), clock(&p.now)?))
}

/// [`check`] of a resolved layout and clock (also `check --ca`'s `ca` section).
pub fn check_layout(layout: &Layout, now: i64) -> CaCheckResult {
    let layout = layout.clone();
    let trust = trust_files(&layout);
    let rows: Vec<_> = layout
        .rows()
        .filter(|e| e.ca.is_some())
        .map(|e| (e, pki::load(&layout, e)))
        .collect();
    let mut cas = Vec::new();
    for id in layout.cas() {
        let m = pki::CaMaterial::load(&layout, id);
        let path = layout.ca_crt(id);
        let mut r = CaReport {
            name: id.name().into(),
            path: path.display().to_string(),
            present: false,
            problem: None,
            key_present: m.key_present,
            subject: None,
            serial: None,
            not_before: None,
            not_after: None,
            residual_seconds: None,
            key_algorithm: None,
            spki_sha256: None,
            subject_key_id: None,
            chained: vec![],
            not_chained: vec![],
            bundles: vec![],
            rotation: None,
        };
        match &m.cert {
            Material::Missing => r.problem = Some(format!("{} does not exist", path.display())),
            Material::Broken(e) => r.problem = Some(crate::error::report(e)),
            Material::Present(f) => {
                let ca = &f.cert;
                let i = &ca.info;
                r.present = true;
                r.subject = Some(i.subject.clone());
                r.serial = Some(i.serial.clone());
                r.not_before = Some(timefmt::rfc3339(i.not_before));
                r.not_after = Some(timefmt::rfc3339(i.not_after));
                r.residual_seconds = Some(i.not_after - now);
                r.key_algorithm = Some(i.key_algorithm.to_string());
                r.spki_sha256 = Some(join_hash(&i.spki_der));
                r.subject_key_id = i.subject_key_id.as_deref().map(hex);
                r.rotation = rotate::status(&layout, id);
                for (e, mat) in &rows {
                    let c = Chained {
                        name: e.name.into(),
                        path: layout.primary_path(e).display().to_string(),
                    };
                    match mat {
                        Material::Present(leaf) if cert::signed_by(&leaf.cert.der, &ca.der) => {
                            r.chained.push(c)
                        }
                        Material::Missing => {}
                        _ if e.ca == Some(id) => r.not_chained.push(c),
                        _ => {}
                    }
                }
                for t in &trust {
                    let matches = if t.certs.contains(&ca.der) {
                        Some(BundleMatch::Exact)
                    } else if t.certs.iter().any(|d| {
                        cert::parse_der(d).is_ok_and(|c| {
                            c.spki_der == i.spki_der && c.subject_der == i.subject_der
                        })
                    }) {
                        Some(BundleMatch::SameKey)
                    } else {
                        None
                    };
                    if let Some(matches) = matches {
                        r.bundles.push(Bundle {
                            path: t.path.display().to_string(),
                            kind: t.kind.into(),
                            matches,
                        });
                    }
                }
            }
        }
        cas.push(r);
    }
    CaCheckResult { cas }
}

/// What makes `ca check` fail (CLI exit 4): a CA missing or unreadable, expired, or a
/// certificate of the inventory that names it as its CA but is not signed by it.
pub fn failures(r: &CaCheckResult) -> Vec<String> {
    let mut v = Vec::new();
    for c in &r.cas {
        if let Some(p) = &c.problem {
            v.push(format!("{}: {p}", c.name));
        }
        if c.residual_seconds.is_some_and(|s| s < 0) {
            v.push(format!(
                "{}: expired at {}",
                c.name,
                c.not_after.as_deref().unwrap_or("-")
            ));
        }
        for n in &c.not_chained {
            v.push(format!(
                "{}: {} ({}) is not signed by it",
                c.name, n.name, n.path
            ));
        }
    }
    v
}

/// The text of `ca check`.
pub fn render_check(r: &CaCheckResult) -> String {
    let mut s = String::new();
    for c in &r.cas {
        s.push_str(&format!("{} ({})\n", c.name, c.path));
        if let Some(p) = &c.problem {
            s.push_str(&format!("  problem:     {p}\n"));
            continue;
        }
        let days = c.residual_seconds.unwrap_or(0) / 86400;
        s.push_str(&format!(
            "  expires:     {} ({}{}d)\n",
            c.not_after.as_deref().unwrap_or("-"),
            if days < 0 { "expired " } else { "" },
            days.abs()
        ));
        s.push_str(&format!(
            "  key:         {}{}\n",
            c.key_algorithm.as_deref().unwrap_or("-"),
            if c.key_present {
                ""
            } else {
                " (key absent: externally managed)"
            }
        ));
        s.push_str(&format!(
            "  join hash:   {}\n",
            c.spki_sha256.as_deref().unwrap_or("-")
        ));
        if let Some(rot) = &c.rotation {
            s.push_str(&format!(
                "  rotation:    {} ({}; {} of {} leaves signed by the new CA)\n",
                rot.phase.name(),
                rot.detail,
                rot.leaves_signed_by_new,
                rot.leaves
            ));
        }
        let names: Vec<&str> = c.chained.iter().map(|x| x.name.as_str()).collect();
        s.push_str(&format!("  signed:      {}\n", names.join(", ")));
        if !c.not_chained.is_empty() {
            let names: Vec<&str> = c.not_chained.iter().map(|x| x.name.as_str()).collect();
            s.push_str(&format!("  NOT signed:  {}\n", names.join(", ")));
        }
        for b in &c.bundles {
            s.push_str(&format!(
                "  trusted by:  {} ({}{})\n",
                b.path,
                b.kind,
                if b.matches == BundleMatch::SameKey {
                    ", same key, other certificate"
                } else {
                    ""
                }
            ));
        }
    }
    s
}

// ---------------------------------------------------------------------------------------
// ca renew / ca install

/// Parameters of `ca renew` (RPC `ca-renew`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CaRenewParams {
    /// Where the PKI is.
    #[serde(flatten)]
    pub location: PkiLocation,
    /// The CAs to renew (`ca`, `front-proxy-ca`, `etcd-ca`); empty: every CA of the layout.
    #[serde(default)]
    pub cas: Vec<String>,
    /// Validity of the renewed CA (`87600h`, kubeadm's ten years, by default).
    #[serde(default)]
    pub validity: Option<String>,
    /// Report what would be written; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Fixed clock, RFC 3339.
    #[serde(default)]
    pub now: Option<String>,
    /// Backup root (default `<cert_dir>/../kubecert-backup`).
    #[serde(default)]
    pub backup_dir: Option<String>,
}

/// Parameters of `ca install` (RPC `ca-install`): a CA certificate renewed on another node.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CaInstallParams {
    /// Where the PKI is.
    #[serde(flatten)]
    pub location: PkiLocation,
    /// Which CA (`ca`, `front-proxy-ca`, `etcd-ca`).
    pub ca: String,
    /// The certificate, PEM (one certificate, no key).
    pub pem: String,
    /// Report what would be written; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Fixed clock, RFC 3339.
    #[serde(default)]
    pub now: Option<String>,
    /// Backup root (default `<cert_dir>/../kubecert-backup`).
    #[serde(default)]
    pub backup_dir: Option<String>,
}

/// What happened to one CA.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CaAction {
    /// Re-issued with the same key.
    Renewed,
    /// Dry run of a renewal.
    WouldRenew,
    /// A certificate from another node installed.
    Installed,
    /// Dry run of an install.
    WouldInstall,
}

/// One CA renewed or installed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CaChange {
    /// `ca`, `front-proxy-ca`, `etcd-ca`.
    pub name: String,
    /// What happened.
    pub action: CaAction,
    /// The CA file.
    pub path: String,
    /// Serial before.
    pub old_serial: String,
    /// Serial after.
    pub new_serial: String,
    /// NotAfter before, RFC 3339.
    pub old_not_after: String,
    /// NotAfter after, RFC 3339.
    pub new_not_after: String,
    /// The join hash, unchanged (same key).
    pub spki_sha256: String,
    /// The kubeconfigs whose `certificate-authority-data` is rewritten.
    pub kubeconfigs: Vec<String>,
}

/// Result of `ca renew` and `ca install`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CaRenewResult {
    /// One entry per CA.
    pub certificates: Vec<CaChange>,
    /// Every file written (or that would be), in commit order.
    pub written: Vec<String>,
    /// Backup of what was replaced.
    pub backup_dir: Option<String>,
    /// Whether anything changed on disk.
    pub changed: bool,
}

/// A CA whose key is on this node, checked: the certificate is a self-signed CA and the key
/// is its key.
struct LocalCa {
    id: CaId,
    cert: Cert,
    key: PrivateKey,
}

fn load_local(layout: &Layout, id: CaId) -> Result<LocalCa> {
    let name = id.name().to_string();
    let crt = layout.ca_crt(id);
    let cert = match pki::load(layout, id.entry()) {
        Material::Present(f) => f.cert,
        Material::Missing => {
            return Err(Error::CaMissing {
                ca: name,
                dir: layout.cert_dir.clone(),
                reason: format!("{} does not exist", crt.display()),
            })
        }
        Material::Broken(e) => {
            return Err(Error::CaMissing {
                ca: name,
                dir: layout.cert_dir.clone(),
                reason: crate::error::report(&e),
            })
        }
    };
    let key_path = layout.ca_key(id);
    if !fsread::exists_nofollow(&key_path) {
        return Err(Error::CaKeyMissing {
            ca: name,
            path: key_path,
        });
    }
    let key = cert::parse_private_key(&fsread::read(&key_path)?).map_err(|source| Error::Pem {
        path: key_path.clone(),
        source,
    })?;
    if !cert.info.is_ca {
        return Err(Error::NotACa { ca: name });
    }
    if !key.matches(&cert.info) {
        return Err(Error::Validation {
            cert: name,
            reason: format!("{} does not match {}", key_path.display(), crt.display()).into(),
        });
    }
    if !cert::signed_by(&cert.der, &cert.der) {
        return Err(Error::Validation {
            cert: name,
            reason: format!("{} is not self-signed", crt.display()).into(),
        });
    }
    Ok(LocalCa { id, cert, key })
}

/// The writes that make `new` the node's copy of CA `old`: the CA file and, in every
/// kubeconfig of [`NODE_KUBECONFIGS`] whose embedded CA data holds a certificate of the
/// same key and subject, that certificate replaced by `new`.
fn writes_for(
    layout: &Layout,
    old: &Cert,
    new_der: &[u8],
    id: CaId,
) -> Result<(Vec<Write_>, Vec<String>)> {
    let mut writes = vec![Write_ {
        target: layout.ca_crt(id),
        contents: issue::cert_pem(new_der).into_bytes(),
        mode: 0o644,
        force_mode: false,
    }];
    let mut kcs = Vec::new();
    for EmbeddedCa {
        path: p,
        kubeconfig: kc,
        ders,
    } in embedded_ca_kubeconfigs(layout)?
    {
        let same = |d: &Vec<u8>| {
            cert::parse_der(d).is_ok_and(|c| {
                c.spki_der == old.info.spki_der && c.subject_der == old.info.subject_der
            })
        };
        if !ders.iter().any(same) {
            continue;
        }
        let pem: String = ders
            .iter()
            .map(|d| issue::cert_pem(if same(d) { new_der } else { d }))
            .collect();
        let text = kc.rewrite_embedded(None, None, Some(pem.as_bytes()))?;
        writes.push(Write_ {
            target: p.clone(),
            contents: text.into_bytes(),
            mode: 0o600,
            force_mode: false,
        });
        kcs.push(p.display().to_string());
    }
    Ok((writes, kcs))
}

fn change(
    layout: &Layout,
    ca: &LocalCa,
    new: &cert::CertInfo,
    action: CaAction,
    kcs: Vec<String>,
) -> CaChange {
    CaChange {
        name: ca.id.name().into(),
        action,
        path: layout.ca_crt(ca.id).display().to_string(),
        old_serial: ca.cert.info.serial.clone(),
        new_serial: new.serial.clone(),
        old_not_after: timefmt::rfc3339(ca.cert.info.not_after),
        new_not_after: timefmt::rfc3339(new.not_after),
        spki_sha256: join_hash(&new.spki_der),
        kubeconfigs: kcs,
    }
}

fn commit(
    layout: &Layout,
    writes: &[Write_],
    backup_dir: &Option<String>,
    now: i64,
    dry_run: bool,
    mut result: CaRenewResult,
) -> Result<CaRenewResult> {
    result.written = writes
        .iter()
        .map(|w| w.target.display().to_string())
        .collect();
    if dry_run {
        store::plan(writes)?;
        return Ok(result);
    }
    let root = backup_dir
        .as_deref()
        .map(PathBuf::from)
        .unwrap_or_else(|| store::default_backup_root(&layout.cert_dir));
    let mut st = Store::open(&layout.cert_dir, Duration::from_secs(300))?;
    let backup = st.commit(writes, &root, &store::stamp(now))?;
    result.backup_dir = backup.map(|b| b.display().to_string());
    result.changed = true;
    Ok(result)
}

/// `ca renew`: re-issues each named CA with its own key (same subject, SKI, AKI, extensions;
/// new serial; NotBefore now less kubeadm's backdate, NotAfter now + validity), and rewrites
/// the node's kubeconfigs that hold it — one transaction for all of them.
pub fn renew(p: &CaRenewParams) -> Result<CaRenewResult> {
    let layout = p.location.layout();
    let now = clock(&p.now)?;
    let validity = match &p.validity {
        Some(v) => timefmt::parse_duration(v)?,
        None => issue::CA_VALIDITY_SECONDS,
    };
    if validity <= 0 {
        return Err(Error::InvalidArgument(format!(
            "validity must be positive, got {:?}",
            p.validity.as_deref().unwrap_or_default()
        )));
    }
    let ids: Vec<CaId> = if p.cas.is_empty() {
        layout.cas().collect()
    } else {
        let mut v = Vec::new();
        for n in &p.cas {
            let id = ca_id(n)?;
            if !layout.cas().any(|c| c == id) {
                return Err(Error::InvalidArgument(format!(
                    "{n} is not part of this layout (external etcd)"
                )));
            }
            if !v.contains(&id) {
                v.push(id);
            }
        }
        v
    };
    let mut writes = Vec::new();
    let mut result = CaRenewResult {
        certificates: vec![],
        written: vec![],
        backup_dir: None,
        changed: false,
    };
    for id in ids {
        rotate::refuse_during_rotation(&layout, id, "renew")?;
        let ca = load_local(&layout, id)?;
        if now + validity < ca.cert.info.not_after {
            return Err(Error::CaValidityShortened {
                ca: id.name().into(),
                old_not_after: timefmt::rfc3339(ca.cert.info.not_after),
                new_not_after: timefmt::rfc3339(now + validity),
            });
        }
        let der = issue::resign_ca(
            &CaSigner {
                cert: &ca.cert,
                key: &ca.key,
            },
            now - issue::BACKDATE_SECONDS,
            now + validity,
        )
        .map_err(|e| Error::Issue {
            cert: id.name().into(),
            reason: crate::error::Reason::of(e),
        })?;
        let info = validate_same_ca(&ca, &der, now)?;
        let (w, kcs) = writes_for(&layout, &ca.cert, &der, id)?;
        writes.extend(w);
        let action = if p.dry_run {
            CaAction::WouldRenew
        } else {
            CaAction::Renewed
        };
        result
            .certificates
            .push(change(&layout, &ca, &info, action, kcs));
    }
    commit(&layout, &writes, &p.backup_dir, now, p.dry_run, result)
}

/// The checks a certificate must pass to replace the node's CA `ca`: it parses, is a CA,
/// self-signed, of the same public key and subject (and SKI), valid at `now`.
fn validate_same_ca(ca: &LocalCa, der: &[u8], now: i64) -> Result<cert::CertInfo> {
    let name = ca.id.name().to_string();
    let bad = |reason: String| Error::Validation {
        cert: name.clone(),
        reason: reason.into(),
    };
    let info = cert::parse_der(der).map_err(|e| bad(format!("not a certificate: {e}")))?;
    if !info.is_ca {
        return Err(bad(
            "the certificate is not a CA (basicConstraints CA:FALSE or absent)".into(),
        ));
    }
    if info.spki_der != ca.cert.info.spki_der || !ca.key.matches(&info) {
        return Err(bad(format!(
            "the certificate's public key ({}) is not the key of this node's {} ({})",
            join_hash(&info.spki_der),
            name,
            join_hash(&ca.cert.info.spki_der)
        )));
    }
    if info.subject_der != ca.cert.info.subject_der {
        return Err(bad(format!(
            "subject {:?} differs from this node's {:?}",
            info.subject, ca.cert.info.subject
        )));
    }
    if info.subject_key_id != ca.cert.info.subject_key_id {
        return Err(bad("subject key identifier differs".into()));
    }
    if !cert::signed_by(der, der) {
        return Err(bad("the certificate is not self-signed".into()));
    }
    if !info.valid_at(now) {
        return Err(bad(format!(
            "not valid now ({}): valid {} to {}",
            timefmt::rfc3339(now),
            timefmt::rfc3339(info.not_before),
            timefmt::rfc3339(info.not_after)
        )));
    }
    Ok(info)
}

/// `ca install`: installs a CA certificate renewed on another node after checking it is the
/// same CA as this node's (same key as `<ca>.key`, same subject and SKI, a CA, self-signed,
/// valid now); then the same transaction as [`renew`].
pub fn install(p: &CaInstallParams) -> Result<CaRenewResult> {
    let layout = p.location.layout();
    let now = clock(&p.now)?;
    let id = ca_id(&p.ca)?;
    let bundle = cert::parse_pem_bundle(p.pem.as_bytes()).map_err(|source| Error::Validation {
        cert: id.name().into(),
        reason: format!(
            "the input is not a PEM certificate: {}",
            crate::error::report(&source)
        )
        .into(),
    })?;
    if !bundle.chain.is_empty() {
        return Err(Error::Validation {
            cert: id.name().into(),
            reason: format!(
                "the input holds {} certificates; a CA install takes exactly one",
                bundle.chain.len() + 1
            )
            .into(),
        });
    }
    if p.pem.contains("PRIVATE KEY") {
        return Err(Error::Validation {
            cert: id.name().into(),
            reason: "the input holds a private key; install takes the certificate only".into(),
        });
    }
    rotate::refuse_during_rotation(&layout, id, "install")?;
    let ca = load_local(&layout, id)?;
    let info = validate_same_ca(&ca, &bundle.der, now)?;
    let (writes, kcs) = writes_for(&layout, &ca.cert, &bundle.der, id)?;
    let action = if p.dry_run {
        CaAction::WouldInstall
    } else {
        CaAction::Installed
    };
    let result = CaRenewResult {
        certificates: vec![change(&layout, &ca, &info, action, kcs)],
        written: vec![],
        backup_dir: None,
        changed: false,
    };
    commit(&layout, &writes, &p.backup_dir, now, p.dry_run, result)
}

// ---------------------------------------------------------------------------------------
// ca export

/// Parameters of `ca export` (RPC `ca-export`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CaExportParams {
    /// Where the PKI is.
    #[serde(flatten)]
    pub location: PkiLocation,
    /// Which CA.
    pub ca: String,
}

/// Result of `ca export`: the CA certificate (never its key).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CaExportResult {
    /// Which CA.
    pub name: String,
    /// The certificate, PEM.
    pub pem: String,
    /// Serial, hex.
    pub serial: String,
    /// NotAfter, RFC 3339.
    pub not_after: String,
    /// The join hash.
    pub spki_sha256: String,
}

/// `ca export`: the CA certificate as PEM (read only; the key is never read).
pub fn export(p: &CaExportParams) -> Result<CaExportResult> {
    let layout = p.location.layout();
    let id = ca_id(&p.ca)?;
    let crt = layout.ca_crt(id);
    match pki::load(&layout, id.entry()) {
        Material::Present(f) => Ok(CaExportResult {
            name: id.name().into(),
            pem: issue::cert_pem(&f.cert.der),
            serial: f.cert.info.serial.clone(),
            not_after: timefmt::rfc3339(f.cert.info.not_after),
            spki_sha256: join_hash(&f.cert.info.spki_der),
        }),
        Material::Missing => Err(Error::CaMissing {
            ca: id.name().into(),
            dir: layout.cert_dir.clone(),
            reason: format!("{} does not exist", crt.display()),
        }),
        Material::Broken(e) => Err(e),
    }
}

/// The text of `ca renew` / `ca install`.
pub fn render_renew(r: &CaRenewResult) -> String {
    let mut s = String::new();
    for c in &r.certificates {
        let verb = match c.action {
            CaAction::Renewed => "renewed",
            CaAction::WouldRenew => "would renew",
            CaAction::Installed => "installed",
            CaAction::WouldInstall => "would install",
        };
        s.push_str(&format!(
            "{} {verb}: serial {} -> {}, NotAfter {} -> {}, join hash {} (unchanged)\n",
            c.name, c.old_serial, c.new_serial, c.old_not_after, c.new_not_after, c.spki_sha256
        ));
        for k in &c.kubeconfigs {
            s.push_str(&format!("  certificate-authority-data: {k}\n"));
        }
    }
    if let Some(b) = &r.backup_dir {
        s.push_str(&format!("backup: {b}\n"));
    }
    s
}
