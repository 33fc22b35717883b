//! Rollback of a phase: the backup of that phase's own transaction, matched against the
//! current files, put back.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::files::{next_crt, next_key, prev_crt, prev_key};
use super::phase::State;
use super::{Phase, RotationPhase};
use crate::ca::{bundle_ders, NODE_KUBECONFIGS};
use crate::error::{Error, Result};
use crate::pki::inventory::CaId;
use crate::pki::store;
use crate::pki::{fsread, Layout};

/// The files a phase's transaction may touch (what its rollback may put back).
pub(super) fn phase_files(layout: &Layout, id: CaId, s: &State) -> Restorable {
    // The staged (next) and kept (prev) pairs: a phase may make or remove them.
    let removable: BTreeSet<PathBuf> = [
        next_crt(layout, id),
        next_key(layout, id),
        prev_crt(layout, id),
        prev_key(layout, id),
    ]
    .iter()
    .map(|p| store::normalize(p))
    .collect();
    let mut files = removable.clone();
    files.insert(store::normalize(&layout.ca_crt(id)));
    files.insert(store::normalize(&layout.ca_key(id)));
    for l in &s.leaves {
        files.insert(store::normalize(&l.path));
    }
    if id == CaId::Ca {
        for f in NODE_KUBECONFIGS {
            files.insert(store::normalize(&layout.kubeconfig_dir.join(f)));
        }
    }
    Restorable { files, removable }
}

pub(super) struct Restorable {
    pub(super) files: BTreeSet<PathBuf>,
    pub(super) removable: BTreeSet<PathBuf>,
}

/// The phase whose rollback leads back to `from`, and the phase it leaves.
pub(super) fn rollback_target(phase: Phase) -> (RotationPhase, RotationPhase) {
    match phase {
        Phase::Stage => (RotationPhase::Staged, RotationPhase::None),
        Phase::Promote => (RotationPhase::Promoted, RotationPhase::Staged),
        Phase::Distrust => (RotationPhase::Distrusted, RotationPhase::Promoted),
    }
}

/// `base` plus, for `ca`, what promote's re-issue of the kubelet's client pair touched in
/// `kubelet_pki` (restore's own rule, `pki::restore::restorable`): the
/// `kubelet-client-current.pem` link (re-pointed only at a dated pair there), the dated pairs
/// (removable: the one promote created; or put back from a copy when rewritten in place),
/// and a regular `-current.pem`.
fn with_kubelet_pair(
    base: &store::Restorable,
    layout: &Layout,
    kubelet_pki: &Path,
    id: CaId,
    m: &store::BackupManifest,
) -> store::Restorable {
    let mut a = base.clone();
    if id != CaId::Ca {
        return a;
    }
    let k = crate::pki::restore::restorable(layout, kubelet_pki, m);
    let inside = |p: &PathBuf| p.parent() == Some(kubelet_pki);
    a.links = k.links;
    a.files.extend(k.link_targets.iter().cloned());
    a.files.extend(a.links.iter().cloned());
    a.link_targets = k.link_targets;
    a.removable.extend(k.removable.into_iter().filter(inside));
    a
}

/// The newest backup under `root` made by `phase` of this CA whose replaced files, put
/// back, give the phase before; checked by reading what it would restore.
pub(super) fn find_backup(
    root: &Path,
    layout: &Layout,
    kubelet_pki: &Path,
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
    let base = store::Restorable {
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
        let allowed = with_kubelet_pair(&base, layout, kubelet_pki, id, &m);
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
        let before = bundle_ders(&bytes);
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
