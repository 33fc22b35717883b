//! *promote*: every leaf re-signed by the new CA, the new CA signs, the bundle new+old.

use std::path::Path;

use rcgen::KeyUsagePurpose;

use super::kubelet;

use super::files::{next_crt, next_key, prev_crt, prev_key, Leaf};
use super::phase::{wrong_phase, State};
use super::plan::{kubeconfig_writes, pem_of, write, Plan};
use crate::error::{Error, Result};
use crate::pki::cert;
use crate::pki::inventory::CaId;
use crate::pki::issue::{self, CaSigner, LeafSpec};
use crate::pki::kubeconfig::Kubeconfig;
use crate::pki::Layout;

/// Re-signs `leaf` by `signer` with the same public key, subject, SANs and usages;
/// NotBefore now (less kubeadm's backdate), NotAfter kept (capped at the signer's; an
/// expired leaf gets kubeadm's year).
pub(super) fn resign(
    leaf: &Leaf,
    signer: &CaSigner<'_>,
    now: i64,
    usages: &[KeyUsagePurpose],
) -> Result<Vec<u8>> {
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
    let der = issue::sign_leaf_for(&spec, &public, usages, signer).map_err(issue_err)?;
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

pub(super) fn promote(
    layout: &Layout,
    kubelet_pki: &Path,
    id: CaId,
    s: &State,
    now: i64,
    plan: &mut Plan,
) -> Result<()> {
    let (Some(old), Some(new)) = (s.bundle.first(), s.next.as_ref()) else {
        return Err(wrong_phase(id, "promote".into(), s));
    };
    let c = id.name();
    let rollback = format!("`kubecert ca rotate {c} --phase stage --rollback`");
    let Some((new_key, new_key_bytes)) = &s.next_key else {
        return Err(Error::PromoteKeyMissing {
            ca: c,
            path: next_key(layout, id),
            todo: format!(
                "promote re-signs every leaf of {c} with the new CA's key. Either place the new \
                 CA's key there (the key of {}, mode 0600) and run `kubecert ca rotate {c} \
                 --phase promote` again, or roll the stage back ({rollback}) and re-issue the \
                 leaves with the external CA yourself (`kubecert csr export all --csr-dir DIR`, \
                 sign the CSRs with the new CA, `kubecert csr import all --csr-dir DIR` once the \
                 new CA is the first certificate of {})",
                next_crt(layout, id).display(),
                layout.ca_crt(id).display()
            ),
        });
    };
    let Some((_, old_key_bytes)) = &s.key else {
        return Err(Error::PromoteKeyMissing {
            ca: c,
            path: layout.ca_key(id),
            todo: format!(
                "promote keeps the old CA's key as {} (for distrust and a rollback of promote). \
                 Put the old CA's key back there (the key of the first certificate of {}) and \
                 run `kubecert ca rotate {c} --phase promote` again, or roll the stage back \
                 ({rollback})",
                prev_key(layout, id).display(),
                layout.ca_crt(id).display()
            ),
        });
    };
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
        let der = resign(
            l,
            &signer,
            now,
            &[
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
        )?;
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
    if id == CaId::Ca {
        kubelet::reissue(layout, kubelet_pki, old, &signer, now, plan)?;
    }
    plan.remove(next_crt(layout, id), "now the CA (in <ca>.crt)");
    plan.remove(next_key(layout, id), "now the CA key (in <ca>.key)");
    Ok(())
}
