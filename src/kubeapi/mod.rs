//! The Kubernetes certificates API (`certificates.k8s.io/v1` CertificateSigningRequests),
//! through kube-rs:
//!
//! - [`renew`]: `kubecert renew NAME... --use-api` — a new key, a CSR object per certificate
//!   (`generateName: kubeadm-cert-<CN>-`, as kubeadm 1.15–1.18 did), a watch until it is
//!   approved and issued (or denied, failed, timed out), then the issued certificate is
//!   validated exactly as `csr import` validates one and installed through the crash-safe
//!   store;
//! - [`sign`]: `kubecert sign` — kubecert as the external signer of a signer name: approved
//!   requests for a certificate of this node's PKI are signed with the CA that row belongs to;
//! - [`approve`]: `kubecert approve` — a policy-checked approver that approves only requests
//!   that renew a certificate of this node's PKI, denies the ones that break the policy, and
//!   leaves the rest pending;
//! - [`kubelet_serving`]: `kubecert approve --kubelet-serving` — the approver of kubelet
//!   serving certificate requests: only DNS names and IPs of the requesting node's Node;
//! - [`kubeadm_config`]: the `kubeadm-config` ConfigMap of kube-system, read for `--kubeconfig`
//!   as the kubeadm configuration source (check --drift, config expected, renew);
//! - [`clusterinfo`]: `kubecert ca rotate ca --kubeconfig` — the `cluster-info` ConfigMap in
//!   kube-public gets the node's new CA bundle (optimistic concurrency).
//!
//! Everything is async (tokio); the CLI creates a runtime, the JSON-RPC agent calls
//! [`approve::approve_blocking`] from its blocking pool. No error, log line or result carries
//! key material: private keys never leave memory until they are installed.

pub mod approve;
pub mod clusterinfo;
pub mod kubeadm_config;
pub mod kubelet_serving;
pub mod renew;
pub mod sign;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use x509_parser::prelude::{FromDer, ParsedCriAttribute, ParsedExtension};

use crate::pki::inventory::{CaId, Entry, Role};
use crate::pki::{self, Layout, Material};

/// Default kubeconfig of the CLI (`/etc/kubernetes/admin.conf`, as kubeadm's `--kubeconfig`).
pub const DEFAULT_KUBECONFIG: &str = "/etc/kubernetes/admin.conf";
/// The built-in signer of kube-controller-manager for client certificates of the cluster CA.
pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// kubeadm's CSR name prefix (`certAPIPrefixName`).
pub const NAME_PREFIX: &str = "kubeadm-cert";

/// `spec.usages` value for the digitalSignature key usage.
pub const DIGITAL_SIGNATURE: &str = "digital signature";
/// `spec.usages` value for the keyEncipherment key usage.
pub const KEY_ENCIPHERMENT: &str = "key encipherment";
/// `spec.usages` value for the serverAuth extended key usage.
pub const SERVER_AUTH: &str = "server auth";
/// `spec.usages` value for the clientAuth extended key usage.
pub const CLIENT_AUTH: &str = "client auth";

/// Errors of the certificates-API operations. None carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeApiError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The kubeconfig.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A call to the API server failed.
    #[error("{op}: {reason}")]
    Api {
        /// What was being done (`creating a CertificateSigningRequest for apiserver`).
        op: String,
        /// The server's answer or the transport error.
        reason: String,
    },
    /// The request was denied.
    #[error(
        "certificate signing request \"{name}\" was denied ({reason}): {message}; nothing was changed"
    )]
    Denied {
        /// CSR object name.
        name: String,
        /// Condition reason.
        reason: String,
        /// Condition message.
        message: String,
    },
    /// The signer could not sign it.
    #[error(
        "certificate signing request \"{name}\" failed ({reason}): {message}; nothing was changed"
    )]
    Failed {
        /// CSR object name.
        name: String,
        /// Condition reason.
        reason: String,
        /// Condition message.
        message: String,
    },
    /// The request was deleted before a certificate was issued.
    #[error("certificate signing request \"{name}\" was deleted before a certificate was issued; nothing was changed")]
    Deleted {
        /// CSR object name.
        name: String,
    },
    /// No certificate appeared in time.
    #[error("timed out after {timeout} waiting for certificate signing request \"{name}\": {state}; nothing was changed (the request is left in the cluster for inspection)")]
    Timeout {
        /// CSR object name.
        name: String,
        /// The timeout, as given.
        timeout: String,
        /// Where the request stood (`pending: not approved`, `approved, not signed yet`).
        state: String,
    },
    /// The issued certificate is not acceptable.
    #[error("the certificate issued for {cert} through \"{name}\" was refused; nothing was changed: {findings}")]
    Refused {
        /// Inventory name.
        cert: String,
        /// CSR object name.
        name: String,
        /// What is wrong (the `csr import` findings).
        findings: String,
    },
    /// Several requests failed (renew of several certificates).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Several(Vec<KubeApiError>),
    /// The approve policy file is unusable.
    #[error("policy {path}: {reason}")]
    Policy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A bad argument or option combination.
    #[error("{0}")]
    InvalidArgument(String),
    /// A PKI error (reading certificates, keys, the lock, the store).
    #[error(transparent)]
    Pki(#[from] crate::Error),
}

/// Result of this module.
pub type Result<T, E = KubeApiError> = std::result::Result<T, E>;

impl From<KubeApiError> for crate::Error {
    fn from(e: KubeApiError) -> Self {
        match e {
            KubeApiError::Pki(inner) => inner,
            KubeApiError::InvalidArgument(s) => crate::Error::InvalidArgument(s),
            KubeApiError::Kubeconfig { path, reason } => crate::Error::Kubeconfig { path, reason },
            other => crate::Error::KubeApi(crate::error::Reason::of(other)),
        }
    }
}

/// Describes a kube-rs error without anything but the server's status or the transport
/// failure.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let mut m = s.message.clone();
            if !s.reason.is_empty() {
                m.push_str(&format!(" ({}, HTTP {})", s.reason, s.code));
            }
            m
        }
        other => {
            // Walk the source chain: "ServiceError: client error (Connect)" alone says little.
            let mut m = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(s) = src {
                let t = s.to_string();
                if !m.contains(&t) {
                    m.push_str(": ");
                    m.push_str(&t);
                }
                src = s.source();
            }
            crate::error::scrub(&m)
        }
    }
}

/// Wraps a kube-rs error with what was being done.
pub fn api_err(op: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeApiError {
    let op = op.into();
    move |e| KubeApiError::Api {
        op,
        reason: describe(&e),
    }
}

/// A client for the cluster of `kubeconfig` (its current context): custom CA, client
/// certificate and key (PKCS#1, SEC1 or PKCS#8), bearer tokens — whatever kube-rs supports.
pub async fn client(kubeconfig: &Path) -> Result<Client> {
    let config = config(kubeconfig).await?;
    Client::try_from(config).map_err(|e| KubeApiError::Kubeconfig {
        path: kubeconfig.to_path_buf(),
        reason: crate::error::scrub(&describe(&e)),
    })
}

/// The kube-rs configuration of `kubeconfig`'s current context (what [`client`] builds its
/// client from; its `cluster_url` names the API server in messages).
pub async fn config(kubeconfig: &Path) -> Result<Config> {
    let kerr = |reason: String| KubeApiError::Kubeconfig {
        path: kubeconfig.to_path_buf(),
        reason: crate::error::scrub(&reason),
    };
    if !kubeconfig.is_file() {
        return Err(kerr("not found (pass --kubeconfig)".into()));
    }
    // Refused unless a regular file, not a symlink, within the size bound (kube's own reader
    // is unbounded); kube then reads it (it resolves relative file references).
    crate::pki::fsread::read(kubeconfig).map_err(|e| kerr(crate::error::report(&e)))?;
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| kerr(e.to_string()))?;
    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| kerr(e.to_string()))
}

/// The cluster-scoped CSR API.
pub fn csr_api(client: Client) -> Api<CertificateSigningRequest> {
    Api::all(client)
}

/// Runs a future to completion from blocking code: on the current runtime when called from
/// one of its blocking threads (the JSON-RPC agent), else on a new current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => Ok(h.block_on(f)),
        Err(_) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| crate::Error::Runtime { source })?;
            Ok(rt.block_on(f))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Usages
// ---------------------------------------------------------------------------------------------

/// What is wrong with `usages` for a certificate of `role` (empty when they fit): only
/// digital signature, key encipherment and the role's EKUs may be requested; digital
/// signature and the role's EKUs must be.
pub fn usage_problems(usages: &[String], role: Role) -> Vec<String> {
    let allowed = role.api_usages();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for u in usages {
        if !seen.insert(u.as_str()) {
            out.push(format!("usage \"{u}\" is requested twice"));
        } else if !allowed.contains(&u.as_str()) {
            out.push(format!(
                "usage \"{u}\" is not allowed for a {} certificate (allowed: {})",
                role.api_name(),
                allowed.join(", ")
            ));
        }
    }
    for need in allowed.iter().filter(|u| **u != KEY_ENCIPHERMENT) {
        if !usages.iter().any(|u| u == need) {
            out.push(format!(
                "usage \"{need}\" is missing; a {} certificate needs it",
                role.api_name()
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Conditions
// ---------------------------------------------------------------------------------------------

/// Where a CSR object stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsrState {
    /// An `Approved` condition is present.
    pub approved: bool,
    /// The `Denied` condition (reason, message).
    pub denied: Option<(String, String)>,
    /// The `Failed` condition (reason, message).
    pub failed: Option<(String, String)>,
    /// `status.certificate` is set.
    pub issued: bool,
}

impl CsrState {
    /// Reads the conditions and certificate of a CSR.
    pub fn of(csr: &CertificateSigningRequest) -> Self {
        let mut s = CsrState::default();
        if let Some(st) = &csr.status {
            for c in st.conditions.iter().flatten() {
                let rm = || {
                    (
                        c.reason.clone().unwrap_or_default(),
                        c.message.clone().unwrap_or_default(),
                    )
                };
                // Approved/Denied/Failed are only ever "True"; treat anything else as absent.
                if c.status != "True" {
                    continue;
                }
                match c.type_.as_str() {
                    "Approved" => s.approved = true,
                    "Denied" => s.denied = Some(rm()),
                    "Failed" => s.failed = Some(rm()),
                    _ => {}
                }
            }
            s.issued = st.certificate.as_ref().is_some_and(|c| !c.0.is_empty());
        }
        s
    }

    /// Neither approved nor denied nor failed, and no certificate.
    pub fn pending(&self) -> bool {
        !self.approved && self.denied.is_none() && self.failed.is_none() && !self.issued
    }

    /// `kubectl get csr`'s CONDITION column.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.approved {
            parts.push("Approved");
        }
        if self.denied.is_some() {
            parts.push("Denied");
        }
        if self.failed.is_some() {
            parts.push("Failed");
        }
        if self.issued {
            parts.push("Issued");
        }
        if parts.is_empty() {
            "Pending".into()
        } else {
            parts.join(",")
        }
    }
}

/// A condition as kubectl and the controllers write them (timestamps are set by the server).
pub fn condition(type_: &str, reason: &str, message: &str) -> CertificateSigningRequestCondition {
    CertificateSigningRequestCondition {
        type_: type_.to_string(),
        status: "True".into(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        ..Default::default()
    }
}

/// The object name (empty when absent).
pub fn name_of(csr: &CertificateSigningRequest) -> String {
    csr.metadata.name.clone().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The request inside a CSR object
// ---------------------------------------------------------------------------------------------

/// The facts of a PKCS#10 request that approve and sign judge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The request DER.
    pub der: Vec<u8>,
    /// Subject Name DER.
    pub subject_der: Vec<u8>,
    /// Subject as text.
    pub subject: String,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ip_addresses: Vec<IpAddr>,
    /// URI SANs.
    pub uris: Vec<String>,
    /// Email SANs.
    pub emails: Vec<String>,
    /// Other SAN kinds (directory names, ...), described.
    pub other_sans: Vec<String>,
    /// basicConstraints CA:TRUE requested.
    pub is_ca: bool,
    /// SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
}

impl Request {
    /// SANs as `DNS:x`, `IP:x`, `URI:x`, `email:x` (the form of
    /// [`CertInfo::san_strings`](crate::pki::cert::CertInfo::san_strings)).
    pub fn san_set(&self) -> BTreeSet<String> {
        let mut v: BTreeSet<String> = self.dns_names.iter().map(|d| format!("DNS:{d}")).collect();
        v.extend(self.ip_addresses.iter().map(|i| format!("IP:{i}")));
        v.extend(self.uris.iter().map(|u| format!("URI:{u}")));
        v.extend(self.emails.iter().map(|e| format!("email:{e}")));
        v.extend(self.other_sans.iter().cloned());
        v
    }
}

/// Why a `spec.request` cannot be judged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Not PEM.
    #[error("not PEM")]
    NotPem(#[source] ::pem::PemError),
    /// PEM without a `CERTIFICATE REQUEST` block.
    #[error("no CERTIFICATE REQUEST PEM block")]
    NoRequestBlock,
    /// The block is not a PKCS#10 request.
    #[error("not a PKCS#10 request")]
    NotPkcs10(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
    /// Bytes after the request's DER.
    #[error("trailing bytes after the request")]
    TrailingBytes,
    /// The self-signature does not verify.
    #[error("the request's signature does not verify")]
    BadSignature(#[source] x509_parser::error::X509Error),
}

/// Parses `spec.request` (PEM `CERTIFICATE REQUEST`), verifies its self-signature and reads
/// the subject, the SANs and basicConstraints from the extension request.
pub fn parse_request(pem_bytes: &[u8]) -> std::result::Result<Request, RequestError> {
    use x509_parser::certification_request::X509CertificationRequest;
    let blocks = ::pem::parse_many(pem_bytes).map_err(RequestError::NotPem)?;
    let block = blocks
        .into_iter()
        .find(|b| b.tag() == "CERTIFICATE REQUEST")
        .ok_or(RequestError::NoRequestBlock)?;
    let der = block.into_contents();
    let (rest, req) = X509CertificationRequest::from_der(&der).map_err(RequestError::NotPkcs10)?;
    if !rest.is_empty() {
        return Err(RequestError::TrailingBytes);
    }
    req.verify_signature().map_err(RequestError::BadSignature)?;
    let info = &req.certification_request_info;
    let mut r = Request {
        der: der.clone(),
        subject_der: info.subject.as_raw().to_vec(),
        subject: info.subject.to_string(),
        dns_names: vec![],
        ip_addresses: vec![],
        uris: vec![],
        emails: vec![],
        other_sans: vec![],
        is_ca: false,
        spki_der: info.subject_pki.raw.to_vec(),
    };
    // Every extensionRequest attribute, as Go's x509 reads them (x509-parser's
    // `requested_extensions` stops at the first: a second one could carry SANs the judge
    // never saw).
    let requested = info
        .iter_attributes()
        .flat_map(|a| match a.parsed_attribute() {
            ParsedCriAttribute::ExtensionRequest(r) => r.extensions.as_slice(),
            _ => &[],
        });
    for ext in requested.map(|e| e.parsed_extension()) {
        match ext {
            ParsedExtension::SubjectAlternativeName(san) => {
                let sans = crate::pki::cert::Sans::read(&san.general_names);
                r.dns_names.extend(sans.dns_names);
                r.ip_addresses.extend(sans.ip_addresses);
                r.uris.extend(sans.uris);
                r.emails.extend(sans.emails);
                r.other_sans.extend(sans.other);
            }
            ParsedExtension::BasicConstraints(bc) => r.is_ca |= bc.ca,
            _ => {}
        }
    }
    Ok(r)
}

/// An inventory row whose current certificate a request matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowMatch {
    /// The row.
    pub entry: &'static Entry,
    /// Its CA.
    pub ca: CaId,
}

/// How a request relates to this node's PKI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matching {
    /// Same subject (DER) and SAN set as the current certificate of these rows (etcd-server
    /// and etcd-peer share both in kubeadm PKIs).
    Rows(Vec<RowMatch>),
    /// No row matches; the nearest row and how the request differs from it, if any row
    /// shares the subject or the SANs.
    None {
        /// A row with the same subject or the same SANs, with the difference.
        nearest: Option<(&'static str, String)>,
    },
}

/// Matches a request against the current certificates of the layout's rows.
pub fn match_request(layout: &Layout, req: &Request) -> Matching {
    let want = req.san_set();
    let mut rows = Vec::new();
    let mut nearest: Option<(&'static str, String)> = None;
    for e in layout.rows().filter(|e| !e.is_ca()) {
        let Some(ca) = e.ca else { continue };
        let Material::Present(found) = pki::load(layout, e) else {
            continue;
        };
        let info = &found.cert.info;
        let have = info.san_set();
        let same_subject = info.subject_der == req.subject_der;
        let same_sans = have == want;
        if same_subject && same_sans {
            rows.push(RowMatch { entry: e, ca });
        } else if nearest.is_none() && (same_subject || same_sans) {
            let diff = if same_subject {
                let (missing, extra) = crate::pki::cert::san_difference(&have, &want);
                let mut p = Vec::new();
                if !extra.is_empty() {
                    p.push(format!("extra SAN(s) {}", extra.join(", ")));
                }
                if !missing.is_empty() {
                    p.push(format!("missing SAN(s) {}", missing.join(", ")));
                }
                format!("same subject, but {}", p.join("; "))
            } else {
                format!(
                    "same SANs, but subject \"{}\" instead of \"{}\"",
                    req.subject, info.subject
                )
            };
            nearest = Some((e.name, diff));
        }
    }
    if rows.is_empty() {
        Matching::None { nearest }
    } else {
        Matching::Rows(rows)
    }
}

/// A CSR object name prefix from a common name: kubeadm's `kubeadm-cert-<CN>-`, with the CN
/// made a valid DNS-subdomain fragment (lowercase; `:` and other characters become `-`) and
/// the whole prefix kept within the 58 characters the server keeps of a generateName.
pub fn generate_name(common_name: &str) -> String {
    let mut cn: String = common_name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while cn.contains("--") {
        cn = cn.replace("--", "-");
    }
    let cn = cn.trim_matches(|c| c == '-' || c == '.');
    let mut s = if cn.is_empty() {
        format!("{NAME_PREFIX}-")
    } else {
        format!("{NAME_PREFIX}-{cn}-")
    };
    if s.len() > 58 {
        s.truncate(57);
        while s.ends_with('.') || s.ends_with('-') {
            s.pop();
        }
        s.push('-');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_kubeadm_and_valid() {
        assert_eq!(
            generate_name("kube-apiserver"),
            "kubeadm-cert-kube-apiserver-"
        );
        assert_eq!(
            generate_name("kubernetes-admin"),
            "kubeadm-cert-kubernetes-admin-"
        );
        assert_eq!(
            generate_name("system:kube-controller-manager"),
            "kubeadm-cert-system-kube-controller-manager-"
        );
        assert_eq!(generate_name(""), "kubeadm-cert-");
        let long = generate_name(&"a".repeat(100));
        assert!(long.len() <= 58 && long.ends_with('-'));
    }

    #[test]
    fn usages_by_role() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(usage_problems(&s(Role::Server.api_usages()), Role::Server).is_empty());
        assert!(usage_problems(&s(&["digital signature", "client auth"]), Role::Client).is_empty());
        let p = usage_problems(&s(&["digital signature", "server auth"]), Role::Client);
        assert_eq!(p.len(), 2, "{p:?}");
        let p = usage_problems(
            &s(&[
                "digital signature",
                "server auth",
                "server auth",
                "client auth",
            ]),
            Role::ServerAndClient,
        );
        assert_eq!(p.len(), 1, "{p:?}");
        let p = usage_problems(&s(&["cert sign", "client auth"]), Role::Client);
        assert!(p.iter().any(|x| x.contains("cert sign")), "{p:?}");
        assert!(p.iter().any(|x| x.contains("digital signature")), "{p:?}");
    }

    #[test]
    fn requests_parse_and_verify() {
        use crate::pki::issue::{self, KeyAlgorithm, LeafSpec};
        let key = issue::generate_key(KeyAlgorithm::EcdsaP256).expect("key");
        let subject = issue::name_der("kube-apiserver", &["a", "b"]);
        let spec = LeafSpec {
            subject_der: subject.clone(),
            dns_names: vec!["kubernetes".into()],
            ip_addresses: vec!["10.96.0.1".parse().expect("ip")],
            uris: vec![],
            emails: vec![],
            ext_key_usage: vec!["serverAuth".into()],
            not_before: 0,
            not_after: 0,
        };
        let der = issue::csr_der(&spec, &key, true).expect("csr");
        let pem = issue::csr_pem(&der);
        let r = parse_request(pem.as_bytes()).expect("parse");
        assert_eq!(r.subject_der, subject);
        assert!(!r.is_ca);
        assert_eq!(
            r.san_set().into_iter().collect::<Vec<_>>(),
            ["DNS:kubernetes", "IP:10.96.0.1"]
        );
        use rcgen::PublicKeyData;
        assert_eq!(r.spki_der, key.subject_public_key_info());
        // A flipped bit in the signature: refused.
        let mut bad = der.clone();
        if let Some(last) = bad.last_mut() {
            *last ^= 1;
        }
        let err =
            crate::error::report(&parse_request(issue::csr_pem(&bad).as_bytes()).unwrap_err());
        assert!(err.contains("signature"), "{err}");
        assert!(parse_request(b"garbage").is_err());
        let cert_pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(parse_request(cert_pem).is_err());
    }

    /// A request may carry more than one extensionRequest attribute; Go's x509 (which the
    /// signer uses) reads the extensions of every one of them, x509-parser's
    /// `requested_extensions` only the first. The SANs judged must be all of them: a node's
    /// IP in the first attribute must not hide a foreign DNS name in the second.
    #[test]
    fn every_extension_request_attribute_is_read() {
        use crate::pki::issue::{self, KeyAlgorithm, LeafSpec};
        use x509_parser::prelude::FromDer;
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut v = vec![tag];
            let n = content.len();
            if n < 0x80 {
                v.push(n as u8);
            } else {
                let b = n.to_be_bytes();
                let b: Vec<u8> = b.iter().copied().skip_while(|x| *x == 0).collect();
                v.push(0x80 | b.len() as u8);
                v.extend(b);
            }
            v.extend_from_slice(content);
            v
        }
        let key = issue::generate_key(KeyAlgorithm::EcdsaP256).expect("key");
        let subject = issue::name_der("system:node:n1", &["system:nodes"]);
        let spec = |dns: &[&str], ips: &[&str]| LeafSpec {
            subject_der: subject.clone(),
            dns_names: dns.iter().map(|d| d.to_string()).collect(),
            ip_addresses: ips.iter().map(|i| i.parse().expect("ip")).collect(),
            uris: vec![],
            emails: vec![],
            ext_key_usage: vec!["serverAuth".into()],
            not_before: 0,
            not_after: 0,
        };
        // The attributes ([0] IMPLICIT SET OF Attribute) of a request: its info after the
        // SubjectPublicKeyInfo; their content without the [0] header.
        let attrs_of = |der: &[u8]| -> (Vec<u8>, Vec<u8>) {
            let (_, req) =
                x509_parser::certification_request::X509CertificationRequest::from_der(der)
                    .expect("csr");
            let info = req.certification_request_info.raw;
            let spki = req.certification_request_info.subject_pki.raw;
            let at = info
                .windows(spki.len())
                .position(|w| w == spki)
                .expect("spki in info")
                + spki.len();
            let (_, any) =
                x509_parser::der_parser::asn1_rs::Any::from_der(&info[at..]).expect("attributes");
            (info[..at].to_vec(), any.data.to_vec())
        };
        let first = issue::csr_der(&spec(&[], &["10.0.0.1"]), &key, true).expect("csr");
        let second = issue::csr_der(&spec(&["evil.example"], &[]), &key, true).expect("csr");
        let (head, a1) = attrs_of(&first);
        let (_, a2) = attrs_of(&second);
        // head is "SEQUENCE header + version + subject + spki": rebuild the info around it.
        let hdr_len = head.len()
            - x509_parser::der_parser::asn1_rs::Header::from_der(&head)
                .map(|(rest, _)| rest.len())
                .expect("hdr");
        let mut body = head[hdr_len..].to_vec();
        body.extend(tlv(0xa0, &[a1, a2].concat()));
        let info = tlv(0x30, &body);
        use rcgen::SigningKey;
        let sig = key.sign(&info).expect("sign");
        let alg = [
            0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
        ];
        let bits = tlv(0x03, &[&[0u8][..], &sig].concat());
        let der = tlv(0x30, &[info, alg.to_vec(), bits].concat());
        let r = parse_request(issue::csr_pem(&der).as_bytes()).expect("parse");
        assert_eq!(
            r.san_set().into_iter().collect::<Vec<_>>(),
            ["DNS:evil.example", "IP:10.0.0.1"]
        );
    }

    #[test]
    fn state_reads_conditions() {
        use k8s_openapi::api::certificates::v1::CertificateSigningRequestStatus;
        let mut csr = CertificateSigningRequest::default();
        assert!(CsrState::of(&csr).pending());
        csr.status = Some(CertificateSigningRequestStatus {
            conditions: Some(vec![condition("Approved", "KubectlApprove", "ok")]),
            certificate: None,
        });
        let s = CsrState::of(&csr);
        assert!(s.approved && !s.pending() && !s.issued);
        assert_eq!(s.describe(), "Approved");
    }
}
