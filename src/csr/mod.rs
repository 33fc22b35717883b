//! External CA: `csr export` and a validated `csr import`.
//!
//! - [`export`] writes `<name>.csr` + `<name>.key` for each selected certificate, flat and by
//!   inventory name (`apiserver.csr`, `etcd-server.csr`, `admin.conf.csr`) exactly as kubeadm
//!   1.15's `renew --csr-only --csr-dir` did. The CSR carries the existing certificate's subject
//!   (verbatim DER) and SANs and, like kubeadm, requests no usages unless asked to. It needs no
//!   CA key and never touches the PKI: a target that would land on a live key, certificate or
//!   kubeconfig stops the command before anything is written.
//! - [`import`] takes each signed `<name>.crt` (optionally followed by its chain) with its
//!   `<name>.key` from the CSR dir, checks it against the PKI and against the certificate it
//!   replaces (issuing CA by signature, key match, subject DER, SAN sets, EKU for the row's
//!   role, not a CA, valid now, not outliving its CA), and installs every accepted certificate
//!   through the same locked, journaled, backed-up transaction as `renew` — or, when anything
//!   is refused, installs nothing and says exactly what is wrong with each file.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pki::cert::{self, Cert, CertInfo, KeyFormat, PrivateKey};
use crate::pki::inventory::{self, CaId, Component, Entry, Location};
use crate::pki::issue::{self, KeyAlgorithm, LeafSpec};
use crate::pki::kubeconfig::{Kubeconfig, Source};
use crate::pki::snapshot::CertSnapshot;
use crate::pki::store::{self, Store, Write_};
use crate::pki::{self, Cas, Found, KeyOrigin, Layout, Material, PkiLocation};
use crate::timefmt;

mod export;
mod import;
mod render;
mod validate;

pub use export::{export, CsrExportParams, CsrExportResult, ExportAction, ExportItem};
pub use import::{import, CsrImportParams, CsrImportResult, ImportAction, ImportItem};
pub use render::{render_export_text, render_import_text};
use validate::{finding, judge, RowCheck};
pub use validate::{validate_issued, Finding, FindingCode, ValidatedIssue};

const LOCK_TIMEOUT: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------------
// Shared
// ---------------------------------------------------------------------------------------------

fn csr_dir_of(s: &str) -> Result<PathBuf> {
    if s.trim().is_empty() {
        // kubeadm 1.15's message for `--csr-only` without `--csr-dir`.
        return Err(Error::InvalidArgument(
            "please provide a path where CSR request should be stored (--csr-dir)".into(),
        ));
    }
    Ok(PathBuf::from(s))
}

/// `<dir>/<name>.<ext>`, flat, by inventory name (as kubeadm 1.15 named them).
pub fn file_in(dir: &Path, e: &Entry, ext: &str) -> PathBuf {
    dir.join(format!("{}.{ext}", e.name))
}

fn exists_nofollow(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// A private key as PEM in the encoding it was loaded from (PKCS#1 `RSA PRIVATE KEY`, SEC1
/// `EC PRIVATE KEY` or PKCS#8 `PRIVATE KEY`), the DER kept verbatim.
fn key_pem_same_format(k: &PrivateKey) -> String {
    let label = match k.format {
        KeyFormat::Pkcs1 => "RSA PRIVATE KEY",
        KeyFormat::Sec1 => "EC PRIVATE KEY",
        KeyFormat::Pkcs8 => "PRIVATE KEY",
    };
    issue::pem_lf(&::pem::Pem::new(label, k.pair.serialized_der().to_vec()))
}

// ---------------------------------------------------------------------------------------------
// Live-file collisions
// ---------------------------------------------------------------------------------------------

fn push_kubeconfig(v: &mut Vec<PathBuf>, path: PathBuf) {
    if let Ok(kc) = Kubeconfig::load(&path) {
        for s in [&kc.client_cert, &kc.client_key, &kc.ca] {
            if let Source::File(f) = s {
                v.push(f.clone());
            }
        }
    }
    v.push(path);
}

/// Every file a cluster of this layout uses: the `.crt`/`.key` of every inventory row (CAs
/// and etcd rows included, whatever the etcd mode), `sa.key`/`sa.pub`, every kubeconfig
/// (kubelet.conf too) and the files they reference.
pub fn live_files(layout: &Layout) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in inventory::INVENTORY.iter() {
        match e.location {
            Location::Pki { base } => {
                v.push(layout.pki_crt(base));
                v.push(layout.pki_key(base));
            }
            Location::Kubeconfig { file } => {
                push_kubeconfig(&mut v, layout.kubeconfig_dir.join(file))
            }
        }
    }
    v.push(layout.pki_key("sa"));
    v.push(layout.cert_dir.join("sa.pub"));
    push_kubeconfig(&mut v, layout.kubeconfig_dir.join("kubelet.conf"));
    v
}

/// An absolute path with symlinks in its existing part resolved.
fn resolved(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    if let Ok(c) = fs::canonicalize(&abs) {
        return c;
    }
    match (abs.parent(), abs.file_name()) {
        (Some(d), Some(n)) => fs::canonicalize(d)
            .map(|d| d.join(n))
            .unwrap_or_else(|_| abs.clone()),
        _ => abs,
    }
}

/// Whether `a` and `b` name the same file (same resolved path, or same inode).
fn same_file(a: &Path, b: &Path) -> bool {
    if resolved(a) == resolved(b) {
        return true;
    }
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The first of `paths` that is (or would land on) a live file, with that live file.
pub fn find_collision(layout: &Layout, paths: &[PathBuf]) -> Option<(PathBuf, PathBuf)> {
    let live = live_files(layout);
    paths.iter().find_map(|p| {
        live.iter()
            .find(|l| same_file(p, l))
            .map(|l| (p.clone(), l.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::inventory::Role;

    #[test]
    fn usages_follow_role() {
        assert_eq!(Role::Server.ext_key_usages(), ["serverAuth"]);
        assert_eq!(Role::Client.ext_key_usages(), ["clientAuth"]);
        assert_eq!(
            Role::ServerAndClient.ext_key_usages(),
            ["serverAuth", "clientAuth"]
        );
        let e = inventory::find("etcd-server").map(|e| e.role);
        assert_eq!(e, Some(Role::ServerAndClient));
    }

    #[test]
    fn flat_names_like_kubeadm_115() {
        let d = Path::new("/x");
        let f = |n: &str| inventory::find(n).map(|e| file_in(d, e, "csr"));
        assert_eq!(f("etcd-server"), Some(PathBuf::from("/x/etcd-server.csr")));
        assert_eq!(f("admin.conf"), Some(PathBuf::from("/x/admin.conf.csr")));
    }

    #[test]
    fn params_reject_unknown_fields() {
        let bad = serde_json::from_str::<CsrImportParams>(r#"{"csr_dir":"/x","bogus":1}"#);
        assert!(bad.is_err());
        let ok = serde_json::from_str::<CsrExportParams>(r#"{"csr_dir":"/x","names":["all"]}"#);
        assert!(ok.is_ok());
    }

    #[test]
    fn collision_detected_by_path_and_inode() {
        let d = tempfile::tempdir().expect("tempdir");
        let pki = d.path().join("pki");
        fs::create_dir_all(&pki).expect("mkdir");
        fs::write(pki.join("apiserver.key"), b"k").expect("write");
        let layout = Layout::new(&pki, d.path(), Some(true));
        // Same dir: apiserver.key is live (exists), etcd-server.key is not a live name.
        let hit = find_collision(
            &layout,
            &[pki.join("etcd-server.key"), pki.join("apiserver.key")],
        );
        assert_eq!(hit.map(|h| h.1), Some(pki.join("apiserver.key")));
        // A live path that does not exist yet still collides.
        assert!(find_collision(&layout, &[pki.join("apiserver.crt")]).is_some());
        // Via a symlinked dir.
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&pki, &link).expect("symlink");
        assert!(find_collision(&layout, &[link.join("apiserver.key")]).is_some());
        // Via a hard link.
        let other = d.path().join("out");
        fs::create_dir_all(&other).expect("mkdir");
        fs::hard_link(pki.join("apiserver.key"), other.join("apiserver.key")).expect("link");
        assert!(find_collision(&layout, &[other.join("apiserver.key")]).is_some());
        assert!(find_collision(&layout, &[other.join("apiserver.csr")]).is_none());
    }
}
