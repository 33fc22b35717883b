//! The one vocabulary of findings about a certificate: check's `Problem.code`, csr import's
//! `Finding.code` and the certificates-API renewal's refusals all use [`FindingCode`].
//!
//! Some meanings have two codes (`not-signed-by-ca` in check, `wrong-ca` in csr import;
//! `not-a-ca` and `ca-not-a-ca`; `malformed` and `bad-certificate`): both spellings are part of
//! the committed wire format, so each stays a variant of its own.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What is wrong with a certificate (or the PKI), as a stable kebab-case code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FindingCode {
    /// An explicitly named certificate has no `<name>.crt` in the CSR dir.
    NotFound,
    /// A file could not be read (permissions, a refused symlink, not a regular file, over the
    /// size limit).
    Unreadable,
    /// The file is not a certificate (check).
    Malformed,
    /// A kubeconfig does not parse or has no client certificate (check).
    KubeconfigInvalid,
    /// `<name>.crt` is not a PEM certificate (csr import).
    BadCertificate,
    /// `<name>.key` is absent.
    KeyMissing,
    /// `<name>.key` cannot be read or parsed (check).
    KeyUnreadable,
    /// `<name>.key` is not a usable RSA/ECDSA private key (csr import).
    BadKey,
    /// The certificate's public key is not the key's.
    KeyMismatch,
    /// Not signed by the CA this certificate must chain to (check).
    NotSignedByCa,
    /// Not signed by the CA this certificate must chain to (csr import).
    WrongCa,
    /// The certificates following the leaf do not form a valid chain.
    ChainInvalid,
    /// Subject (DER) differs from the certificate being replaced.
    SubjectMismatch,
    /// SANs (as sets) differ from the certificate being replaced.
    SanMismatch,
    /// Extended key usages do not fit the certificate's role.
    EkuMismatch,
    /// Key usage unfit for a TLS leaf.
    KeyUsage,
    /// A CA certificate where a leaf is required.
    IsCa,
    /// A CA row whose certificate is not a CA (check).
    NotACa,
    /// NotAfter is in the past.
    Expired,
    /// NotBefore is in the future.
    NotYetValid,
    /// NotAfter is after the issuing CA's NotAfter (informational in check).
    OutlivesCa,
    /// There is no current certificate to compare with.
    NoCurrentCertificate,
    /// The current certificate (or kubeconfig) is unreadable.
    CurrentUnreadable,
    /// The CA certificate is missing from the PKI.
    CaMissing,
    /// The CA certificate cannot be read (check).
    CaUnreadable,
    /// The CA certificate does not parse (check).
    CaMalformed,
    /// The PKI's CA certificate is not a CA (CA:FALSE) (csr import).
    CaNotACa,
    /// The files cannot be installed where the current certificate lives.
    NotInstallable,
    /// An interrupted run's journal could not be replayed, so the files may be half-installed
    /// (check, `status.problems`).
    RecoveryFailed,
}

impl FindingCode {
    /// The kebab-case code, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingCode::NotFound => "not-found",
            FindingCode::Unreadable => "unreadable",
            FindingCode::Malformed => "malformed",
            FindingCode::KubeconfigInvalid => "kubeconfig-invalid",
            FindingCode::BadCertificate => "bad-certificate",
            FindingCode::KeyMissing => "key-missing",
            FindingCode::KeyUnreadable => "key-unreadable",
            FindingCode::BadKey => "bad-key",
            FindingCode::KeyMismatch => "key-mismatch",
            FindingCode::NotSignedByCa => "not-signed-by-ca",
            FindingCode::WrongCa => "wrong-ca",
            FindingCode::ChainInvalid => "chain-invalid",
            FindingCode::SubjectMismatch => "subject-mismatch",
            FindingCode::SanMismatch => "san-mismatch",
            FindingCode::EkuMismatch => "eku-mismatch",
            FindingCode::KeyUsage => "key-usage",
            FindingCode::IsCa => "is-ca",
            FindingCode::NotACa => "not-a-ca",
            FindingCode::Expired => "expired",
            FindingCode::NotYetValid => "not-yet-valid",
            FindingCode::OutlivesCa => "outlives-ca",
            FindingCode::NoCurrentCertificate => "no-current-certificate",
            FindingCode::CurrentUnreadable => "current-unreadable",
            FindingCode::CaMissing => "ca-missing",
            FindingCode::CaUnreadable => "ca-unreadable",
            FindingCode::CaMalformed => "ca-malformed",
            FindingCode::CaNotACa => "ca-not-a-ca",
            FindingCode::NotInstallable => "not-installable",
            FindingCode::RecoveryFailed => "recovery-failed",
        }
    }
}

impl std::fmt::Display for FindingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `as_str` is exactly what serde writes, so text output and JSON never disagree.
    #[test]
    fn as_str_matches_serde() {
        let all = [
            FindingCode::NotFound,
            FindingCode::Unreadable,
            FindingCode::Malformed,
            FindingCode::KubeconfigInvalid,
            FindingCode::BadCertificate,
            FindingCode::KeyMissing,
            FindingCode::KeyUnreadable,
            FindingCode::BadKey,
            FindingCode::KeyMismatch,
            FindingCode::NotSignedByCa,
            FindingCode::WrongCa,
            FindingCode::ChainInvalid,
            FindingCode::SubjectMismatch,
            FindingCode::SanMismatch,
            FindingCode::EkuMismatch,
            FindingCode::KeyUsage,
            FindingCode::IsCa,
            FindingCode::NotACa,
            FindingCode::Expired,
            FindingCode::NotYetValid,
            FindingCode::OutlivesCa,
            FindingCode::NoCurrentCertificate,
            FindingCode::CurrentUnreadable,
            FindingCode::CaMissing,
            FindingCode::CaUnreadable,
            FindingCode::CaMalformed,
            FindingCode::CaNotACa,
            FindingCode::NotInstallable,
            FindingCode::RecoveryFailed,
        ];
        for c in all {
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::Value::String(c.as_str().to_string())
            );
        }
    }
}
