//! `kubelet-conf rebuild`: break-glass recovery of a node whose kubelet client certificate
//! has expired (kubernetes#102556, kind#3492, website#42944), without another working node.
//!
//! With the local `ca.key` it issues what `kubeadm kubeconfig user --org system:nodes
//! --client-name system:node:NAME` would (CN `system:node:NAME`, O `system:nodes`, EKU
//! clientAuth only, key usage digitalSignature, plus keyEncipherment for an RSA key — the one
//! difference: kubeadm's `NewSignedCert` sets keyEncipherment for ECDSA keys too, which has no
//! meaning there; with kubeadm's default RSA CA the two are the same), writes
//! it where the kubelet's certificate store keeps its rotated pairs (a dated
//! `kubelet-client-<time>.pem` holding certificate then key, and the
//! `kubelet-client-current.pem` symlink to it), and writes kubelet.conf referencing
//! `kubelet-client-current.pem` for both the certificate and the key, with the cluster's
//! server and CA data preserved. The three changes are one [`Store`] transaction with a
//! backup: a crash leaves the old state or the new one.
//!
//! Before anything, a clock check: a certificate of the PKI whose NotBefore lies ahead of the
//! local clock (by more than `clock_skew`, default 5 minutes) means the clock is wrong, and
//! is reported as [`Error::ClockSkew`], not as an expiry.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::KeyUsagePurpose;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::check::kubelet::{dated_client_name, CLIENT_CURRENT, SERVER_CURRENT, SERVING_CRT};
use crate::error::{Error, Result};
use crate::pki::cert::{self, Cert, PublicKeyAlgorithm};
use crate::pki::inventory::CaId;
use crate::pki::issue::{self, CaSigner, KeyAlgorithm, LeafSpec};
use crate::pki::kubeconfig::{self, Kubeconfig, Source};
use crate::pki::store::{self, Link, Store, Write_};
use crate::pki::{self, fsread, Layout, Material};
use crate::timefmt;

/// The default tolerance of the clock check: 5 minutes (kubeadm backdates by as much).
pub const DEFAULT_CLOCK_SKEW_SECONDS: i64 = 5 * 60;

/// Parameters of `kubelet-conf rebuild` (RPC method `kubelet-conf-rebuild`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubeletRebuildParams {
    /// The node's name: the certificate is for `system:node:<node_name>`.
    pub node_name: String,
    /// Dir holding kubelet.conf (default `/etc/kubernetes`).
    #[serde(default)]
    pub kubeconfig_dir: Option<String>,
    /// PKI dir with ca.crt and ca.key, and the lock (default `/etc/kubernetes/pki`).
    #[serde(default)]
    pub cert_dir: Option<String>,
    /// kubelet PKI dir (default `/var/lib/kubelet/pki`).
    #[serde(default)]
    pub kubelet_pki: Option<String>,
    /// Where the backup of what is replaced goes (default `<cert_dir>/../kubecert-backup`;
    /// the agent fills in its `--backup-root`, as for renew).
    #[serde(default)]
    pub backup_dir: Option<String>,
    /// Report the plan; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Fixed clock, RFC 3339.
    #[serde(default)]
    pub now: Option<String>,
    /// How far ahead of the clock a NotBefore may lie before it is called clock skew
    /// (`5m` default, `0s` strict).
    #[serde(default)]
    pub clock_skew: Option<String>,
}

/// What `kubelet-conf rebuild` did.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RebuildAction {
    /// Written.
    Rebuilt,
    /// Dry run: this is what would be written.
    WouldRebuild,
}

/// The new client certificate.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RebuiltCertificate {
    /// The dated PEM (certificate, then key).
    pub path: String,
    /// Subject.
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// Serial, hex.
    pub serial: String,
    /// NotBefore, RFC 3339 (the clock less kubeadm's 5-minute backdate).
    pub not_before: String,
    /// NotAfter, RFC 3339: one year (kubeadm's default), capped at the CA's NotAfter.
    pub not_after: String,
    /// Whether NotAfter was capped at the CA's.
    pub capped_at_ca: bool,
    /// `RSA-2048`, `ECDSA-P256`, ... (the CA's algorithm).
    pub key_algorithm: String,
    /// Extended key usages.
    pub ext_key_usage: Vec<String>,
    /// Key usages.
    pub key_usage: Vec<String>,
}

/// Result of `kubelet-conf rebuild`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubeletRebuildResult {
    /// The node.
    pub node_name: String,
    /// Rebuilt or would-rebuild.
    pub action: RebuildAction,
    /// The new certificate.
    pub certificate: RebuiltCertificate,
    /// `kubelet-client-current.pem`.
    pub link: String,
    /// What the link points to now (or would).
    pub link_target: String,
    /// The kubelet.conf written.
    pub kubelet_conf: String,
    /// The API server URL kept in kubelet.conf.
    pub server: String,
    /// Where the server and CA data came from.
    pub cluster_from: String,
    /// The files written (or that would be), in commit order.
    pub written: Vec<String>,
    /// The steps, in words.
    pub plan: Vec<String>,
    /// Backup of what was replaced.
    pub backup_dir: Option<String>,
    /// Whether anything changed on disk.
    pub changed: bool,
    /// Warnings that do not stop the rebuild: a clock far ahead of the PKI
    /// ([`clock_ahead_warning`]). Absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A node name usable in `system:node:<name>` and a file system: a DNS-1123 subdomain
/// (lowercase letters, digits, `-` and `.`, at most 253 characters, starting and ending
/// with a letter or digit), as Kubernetes requires of Node names.
pub fn validate_node_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "invalid node name {name:?}: {why} (a Node name is a DNS-1123 subdomain: lowercase letters, digits, '-' and '.')"
        )))
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 253 {
        return bad("longer than 253 characters");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return bad(&format!("it contains {c:?}"));
    }
    if name
        .split('.')
        .any(|l| l.is_empty() || l.len() > 63 || l.starts_with('-') || l.ends_with('-'))
    {
        return bad(
            "a dot-separated part is empty, longer than 63 characters, or starts or ends with '-'",
        );
    }
    Ok(())
}

/// Every certificate the clock check reads: (path, NotBefore, NotAfter, is a CA).
fn validities(layout: &Layout, dir: &Path) -> Vec<(PathBuf, i64, i64, bool)> {
    let mut out = Vec::new();
    for e in layout.rows() {
        if let Material::Present(f) = pki::load(layout, e) {
            let i = &f.cert.info;
            out.push((f.cert_path.clone(), i.not_before, i.not_after, i.is_ca));
        }
    }
    for name in [CLIENT_CURRENT, SERVER_CURRENT, SERVING_CRT] {
        let p = dir.join(name);
        if let Ok(c) = fsread::read_link_in_dir(&p).and_then(|b| {
            cert::parse_pem_bundle(&b).map_err(|source| Error::Pem {
                path: p.clone(),
                source,
            })
        }) {
            out.push((p, c.info.not_before, c.info.not_after, c.info.is_ca));
        }
    }
    let kc = layout.kubeconfig_dir.join("kubelet.conf");
    if let Some(c) = Kubeconfig::load(&kc)
        .ok()
        .and_then(|k| k.client_cert_pem().ok())
        .and_then(|b| cert::parse_pem_bundle(&b).ok())
    {
        out.push((kc, c.info.not_before, c.info.not_after, c.info.is_ca));
    }
    out
}

/// Every certificate the clock check reads: (path, NotBefore).
fn not_befores(layout: &Layout, dir: &Path) -> Vec<(PathBuf, i64)> {
    validities(layout, dir)
        .into_iter()
        .map(|(p, nb, _, _)| (p, nb))
        .collect()
}

/// The other side of the clock check: a clock more than the longest validity of any leaf
/// certificate here past the newest NotBefore (so every leaf has expired, and nothing was
/// issued for a whole validity period) may be a clock far ahead. A warning, not a refusal:
/// a node that was really off for that long looks the same, and is what the rebuild is for.
/// (A clock beyond the CA's NotAfter is refused anyway, as an expired CA.)
pub fn clock_ahead_warning(layout: &Layout, dir: &Path, now: i64) -> Option<String> {
    let all = validities(layout, dir);
    let (path, newest) = all
        .iter()
        .max_by_key(|(_, nb, _, _)| *nb)
        .map(|(p, nb, _, _)| (p.clone(), *nb))?;
    let longest = all
        .iter()
        .filter(|(_, _, _, ca)| !ca)
        .map(|(_, nb, na, _)| na - nb)
        .max()?;
    (now - newest > longest).then(|| {
        format!(
            "possible clock skew: the local clock says {}, {}d after the newest NotBefore {} ({}), longer than the longest validity of a certificate here ({}d), so every certificate has expired; if this node was not really off for that long, fix the clock (NTP) first",
            timefmt::rfc3339(now),
            (now - newest) / 86_400,
            timefmt::rfc3339(newest),
            path.display(),
            longest / 86_400
        )
    })
}

/// The clock check: the newest NotBefore of the PKI (kubeadm's files, the kubelet's, the
/// certificate kubelet.conf uses) must not lie more than `tolerance` seconds ahead of `now`.
pub fn clock_check(layout: &Layout, dir: &Path, now: i64, tolerance: i64) -> Result<()> {
    let newest = not_befores(layout, dir)
        .into_iter()
        .max_by_key(|(_, nb)| *nb);
    match newest {
        Some((path, nb)) if nb > now + tolerance => Err(Error::ClockSkew {
            path,
            not_before: timefmt::rfc3339(nb),
            now: timefmt::rfc3339(now),
            ahead: nb - now,
        }),
        _ => Ok(()),
    }
}

/// Where the new kubelet.conf takes its cluster from: the current kubelet.conf when it parses
/// and names a server (its CA data kept as is), else admin.conf (same), else the server of
/// neither is known and the rebuild is refused.
struct Cluster {
    server: String,
    name: String,
    ca_data: String,
    from: PathBuf,
}

fn cluster_of(layout: &Layout, ca: &Cert) -> Result<Cluster> {
    let ca_pem = issue::cert_pem(&ca.der);
    let mut tried = Vec::new();
    for f in ["kubelet.conf", "admin.conf"] {
        let p = layout.kubeconfig_dir.join(f);
        match Kubeconfig::load(&p) {
            Ok(kc) => {
                let Some(server) = kc.server.clone().filter(|s| !s.is_empty()) else {
                    tried.push(format!("{} names no server", p.display()));
                    continue;
                };
                let ca_data = match &kc.ca {
                    Source::Embedded(b) => b.clone(),
                    _ => kubeconfig::encode_data(ca_pem.as_bytes()),
                };
                return Ok(Cluster {
                    server,
                    name: kc.cluster.clone(),
                    ca_data,
                    from: p,
                });
            }
            Err(e) => tried.push(crate::error::report(&e)),
        }
    }
    Err(Error::InvalidArgument(format!(
        "cannot tell the API server's address: {}",
        tried.join("; ")
    )))
}

/// The identity of the current client certificate (rotated pair, else kubelet.conf's), when
/// one can be read: a rebuild for another node is refused.
fn current_identity(layout: &Layout, dir: &Path) -> Option<(PathBuf, String)> {
    let cur = dir.join(CLIENT_CURRENT);
    if let Ok(Ok(c)) = fsread::read_link_in_dir(&cur).map(|b| cert::parse_pem_bundle(&b)) {
        return c.info.common_name.map(|cn| (cur, cn));
    }
    let kc = layout.kubeconfig_dir.join("kubelet.conf");
    Kubeconfig::load(&kc)
        .ok()
        .and_then(|k| k.client_cert_pem().ok())
        .and_then(|b| cert::parse_pem_bundle(&b).ok())
        .and_then(|c| c.info.common_name)
        .map(|cn| (kc, cn))
}

/// Runs the rebuild (or its dry run).
pub fn rebuild(p: &KubeletRebuildParams) -> Result<KubeletRebuildResult> {
    validate_node_name(&p.node_name)?;
    let layout = Layout::new(
        p.cert_dir.as_deref().unwrap_or(pki::DEFAULT_CERT_DIR),
        p.kubeconfig_dir
            .as_deref()
            .unwrap_or(pki::DEFAULT_KUBECONFIG_DIR),
        None,
    );
    let dir = std::path::absolute(p.kubelet_pki.as_deref().unwrap_or(pki::DEFAULT_KUBELET_PKI))
        .map_err(|e| Error::io(p.kubelet_pki.as_deref().unwrap_or_default(), e))?;
    let now = match &p.now {
        Some(s) => timefmt::parse_rfc3339(s)?,
        None => timefmt::now_unix(),
    };
    let tolerance = match &p.clock_skew {
        Some(s) => timefmt::parse_duration(s)?,
        None => DEFAULT_CLOCK_SKEW_SECONDS,
    };
    // 1. The clock, before anything else: behind the PKI is refused, far ahead is a warning.
    clock_check(&layout, &dir, now, tolerance)?;
    let warnings: Vec<String> = clock_ahead_warning(&layout, &dir, now)
        .into_iter()
        .collect();
    // 2. The CA and its key.
    let ca_crt = layout.ca_crt(CaId::Ca);
    let ca_mat = pki::CaMaterial::load(&layout, CaId::Ca);
    let ca = match &ca_mat.cert {
        Material::Present(f) => f.cert.clone(),
        Material::Missing => {
            return Err(Error::CaMissing {
                ca: "ca".into(),
                dir: layout.cert_dir.clone(),
                reason: format!("{} does not exist", ca_crt.display()),
            })
        }
        Material::Broken(e) => {
            return Err(Error::CaMissing {
                ca: "ca".into(),
                dir: layout.cert_dir.clone(),
                reason: crate::error::report(e),
            })
        }
    };
    let ca_key_path = layout.ca_key(CaId::Ca);
    if !fsread::exists_nofollow(&ca_key_path) {
        return Err(Error::CaKeyMissing {
            ca: "ca".into(),
            path: ca_key_path,
        });
    }
    if !ca.info.is_ca {
        return Err(Error::NotACa { ca: "ca".into() });
    }
    if ca.info.not_after < now {
        return Err(Error::CaExpired {
            ca: "ca".into(),
            not_after: timefmt::rfc3339(ca.info.not_after),
        });
    }
    let ca_key =
        cert::parse_private_key(&cert::read_file(&ca_key_path)?).map_err(|source| Error::Pem {
            path: ca_key_path.clone(),
            source,
        })?;
    if !ca_key.matches(&ca.info) {
        return Err(Error::Validation {
            cert: "ca".into(),
            reason: crate::error::Reason::msg(format!(
                "{} does not match the CA certificate",
                ca_key_path.display()
            )),
        });
    }
    // 3. The identity: the same node as the certificate being replaced.
    let user = format!("system:node:{}", p.node_name);
    if let Some((path, cn)) = current_identity(&layout, &dir) {
        if cn.starts_with("system:node:") && cn != user {
            return Err(Error::InvalidArgument(format!(
                "{} is for {cn:?}, not {user:?}: refusing to give this node another identity",
                path.display()
            )));
        }
    }
    let cluster = cluster_of(&layout, &ca)?;
    // 4. The new pair.
    let alg = KeyAlgorithm::Same.resolve(&ca.info.key_algorithm);
    let (key, key_pem) = issue::new_key(alg).map_err(|e| Error::Issue {
        cert: "kubelet-client".into(),
        reason: crate::error::Reason::of(e),
    })?;
    let not_before = now - issue::BACKDATE_SECONDS;
    let mut not_after = now + issue::DEFAULT_VALIDITY_SECONDS;
    let capped = not_after > ca.info.not_after;
    if capped {
        not_after = ca.info.not_after;
    }
    let spec = LeafSpec {
        subject_der: issue::name_der(&user, &["system:nodes"]),
        dns_names: vec![],
        ip_addresses: vec![],
        uris: vec![],
        emails: vec![],
        ext_key_usage: vec!["clientAuth".into()],
        not_before,
        not_after,
    };
    let mut usages = vec![KeyUsagePurpose::DigitalSignature];
    if matches!(ca.info.key_algorithm, PublicKeyAlgorithm::Rsa(_))
        || matches!(
            alg,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
        )
    {
        usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    let der = issue::sign_leaf_for(
        &spec,
        &key.pair,
        &usages,
        &CaSigner {
            cert: &ca,
            key: &ca_key,
        },
    )
    .map_err(|e| Error::Issue {
        cert: "kubelet-client".into(),
        reason: crate::error::Reason::of(e),
    })?;
    let info = cert::parse_der(&der).map_err(|e| Error::Issue {
        cert: "kubelet-client".into(),
        reason: crate::error::Reason::of(e),
    })?;
    if !cert::signed_by(&der, &ca.der) || !key.matches(&info) {
        return Err(Error::Validation {
            cert: "kubelet-client".into(),
            reason: "the new certificate does not verify against ca.crt or its key".into(),
        });
    }
    // 5. The files.
    let dated = dir.join(dated_client_name(now));
    let link = dir.join(CLIENT_CURRENT);
    let conf = layout.kubeconfig_dir.join("kubelet.conf");
    let conf_text = kubeconfig::client_file_kubeconfig(
        &cluster.server,
        &cluster.name,
        &user,
        &cluster.ca_data,
        &link,
    );
    // The kubeconfig written must read back as intended.
    let back = Kubeconfig::parse(&conf, conf_text.clone())?;
    if back.client_cert != Source::File(link.clone())
        || back.client_key != Source::File(link.clone())
    {
        return Err(Error::Kubeconfig {
            path: conf.clone(),
            reason: "the rebuilt kubelet.conf does not reference kubelet-client-current.pem".into(),
        });
    }
    let writes = vec![
        Write_ {
            target: dated.clone(),
            contents: format!("{}{}", issue::cert_pem(&der), key_pem).into_bytes(),
            mode: 0o600,
            force_mode: true,
        },
        Write_ {
            target: conf.clone(),
            contents: conf_text.into_bytes(),
            mode: 0o600,
            force_mode: false,
        },
    ];
    let links = vec![Link {
        target: link.clone(),
        points_to: dated.clone(),
    }];
    let mut result = KubeletRebuildResult {
        node_name: p.node_name.clone(),
        action: RebuildAction::WouldRebuild,
        certificate: RebuiltCertificate {
            path: dated.display().to_string(),
            subject: info.subject.clone(),
            issuer: info.issuer.clone(),
            serial: info.serial.clone(),
            not_before: timefmt::rfc3339(info.not_before),
            not_after: timefmt::rfc3339(info.not_after),
            capped_at_ca: capped,
            key_algorithm: alg.display().to_string(),
            ext_key_usage: info.ext_key_usage.clone(),
            key_usage: info.key_usage.clone(),
        },
        link: link.display().to_string(),
        link_target: dated.display().to_string(),
        kubelet_conf: conf.display().to_string(),
        server: cluster.server.clone(),
        cluster_from: cluster.from.display().to_string(),
        written: vec![
            dated.display().to_string(),
            conf.display().to_string(),
            link.display().to_string(),
        ],
        plan: vec![
            format!(
                "issue {user} (O system:nodes, clientAuth, {}) with {} until {}{}",
                alg.display(),
                ca_crt.display(),
                timefmt::rfc3339(info.not_after),
                if capped {
                    " (capped at the CA's NotAfter)"
                } else {
                    ""
                }
            ),
            format!("write certificate and key to {}", dated.display()),
            format!(
                "write {} referencing {} (server {}, CA data from {})",
                conf.display(),
                link.display(),
                cluster.server,
                cluster.from.display()
            ),
            format!("point {} at {}", link.display(), dated.display()),
            "restart the kubelet (systemctl restart kubelet)".into(),
        ],
        backup_dir: None,
        changed: false,
        warnings,
    };
    if p.dry_run {
        store::plan_with_links(&writes, &links)?;
        return Ok(result);
    }
    let mut st = Store::open(&layout.cert_dir, Duration::from_secs(300))?;
    let backup = st.commit_with_links(
        &writes,
        &links,
        &p.backup_dir.as_deref().map_or_else(
            || store::default_backup_root(&layout.cert_dir),
            PathBuf::from,
        ),
        &store::stamp(now),
    )?;
    drop(st);
    result.action = RebuildAction::Rebuilt;
    result.backup_dir = backup.map(|b| b.display().to_string());
    result.changed = true;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        for ok in ["node-1", "cp1.example.com", "a"] {
            validate_node_name(ok).unwrap();
        }
        for bad in ["", "a/b", "Node1", "-a", "a..b", "a b", "../x", "a-"] {
            let e = validate_node_name(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e:?}");
        }
    }
}
