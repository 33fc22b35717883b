//! Certificate signatures verified with the issuer's public key parsed into aws-lc once
//! ([`IssuerKey`]) instead of once per signature.
//!
//! Why not only x509-parser's `verify_signature`: it hands the key's bytes to aws-lc-rs's
//! `UnparsedPublicKey`, which parses them into a fresh RSA key for every call, and aws-lc
//! then builds that key's Montgomery context (R² mod n) again before each exponentiation:
//! 25 K of the ~320 K instructions of an RSA-2048 verification (callgrind, bench/RESULTS.md
//! "cli18c"), plus the parse. aws-lc-rs's `ParsedPublicKey` keeps the parsed key (and with
//! it the context aws-lc caches in it), but x509-parser has no entry point taking one, so
//! the choice of the aws-lc algorithm for a signature algorithm is x509-parser 0.18's
//! (`verify.rs`), copied in [`algorithm`]. The verification itself is the same aws-lc call
//! on the same bytes; `issuer_key_equals_x509_parser` compares both on every pair of the
//! fixtures' certificates and on tampered ones.

use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use x509_parser::asn1_rs::{Any, BitString};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_NIST_EC_P384, OID_NIST_HASH_SHA256, OID_NIST_HASH_SHA384,
    OID_NIST_HASH_SHA512, OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA1WITHRSA, OID_PKCS1_SHA256WITHRSA,
    OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA, OID_SHA1_WITH_RSA, OID_SIG_ECDSA_WITH_SHA256,
    OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519,
};
use x509_parser::prelude::{AlgorithmIdentifier, FromDer};
use x509_parser::signature_algorithm::RsaSsaPssParams;
use x509_parser::x509::SubjectPublicKeyInfo;

/// How many signature algorithms' parsed keys one issuer keeps (a kubeadm PKI uses one);
/// beyond that a key is parsed for the call, as x509-parser does.
const MAX_KEPT: usize = 4;

/// A certificate's public key as an issuer: parsed into aws-lc on its first use for a
/// signature algorithm and kept for the next signatures of that algorithm. Not a fact of
/// the certificate: a clone starts empty, any two compare equal (see `CertInfo`).
#[derive(Default)]
pub struct IssuerKey(Mutex<Vec<Kept>>);

/// One signature algorithm's key: the DER of the signature's `AlgorithmIdentifier` and the
/// key parsed for the algorithm it selects (`None`: unsupported, or the key is rejected).
struct Kept {
    alg_der: Vec<u8>,
    key: Option<Arc<ParsedPublicKey>>,
}

impl Clone for IssuerKey {
    fn clone(&self) -> Self {
        IssuerKey::default()
    }
}

impl PartialEq for IssuerKey {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for IssuerKey {}

impl std::fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner).len();
        f.debug_struct("IssuerKey").field("kept", &kept).finish()
    }
}

impl IssuerKey {
    /// Whether `signature` (a BIT STRING's bytes) over `tbs` verifies with the key of
    /// `issuer_spki_der` (the certificate this value belongs to) for the algorithm whose
    /// DER is `alg_der`, what x509-parser's `verify_signature` answers for the same bytes.
    fn verify(
        &self,
        issuer_spki_der: &[u8],
        alg_der: &[u8],
        alg: &AlgorithmIdentifier,
        tbs: &[u8],
        signature: &[u8],
    ) -> bool {
        let key = {
            let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            match kept.iter().find(|k| k.alg_der == alg_der) {
                Some(k) => k.key.clone(),
                None => {
                    let key = parse(issuer_spki_der, alg).map(Arc::new);
                    if kept.len() < MAX_KEPT {
                        kept.push(Kept {
                            alg_der: alg_der.to_vec(),
                            key: key.clone(),
                        });
                    }
                    key
                }
            }
        };
        key.is_some_and(|k| k.verify_sig(tbs, signature).is_ok())
    }
}

/// The issuer's key parsed for the algorithm of `alg`, as `UnparsedPublicKey::verify` parses
/// it (aws-lc-rs's `ParsedPublicKey::new` is the same parse).
fn parse(issuer_spki_der: &[u8], alg: &AlgorithmIdentifier) -> Option<ParsedPublicKey> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(issuer_spki_der).ok()?;
    let a = algorithm(alg, &spki.algorithm)?;
    ParsedPublicKey::new(a, &spki.subject_public_key.data).ok()
}

/// Verifies the signed parts of a certificate: `tail` is the DER after its
/// `tbsCertificate` (`signatureAlgorithm`, `signatureValue`), `issuer` the signer's key.
pub(super) fn verify_parts(
    tbs: &[u8],
    tail: &[u8],
    issuer_spki_der: &[u8],
    issuer: &IssuerKey,
) -> bool {
    let Ok((rest, alg)) = AlgorithmIdentifier::from_der(tail) else {
        return false;
    };
    let Ok((_, sig)) = BitString::from_der(rest) else {
        return false;
    };
    let alg_der = &tail[..tail.len() - rest.len()];
    issuer.verify(issuer_spki_der, alg_der, &alg, tbs, &sig.data)
}

/// The aws-lc algorithm for a signature algorithm and the signer's key algorithm: x509-parser
/// 0.18's `verify_signature` choice, copied (see the module's comment); `None` where it
/// answers `SignatureUnsupportedAlgorithm`.
fn algorithm(
    sig: &AlgorithmIdentifier,
    key: &AlgorithmIdentifier,
) -> Option<&'static dyn VerificationAlgorithm> {
    let oid = &sig.algorithm;
    Some(
        if *oid == OID_PKCS1_SHA1WITHRSA || *oid == OID_SHA1_WITH_RSA {
            &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY
        } else if *oid == OID_PKCS1_SHA256WITHRSA {
            &signature::RSA_PKCS1_2048_8192_SHA256
        } else if *oid == OID_PKCS1_SHA384WITHRSA {
            &signature::RSA_PKCS1_2048_8192_SHA384
        } else if *oid == OID_PKCS1_SHA512WITHRSA {
            &signature::RSA_PKCS1_2048_8192_SHA512
        } else if *oid == OID_PKCS1_RSASSAPSS {
            rsa_pss(sig.parameters.as_ref())?
        } else if *oid == OID_SIG_ECDSA_WITH_SHA256 {
            ec_curve_sha(key, 256)?
        } else if *oid == OID_SIG_ECDSA_WITH_SHA384 {
            ec_curve_sha(key, 384)?
        } else if *oid == OID_SIG_ED25519 {
            &signature::ED25519
        } else {
            return None;
        },
    )
}

/// x509-parser's `get_ec_curve_sha`.
fn ec_curve_sha(
    key: &AlgorithmIdentifier,
    sha_len: usize,
) -> Option<&'static dyn VerificationAlgorithm> {
    let curve = key.parameters.as_ref()?.as_oid().ok()?;
    if curve == OID_EC_P256 {
        match sha_len {
            256 => Some(&signature::ECDSA_P256_SHA256_ASN1),
            384 => Some(&signature::ECDSA_P256_SHA384_ASN1),
            _ => None,
        }
    } else if curve == OID_NIST_EC_P384 {
        match sha_len {
            256 => Some(&signature::ECDSA_P384_SHA256_ASN1),
            384 => Some(&signature::ECDSA_P384_SHA384_ASN1),
            _ => None,
        }
    } else {
        None
    }
}

/// x509-parser's `get_rsa_pss_verification_algo`.
fn rsa_pss(params: Option<&Any>) -> Option<&'static dyn VerificationAlgorithm> {
    let params = RsaSsaPssParams::try_from(params?).ok()?;
    let hash = params.hash_algorithm_oid();
    if *hash == OID_NIST_HASH_SHA256 {
        Some(&signature::RSA_PSS_2048_8192_SHA256)
    } else if *hash == OID_NIST_HASH_SHA384 {
        Some(&signature::RSA_PSS_2048_8192_SHA384)
    } else if *hash == OID_NIST_HASH_SHA512 {
        Some(&signature::RSA_PSS_2048_8192_SHA512)
    } else {
        None
    }
}
