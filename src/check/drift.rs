//! `check --drift --config FILE`: each certificate against what kubeadm would issue for the
//! configuration ([`crate::config`]): SANs missing from the certificate and SANs beyond
//! the configuration, a validity and a key algorithm that differ. The JSON key `drift`
//! (absent unless asked for), its text under the table ([`render_text`]) and the metrics
//! (`crate::metrics`) are renderings of one [`DriftSection`].
//!
//! Drift is a warning about the next renewal (kubeadm renews by copying the old
//! certificate's SANs, so a SAN added to the configuration later never arrives), not an
//! expiry: a drifted or undetermined row makes the check's level at least `warn` (exit 3),
//! never `fail` by itself. A row whose drift cannot be determined (missing, unreadable, the
//! advertise address unknown) is `unknown`, never `match`.

use std::collections::BTreeSet;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CertificateStatus, CheckResult};
use crate::config::{KubeadmConfig, NodeNameSource};
use crate::pki::inventory::{Entry, SanRule};
use crate::pki::{issue, Layout};

/// A row's verdict.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DriftStatus {
    /// SANs, validity and key algorithm as the configuration says (a validity that cannot be
    /// determined is said in `validity.status`).
    Match,
    /// Something differs.
    Drift,
    /// Could not be compared (see `reason`).
    Unknown,
}

/// How a certificate's validity compares.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ValidityStatus {
    /// NotAfter − NotBefore is the configured validity (within the 5-minute backdate).
    Match,
    /// It is not; or, when the issuance time is unknown, the certificate still has more
    /// time left than the configuration gives a new one.
    Differs,
    /// Shorter because it was capped at its CA's NotAfter (kubecert and kubeadm cap).
    Capped,
    /// The NotBefore is the CA's (kubeadm's `NewSignedCert` copies it), so the issuance time
    /// and the validity it was given are unknown; it does not outlast the configuration.
    Undetermined,
}

/// Validity of one certificate against the configuration.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ValidityDrift {
    /// `certificateValidityPeriod` (CAs: `caCertificateValidityPeriod`), seconds.
    pub expected_seconds: i64,
    /// NotAfter − NotBefore, seconds.
    pub actual_seconds: i64,
    /// The verdict.
    pub status: ValidityStatus,
}

/// Key algorithm of one certificate against `encryptionAlgorithm`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlgorithmDrift {
    /// `encryptionAlgorithm` as kubeadm applies it.
    pub expected: String,
    /// The certificate's key.
    pub actual: String,
    /// Whether they differ.
    pub differs: bool,
}

/// One certificate's drift.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertDrift {
    /// Inventory name.
    pub name: String,
    /// The verdict.
    pub status: DriftStatus,
    /// Why it is `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether SANs are compared (not for CAs: no configuration field sets theirs).
    pub sans_compared: bool,
    /// SANs the configuration gives and the certificate lacks (`DNS:x`, `IP:y`).
    #[serde(default)]
    pub missing_sans: Vec<String>,
    /// SANs the certificate has beyond the configuration.
    #[serde(default)]
    pub extra_sans: Vec<String>,
    /// Validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<ValidityDrift>,
    /// Key algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_algorithm: Option<AlgorithmDrift>,
}

/// The `drift` section of a check.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DriftSection {
    /// The kubeadm config file read, or `configmap kube-system/kubeadm-config`.
    pub config: String,
    /// Its version.
    pub api_version: String,
    /// The node name the rules used.
    pub node_name: String,
    /// Where it came from.
    pub node_name_source: NodeNameSource,
    /// The advertise address the rules used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_address: Option<String>,
    /// `config`, `param` (`advertise_address`) or `manifest` (the kube-apiserver's
    /// `--advertise-address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_address_source: Option<String>,
    /// certSANs entries kubeadm leaves out (not an IP nor an RFC 1123 name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_sans: Vec<String>,
    /// Rows with status `drift`.
    pub drifted: Vec<String>,
    /// Rows with status `unknown`.
    pub unknown: Vec<String>,
    /// Every row of the layout.
    pub certificates: Vec<CertDrift>,
}

/// Tolerance on a validity: the 5-minute backdate of kubecert's (and kubeadm's CA) NotBefore,
/// plus a minute.
const TOLERANCE: i64 = issue::BACKDATE_SECONDS + 60;

/// Compares every row of `result` with `cfg`. `manifests_dir` gives the advertise address
/// when the configuration has none (kube-apiserver's `--advertise-address`).
pub fn compare(
    cfg: &KubeadmConfig,
    layout: &Layout,
    result: &CheckResult,
    manifests_dir: &Path,
    now: i64,
) -> DriftSection {
    let mut cfg = cfg.clone();
    let adv_source =
        crate::ops::endpoints::fill_node_facts(&mut cfg, manifests_dir).map(str::to_string);
    let rows: Vec<&CertificateStatus> = result
        .certificates
        .iter()
        .chain(&result.certificate_authorities)
        .collect();
    let find = |n: &str| rows.iter().find(|r| r.name == n).copied();
    let mut certificates = Vec::new();
    for e in layout.rows() {
        let Some(row) = find(e.name) else { continue };
        let ca_row = e.ca.and_then(|c| find(c.name()));
        certificates.push(compare_row(&cfg, e, row, ca_row, now));
    }
    certificates.sort_by(|a, b| a.name.cmp(&b.name));
    let names = |s: DriftStatus| {
        certificates
            .iter()
            .filter(|c| c.status == s)
            .map(|c| c.name.clone())
            .collect()
    };
    DriftSection {
        config: cfg.origin.label(),
        api_version: cfg.api_version.clone(),
        node_name: cfg.node_name.clone(),
        node_name_source: cfg.node_name_source,
        advertise_address: cfg.san_inputs.advertise_address.map(|a| a.to_string()),
        advertise_address_source: adv_source,
        ignored_sans: cfg.ignored_sans.clone(),
        drifted: names(DriftStatus::Drift),
        unknown: names(DriftStatus::Unknown),
        certificates,
    }
}

fn compare_row(
    cfg: &KubeadmConfig,
    e: &Entry,
    row: &CertificateStatus,
    ca_row: Option<&CertificateStatus>,
    now: i64,
) -> CertDrift {
    let mut d = CertDrift {
        name: e.name.to_string(),
        status: DriftStatus::Match,
        reason: None,
        sans_compared: e.sans != SanRule::NotCompared,
        missing_sans: Vec::new(),
        extra_sans: Vec::new(),
        validity: None,
        key_algorithm: None,
    };
    let (Some(facts), Some(detail)) = (&row.facts, &row.detail) else {
        d.status = DriftStatus::Unknown;
        d.reason = Some(if row.missing {
            "the certificate is missing".into()
        } else {
            "the certificate could not be read".into()
        });
        return d;
    };
    // SANs.
    match cfg.expected_sans(e) {
        Ok(Some(want)) => {
            let have: BTreeSet<String> = detail
                .dns_names
                .iter()
                .map(|n| format!("DNS:{n}"))
                .chain(detail.ip_addresses.iter().map(|i| format!("IP:{i}")))
                .chain(detail.other_sans.iter().cloned())
                .collect();
            d.missing_sans = want.difference(&have).cloned().collect();
            d.extra_sans = have.difference(&want).cloned().collect();
        }
        Ok(None) => {}
        Err(err) => {
            d.status = DriftStatus::Unknown;
            d.reason = Some(err.to_string());
        }
    }
    // Validity.
    let expected = cfg.validity_of(e);
    let actual = facts.not_after - facts.not_before;
    let ca_facts = ca_row.and_then(|r| r.facts.as_ref());
    let status = if ca_facts.is_some_and(|c| c.not_after == facts.not_after) && actual < expected {
        ValidityStatus::Capped
    } else if actual >= expected - 60 && actual <= expected + TOLERANCE {
        // Also a leaf issued with its CA (kubeadm init: the same NotBefore).
        ValidityStatus::Match
    } else if ca_facts.is_some_and(|c| c.not_before == facts.not_before) {
        // kubeadm's NewSignedCert: NotBefore = the CA's NotBefore, so a leaf renewed later
        // spans more than its validity and its issuance time is unknown; it differs only
        // when it still has more time left than a new certificate would get.
        if facts.not_after - now > expected + TOLERANCE {
            ValidityStatus::Differs
        } else {
            ValidityStatus::Undetermined
        }
    } else {
        ValidityStatus::Differs
    };
    d.validity = Some(ValidityDrift {
        expected_seconds: expected,
        actual_seconds: actual,
        status,
    });
    // Key algorithm.
    if let Some(actual) = &detail.key_algorithm {
        d.key_algorithm = Some(AlgorithmDrift {
            expected: cfg.encryption_algorithm.clone(),
            actual: actual.clone(),
            differs: *actual != cfg.encryption_algorithm,
        });
    }
    if d.status != DriftStatus::Unknown
        && (!d.missing_sans.is_empty()
            || !d.extra_sans.is_empty()
            || status == ValidityStatus::Differs
            || d.key_algorithm.as_ref().is_some_and(|a| a.differs))
    {
        d.status = DriftStatus::Drift;
    }
    d
}

/// The text under the table: one line per row that is not `match`, then a summary.
pub fn render_text(s: &DriftSection) -> String {
    let mut out = format!(
        "\nDRIFT against {} ({}, node {}{})\n",
        s.config,
        s.api_version,
        s.node_name,
        s.advertise_address
            .as_deref()
            .map(|a| format!(", {a}"))
            .unwrap_or_default()
    );
    for c in &s.certificates {
        let mut parts = Vec::new();
        if let Some(r) = &c.reason {
            parts.push(r.clone());
        }
        if !c.missing_sans.is_empty() {
            parts.push(format!("SANs missing: {}", c.missing_sans.join(", ")));
        }
        if !c.extra_sans.is_empty() {
            parts.push(format!(
                "SANs beyond the config: {}",
                c.extra_sans.join(", ")
            ));
        }
        if let Some(v) = c
            .validity
            .as_ref()
            .filter(|v| v.status == ValidityStatus::Differs)
        {
            parts.push(format!(
                "validity {} (config: {})",
                crate::timefmt::format_duration(v.actual_seconds),
                crate::timefmt::format_duration(v.expected_seconds)
            ));
        }
        if let Some(a) = c.key_algorithm.as_ref().filter(|a| a.differs) {
            parts.push(format!("key {} (config: {})", a.actual, a.expected));
        }
        let status = match c.status {
            DriftStatus::Match => continue,
            DriftStatus::Drift => "drift",
            DriftStatus::Unknown => "unknown",
        };
        out.push_str(&format!(
            "{:<26}{:<9}{}\n",
            c.name,
            status,
            parts.join("; ")
        ));
    }
    if s.drifted.is_empty() && s.unknown.is_empty() {
        out.push_str(&format!(
            "no drift: the {} certificates match the configuration\n",
            s.certificates.len()
        ));
    } else {
        out.push_str("a renewal copies the SANs of the certificate it renews: `kubecert renew --config FILE --reconcile-sans` adds the missing ones\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{CertDetail, CertFacts};
    use crate::pki::inventory::INVENTORY;

    const DAY: i64 = 86400;

    fn cfg() -> KubeadmConfig {
        crate::config::parse(
            Path::new("/k.yaml"),
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: cp1\nlocalAPIEndpoint:\n  advertiseAddress: 10.0.0.1\n",
            || None,
        )
        .unwrap()
    }

    fn row(name: &str, not_before: i64, not_after: i64) -> CertificateStatus {
        CertificateStatus {
            name: name.into(),
            expiration_date: None,
            residual_time: 0,
            externally_managed: false,
            ca_name: None,
            missing: false,
            detail: Some(CertDetail {
                key_algorithm: Some("RSA-2048".into()),
                ..Default::default()
            }),
            facts: Some(CertFacts {
                not_before,
                not_after,
                ..Default::default()
            }),
        }
    }

    fn entry(name: &str) -> &'static Entry {
        INVENTORY.iter().find(|e| e.name == name).unwrap()
    }

    fn validity(leaf: CertificateStatus, ca: &CertificateStatus, now: i64) -> ValidityStatus {
        compare_row(&cfg(), entry("admin.conf"), &leaf, Some(ca), now)
            .validity
            .unwrap()
            .status
    }

    /// The validity rule, case by case: no case of an unknown issuance time is a `match`.
    #[test]
    fn validity_rule() {
        let year = crate::config::DEFAULT_CERT_VALIDITY;
        let ca = row("ca", 0, 3650 * DAY);
        // kubecert's renewal: NotBefore = now - 5 min, a year on.
        assert_eq!(
            validity(
                row("admin.conf", 400 * DAY - 300, 400 * DAY + year),
                &ca,
                400 * DAY
            ),
            ValidityStatus::Match
        );
        // Issued with its CA (kubeadm init): the same NotBefore, a year on: match.
        assert_eq!(
            validity(row("admin.conf", 0, year), &ca, DAY),
            ValidityStatus::Match
        );
        // Renewed by kubeadm two years later: NotBefore is still the CA's, span 3 years;
        // the issuance time is unknown: undetermined while it has less than a year left...
        assert_eq!(
            validity(row("admin.conf", 0, 730 * DAY + year), &ca, 800 * DAY),
            ValidityStatus::Undetermined
        );
        // ...and differs while it has more left than a new one would get (a 2-year leaf).
        assert_eq!(
            validity(row("admin.conf", 0, 730 * DAY + 2 * year), &ca, 800 * DAY),
            ValidityStatus::Differs
        );
        // A 4380h leaf from kubecert: differs.
        assert_eq!(
            validity(
                row("admin.conf", 10 * DAY, 10 * DAY + year / 2),
                &ca,
                11 * DAY
            ),
            ValidityStatus::Differs
        );
        // Capped at the CA's NotAfter.
        assert_eq!(
            validity(row("admin.conf", 3400 * DAY, 3650 * DAY), &ca, 3401 * DAY),
            ValidityStatus::Capped
        );
        // A missing row is unknown, never match.
        let mut missing = row("apiserver", 0, 0);
        missing.facts = None;
        missing.missing = true;
        let d = compare_row(&cfg(), entry("apiserver"), &missing, Some(&ca), 0);
        assert_eq!(d.status, DriftStatus::Unknown);
        assert_eq!(d.reason.as_deref(), Some("the certificate is missing"));
    }
}
