//! The files of a rotation: the `.next`/`.prev` pairs beside the CA, reading bundles and
//! keys, the leaves a CA signed and the kubeconfigs that trust it.

use std::path::{Path, PathBuf};

use crate::ca::{embedded_ca_kubeconfigs, node_kubeconfigs};
use crate::error::{Error, Result};
use crate::pki::cert::{self, CertInfo, PrivateKey};
use crate::pki::inventory::{CaId, Location};
use crate::pki::kubeconfig::{Kubeconfig, Source};
use crate::pki::{fsread, Layout};

pub(super) fn next_crt(layout: &Layout, id: CaId) -> PathBuf {
    layout.ca_rotation_pair(id, "next").0
}
pub(super) fn next_key(layout: &Layout, id: CaId) -> PathBuf {
    layout.ca_rotation_pair(id, "next").1
}
pub(super) fn prev_crt(layout: &Layout, id: CaId) -> PathBuf {
    layout.ca_rotation_pair(id, "prev").0
}
pub(super) fn prev_key(layout: &Layout, id: CaId) -> PathBuf {
    layout.ca_rotation_pair(id, "prev").1
}

pub(super) struct Parsed {
    pub(super) der: Vec<u8>,
    pub(super) info: CertInfo,
}

pub(super) fn parse(der: &[u8], path: &Path) -> Result<Parsed> {
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
pub(super) fn read_bundle(path: &Path) -> Result<Option<Vec<Parsed>>> {
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

pub(super) fn read_key(path: &Path) -> Result<Option<(PrivateKey, Vec<u8>)>> {
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
pub(super) struct Leaf {
    /// Inventory name or kubeconfig file name.
    pub(super) name: String,
    /// The `.crt` (PKI rows) or the kubeconfig.
    pub(super) path: PathBuf,
    pub(super) der: Vec<u8>,
    pub(super) info: CertInfo,
    /// The certificates after the leaf in a PKI `.crt` (kept only as far as they chain).
    pub(super) kubeconfig: Option<Kubeconfig>,
}

/// The leaves counted for `id`: its inventory PKI rows that exist, and for `ca` the
/// embedded client certificates of the node's kubeconfigs. Client certificates referenced
/// as files (the kubelet's rotated pair) are not: see the checklist.
pub(super) fn leaves(layout: &Layout, id: CaId) -> Result<Vec<Leaf>> {
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
        for (f, p, kc) in node_kubeconfigs(layout)? {
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
pub(super) fn trusting_kubeconfigs(
    layout: &Layout,
    id: CaId,
    any: &[&Parsed],
) -> Result<Vec<(Kubeconfig, Vec<Vec<u8>>)>> {
    let mut out = Vec::new();
    if id != CaId::Ca {
        return Ok(out);
    }
    for crate::ca::EmbeddedCa {
        kubeconfig: kc,
        ders,
        ..
    } in embedded_ca_kubeconfigs(layout)?
    {
        let holds = ders.iter().any(|d| {
            cert::parse_der(d).is_ok_and(|c| any.iter().any(|a| a.info.spki_der == c.spki_der))
        });
        if holds {
            out.push((kc, ders));
        }
    }
    Ok(out)
}
