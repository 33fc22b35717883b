//! Typed errors of the kubecert library. Every variant names the certificate or path it is
//! about; none ever carries key material.

use std::path::PathBuf;

/// Why PEM input could not be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PemError {
    /// The bytes are not PEM at all.
    #[error("malformed PEM: {0}")]
    Malformed(String),
    /// PEM, but no `CERTIFICATE` block.
    #[error("no CERTIFICATE block found")]
    NoCertificate,
    /// A `CERTIFICATE` block whose DER does not parse.
    #[error("invalid certificate: {0}")]
    BadCertificate(String),
    /// PEM, but no private key block.
    #[error("no PRIVATE KEY block found")]
    NoPrivateKey,
    /// A key block kubecert does not support (kubeadm accepts RSA and ECDSA only).
    #[error("unsupported private key: {0}")]
    UnsupportedKey(String),
}

/// Errors of the kubecert library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file could not be parsed.
    #[error("{path}: {source}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: PemError,
    },
    /// A kubeconfig is malformed or lacks what is needed.
    #[error("invalid kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A name that is not in the inventory (kubeadm: "%s is not a valid certificate for this cluster").
    #[error("{0} is not a valid certificate for this cluster")]
    UnknownCertificate(String),
    /// The CA certificate is absent or unusable ("couldn't load %s certificate authority
    /// from %s", plus why).
    #[error("couldn't load {ca} certificate authority from {dir}: {reason}")]
    CaMissing {
        /// CA name.
        ca: String,
        /// Cert dir.
        dir: PathBuf,
        /// Which file and what is wrong with it (never its bytes).
        reason: String,
    },
    /// The CA key is absent: the CA is externally managed.
    #[error("the {ca} key is absent ({path}): {ca} is externally managed")]
    CaKeyMissing {
        /// CA name.
        ca: String,
        /// Expected key path.
        path: PathBuf,
    },
    /// The CA certificate has expired; renewing under it would produce unverifiable certs.
    #[error("{ca} has expired (NotAfter {not_after}); refusing to sign with it (pass --allow-expired-ca to override)")]
    CaExpired {
        /// CA name.
        ca: String,
        /// Its NotAfter, RFC 3339.
        not_after: String,
    },
    /// The CA certificate is not valid yet (NotBefore in the future); what it signs would not
    /// verify either.
    #[error("{ca} is not yet valid (NotBefore {not_before}); refusing to sign with it (pass --allow-expired-ca to override)")]
    CaNotYetValid {
        /// CA name.
        ca: String,
        /// Its NotBefore, RFC 3339.
        not_before: String,
    },
    /// The certificate to renew is not one kubeadm would have issued for its row under the CA
    /// that is about to sign it (another issuer, or another subject, SANs or usages): renewing
    /// it would launder a foreign identity into one signed by the cluster CA.
    #[error(
        "refusing to renew {cert}: {path} {reason} (pass --allow-foreign-identity to override)"
    )]
    ForeignIdentity {
        /// The inventory name.
        cert: String,
        /// The file holding the certificate.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file named as a CA is not a CA certificate.
    #[error("{ca} certificate is not a certificate authority")]
    NotACa {
        /// CA name.
        ca: String,
    },
    /// Another kubecert run holds the PKI lock.
    #[error("the PKI at {dir} is locked by pid {pid}")]
    Locked {
        /// The locked dir.
        dir: PathBuf,
        /// The holder, if known (0 when unknown).
        pid: u32,
    },
    /// A symlink where kubecert will not follow or replace one.
    #[error("refusing symlink at {0}")]
    Symlink(PathBuf),
    /// A planned or imported certificate failed validation.
    #[error("validation failed for {cert}: {reason}")]
    Validation {
        /// The inventory name.
        cert: String,
        /// What is wrong.
        reason: String,
    },
    /// Issuing (key generation, signing, encoding) failed.
    #[error("failed to issue {cert}: {reason}")]
    Issue {
        /// The inventory name.
        cert: String,
        /// What failed.
        reason: String,
    },
    /// A bad argument (duration, time, key algorithm, option combination).
    #[error("{0}")]
    InvalidArgument(String),
    /// The Kubernetes certificates API failed, or a request was denied, failed or timed out.
    #[error("{0}")]
    KubeApi(String),
    /// The journal of an interrupted run could not be replayed.
    #[error("recovery of an interrupted run failed: {0}")]
    Recovery(String),
}

impl Error {
    /// Wraps an io::Error with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The inventory name this error is about, when it has one.
    pub fn cert(&self) -> Option<&str> {
        match self {
            Error::UnknownCertificate(n) => Some(n),
            Error::CaMissing { ca, .. }
            | Error::CaKeyMissing { ca, .. }
            | Error::CaExpired { ca, .. }
            | Error::CaNotYetValid { ca, .. }
            | Error::NotACa { ca } => Some(ca),
            Error::Validation { cert, .. }
            | Error::Issue { cert, .. }
            | Error::ForeignIdentity { cert, .. } => Some(cert),
            _ => None,
        }
    }

    /// The path this error is about, when it has one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Io { path, .. }
            | Error::Pem { path, .. }
            | Error::Kubeconfig { path, .. }
            | Error::CaKeyMissing { path, .. }
            | Error::ForeignIdentity { path, .. }
            | Error::Symlink(path) => Some(path),
            Error::CaMissing { dir, .. } | Error::Locked { dir, .. } => Some(dir),
            _ => None,
        }
    }
}

/// Library result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
