//! The client certificates the node's kubeconfigs reference as files: the kubelet's rotated
//! pair (kubelet.conf → `<kubelet-pki>/kubelet-client-current.pem`, the certificate then its
//! key, a link to a dated `kubelet-client-<time>.pem`, as the kubelet's certificate store
//! keeps it, and as `kubelet-conf rebuild` writes it). Promote of `ca` re-issues the one in
//! the kubelet PKI dir the call is for, by the new CA with the same key and identity, as a
//! new dated pair the link is swapped to (how the kubelet itself rotates it); distrust
//! refuses while one is signed by the old CA only.

use std::path::{Path, PathBuf};

use rcgen::KeyUsagePurpose;

use super::files::{Leaf, Parsed};
use super::plan::{write, Plan};
use super::promote::resign;
use crate::ca::NODE_KUBECONFIGS;
use crate::error::{Error, Reason, Result};
use crate::pki::cert::{self, CertInfo, PublicKeyAlgorithm};
use crate::pki::inventory::CaId;
use crate::pki::issue::{self, CaSigner};
use crate::pki::kubeconfig::{Kubeconfig, Source};
use crate::pki::store::{self, Link};
use crate::pki::{fsread, Layout, KUBELET_CLIENT_CURRENT};

/// A node kubeconfig whose client certificate is a file.
pub(super) struct FileClient {
    /// The kubeconfig.
    pub(super) kubeconfig: PathBuf,
    /// The certificate file, as the kubeconfig names it.
    pub(super) file: PathBuf,
    /// The key file, when the key is a file too.
    pub(super) key_file: Option<PathBuf>,
}

/// The read certificate file of a [`FileClient`].
pub(super) struct ClientPem {
    /// The whole file (certificate, then the key for a kubelet pair).
    pub(super) bytes: Vec<u8>,
    pub(super) der: Vec<u8>,
    pub(super) info: CertInfo,
}

/// The node kubeconfigs (that exist and parse) whose client certificate is a file.
pub(super) fn file_clients(layout: &Layout) -> Vec<FileClient> {
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
        let key_file = match &kc.client_key {
            Source::File(k) => Some(k.clone()),
            _ => None,
        };
        out.push(FileClient {
            kubeconfig: p,
            file: file.clone(),
            key_file,
        });
    }
    out
}

/// Whether promote re-issues `c`: its certificate and key are both the kubelet PKI dir's
/// `kubelet-client-current.pem` (`kubelet_pki` normalised).
pub(super) fn in_kubelet_pki(c: &FileClient, kubelet_pki: &Path) -> bool {
    let current = kubelet_pki.join(KUBELET_CLIENT_CURRENT);
    store::normalize(&c.file) == current
        && c.key_file.as_deref().map(store::normalize) == Some(current)
}

/// Reads and parses `c`'s certificate file (the kubelet's `-current.pem` link resolved in
/// its own dir); a failure is [`Error::RotationClientFile`] for `requested` of `ca`.
pub(super) fn read(c: &FileClient, ca: CaId, requested: &'static str) -> Result<ClientPem> {
    let fail = |reason: Reason| Error::RotationClientFile {
        ca: ca.name(),
        requested,
        kubeconfig: c.kubeconfig.clone(),
        file: c.file.clone(),
        reason,
    };
    let bytes = fsread::read_link_in_dir(&c.file).map_err(|e| fail(Reason::of(e)))?;
    let parsed = cert::parse_pem_bundle(&bytes).map_err(|source| {
        fail(Reason::of(Error::Pem {
            path: c.file.clone(),
            source,
        }))
    })?;
    Ok(ClientPem {
        bytes,
        der: parsed.der,
        info: parsed.info,
    })
}

/// The private key of a kubelet pair file: from the first `-----BEGIN … PRIVATE KEY-----`
/// line to the end, kept byte for byte.
fn key_part(bytes: &[u8]) -> Option<&[u8]> {
    let mut at = 0;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let l = String::from_utf8_lossy(line);
        let l = l.trim_end();
        if l.starts_with("-----BEGIN ") && l.ends_with("PRIVATE KEY-----") {
            return Some(&bytes[at..]);
        }
        at += line.len();
    }
    None
}

/// Promote of `ca`: re-issues by `signer` (the new CA) the kubelet pair that a node
/// kubeconfig references as `<kubelet_pki>/kubelet-client-current.pem` for both its
/// certificate and key, when the old CA signed it: same public key, subject (`O=system:nodes`,
/// `CN=system:node:<name>`), SANs, extended key usages and NotAfter (capped at the new CA),
/// key usage digitalSignature (and keyEncipherment for an RSA key, as the kubelet's CSR and
/// `kubelet-conf rebuild`). Written as a new dated pair (certificate, then the pair's key
/// byte for byte) and the link swapped to it, in the phase's transaction; a link already
/// naming that dated file, or a regular `-current.pem`, is rewritten in place. Returns the
/// kubeconfigs whose file was handled.
pub(super) fn reissue(
    layout: &Layout,
    kubelet_pki: &Path,
    old: &Parsed,
    signer: &CaSigner<'_>,
    now: i64,
    plan: &mut Plan,
) -> Result<Vec<PathBuf>> {
    let current = kubelet_pki.join(KUBELET_CLIENT_CURRENT);
    let mut handled = Vec::new();
    for c in file_clients(layout) {
        if !in_kubelet_pki(&c, kubelet_pki) {
            continue;
        }
        let pem = read(&c, CaId::Ca, "promote")?;
        if !cert::signed_by(&pem.der, &old.der) {
            continue;
        }
        let bad = |why: &str| Error::RotationClientFile {
            ca: CaId::Ca.name(),
            requested: "promote",
            kubeconfig: c.kubeconfig.clone(),
            file: c.file.clone(),
            reason: Reason::msg(why),
        };
        let key = key_part(&pem.bytes).ok_or_else(|| bad("it holds no private key"))?;
        let k = cert::parse_private_key(key).map_err(|source| Error::RotationClientFile {
            ca: CaId::Ca.name(),
            requested: "promote",
            kubeconfig: c.kubeconfig.clone(),
            file: c.file.clone(),
            reason: Reason::of(Error::Pem {
                path: c.file.clone(),
                source,
            }),
        })?;
        if !k.matches(&pem.info) {
            return Err(bad("its private key is not the certificate's key"));
        }
        let mut usages = vec![KeyUsagePurpose::DigitalSignature];
        if matches!(pem.info.key_algorithm, PublicKeyAlgorithm::Rsa(_)) {
            usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        let leaf = Leaf {
            name: "kubelet-client".into(),
            path: c.file.clone(),
            der: pem.der.clone(),
            info: pem.info.clone(),
            kubeconfig: None,
        };
        let der = resign(&leaf, signer, now, &usages)?;
        let mut contents = issue::cert_pem(&der).into_bytes();
        contents.extend_from_slice(key);
        let what = "the kubelet's client certificate re-issued by the new CA (same key and \
                    identity), certificate then key";
        let is_link = std::fs::symlink_metadata(&current).is_ok_and(|m| m.is_symlink());
        let dated = kubelet_pki.join(crate::pki::dated_client_name(now));
        let points_to = std::fs::read_link(&current)
            .ok()
            .map(|t| store::normalize(&kubelet_pki.join(t)));
        if is_link && points_to.as_ref() != Some(&dated) {
            plan.push(write(dated.clone(), contents, 0o600), what);
            plan.link(
                Link {
                    target: current.clone(),
                    points_to: dated,
                },
                "now names the re-issued pair",
            );
        } else {
            let target = points_to.filter(|_| is_link).unwrap_or(current.clone());
            plan.push(write(target, contents, 0o600), what);
        }
        handled.push(c.kubeconfig);
    }
    Ok(handled)
}
