//! *distrust*: the old CA leaves every bundle; refused while a client certificate the node
//! uses is still signed by the old CA only.

use std::path::PathBuf;

use super::files::{prev_key, Parsed};
use super::kubelet;
use super::phase::{wrong_phase, State};
use super::plan::{kubeconfig_writes, pem_of, write, Plan};
use crate::error::{Error, Result};
use crate::pki::cert;
use crate::pki::inventory::CaId;

use crate::pki::Layout;

/// Client certificates the node's kubeconfigs reference as files (the kubelet's rotated
/// pair, kubelet.conf → kubelet-client-current.pem) that are signed by `old` and not by
/// `new`: `(kubeconfig, certificate file)`. One that cannot be read or parsed is
/// [`Error::RotationClientFile`]: whether it is still signed by the old CA only cannot be
/// told, and a distrust could lock the kubelet out.
pub(super) fn file_clients_signed_by_old_only(
    layout: &Layout,
    old: &Parsed,
    new: &Parsed,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut out = Vec::new();
    for c in kubelet::file_clients(layout) {
        let pem = kubelet::read(&c, CaId::Ca, "distrust")?;
        if cert::signed_by(&pem.der, &old.der) && !cert::signed_by(&pem.der, &new.der) {
            out.push((c.kubeconfig, c.file));
        }
    }
    Ok(out)
}

pub(super) fn distrust(layout: &Layout, id: CaId, s: &State, plan: &mut Plan) -> Result<()> {
    let (Some(new), Some(old)) = (s.bundle.first(), s.prev.as_ref()) else {
        return Err(wrong_phase(id, "distrust".into(), s));
    };
    // No false green: a client certificate the node uses, signed by the old CA only, would be
    // refused by the API server once the old CA leaves the bundles.
    let stale = if id == CaId::Ca {
        file_clients_signed_by_old_only(layout, old, new)?
    } else {
        Vec::new()
    };
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
