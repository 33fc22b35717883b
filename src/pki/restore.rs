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
use crate::pki::store::{self, Store, Write_};
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
        None => store::default_backup_root(&layout.cert_dir),
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
        let mut store = Store::open(&layout.cert_dir, Duration::from_secs(300))?;
        store.restore(&changed_writes)?;
    }
    Ok(RestoreResult {
        restored,
        changed,
        dry_run: p.dry_run,
    })
}
