//! *distrust*: the old CA leaves every bundle; refused while a client certificate the node
//! uses is still signed by the old CA only.

use std::path::PathBuf;

use super::files::{prev_key, Parsed};
use super::phase::{wrong_phase, State};
use super::plan::{kubeconfig_writes, pem_of, write, Plan};
use crate::ca::NODE_KUBECONFIGS;
use crate::error::{Error, Result};
use crate::pki::cert;
use crate::pki::inventory::CaId;
use crate::pki::kubeconfig::{Kubeconfig, Source};
use crate::pki::{fsread, Layout};

/// Client certificates the node's kubeconfigs reference as files (the kubelet's rotated
/// pair, kubelet.conf → kubelet-client-current.pem) that are signed by `old` and not by
/// `new`: `(kubeconfig, certificate file)`. Unreadable ones are not listed (the checklist
/// names them).
pub(super) fn file_clients_signed_by_old_only(
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

pub(super) fn distrust(layout: &Layout, id: CaId, s: &State, plan: &mut Plan) -> Result<()> {
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
