//! `check`: one [`CheckResult`] value describing the expiry and health of every row of the
//! inventory. The kubeadm table, JSON and YAML are renderings of it (see [`crate::render`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{report, Result};
use crate::ops::served::{ServedOptions, ServedProbe, ServedResult};
use crate::pki::finding::FindingCode;
use crate::pki::inventory::{CaId, Entry, Kind};
use crate::pki::kubeconfig::{Kubeconfig, Source};
use crate::pki::{self, Cas, Layout, Material, PkiLocation};
use crate::timefmt;

pub mod cache;
pub mod drift;
pub mod kubelet;

/// Parameters of `check` (CLI flags and JSON-RPC params).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckParams {
    /// Where the PKI is: `cert_dir`, `kubeconfig_dir`, `external_etcd` (top-level params).
    #[serde(flatten)]
    pub location: PkiLocation,
    /// Fixed clock, RFC 3339 (default: now).
    #[serde(default)]
    pub now: Option<String>,
    /// Warn when a certificate expires within this duration (`30d`, `720h`).
    #[serde(default)]
    pub warn_within: Option<String>,
    /// Fail when a certificate expires within this duration.
    #[serde(default)]
    pub fail_within: Option<String>,
    /// kubelet PKI dir (default `/var/lib/kubelet/pki`).
    #[serde(default)]
    pub kubelet_pki: Option<String>,
    /// `served` (probe what each component serves) and the probe's options:
    /// `manifests_dir`, `endpoints`, `timeout_ms`, `kubelet_config` (top-level params).
    #[serde(flatten)]
    pub served: ServedProbe,
    /// Add the kubelet's certificates (client, serving) as the `kubelet` section.
    #[serde(default)]
    pub kubelet: bool,
    /// Add the CA section (`ca check`: join hashes, chains, trust bundles) as the `ca` key.
    #[serde(default)]
    pub ca: bool,
    /// Compare each certificate with the kubeadm configuration (`config` or `kubeconfig`;
    /// the `drift` key).
    #[serde(default)]
    pub drift: bool,
    /// The kubeadm configuration `drift` reads: `config` (a file) or `kubeconfig` (the
    /// kubeadm-config ConfigMap), and the node facts `node_name`, `advertise_address`
    /// (top-level params).
    #[serde(flatten)]
    pub kubeadm: crate::config::ConfigParams,
}

/// A finding about one certificate.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct Problem {
    /// Stable code: `expired`, `not-yet-valid`, `key-missing`, `key-unreadable`,
    /// `key-mismatch`, `not-signed-by-ca`, `ca-missing`, `ca-unreadable`, `ca-malformed`,
    /// `outlives-ca`, `unreadable` (permissions, a refused symlink, not a regular file, over
    /// the size limit), `malformed`, `not-a-ca`, `is-ca`, `kubeconfig-invalid`; in
    /// `status.problems`: `recovery-failed`.
    pub code: FindingCode,
    /// Human explanation.
    pub message: String,
}

impl Problem {
    /// A finding; its message goes through the one scrubber ([`crate::error::scrub`]).
    fn new(code: FindingCode, message: impl Into<String>) -> Self {
        Problem {
            code,
            message: crate::error::scrub(&message.into()),
        }
    }

    /// Whether this problem makes the certificate unusable (as opposed to informational).
    pub fn is_error(&self) -> bool {
        self.code != FindingCode::OutlivesCa
    }
}

/// kubecert's extra detail on a row (ignored by kubeadm-format consumers).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertDetail {
    /// The file read (the kubeconfig for embedded certs).
    pub path: String,
    /// Subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Which kubeadm CA's key signed it, found by signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// Serial, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// NotBefore, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// DNS SANs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// IP SANs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    /// URI and email SANs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_sans: Vec<String>,
    /// Extended key usages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ext_key_usage: Vec<String>,
    /// `RSA-2048`, `ECDSA-P256`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_algorithm: Option<String>,
    /// Certificates after the first in the file.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub chain_length: usize,
    /// Findings.
    #[serde(default)]
    pub problems: Vec<Problem>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One row, in kubeadm's `output.kubeadm.k8s.io/v1alpha3` `Certificate` shape plus `detail`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// Inventory name.
    pub name: String,
    /// NotAfter, RFC 3339 UTC; null when missing.
    pub expiration_date: Option<String>,
    /// Seconds until NotAfter (negative when expired; 0 when missing).
    pub residual_time: i64,
    /// CA cert present but CA key absent.
    pub externally_managed: bool,
    /// Issuing CA (absent for CAs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_name: Option<String>,
    /// The file is absent.
    pub missing: bool,
    /// kubecert's extra detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<CertDetail>,
    /// The typed values behind the rendered strings, for renderers that need numbers
    /// (metrics). Not serialized: absent in a result read back from JSON.
    #[serde(skip)]
    pub facts: Option<CertFacts>,
}

/// Typed values of a certificate that was read, kept next to their RFC 3339 / hex / text
/// renderings in [`CertificateStatus`] so that no renderer parses those back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CertFacts {
    /// NotBefore, Unix seconds.
    pub not_before: i64,
    /// NotAfter, Unix seconds.
    pub not_after: i64,
    /// Serial number, decimal.
    pub serial_decimal: String,
    /// First C, ST, L, O, OU, CN of the subject ([`pki::cert::dn_fields`]).
    pub subject: BTreeMap<&'static str, String>,
    /// The same of the issuer.
    pub issuer: BTreeMap<&'static str, String>,
}

/// How kubelet.conf authenticates (kubeadm#1753).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubeletConfStatus {
    /// The kubelet.conf path.
    pub path: String,
    /// Whether it exists.
    pub present: bool,
    /// How it authenticates; absent when kubelet.conf does not exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<KubeletConfMode>,
    /// NotAfter of the client cert it uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<String>,
    /// The same, Unix seconds (not serialized; for metrics).
    #[serde(skip)]
    pub not_after: Option<i64>,
    /// Seconds until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residual_time: Option<i64>,
    /// `<kubelet-pki>/kubelet-client-current.pem`.
    pub client_current_pem: String,
    /// Whether that file exists.
    pub client_current_pem_exists: bool,
    /// What to do about it.
    pub advice: String,
}

/// How kubelet.conf carries its client certificate.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum KubeletConfMode {
    /// The certificate is embedded (`client-certificate-data`): the kubelet never rotates it.
    Embedded,
    /// kubelet.conf references a file (`client-certificate`), which the kubelet rotates.
    FileReference,
    /// kubelet.conf is unreadable or has no client certificate (token or exec auth?).
    Unknown,
}

/// The verdict of a check.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "kebab-case")]
#[schemars(rename = "CheckLevel")]
pub enum Level {
    /// Nothing crosses a threshold and no row is unusable.
    Ok,
    /// The warn threshold is crossed.
    Warn,
    /// The fail threshold is crossed, a row is unusable, or recovery failed.
    Fail,
}

/// Overall verdict for CI.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckStatus {
    /// The clock used, RFC 3339.
    pub now: String,
    /// The same, Unix seconds (not serialized; for metrics).
    #[serde(skip)]
    pub now_seconds: Option<i64>,
    /// `ok`, `warn` or `fail`; always `fail` when a row is `expired`, `key-missing`,
    /// `key-mismatch` or `not-signed-by-ca`.
    pub level: Level,
    /// The warn threshold in seconds, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warn_within: Option<i64>,
    /// The fail threshold in seconds, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_within: Option<i64>,
    /// The present certificate that expires first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soonest: Option<String>,
    /// The verdict as a number: 0 ok, 1 warn, 2 fail (`kubecert check` exits 0, 3, 4).
    pub exit_code: i32,
    /// Rows with error problems.
    #[serde(default)]
    pub unhealthy: Vec<String>,
    /// Findings about the PKI as a whole: `recovery-failed` (an interrupted run's journal
    /// could not be replayed, so the files may be half-installed; the level is then `fail`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// kubeadm's `CertificateExpirationInfo` plus kubecert's additions.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    /// Always `CertificateExpirationInfo`.
    pub kind: String,
    /// Always `output.kubeadm.k8s.io/v1alpha3`.
    pub api_version: String,
    /// Leaf and kubeconfig rows, sorted by name.
    pub certificates: Vec<CertificateStatus>,
    /// CA rows, sorted by name.
    pub certificate_authorities: Vec<CertificateStatus>,
    /// kubelet.conf diagnosis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubelet_conf: Option<KubeletConfStatus>,
    /// The kubelet's certificates (only with `kubelet: true` / `--kubelet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet: Option<kubelet::KubeletSection>,
    /// Verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<CheckStatus>,
    /// What each component serves (only with `served`): the served leaf next to the one on
    /// disk and a verdict per endpoint. Its level is folded into `status.level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<ServedResult>,
    /// The CAs as `ca check` sees them (only with `ca: true` / `--ca`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<crate::ca::CaCheckResult>,
    /// Each certificate against the kubeadm configuration (only with `drift: true` /
    /// `--drift`): SANs missing and beyond, validity, key algorithm. A drifted or unknown row
    /// makes `status.level` at least `warn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<drift::DriftSection>,
}

/// Resolved options of a check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Layout.
    pub layout: Layout,
    /// Clock.
    pub now: i64,
    /// Nanoseconds past `now` (0 with a fixed `--now`): residual times truncate like
    /// kubeadm's (see [`timefmt::residual_seconds`]).
    pub now_nanos: u32,
    /// Warn threshold, seconds.
    pub warn_within: Option<i64>,
    /// Fail threshold, seconds.
    pub fail_within: Option<i64>,
    /// kubelet PKI dir.
    pub kubelet_pki: PathBuf,
    /// The served proof (None: not asked for).
    pub served: Option<ServedOptions>,
    /// Add the kubelet section.
    pub kubelet: bool,
    /// Add the CA section.
    pub ca: bool,
    /// The kubelet's config file (the `kubelet_config` param, default
    /// /var/lib/kubelet/config.yaml): which serving certificate the kubelet section reports,
    /// by the served probe's rule ([`crate::ops::endpoints::kubelet_cert`]).
    pub kubelet_config: PathBuf,
    /// The kubeadm configuration to compare with (`drift`).
    pub drift: Option<crate::config::KubeadmConfig>,
    /// The static pod manifests (the advertise address when the configuration has none).
    pub manifests_dir: PathBuf,
}

impl CheckParams {
    /// Resolves defaults and parses durations/times; a `kubeconfig` param fails (see
    /// [`CheckParams::resolve_with`]).
    pub fn resolve(&self) -> Result<CheckOptions> {
        self.resolve_with(&crate::config::configmap_not_compiled_in)
    }

    /// [`CheckParams::resolve`], reading the kubeadm-config ConfigMap with `read_configmap`
    /// when `kubeconfig` is given.
    pub fn resolve_with(
        &self,
        read_configmap: crate::config::ConfigMapReader<'_>,
    ) -> Result<CheckOptions> {
        let layout = self.location.layout();
        let (now, now_nanos) = match &self.now {
            Some(s) => (timefmt::parse_rfc3339(s)?, 0),
            None => timefmt::now_precise(),
        };
        let dur = |o: &Option<String>| -> Result<Option<i64>> {
            o.as_deref()
                .map(timefmt::parse_duration)
                .transpose()
                .map_err(crate::Error::from)
        };
        let kubelet_pki = PathBuf::from(
            self.kubelet_pki
                .as_deref()
                .unwrap_or(pki::DEFAULT_KUBELET_PKI),
        );
        let served =
            self.served
                .resolve(&layout.cert_dir, &kubelet_pki, layout.external_etcd, now)?;
        let manifests_dir = self
            .served
            .manifests_dir
            .as_deref()
            .map(PathBuf::from)
            .unwrap_or_else(|| layout.kubeconfig_dir.join("manifests"));
        let drift = match (self.drift, self.kubeadm.given()) {
            // The manifests' node facts are filled in by `drift::compare`.
            (true, true) => self.kubeadm.load(read_configmap)?,
            (true, false) => {
                return Err(crate::Error::InvalidArgument(
                    "--drift needs --config (the kubeadm config file to compare with) or --kubeconfig (the kubeadm-config ConfigMap)".into(),
                ))
            }
            (false, true) => {
                return Err(crate::Error::InvalidArgument(
                    "--config and --kubeconfig are read only with --drift".into(),
                ))
            }
            (false, false) => {
                self.kubeadm.validate()?;
                None
            }
        };
        Ok(CheckOptions {
            layout,
            now,
            now_nanos,
            warn_within: dur(&self.warn_within)?,
            fail_within: dur(&self.fail_within)?,
            kubelet_pki,
            served,
            kubelet: self.kubelet,
            ca: self.ca,
            kubelet_config: PathBuf::from(
                self.served
                    .kubelet_config
                    .as_deref()
                    .unwrap_or(crate::ops::endpoints::DEFAULT_KUBELET_CONFIG),
            ),
            drift,
            manifests_dir,
        })
    }
}

/// The part of a check that does not depend on the clock: every row and kubelet.conf as
/// read from disk, before [`apply_clock`] adds residual times and expiry findings. This is
/// what the agent's cache ([`cache`]) keeps.
#[derive(Debug, Clone)]
pub struct Core {
    /// Leaf and kubeconfig rows, without residual time and expiry findings.
    pub certificates: Vec<CertificateStatus>,
    /// CA rows, likewise.
    pub authorities: Vec<CertificateStatus>,
    /// kubelet.conf, without residual time.
    pub kubelet_conf: KubeletConfStatus,
}

/// Reads the [`Core`] of a check (every file of the layout, through `fsread`).
fn read_core(opts: &CheckOptions) -> Core {
    let layout = &opts.layout;
    let cas = Cas::load(layout);
    let mut certificates = Vec::new();
    let mut authorities = Vec::new();
    for e in layout.rows() {
        // Test hook (failpoints feature): KUBECERT_STEP_DELAY_MS slows each row, so that a
        // renewal's swap can land in the middle of a check (tests/agent_cache.rs).
        crate::pki::store::read_step_delay();
        // A CA row is the material `Cas::load` has just read (one read and parse per CA).
        let st = match cas.0.iter().find(|c| std::ptr::eq(c.id.entry(), e)) {
            Some(ca) => status_for(e, layout, &cas, &ca.cert),
            None => status_for(e, layout, &cas, &pki::load(layout, e)),
        };
        if e.kind == Kind::Ca {
            authorities.push(st);
        } else {
            certificates.push(st);
        }
    }
    Core {
        certificates,
        authorities,
        kubelet_conf: kubelet_conf_core(layout, &opts.kubelet_pki),
    }
}

/// The clock's part of a row: the residual time and, first among its problems, `expired` or
/// `not-yet-valid`.
fn apply_clock(row: &mut CertificateStatus, now: i64, now_nanos: u32) {
    let Some(f) = &row.facts else {
        return;
    };
    row.residual_time = timefmt::residual_seconds(f.not_after, now, now_nanos);
    let p = if now > f.not_after {
        Some(Problem::new(
            FindingCode::Expired,
            format!("expired at {}", timefmt::rfc3339(f.not_after)),
        ))
    } else if now < f.not_before {
        Some(Problem::new(
            FindingCode::NotYetValid,
            format!("not valid before {}", timefmt::rfc3339(f.not_before)),
        ))
    } else {
        None
    };
    if let (Some(p), Some(d)) = (p, row.detail.as_mut()) {
        d.problems.insert(0, p);
    }
}

/// A row as on disk (`material`: [`pki::load`] of `e`), without the clock's part
/// ([`apply_clock`]).
fn status_for(e: &Entry, layout: &Layout, cas: &Cas, material: &Material) -> CertificateStatus {
    let ca_name = e.ca.map(|c| c.name().to_string());
    let externally_managed = match e.ca {
        Some(ca) => cas.get(ca).is_some_and(|c| c.externally_managed()),
        None => cas
            .get(
                CaId::ALL
                    .into_iter()
                    .find(|c| c.name() == e.name)
                    .unwrap_or(CaId::Ca),
            )
            .is_some_and(|c| c.externally_managed()),
    };
    let mut row = CertificateStatus {
        name: e.name.to_string(),
        expiration_date: None,
        residual_time: 0,
        externally_managed: false,
        ca_name,
        missing: false,
        detail: None,
        facts: None,
    };
    match material {
        Material::Missing => {
            row.missing = true;
        }
        Material::Broken(err) => {
            row.externally_managed = externally_managed;
            let code = if matches!(*err, crate::Error::Kubeconfig { .. }) {
                FindingCode::KubeconfigInvalid
            } else if err.is_unreadable() {
                FindingCode::Unreadable
            } else {
                FindingCode::Malformed
            };
            row.detail = Some(CertDetail {
                path: layout.primary_path(e).display().to_string(),
                problems: vec![Problem::new(code, report(err))],
                ..Default::default()
            });
        }
        Material::Present(found) => {
            let info = &found.cert.info;
            row.externally_managed = externally_managed;
            row.expiration_date = Some(timefmt::rfc3339(info.not_after));
            let mut problems = Vec::new();
            // Key presence and match. CA rows: only when the key exists (absent = external).
            let key_applies = !e.is_ca() || found.key_exists();
            if key_applies {
                if !found.key_exists() {
                    problems.push(Problem::new(
                        FindingCode::KeyMissing,
                        format!("private key not found ({})", key_desc(&found.key)),
                    ));
                } else if !key_bytes(found)
                    .is_some_and(|b| pki::cert::key_matches_quickly(&b, info))
                {
                    // Not settled by the public half the key file carries: load it for real.
                    match found.load_key() {
                        Ok(k) if !k.matches(info) => problems.push(Problem::new(
                            FindingCode::KeyMismatch,
                            format!(
                                "the private key ({}) does not match the certificate",
                                key_desc(&found.key)
                            ),
                        )),
                        Ok(_) => {}
                        Err(err) => {
                            problems.push(Problem::new(FindingCode::KeyUnreadable, report(&err)))
                        }
                    }
                }
            }
            // Signature verification is the costliest step left here: each (cert, CA) pair is
            // verified at most once. The expected CA first; the search over every CA only when
            // it did not sign (for CAs: when not self-signed). The outcome is the same as
            // searching first: when the expected CA verifies, it is the reported signer.
            let by_expected = e.ca.filter(|ca| {
                cas.get(*ca)
                    .and_then(|c| c.cert())
                    .is_some_and(|c| info.signed_by(&found.cert.der, &c.info))
            });
            let self_signed = e.is_ca() && info.signed_by(&found.cert.der, info);
            let signed_by = if by_expected.is_some() || self_signed {
                by_expected
            } else {
                cas.signer_of_cert(&found.cert)
            };
            if e.is_ca() {
                if !info.is_ca {
                    problems.push(Problem::new(
                        FindingCode::NotACa,
                        format!("{} certificate is not a certificate authority", e.name),
                    ));
                }
            } else {
                if info.is_ca {
                    problems.push(Problem::new(
                        FindingCode::IsCa,
                        "a leaf certificate with CA:TRUE",
                    ));
                }
                if let Some(ca) = e.ca {
                    let ca_material = cas.get(ca).map(|c| &c.cert);
                    match ca_material {
                        None | Some(Material::Missing) => problems.push(Problem::new(
                            FindingCode::CaMissing,
                            format!("its CA {} is missing", ca.name()),
                        )),
                        Some(Material::Broken(err)) if err.is_unreadable() => {
                            problems.push(Problem::new(
                                FindingCode::CaUnreadable,
                                format!("its CA {} could not be read: {}", ca.name(), report(err)),
                            ))
                        }
                        Some(Material::Broken(err)) => problems.push(Problem::new(
                            FindingCode::CaMalformed,
                            format!("its CA {} is malformed: {}", ca.name(), report(err)),
                        )),
                        Some(Material::Present(ca_found)) => {
                            let ca_cert = &ca_found.cert;
                            if signed_by != Some(ca) {
                                let extra = match signed_by {
                                    Some(other) => format!(" (it is signed by {})", other.name()),
                                    None => String::new(),
                                };
                                problems.push(Problem::new(
                                    FindingCode::NotSignedByCa,
                                    format!(
                                        "certificate {} is not signed by corresponding CA {}{extra}",
                                        e.name,
                                        ca.name()
                                    ),
                                ));
                            } else if info.not_after > ca_cert.info.not_after {
                                problems.push(Problem::new(
                                    FindingCode::OutlivesCa,
                                    format!(
                                        "expires after its CA ({})",
                                        timefmt::rfc3339(ca_cert.info.not_after)
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
            let signer_name = if self_signed {
                Some("self".to_string())
            } else {
                signed_by.map(|c| c.name().to_string())
            };
            row.facts = Some(CertFacts {
                not_before: info.not_before,
                not_after: info.not_after,
                serial_decimal: info.serial_decimal.clone(),
                subject: pki::cert::dn_fields(&info.subject_der),
                issuer: pki::cert::dn_fields(&info.issuer_der),
            });
            row.detail = Some(CertDetail {
                path: found.cert_path.display().to_string(),
                subject: Some(info.subject.clone()),
                issuer: Some(info.issuer.clone()),
                signed_by: signer_name,
                serial: Some(info.serial.clone()),
                not_before: Some(timefmt::rfc3339(info.not_before)),
                dns_names: info.dns_names.clone(),
                ip_addresses: info.ip_addresses.iter().map(|i| i.to_string()).collect(),
                other_sans: info
                    .uris
                    .iter()
                    .map(|u| format!("URI:{u}"))
                    .chain(info.emails.iter().map(|m| format!("email:{m}")))
                    .collect(),
                ext_key_usage: info.ext_key_usage.clone(),
                key_algorithm: Some(info.key_algorithm.to_string()),
                chain_length: found.cert.chain.len(),
                problems,
            });
        }
    }
    row
}

/// The private key PEM of a row (file or embedded), for [`pki::cert::key_matches_quickly`].
fn key_bytes(found: &pki::Found) -> Option<Vec<u8>> {
    match &found.key {
        pki::KeyOrigin::File(p) => found.read_key_file(p).ok(),
        pki::KeyOrigin::Embedded(_) => found.kubeconfig.as_ref()?.client_key_pem().ok(),
        pki::KeyOrigin::Absent => None,
    }
}

fn key_desc(k: &pki::KeyOrigin) -> String {
    match k {
        pki::KeyOrigin::File(p) => p.display().to_string(),
        pki::KeyOrigin::Embedded(p) => format!("client-key-data in {}", p.display()),
        pki::KeyOrigin::Absent => "none".into(),
    }
}

/// Diagnoses kubelet.conf: embedded client cert (kubeadm#1753: never rotated) or a file
/// reference to the rotating `kubelet-client-current.pem`.
pub fn kubelet_conf_status(
    layout: &Layout,
    kubelet_pki: &std::path::Path,
    now: i64,
) -> KubeletConfStatus {
    let mut st = kubelet_conf_core(layout, kubelet_pki);
    st.residual_time = st.not_after.map(|n| n - now);
    st
}

/// [`kubelet_conf_status`] without the clock (no residual time).
fn kubelet_conf_core(layout: &Layout, kubelet_pki: &std::path::Path) -> KubeletConfStatus {
    let path = layout.kubeconfig_dir.join("kubelet.conf");
    let current = kubelet_pki.join("kubelet-client-current.pem");
    let current_exists = pki::file_exists(&current);
    let mut st = KubeletConfStatus {
        path: path.display().to_string(),
        present: pki::file_exists(&path),
        mode: None,
        expiration_date: None,
        not_after: None,
        residual_time: None,
        client_current_pem: current.display().to_string(),
        client_current_pem_exists: current_exists,
        advice: String::new(),
    };
    if !st.present {
        st.advice = "kubelet.conf not found".into();
        return st;
    }
    let kc = match Kubeconfig::load(&path) {
        Ok(k) => k,
        Err(e) => {
            st.mode = Some(KubeletConfMode::Unknown);
            st.advice = format!("kubelet.conf is unreadable: {}", report(&e));
            return st;
        }
    };
    let cert = kc
        .client_cert_pem()
        .ok()
        .and_then(|pem| pki::cert::parse_pem_bundle(&pem).ok());
    if let Some(c) = &cert {
        st.expiration_date = Some(timefmt::rfc3339(c.info.not_after));
        st.not_after = Some(c.info.not_after);
    }
    match kc.client_cert {
        Source::Embedded(_) => {
            st.mode = Some(KubeletConfMode::Embedded);
            st.advice = if current_exists {
                "kubelet.conf embeds its client certificate, which the kubelet does not rotate (kubeadm#1753); run `kubecert kubelet-conf repair` to point it at kubelet-client-current.pem".into()
            } else {
                "kubelet.conf embeds its client certificate, which the kubelet does not rotate (kubeadm#1753), and kubelet-client-current.pem does not exist: enable client certificate rotation, then run `kubecert kubelet-conf repair`".into()
            };
        }
        Source::File(ref p) => {
            st.mode = Some(KubeletConfMode::FileReference);
            st.advice = if pki::file_exists(p) {
                "kubelet.conf references a client certificate file; the kubelet rotates it".into()
            } else {
                format!(
                    "kubelet.conf references {} which does not exist",
                    p.display()
                )
            };
        }
        Source::Absent => {
            st.mode = Some(KubeletConfMode::Unknown);
            st.advice = "kubelet.conf has no client certificate (token or exec auth?)".into();
        }
    }
    st
}

/// Runs a check. An interrupted renewal found on disk is completed or rolled back first (the
/// store's recovery), so the report never shows a half-installed state. A renewal running
/// at the same time (in this process or another) is seen before or after its transaction,
/// never half-way: the rows are read again until what was read is still on disk with no
/// swap in progress ([`cache::read`]).
///
/// When that recovery fails (a read-only filesystem, an edited journal, no permission), the
/// files may be half-installed: the result carries a `recovery-failed` problem in
/// `status.problems` and the level is `fail` (exit 4 on the CLI), whatever the thresholds.
///
/// Errors: [`crate::Error::NoPki`] when not one row's file exists (a wrong directory).
pub fn check(opts: &CheckOptions) -> Result<CheckResult> {
    // Recovery, the wait for a swap in progress, the consistent read, the cache.
    let (global, core) = cache::read(opts);
    verdict(opts, global, core)
}

/// [`check`] of `p` when the agent's cache answers it at once ([`cache::hit`]): the params
/// ask for nothing beyond the PKI's files (no `served`, `kubelet`, `ca` or `drift`: they
/// read other files or the network), no transaction's journal is in the way, and every
/// path the cached read depends on is still what it was. The same verdict on the same
/// core as [`check`]; no file is opened and nothing waits, so the agent runs it on the
/// transport's thread. `None`: call [`check`].
pub fn check_cached(p: &CheckParams) -> Option<Result<CheckResult>> {
    if p.drift || p.served.served || p.kubelet || p.ca {
        return None;
    }
    let opts = match p.resolve() {
        Ok(o) => o,
        Err(e) => return Some(Err(e)),
    };
    let core = cache::hit(&opts)?;
    Some(verdict(&opts, Vec::new(), core))
}

/// The clock's part, the verdict and the sections asked for, on the `core` read.
fn verdict(opts: &CheckOptions, global: Vec<Problem>, core: Core) -> Result<CheckResult> {
    let layout = &opts.layout;
    let Core {
        mut certificates,
        mut authorities,
        kubelet_conf: mut kubelet,
    } = core;
    for row in certificates.iter_mut().chain(authorities.iter_mut()) {
        apply_clock(row, opts.now, opts.now_nanos);
    }
    kubelet.residual_time = kubelet.not_after.map(|n| n - opts.now);
    if global.is_empty()
        && certificates
            .iter()
            .chain(authorities.iter())
            .all(|c| c.missing)
    {
        return Err(no_pki(layout));
    }
    // Verdict.
    let present = certificates
        .iter()
        .chain(authorities.iter())
        .filter(|c| c.expiration_date.is_some());
    let soonest = present.min_by_key(|c| c.residual_time);
    let mut unhealthy: Vec<String> = certificates
        .iter()
        .chain(authorities.iter())
        .filter(|c| {
            c.detail
                .as_ref()
                .is_some_and(|d| d.problems.iter().any(Problem::is_error))
        })
        .map(|c| c.name.clone())
        .collect();
    // The kubelet section (asked for): its certificates count in every threshold.
    let kubelet_section = opts
        .kubelet
        .then(|| kubelet::for_check(layout, &opts.kubelet_pki, &opts.kubelet_config, opts.now));
    let kubelet_certs: Vec<&kubelet::KubeletCertStatus> =
        kubelet_section.iter().flat_map(|k| k.certs()).collect();
    unhealthy.extend(
        kubelet_certs
            .iter()
            .filter(|c| c.unhealthy())
            .map(|c| c.name.clone()),
    );
    let kubelet_soonest = kubelet_certs
        .iter()
        .filter_map(|c| c.residual_time.map(|r| (r, c.name.clone())))
        .min();
    let kubelet_fails = kubelet_certs.iter().any(|c| c.fails());
    let soonest_residual = soonest
        .map(|s| s.residual_time)
        .into_iter()
        .chain(kubelet_soonest.as_ref().map(|k| k.0))
        .min();
    let soonest_name = match (&soonest, &kubelet_soonest) {
        (Some(s), Some(k)) if k.0 < s.residual_time => Some(k.1.clone()),
        (None, Some(k)) => Some(k.1.clone()),
        (s, _) => s.map(|s| s.name.clone()),
    };
    // Unusable whatever the thresholds: expired, key missing or mismatched, wrong CA.
    let unusable = certificates.iter().chain(authorities.iter()).any(|c| {
        c.detail
            .as_ref()
            .is_some_and(|d| d.problems.iter().any(|p| ALWAYS_FAIL.contains(&p.code)))
    });
    let within = |t: Option<i64>| t.is_some_and(|t| soonest_residual.is_some_and(|s| s <= t));
    let (level, exit_code) = if !global.is_empty()
        || unusable
        || kubelet_fails
        || within(opts.fail_within)
        || (opts.fail_within.is_some() && !unhealthy.is_empty())
    {
        (Level::Fail, 2)
    } else if within(opts.warn_within)
        || (opts.warn_within.is_some() && !unhealthy.is_empty())
        || kubelet_certs.iter().any(|c| c.unhealthy())
    {
        (Level::Warn, 1)
    } else {
        (Level::Ok, 0)
    };
    // The served proof: a stale or expired served certificate fails the check; an
    // unreachable endpoint is at least a warning (never ok: nothing was proven).
    let served = opts.served.as_ref().map(crate::ops::served::served);
    let (level, exit_code) = match served.as_ref().map(|s| s.level) {
        Some(crate::ops::served::Level::Fail) => (Level::Fail, 2),
        Some(crate::ops::served::Level::Warn) if level == Level::Ok => (Level::Warn, 1),
        _ => (level, exit_code),
    };
    let mut result = CheckResult {
        kind: "CertificateExpirationInfo".into(),
        api_version: "output.kubeadm.k8s.io/v1alpha3".into(),
        status: Some(CheckStatus {
            now: timefmt::rfc3339(opts.now),
            now_seconds: Some(opts.now),
            level,
            warn_within: opts.warn_within,
            fail_within: opts.fail_within,
            soonest: soonest_name,
            exit_code,
            unhealthy,
            problems: global,
        }),
        certificates,
        certificate_authorities: authorities,
        kubelet_conf: Some(kubelet),
        served,
        kubelet: kubelet_section,
        ca: opts
            .ca
            .then(|| crate::ca::check_layout(&opts.layout, opts.now)),
        drift: None,
    };
    // Drift: a warning about the next renewal, never a failure by itself; a row that could
    // not be compared is not a green either.
    if let Some(cfg) = &opts.drift {
        let d = drift::compare(cfg, layout, &result, &opts.manifests_dir, opts.now);
        if let Some(st) = result.status.as_mut() {
            if st.level == Level::Ok && (!d.drifted.is_empty() || !d.unknown.is_empty()) {
                st.level = Level::Warn;
                st.exit_code = 1;
            }
        }
        result.drift = Some(d);
    }
    Ok(result)
}

/// Problem codes that make the level `fail` with or without thresholds.
pub const ALWAYS_FAIL: &[FindingCode] = &[
    FindingCode::Expired,
    FindingCode::KeyMissing,
    FindingCode::KeyMismatch,
    FindingCode::NotSignedByCa,
];

/// The error of a check that found no kubeadm file at all, naming what it looked for.
fn no_pki(layout: &Layout) -> crate::Error {
    let (mut pki_files, mut kc_files) = (Vec::new(), Vec::new());
    for e in layout.rows() {
        let p = layout.primary_path(e);
        if let Ok(rel) = p.strip_prefix(&layout.cert_dir) {
            pki_files.push(rel.display().to_string());
        } else if let Ok(rel) = p.strip_prefix(&layout.kubeconfig_dir) {
            kc_files.push(rel.display().to_string());
        }
    }
    crate::Error::NoPki {
        cert_dir: layout.cert_dir.clone(),
        pki_files: pki_files.join(", "),
        kubeconfig_dir: layout.kubeconfig_dir.clone(),
        kubeconfig_files: kc_files.join(", "),
    }
}
