//! [`CertSnapshot`]: the attributes of a certificate as renew, csr import and the
//! certificates API report them before and after a change.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pki::cert::CertInfo;
use crate::timefmt;

/// The attributes of a certificate before or after renewal.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertSnapshot {
    /// NotAfter, RFC 3339.
    pub not_after: String,
    /// NotBefore, RFC 3339.
    pub not_before: String,
    /// Serial (hex); null for a dry-run plan.
    pub serial: Option<String>,
    /// Subject.
    pub subject: String,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ip_addresses: Vec<String>,
    /// Extended key usages.
    pub ext_key_usage: Vec<String>,
    /// Key algorithm.
    pub key_algorithm: String,
}

impl CertSnapshot {
    /// The snapshot of a parsed certificate.
    pub fn of(info: &CertInfo) -> Self {
        CertSnapshot {
            not_after: timefmt::rfc3339(info.not_after),
            not_before: timefmt::rfc3339(info.not_before),
            serial: Some(info.serial.clone()),
            subject: info.subject.clone(),
            dns_names: info.dns_names.clone(),
            ip_addresses: info.ip_addresses.iter().map(|i| i.to_string()).collect(),
            ext_key_usage: info.ext_key_usage.clone(),
            key_algorithm: info.key_algorithm.to_string(),
        }
    }
}
