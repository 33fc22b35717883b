//! Staged rotation of a CA to a new key (issue 16 item 3), kubeadm's "Manual Rotation of CA
//! Certificates" run by kubecert, one node at a time:
//!
//! - *stage*: a new CA (same subject, new key, new SKI) is written to `<ca-path>.next.crt` /
//!   `.next.key` (or taken from there when the files were placed beforehand: copied from the
//!   first node, or an external CA's certificate alone), and every trust location gets the
//!   bundle old+new with the OLD first (`<ca>.crt`, and for `ca` the
//!   `certificate-authority-data` of the node's kubeconfigs). Nothing is signed by the new CA.
//! - *promote*: every leaf of the CA (the inventory's PKI rows, and for `ca` the embedded
//!   client certificates of the node's kubeconfigs) is re-signed by the new CA (same public
//!   key, subject, SANs, usages and NotAfter, capped at the new CA); `<ca>.key` becomes the
//!   new key and `<ca>.crt` new+old (new FIRST: kubeadm and kube-controller-manager sign with
//!   the first certificate of the file); the old pair is kept as `<ca-path>.prev.crt/.key`;
//!   the `.next` files are removed.
//! - *distrust*: the old CA leaves every bundle (`<ca>.crt` and kubeconfigs: new only); the
//!   old key `.prev.key` is removed (the backup keeps it); `.prev.crt` (public) stays, so the
//!   phase is known and can be rolled back.
//!
//! The phase is derived from the files alone ([`detect`]). Each phase is one [`Store`]
//! transaction with a backup; `--rollback` puts the backup of the phase's own transaction
//! back, after checking that the files are still exactly what that transaction left.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::KeyUsagePurpose;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ca_id, clock, join_hash, NODE_KUBECONFIGS};
use crate::error::{Error, Result};
use crate::ops::endpoints::Owner;
use crate::pki::cert::{self, CertInfo, PrivateKey};
use crate::pki::inventory::{CaId, Location};
use crate::pki::issue::{self, CaSigner, KeyAlgorithm, LeafSpec};
use crate::pki::kubeconfig::{self, Kubeconfig, Source};
use crate::pki::store::{self, Store, Write_};
use crate::pki::{fsread, Layout, PkiLocation};
use crate::timefmt;

/// A phase of `ca rotate`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Trust old+new, sign with old.
    Stage,
    /// Sign with new, trust new+old.
    Promote,
    /// Trust new only.
    Distrust,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Stage => "stage",
            Phase::Promote => "promote",
            Phase::Distrust => "distrust",
        }
    }
}

/// Where a rotation stands, derived from the files.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RotationPhase {
    /// No rotation in progress (`<ca>.crt` holds one CA; no `.next`/`.prev` files, or only a
    /// placed `.next` pair that stage will use).
    None,
    /// Staged: `<ca>.crt` = old+new, `<ca>.key` the old key, `.next` files present, every
    /// leaf signed by the old CA.
    Staged,
    /// Promoted: `<ca>.crt` = new+old, `<ca>.key` the new key, `.prev.crt/.prev.key` present,
    /// every leaf signed by the new CA.
    Promoted,
    /// Distrusted: `<ca>.crt` = new only, `.prev.crt` kept, no `.prev.key`.
    Distrusted,
    /// A mix no phase leaves (hand edits): `detail` names it.
    Inconsistent,
}

impl RotationPhase {
    /// The name in messages.
    pub fn name(self) -> &'static str {
        match self {
            RotationPhase::None => "none",
            RotationPhase::Staged => "staged",
            RotationPhase::Promoted => "promoted",
            RotationPhase::Distrusted => "distrusted",
            RotationPhase::Inconsistent => "inconsistent",
        }
    }
}

/// `ca check`'s `rotation` object of a CA (present only while a rotation is in progress).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RotationStatus {
    /// The phase.
    pub phase: RotationPhase,
    /// Where it stands exactly.
    pub detail: String,
    /// The leaves counted (inventory PKI rows of the CA, and for `ca` the embedded client
    /// certificates of the node's kubeconfigs).
    pub leaves: usize,
    /// How many of them the new CA signed.
    pub leaves_signed_by_new: usize,
    /// The join hash of the new CA (`--discovery-token-ca-cert-hash`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_spki_sha256: Option<String>,
}

/// Parameters of `ca rotate` (RPC `ca-rotate`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CaRotateParams {
    /// Where the PKI is.
    #[serde(flatten)]
    pub location: PkiLocation,
    /// Which CA (`ca`, `front-proxy-ca`, `etcd-ca`).
    pub ca: String,
    /// The phase to run (or, with `rollback`, to undo).
    pub phase: Phase,
    /// Undo `phase` back to the previous one (stage→none, promote→staged,
    /// distrust→promoted) from the backup of that phase's transaction.
    #[serde(default)]
    pub rollback: bool,
    /// Report what would be written; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Validity of a new CA made by stage (default `87600h`).
    #[serde(default)]
    pub validity: Option<String>,
    /// An admin kubeconfig: after the files are committed, the `cluster-info` ConfigMap in
    /// kube-public gets the new bundle as its kubeconfig's `certificate-authority-data`
    /// (CA `ca` only; a resourceVersion-checked update). Without it, a checklist line.
    #[serde(default)]
    pub kubeconfig: Option<String>,
    /// Fixed clock, RFC 3339.
    #[serde(default)]
    pub now: Option<String>,
    /// Backup root (default `<cert_dir>/../kubecert-backup`).
    #[serde(default)]
    pub backup_dir: Option<String>,
}

/// What happens to one file.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RotateAction {
    /// Written.
    Written,
    /// Removed.
    Removed,
    /// Dry run: would be written.
    WouldWrite,
    /// Dry run: would be removed.
    WouldRemove,
}

/// One file a phase writes or removes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RotateChange {
    /// The file.
    pub path: String,
    /// What happens to it.
    pub action: RotateAction,
    /// Why (`trust bundle old+new`, `re-signed by the new CA`, ...).
    pub what: String,
}

/// A CA certificate as the result names it (never its key).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CaIdentity {
    /// Serial, hex.
    pub serial: String,
    /// Subject.
    pub subject: String,
    /// NotAfter, RFC 3339.
    pub not_after: String,
    /// kubeadm's join hash of this CA.
    pub spki_sha256: String,
}

/// Result of `ca rotate`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CaRotateResult {
    /// Which CA.
    pub ca: String,
    /// The phase asked.
    pub phase: Phase,
    /// Whether it was a rollback.
    pub rollback: bool,
    /// The phase before, derived from the files.
    pub phase_before: RotationPhase,
    /// The phase after (what it would be, in a dry run).
    pub phase_after: RotationPhase,
    /// One line: what was done, or why nothing was.
    pub message: String,
    /// Per file.
    pub changes: Vec<RotateChange>,
    /// Every file written or removed (or that would be), for the audit line.
    pub written: Vec<String>,
    /// The CA being replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_ca: Option<CaIdentity>,
    /// The new CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_ca: Option<CaIdentity>,
    /// The join hash `kubeadm join --discovery-token-ca-cert-hash` must be given after this
    /// phase (for `ca`: the signing CA's; both are accepted while both are trusted, see the
    /// checklist).
    pub join_hash: String,
    /// What kubecert cannot do from this node: do it by hand.
    pub checklist: Vec<String>,
    /// Components (the static pods, and the kubelet for `ca`) to restart so that they load
    /// the new files, in restart order.
    pub components_to_restart: Vec<Owner>,
    /// Backup of what was replaced or removed.
    pub backup_dir: Option<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Whether anything changed on disk (or would, in a dry run).
    pub changed: bool,
    /// The update of the `cluster-info` ConfigMap in kube-public (only for `ca` with
    /// `kubeconfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_info: Option<ClusterInfoResult>,
}

/// What `ca rotate ca --kubeconfig` did to the `cluster-info` ConfigMap in kube-public.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfoResult {
    /// Whether the ConfigMap was written (its kubeconfig's CA data is now the bundle of
    /// `<ca>.crt`).
    pub updated: bool,
    /// It already held exactly that bundle: nothing was written.
    pub unchanged: bool,
    /// Dry run: whether it would be written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_update: Option<bool>,
    /// The API server (the kubeconfig's current context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The ConfigMap's resourceVersion after the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Why it was not updated (the call then fails with -31009 / exit 1; the files stay
    /// committed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Files

fn next_crt(layout: &Layout, id: CaId) -> PathBuf {
    layout.ca_rotation_pair(id, "next").0
}
fn next_key(layout: &Layout, id: CaId) -> PathBuf {
    layout.ca_rotation_pair(id, "next").1
}
fn prev_crt(layout: &Layout, id: CaId) -> PathBuf {
    layout.ca_rotation_pair(id, "prev").0
}
fn prev_key(layout: &Layout, id: CaId) -> PathBuf {
    layout.ca_rotation_pair(id, "prev").1
}

struct Parsed {
    der: Vec<u8>,
    info: CertInfo,
}

fn parse(der: &[u8], path: &Path) -> Result<Parsed> {
    let info = cert::parse_der(der).map_err(|e| Error::Validation {
        cert: path.display().to_string(),
        reason: crate::error::Reason::of(e),
    })?;
    Ok(Parsed {
        der: der.to_vec(),
        info,
    })
}

/// Every certificate of a PEM file (None when absent).
fn read_bundle(path: &Path) -> Result<Option<Vec<Parsed>>> {
    if !fsread::exists_nofollow(path) {
        return Ok(None);
    }
    let bytes = fsread::read(path)?;
    let c = cert::parse_pem_bundle(&bytes).map_err(|source| Error::Pem {
        path: path.to_path_buf(),
        source,
    })?;
    let mut v = Vec::new();
    for d in std::iter::once(c.der).chain(c.chain) {
        v.push(parse(&d, path)?);
    }
    Ok(Some(v))
}

fn read_key(path: &Path) -> Result<Option<(PrivateKey, Vec<u8>)>> {
    if !fsread::exists_nofollow(path) {
        return Ok(None);
    }
    let bytes = fsread::read(path)?;
    let k = cert::parse_private_key(&bytes).map_err(|source| Error::Pem {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Some((k, bytes)))
}

/// A certificate signed by the CA being rotated.
struct Leaf {
    /// Inventory name or kubeconfig file name.
    name: String,
    /// The `.crt` (PKI rows) or the kubeconfig.
    path: PathBuf,
    der: Vec<u8>,
    info: CertInfo,
    /// The certificates after the leaf in a PKI `.crt` (kept only as far as they chain).
    kubeconfig: Option<Kubeconfig>,
}

/// The leaves counted for `id`: its inventory PKI rows that exist, and for `ca` the
/// embedded client certificates of the node's kubeconfigs. Client certificates referenced
/// as files (the kubelet's rotated pair) are not: see the checklist.
fn leaves(layout: &Layout, id: CaId) -> Result<Vec<Leaf>> {
    let mut out = Vec::new();
    for e in layout.rows() {
        if e.ca != Some(id) {
            continue;
        }
        if let Location::Pki { base } = e.location {
            let p = layout.pki_crt(base);
            if let Some(mut b) = read_bundle(&p)? {
                let first = b.remove(0);
                out.push(Leaf {
                    name: e.name.into(),
                    path: p,
                    der: first.der,
                    info: first.info,
                    kubeconfig: None,
                });
            }
        }
    }
    if id == CaId::Ca {
        for f in NODE_KUBECONFIGS {
            let p = layout.kubeconfig_dir.join(f);
            if !fsread::exists_nofollow(&p) {
                continue;
            }
            let kc = Kubeconfig::load(&p)?;
            if !matches!(kc.client_cert, Source::Embedded(_)) {
                continue;
            }
            let pem = kc.client_cert_pem()?;
            let c = cert::parse_pem_bundle(&pem).map_err(|source| Error::Pem {
                path: p.clone(),
                source,
            })?;
            let parsed = parse(&c.der, &p)?;
            out.push(Leaf {
                name: f.into(),
                path: p,
                der: parsed.der,
                info: parsed.info,
                kubeconfig: Some(kc),
            });
        }
    }
    Ok(out)
}

/// Kubeconfigs of the node whose embedded CA data holds `any` of these CAs (by public key).
fn trusting_kubeconfigs(
    layout: &Layout,
    id: CaId,
    any: &[&Parsed],
) -> Result<Vec<(Kubeconfig, Vec<Vec<u8>>)>> {
    let mut out = Vec::new();
    if id != CaId::Ca {
        return Ok(out);
    }
    for f in NODE_KUBECONFIGS {
        let p = layout.kubeconfig_dir.join(f);
        if !fsread::exists_nofollow(&p) {
            continue;
        }
        let kc = Kubeconfig::load(&p)?;
        let Source::Embedded(b64) = &kc.ca else {
            continue;
        };
        let ders = super::bundle_ders(&kubeconfig::decode_data(&p, b64)?);
        let holds = ders.iter().any(|d| {
            cert::parse_der(d).is_ok_and(|c| any.iter().any(|a| a.info.spki_der == c.spki_der))
        });
        if holds {
            out.push((kc, ders));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Phase detection

/// What the files say about a rotation of one CA.
struct State {
    phase: RotationPhase,
    detail: String,
    bundle: Vec<Parsed>,
    key: Option<(PrivateKey, Vec<u8>)>,
    next: Option<Parsed>,
    next_key: Option<(PrivateKey, Vec<u8>)>,
    prev: Option<Parsed>,
    prev_key: Option<(PrivateKey, Vec<u8>)>,
    leaves: Vec<Leaf>,
    by_new: usize,
}

impl State {
    /// (old, new) CA of the rotation in progress.
    /// By the files: with `.next` files the current CA is the old one; with `.prev` files
    /// (and no `.next`) the current CA is the new one.
    fn old_new(&self) -> (Option<&Parsed>, Option<&Parsed>) {
        if self.next.is_none() && self.prev.is_some() {
            (self.prev.as_ref(), self.bundle.first())
        } else {
            (self.bundle.first(), self.next.as_ref())
        }
    }
}

fn key_of(k: &Option<(PrivateKey, Vec<u8>)>, c: &Parsed) -> bool {
    k.as_ref().is_some_and(|(k, _)| k.matches(&c.info))
}

fn detect(layout: &Layout, id: CaId) -> Result<State> {
    let crt = layout.ca_crt(id);
    let bundle = read_bundle(&crt)?.ok_or_else(|| Error::CaMissing {
        ca: id.name().into(),
        dir: layout.cert_dir.clone(),
        reason: format!("{} does not exist", crt.display()),
    })?;
    let one = |p: &Path| -> Result<Option<Parsed>> {
        Ok(read_bundle(p)?.and_then(|mut v| {
            if v.is_empty() {
                None
            } else {
                Some(v.remove(0))
            }
        }))
    };
    let mut s = State {
        phase: RotationPhase::Inconsistent,
        detail: String::new(),
        key: read_key(&layout.ca_key(id))?,
        next: one(&next_crt(layout, id))?,
        next_key: read_key(&next_key(layout, id))?,
        prev: one(&prev_crt(layout, id))?,
        prev_key: read_key(&prev_key(layout, id))?,
        leaves: leaves(layout, id)?,
        bundle,
        by_new: 0,
    };
    let same = |a: Option<&Parsed>, b: Option<&Parsed>| match (a, b) {
        (Some(a), Some(b)) => a.der == b.der,
        _ => false,
    };
    let n = s.bundle.len();
    let file = crt.display().to_string();
    let (_, new) = s.old_new();
    let new_der = new.map(|c| c.der.clone());
    let old_der = s.old_new().0.map(|c| c.der.clone());
    let count = |der: &Option<Vec<u8>>| {
        der.as_ref().map_or(0, |d| {
            s.leaves
                .iter()
                .filter(|l| cert::signed_by(&l.der, d))
                .count()
        })
    };
    let by_new = count(&new_der);
    let by_old = count(&old_der);
    let total = s.leaves.len();
    let (phase, detail) = if s.next.is_some() {
        if s.prev_key.is_some() {
            (
                RotationPhase::Inconsistent,
                format!(
                    "both {} and {} exist",
                    next_crt(layout, id).display(),
                    prev_key(layout, id).display()
                ),
            )
        } else if n == 1 {
            (
                RotationPhase::None,
                format!(
                    "a new CA is placed at {} (stage will use it)",
                    next_crt(layout, id).display()
                ),
            )
        } else if n == 2 && same(s.bundle.get(1), s.next.as_ref()) {
            let first = &s.bundle[0];
            if s.key.is_some() && !key_of(&s.key, first) {
                (
                    RotationPhase::Inconsistent,
                    format!("{file} is old+new but the key is not the old CA's"),
                )
            } else if by_new > 0 {
                (
                    RotationPhase::Inconsistent,
                    format!(
                        "staged, but {by_new} of {total} leaves are signed by the new CA \
                         (promote interrupted?)"
                    ),
                )
            } else {
                (
                    RotationPhase::Staged,
                    format!(
                        "{file} trusts old+new, the old CA signs; {total} leaves by the old CA"
                    ),
                )
            }
        } else {
            (
                RotationPhase::Inconsistent,
                format!(
                    "{} exists but {file} holds {n} certificate(s) that are not old+new",
                    next_crt(layout, id).display()
                ),
            )
        }
    } else if s.prev.is_some() {
        let first = s.bundle.first();
        if n == 2 && same(s.bundle.get(1), s.prev.as_ref()) {
            if !first.is_some_and(|f| key_of(&s.key, f)) {
                (
                    RotationPhase::Inconsistent,
                    format!("{file} is new+old but the key is not the new CA's"),
                )
            } else if s.prev_key.is_none() {
                (
                    RotationPhase::Inconsistent,
                    format!(
                        "{file} is new+old but {} is absent",
                        prev_key(layout, id).display()
                    ),
                )
            } else if by_new < total {
                (
                    RotationPhase::Inconsistent,
                    format!("promote interrupted: {by_new} of {total} leaves signed by the new CA"),
                )
            } else {
                (
                    RotationPhase::Promoted,
                    format!("{file} trusts new+old, the new CA signs all {total} leaves"),
                )
            }
        } else if n == 1 && !same(first, s.prev.as_ref()) {
            if s.prev_key.is_some() {
                (
                    RotationPhase::Inconsistent,
                    format!(
                        "{file} no longer holds the old CA but {} is still there",
                        prev_key(layout, id).display()
                    ),
                )
            } else if by_old > 0 {
                (
                    RotationPhase::Inconsistent,
                    format!(
                        "distrusted, but {by_old} of {total} leaves are still signed by the old CA"
                    ),
                )
            } else {
                (
                    RotationPhase::Distrusted,
                    format!("{file} trusts the new CA only"),
                )
            }
        } else {
            (
                RotationPhase::Inconsistent,
                format!(
                    "{} exists but {file} holds {n} certificate(s) that are not new+old",
                    prev_crt(layout, id).display()
                ),
            )
        }
    } else if s.next_key.is_some() || s.prev_key.is_some() {
        (
            RotationPhase::Inconsistent,
            "a .next.key or .prev.key exists without its certificate".into(),
        )
    } else if n == 1 {
        (RotationPhase::None, "no rotation in progress".into())
    } else {
        (
            RotationPhase::Inconsistent,
            format!("{file} holds {n} certificates but no rotation files exist"),
        )
    };
    s.phase = phase;
    s.detail = detail;
    s.by_new = by_new;
    Ok(s)
}

/// The `rotation` object of `ca check` for one CA: `None` when no rotation is in progress
/// (so `ca check`'s JSON stays as it was), or when the CA cannot be read (`ca check`
/// reports that itself).
pub fn status(layout: &Layout, id: CaId) -> Option<RotationStatus> {
    let s = detect(layout, id).ok()?;
    if s.phase == RotationPhase::None && s.next.is_none() {
        return None;
    }
    let (_, new) = s.old_new();
    Some(RotationStatus {
        phase: s.phase,
        detail: s.detail.clone(),
        leaves: s.leaves.len(),
        leaves_signed_by_new: s.by_new,
        new_spki_sha256: new.map(|c| join_hash(&c.info.spki_der)),
    })
}

/// Refuses a same-key `ca renew` / `ca install` of `id` while a rotation of it is staged or
/// promoted (or an inconsistent mix): it would rewrite `<ca>.crt` with one certificate and
/// drop the other CA of the bundle.
pub(super) fn refuse_during_rotation(layout: &Layout, id: CaId, what: &str) -> Result<()> {
    let Ok(s) = detect(layout, id) else {
        return Ok(());
    };
    match s.phase {
        RotationPhase::None | RotationPhase::Distrusted => Ok(()),
        _ => Err(Error::RotationPhase {
            ca: id.name().into(),
            requested: what.into(),
            phase: s.phase.name().into(),
            detail: format!("{}; finish the rotation (or roll it back) first", s.detail),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// The phases

fn identity(c: &Parsed) -> CaIdentity {
    CaIdentity {
        serial: c.info.serial.clone(),
        subject: c.info.subject.clone(),
        not_after: timefmt::rfc3339(c.info.not_after),
        spki_sha256: join_hash(&c.info.spki_der),
    }
}

fn pem_of(certs: &[&Parsed]) -> String {
    certs.iter().map(|c| issue::cert_pem(&c.der)).collect()
}

fn write(target: PathBuf, contents: Vec<u8>, mode: u32) -> Write_ {
    Write_ {
        target,
        contents,
        mode,
        force_mode: mode == 0o600,
    }
}

/// The planned transaction of a phase.
#[derive(Default)]
struct Plan {
    writes: Vec<(Write_, String)>,
    removes: Vec<(PathBuf, String)>,
}

impl Plan {
    fn push(&mut self, w: Write_, what: impl Into<String>) {
        self.writes.push((w, what.into()));
    }
    fn remove(&mut self, p: PathBuf, what: impl Into<String>) {
        if fsread::exists_nofollow(&p) {
            self.removes.push((p, what.into()));
        }
    }
}

/// The kubeconfigs holding the old or new CA get `bundle` as their CA data (and, in
/// `resign`, a new embedded client certificate).
fn kubeconfig_writes(
    plan: &mut Plan,
    layout: &Layout,
    id: CaId,
    cas: &[&Parsed],
    bundle: &str,
    what: &str,
    resign: &[(PathBuf, String)],
) -> Result<()> {
    for (kc, _) in trusting_kubeconfigs(layout, id, cas)? {
        let cert = resign
            .iter()
            .find(|(p, _)| *p == kc.path)
            .map(|(_, pem)| pem.as_bytes());
        let text = kc.rewrite_embedded(cert, None, Some(bundle.as_bytes()))?;
        if text != kc.text {
            let why = if cert.is_some() {
                format!("{what}; client certificate re-signed by the new CA")
            } else {
                what.to_string()
            };
            plan.push(write(kc.path.clone(), text.into_bytes(), 0o600), why);
        }
    }
    Ok(())
}

fn checklist(id: CaId, phase: Phase, rollback: bool, s: &State, layout: &Layout) -> Vec<String> {
    let mut v = Vec::new();
    let (old, new) = s.old_new();
    let restart = owner_names(&components(id));
    v.push(format!(
        "restart {restart} on this node so that they load the new files (`kubecert restart`); \
         run this phase on every control-plane node before the next phase starts"
    ));
    if id == CaId::Ca {
        v.push(CLUSTER_INFO_MANUAL.into());
        v.push(
            "kubeconfigs of users elsewhere: give them the CA data of this phase (and, after \
             promote, client certificates signed by the new CA)"
                .into(),
        );
        v.push(
            "workloads: pods read the cluster CA from the kube-root-ca.crt ConfigMap of each \
             namespace (published by kube-controller-manager from its --root-ca-file); \
             restart workloads that cache it"
                .into(),
        );
        for f in NODE_KUBECONFIGS {
            let p = layout.kubeconfig_dir.join(f);
            if let Ok(kc) = Kubeconfig::load(&p) {
                if let Source::File(c) = &kc.client_cert {
                    v.push(format!(
                        "{}: its client certificate {} is a file kubecert does not re-sign \
                         (the kubelet's rotated pair): after promote, let the kubelet request a \
                         new one (kube-controller-manager signs it with the new key) or \
                         rebuild it with `kubecert kubelet-conf rebuild`, before distrust",
                        p.display(),
                        c.display()
                    ));
                }
            }
        }
    }
    if let (Some(o), Some(n)) = (old, new) {
        let signing = match (phase, rollback) {
            (Phase::Stage, false) | (Phase::Promote, true) => o,
            _ => n,
        };
        if id == CaId::Ca {
            v.push(format!(
                "kubeadm join: --discovery-token-ca-cert-hash {} (the old CA's is {}, the new \
                 CA's {}; give both while both are trusted)",
                join_hash(&signing.info.spki_der),
                join_hash(&o.info.spki_der),
                join_hash(&n.info.spki_der)
            ));
        }
    }
    if id == CaId::Ca && phase == Phase::Distrust && !rollback {
        v.push(
            "service-account tokens are signed by sa.key, not by the CA: rotate sa.key/sa.pub \
             separately (docs/ca-rotation.md)"
                .into(),
        );
    }
    v
}

/// The checklist line for cluster-info without `--kubeconfig`.
const CLUSTER_INFO_MANUAL: &str = "the cluster-info ConfigMap in kube-public (its kubeconfig's \
     certificate-authority-data): pass --kubeconfig /etc/kubernetes/admin.conf to have kubecert \
     update it, or update it by hand with the bundle of this phase (`kubectl -n kube-public \
     edit configmap cluster-info`); its jws-kubeconfig-<token-id> signatures are re-computed \
     by kube-controller-manager's bootstrapsigner controller";

/// What an update of cluster-info through the API server did ([`rotate_with`]'s updater:
/// `kubeapi::clusterinfo`, which `ca` cannot depend on).
#[derive(Debug)]
pub struct ClusterInfoAttempt {
    /// The API server of the kubeconfig's current context (None: the kubeconfig was unusable).
    pub server: Option<String>,
    /// How it went (no key material, no ConfigMap contents).
    pub result: Result<ClusterInfoOutcome>,
}

/// A successful [`ClusterInfoAttempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfoOutcome {
    /// Whether the ConfigMap was written.
    pub written: bool,
    /// Whether its CA data differed from the bundle (what a dry run would write).
    pub differs: bool,
    /// Its resourceVersion after the call.
    pub resource_version: String,
}

/// The updater of [`rotate_with`]: (kubeconfig, bundle PEM, dry run) → attempt.
pub type ClusterInfoUpdater<'a> = &'a dyn Fn(&Path, &[u8], bool) -> ClusterInfoAttempt;

/// After the files: with `kubeconfig` and CA `ca`, cluster-info gets `<ca>.crt` (or, in a
/// dry run, the bundle the phase would write: `dry_bundle`).
fn cluster_info_step(
    p: &CaRotateParams,
    layout: &Layout,
    id: CaId,
    dry_bundle: Option<Vec<u8>>,
    update: ClusterInfoUpdater<'_>,
    mut result: CaRotateResult,
) -> Result<CaRotateResult> {
    let Some(k) = p.kubeconfig.as_deref() else {
        return Ok(result);
    };
    if id != CaId::Ca {
        result.checklist.push(format!(
            "--kubeconfig: cluster-info holds only the cluster CA (ca); nothing to update \
             there for {}",
            id.name()
        ));
        return Ok(result);
    }
    let bundle = match dry_bundle {
        Some(b) => b,
        None => fsread::read(&layout.ca_crt(id))?,
    };
    let a = update(Path::new(k), &bundle, p.dry_run);
    match a.result {
        Ok(o) => {
            result.cluster_info = Some(ClusterInfoResult {
                updated: o.written,
                unchanged: !o.differs,
                would_update: p.dry_run.then_some(o.differs),
                server: a.server.clone(),
                resource_version: Some(o.resource_version.clone()),
                error: None,
            });
            let line = if p.dry_run {
                format!(
                    "cluster-info (kube-public) through {}: {}",
                    a.server.as_deref().unwrap_or(k),
                    if o.differs {
                        "would be updated with the bundle of this phase"
                    } else {
                        "already holds the bundle of this phase"
                    }
                )
            } else {
                format!(
                    "cluster-info (kube-public) {} through {} (resourceVersion {}): its \
                     jws-kubeconfig-<token-id> signatures no longer match the content until \
                     kube-controller-manager's bootstrapsigner controller re-signs it \
                     (kubeadm enables it: --controllers=*,bootstrapsigner,tokencleaner); \
                     check `kubectl -n kube-public get cm cluster-info -o yaml` before \
                     `kubeadm join` with a token",
                    if o.written {
                        "updated with the bundle of this phase"
                    } else {
                        "already held the bundle of this phase"
                    },
                    a.server.as_deref().unwrap_or(k),
                    o.resource_version
                )
            };
            set_cluster_info_line(&mut result.checklist, line);
            Ok(result)
        }
        Err(e) => {
            let reason = crate::error::report(&e);
            let server = a
                .server
                .clone()
                .unwrap_or_else(|| format!("of the kubeconfig {k}"));
            result.cluster_info = Some(ClusterInfoResult {
                updated: false,
                unchanged: false,
                would_update: None,
                server: a.server,
                resource_version: None,
                error: Some(reason.clone()),
            });
            let value = serde_json::to_value(&result)
                .map_err(|e| Error::InvalidArgument(format!("encoding the result failed: {e}")))?;
            Err(Error::ClusterInfo {
                server,
                reason,
                what: result.message.clone(),
                result: Box::new(value),
            })
        }
    }
}

/// Replaces the manual cluster-info line of the checklist (or adds `line`).
fn set_cluster_info_line(checklist: &mut Vec<String>, line: String) {
    match checklist.iter().position(|l| l == CLUSTER_INFO_MANUAL) {
        Some(i) => checklist[i] = line,
        None => checklist.push(line),
    }
}

fn owner_names(v: &[Owner]) -> String {
    v.iter().map(|o| o.name()).collect::<Vec<_>>().join(", ")
}

fn components(id: CaId) -> Vec<Owner> {
    match id {
        CaId::Ca => vec![
            Owner::KubeApiserver,
            Owner::KubeControllerManager,
            Owner::KubeScheduler,
            Owner::Kubelet,
        ],
        CaId::EtcdCa => vec![Owner::Etcd, Owner::KubeApiserver],
        CaId::FrontProxyCa => vec![Owner::KubeApiserver],
    }
}

fn wrong_phase(id: CaId, requested: String, s: &State) -> Error {
    Error::RotationPhase {
        ca: id.name().into(),
        requested,
        phase: s.phase.name().into(),
        detail: s.detail.clone(),
    }
}

/// Checks a `.next` CA placed before stage (or made by it): a self-signed CA valid now,
/// its key (when present) matches, a different key than the current CA.
fn validate_next(
    id: CaId,
    layout: &Layout,
    next: &Parsed,
    key: &Option<(PrivateKey, Vec<u8>)>,
    current: &Parsed,
    current_key_present: bool,
    now: i64,
) -> Result<()> {
    let path = next_crt(layout, id);
    let bad = |reason: String| Error::Validation {
        cert: id.name().into(),
        reason: format!("{}: {reason}", path.display()).into(),
    };
    if !next.info.is_ca {
        return Err(bad("not a CA (basicConstraints CA:FALSE or absent)".into()));
    }
    if !cert::signed_by(&next.der, &next.der) {
        return Err(bad("not self-signed".into()));
    }
    if !next.info.valid_at(now) {
        return Err(bad(format!(
            "not valid now ({}): valid {} to {}",
            timefmt::rfc3339(now),
            timefmt::rfc3339(next.info.not_before),
            timefmt::rfc3339(next.info.not_after)
        )));
    }
    if next.info.spki_der == current.info.spki_der {
        return Err(bad(format!(
            "has the same key as the current {} ({}): a rotation needs a new key (same-key \
             renewal is `ca renew`)",
            id.name(),
            join_hash(&next.info.spki_der)
        )));
    }
    match key {
        Some((k, _)) if !k.matches(&next.info) => Err(bad(format!(
            "{} is not its key",
            next_key(layout, id).display()
        ))),
        None if current_key_present => Err(bad(format!(
            "{} is absent, but this {} signs with a local key: place both files (an \
             external CA's certificate alone only when {} is absent too)",
            next_key(layout, id).display(),
            id.name(),
            layout.ca_key(id).display()
        ))),
        _ => Ok(()),
    }
}

fn stage(
    layout: &Layout,
    id: CaId,
    s: &State,
    now: i64,
    validity: i64,
    plan: &mut Plan,
) -> Result<Parsed> {
    let old = &s.bundle[0];
    if s.key.is_some() && !key_of(&s.key, old) {
        return Err(Error::Validation {
            cert: id.name().into(),
            reason: format!(
                "{} does not match {}",
                layout.ca_key(id).display(),
                layout.ca_crt(id).display()
            )
            .into(),
        });
    }
    let new = match &s.next {
        Some(n) => {
            validate_next(id, layout, n, &s.next_key, old, s.key.is_some(), now)?;
            Parsed {
                der: n.der.clone(),
                info: n.info.clone(),
            }
        }
        None => {
            if s.key.is_none() {
                return Err(Error::CaKeyMissing {
                    ca: id.name().into(),
                    path: layout.ca_key(id),
                });
            }
            let alg = KeyAlgorithm::Same.resolve(&old.info.key_algorithm);
            let issue_err = |e: issue::IssueError| Error::Issue {
                cert: id.name().into(),
                reason: crate::error::Reason::of(e),
            };
            let (key, key_pem) = issue::new_key(alg).map_err(issue_err)?;
            let der = issue::self_signed_ca_named(
                &old.info.subject_der,
                &old.info.dns_names,
                &key.pair,
                now - issue::BACKDATE_SECONDS,
                now + validity,
            )
            .map_err(issue_err)?;
            let parsed = parse(&der, &next_crt(layout, id))?;
            validate_next(
                id,
                layout,
                &parsed,
                &Some((key, key_pem.clone().into_bytes())),
                old,
                true,
                now,
            )?;
            plan.push(
                write(next_key(layout, id), key_pem.into_bytes(), 0o600),
                "the new CA's key",
            );
            plan.push(
                write(
                    next_crt(layout, id),
                    issue::cert_pem(&der).into_bytes(),
                    0o644,
                ),
                "the new CA",
            );
            parsed
        }
    };
    let bundle = pem_of(&[old, &new]);
    plan.push(
        write(layout.ca_crt(id), bundle.clone().into_bytes(), 0o644),
        "trust bundle old+new (the old CA first: it still signs)",
    );
    kubeconfig_writes(
        plan,
        layout,
        id,
        &[old, &new],
        &bundle,
        "certificate-authority-data old+new",
        &[],
    )?;
    Ok(new)
}

/// Re-signs `leaf` by `signer` with the same public key, subject, SANs and usages;
/// NotBefore now (less kubeadm's backdate), NotAfter kept (capped at the signer's; an
/// expired leaf gets kubeadm's year).
fn resign(leaf: &Leaf, signer: &CaSigner<'_>, now: i64) -> Result<Vec<u8>> {
    let issue_err = |e: issue::IssueError| Error::Issue {
        cert: leaf.name.clone(),
        reason: crate::error::Reason::of(e),
    };
    let mut not_after = if leaf.info.not_after > now {
        leaf.info.not_after
    } else {
        now + issue::DEFAULT_VALIDITY_SECONDS
    };
    not_after = not_after.min(signer.cert.info.not_after);
    let mut spec = LeafSpec::from_existing(&leaf.info, now - issue::BACKDATE_SECONDS, not_after);
    spec.normalize();
    let public =
        rcgen::SubjectPublicKeyInfo::from_der(&leaf.info.spki_der).map_err(|e| Error::Issue {
            cert: leaf.name.clone(),
            reason: crate::error::Reason::of(e),
        })?;
    let der = issue::sign_leaf_for(
        &spec,
        &public,
        &[
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ],
        signer,
    )
    .map_err(issue_err)?;
    let info = cert::parse_der(&der).map_err(|e| Error::Validation {
        cert: leaf.name.clone(),
        reason: crate::error::Reason::of(e),
    })?;
    let bad = |r: &str| Error::Validation {
        cert: leaf.name.clone(),
        reason: r.to_string().into(),
    };
    if !cert::signed_by(&der, &signer.cert.der) {
        return Err(bad(
            "the re-signed certificate does not verify with the new CA",
        ));
    }
    if info.spki_der != leaf.info.spki_der || info.subject_der != leaf.info.subject_der {
        return Err(bad("the re-signed certificate changed key or subject"));
    }
    if info.san_set() != leaf.info.san_set() {
        return Err(bad("the re-signed certificate changed its SANs"));
    }
    Ok(der)
}

fn promote(layout: &Layout, id: CaId, s: &State, now: i64, plan: &mut Plan) -> Result<()> {
    let (Some(old), Some(new)) = (s.bundle.first(), s.next.as_ref()) else {
        return Err(wrong_phase(id, "promote".into(), s));
    };
    let (Some((old_key, old_key_bytes)), Some((new_key, new_key_bytes))) = (&s.key, &s.next_key)
    else {
        return Err(Error::CaKeyMissing {
            ca: id.name().into(),
            path: next_key(layout, id),
        });
    };
    let _ = old_key;
    let new_cert = cert::Cert {
        der: new.der.clone(),
        info: new.info.clone(),
        chain: vec![],
    };
    let signer = CaSigner {
        cert: &new_cert,
        key: new_key,
    };
    let mut resigned_kc = Vec::new();
    for l in &s.leaves {
        if !cert::signed_by(&l.der, &old.der) {
            continue;
        }
        let der = resign(l, &signer, now)?;
        let pem = issue::cert_pem(&der);
        if l.kubeconfig.is_some() {
            resigned_kc.push((l.path.clone(), pem));
        } else {
            plan.push(
                write(l.path.clone(), pem.into_bytes(), 0o644),
                format!("{} re-signed by the new CA", l.name),
            );
        }
    }
    let bundle = pem_of(&[new, old]);
    plan.push(
        write(layout.ca_crt(id), bundle.clone().into_bytes(), 0o644),
        "trust bundle new+old (the new CA first: it signs)",
    );
    plan.push(
        write(layout.ca_key(id), new_key_bytes.clone(), 0o600),
        "the new CA's key",
    );
    plan.push(
        write(
            prev_crt(layout, id),
            issue::cert_pem(&old.der).into_bytes(),
            0o644,
        ),
        "the old CA, kept for distrust and rollback",
    );
    plan.push(
        write(prev_key(layout, id), old_key_bytes.clone(), 0o600),
        "the old CA's key, kept for a rollback of promote (distrust removes it)",
    );
    kubeconfig_writes(
        plan,
        layout,
        id,
        &[old, new],
        &bundle,
        "certificate-authority-data new+old",
        &resigned_kc,
    )?;
    // Leaves in kubeconfigs that do not hold the CA data (none in kubeadm's layout).
    for (p, pem) in &resigned_kc {
        if !plan.writes.iter().any(|(w, _)| &w.target == p) {
            let kc = Kubeconfig::load(p)?;
            let text = kc.rewrite_embedded(Some(pem.as_bytes()), None, None)?;
            plan.push(
                write(p.clone(), text.into_bytes(), 0o600),
                "client certificate re-signed by the new CA",
            );
        }
    }
    plan.remove(next_crt(layout, id), "now the CA (in <ca>.crt)");
    plan.remove(next_key(layout, id), "now the CA key (in <ca>.key)");
    Ok(())
}

/// Client certificates the node's kubeconfigs reference as files (the kubelet's rotated
/// pair, kubelet.conf → kubelet-client-current.pem) that are signed by `old` and not by
/// `new`: `(kubeconfig, certificate file)`. Unreadable ones are not listed (the checklist
/// names them).
fn file_clients_signed_by_old_only(
    layout: &Layout,
    old: &Parsed,
    new: &Parsed,
) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for f in NODE_KUBECONFIGS {
        let p = layout.kubeconfig_dir.join(f);
        if !fsread::exists_nofollow(&p) {
            continue;
        }
        let Ok(kc) = Kubeconfig::load(&p) else {
            continue;
        };
        let Source::File(file) = &kc.client_cert else {
            continue;
        };
        let Ok(pem) = kc.client_cert_pem() else {
            continue;
        };
        let Ok(c) = cert::parse_pem_bundle(&pem) else {
            continue;
        };
        if cert::signed_by(&c.der, &old.der) && !cert::signed_by(&c.der, &new.der) {
            out.push((p, file.clone()));
        }
    }
    out
}

fn distrust(layout: &Layout, id: CaId, s: &State, plan: &mut Plan) -> Result<()> {
    let (Some(new), Some(old)) = (s.bundle.first(), s.prev.as_ref()) else {
        return Err(wrong_phase(id, "distrust".into(), s));
    };
    // No false green: a client certificate the node uses, signed by the old CA only, would be
    // refused by the API server once the old CA leaves the bundles.
    let stale = file_clients_signed_by_old_only(layout, old, new);
    if !stale.is_empty() {
        let files: Vec<String> = stale
            .iter()
            .map(|(kc, f)| format!("{} (used by {})", f.display(), kc.display()))
            .collect();
        return Err(Error::RotationPhase {
            ca: id.name().into(),
            requested: "distrust".into(),
            phase: s.phase.name().into(),
            detail: format!(
                "the client certificate {} is still signed by the old CA only: the API server \
                 would refuse it after distrust. Re-issue it first (let the kubelet rotate it, \
                 or `kubecert kubelet-conf rebuild`), then distrust; nothing was changed",
                files.join(", ")
            ),
        });
    }
    let bundle = pem_of(&[new]);
    plan.push(
        write(layout.ca_crt(id), bundle.clone().into_bytes(), 0o644),
        "the new CA only",
    );
    kubeconfig_writes(
        plan,
        layout,
        id,
        &[old, new],
        &bundle,
        "certificate-authority-data: the new CA only",
        &[],
    )?;
    plan.remove(
        prev_key(layout, id),
        "the old CA's key (the backup keeps it for a rollback)",
    );
    Ok(())
}

/// The files a phase's transaction may touch (what its rollback may put back).
fn phase_files(layout: &Layout, id: CaId, s: &State) -> Restorable {
    let mut files: BTreeSet<PathBuf> = [
        layout.ca_crt(id),
        layout.ca_key(id),
        next_crt(layout, id),
        next_key(layout, id),
        prev_crt(layout, id),
        prev_key(layout, id),
    ]
    .iter()
    .map(|p| store::normalize(p))
    .collect();
    for l in &s.leaves {
        files.insert(store::normalize(&l.path));
    }
    if id == CaId::Ca {
        for f in NODE_KUBECONFIGS {
            files.insert(store::normalize(&layout.kubeconfig_dir.join(f)));
        }
    }
    let removable = [
        next_crt(layout, id),
        next_key(layout, id),
        prev_crt(layout, id),
        prev_key(layout, id),
    ]
    .iter()
    .map(|p| store::normalize(p))
    .collect();
    Restorable { files, removable }
}

struct Restorable {
    files: BTreeSet<PathBuf>,
    removable: BTreeSet<PathBuf>,
}

/// The phase whose rollback leads back to `from`, and the phase it leaves.
fn rollback_target(phase: Phase) -> (RotationPhase, RotationPhase) {
    match phase {
        Phase::Stage => (RotationPhase::Staged, RotationPhase::None),
        Phase::Promote => (RotationPhase::Promoted, RotationPhase::Staged),
        Phase::Distrust => (RotationPhase::Distrusted, RotationPhase::Promoted),
    }
}

/// The newest backup under `root` made by `phase` of this CA whose replaced files, put
/// back, give the phase before; checked by reading what it would restore.
fn find_backup(
    root: &Path,
    layout: &Layout,
    id: CaId,
    phase: Phase,
    s: &State,
) -> Result<(PathBuf, store::RestoreOps)> {
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            (
                e.metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH),
                e.path(),
            )
        })
        .collect();
    dirs.sort();
    dirs.reverse();
    let r = phase_files(layout, id, s);
    let allowed = store::Restorable {
        files: r.files,
        removable: r.removable,
        ..Default::default()
    };
    let crt = store::normalize(&layout.ca_crt(id));
    let want_after: Vec<Vec<u8>> = s.bundle.iter().map(|c| c.der.clone()).collect();
    for (_, d) in dirs {
        let Ok(m) = store::read_manifest(&d) else {
            continue;
        };
        // The phase's transaction wrote <ca>.crt: its copy is the bundle before.
        let Some(copy) = m
            .entries
            .iter()
            .find(|e| store::normalize(&e.target) == crt)
            .and_then(|e| e.copy.clone())
        else {
            continue;
        };
        let Ok(bytes) = fsread::read(&d.join(copy.file_name().unwrap_or_default())) else {
            continue;
        };
        let before = super::bundle_ders(&bytes);
        let fits = match phase {
            // none -> staged: before [old], now [old, new]
            Phase::Stage => {
                want_after.len() == 2 && before.len() == 1 && before[0] == want_after[0]
            }
            // staged -> promoted: before [old, new], now [new, old]
            Phase::Promote => {
                want_after.len() == 2
                    && before.len() == 2
                    && before[0] == want_after[1]
                    && before[1] == want_after[0]
            }
            // promoted -> distrusted: before [new, old], now [new]
            Phase::Distrust => {
                want_after.len() == 1 && before.len() == 2 && before[0] == want_after[0]
            }
        };
        if !fits {
            continue;
        }
        let mut ops = store::restore_ops(&d, &m, &allowed)?;
        for w in &mut ops.writes {
            if !fsread::exists_nofollow(&w.target) {
                // A file the phase removed: certificates are 0644, keys 0600.
                let is_crt = w.target.extension().is_some_and(|x| x == "crt");
                w.mode = if is_crt { 0o644 } else { 0o600 };
                w.force_mode = true;
            }
        }
        return Ok((d, ops));
    }
    Err(Error::RotationPhase {
        ca: id.name().into(),
        requested: format!("roll back {}", phase.name()),
        phase: s.phase.name().into(),
        detail: format!(
            "no backup under {} made by the {} of this rotation",
            root.display(),
            phase.name()
        ),
    })
}

/// `ca rotate` without an API client: runs (or rolls back) one phase of a CA rotation on this
/// node. A `kubeconfig` (cluster-info update) for CA `ca` is refused before anything is
/// written: the CLI and the RPC method call `kubeapi::clusterinfo::rotate`, which has one.
pub fn rotate(p: &CaRotateParams) -> Result<CaRotateResult> {
    let refuse = |_: &Path, _: &[u8], _: bool| ClusterInfoAttempt {
        server: None,
        result: Err(Error::InvalidArgument(
            "kubeconfig: this kubecert is built without the k8s feature".into(),
        )),
    };
    if p.kubeconfig.is_some() && ca_id(&p.ca)? == CaId::Ca {
        return Err(Error::InvalidArgument(
            "kubeconfig: this kubecert is built without the k8s feature (the \
             cluster-info update needs it)"
                .into(),
        ));
    }
    rotate_with(p, &refuse)
}

/// `ca rotate`: runs (or rolls back) one phase of a CA rotation on this node; then, with
/// `kubeconfig` and CA `ca`, `update` sets cluster-info's CA data to the node's `<ca>.crt`
/// — after the files are committed: its failure is [`Error::ClusterInfo`], which carries the
/// result, the files staying as committed.
pub fn rotate_with(p: &CaRotateParams, update: ClusterInfoUpdater<'_>) -> Result<CaRotateResult> {
    let layout = p.location.layout();
    let id = ca_id(&p.ca)?;
    let (result, dry_bundle) = rotate_files(p)?;
    cluster_info_step(p, &layout, id, dry_bundle, update, result)
}

/// The files part of [`rotate`]; with the bundle a dry run would write to `<ca>.crt`.
fn rotate_files(p: &CaRotateParams) -> Result<(CaRotateResult, Option<Vec<u8>>)> {
    let layout = p.location.layout();
    let now = clock(&p.now)?;
    let id = ca_id(&p.ca)?;
    if !layout.cas().any(|c| c == id) {
        return Err(Error::InvalidArgument(format!(
            "{} is not part of this layout (external etcd)",
            p.ca
        )));
    }
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
    let root = p
        .backup_dir
        .as_deref()
        .map(PathBuf::from)
        .unwrap_or_else(|| store::default_backup_root(&layout.cert_dir));
    // Lock and recover first (an interrupted phase is finished or undone before the phase
    // is derived), except for a dry run, which only reads.
    let mut st = if p.dry_run {
        None
    } else {
        Some(Store::open(&layout.cert_dir, Duration::from_secs(300))?)
    };
    let s = detect(&layout, id)?;
    let before = s.phase;
    let mut result = CaRotateResult {
        ca: id.name().into(),
        phase: p.phase,
        rollback: p.rollback,
        phase_before: before,
        phase_after: before,
        message: String::new(),
        changes: vec![],
        written: vec![],
        old_ca: None,
        new_ca: None,
        join_hash: String::new(),
        checklist: vec![],
        components_to_restart: vec![],
        backup_dir: None,
        dry_run: p.dry_run,
        changed: false,
        cluster_info: None,
    };
    let crt = layout.ca_crt(id);
    let dry = |writes: &[Write_]| -> Option<Vec<u8>> {
        if !p.dry_run {
            return None;
        }
        writes
            .iter()
            .find(|w| w.target == crt)
            .map(|w| w.contents.clone())
    };
    let fill = |r: &mut CaRotateResult, s: &State| {
        let (o, n) = s.old_new();
        r.old_ca = o.map(identity);
        r.new_ca = n.map(identity);
        r.join_hash = s
            .bundle
            .first()
            .map(|c| join_hash(&c.info.spki_der))
            .unwrap_or_default();
    };
    fill(&mut result, &s);
    if before == RotationPhase::Inconsistent {
        return Err(wrong_phase(
            id,
            if p.rollback {
                format!("roll back {}", p.phase.name())
            } else {
                p.phase.name().into()
            },
            &s,
        ));
    }
    if p.rollback {
        let (from, to) = rollback_target(p.phase);
        if before == to {
            result.message = format!(
                "{} of {} is not in effect (phase {}): nothing to roll back",
                p.phase.name(),
                id.name(),
                before.name()
            );
            return Ok((result, None));
        }
        if before != from {
            return Err(wrong_phase(id, format!("roll back {}", p.phase.name()), &s));
        }
        let (dir, ops) = find_backup(&root, &layout, id, p.phase, &s)?;
        for w in &ops.writes {
            let path = w.target.display().to_string();
            result.changes.push(RotateChange {
                path: path.clone(),
                action: if p.dry_run {
                    RotateAction::WouldWrite
                } else {
                    RotateAction::Written
                },
                what: format!("put back from {}", dir.display()),
            });
            result.written.push(path);
        }
        for r in &ops.removes {
            let path = r.display().to_string();
            result.changes.push(RotateChange {
                path: path.clone(),
                action: if p.dry_run {
                    RotateAction::WouldRemove
                } else {
                    RotateAction::Removed
                },
                what: format!("made by {}", p.phase.name()),
            });
            result.written.push(format!("removed:{path}"));
        }
        result.phase_after = to;
        result.changed = true;
        result.checklist = checklist(id, p.phase, true, &s, &layout);
        result.components_to_restart = components(id);
        result.backup_dir = Some(dir.display().to_string());
        if let Some(st) = st.as_mut() {
            st.restore(&ops)?;
            let after = detect(&layout, id)?;
            fill(&mut result, &after);
            result.phase_after = after.phase;
        }
        result.message = format!(
            "{}rolled back {} of {}: phase {} -> {}",
            if p.dry_run {
                "[dry-run] would have "
            } else {
                ""
            },
            p.phase.name(),
            id.name(),
            before.name(),
            to.name()
        );
        let bundle = dry(&ops.writes);
        return Ok((result, bundle));
    }
    let (needs, gives) = match p.phase {
        Phase::Stage => (RotationPhase::None, RotationPhase::Staged),
        Phase::Promote => (RotationPhase::Staged, RotationPhase::Promoted),
        Phase::Distrust => (RotationPhase::Promoted, RotationPhase::Distrusted),
    };
    let done = before == gives
        || (p.phase == Phase::Stage && before == RotationPhase::Promoted)
        || (p.phase == Phase::Promote && before == RotationPhase::Distrusted);
    if done {
        result.message = format!(
            "{} of {} is already done (phase {}): nothing to do",
            p.phase.name(),
            id.name(),
            before.name()
        );
        result.checklist = checklist(id, p.phase, false, &s, &layout);
        return Ok((result, None));
    }
    let ok_before =
        before == needs || (p.phase == Phase::Stage && before == RotationPhase::Distrusted);
    if !ok_before {
        return Err(wrong_phase(id, p.phase.name().into(), &s));
    }
    let mut plan = Plan::default();
    match p.phase {
        Phase::Stage => {
            let new = stage(&layout, id, &s, now, validity, &mut plan)?;
            result.new_ca = Some(identity(&new));
        }
        Phase::Promote => promote(&layout, id, &s, now, &mut plan)?,
        Phase::Distrust => distrust(&layout, id, &s, &mut plan)?,
    }
    let writes: Vec<Write_> = plan.writes.iter().map(|(w, _)| w.clone()).collect();
    let removes: Vec<PathBuf> = plan.removes.iter().map(|(r, _)| r.clone()).collect();
    for (w, what) in &plan.writes {
        let path = w.target.display().to_string();
        result.changes.push(RotateChange {
            path: path.clone(),
            action: if p.dry_run {
                RotateAction::WouldWrite
            } else {
                RotateAction::Written
            },
            what: what.clone(),
        });
        result.written.push(path);
    }
    for (r, what) in &plan.removes {
        let path = r.display().to_string();
        result.changes.push(RotateChange {
            path: path.clone(),
            action: if p.dry_run {
                RotateAction::WouldRemove
            } else {
                RotateAction::Removed
            },
            what: what.clone(),
        });
        result.written.push(format!("removed:{path}"));
    }
    result.changed = true;
    result.phase_after = gives;
    result.components_to_restart = components(id);
    match st.as_mut() {
        None => store::plan_with_removes(&writes, &removes)?,
        Some(st) => {
            let b = st.commit_with_removes(&writes, &removes, &root, &store::stamp(now))?;
            result.backup_dir = b.map(|b| b.display().to_string());
            let after = detect(&layout, id)?;
            if after.phase != gives {
                return Err(Error::RotationPhase {
                    ca: id.name().into(),
                    requested: format!("verify {}", p.phase.name()),
                    phase: after.phase.name().into(),
                    detail: format!(
                        "after writing, the files read back as {} ({}); the backup is {}",
                        after.phase.name(),
                        after.detail,
                        result.backup_dir.as_deref().unwrap_or("-")
                    ),
                });
            }
            fill(&mut result, &after);
            result.checklist = checklist(id, p.phase, false, &after, &layout);
        }
    }
    if result.checklist.is_empty() {
        result.checklist = checklist(id, p.phase, false, &s, &layout);
    }
    result.message = format!(
        "{}{} of {}: phase {} -> {}",
        if p.dry_run { "[dry-run] would " } else { "" },
        p.phase.name(),
        id.name(),
        before.name(),
        gives.name()
    );
    let bundle = dry(&writes);
    Ok((result, bundle))
}

/// The text of `ca rotate`.
pub fn render(r: &CaRotateResult) -> String {
    let mut s = format!("{}\n", r.message);
    for c in &r.changes {
        let verb = match c.action {
            RotateAction::Written => "written",
            RotateAction::Removed => "removed",
            RotateAction::WouldWrite => "would write",
            RotateAction::WouldRemove => "would remove",
        };
        s.push_str(&format!("  {verb}: {} ({})\n", c.path, c.what));
    }
    if let Some(o) = &r.old_ca {
        s.push_str(&format!(
            "old CA: serial {}, NotAfter {}, join hash {}\n",
            o.serial, o.not_after, o.spki_sha256
        ));
    }
    if let Some(n) = &r.new_ca {
        s.push_str(&format!(
            "new CA: serial {}, NotAfter {}, join hash {}\n",
            n.serial, n.not_after, n.spki_sha256
        ));
    }
    if !r.join_hash.is_empty() {
        s.push_str(&format!("signing CA's join hash: {}\n", r.join_hash));
    }
    if let Some(b) = &r.backup_dir {
        s.push_str(&format!("backup: {b}\n"));
    }
    if !r.components_to_restart.is_empty() && r.changed {
        s.push_str(&format!(
            "restart: {}\n",
            owner_names(&r.components_to_restart)
        ));
    }
    if let Some(ci) = &r.cluster_info {
        let server = ci.server.as_deref().unwrap_or("-");
        let state = match (&ci.error, ci.would_update, ci.updated) {
            (Some(e), _, _) => format!("NOT updated through {server}: {e}"),
            (None, Some(true), _) => format!("would be updated through {server}"),
            (None, _, true) => format!("updated through {server}"),
            (None, _, false) => format!("already current on {server}"),
        };
        s.push_str(&format!(
            "cluster-info (kube-public): {state}{}\n",
            ci.resource_version
                .as_deref()
                .map(|v| format!(" (resourceVersion {v})"))
                .unwrap_or_default()
        ));
    }
    if !r.checklist.is_empty() {
        s.push_str("checklist (not done by kubecert on this node):\n");
        for c in &r.checklist {
            s.push_str(&format!("  - {c}\n"));
        }
    }
    s
}
