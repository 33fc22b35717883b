//! `check --kubelet`: the kubelet's own certificates, a section of their own outside
//! kubeadm's table (which stays byte-identical to `kubeadm certs check-expiration`).
//!
//! What the kubelet reads (client-go `util/certificate/certificate_store.go`, kubelet
//! `pkg/kubelet/certificate`): with rotation on, `<pki>/kubelet-client-current.pem` is a
//! symlink to the dated `kubelet-client-YYYY-MM-DD-HH-MM-SS.pem`, which holds the
//! certificate and then its key; the serving pair is `kubelet-server-current.pem` the same
//! way when serving certificates are rotated (`serverTLSBootstrap`), else the `kubelet.crt` /
//! `kubelet.key` pair the kubelet generates itself (a leaf issued by a `<host>-ca@<time>` CA
//! of its own, both in `kubelet.crt`). Without `kubelet-client-current.pem`, the kubelet uses
//! kubelet.conf's credentials.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{kubelet_conf_status, KubeletConfStatus, Problem, ALWAYS_FAIL};
use crate::error::report;
use crate::ops::endpoints;
use crate::pki::cert::{self, Cert};
use crate::pki::finding::FindingCode;
use crate::pki::kubeconfig::{Kubeconfig, Source};
use crate::pki::{self, fsread, Layout};
use crate::timefmt;

pub use crate::pki::KUBELET_CLIENT_CURRENT as CLIENT_CURRENT;
/// The kubelet's rotated serving pair (`serverTLSBootstrap`).
pub const SERVER_CURRENT: &str = "kubelet-server-current.pem";
/// The self-generated serving certificate (and its CA).
pub const SERVING_CRT: &str = "kubelet.crt";
/// Its key.
pub const SERVING_KEY: &str = "kubelet.key";

pub use crate::pki::{dated_client_name, dated_client_name_in};

/// The kubelet section of `check -o json` (key `kubelet`, present only with `--kubelet`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubeletSection {
    /// The kubelet PKI dir read.
    pub pki_dir: String,
    /// The client certificate the kubelet authenticates with.
    pub client: KubeletCertStatus,
    /// The certificate the kubelet serves on :10250.
    pub serving: KubeletCertStatus,
    /// How kubelet.conf carries its client certificate (the same diagnosis as `kubeletConf`).
    pub kubelet_conf: KubeletConfStatus,
    /// What kubelet.conf's client certificate is: embedded data or a file reference, and
    /// whether it is the certificate reported as `client`.
    pub kubelet_conf_client: KubeletConfClient,
}

/// Which certificate of the kubelet.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum KubeletCertRole {
    /// `kubelet-client`: the kubelet's identity towards the API server.
    Client,
    /// `kubelet-serving`: what :10250 serves.
    Serving,
}

/// How a kubelet certificate is kept.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Rotation {
    /// A `*-current.pem` symlink to a dated file: the kubelet rotates it.
    Rotated,
    /// A plain file (`*-current.pem` that is not a symlink, or `kubelet.crt`).
    StaticFile,
    /// Embedded in kubelet.conf (`client-certificate-data`): never rotated (kubeadm#1753).
    Embedded,
    /// A file referenced by kubelet.conf (`client-certificate`) other than the rotated link.
    FileReference,
    /// Not found.
    Missing,
}

/// One kubelet certificate.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubeletCertStatus {
    /// `kubelet-client` or `kubelet-serving`.
    pub name: String,
    /// Which one.
    pub role: KubeletCertRole,
    /// The file read (kubelet.conf for an embedded certificate; the link, not its target).
    pub path: String,
    /// Where the `*-current.pem` symlink points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
    /// How it is kept.
    pub rotation: Rotation,
    /// Nothing was found.
    pub missing: bool,
    /// NotAfter, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<String>,
    /// Seconds until NotAfter (negative when expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residual_time: Option<i64>,
    /// NotBefore, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// Subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Serial, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Signed by the cluster CA (`<cert-dir>/ca.crt`), checked by signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chains_to_ca: Option<bool>,
    /// Self-signed, or signed by a self-signed CA carried in the same file (how the kubelet
    /// makes `kubelet.crt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<bool>,
    /// Findings (`not-found` for a missing file, `expired`, `not-yet-valid`, `key-missing`,
    /// `key-mismatch`, `key-unreadable`, `not-signed-by-ca`, `unreadable`, `malformed`).
    #[serde(default)]
    pub problems: Vec<Problem>,
}

/// Where kubelet.conf takes its client certificate from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubeletConfClient {
    /// `embedded`, `file-reference`, or `unknown` (absent, unreadable, no certificate).
    pub mode: Option<super::KubeletConfMode>,
    /// The referenced file, for a file reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Whether it is the same certificate as `client` (by DER); absent when either is
    /// unreadable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_as_client: Option<bool>,
    /// What differs, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl KubeletCertStatus {
    fn new(role: KubeletCertRole, path: &Path) -> Self {
        KubeletCertStatus {
            name: match role {
                KubeletCertRole::Client => "kubelet-client",
                KubeletCertRole::Serving => "kubelet-serving",
            }
            .into(),
            role,
            path: path.display().to_string(),
            link_target: None,
            rotation: Rotation::Missing,
            missing: true,
            expiration_date: None,
            residual_time: None,
            not_before: None,
            subject: None,
            issuer: None,
            serial: None,
            chains_to_ca: None,
            self_signed: None,
            problems: vec![],
        }
    }

    /// Whether a finding makes the level `fail` whatever the thresholds: any error about the
    /// client certificate (missing, unreadable, expired, not signed by the CA...: the
    /// kubelet cannot authenticate, or it is not proven that it can), an always-fail code
    /// ([`ALWAYS_FAIL`]) about the serving one. Other findings make it at least `warn`.
    pub fn fails(&self) -> bool {
        match self.role {
            KubeletCertRole::Client => self.unhealthy(),
            KubeletCertRole::Serving => self.problems.iter().any(|p| ALWAYS_FAIL.contains(&p.code)),
        }
    }

    /// Whether it has a finding that is an error (not informational).
    pub fn unhealthy(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }
}

/// Reads a `*-current.pem` (following one symlink in its dir) or a plain file.
fn read_current(path: &Path) -> (Option<String>, crate::Result<Vec<u8>>) {
    let link = std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_symlink())
        .and_then(|_| std::fs::read_link(path).ok())
        .map(|t| t.display().to_string());
    (link, fsread::read_link_in_dir(path))
}

/// Fills `st` from a certificate (and, when given, the PEM holding its key).
fn judge(
    st: &mut KubeletCertStatus,
    c: &Cert,
    key: Option<(crate::Result<Vec<u8>>, String)>,
    ca: Option<&Cert>,
    now: i64,
) {
    let info = &c.info;
    st.missing = false;
    st.expiration_date = Some(timefmt::rfc3339(info.not_after));
    st.residual_time = Some(info.not_after - now);
    st.not_before = Some(timefmt::rfc3339(info.not_before));
    st.subject = Some(info.subject.clone());
    st.issuer = Some(info.issuer.clone());
    st.serial = Some(info.serial.clone());
    if now > info.not_after {
        st.problems.push(Problem::new(
            FindingCode::Expired,
            format!("expired at {}", timefmt::rfc3339(info.not_after)),
        ));
    } else if now < info.not_before {
        st.problems.push(Problem::new(
            FindingCode::NotYetValid,
            format!(
                "not valid before {} (is the clock right?)",
                timefmt::rfc3339(info.not_before)
            ),
        ));
    }
    if let Some((bytes, what)) = key {
        match bytes.map(|b| cert::parse_private_key(&b)) {
            Ok(Ok(k)) if k.matches(info) => {}
            Ok(Ok(_)) => st.problems.push(Problem::new(
                FindingCode::KeyMismatch,
                format!("the private key ({what}) does not match the certificate"),
            )),
            Ok(Err(crate::error::PemError::NoPrivateKey)) => st.problems.push(Problem::new(
                FindingCode::KeyMissing,
                format!("private key not found ({what})"),
            )),
            Ok(Err(e)) => st.problems.push(Problem::new(
                FindingCode::KeyUnreadable,
                format!("{what}: {}", report(&e)),
            )),
            Err(e) if matches!(&e, crate::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound) => {
                st.problems.push(Problem::new(
                    FindingCode::KeyMissing,
                    format!("private key not found ({what})"),
                ))
            }
            Err(e) => st
                .problems
                .push(Problem::new(FindingCode::KeyUnreadable, report(&e))),
        }
    }
    let chains = ca.is_some_and(|ca| cert::signed_by(&c.der, &ca.der));
    st.chains_to_ca = ca.map(|_| chains);
    let self_signed = cert::signed_by(&c.der, &c.der)
        || c.chain
            .iter()
            .any(|ca_der| cert::signed_by(&c.der, ca_der) && cert::signed_by(ca_der, ca_der));
    st.self_signed = Some(self_signed);
    if st.role == KubeletCertRole::Client {
        match ca {
            None => st.problems.push(Problem::new(
                FindingCode::CaMissing,
                "its CA ca (ca.crt) is missing or unreadable",
            )),
            Some(_) if !chains => st.problems.push(Problem::new(
                FindingCode::NotSignedByCa,
                "the kubelet client certificate is not signed by the cluster CA (ca.crt)",
            )),
            Some(_) => {}
        }
    }
}

fn broken(st: &mut KubeletCertStatus, e: &crate::Error) {
    st.missing = false;
    let code = if e.is_unreadable() {
        FindingCode::Unreadable
    } else {
        FindingCode::Malformed
    };
    st.problems.push(Problem::new(code, report(e)));
}

fn not_found(st: &mut KubeletCertStatus, what: String) {
    st.missing = true;
    st.rotation = Rotation::Missing;
    st.problems.push(Problem::new(FindingCode::NotFound, what));
}

/// The client certificate: `kubelet-client-current.pem` when present (what the kubelet
/// loads first), else kubelet.conf's credential.
fn client(
    dir: &Path,
    kc: Option<&Kubeconfig>,
    kc_path: &Path,
    ca: Option<&Cert>,
    now: i64,
) -> (KubeletCertStatus, Option<Vec<u8>>) {
    let current = dir.join(CLIENT_CURRENT);
    let mut st = KubeletCertStatus::new(KubeletCertRole::Client, &current);
    if fsread::exists_nofollow(&current) {
        let (link, bytes) = read_current(&current);
        st.rotation = if link.is_some() {
            Rotation::Rotated
        } else {
            Rotation::StaticFile
        };
        st.link_target = link;
        match bytes {
            Ok(b) => match cert::parse_pem_bundle(&b) {
                Ok(c) => {
                    let what = format!("in {}", current.display());
                    judge(&mut st, &c, Some((Ok(b), what)), ca, now);
                    return (st, Some(c.der));
                }
                Err(source) => broken(
                    &mut st,
                    &crate::Error::Pem {
                        path: current.clone(),
                        source,
                    },
                ),
            },
            Err(e) => broken(&mut st, &e),
        }
        return (st, None);
    }
    let Some(kc) = kc else {
        not_found(
            &mut st,
            format!(
                "neither {} nor a client certificate in {} was found",
                current.display(),
                kc_path.display()
            ),
        );
        return (st, None);
    };
    let (rotation, path, key_what) = match &kc.client_cert {
        Source::Embedded(_) => (
            Rotation::Embedded,
            kc_path.to_path_buf(),
            format!("client-key-data in {}", kc_path.display()),
        ),
        Source::File(p) => (Rotation::FileReference, p.clone(), p.display().to_string()),
        Source::Absent => {
            not_found(
                &mut st,
                format!(
                    "{} does not exist and {} has no client certificate",
                    current.display(),
                    kc_path.display()
                ),
            );
            return (st, None);
        }
    };
    st.path = path.display().to_string();
    st.rotation = rotation;
    match kc.client_cert_pem().and_then(|b| {
        cert::parse_pem_bundle(&b).map_err(|source| crate::Error::Pem {
            path: path.clone(),
            source,
        })
    }) {
        Ok(c) => {
            judge(&mut st, &c, Some((kc.client_key_pem(), key_what)), ca, now);
            (st, Some(c.der))
        }
        Err(e) if matches!(&e, crate::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound) =>
        {
            not_found(
                &mut st,
                format!(
                    "{} (referenced by {}) does not exist",
                    path.display(),
                    kc_path.display()
                ),
            );
            (st, None)
        }
        Err(e) => {
            broken(&mut st, &e);
            (st, None)
        }
    }
}

/// The serving certificate the kubelet uses. With a readable kubelet config (`config`), the
/// served probe's rule, one reader and one rule for both ([`endpoints::kubelet_serving`],
/// [`endpoints::kubelet_cert`]): `serverTLSBootstrap` → `kubelet-server-current.pem`, else
/// `tlsCertFile` (key `tlsPrivateKeyFile`), else `kubelet-server.crt`; otherwise
/// `tlsCertFile`, else `kubelet.crt`. Without a config file: `kubelet-server-current.pem`
/// when present, else `kubelet.crt`.
fn serving(dir: &Path, config: &Path, ca: Option<&Cert>, now: i64) -> KubeletCertStatus {
    let current = dir.join(SERVER_CURRENT);
    let crt = dir.join(SERVING_CRT);
    let cfg = endpoints::kubelet_serving(config);
    let chosen = match &cfg {
        Some(c) => endpoints::kubelet_cert(c, dir),
        None if fsread::exists_nofollow(&current) => Some(current.clone()),
        None => Some(crt.clone()),
    };
    let Some(path) = chosen else {
        let mut st = KubeletCertStatus::new(KubeletCertRole::Serving, &current);
        not_found(
            &mut st,
            format!(
                "serverTLSBootstrap is set in {} but neither {} nor a tlsCertFile nor {} exists: the kubelet serves nothing until its serving CSR is approved (kubecert approve --kubelet-serving)",
                config.display(),
                current.display(),
                dir.join("kubelet-server.crt").display()
            ),
        );
        return st;
    };
    if path == current {
        let mut st = KubeletCertStatus::new(KubeletCertRole::Serving, &current);
        let (link, bytes) = read_current(&current);
        st.rotation = if link.is_some() {
            Rotation::Rotated
        } else {
            Rotation::StaticFile
        };
        st.link_target = link;
        match bytes.and_then(|b| {
            cert::parse_pem_bundle(&b)
                .map(|c| (c, b))
                .map_err(|source| crate::Error::Pem {
                    path: current.clone(),
                    source,
                })
        }) {
            Ok((c, b)) => {
                let what = format!("in {}", current.display());
                judge(&mut st, &c, Some((Ok(b), what)), ca, now)
            }
            Err(e) => broken(&mut st, &e),
        }
        return st;
    }
    // A static pair: kubelet.crt/kubelet.key, tlsCertFile/tlsPrivateKeyFile, or
    // kubelet-server.crt/kubelet-server.key.
    let custom = cfg
        .as_ref()
        .and_then(|c| c.tls_cert_file.as_deref())
        .is_some_and(|f| Path::new(f) == path);
    let key = if custom {
        cfg.as_ref()
            .and_then(|c| c.tls_private_key_file.as_deref())
            .map(PathBuf::from)
    } else if path == crt {
        Some(dir.join(SERVING_KEY))
    } else {
        Some(path.with_extension("key"))
    };
    let mut st = KubeletCertStatus::new(KubeletCertRole::Serving, &path);
    if !fsread::exists_nofollow(&path) {
        let msg = if custom {
            format!(
                "{} (tlsCertFile in {}) does not exist",
                path.display(),
                config.display()
            )
        } else {
            format!(
                "neither {} nor {} exists (the kubelet writes kubelet.crt when it starts without serving certificate rotation)",
                current.display(),
                crt.display()
            )
        };
        not_found(&mut st, msg);
        return st;
    }
    st.rotation = Rotation::StaticFile;
    match fsread::read(&path).and_then(|b| {
        cert::parse_pem_bundle(&b).map_err(|source| crate::Error::Pem {
            path: path.clone(),
            source,
        })
    }) {
        Ok(c) => {
            let key = key.map(|k: PathBuf| (fsread::read(&k), k.display().to_string()));
            judge(&mut st, &c, key, ca, now)
        }
        Err(e) => broken(&mut st, &e),
    }
    st
}

/// The kubelet section for the kubelet PKI dir `dir` and the kubelet.conf of `layout`.
pub fn section(
    layout: &Layout,
    dir: &Path,
    kubelet_config: &Path,
    ca: Option<&Cert>,
    now: i64,
) -> KubeletSection {
    let kc_path: PathBuf = layout.kubeconfig_dir.join("kubelet.conf");
    let kc = Kubeconfig::load(&kc_path).ok();
    let (client, client_der) = client(dir, kc.as_ref(), &kc_path, ca, now);
    let serving = serving(dir, kubelet_config, ca, now);
    let conf = kubelet_conf_status(layout, dir, now);
    let mut cc = KubeletConfClient {
        mode: conf.mode,
        file: None,
        same_as_client: None,
        note: None,
    };
    if let Some(kc) = &kc {
        if let Source::File(p) = &kc.client_cert {
            cc.file = Some(p.display().to_string());
        }
        let conf_der = kc
            .client_cert_pem()
            .ok()
            .and_then(|b| cert::parse_pem_bundle(&b).ok())
            .map(|c| c.der);
        if let (Some(a), Some(b)) = (&conf_der, &client_der) {
            let same = a == b;
            cc.same_as_client = Some(same);
            if !same {
                cc.note = Some(format!(
                    "kubelet.conf's client certificate ({}) is not the one in {}: the kubelet uses {}",
                    match &kc.client_cert {
                        Source::File(p) => p.display().to_string(),
                        _ => "embedded".into(),
                    },
                    client.path,
                    client.path
                ));
            }
        }
    }
    KubeletSection {
        pki_dir: dir.display().to_string(),
        client,
        serving,
        kubelet_conf: conf,
        kubelet_conf_client: cc,
    }
}

impl KubeletSection {
    /// Both certificates.
    pub fn certs(&self) -> [&KubeletCertStatus; 2] {
        [&self.client, &self.serving]
    }
}

/// The kubelet section when asked for: the CA read from the layout; `kubelet_config` tells
/// which serving certificate the kubelet uses.
pub fn for_check(layout: &Layout, dir: &Path, kubelet_config: &Path, now: i64) -> KubeletSection {
    let ca = pki::CaMaterial::load(layout, crate::pki::inventory::CaId::Ca);
    section(layout, dir, kubelet_config, ca.cert(), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_name_is_the_kubelets_format() {
        // 2026-12-01T17:05:09Z
        assert_eq!(
            dated_client_name_in(1_796_144_709, &jiff::tz::TimeZone::UTC),
            "kubelet-client-2026-12-01-17-05-09.pem"
        );
        let tokyo = jiff::tz::TimeZone::fixed(jiff::tz::offset(9));
        assert_eq!(
            dated_client_name_in(1_796_144_709, &tokyo),
            "kubelet-client-2026-12-02-02-05-09.pem"
        );
    }
}
