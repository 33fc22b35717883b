//! `renew`: plan (what, why, new validity, which CA) → issue (new key, sign) → install every
//! file through one locked, journaled, backed-up transaction. The plan alone is `--dry-run`.
//! Mirrors `kubeadm certs renew` (renewal/manager.go `RenewUsingLocalCA`), with the
//! improvements listed in docs: full subject and SANs kept, same key algorithm by default,
//! validity capped at the CA, expired CAs refused, file-referenced kubeconfigs supported.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pki::cert::{self, CertInfo, PrivateKey};
use crate::pki::inventory::{self, CaId, Component, Entry, Location};
use crate::pki::issue::{self, CaSigner, KeyAlgorithm, LeafSpec};
use crate::pki::kubeconfig::Source;
use crate::pki::store::{self, Lock, Write_};
use crate::pki::{self, Cas, Found, Layout, Material, PkiLocation};
use crate::timefmt;

/// Parameters of `renew` (CLI flags and JSON-RPC params).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RenewParams {
    /// Inventory names, or `["all"]`; required and non-empty.
    #[serde(default)]
    pub names: Vec<String>,
    /// Where the PKI is: `cert_dir`, `kubeconfig_dir`, `external_etcd` (top-level params).
    #[serde(flatten)]
    pub location: PkiLocation,
    /// Renew only what expires within this duration; absent = unconditionally (kubeadm).
    #[serde(default)]
    pub within: Option<String>,
    /// Plan only; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Key algorithm of new keys (default `same`).
    #[serde(default)]
    pub key_algorithm: KeyAlgorithm,
    /// Validity of renewed certs (default `8760h`).
    #[serde(default)]
    pub validity: Option<String>,
    /// Where backups go (default `<cert_dir>/../kubecert-backup`).
    #[serde(default)]
    pub backup_dir: Option<String>,
    /// Fixed clock, RFC 3339.
    #[serde(default)]
    pub now: Option<String>,
    /// Sign even when the CA has expired or is not yet valid.
    #[serde(default)]
    pub allow_expired_ca: bool,
    /// Renew a certificate even when it was not issued by the CA that will sign it, or its
    /// subject, SANs or usages are not what kubeadm issues for its row (logged at warn).
    #[serde(default)]
    pub allow_foreign_identity: bool,
    /// Inventory names (or `["all"]`) whose renewal may be impossible without failing the
    /// run: a due certificate whose CA key is absent (externally managed) or whose file is
    /// missing is otherwise listed in the result's `unrenewable` (CLI: exit 4).
    #[serde(default)]
    pub allow_unrenewable: Vec<String>,
}

/// What happened to one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RenewAction {
    /// A new key and cert were installed.
    Renewed,
    /// Dry run: would be renewed.
    WouldRenew,
    /// Not due (outside `within`).
    Skipped,
    /// The file is absent (kubeadm: `MISSING!`).
    Missing,
    /// Its CA key is absent (kubeadm: `Detected external ...`).
    ExternallyManaged,
}

/// The attributes of a certificate before or after renewal.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertSnapshot {
    /// NotAfter, RFC 3339.
    pub not_after: String,
    /// NotBefore, RFC 3339.
    pub not_before: String,
    /// Serial (hex); null for a dry-run plan.
    pub serial: Option<String>,
    /// Subject.
    pub subject: String,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ip_addresses: Vec<String>,
    /// Extended key usages.
    pub ext_key_usage: Vec<String>,
    /// Key algorithm.
    pub key_algorithm: String,
}

impl CertSnapshot {
    /// The snapshot of a parsed certificate: the one constructor renew, csr and the
    /// certificates API use.
    pub fn of(info: &CertInfo) -> Self {
        CertSnapshot {
            not_after: timefmt::rfc3339(info.not_after),
            not_before: timefmt::rfc3339(info.not_before),
            serial: Some(info.serial.clone()),
            subject: info.subject.clone(),
            dns_names: info.dns_names.clone(),
            ip_addresses: info.ip_addresses.iter().map(|i| i.to_string()).collect(),
            ext_key_usage: info.ext_key_usage.clone(),
            key_algorithm: info.key_algorithm.to_string(),
        }
    }
}

/// One certificate's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RenewItem {
    /// Inventory name.
    pub name: String,
    /// kubeadm's long name.
    pub long_name: String,
    /// What happened.
    pub action: RenewAction,
    /// Why.
    pub reason: String,
    /// Issuing CA.
    pub ca_name: String,
    /// Before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<CertSnapshot>,
    /// After (or planned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<CertSnapshot>,
    /// NotAfter was capped at the CA's NotAfter.
    pub capped_at_ca: bool,
    /// Files written (or to be written).
    pub files: Vec<String>,
}

/// Result of `renew`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RenewResult {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The backup of every replaced file (null when nothing was written).
    pub backup_dir: Option<String>,
    /// Per certificate.
    pub certificates: Vec<RenewItem>,
    /// Components whose certificates changed and must restart.
    pub components_to_restart: Vec<Component>,
    /// Whether anything changed (or would change, in a dry run).
    pub changed: bool,
    /// What recovery of an interrupted earlier run did, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
    /// Due certificates that could not be renewed (`externally-managed`: their CA key is
    /// absent; `missing`: the file is absent) and that `allow_unrenewable` did not accept.
    /// Non-empty means the run failed (the CLI exits 4). A missing super-admin.conf is never
    /// listed (kubeadm < 1.29 and joined control-plane nodes have none).
    #[serde(default)]
    pub unrenewable: Vec<String>,
}

/// The message of a run whose `unrenewable` is not empty (None when it is empty).
pub fn unrenewable_message(r: &RenewResult) -> Option<String> {
    if r.unrenewable.is_empty() {
        return None;
    }
    let rows: Vec<String> = r
        .unrenewable
        .iter()
        .map(|n| {
            let why = r.certificates.iter().find(|i| &i.name == n).map(|i| {
                let what = match i.action {
                    RenewAction::Missing => "missing",
                    _ => "externally managed",
                };
                format!(" ({what}: {})", i.reason)
            });
            format!("{n}{}", why.unwrap_or_default())
        })
        .collect();
    let (count, verb, them) = match r.unrenewable.len() {
        1 => ("1 certificate".to_string(), "was", "it"),
        n => (format!("{n} certificates"), "were", "them"),
    };
    Some(format!(
        "{count} due for renewal {verb} not renewed: {}; renew {them} by other means, or accept this with --allow-unrenewable {} (or all)",
        rows.join(", "),
        r.unrenewable.join(",")
    ))
}

/// Resolved renew options.
#[derive(Debug, Clone)]
pub struct RenewOptions {
    /// Layout.
    pub layout: Layout,
    /// Selected rows.
    pub entries: Vec<&'static Entry>,
    /// Whether `all` was asked.
    pub all: bool,
    /// Threshold (seconds).
    pub within: Option<i64>,
    /// Dry run.
    pub dry_run: bool,
    /// Key algorithm.
    pub key_algorithm: KeyAlgorithm,
    /// Validity (seconds).
    pub validity: i64,
    /// Backup root.
    pub backup_root: PathBuf,
    /// Clock.
    pub now: i64,
    /// Allow signing under an expired or not yet valid CA.
    pub allow_expired_ca: bool,
    /// Allow renewing a certificate of a foreign issuer or identity.
    pub allow_foreign_identity: bool,
    /// How long to wait for the PKI lock.
    pub lock_timeout: Duration,
    /// Rows whose renewal may be impossible without failing the run.
    pub allow_unrenewable: Vec<&'static Entry>,
}

/// Resolves the `names` list against the inventory (kubeadm's error for unknown names).
pub fn select(names: &[String], layout: &Layout) -> Result<(Vec<&'static Entry>, bool)> {
    let all = names.is_empty() || names.iter().any(|n| n == "all");
    if all {
        if names.len() > 1 {
            return Err(Error::InvalidArgument(
                "`all` cannot be combined with other names".into(),
            ));
        }
        return Ok((inventory::renewable(layout.external_etcd).collect(), true));
    }
    let mut out: Vec<&'static Entry> = Vec::new();
    for n in names {
        let e = inventory::renewable(layout.external_etcd)
            .find(|e| e.name == n)
            .ok_or_else(|| Error::UnknownCertificate(n.clone()))?;
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out.sort_by_key(|e| e.name);
    Ok((out, false))
}

impl RenewParams {
    /// Resolves defaults and parses durations/times.
    pub fn resolve(&self) -> Result<RenewOptions> {
        let layout = self.location.layout();
        // An empty list is a caller's mistake (e.g. an unset variable), never "everything".
        if self.names.is_empty() {
            return Err(Error::InvalidArgument(
                "names must not be empty: give inventory names or [\"all\"]".into(),
            ));
        }
        let (entries, all) = select(&self.names, &layout)?;
        let parse = |s: &str| timefmt::parse_duration(s).map_err(Error::from);
        let validity = match &self.validity {
            Some(v) => parse(v)?,
            None => issue::DEFAULT_VALIDITY_SECONDS,
        };
        if validity <= 0 {
            return Err(Error::InvalidArgument("--validity must be positive".into()));
        }
        let within = self.within.as_deref().map(parse).transpose()?;
        let allow_unrenewable = if self.allow_unrenewable.is_empty() {
            vec![]
        } else {
            select(&self.allow_unrenewable, &layout)?.0
        };
        let now = match &self.now {
            Some(s) => timefmt::parse_rfc3339(s)?,
            None => timefmt::now_unix(),
        };
        let backup_root = match &self.backup_dir {
            Some(b) => PathBuf::from(b),
            None => default_backup_root(&layout.cert_dir),
        };
        Ok(RenewOptions {
            layout,
            entries,
            all,
            within,
            dry_run: self.dry_run,
            key_algorithm: self.key_algorithm,
            validity,
            backup_root,
            now,
            allow_expired_ca: self.allow_expired_ca,
            allow_foreign_identity: self.allow_foreign_identity,
            lock_timeout: Duration::from_secs(300),
            allow_unrenewable,
        })
    }
}

/// `<cert_dir>/../kubecert-backup` (e.g. /etc/kubernetes/kubecert-backup).
pub fn default_backup_root(cert_dir: &Path) -> PathBuf {
    let abs = std::path::absolute(cert_dir).unwrap_or_else(|_| cert_dir.to_path_buf());
    abs.parent()
        .map(|p| p.join("kubecert-backup"))
        .unwrap_or_else(|| PathBuf::from("kubecert-backup"))
}

/// A backup dir name for `now`: `20261129T041500Z`.
pub fn stamp(now: i64) -> String {
    timefmt::rfc3339(now).replace(['-', ':'], "")
}

/// Takes the PKI lock and recovers an interrupted run. Every mutating command starts here.
pub fn lock_and_recover(layout: &Layout, timeout: Duration) -> Result<(Lock, Option<String>)> {
    if !layout.cert_dir.is_dir() {
        return Err(Error::io(
            &layout.cert_dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "cert dir not found"),
        ));
    }
    let lock = Lock::acquire(&layout.cert_dir, timeout)?;
    let recovered = store::recover(&lock)?;
    Ok((lock, recovered))
}

/// Stands in for the new key when a dry run builds the writes of its plan (never written).
const DRY_RUN_KEY_PLACEHOLDER: &str = "kubecert dry-run: the new key would go here\n";

/// A planned renewal of one row.
struct Plan {
    entry: &'static Entry,
    found: Box<Found>,
    ca: CaId,
    alg: KeyAlgorithm,
    spec: LeafSpec,
}

/// The files a new certificate + key become, for renew, csr import and the certificates API:
/// the PKI `.key`/`.crt`, or a kubeconfig's referenced files and/or its embedded data (with the
/// cluster CA re-embedded from `ca_pem`). `cert_pem` is written as given (renew appends the
/// old file's chain for PKI rows). A kubeconfig user without a client key is refused: the new
/// key would have nowhere to go.
pub(crate) fn install_writes(
    e: &Entry,
    found: &Found,
    layout: &Layout,
    cert_pem: &str,
    key_pem: &str,
    ca_pem: Option<&[u8]>,
) -> Result<Vec<Write_>> {
    let mut out = Vec::new();
    match e.location {
        Location::Pki { base } => {
            out.push(Write_ {
                target: layout.pki_key(base),
                contents: key_pem.as_bytes().to_vec(),
                mode: 0o600,
                force_mode: true,
            });
            out.push(Write_ {
                target: layout.pki_crt(base),
                contents: cert_pem.as_bytes().to_vec(),
                mode: 0o644,
                force_mode: false,
            });
        }
        Location::Kubeconfig { .. } => {
            let kc = found.kubeconfig.as_ref().ok_or_else(|| Error::Kubeconfig {
                path: layout.primary_path(e),
                reason: "not loaded".into(),
            })?;
            if matches!(kc.client_key, Source::Absent) {
                return Err(Error::Kubeconfig {
                    path: kc.path.clone(),
                    reason: format!(
                        "user {} has no client key to replace, so the new key has nowhere to go",
                        kc.user
                    ),
                });
            }
            match (&kc.client_cert, &kc.client_key) {
                (Source::File(c), Source::File(k)) if c == k => out.push(Write_ {
                    target: c.clone(),
                    contents: format!("{cert_pem}{key_pem}").into_bytes(),
                    mode: 0o600,
                    force_mode: true,
                }),
                (cs, ks) => {
                    if let Source::File(k) = ks {
                        out.push(Write_ {
                            target: k.clone(),
                            contents: key_pem.as_bytes().to_vec(),
                            mode: 0o600,
                            force_mode: true,
                        });
                    }
                    if let Source::File(c) = cs {
                        out.push(Write_ {
                            target: c.clone(),
                            contents: cert_pem.as_bytes().to_vec(),
                            mode: 0o644,
                            force_mode: false,
                        });
                    }
                }
            }
            let embedded_cert = matches!(kc.client_cert, Source::Embedded(_));
            let embedded_key = matches!(kc.client_key, Source::Embedded(_));
            if embedded_cert || embedded_key || matches!(kc.ca, Source::Embedded(_)) {
                let text = kc.rewrite_embedded(
                    embedded_cert.then_some(cert_pem.as_bytes()),
                    embedded_key.then_some(key_pem.as_bytes()),
                    ca_pem,
                )?;
                if text != kc.text {
                    out.push(Write_ {
                        target: kc.path.clone(),
                        contents: text.into_bytes(),
                        mode: 0o600,
                        force_mode: false,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Checks an issued certificate against what it replaces (never trust our own signer blindly).
fn verify_issued(plan: &Plan, der: &[u8], ca_der: &[u8], key: &PrivateKey) -> Result<CertInfo> {
    let name = plan.entry.name;
    let fail = |reason: String| Error::Validation {
        cert: name.to_string(),
        reason,
    };
    let info = cert::parse_der(der).map_err(|e| fail(crate::error::report(&e)))?;
    if !cert::signed_by(der, ca_der) {
        return Err(fail(format!("not signed by {}", plan.ca.name())));
    }
    if !key.matches(&info) {
        return Err(fail("new key does not match new certificate".into()));
    }
    let old = &plan.found.cert.info;
    if info.subject_der != old.subject_der {
        return Err(fail(
            "subject differs from the certificate it replaces".into(),
        ));
    }
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    if info.san_set() != old.san_set() {
        return Err(fail("SANs differ from the certificate they replace".into()));
    }
    if set(&info.ext_key_usage) != set(&old.ext_key_usage) {
        return Err(fail("extended key usages differ".into()));
    }
    Ok(info)
}

/// The certificates of `chain` that, in file order, each sign the one before (starting with
/// `leaf`): the chain that verifies it. Stops at the first one that does not link, and at a
/// repeat, so unrelated certificates and duplicates are not carried over.
pub(crate) fn verified_chain<'a>(leaf: &[u8], chain: &'a [Vec<u8>]) -> Vec<&'a Vec<u8>> {
    let mut out: Vec<&Vec<u8>> = Vec::new();
    let mut cur: &[u8] = leaf;
    for c in chain {
        if c.as_slice() == cur || out.contains(&c) || !cert::signed_by(cur, c) {
            break;
        }
        out.push(c);
        cur = c;
    }
    out
}

/// kubeadm's text line for an item.
pub fn item_line(i: &RenewItem) -> String {
    match i.action {
        RenewAction::Renewed => format!("{} renewed", i.long_name),
        RenewAction::Missing => format!("MISSING! {}", i.long_name),
        RenewAction::ExternallyManaged => {
            let base = CaId::from_name(&i.ca_name)
                .map(|c| c.base_name())
                .unwrap_or("ca");
            format!("Detected external {base}, {} can't be renewed", i.long_name)
        }
        RenewAction::WouldRenew => {
            format!("[dry-run] {} would be renewed: {}", i.long_name, i.reason)
        }
        RenewAction::Skipped => format!("{} skipped: {}", i.long_name, i.reason),
    }
}

/// "couldn't load <ca> certificate authority from <dir>" with the reason: which file, and
/// whether it is absent or what is wrong with it.
pub(crate) fn ca_missing_error(layout: &Layout, ca: CaId, cas: &Cas) -> Error {
    let reason = match cas.get(ca).map(|m| &m.cert) {
        Some(Material::Broken(err)) => crate::error::report(err),
        Some(Material::Present(_)) => "it is present and readable".to_string(),
        Some(Material::Missing) | None => format!(
            "{} does not exist",
            layout.primary_path(ca.entry()).display()
        ),
    };
    Error::CaMissing {
        ca: ca.name().into(),
        dir: layout.cert_dir.clone(),
        reason,
    }
}

/// Refuses to re-sign a certificate that the CA about to sign it did not issue (checked by
/// signature with that CA's public key, never by name), or whose subject, SANs or usages are
/// not what kubeadm issues for its inventory row. With `allow`, logs the mismatch at warn
/// and returns it (for the item's reason) instead.
pub(crate) fn check_identity(
    e: &Entry,
    found: &Found,
    ca: CaId,
    ca_cert: &cert::Cert,
    layout: &Layout,
    allow: bool,
) -> Result<Option<String>> {
    let mut why: Vec<String> = Vec::new();
    if !cert::signed_by(&found.cert.der, &ca_cert.der) {
        why.push(format!(
            "was not issued by {} (its signature does not verify with the public key of {}; its issuer is {:?})",
            ca.name(),
            layout.primary_path(ca.entry()).display(),
            found.cert.info.issuer
        ));
    }
    let mismatches = e.identity_mismatches(&found.cert.info);
    if !mismatches.is_empty() {
        why.push(format!(
            "is not what kubeadm issues for {}: {}",
            e.name,
            mismatches.join("; ")
        ));
    }
    if why.is_empty() {
        return Ok(None);
    }
    let reason = why.join(", and ");
    if !allow {
        return Err(Error::ForeignIdentity {
            cert: e.name.to_string(),
            path: found.cert_path.clone(),
            reason,
        });
    }
    tracing::warn!(
        cert = e.name,
        path = %found.cert_path.display(),
        reason = %reason,
        "renewing a certificate kubeadm would not have issued (allow_foreign_identity)"
    );
    Ok(Some(reason))
}

fn ca_expired_error(ca: CaId, c: &CertInfo) -> Error {
    Error::CaExpired {
        ca: ca.name().to_string(),
        not_after: timefmt::rfc3339(c.not_after),
    }
}

/// Runs a renewal.
pub fn renew(o: &RenewOptions) -> Result<RenewResult> {
    let layout = &o.layout;
    let (lock, recovered) = if o.dry_run {
        (None, None)
    } else {
        let (l, r) = lock_and_recover(layout, o.lock_timeout)?;
        (Some(l), r)
    };
    let cas = Cas::load(layout);
    let mut items: Vec<RenewItem> = Vec::new();
    let mut plans: Vec<(usize, Plan)> = Vec::new();
    let mut unrenewable: Vec<String> = Vec::new();
    for e in &o.entries {
        let ca =
            e.ca.ok_or_else(|| Error::UnknownCertificate(e.name.to_string()))?;
        let mut item = RenewItem {
            name: e.name.to_string(),
            long_name: e.long_name.to_string(),
            action: RenewAction::Missing,
            reason: String::new(),
            ca_name: ca.name().to_string(),
            old: None,
            new: None,
            capped_at_ca: false,
            files: vec![],
        };
        let found = match pki::load(layout, e) {
            Material::Missing => {
                item.reason = format!("{} does not exist", layout.primary_path(e).display());
                // super-admin.conf exists only on the first control-plane node of kubeadm
                // >= 1.29: its absence is normal, as in `check`.
                if e.name != "super-admin.conf" && !o.allow_unrenewable.contains(e) {
                    unrenewable.push(e.name.to_string());
                }
                items.push(item);
                continue;
            }
            Material::Broken(err) => return Err(err),
            Material::Present(f) => f,
        };
        item.old = Some(CertSnapshot::of(&found.cert.info));
        let ca_mat = cas
            .get(ca)
            .ok_or_else(|| ca_missing_error(layout, ca, &cas))?;
        let Some(ca_cert) = ca_mat.cert() else {
            return Err(ca_missing_error(layout, ca, &cas));
        };
        let residual = found.cert.info.not_after - o.now;
        if ca_mat.externally_managed() {
            item.action = RenewAction::ExternallyManaged;
            item.reason = format!("{} is absent", layout.ca_key(ca).display());
            let due = o.within.is_none_or(|w| residual <= w);
            if due && !o.allow_unrenewable.contains(e) {
                unrenewable.push(e.name.to_string());
            }
            items.push(item);
            continue;
        }
        if let Some(w) = o.within {
            if residual > w {
                item.action = RenewAction::Skipped;
                item.reason = format!(
                    "expires in {}, outside --within {}",
                    timefmt::short_human_duration(residual),
                    timefmt::format_duration(w)
                );
                items.push(item);
                continue;
            }
        }
        if !ca_cert.info.is_ca {
            return Err(Error::NotACa {
                ca: ca.name().into(),
            });
        }
        if ca_cert.info.not_after < o.now && !o.allow_expired_ca {
            return Err(ca_expired_error(ca, &ca_cert.info));
        }
        if ca_cert.info.not_before > o.now && !o.allow_expired_ca {
            return Err(Error::CaNotYetValid {
                ca: ca.name().to_string(),
                not_before: timefmt::rfc3339(ca_cert.info.not_before),
            });
        }
        let overridden = check_identity(e, &found, ca, ca_cert, layout, o.allow_foreign_identity)?;
        let not_before = o.now - issue::BACKDATE_SECONDS;
        let mut not_after = o.now + o.validity;
        // An expired CA the user insisted on cannot cap anything: the leaf would end before it
        // starts. kubeadm does not cap at all; kubecert caps whenever the CA is still valid.
        let ca_expired = ca_cert.info.not_after < o.now;
        let capped = !ca_expired && not_after > ca_cert.info.not_after;
        if capped {
            not_after = ca_cert.info.not_after;
        }
        if not_after <= not_before {
            return Err(Error::Validation {
                cert: e.name.into(),
                reason: "its CA expires before the new certificate would start".into(),
            });
        }
        let mut spec = LeafSpec::from_existing(&found.cert.info, not_before, not_after);
        spec.normalize();
        let alg = o.key_algorithm.resolve(&found.cert.info.key_algorithm);
        let mut reason = match o.within {
            Some(w) => format!(
                "expires in {}, within --within {}",
                timefmt::short_human_duration(residual),
                timefmt::format_duration(w)
            ),
            None => "unconditional renewal".to_string(),
        };
        if capped {
            reason.push_str(&format!(
                "; NotAfter capped at the {} NotAfter {}",
                ca.name(),
                timefmt::rfc3339(not_after)
            ));
        }
        if let Some(why) = overridden {
            reason.push_str(&format!(
                "; renewed despite a foreign identity (allow_foreign_identity): it {why}"
            ));
        }
        item.capped_at_ca = capped;
        item.action = if o.dry_run {
            RenewAction::WouldRenew
        } else {
            RenewAction::Renewed
        };
        item.reason = reason;
        item.new = Some(CertSnapshot {
            not_after: timefmt::rfc3339(not_after),
            not_before: timefmt::rfc3339(not_before),
            serial: None,
            subject: found.cert.info.subject.clone(),
            dns_names: spec.dns_names.clone(),
            ip_addresses: spec.ip_addresses.iter().map(|i| i.to_string()).collect(),
            ext_key_usage: spec.ext_key_usage.clone(),
            key_algorithm: alg.display().to_string(),
        });
        let idx = items.len();
        items.push(item);
        plans.push((
            idx,
            Plan {
                entry: e,
                found,
                ca,
                alg,
                spec,
            },
        ));
    }
    // Load each CA key needed once.
    let mut ca_keys: Vec<(CaId, PrivateKey)> = Vec::new();
    for (_, p) in &plans {
        if ca_keys.iter().any(|(c, _)| *c == p.ca) {
            continue;
        }
        let path = layout.ca_key(p.ca);
        let bytes = cert::read_file(&path)?;
        let key = cert::parse_private_key(&bytes).map_err(|source| Error::Pem {
            path: path.clone(),
            source,
        })?;
        let ca_cert = cas
            .get(p.ca)
            .and_then(|c| c.cert())
            .ok_or_else(|| ca_missing_error(layout, p.ca, &cas))?;
        if !key.matches(&ca_cert.info) {
            return Err(Error::Validation {
                cert: p.ca.name().into(),
                reason: format!("{} does not match the CA certificate", path.display()),
            });
        }
        ca_keys.push((p.ca, key));
    }
    let ca_pem = cas
        .get(CaId::Ca)
        .and_then(|c| c.cert())
        .map(|c| issue::cert_pem(&c.der).into_bytes());
    // Issue (in parallel: key generation dominates) unless this is a dry run.
    let mut all_writes: Vec<Write_> = Vec::new();
    if o.dry_run {
        // Build the writes the apply would make (with the old certificate and a placeholder
        // key standing in for the new ones) and run every check the apply runs on them, so
        // the plan fails exactly where the apply would.
        let mut writes: Vec<Write_> = Vec::new();
        for (idx, p) in &plans {
            let cert_pem = issue::cert_pem(&p.found.cert.der);
            writes.extend(install_writes(
                p.entry,
                &p.found,
                layout,
                &cert_pem,
                DRY_RUN_KEY_PLACEHOLDER,
                ca_pem.as_deref(),
            )?);
            let files = planned_files(p, layout);
            items[*idx].files = files;
        }
        store::preflight(&writes)?;
    } else {
        type Issued = Result<(usize, CertInfo, Vec<Write_>, usize)>;
        let results: Vec<Issued> = std::thread::scope(|s| {
            let handles: Vec<_> = plans
                .iter()
                .map(|(idx, p)| {
                    let ca_keys = &ca_keys;
                    let cas = &cas;
                    let ca_pem = ca_pem.as_deref();
                    s.spawn(move || -> Issued {
                        let issue_err = |e: issue::IssueError| Error::Issue {
                            cert: p.entry.name.into(),
                            reason: e.to_string(),
                        };
                        let ca_key = ca_keys
                            .iter()
                            .find(|(c, _)| *c == p.ca)
                            .map(|(_, k)| k)
                            .ok_or_else(|| Error::CaKeyMissing {
                                ca: p.ca.name().into(),
                                path: layout.ca_key(p.ca),
                            })?;
                        let ca_cert = cas
                            .get(p.ca)
                            .and_then(|c| c.cert())
                            .ok_or_else(|| ca_missing_error(layout, p.ca, cas))?;
                        let (new_key, key_pem) = issue::new_key(p.alg).map_err(issue_err)?;
                        let der = issue::sign_leaf(
                            &p.spec,
                            &new_key.pair,
                            &CaSigner {
                                cert: ca_cert,
                                key: ca_key,
                            },
                        )
                        .map_err(issue_err)?;
                        let info = verify_issued(p, &der, &ca_cert.der, &new_key)?;
                        let mut cert_pem = issue::cert_pem(&der);
                        let mut dropped = 0;
                        if matches!(p.entry.location, Location::Pki { .. }) {
                            // Keep the chain that followed the leaf in the old file only as
                            // far as it verifies the new leaf; junk is not carried over.
                            let keep = verified_chain(&der, &p.found.cert.chain);
                            dropped = p.found.cert.chain.len() - keep.len();
                            for c in keep {
                                cert_pem.push_str(&issue::cert_pem(c));
                            }
                        }
                        let w =
                            install_writes(p.entry, &p.found, layout, &cert_pem, &key_pem, ca_pem)?;
                        Ok((*idx, info, w, dropped))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Issue {
                            cert: "?".into(),
                            reason: "issuing thread panicked".into(),
                        })
                    })
                })
                .collect()
        });
        for r in results {
            let (idx, info, writes, dropped) = r?;
            let item = &mut items[idx];
            if dropped > 0 {
                item.reason.push_str(&format!(
                    "; dropped {dropped} certificate{} that followed the leaf but {} not its chain to {}",
                    if dropped == 1 { "" } else { "s" },
                    if dropped == 1 { "is" } else { "are" },
                    item.ca_name
                ));
            }
            item.new = Some(CertSnapshot::of(&info));
            item.files = writes
                .iter()
                .map(|w| w.target.display().to_string())
                .collect();
            all_writes.extend(writes);
        }
    }
    let mut backup_dir = None;
    if !all_writes.is_empty() {
        if let Some(lock) = &lock {
            backup_dir = store::commit(lock, &all_writes, Some(&o.backup_root), &stamp(o.now))?;
        }
    }
    let components = inventory::components_of(
        items
            .iter()
            .filter(|i| matches!(i.action, RenewAction::Renewed | RenewAction::WouldRenew))
            .filter_map(|i| inventory::find(&i.name)),
    );
    let changed = items
        .iter()
        .any(|i| matches!(i.action, RenewAction::Renewed | RenewAction::WouldRenew));
    drop(lock);
    Ok(RenewResult {
        dry_run: o.dry_run,
        backup_dir: backup_dir.map(|p| p.display().to_string()),
        certificates: items,
        components_to_restart: components,
        changed,
        recovered,
        unrenewable,
    })
}

fn planned_files(p: &Plan, layout: &Layout) -> Vec<String> {
    match p.entry.location {
        Location::Pki { base } => vec![
            layout.pki_key(base).display().to_string(),
            layout.pki_crt(base).display().to_string(),
        ],
        Location::Kubeconfig { .. } => {
            let mut v = Vec::new();
            if let Some(kc) = &p.found.kubeconfig {
                for s in [&kc.client_key, &kc.client_cert] {
                    if let Source::File(f) = s {
                        let f = f.display().to_string();
                        if !v.contains(&f) {
                            v.push(f);
                        }
                    }
                }
                v.push(kc.path.display().to_string());
            }
            v
        }
    }
}

/// The text kubeadm prints for a renewal, plus kubecert's summary.
pub fn render_text(r: &RenewResult, all: bool) -> String {
    let mut s = String::new();
    if let Some(rec) = &r.recovered {
        s.push_str(&format!("[renew] {rec}\n"));
    }
    for i in &r.certificates {
        s.push_str(&item_line(i));
        s.push('\n');
    }
    if all && !r.dry_run {
        s.push_str("\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates.\n");
    }
    let n = r
        .certificates
        .iter()
        .filter(|i| matches!(i.action, RenewAction::Renewed | RenewAction::WouldRenew))
        .count();
    let certs = if n == 1 {
        "certificate"
    } else {
        "certificates"
    };
    if !r.changed {
        if r.dry_run {
            s.push_str("[dry-run] nothing would change\n");
        } else {
            s.push_str("No certificate changed; no component needs a restart.\n");
        }
    } else if r.components_to_restart.is_empty() {
        if r.dry_run {
            s.push_str(&format!(
                "[dry-run] {n} {certs} would be renewed; no component would need a restart\n"
            ));
        } else {
            s.push_str(&format!(
                "{n} {certs} renewed; no component needs a restart.\n"
            ));
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

/// Parameters of `restore`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestoreParams {
    /// A backup dir reported by `renew` or `csr-import`.
    pub backup_dir: String,
    /// PKI dir (its lock serializes the restore).
    #[serde(default)]
    pub cert_dir: Option<String>,
    /// Kubeconfig dir.
    #[serde(default)]
    pub kubeconfig_dir: Option<String>,
    /// The backup root: `backup_dir` must be a directory directly under it (default
    /// `<cert_dir>/../kubecert-backup`, where renew puts backups by default).
    #[serde(default)]
    pub backup_root: Option<String>,
    /// Report only.
    #[serde(default)]
    pub dry_run: bool,
}

/// Result of `restore`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResult {
    /// Files put back (or that would be).
    pub restored: Vec<String>,
    /// Whether anything changed.
    pub changed: bool,
    /// Dry run.
    pub dry_run: bool,
}

/// The files a backup of `layout` may put back: the certificate and key of every inventory
/// row, every kubeconfig of the inventory and the files those kubeconfigs reference today,
/// and kubelet.conf — exactly what renew, csr import and kubelet-conf write. Lexically
/// normalised.
pub fn restorable_targets(layout: &Layout) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for e in inventory::rows(false) {
        match e.location {
            Location::Pki { base } => {
                out.insert(store::normalize(&layout.pki_crt(base)));
                out.insert(store::normalize(&layout.pki_key(base)));
            }
            Location::Kubeconfig { file } => {
                let path = layout.kubeconfig_dir.join(file);
                if let Ok(kc) = pki::kubeconfig::Kubeconfig::load(&path) {
                    for s in [&kc.client_cert, &kc.client_key] {
                        if let Source::File(f) = s {
                            out.insert(store::normalize(f));
                        }
                    }
                }
                out.insert(store::normalize(&path));
            }
        }
    }
    out.insert(store::normalize(
        &layout.kubeconfig_dir.join("kubelet.conf"),
    ));
    out
}

/// Puts a backup back in place through the same transaction machinery.
///
/// The backup dir must be a directory directly under the backup root (not a symlink), and
/// every manifest entry must put an inventory file of this layout back from a plain file of
/// that dir ([`store::restore_writes`]); otherwise [`Error::BackupRefused`] and nothing is
/// written.
pub fn restore(p: &RestoreParams) -> Result<RestoreResult> {
    let layout = Layout::new(
        p.cert_dir.as_deref().unwrap_or(pki::DEFAULT_CERT_DIR),
        p.kubeconfig_dir
            .as_deref()
            .unwrap_or(pki::DEFAULT_KUBECONFIG_DIR),
        None,
    );
    let root = match &p.backup_root {
        Some(r) => PathBuf::from(r),
        None => default_backup_root(&layout.cert_dir),
    };
    let dir = store::backup_dir_in(&root, Path::new(&p.backup_dir))?;
    let manifest = store::read_manifest(&dir)?;
    let writes = store::restore_writes(&dir, &manifest, &restorable_targets(&layout))?;
    let changed_writes: Vec<Write_> = writes
        .into_iter()
        .filter(|w| {
            crate::pki::fsread::read(&w.target)
                .map(|b| b != w.contents)
                .unwrap_or(true)
        })
        .collect();
    let restored = changed_writes
        .iter()
        .map(|w| w.target.display().to_string())
        .collect();
    let changed = !changed_writes.is_empty();
    if !p.dry_run && changed {
        let (lock, _) = lock_and_recover(&layout, Duration::from_secs(300))?;
        store::commit(&lock, &changed_writes, None, "restore")?;
    }
    Ok(RestoreResult {
        restored,
        changed,
        dry_run: p.dry_run,
    })
}
