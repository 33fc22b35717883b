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

mod checklist;
mod cluster_info;
mod distrust;
mod files;
mod kubelet;
mod phase;
mod plan;
mod promote;
mod render;
mod rollback;
mod stage;

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use self::checklist::{checklist, components};
use self::cluster_info::cluster_info_step;
pub use self::cluster_info::{
    ClusterInfoAttempt, ClusterInfoOutcome, ClusterInfoResult, ClusterInfoUpdater,
};
use self::files::Parsed;
pub(in crate::ca) use self::phase::refuse_during_rotation;
pub use self::phase::status;
use self::phase::{detect, wrong_phase, State};
use self::plan::Plan;
pub use self::render::render;
use self::rollback::{find_backup, rollback_target};
use super::{ca_id, clock, join_hash};
use crate::error::{Error, Result};
use crate::ops::endpoints::Owner;
use crate::pki::inventory::CaId;
use crate::pki::issue;
use crate::pki::store::{self, Store, Write_};
use crate::pki::PkiLocation;
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
    /// The kubelet PKI dir (default `/var/lib/kubelet/pki`; the agent's `--kubelet-pki`):
    /// promote of `ca` re-issues kubelet.conf's file-referenced client certificate when it
    /// is this dir's `kubelet-client-current.pem`.
    #[serde(default)]
    pub kubelet_pki: Option<String>,
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

fn identity(c: &Parsed) -> CaIdentity {
    CaIdentity {
        serial: c.info.serial.clone(),
        subject: c.info.subject.clone(),
        not_after: timefmt::rfc3339(c.info.not_after),
        spki_sha256: join_hash(&c.info.spki_der),
    }
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
    let kubelet_pki = store::normalize(Path::new(
        p.kubelet_pki
            .as_deref()
            .unwrap_or(crate::pki::DEFAULT_KUBELET_PKI),
    ));
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
        let (dir, ops) = find_backup(&root, &layout, &kubelet_pki, id, p.phase, &s)?;
        let back = format!("put back from {}", dir.display());
        let link_back = format!("link put back from {}", dir.display());
        let made_by = format!("made by {}", p.phase.name());
        record_changes(
            &mut result,
            p.dry_run,
            ops.writes
                .iter()
                .map(|w| (w.target.as_path(), &back))
                .chain(ops.links.iter().map(|l| (l.target.as_path(), &link_back))),
            ops.removes.iter().map(|r| (r.as_path(), &made_by)),
        );
        result.phase_after = to;
        result.changed = true;
        result.checklist = checklist(id, p.phase, true, &s, &layout, &kubelet_pki);
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
        result.checklist = checklist(id, p.phase, false, &s, &layout, &kubelet_pki);
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
            let new = stage::stage(&layout, id, &s, now, validity, &mut plan)?;
            result.new_ca = Some(identity(&new));
        }
        Phase::Promote => promote::promote(&layout, &kubelet_pki, id, &s, now, &mut plan)?,
        Phase::Distrust => distrust::distrust(&layout, id, &s, &mut plan)?,
    }
    let writes: Vec<Write_> = plan.writes.iter().map(|(w, _)| w.clone()).collect();
    let removes: Vec<PathBuf> = plan.removes.iter().map(|(r, _)| r.clone()).collect();
    let links: Vec<store::Link> = plan.links.iter().map(|(l, _)| l.clone()).collect();
    record_changes(
        &mut result,
        p.dry_run,
        plan.writes
            .iter()
            .map(|(w, what)| (w.target.as_path(), what))
            .chain(
                plan.links
                    .iter()
                    .map(|(l, what)| (l.target.as_path(), what)),
            ),
        plan.removes.iter().map(|(r, what)| (r.as_path(), what)),
    );
    result.changed = true;
    result.phase_after = gives;
    result.components_to_restart = components(id);
    match st.as_mut() {
        None => store::plan_with_links_and_removes(&writes, &links, &removes)?,
        Some(st) => {
            let b = st.commit_with_links_and_removes(
                &writes,
                &links,
                &removes,
                &root,
                &store::stamp(now),
            )?;
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
            result.checklist = checklist(id, p.phase, false, &after, &layout, &kubelet_pki);
        }
    }
    if result.checklist.is_empty() {
        result.checklist = checklist(id, p.phase, false, &s, &layout, &kubelet_pki);
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

/// Lists a transaction's files in `result`: `written` (files and links, with why) and
/// `removed`, as done or, for a dry run, as would be done (`removed:` prefix in `written`).
fn record_changes<'a>(
    result: &mut CaRotateResult,
    dry_run: bool,
    written: impl Iterator<Item = (&'a Path, &'a String)>,
    removed: impl Iterator<Item = (&'a Path, &'a String)>,
) {
    let (write_action, remove_action) = if dry_run {
        (RotateAction::WouldWrite, RotateAction::WouldRemove)
    } else {
        (RotateAction::Written, RotateAction::Removed)
    };
    for (target, what) in written {
        let path = target.display().to_string();
        result.changes.push(RotateChange {
            path: path.clone(),
            action: write_action,
            what: what.clone(),
        });
        result.written.push(path);
    }
    for (target, what) in removed {
        let path = target.display().to_string();
        result.changes.push(RotateChange {
            path: path.clone(),
            action: remove_action,
            what: what.clone(),
        });
        result.written.push(format!("removed:{path}"));
    }
}
