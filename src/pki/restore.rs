//! `restore`: puts a backup made by renew, csr import or kubelet-conf back in place, through
//! the same locked, journaled transaction ([`crate::pki::store::Store`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::pki::inventory::{self, Location};
use crate::pki::kubeconfig::Source;
use crate::pki::store::{self, Store};
use crate::pki::{self, Layout};

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
    /// kubelet PKI dir (default `/var/lib/kubelet/pki`): a `kubelet-conf rebuild` backup
    /// re-points `kubelet-client-current.pem` there and removes the dated pair it created.
    #[serde(default)]
    pub kubelet_pki: Option<String>,
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
    /// Files put back (or that would be), links re-pointed included.
    pub restored: Vec<String>,
    /// Files the backed-up run had created, removed (or that would be): the dated pair of a
    /// `kubelet-conf rebuild`. Absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
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
    // CA rotation (`ca rotate`): the CA files themselves are rows above; the staged and
    // previous pairs too.
    for p in layout.ca_rotation_files() {
        out.insert(store::normalize(&p));
    }
    out
}

/// Whether `name` is a rotated client pair's name (`kubelet-client-<time>.pem`, not the
/// `-current` link).
fn is_dated_pair(name: &str) -> bool {
    name.starts_with("kubelet-client-")
        && name.ends_with(".pem")
        && name != crate::pki::KUBELET_CLIENT_CURRENT
}

/// The rotated client pairs directly in the kubelet PKI dir `dir`
/// (`kubelet-client-<time>.pem` regular files, not the `-current` link), normalised.
fn dated_client_pairs(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        if is_dated_pair(&e.file_name().to_string_lossy())
            && e.file_type().is_ok_and(|t| t.is_file())
        {
            out.insert(store::normalize(&e.path()));
        }
    }
    out
}

/// What `manifest`, a backup of `layout` with the kubelet PKI dir `kubelet_pki`, may touch:
/// the files of [`restorable_targets`]; the `kubelet-client-current.pem` link, re-pointed
/// only at a rotated pair that exists directly in `kubelet_pki`; and the rotated pairs
/// directly in `kubelet_pki`, removable (a rebuild's backup says its new pair did not exist
/// before; one already gone is named too, so that a second restore finds nothing to do).
pub fn restorable(
    layout: &Layout,
    kubelet_pki: &Path,
    manifest: &store::BackupManifest,
) -> store::Restorable {
    let pairs = dated_client_pairs(kubelet_pki);
    let mut removable = pairs.clone();
    // A rotation phase's backup says which rotation files it created: removed on restore.
    removable.extend(
        layout
            .ca_rotation_files()
            .iter()
            .map(|p| store::normalize(p)),
    );
    for e in &manifest.entries {
        let t = store::normalize(&e.target);
        if t.parent() == Some(kubelet_pki)
            && t.file_name()
                .is_some_and(|n| is_dated_pair(&n.to_string_lossy()))
        {
            removable.insert(t);
        }
    }
    store::Restorable {
        files: restorable_targets(layout),
        links: [store::normalize(
            &kubelet_pki.join(crate::pki::KUBELET_CLIENT_CURRENT),
        )]
        .into(),
        link_targets: pairs,
        removable,
    }
}

/// Puts a backup back in place through the same transaction machinery.
///
/// The backup dir must be a directory directly under the backup root (not a symlink), and
/// every manifest entry must put an inventory file of this layout back from a plain file of
/// that dir, or re-point the kubelet's `kubelet-client-current.pem` at an existing pair
/// beside it, or remove a pair the backed-up run created ([`store::restore_ops`],
/// [`restorable`]); otherwise [`crate::error::Error::BackupRefused`] and nothing is written.
/// Files, links and removals are one transaction.
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
        None => store::default_backup_root(&layout.cert_dir),
    };
    let dir = store::backup_dir_in(&root, Path::new(&p.backup_dir))?;
    let manifest = store::read_manifest(&dir)?;
    let kubelet_pki = store::normalize(Path::new(
        p.kubelet_pki.as_deref().unwrap_or(pki::DEFAULT_KUBELET_PKI),
    ));
    let ops = store::restore_ops(
        &dir,
        &manifest,
        &restorable(&layout, &kubelet_pki, &manifest),
    )?;
    // Only what differs from the backup.
    let todo = store::RestoreOps {
        writes: ops
            .writes
            .into_iter()
            .filter(|w| {
                crate::pki::fsread::read(&w.target)
                    .map(|b| b != w.contents)
                    .unwrap_or(true)
            })
            .collect(),
        links: ops
            .links
            .into_iter()
            .filter(|l| std::fs::read_link(&l.target).ok().as_ref() != Some(&l.points_to))
            .collect(),
        removes: ops
            .removes
            .into_iter()
            .filter(|r| std::fs::symlink_metadata(r).is_ok())
            .collect(),
    };
    let restored = todo
        .writes
        .iter()
        .map(|w| &w.target)
        .chain(todo.links.iter().map(|l| &l.target))
        .map(|t| t.display().to_string())
        .collect();
    let removed = todo
        .removes
        .iter()
        .map(|t| t.display().to_string())
        .collect();
    let changed = !(todo.writes.is_empty() && todo.links.is_empty() && todo.removes.is_empty());
    if !p.dry_run && changed {
        let mut store = Store::open(&layout.cert_dir, Duration::from_secs(300))?;
        store.restore(&todo)?;
    }
    Ok(RestoreResult {
        restored,
        removed,
        changed,
        dry_run: p.dry_run,
    })
}
