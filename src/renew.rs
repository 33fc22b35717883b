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
use crate::pki::install::install_writes;
use crate::pki::inventory::{self, CaId, Component, Entry, Location};
use crate::pki::issue::{self, CaSigner, KeyAlgorithm, LeafSpec};
use crate::pki::kubeconfig::Source;
use crate::pki::snapshot::CertSnapshot;
use crate::pki::store::{self, Store, Write_};
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
    /// The kubeadm configuration: `config` (a file; over RPC only the agent's
    /// `--kubeadm-config`) or `kubeconfig` (the kubeadm-config ConfigMap; over RPC only the
    /// agent's `--api-kubeconfig`), and the node facts `node_name`, `advertise_address`
    /// (top-level params). Renewed certificates get its `certificateValidityPeriod` and keys
    /// of its `encryptionAlgorithm` (a key of another algorithm is replaced by a new key of
    /// the configured one). Not with `validity` or a `key_algorithm` other than `same`.
    #[serde(flatten)]
    pub kubeadm: crate::config::ConfigParams,
    /// With `config` or `kubeconfig`: issue the apiserver and etcd server/peer certificates with the SANs
    /// kubeadm's rules give for that configuration, adding the missing ones to the existing
    /// SANs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reconcile_sans: bool,
    /// With `reconcile_sans`: the SANs become exactly the expected ones (extras dropped).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact: bool,
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
    /// What `reconcile_sans` changed in its SANs (absent without `reconcile_sans`, and for a
    /// certificate without a SAN rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sans_reconciled: Option<SansReconciled>,
}

/// The SANs `reconcile_sans` added to (and with `exact` dropped from) a certificate, as
/// `DNS:name` / `IP:address`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SansReconciled {
    /// Expected by kubeadm's rule and missing: added.
    pub added: Vec<String>,
    /// Not expected (`exact` only): dropped.
    pub dropped: Vec<String>,
}

impl SansReconciled {
    /// `SANs added: a, b; SANs dropped: c`, or `SANs already as configured`.
    pub fn line(&self) -> String {
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("SANs added: {}", self.added.join(", ")));
        }
        if !self.dropped.is_empty() {
            parts.push(format!("SANs dropped: {}", self.dropped.join(", ")));
        }
        if parts.is_empty() {
            parts.push("SANs already as configured".to_string());
        }
        parts.join("; ")
    }
}

impl RenewItem {
    /// A leaf row's item before anything is decided (action `missing`), with the row's CA and
    /// its current certificate and key: `None` when the file is absent (the reason then says
    /// which file does not exist).
    ///
    /// Errors: a row without a CA ([`Error::UnknownCertificate`]); a file that exists but
    /// cannot be read or parsed.
    pub fn pending(layout: &Layout, e: &Entry) -> Result<(CaId, RenewItem, Option<Box<Found>>)> {
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
            sans_reconciled: None,
        };
        let found = match pki::load(layout, e) {
            Material::Missing => {
                item.reason = format!("{} does not exist", layout.primary_path(e).display());
                None
            }
            Material::Broken(err) => return Err(err),
            Material::Present(f) => Some(f),
        };
        Ok((ca, item, found))
    }
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
    /// The kubeadm configuration renewed certificates follow (validity, key algorithm, and
    /// with `reconcile` the SANs); its advertise address already filled from the manifest
    /// when it has none.
    pub config: Option<crate::config::KubeadmConfig>,
    /// SAN reconciliation (`None`: SANs kept as they are).
    pub reconcile: Option<Reconcile>,
}

/// How `--reconcile-sans` changes the SANs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconcile {
    /// Add the expected SANs that are missing; keep the others.
    Add,
    /// The SANs become exactly the expected ones (`--exact`).
    Exact,
}

impl RenewParams {
    /// Resolves defaults and parses durations/times; a `kubeconfig` param fails (see
    /// [`RenewParams::resolve_with`]).
    pub fn resolve(&self) -> Result<RenewOptions> {
        self.resolve_with(&crate::config::configmap_not_compiled_in)
    }

    /// [`RenewParams::resolve`], reading the kubeadm-config ConfigMap with `read_configmap`
    /// when `kubeconfig` is given.
    pub fn resolve_with(
        &self,
        read_configmap: crate::config::ConfigMapReader<'_>,
    ) -> Result<RenewOptions> {
        let layout = self.location.layout();
        // An empty list is a caller's mistake (e.g. an unset variable), never "everything".
        if self.names.is_empty() {
            return Err(Error::InvalidArgument(
                "names must not be empty: give inventory names or [\"all\"]".into(),
            ));
        }
        let (entries, all) = inventory::select(&self.names, &layout)?;
        let parse = |s: &str| timefmt::parse_duration(s).map_err(Error::from);
        let validity = match &self.validity {
            Some(v) => parse(v)?,
            None => issue::DEFAULT_VALIDITY_SECONDS,
        };
        let (config, reconcile) = self.resolve_config(&layout, read_configmap)?;
        if validity <= 0 {
            return Err(Error::InvalidArgument("--validity must be positive".into()));
        }
        let within = self.within.as_deref().map(parse).transpose()?;
        let allow_unrenewable = if self.allow_unrenewable.is_empty() {
            vec![]
        } else {
            inventory::select(&self.allow_unrenewable, &layout)?.0
        };
        let now = match &self.now {
            Some(s) => timefmt::parse_rfc3339(s)?,
            None => timefmt::now_unix(),
        };
        let backup_root = match &self.backup_dir {
            Some(b) => PathBuf::from(b),
            None => store::default_backup_root(&layout.cert_dir),
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
            config,
            reconcile,
        })
    }

    /// Reads `config` (a typed error names the file and what is wrong) and checks the flags
    /// that go with it, before anything is read from the PKI.
    fn resolve_config(
        &self,
        layout: &Layout,
        read_configmap: crate::config::ConfigMapReader<'_>,
    ) -> Result<(Option<crate::config::KubeadmConfig>, Option<Reconcile>)> {
        if self.exact && !self.reconcile_sans {
            return Err(Error::InvalidArgument(
                "--exact needs --reconcile-sans (it says how the SANs are reconciled)".into(),
            ));
        }
        if !self.kubeadm.given() {
            if self.reconcile_sans {
                return Err(Error::InvalidArgument(
                    "--reconcile-sans needs --config (the kubeadm config file whose SANs the certificates get) or --kubeconfig (the kubeadm-config ConfigMap)".into(),
                ));
            }
            self.kubeadm.validate()?;
            return Ok((None, None));
        }
        if self.validity.is_some() {
            return Err(Error::InvalidArgument(
                "give either --validity and --config: with --config the validity is the configuration's certificateValidityPeriod".into(),
            ));
        }
        if self.key_algorithm != KeyAlgorithm::Same {
            return Err(Error::InvalidArgument(
                "give either --key-algorithm and --config: with --config new keys are of the configuration's encryptionAlgorithm".into(),
            ));
        }
        self.kubeadm.validate()?;
        let Some(mut cfg) = self.kubeadm.load(read_configmap)? else {
            return Ok((None, None));
        };
        crate::ops::endpoints::fill_node_facts(&mut cfg, &layout.kubeconfig_dir.join("manifests"));
        let reconcile = match (self.reconcile_sans, self.exact) {
            (false, _) => None,
            (true, false) => Some(Reconcile::Add),
            (true, true) => Some(Reconcile::Exact),
        };
        Ok((Some(cfg), reconcile))
    }
}

/// Stands in for the new key when a dry run builds the writes of its plan, and when
/// [`apply`] predicts its targets (never written).
const DRY_RUN_KEY_PLACEHOLDER: &str = "kubecert dry-run: the new key would go here\n";

/// Checks an issued certificate against what it replaces (never trust our own signer blindly).
fn verify_issued(plan: &RowPlan, der: &[u8], ca: &CertInfo, key: &PrivateKey) -> Result<CertInfo> {
    let name = plan.entry.name;
    let fail = |reason: crate::error::Reason| Error::Validation {
        cert: name.to_string(),
        reason,
    };
    let info = cert::parse_der(der).map_err(|e| fail(crate::error::Reason::of(e)))?;
    // From the signed parts `parse_der` kept and the CA's key parsed once (as check does).
    if !info.signed_by(der, ca) {
        return Err(fail(format!("not signed by {}", plan.ca.name()).into()));
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
    if info.san_set() != plan.sans {
        return Err(fail(if plan.sans == old.san_set() {
            "SANs differ from the certificate they replace".into()
        } else {
            "SANs differ from the reconciled SANs planned for it".into()
        }));
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
    if !found.cert.info.signed_by(&found.cert.der, &ca_cert.info) {
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

/// A planned renewal of one row: everything issuing its new certificate needs.
struct RowPlan {
    entry: &'static Entry,
    found: Box<Found>,
    ca: CaId,
    alg: KeyAlgorithm,
    spec: LeafSpec,
    /// The SANs the new certificate must carry ([`CertInfo::san_set`] form).
    sans: BTreeSet<String>,
}

/// What a renewal will do, decided before anything is written: per row what happens and why
/// (the dry run's answer), and for each row to renew which CA signs it and the new
/// certificate's validity, subject and SANs. Made by [`plan`], carried out by [`apply`].
pub struct RenewalPlan {
    items: Vec<RenewItem>,
    rows: Vec<(usize, RowPlan)>,
    unrenewable: Vec<String>,
    cas: Cas,
    ca_keys: Vec<(CaId, PrivateKey)>,
    ca_pem: Option<Vec<u8>>,
    layout: Layout,
    backup_root: PathBuf,
    now: i64,
}

impl RenewalPlan {
    /// Per certificate: what will happen and why (`new` holds the planned validity).
    pub fn items(&self) -> &[RenewItem] {
        &self.items
    }
}

/// Runs a renewal: [`plan`], then, unless `dry_run`, [`apply`] under the PKI lock.
pub fn renew(o: &RenewOptions) -> Result<RenewResult> {
    if o.dry_run {
        return dry_run(plan(o)?);
    }
    // Open the store (lock + recovery) before planning: recovering an interrupted run may
    // change the files the plan reads.
    let mut store = Store::open(&o.layout.cert_dir, o.lock_timeout)?;
    let p = plan(o)?;
    apply(p, &mut store)
}

/// Decides what a renewal does, writing nothing: reads the PKI, judges each selected row and,
/// for the rows to renew, loads (and checks) the CA keys that will sign them.
pub fn plan(o: &RenewOptions) -> Result<RenewalPlan> {
    let cas = Cas::load(&o.layout);
    let mut items: Vec<RenewItem> = Vec::new();
    let mut rows: Vec<(usize, RowPlan)> = Vec::new();
    let mut unrenewable: Vec<String> = Vec::new();
    for e in &o.entries {
        match plan_row(o, &cas, e)? {
            RowDecision::Keep {
                item,
                unrenewable: u,
            } => {
                if u {
                    unrenewable.push(e.name.to_string());
                }
                items.push(item);
            }
            RowDecision::Renew(item, row) => {
                // The keys are made after the plan: from the first row to renew on, seed
                // the RNG meanwhile (issue 18 item 4; a run that renews nothing, or a dry
                // run, does not pay for it).
                if !o.dry_run {
                    issue::seed_rng_in_background();
                }
                rows.push((items.len(), *row));
                items.push(item);
            }
        }
    }
    let ca_keys = load_ca_keys(&o.layout, &cas, &rows)?;
    let ca_pem = cas
        .get(CaId::Ca)
        .and_then(|c| c.cert())
        .map(|c| issue::cert_pem(&c.der).into_bytes());
    Ok(RenewalPlan {
        items,
        rows,
        unrenewable,
        cas,
        ca_keys,
        ca_pem,
        layout: o.layout.clone(),
        backup_root: o.backup_root.clone(),
        now: o.now,
    })
}

/// What [`plan_row`] decided for one row.
enum RowDecision {
    /// Nothing to issue (missing, externally managed, not due). `unrenewable`: a due row
    /// that cannot be renewed and that `allow_unrenewable` does not accept.
    Keep { item: RenewItem, unrenewable: bool },
    /// Renew it.
    Renew(RenewItem, Box<RowPlan>),
}

fn plan_row(o: &RenewOptions, cas: &Cas, e: &'static Entry) -> Result<RowDecision> {
    let layout = &o.layout;
    let (ca, mut item, found) = RenewItem::pending(layout, e)?;
    let Some(found) = found else {
        // super-admin.conf exists only on the first control-plane node of kubeadm
        // >= 1.29: its absence is normal, as in `check`.
        let unrenewable = e.name != "super-admin.conf" && !o.allow_unrenewable.contains(&e);
        return Ok(RowDecision::Keep { item, unrenewable });
    };
    item.old = Some(CertSnapshot::of(&found.cert.info));
    let ca_mat = cas
        .get(ca)
        .ok_or_else(|| ca_missing_error(layout, ca, cas))?;
    let Some(ca_cert) = ca_mat.cert() else {
        return Err(ca_missing_error(layout, ca, cas));
    };
    let residual = found.cert.info.not_after - o.now;
    if ca_mat.externally_managed() {
        item.action = RenewAction::ExternallyManaged;
        item.reason = format!("{} is absent", layout.ca_key(ca).display());
        let due = o.within.is_none_or(|w| residual <= w);
        let unrenewable = due && !o.allow_unrenewable.contains(&e);
        return Ok(RowDecision::Keep { item, unrenewable });
    }
    // --reconcile-sans also renews a certificate that is not due when its SANs are not the
    // configuration's (kubeadm's own renewal would copy them): renewing it is the point.
    let sans_differ = match (&o.config, o.reconcile) {
        (Some(cfg), Some(how)) => {
            let mut probe = LeafSpec::from_existing(&found.cert.info, 0, 0);
            reconcile_sans(cfg, e, how, &mut probe)?
                .is_some_and(|c| !c.added.is_empty() || !c.dropped.is_empty())
        }
        _ => false,
    };
    if let Some(w) = o.within {
        if residual > w && !sans_differ {
            item.action = RenewAction::Skipped;
            item.reason = format!(
                "expires in {}, outside --within {}",
                timefmt::short_human_duration(residual),
                timefmt::format_duration(w)
            );
            return Ok(RowDecision::Keep {
                item,
                unrenewable: false,
            });
        }
    }
    check_ca_usable(o, ca, &ca_cert.info)?;
    let overridden = check_identity(e, &found, ca, ca_cert, layout, o.allow_foreign_identity)?;
    let (not_before, not_after, capped) = new_validity(o, e, &ca_cert.info)?;
    let mut spec = LeafSpec::from_existing(&found.cert.info, not_before, not_after);
    let san_change = match (&o.config, o.reconcile) {
        (Some(cfg), Some(how)) => reconcile_sans(cfg, e, how, &mut spec)?,
        _ => None,
    };
    spec.normalize();
    let alg = match &o.config {
        Some(cfg) => config_key_algorithm(cfg, &found.cert.info.key_algorithm),
        None => o.key_algorithm.resolve(&found.cert.info.key_algorithm),
    };
    item.reason = renew_reason(o, residual, capped.then_some((ca, not_after)), overridden);
    if o.within.is_some_and(|w| residual > w) {
        item.reason = format!(
            "expires in {}, not due, renewed for its SANs (--reconcile-sans){}",
            timefmt::short_human_duration(residual),
            item.reason
                .split_once("; ")
                .map(|(_, rest)| format!("; {rest}"))
                .unwrap_or_default()
        );
    }
    if let Some(change) = san_change {
        item.reason.push_str(&format!("; {}", change.line()));
        item.sans_reconciled = Some(change);
    }
    item.capped_at_ca = capped;
    item.action = RenewAction::WouldRenew;
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
    let sans = spec_sans(&spec);
    let row = RowPlan {
        entry: e,
        found,
        ca,
        alg,
        spec,
        sans,
    };
    Ok(RowDecision::Renew(item, Box::new(row)))
}

/// The SANs of a spec, in [`CertInfo::san_set`] form.
fn spec_sans(spec: &LeafSpec) -> BTreeSet<String> {
    let mut v: BTreeSet<String> = spec.dns_names.iter().map(|d| format!("DNS:{d}")).collect();
    v.extend(spec.ip_addresses.iter().map(|i| format!("IP:{i}")));
    v.extend(spec.uris.iter().map(|u| format!("URI:{u}")));
    v.extend(spec.emails.iter().map(|e| format!("email:{e}")));
    v
}

/// `--reconcile-sans`: gives `spec` the SANs kubeadm's rule for `e` expects under `cfg`
/// (added to the existing ones, or exactly them with [`Reconcile::Exact`]). Returns what
/// changed (`None`: `e` has no SAN rule).
fn reconcile_sans(
    cfg: &crate::config::KubeadmConfig,
    e: &Entry,
    how: Reconcile,
    spec: &mut LeafSpec,
) -> Result<Option<SansReconciled>> {
    let want = cfg.expected_sans(e).map_err(|source| {
        Error::from(crate::error::ConfigError::SanRule {
            origin: cfg.origin.clone(),
            cert: e.name.to_string(),
            source,
        })
    })?;
    let Some(want) = want else {
        return Ok(None);
    };
    let have = spec_sans(spec);
    let added: Vec<String> = want.difference(&have).cloned().collect();
    let dropped: Vec<String> = match how {
        Reconcile::Add => vec![],
        Reconcile::Exact => have.difference(&want).cloned().collect(),
    };
    for s in &added {
        if let Some(d) = s.strip_prefix("DNS:") {
            spec.dns_names.push(d.to_string());
        } else if let Some(ip) = s.strip_prefix("IP:").and_then(|i| i.parse().ok()) {
            spec.ip_addresses.push(ip);
        }
    }
    for s in &dropped {
        if let Some(d) = s.strip_prefix("DNS:") {
            spec.dns_names.retain(|x| x != d);
        } else if let Some(ip) = s.strip_prefix("IP:") {
            spec.ip_addresses.retain(|x| x.to_string() != ip);
        } else if let Some(u) = s.strip_prefix("URI:") {
            spec.uris.retain(|x| x != u);
        } else if let Some(m) = s.strip_prefix("email:") {
            spec.emails.retain(|x| x != m);
        }
    }
    Ok(Some(SansReconciled { added, dropped }))
}

/// With `--config`: a key of the configuration's `encryptionAlgorithm` (kubeadm's
/// RSA-2048, RSA-3072, RSA-4096, ECDSA-P256, ECDSA-P384; the parser refuses others).
fn config_key_algorithm(
    cfg: &crate::config::KubeadmConfig,
    existing: &cert::PublicKeyAlgorithm,
) -> KeyAlgorithm {
    cfg.encryption_algorithm
        .to_ascii_lowercase()
        .parse::<KeyAlgorithm>()
        .unwrap_or(KeyAlgorithm::Same)
        .resolve(existing)
}

/// Refuses to sign under a certificate that is not a CA, or (unless `allow_expired_ca`) an
/// expired or not yet valid one.
fn check_ca_usable(o: &RenewOptions, ca: CaId, ca_info: &CertInfo) -> Result<()> {
    if !ca_info.is_ca {
        return Err(Error::NotACa {
            ca: ca.name().into(),
        });
    }
    if ca_info.not_after < o.now && !o.allow_expired_ca {
        return Err(ca_expired_error(ca, ca_info));
    }
    if ca_info.not_before > o.now && !o.allow_expired_ca {
        return Err(Error::CaNotYetValid {
            ca: ca.name().to_string(),
            not_before: timefmt::rfc3339(ca_info.not_before),
        });
    }
    Ok(())
}

/// The new certificate's (NotBefore, NotAfter, capped at the CA's NotAfter).
fn new_validity(o: &RenewOptions, e: &Entry, ca_info: &CertInfo) -> Result<(i64, i64, bool)> {
    let not_before = o.now - issue::BACKDATE_SECONDS;
    let validity = o.config.as_ref().map_or(o.validity, |c| c.validity_of(e));
    let mut not_after = o.now + validity;
    // An expired CA the user insisted on cannot cap anything: the leaf would end before it
    // starts. kubeadm does not cap at all; kubecert caps whenever the CA is still valid.
    let ca_expired = ca_info.not_after < o.now;
    let capped = !ca_expired && not_after > ca_info.not_after;
    if capped {
        not_after = ca_info.not_after;
    }
    if not_after <= not_before {
        return Err(Error::Validation {
            cert: e.name.into(),
            reason: "its CA expires before the new certificate would start".into(),
        });
    }
    Ok((not_before, not_after, capped))
}

/// Why a row is renewed: due (or unconditional), plus the cap and an accepted foreign
/// identity.
fn renew_reason(
    o: &RenewOptions,
    residual: i64,
    capped_at: Option<(CaId, i64)>,
    overridden: Option<String>,
) -> String {
    let mut reason = match o.within {
        Some(w) => format!(
            "expires in {}, within --within {}",
            timefmt::short_human_duration(residual),
            timefmt::format_duration(w)
        ),
        None => "unconditional renewal".to_string(),
    };
    if let Some((ca, not_after)) = capped_at {
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
    reason
}

/// Loads each CA key the plan needs once, and checks it matches its CA certificate.
fn load_ca_keys(
    layout: &Layout,
    cas: &Cas,
    rows: &[(usize, RowPlan)],
) -> Result<Vec<(CaId, PrivateKey)>> {
    let mut ca_keys: Vec<(CaId, PrivateKey)> = Vec::new();
    for (_, p) in rows {
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
            .ok_or_else(|| ca_missing_error(layout, p.ca, cas))?;
        if !key.matches(&ca_cert.info) {
            return Err(Error::Validation {
                cert: p.ca.name().into(),
                reason: format!("{} does not match the CA certificate", path.display()).into(),
            });
        }
        ca_keys.push((p.ca, key));
    }
    Ok(ca_keys)
}

/// The dry run's result: the plan, after every check the apply makes on its writes (built
/// with the old certificate and a placeholder key standing in for the new ones), so the plan
/// fails exactly where the apply would.
fn dry_run(mut p: RenewalPlan) -> Result<RenewResult> {
    let mut writes: Vec<Write_> = Vec::new();
    for (idx, r) in &p.rows {
        let cert_pem = issue::cert_pem(&r.found.cert.der);
        writes.extend(row_writes(&p, r, &cert_pem, DRY_RUN_KEY_PLACEHOLDER)?);
        p.items[*idx].files = planned_files(r, &p.layout);
    }
    store::plan(&writes)?;
    Ok(finish(p.items, true, None, None, p.unrenewable))
}

/// Carries out a plan: issues every new certificate (in parallel: key generation
/// dominates), checks each against what it replaces, and installs every file in one
/// transaction of `store`, with a backup under the plan's backup root.
pub fn apply(p: RenewalPlan, store: &mut Store) -> Result<RenewResult> {
    if p.rows.is_empty() {
        let recovered = store.recovered().map(str::to_string);
        return Ok(finish(p.items, false, None, recovered, p.unrenewable));
    }
    let stamp = store::stamp(p.now);
    let (results, prepared) = std::thread::scope(|s| {
        let handles: Vec<_> = p
            .rows
            .iter()
            .map(|(idx, row)| s.spawn(|| issue_row(&p, row).map(|i| (*idx, i))))
            .collect();
        // While the threads generate the keys (most of a run's time), this thread prepares
        // the store's transaction (checks, backup dir, `staging` journal, backups,
        // manifest), so that its syncs overlap key generation. Its targets are the files
        // `row_writes` makes of placeholders: the rule the install follows, not a copy of it.
        let prepared = planned_targets(&p)
            .and_then(|targets| store_prepare(store, &targets, &p.backup_root, &stamp));
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Issue {
                        cert: "?".into(),
                        reason: "issuing thread panicked".into(),
                    })
                })
            })
            .collect();
        (results, prepared)
    });
    // A row that cannot be installed fails the prediction as it would fail its install.
    let prepared = prepared?;
    let mut items = p.items;
    let mut all_writes: Vec<Write_> = Vec::new();
    for r in results {
        // An error drops `prepared`: what it made is undone.
        let (idx, issued) = r?;
        let Some(item) = items.get_mut(idx) else {
            continue;
        };
        item.action = RenewAction::Renewed;
        if issued.dropped > 0 {
            let dropped = issued.dropped;
            item.reason.push_str(&format!(
                "; dropped {dropped} certificate{} that followed the leaf but {} not its chain to {}",
                if dropped == 1 { "" } else { "s" },
                if dropped == 1 { "is" } else { "are" },
                item.ca_name
            ));
        }
        item.new = Some(CertSnapshot::of(&issued.info));
        item.files = issued
            .writes
            .iter()
            .map(|w| w.target.display().to_string())
            .collect();
        all_writes.extend(issued.writes);
    }
    // Writes other than the prepared targets are refused (a typed error) and the
    // preparation undone: with one rule for both, that would be a bug, never a half commit.
    let backup_dir = prepared.commit(all_writes)?;
    let recovered = store.recovered().map(str::to_string);
    Ok(finish(items, false, backup_dir, recovered, p.unrenewable))
}

/// [`Store::prepare`] (a function so that the scope above borrows `store` only for it).
fn store_prepare<'s>(
    store: &'s mut Store,
    targets: &[PathBuf],
    backup_root: &Path,
    stamp: &str,
) -> Result<store::Prepared<'s>> {
    store.prepare(targets, backup_root, stamp)
}

/// Stands in for a new certificate in [`planned_targets`] (never written, never equal to an
/// embedded certificate: the kubeconfig rewrite sees a change, as with a real new one).
const PLANNED_CERT_PLACEHOLDER: &str = "kubecert: the new certificate goes here\n";

/// The files [`apply`] will write, in install order: [`row_writes`] of every row with
/// placeholders for the new certificate and key, so that "which files a renew writes" is one
/// rule. An error is the one the row's install would give.
fn planned_targets(p: &RenewalPlan) -> Result<Vec<PathBuf>> {
    let mut targets = Vec::new();
    for (_, row) in &p.rows {
        let writes = row_writes(p, row, PLANNED_CERT_PLACEHOLDER, DRY_RUN_KEY_PLACEHOLDER)?;
        targets.extend(writes.into_iter().map(|w| w.target));
    }
    Ok(targets)
}

/// The files a row's new certificate and key become ([`install_writes`] with the plan's CA).
fn row_writes(
    p: &RenewalPlan,
    row: &RowPlan,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Vec<Write_>> {
    install_writes(
        row.entry,
        &row.found,
        &p.layout,
        cert_pem,
        key_pem,
        p.ca_pem.as_deref(),
    )
}

/// A certificate issued for one row, checked, and the files it becomes.
struct Issued {
    info: CertInfo,
    writes: Vec<Write_>,
    /// Certificates that followed the old leaf but are not its chain (not carried over).
    dropped: usize,
}

/// New key, signed certificate, checked against what it replaces, and its writes.
fn issue_row(p: &RenewalPlan, row: &RowPlan) -> Result<Issued> {
    let layout = &p.layout;
    let issue_err = |e: issue::IssueError| Error::Issue {
        cert: row.entry.name.into(),
        reason: crate::error::Reason::of(e),
    };
    let ca_key = p
        .ca_keys
        .iter()
        .find(|(c, _)| *c == row.ca)
        .map(|(_, k)| k)
        .ok_or_else(|| Error::CaKeyMissing {
            ca: row.ca.name().into(),
            path: layout.ca_key(row.ca),
        })?;
    let ca_cert = p
        .cas
        .get(row.ca)
        .and_then(|c| c.cert())
        .ok_or_else(|| ca_missing_error(layout, row.ca, &p.cas))?;
    let (new_key, key_pem) = issue::new_key(row.alg).map_err(issue_err)?;
    let signer = CaSigner {
        cert: ca_cert,
        key: ca_key,
    };
    let der = issue::sign_leaf(&row.spec, &new_key.pair, &signer).map_err(issue_err)?;
    let info = verify_issued(row, &der, &ca_cert.info, &new_key)?;
    let mut cert_pem = issue::cert_pem(&der);
    let mut dropped = 0;
    if matches!(row.entry.location, Location::Pki { .. }) {
        // Keep the chain that followed the leaf in the old file only as far as it verifies
        // the new leaf; junk is not carried over.
        let keep = verified_chain(&der, &row.found.cert.chain);
        dropped = row.found.cert.chain.len() - keep.len();
        for c in keep {
            cert_pem.push_str(&issue::cert_pem(c));
        }
    }
    let writes = row_writes(p, row, &cert_pem, &key_pem)?;
    Ok(Issued {
        info,
        writes,
        dropped,
    })
}

/// The result of a run from its items: the components to restart and whether anything
/// changed (or would, in a dry run).
fn finish(
    items: Vec<RenewItem>,
    dry_run: bool,
    backup_dir: Option<PathBuf>,
    recovered: Option<String>,
    unrenewable: Vec<String>,
) -> RenewResult {
    let changing =
        |i: &RenewItem| matches!(i.action, RenewAction::Renewed | RenewAction::WouldRenew);
    let components_to_restart = inventory::components_of(
        items
            .iter()
            .filter(|i| changing(i))
            .filter_map(|i| inventory::find(&i.name)),
    );
    let changed = items.iter().any(changing);
    RenewResult {
        dry_run,
        backup_dir: backup_dir.map(|p| p.display().to_string()),
        certificates: items,
        components_to_restart,
        changed,
        recovered,
        unrenewable,
    }
}

fn planned_files(p: &RowPlan, layout: &Layout) -> Vec<String> {
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
        if let (Some(c), RenewAction::Renewed) = (&i.sans_reconciled, i.action) {
            s.push_str(&format!("  {}\n", c.line()));
        }
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
        s.push_str(&crate::render::components_changed(
            r.dry_run,
            &r.components_to_restart,
        ));
    }
    s.push_str(&crate::render::backup_line(r.backup_dir.as_deref()));
    s
}
