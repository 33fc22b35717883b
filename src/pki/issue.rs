//! Issuing: key generation, leaf signing, self-signed CAs (demo PKIs) and CSRs — with rcgen,
//! plus one splice: the subject (and issuer) Name is copied as DER from the certificate being
//! replaced (and from the CA), then the TBS is re-signed. rcgen's `DistinguishedName` keeps one
//! value per attribute type, which would drop the second `O=` of a multi-group client cert.

use std::net::IpAddr;
use std::str::FromStr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType, SerialNumber, SigningKey,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::der;
use crate::pki::cert::{Cert, CertInfo, KeyFormat, PrivateKey, PublicKeyAlgorithm};

/// kubeadm's `CertificateBackdate`.
pub const BACKDATE_SECONDS: i64 = 5 * 60;
/// kubeadm's default leaf validity (8760h).
pub const DEFAULT_VALIDITY_SECONDS: i64 = 365 * 86400;
/// kubeadm's default CA validity (10 years of 365 days).
pub const CA_VALIDITY_SECONDS: i64 = 10 * 365 * 86400;

/// Key algorithm for new keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum KeyAlgorithm {
    /// The existing key's algorithm and size.
    #[default]
    #[serde(rename = "same")]
    Same,
    /// RSA 2048 (kubeadm's default).
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA 3072.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// RSA 4096.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
    /// ECDSA P-256.
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// ECDSA P-384.
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
}

/// A key algorithm name kubecert does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key algorithm {0:?} (same|rsa-2048|rsa-3072|rsa-4096|ecdsa-p256|ecdsa-p384)")]
pub struct UnknownKeyAlgorithm(pub String);

impl FromStr for KeyAlgorithm {
    type Err = UnknownKeyAlgorithm;
    fn from_str(s: &str) -> Result<Self, UnknownKeyAlgorithm> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "same" => KeyAlgorithm::Same,
            "rsa-2048" | "rsa2048" => KeyAlgorithm::Rsa2048,
            "rsa-3072" | "rsa3072" => KeyAlgorithm::Rsa3072,
            "rsa-4096" | "rsa4096" => KeyAlgorithm::Rsa4096,
            "ecdsa-p256" | "ecdsa" => KeyAlgorithm::EcdsaP256,
            "ecdsa-p384" => KeyAlgorithm::EcdsaP384,
            _ => return Err(UnknownKeyAlgorithm(s.to_string())),
        })
    }
}

impl KeyAlgorithm {
    /// The concrete algorithm: `Same` resolves to the existing key's
    /// ([`CertInfo::key_algorithm`]); one kubecert cannot issue becomes RSA-2048.
    pub fn resolve(self, existing: &PublicKeyAlgorithm) -> KeyAlgorithm {
        if self != KeyAlgorithm::Same {
            return self;
        }
        match existing {
            PublicKeyAlgorithm::Rsa(3072) => KeyAlgorithm::Rsa3072,
            PublicKeyAlgorithm::Rsa(4096) => KeyAlgorithm::Rsa4096,
            PublicKeyAlgorithm::EcdsaP256 => KeyAlgorithm::EcdsaP256,
            PublicKeyAlgorithm::EcdsaP384 => KeyAlgorithm::EcdsaP384,
            _ => KeyAlgorithm::Rsa2048,
        }
    }

    /// The name used in reports (`RSA-2048`).
    pub fn display(self) -> &'static str {
        match self {
            KeyAlgorithm::Same => "same",
            KeyAlgorithm::Rsa2048 => "RSA-2048",
            KeyAlgorithm::Rsa3072 => "RSA-3072",
            KeyAlgorithm::Rsa4096 => "RSA-4096",
            KeyAlgorithm::EcdsaP256 => "ECDSA-P256",
            KeyAlgorithm::EcdsaP384 => "ECDSA-P384",
        }
    }
}

/// Issuing errors (wrapped with the cert name by callers).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// rcgen refused the parameters or key.
    #[error(transparent)]
    Rcgen(#[from] rcgen::Error),
    /// Key export failed.
    #[error("key encoding failed: {0}")]
    KeyEncoding(String),
    /// The DER produced could not be spliced.
    #[error(transparent)]
    Der(#[from] der::DerError),
    /// A SAN value is not representable.
    #[error("invalid SAN {0:?}")]
    BadSan(String),
    /// `Same` was not resolved.
    #[error("key algorithm must be resolved before generating a key")]
    Unresolved,
    /// The system random number generator failed (drawing a serial).
    #[error("the system random number generator failed")]
    Random,
    /// A key just written as PEM does not load back.
    #[error(transparent)]
    Reload(crate::error::PemError),
}

/// A fresh key as kubecert writes it: the PKCS#8 PEM that goes to disk and the key loaded
/// back from that very PEM, so what is signed and checked with is exactly what is written.
pub fn new_key(alg: KeyAlgorithm) -> Result<(PrivateKey, String), IssueError> {
    let kp = generate_key(alg)?;
    let pem = key_pem(&kp, KeyFormat::Pkcs8)?;
    let key = crate::pki::cert::parse_private_key(pem.as_bytes()).map_err(IssueError::Reload)?;
    Ok((key, pem))
}

/// Starts seeding aws-lc's random generator on a background thread (once per process), so
/// that its one-time seeding from CPU jitter entropy (~30-60 ms of CPU, the bulk of an
/// ECDSA `renew all`: issue 18 item 4) runs while the caller reads and plans on the other
/// core instead of after it, in the first key generation. Only a warm-up: nothing is kept,
/// a failure is left for the key generation to report.
pub fn seed_rng_in_background() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("rng-seed".into())
            .spawn(|| {
                let mut b = [0u8; 1];
                let _ = aws_lc_rs::rand::fill(&mut b);
            });
    });
}

/// Generates a fresh private key.
pub fn generate_key(alg: KeyAlgorithm) -> Result<KeyPair, IssueError> {
    Ok(match alg {
        KeyAlgorithm::Same => return Err(IssueError::Unresolved),
        KeyAlgorithm::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)?
        }
        KeyAlgorithm::Rsa3072 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072)?
        }
        KeyAlgorithm::Rsa4096 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_4096)?
        }
        KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        KeyAlgorithm::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?,
    })
}

/// PEM of a key as kubeadm writes it: `RSA PRIVATE KEY` (PKCS#1) or `EC PRIVATE KEY` (SEC1).
/// `format` says how the pair's DER is encoded (generated keys are PKCS#8).
pub fn key_pem(pair: &KeyPair, format: KeyFormat) -> Result<String, IssueError> {
    let der = pair.serialized_der();
    let is_rsa = pair.is_compatible(&rcgen::PKCS_RSA_SHA256);
    let (label, body): (&str, Vec<u8>) = match (format, is_rsa) {
        (KeyFormat::Pkcs1, _) => ("RSA PRIVATE KEY", der.to_vec()),
        (KeyFormat::Sec1, _) => ("EC PRIVATE KEY", der.to_vec()),
        (KeyFormat::Pkcs8, true) => {
            use pkcs8::der::Decode;
            let pki = pkcs8::PrivateKeyInfo::from_der(der)
                .map_err(|e| IssueError::KeyEncoding(e.to_string()))?;
            ("RSA PRIVATE KEY", pki.private_key.to_vec())
        }
        (KeyFormat::Pkcs8, false) => {
            use aws_lc_rs::encoding::AsDer;
            let alg = if pair.is_compatible(&rcgen::PKCS_ECDSA_P384_SHA384) {
                &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING
            } else {
                &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING
            };
            let kp = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(alg, der)
                .map_err(|e| IssueError::KeyEncoding(e.to_string()))?;
            let sec1 = kp
                .private_key()
                .as_der()
                .map_err(|e| IssueError::KeyEncoding(e.to_string()))?;
            ("EC PRIVATE KEY", sec1.as_ref().to_vec())
        }
    };
    Ok(pem_lf(&::pem::Pem::new(label, body)))
}

/// PEM with `\n` line endings, as Go's encoding/pem writes it (the pem crate defaults to CRLF).
pub fn pem_lf(p: &::pem::Pem) -> String {
    ::pem::encode_config(
        p,
        ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
    )
}

/// PEM of a certificate DER.
pub fn cert_pem(der: &[u8]) -> String {
    pem_lf(&::pem::Pem::new("CERTIFICATE", der.to_vec()))
}

/// What a new leaf certificate says about its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSpec {
    /// The subject Name DER, copied verbatim.
    pub subject_der: Vec<u8>,
    /// DNS SANs (will be sorted and de-duplicated as kubeadm does).
    pub dns_names: Vec<String>,
    /// IP SANs (de-duplicated, order kept).
    pub ip_addresses: Vec<IpAddr>,
    /// URI SANs.
    pub uris: Vec<String>,
    /// Email SANs.
    pub emails: Vec<String>,
    /// Extended key usages (`serverAuth`, `clientAuth`, dotted OIDs).
    pub ext_key_usage: Vec<String>,
    /// NotBefore, Unix seconds.
    pub not_before: i64,
    /// NotAfter, Unix seconds.
    pub not_after: i64,
}

impl LeafSpec {
    /// A spec carrying every attribute of an existing certificate, with a new validity.
    pub fn from_existing(info: &CertInfo, not_before: i64, not_after: i64) -> Self {
        LeafSpec {
            subject_der: info.subject_der.clone(),
            dns_names: info.dns_names.clone(),
            ip_addresses: info.ip_addresses.clone(),
            uris: info.uris.clone(),
            emails: info.emails.clone(),
            ext_key_usage: info.ext_key_usage.clone(),
            not_before,
            not_after,
        }
    }

    /// kubeadm's `RemoveDuplicateAltNames`: DNS sorted+deduped, IPs deduped in order.
    pub fn normalize(&mut self) {
        self.dns_names.sort();
        self.dns_names.dedup();
        let mut seen = Vec::new();
        self.ip_addresses.retain(|ip| {
            if seen.contains(ip) {
                false
            } else {
                seen.push(*ip);
                true
            }
        });
    }

    fn sans(&self) -> Result<Vec<SanType>, IssueError> {
        let ia5 = |s: &str| {
            rcgen::string::Ia5String::try_from(s.to_string())
                .map_err(|_| IssueError::BadSan(s.to_string()))
        };
        let mut v = Vec::new();
        for d in &self.dns_names {
            v.push(SanType::DnsName(ia5(d)?));
        }
        for ip in &self.ip_addresses {
            v.push(SanType::IpAddress(*ip));
        }
        for u in &self.uris {
            v.push(SanType::URI(ia5(u)?));
        }
        for e in &self.emails {
            v.push(SanType::Rfc822Name(ia5(e)?));
        }
        Ok(v)
    }

    fn ekus(&self) -> Vec<ExtendedKeyUsagePurpose> {
        self.ext_key_usage
            .iter()
            .map(|u| match u.as_str() {
                "serverAuth" => ExtendedKeyUsagePurpose::ServerAuth,
                "clientAuth" => ExtendedKeyUsagePurpose::ClientAuth,
                "codeSigning" => ExtendedKeyUsagePurpose::CodeSigning,
                "emailProtection" => ExtendedKeyUsagePurpose::EmailProtection,
                "timeStamping" => ExtendedKeyUsagePurpose::TimeStamping,
                "OCSPSigning" => ExtendedKeyUsagePurpose::OcspSigning,
                "any" => ExtendedKeyUsagePurpose::Any,
                other => ExtendedKeyUsagePurpose::Other(
                    other.split('.').filter_map(|p| p.parse().ok()).collect(),
                ),
            })
            .collect()
    }
}

/// Builds a Name DER the way Go's `pkix.Name` does for kubeadm subjects: O values then CN,
/// one attribute per RDN, PrintableString when possible, else UTF8String.
pub fn name_der(common_name: &str, organizations: &[&str]) -> Vec<u8> {
    fn attr(oid: &[u8], value: &str) -> Vec<u8> {
        let printable = value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c));
        let tag = if printable { 0x13 } else { 0x0c };
        let atv = der::sequence(&[&der::encode(0x06, oid), &der::encode(tag, value.as_bytes())]);
        der::encode(0x31, &atv)
    }
    const OID_O: &[u8] = &[0x55, 0x04, 0x0a];
    const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
    let mut rdns: Vec<Vec<u8>> = organizations.iter().map(|o| attr(OID_O, o)).collect();
    rdns.push(attr(OID_CN, common_name));
    let parts: Vec<&[u8]> = rdns.iter().map(Vec::as_slice).collect();
    der::sequence(&parts)
}

fn offset(unix: i64) -> ::time::OffsetDateTime {
    ::time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(::time::OffsetDateTime::UNIX_EPOCH)
}

/// A random serial in [1, 2^63), as kubeadm draws it.
pub fn random_serial() -> Result<Vec<u8>, IssueError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; 8];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| IssueError::Random)?;
    // First byte in 1..=0x7f: positive, minimal DER, never zero.
    b[0] = (b[0] & 0x7f).max(1);
    Ok(b.to_vec())
}

fn placeholder_dn() -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kubecert-placeholder");
    dn
}

/// Replaces TBS element `idx` values and re-signs with `key`; returns the new outer DER.
fn splice_and_resign(
    signed: &[u8],
    replacements: &[(usize, &[u8])],
    key: &impl SigningKey,
) -> Result<Vec<u8>, IssueError> {
    let (outer, _) = der::read(signed)?;
    let parts = der::children(outer.content)?;
    let [tbs, alg, _sig] = parts.as_slice() else {
        return Err(der::DerError::Unexpected("signed object is not tbs/alg/signature").into());
    };
    let fields = der::children(tbs.content)?;
    let mut new_fields: Vec<&[u8]> = fields.iter().map(|f| f.raw).collect();
    for (idx, bytes) in replacements {
        let slot = new_fields
            .get_mut(*idx)
            .ok_or(der::DerError::Unexpected("TBS too short"))?;
        *slot = bytes;
    }
    let new_tbs = der::sequence(&new_fields);
    let sig = key.sign(&new_tbs)?;
    Ok(der::sequence(&[&new_tbs, alg.raw, &der::bit_string(&sig)]))
}

/// Stands in for a signing key where rcgen builds a structure whose signature is thrown away
/// ([`splice_and_resign`] signs the spliced TBS itself, `resign_ca` keeps two fields of a
/// scratch certificate): the key's public key and algorithm (so the same
/// SubjectPublicKeyInfo and signature AlgorithmIdentifier as with the key), and an empty
/// signature. One signature per certificate instead of two: an RSA-2048 signature is ~1 ms
/// of CPU, 11 of them ~1-2 % of an RSA `renew all` (issue 18 item 4).
struct TbsOnly<'a, K: ?Sized>(&'a K);

impl<K: rcgen::PublicKeyData + ?Sized> rcgen::PublicKeyData for TbsOnly<'_, K> {
    fn der_bytes(&self) -> &[u8] {
        self.0.der_bytes()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.0.algorithm()
    }

    fn subject_public_key_info(&self) -> Vec<u8> {
        self.0.subject_public_key_info()
    }
}

impl<K: rcgen::PublicKeyData + ?Sized> SigningKey for TbsOnly<'_, K> {
    fn sign(&self, _msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(Vec::new())
    }
}

/// A CA able to sign: its certificate and private key.
pub struct CaSigner<'a> {
    /// The CA certificate.
    pub cert: &'a Cert,
    /// The CA private key.
    pub key: &'a PrivateKey,
}

/// Signs a leaf for `leaf_key` under `ca`. Key usage and basic constraints are kubeadm's
/// (digitalSignature+keyEncipherment critical, CA:FALSE critical); AKI is the CA's SKI when the
/// CA has one (as Go sets it); SKI derived from the new key; random positive serial.
pub fn sign_leaf(
    spec: &LeafSpec,
    leaf_key: &KeyPair,
    ca: &CaSigner<'_>,
) -> Result<Vec<u8>, IssueError> {
    sign_leaf_for(
        spec,
        leaf_key,
        &[
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ],
        ca,
    )
}

/// [`sign_leaf`] for any public key (e.g. the one of a CSR, via
/// `rcgen::SubjectPublicKeyInfo::from_der`) with the given key usages (critical; none →
/// no keyUsage extension).
pub fn sign_leaf_for(
    spec: &LeafSpec,
    leaf_key: &impl rcgen::PublicKeyData,
    key_usages: &[KeyUsagePurpose],
    ca: &CaSigner<'_>,
) -> Result<Vec<u8>, IssueError> {
    sign_leaf_with(spec, leaf_key, key_usages, ca.cert, &ca.key.pair)
}

/// [`sign_leaf_for`] with the CA's signing key given apart (a test counts its signatures).
fn sign_leaf_with(
    spec: &LeafSpec,
    leaf_key: &impl rcgen::PublicKeyData,
    key_usages: &[KeyUsagePurpose],
    ca_cert: &Cert,
    ca_key: &impl SigningKey,
) -> Result<Vec<u8>, IssueError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = placeholder_dn();
    p.subject_alt_names = spec.sans()?;
    p.extended_key_usages = spec.ekus();
    p.key_usages = key_usages.to_vec();
    p.is_ca = IsCa::ExplicitNoCa;
    p.not_before = offset(spec.not_before);
    p.not_after = offset(spec.not_after);
    p.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    p.use_authority_key_identifier_extension = ca_cert.info.subject_key_id.is_some();
    let mut ip = CertificateParams::default();
    ip.distinguished_name = placeholder_dn();
    ip.key_identifier_method =
        KeyIdMethod::PreSpecified(ca_cert.info.subject_key_id.clone().unwrap_or_default());
    let issuer = Issuer::new(ip, TbsOnly(ca_key));
    let signed = p.signed_by(leaf_key, &issuer)?;
    // TBS: 0 version, 1 serial, 2 signature, 3 issuer, 4 validity, 5 subject, 6 spki, 7 exts
    splice_and_resign(
        signed.der(),
        &[(3, &ca_cert.info.subject_der), (5, &spec.subject_der)],
        ca_key,
    )
}

/// Makes a self-signed CA as kubeadm's `NewSelfSignedCACert` does: SAN DNS = CN,
/// KU digitalSignature+keyEncipherment+keyCertSign, CA:TRUE, SKI.
pub fn self_signed_ca(
    common_name: &str,
    key: &KeyPair,
    not_before: i64,
    not_after: i64,
) -> Result<Vec<u8>, IssueError> {
    let subject = name_der(common_name, &[]);
    self_signed_ca_named(
        &subject,
        &[common_name.to_string()],
        key,
        not_before,
        not_after,
    )
}

/// [`self_signed_ca`] with a given subject Name (DER, copied verbatim, e.g. the subject of
/// the CA a rotation replaces) and DNS SANs.
pub fn self_signed_ca_named(
    subject_der: &[u8],
    dns_names: &[String],
    key: &KeyPair,
    not_before: i64,
    not_after: i64,
) -> Result<Vec<u8>, IssueError> {
    let mut p = CertificateParams::new(dns_names.to_vec())?;
    p.distinguished_name = placeholder_dn();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    p.not_before = offset(not_before);
    p.not_after = offset(not_after);
    p.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    p.key_identifier_method = KeyIdMethod::Sha256;
    let c = p.self_signed(&TbsOnly(key))?;
    splice_and_resign(c.der(), &[(3, subject_der), (5, subject_der)], key)
}

/// Re-issues a self-signed CA certificate with its own key: the TBS of `ca.cert` is kept
/// byte for byte (version, signature algorithm, issuer, subject, SubjectPublicKeyInfo and
/// every extension: SKI, AKI, basic constraints, key usage, SANs) except the serial and the
/// validity, which rcgen encodes (a throwaway certificate of the same key supplies both
/// fields), then the TBS is signed again by the same key.
///
/// Why not `CertificateParams::from_ca_cert_der` + `self_signed`: rcgen re-encodes the
/// subject through `DistinguishedName` (one value per attribute type, its own string types)
/// and writes its own extension set and order, so the "same subject, same extensions"
/// promise of a same-key renewal would rest on rcgen's round trip; the unit test
/// `resigned_ca_keeps_every_other_field` pins the byte-level promise instead.
pub fn resign_ca(
    ca: &CaSigner<'_>,
    not_before: i64,
    not_after: i64,
) -> Result<Vec<u8>, IssueError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = placeholder_dn();
    p.not_before = offset(not_before);
    p.not_after = offset(not_after);
    p.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    let scratch = p.self_signed(&TbsOnly(&ca.key.pair))?;
    let (outer, _) = der::read(scratch.der())?;
    let parts = der::children(outer.content)?;
    let tbs = parts.first().ok_or(der::DerError::Unexpected("no TBS"))?;
    let fields = der::children(tbs.content)?;
    let (Some(serial), Some(validity)) = (fields.get(1), fields.get(4)) else {
        return Err(der::DerError::Unexpected("TBS too short").into());
    };
    // The original must be a v3 TBS ([0] version first), so that 1 and 4 are serial and
    // validity there too.
    let (orig, _) = der::read(&ca.cert.der)?;
    let oparts = der::children(orig.content)?;
    let ofields = der::children(oparts.first().map(|t| t.content).unwrap_or_default())?;
    if ofields.first().map(|f| f.tag) != Some(0xa0) {
        return Err(der::DerError::Unexpected("not an X.509 v3 certificate").into());
    }
    splice_and_resign(
        &ca.cert.der,
        &[(1, serial.raw), (4, validity.raw)],
        &ca.key.pair,
    )
}

/// Builds a PKCS#10 CSR with the spec's subject (verbatim) and SANs. Like kubeadm's
/// `NewCSR` it requests no usages unless `request_usages` is set.
pub fn csr_der(
    spec: &LeafSpec,
    key: &KeyPair,
    request_usages: bool,
) -> Result<Vec<u8>, IssueError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = placeholder_dn();
    p.subject_alt_names = spec.sans()?;
    if request_usages {
        p.extended_key_usages = spec.ekus();
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
    }
    let csr = p.serialize_request(&TbsOnly(key))?;
    // CertificationRequestInfo: 0 version, 1 subject, 2 spki, 3 attributes
    splice_and_resign(csr.der(), &[(1, &spec.subject_der)], key)
}

/// PEM of a CSR DER.
pub fn csr_pem(der: &[u8]) -> String {
    pem_lf(&::pem::Pem::new("CERTIFICATE REQUEST", der.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::cert::{parse_der, parse_private_key};

    fn ca() -> (Cert, PrivateKey) {
        let key = generate_key(KeyAlgorithm::Rsa2048).unwrap();
        let der = self_signed_ca("kubernetes", &key, 0, 4_000_000_000).unwrap();
        let pem = key_pem(&key, KeyFormat::Pkcs8).unwrap();
        let pk = parse_private_key(pem.as_bytes()).unwrap();
        let info = parse_der(&der).unwrap();
        (
            Cert {
                der,
                chain: vec![],
                info,
            },
            pk,
        )
    }

    #[test]
    fn repeated_organizations_survive_renewal() {
        let (ca_cert, ca_key) = ca();
        assert!(ca_cert.info.is_ca);
        let subject = name_der(
            "kube-apiserver-kubelet-client",
            &["system:masters", "kubeadm:cluster-admins"],
        );
        let spec = LeafSpec {
            subject_der: subject.clone(),
            dns_names: vec!["b".into(), "a".into(), "b".into()],
            ip_addresses: vec!["10.0.0.1".parse().unwrap(), "10.0.0.1".parse().unwrap()],
            uris: vec!["spiffe://x/y".into()],
            emails: vec![],
            ext_key_usage: vec!["clientAuth".into()],
            not_before: 1_000_000_000,
            not_after: 1_100_000_000,
        };
        let mut spec2 = spec.clone();
        spec2.normalize();
        assert_eq!(spec2.dns_names, ["a", "b"]);
        assert_eq!(spec2.ip_addresses.len(), 1);
        let leaf_key = generate_key(KeyAlgorithm::EcdsaP256).unwrap();
        let der = sign_leaf(
            &spec2,
            &leaf_key,
            &CaSigner {
                cert: &ca_cert,
                key: &ca_key,
            },
        )
        .unwrap();
        let info = parse_der(&der).unwrap();
        assert_eq!(
            info.organizations,
            ["system:masters", "kubeadm:cluster-admins"]
        );
        assert_eq!(info.subject_der, subject);
        assert_eq!(info.issuer_der, ca_cert.info.subject_der);
        assert_eq!(info.uris, ["spiffe://x/y"]);
        assert_eq!(info.ext_key_usage, ["clientAuth"]);
        assert_eq!(info.key_usage, ["digitalSignature", "keyEncipherment"]);
        assert!(!info.is_ca);
        assert_eq!(info.not_after, 1_100_000_000);
        assert!(crate::pki::cert::signed_by(&der, &ca_cert.der));
        assert_eq!(info.key_algorithm, PublicKeyAlgorithm::EcdsaP256);
    }

    #[test]
    fn resigned_ca_keeps_every_other_field() {
        let (ca_cert, ca_key) = ca();
        let signer = CaSigner {
            cert: &ca_cert,
            key: &ca_key,
        };
        let new = resign_ca(&signer, 2_000_000_000, 2_300_000_000).unwrap();
        let tbs_fields = |d: &[u8]| -> Vec<Vec<u8>> {
            let (o, _) = der::read(d).unwrap();
            let parts = der::children(o.content).unwrap();
            der::children(parts[0].content)
                .unwrap()
                .iter()
                .map(|f| f.raw.to_vec())
                .collect()
        };
        let (a, b) = (tbs_fields(&ca_cert.der), tbs_fields(&new));
        assert_eq!(a.len(), b.len());
        for i in [0, 2, 3, 5, 6, 7] {
            assert_eq!(a[i], b[i], "TBS field {i} changed");
        }
        assert_ne!(a[1], b[1], "serial");
        let info = parse_der(&new).unwrap();
        assert_eq!(info.not_after, 2_300_000_000);
        assert_eq!(info.not_before, 2_000_000_000);
        assert!(crate::pki::cert::signed_by(&new, &new));
        assert!(crate::pki::cert::signed_by(&new, &ca_cert.der));
    }

    #[test]
    fn key_pem_labels_like_kubeadm() {
        let rsa = generate_key(KeyAlgorithm::Rsa2048).unwrap();
        let pem = key_pem(&rsa, KeyFormat::Pkcs8).unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let back = parse_private_key(pem.as_bytes()).unwrap();
        assert_eq!(back.format, KeyFormat::Pkcs1);
        use rcgen::PublicKeyData;
        assert_eq!(back.spki_der(), rsa.subject_public_key_info());
        let ec = generate_key(KeyAlgorithm::EcdsaP384).unwrap();
        let pem = key_pem(&ec, KeyFormat::Pkcs8).unwrap();
        assert!(pem.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        let back = parse_private_key(pem.as_bytes()).unwrap();
        assert_eq!(back.spki_der(), ec.subject_public_key_info());
    }

    /// A signing key that counts its signatures.
    struct Counting<'a>(&'a KeyPair, std::cell::Cell<usize>);
    impl rcgen::PublicKeyData for Counting<'_> {
        fn der_bytes(&self) -> &[u8] {
            self.0.der_bytes()
        }
        fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
            rcgen::PublicKeyData::algorithm(self.0)
        }
    }
    impl SigningKey for Counting<'_> {
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
            self.1.set(self.1.get() + 1);
            self.0.sign(msg)
        }
    }

    /// A leaf costs the CA one signature (rcgen's own, over a TBS that is spliced and signed
    /// again, is not made), and that signature verifies with the CA certificate.
    #[test]
    fn a_leaf_is_signed_once_by_its_ca() {
        let (ca_cert, ca_key) = ca();
        let counting = Counting(&ca_key.pair, std::cell::Cell::new(0));
        let spec = LeafSpec {
            subject_der: name_der("kube-apiserver", &[]),
            dns_names: vec!["a".into()],
            ip_addresses: vec![],
            uris: vec![],
            emails: vec![],
            ext_key_usage: vec!["serverAuth".into()],
            not_before: 1_000_000_000,
            not_after: 1_100_000_000,
        };
        let leaf_key = generate_key(KeyAlgorithm::EcdsaP256).unwrap();
        let der = sign_leaf_with(
            &spec,
            &leaf_key,
            &[KeyUsagePurpose::DigitalSignature],
            &ca_cert,
            &counting,
        )
        .unwrap();
        assert_eq!(counting.1.get(), 1, "CA signatures per leaf");
        assert!(crate::pki::cert::signed_by(&der, &ca_cert.der));
        let info = parse_der(&der).unwrap();
        assert_eq!(info.subject_der, spec.subject_der);
        assert_eq!(info.issuer_der, ca_cert.info.subject_der);
    }

    #[test]
    fn serials_positive_and_nonzero() {
        for _ in 0..200 {
            let s = random_serial().expect("system RNG");
            assert_eq!(s.len(), 8);
            assert!(s[0] >= 1 && s[0] < 0x80);
        }
    }
}
