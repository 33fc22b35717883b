//! Reading certificates and private keys: PEM bundles (first cert is the leaf), keys in
//! PKCS#1, PKCS#8 and SEC1 (RSA and ECDSA), key ↔ cert match, and signature checks that find
//! a leaf's issuer by signature rather than by subject (kubeadm 1.11 gave all three CAs the
//! same subject `CN=kubernetes`).

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use crate::error::{Error, PemError};

mod verify;

pub use verify::IssuerKey;

/// An owned, parsed certificate: the DER plus the facts kubecert needs.
#[derive(Clone)]
pub struct Cert {
    /// The DER of the leaf (first certificate of the file).
    pub der: Vec<u8>,
    /// The DER of any further certificates in the same file (a chain).
    pub chain: Vec<Vec<u8>>,
    /// Parsed facts.
    pub info: CertInfo,
}

impl fmt::Debug for Cert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cert")
            .field("subject", &self.info.subject)
            .field("serial", &self.info.serial)
            .finish()
    }
}

/// Facts read from a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// Subject in RFC 4514-like form as x509-parser prints it.
    pub subject: String,
    /// The subject's DER (a Name), kept verbatim for renewals.
    pub subject_der: Vec<u8>,
    /// Issuer as text.
    pub issuer: String,
    /// The issuer's DER.
    pub issuer_der: Vec<u8>,
    /// Common name, if any.
    pub common_name: Option<String>,
    /// Every `O=` value in order.
    pub organizations: Vec<String>,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Serial number in decimal, as Go's `big.Int.String()` prints it (the big-endian bytes
    /// read unsigned, like x509-parser).
    pub serial_decimal: String,
    /// NotBefore, Unix seconds.
    pub not_before: i64,
    /// NotAfter, Unix seconds.
    pub not_after: i64,
    /// DNS SANs in certificate order.
    pub dns_names: Vec<String>,
    /// IP SANs in certificate order.
    pub ip_addresses: Vec<IpAddr>,
    /// URI SANs.
    pub uris: Vec<String>,
    /// Email SANs.
    pub emails: Vec<String>,
    /// Extended key usages (`serverAuth`, `clientAuth`, or dotted OIDs).
    pub ext_key_usage: Vec<String>,
    /// Key usage bits by name (`digitalSignature`, ...).
    pub key_usage: Vec<String>,
    /// basicConstraints CA flag.
    pub is_ca: bool,
    /// The public key's algorithm (shown as `RSA-2048`, `ECDSA-P256`, ...).
    pub key_algorithm: PublicKeyAlgorithm,
    /// SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
    /// Subject key identifier, if present.
    pub subject_key_id: Option<Vec<u8>>,
    /// What verifying this certificate's signature needs, kept from the one parse
    /// ([`parse_der`]) so that [`CertInfo::signed_by_spki`] does not parse the certificate
    /// again. Not a fact: not serialized, equal for any two values (see [`Signed`]).
    #[serde(skip)]
    pub signed: Signed,
    /// This certificate's public key as an issuer, parsed once for the signatures it is
    /// asked to verify ([`CertInfo::signed_by`]). Not a fact: not serialized, empty in a
    /// clone, equal for any two values.
    #[serde(skip)]
    pub issuer_key: IssuerKey,
}

/// The signed parts of a certificate: its `tbsCertificate` bytes and what follows them
/// (the DER of its `signatureAlgorithm` and `signatureValue`), read again the way
/// x509-parser's certificate parser reads them. Empty when the [`CertInfo`] was not parsed
/// from DER (deserialized): then [`CertInfo::signed_by`] parses the DER it is given.
#[derive(Debug, Clone, Default)]
pub struct Signed {
    tbs: Vec<u8>,
    tail: Vec<u8>,
}

/// Derived from the DER, not a fact of the certificate: [`CertInfo`]'s equality stays
/// that of its facts (a deserialized value equals the parsed one).
impl PartialEq for Signed {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Signed {}

impl CertInfo {
    /// Whether the cert is valid at `now` (Unix seconds).
    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// [`CertInfo::san_strings`] as a set: SANs compared as sets, as kubeadm's renewal keeps
    /// them.
    pub fn san_set(&self) -> BTreeSet<String> {
        self.san_strings().into_iter().collect()
    }

    /// The SANs as strings, prefixed by type (`DNS:x`, `IP:1.2.3.4`, `URI:..`, `email:..`).
    pub fn san_strings(&self) -> Vec<String> {
        let mut v: Vec<String> = self.dns_names.iter().map(|d| format!("DNS:{d}")).collect();
        v.extend(self.ip_addresses.iter().map(|i| format!("IP:{i}")));
        v.extend(self.uris.iter().map(|u| format!("URI:{u}")));
        v.extend(self.emails.iter().map(|e| format!("email:{e}")));
        v
    }
}

/// The SANs of a certificate or a request, by kind: the one reading of a `subjectAltName`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sans {
    /// DNS names.
    pub dns_names: Vec<String>,
    /// IP addresses (4 or 16 bytes).
    pub ip_addresses: Vec<IpAddr>,
    /// URIs.
    pub uris: Vec<String>,
    /// Email addresses.
    pub emails: Vec<String>,
    /// Everything else, described (`IP:<5 bytes>`, `other:...`).
    pub other: Vec<String>,
}

impl Sans {
    /// Sorts `names` by kind.
    pub fn read(names: &[GeneralName<'_>]) -> Sans {
        let mut s = Sans::default();
        for gn in names {
            match gn {
                GeneralName::DNSName(d) => s.dns_names.push(d.to_string()),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        s.ip_addresses.push(IpAddr::from(a));
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        s.ip_addresses.push(IpAddr::from(a));
                    } else {
                        s.other.push(format!("IP:<{} bytes>", b.len()));
                    }
                }
                GeneralName::URI(u) => s.uris.push(u.to_string()),
                GeneralName::RFC822Name(e) => s.emails.push(e.to_string()),
                other => s.other.push(format!("other:{other}")),
            }
        }
        s
    }
}

/// How two SAN sets differ: `(in old only, in new only)`, each sorted; both empty when equal.
pub fn san_difference<'a>(
    old: &'a BTreeSet<String>,
    new: &'a BTreeSet<String>,
) -> (Vec<&'a str>, Vec<&'a str>) {
    (
        old.difference(new).map(String::as_str).collect(),
        new.difference(old).map(String::as_str).collect(),
    )
}

fn eku_names(eku: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let mut v = Vec::new();
    if eku.any {
        v.push("any".to_string());
    }
    if eku.server_auth {
        v.push("serverAuth".to_string());
    }
    if eku.client_auth {
        v.push("clientAuth".to_string());
    }
    if eku.code_signing {
        v.push("codeSigning".to_string());
    }
    if eku.email_protection {
        v.push("emailProtection".to_string());
    }
    if eku.time_stamping {
        v.push("timeStamping".to_string());
    }
    if eku.ocsp_signing {
        v.push("OCSPSigning".to_string());
    }
    for o in &eku.other {
        v.push(o.to_id_string());
    }
    v
}

/// The algorithm (and size or curve) of a certificate's public key. Serialized as its display
/// name (`RSA-2048`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum PublicKeyAlgorithm {
    /// RSA with a modulus of this many bits.
    Rsa(usize),
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// ECDSA on NIST P-521.
    EcdsaP521,
    /// ECDSA on another named curve (its OID, dotted).
    EcdsaOther(String),
    /// ECDSA without curve parameters.
    EcdsaUnnamed,
    /// Another algorithm (its OID, dotted).
    Other(String),
    /// The key does not parse.
    Unknown,
}

impl std::fmt::Display for PublicKeyAlgorithm {
    /// `RSA-2048`, `ECDSA-P256`, ...: the names reports have always used.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublicKeyAlgorithm::Rsa(bits) => write!(f, "RSA-{bits}"),
            PublicKeyAlgorithm::EcdsaP256 => f.write_str("ECDSA-P256"),
            PublicKeyAlgorithm::EcdsaP384 => f.write_str("ECDSA-P384"),
            PublicKeyAlgorithm::EcdsaP521 => f.write_str("ECDSA-P521"),
            PublicKeyAlgorithm::EcdsaOther(oid) => write!(f, "ECDSA-{oid}"),
            PublicKeyAlgorithm::EcdsaUnnamed => f.write_str("ECDSA"),
            PublicKeyAlgorithm::Other(oid) => f.write_str(oid),
            PublicKeyAlgorithm::Unknown => f.write_str("unknown"),
        }
    }
}

impl From<PublicKeyAlgorithm> for String {
    fn from(a: PublicKeyAlgorithm) -> String {
        a.to_string()
    }
}

impl From<String> for PublicKeyAlgorithm {
    /// The inverse of `Display`.
    fn from(s: String) -> PublicKeyAlgorithm {
        if let Some(bits) = s.strip_prefix("RSA-").and_then(|b| b.parse().ok()) {
            return PublicKeyAlgorithm::Rsa(bits);
        }
        match s.as_str() {
            "ECDSA-P256" => PublicKeyAlgorithm::EcdsaP256,
            "ECDSA-P384" => PublicKeyAlgorithm::EcdsaP384,
            "ECDSA-P521" => PublicKeyAlgorithm::EcdsaP521,
            "ECDSA" => PublicKeyAlgorithm::EcdsaUnnamed,
            "unknown" => PublicKeyAlgorithm::Unknown,
            _ => match s.strip_prefix("ECDSA-") {
                Some(oid) => PublicKeyAlgorithm::EcdsaOther(oid.to_string()),
                None => PublicKeyAlgorithm::Other(s),
            },
        }
    }
}

fn key_algorithm(x: &X509Certificate<'_>) -> PublicKeyAlgorithm {
    use x509_parser::public_key::PublicKey;
    let spki = x.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => PublicKeyAlgorithm::Rsa(rsa.key_size()),
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => PublicKeyAlgorithm::EcdsaP256,
                Some("1.3.132.0.34") => PublicKeyAlgorithm::EcdsaP384,
                Some("1.3.132.0.35") => PublicKeyAlgorithm::EcdsaP521,
                Some(o) => PublicKeyAlgorithm::EcdsaOther(o.to_string()),
                None => PublicKeyAlgorithm::EcdsaUnnamed,
            }
        }
        Ok(_) => PublicKeyAlgorithm::Other(spki.algorithm.algorithm.to_id_string()),
        Err(_) => PublicKeyAlgorithm::Unknown,
    }
}

/// The first value of each of C, ST, L, O, OU and CN of a distinguished name, keyed by
/// those short names (x509-certificate-exporter's `subject_*`/`issuer_*` labels).
///
/// Values are what x509-parser's `Display` of the name shows: string types as text, other
/// types as upper-case hex. A name x509-parser cannot display (a value that is not valid
/// UTF-8, for one) gives no fields, and so does DER that is not a name.
pub fn dn_fields(name_der: &[u8]) -> std::collections::BTreeMap<&'static str, String> {
    use x509_parser::der_parser::asn1_rs::{BmpString, Tag};
    use x509_parser::oid_registry as oids;
    let mut out = std::collections::BTreeMap::new();
    let Ok((_, name)) = x509_parser::x509::X509Name::from_der(name_der) else {
        return out;
    };
    for attr in name.iter_attributes() {
        let v = attr.attr_value();
        let text = match v.tag() {
            Tag::NumericString
            | Tag::VisibleString
            | Tag::PrintableString
            | Tag::GeneralString
            | Tag::ObjectDescriptor
            | Tag::GraphicString
            | Tag::T61String
            | Tag::VideotexString
            | Tag::Utf8String
            | Tag::Ia5String => std::str::from_utf8(v.data).ok().map(str::to_string),
            Tag::BmpString => BmpString::try_from(v.clone()).ok().map(|s| s.string()),
            _ => Some(hex::encode_upper(v.as_bytes())),
        };
        let Some(text) = text else {
            // x509-parser displays no part of such a name.
            return std::collections::BTreeMap::new();
        };
        let key = match attr.attr_type() {
            t if *t == oids::OID_X509_COUNTRY_NAME => "C",
            t if *t == oids::OID_X509_STATE_OR_PROVINCE_NAME => "ST",
            t if *t == oids::OID_X509_LOCALITY_NAME => "L",
            t if *t == oids::OID_X509_ORGANIZATION_NAME => "O",
            t if *t == oids::OID_X509_ORGANIZATIONAL_UNIT => "OU",
            t if *t == oids::OID_X509_COMMON_NAME => "CN",
            _ => continue,
        };
        out.entry(key).or_insert(text);
    }
    out
}

/// A name as x509-parser's `Display` prints it (`X509Name::to_string`). That builds
/// x509-parser's whole OID registry on its first use in a process (~0.15 M instructions,
/// callgrind: a seventh of `check`'s work outside signatures, parsing and YAML), only to
/// name attribute types its abbreviation table does not name; for a name made of those
/// types only (CN, C, L, ST, O, OU, DC, Email: every kubeadm name) the registry is never
/// read, so an empty one prints the same text. Tested equal to `to_string` on every fixture
/// name and on names with other types (`name_text_equals_x509_parser_display`).
fn name_text(name: &x509_parser::x509::X509Name) -> String {
    use x509_parser::oid_registry::{
        OidRegistry, OID_DOMAIN_COMPONENT, OID_PKCS9_EMAIL_ADDRESS, OID_X509_COMMON_NAME,
        OID_X509_COUNTRY_NAME, OID_X509_LOCALITY_NAME, OID_X509_ORGANIZATIONAL_UNIT,
        OID_X509_ORGANIZATION_NAME, OID_X509_STATE_OR_PROVINCE_NAME,
    };
    // x509-parser 0.18's ABBREV_MAP (objects.rs).
    let abbreviated = [
        OID_X509_COMMON_NAME,
        OID_X509_COUNTRY_NAME,
        OID_X509_LOCALITY_NAME,
        OID_X509_STATE_OR_PROVINCE_NAME,
        OID_X509_ORGANIZATION_NAME,
        OID_X509_ORGANIZATIONAL_UNIT,
        OID_DOMAIN_COMPONENT,
        OID_PKCS9_EMAIL_ADDRESS,
    ];
    if !name
        .iter_attributes()
        .all(|a| abbreviated.contains(a.attr_type()))
    {
        return name.to_string();
    }
    name.to_string_with_registry(&OidRegistry::default())
        .unwrap_or_else(|_| "<X509Error: Invalid X.509 name>".to_string())
}

/// DER that is not an X.509 certificate.
#[derive(Debug, thiserror::Error)]
#[error("not an X.509 certificate")]
pub struct NotACertificate(#[source] pub x509_parser::nom::Err<x509_parser::error::X509Error>);

/// Parses one DER certificate into [`CertInfo`].
pub fn parse_der(der: &[u8]) -> Result<CertInfo, NotACertificate> {
    let (_, x) = X509Certificate::from_der(der).map_err(NotACertificate)?;
    let mut info = CertInfo {
        subject: name_text(x.subject()),
        subject_der: x.subject().as_raw().to_vec(),
        issuer: name_text(x.issuer()),
        issuer_der: x.issuer().as_raw().to_vec(),
        common_name: x
            .subject()
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_string),
        organizations: x
            .subject()
            .iter_organization()
            .filter_map(|a| a.as_str().ok())
            .map(str::to_string)
            .collect(),
        serial: hex::encode(x.raw_serial()),
        serial_decimal: x.tbs_certificate.serial.to_string(),
        not_before: x.validity().not_before.timestamp(),
        not_after: x.validity().not_after.timestamp(),
        dns_names: vec![],
        ip_addresses: vec![],
        uris: vec![],
        emails: vec![],
        ext_key_usage: vec![],
        key_usage: vec![],
        is_ca: false,
        key_algorithm: key_algorithm(&x),
        spki_der: x.public_key().raw.to_vec(),
        subject_key_id: None,
        signed: Signed {
            tbs: x.tbs_certificate.as_ref().to_vec(),
            tail: after(der, x.tbs_certificate.as_ref()).to_vec(),
        },
        issuer_key: IssuerKey::default(),
    };
    for ext in x.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                // Other kinds are not part of a certificate's facts (kubeadm issues none).
                let sans = Sans::read(&san.general_names);
                info.dns_names.extend(sans.dns_names);
                info.ip_addresses.extend(sans.ip_addresses);
                info.uris.extend(sans.uris);
                info.emails.extend(sans.emails);
            }
            ParsedExtension::ExtendedKeyUsage(eku) => info.ext_key_usage = eku_names(eku),
            ParsedExtension::KeyUsage(ku) => {
                let names = [
                    (ku.digital_signature(), "digitalSignature"),
                    (ku.non_repudiation(), "contentCommitment"),
                    (ku.key_encipherment(), "keyEncipherment"),
                    (ku.data_encipherment(), "dataEncipherment"),
                    (ku.key_agreement(), "keyAgreement"),
                    (ku.key_cert_sign(), "keyCertSign"),
                    (ku.crl_sign(), "cRLSign"),
                ];
                info.key_usage = names
                    .iter()
                    .filter(|(b, _)| *b)
                    .map(|(_, n)| n.to_string())
                    .collect();
            }
            ParsedExtension::BasicConstraints(bc) => info.is_ca = bc.ca,
            ParsedExtension::SubjectKeyIdentifier(k) => info.subject_key_id = Some(k.0.to_vec()),
            _ => {}
        }
    }
    Ok(info)
}

/// Parses a PEM bundle: the first `CERTIFICATE` block is the leaf, the rest its chain.
pub fn parse_pem_bundle(bytes: &[u8]) -> Result<Cert, PemError> {
    let blocks = pem_blocks(bytes).map_err(|e| crate::error::pem_error(&e))?;
    let mut certs = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents());
    let der = certs.next().ok_or(PemError::NoCertificate)?;
    let chain: Vec<Vec<u8>> = certs.collect();
    let info = parse_der(&der).map_err(|e| PemError::BadCertificate(crate::error::report(&e)))?;
    Ok(Cert { der, chain, info })
}

/// Whether `cert_der` carries a valid signature by the key of `issuer_der`.
pub fn signed_by(cert_der: &[u8], issuer_der: &[u8]) -> bool {
    let Ok((_, i)) = X509Certificate::from_der(issuer_der) else {
        return false;
    };
    signed_by_spki(cert_der, i.public_key().raw)
}

/// [`signed_by`] with the issuer given by its SubjectPublicKeyInfo DER (a parsed
/// [`CertInfo::spki_der`]): the same verification, without parsing the whole issuer
/// certificate again for every row it is tried against (`check`).
pub fn signed_by_spki(cert_der: &[u8], issuer_spki_der: &[u8]) -> bool {
    use x509_parser::x509::SubjectPublicKeyInfo;
    let Ok((_, c)) = X509Certificate::from_der(cert_der) else {
        return false;
    };
    let Ok((_, spki)) = SubjectPublicKeyInfo::from_der(issuer_spki_der) else {
        return false;
    };
    c.verify_signature(Some(&spki)).is_ok()
}

/// The bytes of `der` after its `tbsCertificate` (`tbs`, a subslice of `der`): the
/// `signatureAlgorithm` and `signatureValue` elements of the outer SEQUENCE.
fn after<'d>(der: &'d [u8], tbs: &[u8]) -> &'d [u8] {
    let start = (tbs.as_ptr() as usize).wrapping_sub(der.as_ptr() as usize);
    der.get(start.saturating_add(tbs.len())..)
        .unwrap_or_default()
}

impl Signed {
    /// The signed parts of the DER certificate `der` (one x509-parser parse); `None` when it
    /// is not a certificate.
    pub fn of(der: &[u8]) -> Option<Signed> {
        let (_, x) = X509Certificate::from_der(der).ok()?;
        let tbs = x.tbs_certificate.as_ref();
        Some(Signed {
            tbs: tbs.to_vec(),
            tail: after(der, tbs).to_vec(),
        })
    }

    /// Whether these parts carry a valid signature by `issuer`'s key: the verdict of
    /// [`signed_by_spki`] for the same certificate and `issuer.spki_der`, with the key parsed
    /// once per issuer ([`IssuerKey`]).
    pub fn verified_by(&self, issuer: &CertInfo) -> bool {
        verify::verify_parts(&self.tbs, &self.tail, &issuer.spki_der, &issuer.issuer_key)
    }
}

impl CertInfo {
    /// Whether the certificate this value was parsed from (`cert_der`) carries a valid
    /// signature by `issuer`'s key: [`signed_by_spki`]'s verdict, from the parts kept by
    /// [`parse_der`] (no second parse of the certificate) and the issuer's key parsed once
    /// ([`IssuerKey`]). A deserialized value (no parts) parses `cert_der`.
    pub fn signed_by(&self, cert_der: &[u8], issuer: &CertInfo) -> bool {
        if self.signed.tbs.is_empty() {
            return Signed::of(cert_der).is_some_and(|s| s.verified_by(issuer));
        }
        self.signed.verified_by(issuer)
    }
}

/// The PEM blocks of `bytes`, exactly as [`pem::parse_many`] returns them (tags, contents,
/// headers, errors), read faster when the text is laid out as kubeadm, openssl and kubecert
/// write it: `-----BEGIN L-----`, lines of base64 separated by single `\n`, `-----END L-----`,
/// blocks separated by whitespace only. Anything else (CRLF, headers, blank lines, leading or
/// trailing text, non-base64 bytes, mismatched labels, bad base64) goes to the `pem` crate.
///
/// Why not only the crate: its parser scans byte by byte several times per block and builds
/// the base64 text char by char; on `check` of a demo PKI (30 PEM blocks) that was 3.5 M of
/// 15.7 M instructions (callgrind, bench/RESULTS.md "Issue 18 item 3"). The equivalence is
/// tested against the crate on every fixture and on every one-byte mutation of them
/// (`pem_fast_path_equals_the_pem_crate`).
pub fn pem_blocks(bytes: &[u8]) -> Result<Vec<::pem::Pem>, ::pem::PemError> {
    match pem_fast(bytes) {
        Some(blocks) => Ok(blocks),
        None => ::pem::parse_many(bytes),
    }
}

/// The fast path of [`pem_blocks`]; `None` when the text is not in the canonical layout.
fn pem_fast(input: &[u8]) -> Option<Vec<::pem::Pem>> {
    use base64::Engine;
    // Searched as text: `str::find` and `split` on a char use core's word-at-a-time memchr,
    // where a byte-wise `position` cost ~4 instructions per byte (0.4 M per check). Text
    // that is not UTF-8 is not canonical: the crate decides.
    let mut input = std::str::from_utf8(input).ok()?;
    // The label: upper-case letters, digits and spaces, up to the first '-', which must
    // start "-----" (the crate's tag is the text up to the first "-----").
    fn label(input: &str) -> Option<(&str, &str)> {
        let n = input.find('-')?;
        let (l, rest) = input.split_at(n);
        let ok = !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ');
        ok.then_some(())?;
        Some((l, rest.strip_prefix("-----")?))
    }
    // The crate's whitespace after a BEGIN or END line: [ \t\n\r]*.
    fn skip_ws(input: &str) -> &str {
        input.trim_start_matches([' ', '\t', '\n', '\r'])
    }
    let mut out = Vec::new();
    loop {
        let (tag, rest) = label(input.strip_prefix("-----BEGIN ")?)?;
        input = skip_ws(rest);
        // The payload ends at the first '-' (none in base64), which must start "-----END ".
        let end = input.find('-')?;
        let (payload, rest) = input.split_at(end);
        let mut b64 = Vec::with_capacity(payload.len());
        let mut lines = payload.split('\n').peekable();
        while let Some(line) = lines.next() {
            // A blank line (an empty piece before the last) would make the text before it
            // the crate's "headers".
            if line.is_empty() && lines.peek().is_some() {
                return None;
            }
            b64.extend_from_slice(line.as_bytes());
        }
        let (end_tag, rest) = label(rest.strip_prefix("-----END ")?)?;
        if end_tag != tag {
            return None;
        }
        // The decoder takes the base64 alphabet only: any other byte left (a space, '\r',
        // which the crate would strip, or non-ASCII) is an error here, and the crate decides.
        // What it accepts is therefore exactly the crate's whitespace-free text.
        let contents = base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .ok()?;
        out.push(::pem::Pem::new(tag, contents));
        input = skip_ws(rest);
        if input.is_empty() {
            return Some(out);
        }
    }
}

/// The encoding a private key was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyFormat {
    /// `RSA PRIVATE KEY`.
    Pkcs1,
    /// `EC PRIVATE KEY`.
    Sec1,
    /// `PRIVATE KEY`.
    Pkcs8,
}

/// A private key. Its Debug output never shows key material.
pub struct PrivateKey {
    /// The loaded key pair (signing and public key).
    pub pair: rcgen::KeyPair,
    /// How it was encoded on disk.
    pub format: KeyFormat,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("format", &self.format)
            .field("material", &"<redacted>")
            .finish()
    }
}

impl PrivateKey {
    /// The SubjectPublicKeyInfo DER of this key.
    pub fn spki_der(&self) -> Vec<u8> {
        use rcgen::PublicKeyData;
        self.pair.subject_public_key_info()
    }

    /// Whether this key is the private half of `info`'s public key.
    pub fn matches(&self, info: &CertInfo) -> bool {
        self.spki_der() == info.spki_der
    }
}

/// Parses a PEM private key (PKCS#1, SEC1 or PKCS#8; RSA or ECDSA only, like kubeadm).
/// Errors never include key bytes.
pub fn parse_private_key(bytes: &[u8]) -> Result<PrivateKey, PemError> {
    let blocks = pem_blocks(bytes).map_err(|e| crate::error::pem_error(&e))?;
    let block = blocks
        .into_iter()
        .find(|b| b.tag().ends_with("PRIVATE KEY"))
        .ok_or(PemError::NoPrivateKey)?;
    let format = match block.tag() {
        "RSA PRIVATE KEY" => KeyFormat::Pkcs1,
        "EC PRIVATE KEY" => KeyFormat::Sec1,
        "PRIVATE KEY" => KeyFormat::Pkcs8,
        other => return Err(PemError::UnsupportedKey(other.to_string())),
    };
    let der = block.into_contents();
    let key_der = match format {
        KeyFormat::Pkcs1 => rustls_pki_types::PrivateKeyDer::Pkcs1(der.into()),
        KeyFormat::Sec1 => rustls_pki_types::PrivateKeyDer::Sec1(der.into()),
        KeyFormat::Pkcs8 => rustls_pki_types::PrivateKeyDer::Pkcs8(der.into()),
    };
    let pair = rcgen::KeyPair::try_from(&key_der).map_err(|_| {
        PemError::UnsupportedKey("the private key is neither in RSA nor ECDSA format".into())
    })?;
    if !(pair.is_compatible(&rcgen::PKCS_RSA_SHA256)
        || pair.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256)
        || pair.is_compatible(&rcgen::PKCS_ECDSA_P384_SHA384))
    {
        return Err(PemError::UnsupportedKey(
            "the private key is neither in RSA nor ECDSA format".into(),
        ));
    }
    Ok(PrivateKey { pair, format })
}

/// `(n, e)` of a PKCS#1 `RSAPrivateKey` (two-prime, version 0), read without validating it,
/// without leading zero octets (the `pkcs1` crate).
fn pkcs1_public(der: &[u8]) -> Option<(&[u8], &[u8])> {
    use pkcs8::der::Decode;
    let k = pkcs1::RsaPrivateKey::from_der(der).ok()?;
    Some((k.modulus.as_bytes(), k.public_exponent.as_bytes()))
}

/// The public point a SEC1 `ECPrivateKey` carries (`[1] publicKey`), if it carries one (the
/// `sec1` crate).
fn sec1_public(der: &[u8]) -> Option<&[u8]> {
    use pkcs8::der::Decode;
    sec1::EcPrivateKey::from_der(der).ok()?.public_key
}

/// `b` without its leading zero octets (an INTEGER's content as an unsigned number).
fn unsigned(b: &[u8]) -> &[u8] {
    let zeros = b.iter().take_while(|x| **x == 0).count();
    &b[zeros..]
}

/// Whether the PEM private key `bytes` is the private half of `info`'s public key, decided by
/// comparing the public key the key file itself carries (RSA `n`/`e`, the EC point) with the
/// certificate's, without loading the key. `true` only when certain; `false` means "not
/// decided this way" (mismatch, other encodings, unsupported algorithms): the caller then
/// loads the key with [`parse_private_key`] for the real verdict and error.
///
/// Loading an RSA key validates it (aws-lc's `RSA_check_key`, ~0.5 ms for RSA-2048 in
/// constant-time big-number divisions), which made it the bulk of `check`'s run time. The
/// price of this shortcut: a key whose public half matches but whose private half is corrupt
/// is not reported by `check` (renew still loads and validates every key it uses).
pub fn key_matches_quickly(bytes: &[u8], info: &CertInfo) -> bool {
    use x509_parser::public_key::PublicKey;
    use x509_parser::x509::SubjectPublicKeyInfo;
    // Only where parse_private_key would accept the key: RSA 2048..=8192, ECDSA P-256/P-384.
    let rsa_ok = matches!(info.key_algorithm, PublicKeyAlgorithm::Rsa(bits) if (2048..=8192).contains(&bits));
    let ec_ok = matches!(
        info.key_algorithm,
        PublicKeyAlgorithm::EcdsaP256 | PublicKeyAlgorithm::EcdsaP384
    );
    if !rsa_ok && !ec_ok {
        return false;
    }
    let Ok((_, spki)) = SubjectPublicKeyInfo::from_der(&info.spki_der) else {
        return false;
    };
    // The same PEM block parse_private_key would take.
    let Ok(blocks) = pem_blocks(bytes) else {
        return false;
    };
    let Some(block) = blocks.iter().find(|b| b.tag().ends_with("PRIVATE KEY")) else {
        return false;
    };
    let der = block.contents();
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let (rsa, ec) = match block.tag() {
        "RSA PRIVATE KEY" => (pkcs1_public(der), None),
        "EC PRIVATE KEY" => (None, sec1_public(der)),
        "PRIVATE KEY" => {
            // PKCS#8 PrivateKeyInfo (v1, or v2 with the public key), read with the pkcs8 crate.
            use pkcs8::der::Decode;
            let Ok(pki) = pkcs8::PrivateKeyInfo::from_der(der) else {
                return false;
            };
            match pki.algorithm.oid.as_bytes() {
                RSA => (pkcs1_public(pki.private_key), None),
                EC => (None, sec1_public(pki.private_key)),
                _ => (None, None),
            }
        }
        _ => (None, None),
    };
    match (spki.parsed(), rsa, ec) {
        (Ok(PublicKey::RSA(cert)), Some((n, e)), _) => {
            rsa_ok && unsigned(cert.modulus) == n && unsigned(cert.exponent) == e
        }
        (Ok(PublicKey::EC(point)), _, Some(p)) => ec_ok && point.data() == p,
        _ => false,
    }
}

/// Reads a certificate or key file: a regular file, not a symlink, at most
/// [`super::fsread::MAX_FILE_BYTES`] (see [`super::fsread::read`]).
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    super::fsread::read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Certificates signed with the algorithms the fixtures lack (all of them are
    /// sha256WithRSA but one ecdsa-with-SHA256): one RSA-2048 key signing with SHA-256,
    /// SHA-384, SHA-512 and PSS-SHA-256 (one issuer key, several algorithms), an ECDSA P-384
    /// CA and an Ed25519 CA, each with a leaf.
    fn generated_certs() -> Vec<Cert> {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_params = |cn: &str| {
            let mut p = CertificateParams::new(vec![]).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p
        };
        let leaf_params = |cn: &str| {
            let mut p = CertificateParams::new(vec![format!("{cn}.example")]).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            p
        };
        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ders: Vec<Vec<u8>> = Vec::new();
        let rsa =
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
        let pkcs8 = rsa.serialize_der();
        ders.push(
            ca_params("rsa-ca")
                .self_signed(&rsa)
                .unwrap()
                .der()
                .to_vec(),
        );
        for alg in [
            &rcgen::PKCS_RSA_SHA256,
            &rcgen::PKCS_RSA_SHA384,
            &rcgen::PKCS_RSA_SHA512,
        ] {
            let key = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_slice().into(), alg).unwrap();
            let issuer = Issuer::new(ca_params("rsa-ca"), key);
            let leaf = leaf_params(&format!("{alg:?}"))
                .signed_by(&leaf_key, &issuer)
                .unwrap();
            ders.push(leaf.der().to_vec());
        }
        for alg in [&rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_ED25519] {
            let key = KeyPair::generate_for(alg).unwrap();
            let params = ca_params(&format!("{alg:?} ca"));
            ders.push(params.self_signed(&key).unwrap().der().to_vec());
            let issuer = Issuer::new(params, key);
            let leaf = leaf_params(&format!("{alg:?}"))
                .signed_by(&leaf_key, &issuer)
                .unwrap();
            ders.push(leaf.der().to_vec());
        }
        // rcgen does not sign RSA-PSS: an RSA-2048 CA (self-signed, PSS-SHA-256) and two
        // leaves it signed with PSS-SHA-256 and PSS-SHA-512, made with openssl 3.0
        // (`-sigopt rsa_padding_mode:pss`; `openssl verify` OK).
        ders.extend(
            pem_blocks(PSS.as_bytes())
                .unwrap()
                .into_iter()
                .map(|b| b.into_contents()),
        );
        assert_eq!(ders.len(), 11);
        ders.into_iter()
            .map(|der| Cert {
                info: parse_der(&der).unwrap(),
                der,
                chain: vec![],
            })
            .collect()
    }

    const PSS: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIDbTCCAiGgAwIBAgIUFgmR80UYSwxBOwk8326oB9Wg9R0wQQYJKoZIhvcNAQEK\n\
MDSgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEF\n\
AKIDAgEgMBExDzANBgNVBAMMBnBzcy1jYTAgFw0yNjEyMDIxMTExMjhaGA8yMTI2\n\
MTEwODExMTEyOFowETEPMA0GA1UEAwwGcHNzLWNhMIIBIjANBgkqhkiG9w0BAQEF\n\
AAOCAQ8AMIIBCgKCAQEAti5jtKBxLQrMSUYR/SgeObRDmDMAMreNv4NW5D2fSidX\n\
V3pAS2oPpqqOJkymb0IGtiBIb1gscSMQrgXabmcyQQbzG4Re2jM7jrPxPXaAzzxu\n\
zKtV9oB41dCh1Z4Vona/LoYqn6tzhOT3jYgOUb9HpLJgzR/LCUsbS60NOkymGKn7\n\
TXE+pI/8RhXWlKFrKo7foxODzVDqycvy51nMlW1HsRocg+G9Q/kF01ifay0bg8g5\n\
W0J4llr32QjFrhA2TH0BFO/tmOSYL/fq7FA1wiVPLMGcM9Q9LtmajboEJddj830k\n\
g1LYObqFKmjmSI5KBuwmVDpzRvzTwI4IypDCvikfJQIDAQABo1MwUTAdBgNVHQ4E\n\
FgQUhbAqCgovmWRdqyNcOuulenLB4g0wHwYDVR0jBBgwFoAUhbAqCgovmWRdqyNc\n\
OuulenLB4g0wDwYDVR0TAQH/BAUwAwEB/zBBBgkqhkiG9w0BAQowNKAPMA0GCWCG\n\
SAFlAwQCAQUAoRwwGgYJKoZIhvcNAQEIMA0GCWCGSAFlAwQCAQUAogMCASADggEB\n\
ADB19MN5LoLV6+qPgNv2yWUOB1677CA/qIX2j2YIGZvmMuO7/8PexV2fl8V6ItSQ\n\
D+8VD1D9+v55DOOho0GK4lTPJVECICjrF6vlWvzB2Lho2q0SCN7wK95EbSsRJ0dB\n\
MQzEN+KI1kxgl/c7EF+IpNqnDU4ruAwoj/IEg1tNFUwqMBM+HkgcW0kJgkmZth5O\n\
axekv6JUvooCRvSJR8GVQnCu/FmyzrX4916iFZV/YcN7GvAjKveoC2i7XcMD9c6Q\n\
ISfRS67uok5AUwf+ZB2YqYXoooC4YGr2KZfS1XJMrFvwlJ3oulYRhQ6DSahlP2ra\n\
l6VfUENT0Av4dt+RWkro8CA=\n\
-----END CERTIFICATE-----\n\
-----BEGIN CERTIFICATE-----\n\
MIICODCB7QIBBzBBBgkqhkiG9w0BAQowNKAPMA0GCWCGSAFlAwQCAQUAoRwwGgYJ\n\
KoZIhvcNAQEIMA0GCWCGSAFlAwQCAQUAogMCASAwETEPMA0GA1UEAwwGcHNzLWNh\n\
MCAXDTI2MTIwMjExMTEyOFoYDzIxMjYxMTA4MTExMTI4WjAVMRMwEQYDVQQDDApw\n\
c3Mtc2hhMjU2MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2u0NzuAVQ/cae3j3\n\
wv8adLbLJn9Hj/dK5YYo+kopxfQzMknXqL2duvKeLlnvENDDh7i6xTSuzihACVAr\n\
YGtugjBBBgkqhkiG9w0BAQowNKAPMA0GCWCGSAFlAwQCAQUAoRwwGgYJKoZIhvcN\n\
AQEIMA0GCWCGSAFlAwQCAQUAogMCASADggEBAKDGwBfprwEvJ3iVkWN8K9UUVtEK\n\
743aFGiQ0hsjoctgBwsLMzu/gAsY+W1pLwo63EPewB0mtxPSLUmqCcevTwaz2Tmo\n\
syYgJGMsWKVS4g0rvYINhmYSMJWwqnzYMZGPADi3QCQXd3KdYlLj5aXj53CQoxJ0\n\
gYFHLGirU0oQCxA7QBgU9ivYePnyKI1e8DpcPpIobGKFIRZQ4KiekFtiqORUFgUM\n\
u0E+qGBv23XRFlvxQ/BsfRTjhtufQvyv49w1+MZEORLi1+VWaGeSmN6pDtVNpf9k\n\
PSfO0kvphYISg8w0r0qKcYZy2H66LkxbpNuRH4Izgu8oPeprbuDDbXjwrWo=\n\
-----END CERTIFICATE-----\n\
-----BEGIN CERTIFICATE-----\n\
MIICODCB7QIBBzBBBgkqhkiG9w0BAQowNKAPMA0GCWCGSAFlAwQCAwUAoRwwGgYJ\n\
KoZIhvcNAQEIMA0GCWCGSAFlAwQCAwUAogMCAUAwETEPMA0GA1UEAwwGcHNzLWNh\n\
MCAXDTI2MTIwMjExMTEyOFoYDzIxMjYxMTA4MTExMTI4WjAVMRMwEQYDVQQDDApw\n\
c3Mtc2hhNTEyMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2u0NzuAVQ/cae3j3\n\
wv8adLbLJn9Hj/dK5YYo+kopxfQzMknXqL2duvKeLlnvENDDh7i6xTSuzihACVAr\n\
YGtugjBBBgkqhkiG9w0BAQowNKAPMA0GCWCGSAFlAwQCAwUAoRwwGgYJKoZIhvcN\n\
AQEIMA0GCWCGSAFlAwQCAwUAogMCAUADggEBAFCISLsH7TMrd8OFEMCXzSCQwsD3\n\
cXfn/ahJvlDeWk5Z3EYi8KjeaCbrrRtgklnsV5j+wCWB0v8YwV+/DZbI0kUhbXz5\n\
kCx9Ackp+z6F8Qdnl6/9c5niqYOsnkGGEj4bsqxiZGYsK89CRP6gM0HdNEA1EtMj\n\
3jArwuhzn8jl8RlOKMLRV9CrugYDrMTrtTgjRt4pWgtdaxHi5U0lEWTwiOKYCcOV\n\
3/FmTgbo4aDUxQFE93nGp10uXEoMnrrmGPByLFdzyBPBmT7F0T53KudZkHd/6Ac/\n\
/oBkaz0z5twNE/JmjyV2QhAVfglOPYV8g6RQdjwmEWpYlNBdWVeNDcbiiDc=\n\
-----END CERTIFICATE-----\n\
";

    /// [`CertInfo::signed_by`] (kept parts, the issuer's key parsed once and reused:
    /// [`IssuerKey`]) answers what x509-parser's `verify_signature` answers ([`signed_by`]):
    /// for every (certificate, issuer) pair of the fixtures' certificates and of
    /// [`generated_certs`], with each issuer's kept key reused across all its pairs (issuers
    /// in the outer loop) and fresh (a clone), for deserialized values (no kept parts), by
    /// [`Signed::of`]; and refused, with the key already kept, for every signed pair with one
    /// byte of the signature or of the signed bytes flipped.
    #[test]
    fn issuer_key_equals_x509_parser() {
        let mut certs: Vec<Cert> = fixture_pems()
            .iter()
            .filter_map(|(_, b)| parse_pem_bundle(b).ok())
            .collect();
        assert!(certs.len() >= 40, "{} fixture certificates", certs.len());
        certs.extend(generated_certs());
        let (mut yes, mut no, mut tampered) = (0, 0, 0);
        for i in &certs {
            for c in &certs {
                let want = signed_by(&c.der, &i.der);
                assert_eq!(want, signed_by_spki(&c.der, &i.info.spki_der));
                let what = format!("{} by {}", c.info.subject, i.info.subject);
                assert_eq!(c.info.signed_by(&c.der, &i.info), want, "{what}");
                assert_eq!(
                    c.info.signed_by(&c.der, &i.info.clone()),
                    want,
                    "{what} (fresh)"
                );
                let back: CertInfo =
                    serde_json::from_value(serde_json::to_value(&c.info).unwrap()).unwrap();
                assert!(back.signed.tbs.is_empty());
                assert_eq!(back, c.info, "facts compare equal, parts aside");
                assert_eq!(
                    back.signed_by(&c.der, &i.info),
                    want,
                    "{what} (deserialized)"
                );
                let parts = Signed::of(&c.der).unwrap();
                assert_eq!(parts.verified_by(&i.info), want, "{what} (Signed::of)");
                if !want {
                    no += 1;
                    continue;
                }
                yes += 1;
                // The issuer's key is kept now: a tampered signature or signed byte must still
                // be refused (every signature verified, none answered from the kept key).
                for at in [parts.tail.len() - 1, parts.tail.len() - 9] {
                    let mut bad = parts.clone();
                    bad.tail[at] ^= 0x01;
                    assert!(
                        !bad.verified_by(&i.info),
                        "{what}: signature byte {at} flipped"
                    );
                    tampered += 1;
                }
                for at in [parts.tbs.len() - 1, parts.tbs.len() / 2] {
                    let mut bad = parts.clone();
                    bad.tbs[at] ^= 0x01;
                    assert!(
                        !bad.verified_by(&i.info),
                        "{what}: signed byte {at} flipped"
                    );
                    tampered += 1;
                }
            }
        }
        // Also through the DER, against the old path: a flipped signature bit.
        for c in &certs {
            if signed_by(&c.der, &c.der) {
                let mut bad = c.der.clone();
                let n = bad.len();
                bad[n - 3] ^= 0x01;
                let info = parse_der(&bad).unwrap();
                assert!(!signed_by(&bad, &c.der));
                assert!(!info.signed_by(&bad, &c.info));
            }
        }
        assert!(yes >= 50 && no >= 1000, "{yes} signed, {no} not");
        assert_eq!(tampered, 4 * yes);
    }

    /// [`name_text`] prints what x509-parser's `Display` prints: every subject and issuer of
    /// the fixtures' and generated certificates (the fast path), and names with attribute
    /// types only the registry names or none does (serialNumber, title, an unknown OID:
    /// `to_string` itself), mixed with abbreviated ones.
    #[test]
    fn name_text_equals_x509_parser_display() {
        let mut ders: Vec<Vec<u8>> = fixture_pems()
            .iter()
            .filter_map(|(_, b)| parse_pem_bundle(b).ok())
            .map(|c| c.der)
            .collect();
        ders.extend(generated_certs().into_iter().map(|c| c.der));
        let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "cn");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "o");
        p.distinguished_name
            .push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]), "serial");
        p.distinguished_name
            .push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 12]), "title");
        p.distinguished_name.push(
            rcgen::DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 99999, 1]),
            "x",
        );
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        ders.push(p.self_signed(&key).unwrap().der().to_vec());
        // One type the registry names, the others abbreviated.
        let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "cn");
        p.distinguished_name
            .push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]), "serial");
        ders.push(p.self_signed(&key).unwrap().der().to_vec());
        let mut names = 0;
        for der in &ders {
            let (_, x) = X509Certificate::from_der(der).unwrap();
            for name in [x.subject(), x.issuer()] {
                assert_eq!(name_text(name), name.to_string());
                names += 1;
            }
        }
        assert!(names >= 2 * 60, "{names} names");
        // The registry is really read for these: without it serialNumber would print as its
        // OID.
        let last = parse_der(&ders[ders.len() - 1]).unwrap();
        assert_eq!(last.subject, "CN=cn, serialNumber=serial");
        let mixed = parse_der(&ders[ders.len() - 2]).unwrap();
        assert_eq!(
            mixed.subject,
            "CN=cn, O=o, serialNumber=serial, title=title, OID(1.3.6.1.4.1.99999.1)=x"
        );
    }

    /// Every PEM file of tests/fixtures (certificates, keys, `sa.pub`), sorted.
    fn fixture_pems() -> Vec<(std::path::PathBuf, Vec<u8>)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .expect("fixture dir")
                .map(|e| e.expect("dir entry").path())
                .collect();
            entries.sort();
            for p in entries {
                if p.is_dir() {
                    walk(&p, out);
                } else if p
                    .extension()
                    .is_some_and(|e| ["crt", "key", "pem", "pub"].iter().any(|x| e == *x))
                {
                    let b = std::fs::read(&p).expect("fixture file");
                    out.push((p, b));
                }
            }
        }
        let mut out = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
            &mut out,
        );
        out
    }

    fn assert_same(input: &[u8], what: &str) {
        let fast = pem_blocks(input);
        let krate = ::pem::parse_many(input);
        assert_eq!(
            fast, krate,
            "pem_blocks differs from pem::parse_many on {what}"
        );
    }

    /// [`pem_blocks`] returns exactly what the `pem` crate returns (blocks or error): on every
    /// PEM file of the fixtures, on bundles of them, and on every one-byte replacement,
    /// truncation and CRLF/blank-line/garbage variant of a certificate and a key. The fast
    /// path must really be taken on the canonical files (else this would compare the crate
    /// with itself).
    #[test]
    fn pem_fast_path_equals_the_pem_crate() {
        let files = fixture_pems();
        assert!(files.len() > 50, "fixtures: {}", files.len());
        let mut fast = 0;
        for (p, b) in &files {
            assert_same(b, &p.display().to_string());
            if pem_fast(b).is_some() {
                fast += 1;
            }
        }
        assert!(
            fast * 10 >= files.len() * 9,
            "the fast path read only {fast} of {} fixture files",
            files.len()
        );
        let cert = &files
            .iter()
            .find(|(p, _)| p.ends_with("pki-zetaoss-2024/apiserver.crt"))
            .expect("zetaoss apiserver.crt")
            .1;
        let key = &files
            .iter()
            .find(|(p, _)| p.ends_with("pki-zetaoss-2024/apiserver.key"))
            .expect("zetaoss apiserver.key")
            .1;
        assert!(pem_fast(cert).is_some() && pem_fast(key).is_some());
        // Bundles, separated by nothing, a newline, spaces, CRLF, or text.
        for sep in ["", "\n", " \t\r\n", "\r\n", "junk\n", "\n\n\n"] {
            let mut bundle = cert.clone();
            bundle.extend_from_slice(sep.as_bytes());
            bundle.extend_from_slice(key);
            assert_same(&bundle, &format!("a bundle separated by {sep:?}"));
        }
        // Whole-text variants.
        let text = String::from_utf8(cert.clone()).expect("ascii");
        let variants = [
            text.replace('\n', "\r\n"),
            format!("leading text\n{text}"),
            format!("\n{text}"),
            format!("{text}trailing text"),
            text.replacen('\n', "\n\n", 2),
            text.replacen(
                "CERTIFICATE-----\n",
                "CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\n",
                1,
            ),
            text.replacen("-----END CERTIFICATE", "-----END CERTIFICATES", 1),
            text.replace("CERTIFICATE", "certificate"),
            text.replacen("-----BEGIN", "------BEGIN", 1),
            text.replacen("\n-----END", "-----END", 1),
            text.replacen("\n", " \n", 3),
            text.replacen("=", "", 1),
            text.replace("-----BEGIN CERTIFICATE-----", "-----BEGIN -----"),
            String::new(),
            " \n".into(),
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_same(v.as_bytes(), &format!("variant {i}"));
        }
        // Every one-byte replacement and every truncation.
        for (name, src) in [("the certificate", cert), ("the key", key)] {
            for i in 0..src.len() {
                for r in [b'-', b'\n', b'\r', b' ', b'A', b'=', 0u8, 0xc3] {
                    if src[i] == r {
                        continue;
                    }
                    let mut m = src.clone();
                    m[i] = r;
                    assert_same(&m, &format!("{name} with byte {i} set to {r:#x}"));
                }
                assert_same(&src[..i], &format!("{name} cut at {i}"));
            }
        }
    }

    /// `openssl req -x509 -multivalue-rdn -subj "/C=FR/ST=Ile de France/L=Paris/O=system:masters+O=other, X=y/OU=Ops \"q\"/CN=a, b" -set_serial 0x00ff00ff…ff`.
    const ODD_NAME: &str = "-----BEGIN CERTIFICATE-----\n\
MIID5TCCAs2gAwIBAgISAP8A/wD/AP8A/wD/AP8A/wD/MA0GCSqGSIb3DQEBCwUA\n\
MIGCMQswCQYDVQQGEwJGUjEWMBQGA1UECAwNSWxlIGRlIEZyYW5jZTEOMAwGA1UE\n\
BwwFUGFyaXMxKjARBgNVBAoMCm90aGVyLCBYPXkwFQYDVQQKDA5zeXN0ZW06bWFz\n\
dGVyczEQMA4GA1UECwwHT3BzICJxIjENMAsGA1UEAwwEYSwgYjAeFw0yNjEyMDEx\n\
NzQ2MThaFw0zNjExMjgxNzQ2MThaMIGCMQswCQYDVQQGEwJGUjEWMBQGA1UECAwN\n\
SWxlIGRlIEZyYW5jZTEOMAwGA1UEBwwFUGFyaXMxKjARBgNVBAoMCm90aGVyLCBY\n\
PXkwFQYDVQQKDA5zeXN0ZW06bWFzdGVyczEQMA4GA1UECwwHT3BzICJxIjENMAsG\n\
A1UEAwwEYSwgYjCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAL+gl+K8\n\
r4naFA8bId4KxobLQ9ShB+3ofP0QFekmOEtfRZqXZqLRrPskxBTS8lJ7/zbpsjvb\n\
Q4kre7u9RZNFwCfiFAqMmrIfbknk6xnEZg7xCOnpzEK72Ic9kt2ovxfNmRczkiA8\n\
UxG9iipdcSFIoL7WpJJLaLFbThG8vjh2v/sKLSTj1Pwrwvay35sF6QmOr7l799Zz\n\
6MEO342Gt3ZTNx1EqqydI8QCzZzp98qU6pTT1wFQ8RER51fQlZanCel2j6OsQ82M\n\
6YE5Nj6ay7609MV5U2NnlEwrmDG2uYIntqyBtfcRCTbaZ99mjCChTgJpB/H3OGCA\n\
2i9RCc9zQYmm53ECAwEAAaNTMFEwHQYDVR0OBBYEFEbO6M1iBbkA4HZrzwuH0YHK\n\
2RsoMB8GA1UdIwQYMBaAFEbO6M1iBbkA4HZrzwuH0YHK2RsoMA8GA1UdEwEB/wQF\n\
MAMBAf8wDQYJKoZIhvcNAQELBQADggEBAENh3eBaXe3sd5eXqwY2aN5XP+qSlO6A\n\
0cMD4p6d4la77cK9Qo+TdzWOwKTq6yIBEm18k2v7CMt5dY3ibkVnAZAdmNJEo2uO\n\
Wtd94zzCpqAZCT4RBexRgLUddpAk8IvMVThmhd1lRFNqC8zTQ378Y+drV5OWW6I/\n\
WxctkJ4MOxu4QSTAPUXZEM+oPM35EB7aLOu2fixIXZhG4iQPZw5U5PFNGBdG4seC\n\
9FDgL/YZKRJ+CLOcAUjFSyqVELw3ZRcc8FHSuy0pdvFj+tDVcehmtJnyInJx4Bwo\n\
O5tTmD6zm4kCiQs6YVgUzfXiKUsUx9yd6oATsIuxBmu/nu3eDGw6YAI=\n\
-----END CERTIFICATE-----\n\
";
    /// `openssl req -x509 -subj "/CN=kube-apiserver/O=x/O=y/DC=example/emailAddress=a@b.c" -set_serial -5`.
    const NEGATIVE_SERIAL: &str = "-----BEGIN CERTIFICATE-----\n\
MIICAzCCAaigAwIBAgIB+zAKBggqhkjOPQQDAjBgMRcwFQYDVQQDDA5rdWJlLWFw\n\
aXNlcnZlcjEKMAgGA1UECgwBeDEKMAgGA1UECgwBeTEXMBUGCgmSJomT8ixkARkW\n\
B2V4YW1wbGUxFDASBgkqhkiG9w0BCQEWBWFAYi5jMB4XDTI2MTIwMTE3NDYxOFoX\n\
DTM2MTEyODE3NDYxOFowYDEXMBUGA1UEAwwOa3ViZS1hcGlzZXJ2ZXIxCjAIBgNV\n\
BAoMAXgxCjAIBgNVBAoMAXkxFzAVBgoJkiaJk/IsZAEZFgdleGFtcGxlMRQwEgYJ\n\
KoZIhvcNAQkBFgVhQGIuYzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABKBWiORx\n\
jfsPBW7UcYo+/iezdR0gtj9jifHx2tXlLdux2hJOoiVZ72K6WtneQJX2d34x65Z/\n\
wTXn5wl5pYSUFZijUzBRMB0GA1UdDgQWBBQsw8Gee7qqjVuCQ+dgWk24jm5XFDAf\n\
BgNVHSMEGDAWgBQsw8Gee7qqjVuCQ+dgWk24jm5XFDAPBgNVHRMBAf8EBTADAQH/\n\
MAoGCCqGSM49BAMCA0kAMEYCIQCgXMPZ9N8OzEQzfFT5vD5khnSByYTk6tz68vRj\n\
3lR3AgIhAKI4akPENXti2ybEoJ7h0Ng3YlKEfYqyUXwOTMpoR3Vn\n\
-----END CERTIFICATE-----\n\
";

    /// What [`key_matches_quickly`] must say, (key PEM, cert PEM) → verdict: true only when
    /// the public half the key file carries is the certificate's. The golden test of the
    /// crate trial (see [`pkcs1_public`]).
    fn key_golden() -> Vec<(&'static str, Vec<u8>, Vec<u8>, bool)> {
        let fx = |p: &str| {
            std::fs::read(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures")
                    .join(p),
            )
            .unwrap()
        };
        let pkcs8 = |alg| {
            let (k, pem) = crate::pki::issue::new_key(alg).unwrap();
            let der = crate::pki::issue::self_signed_ca("t", &k.pair, 0, 86400).unwrap();
            (
                pem.into_bytes(),
                crate::pki::issue::cert_pem(&der).into_bytes(),
            )
        };
        let (rsa8, rsa8_crt) = pkcs8(crate::pki::issue::KeyAlgorithm::Rsa2048);
        let (ec8, ec8_crt) = pkcs8(crate::pki::issue::KeyAlgorithm::EcdsaP256);
        let (ec384, ec384_crt) = pkcs8(crate::pki::issue::KeyAlgorithm::EcdsaP384);
        let pkcs1 = fx("pki-zetaoss-2024/apiserver.key");
        let pkcs1_crt = fx("pki-zetaoss-2024/apiserver.crt");
        // SEC1 as kubeadm and openssl write it (`EC PRIVATE KEY`, with its public point).
        let t = tempfile::tempdir().unwrap();
        let (kp, cp) = (t.path().join("k.pem"), t.path().join("c.pem"));
        let run = |args: &[&str]| {
            let o = std::process::Command::new("openssl")
                .args(args)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        };
        let (k, c) = (kp.to_str().unwrap(), cp.to_str().unwrap());
        run(&[
            "ecparam",
            "-name",
            "secp384r1",
            "-genkey",
            "-noout",
            "-out",
            k,
        ]);
        run(&[
            "req", "-x509", "-key", k, "-subj", "/CN=t", "-days", "1", "-out", c,
        ]);
        let (sec1, sec1_crt) = (std::fs::read(&kp).unwrap(), std::fs::read(&cp).unwrap());
        // A three-prime RSA key (PKCS#1 version 1), which kubecert cannot load: the quick
        // check must not call it a match either.
        let (mk, mc) = (t.path().join("m8.pem"), t.path().join("m1.pem"));
        let (m8, m1) = (mk.to_str().unwrap(), mc.to_str().unwrap());
        run(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-pkeyopt",
            "rsa_keygen_primes:3",
            "-out",
            m8,
        ]);
        run(&["rsa", "-in", m8, "-traditional", "-out", m1]);
        run(&[
            "req", "-x509", "-key", m1, "-subj", "/CN=t", "-days", "1", "-out", c,
        ]);
        let (multi, multi_crt) = (std::fs::read(&mc).unwrap(), std::fs::read(&cp).unwrap());
        assert!(String::from_utf8_lossy(&pkcs1).contains("BEGIN RSA PRIVATE KEY"));
        assert!(String::from_utf8_lossy(&sec1).contains("BEGIN EC PRIVATE KEY"));
        vec![
            ("pkcs1", pkcs1.clone(), pkcs1_crt.clone(), true),
            ("sec1", sec1.clone(), sec1_crt.clone(), true),
            ("pkcs8 rsa", rsa8.clone(), rsa8_crt.clone(), true),
            ("pkcs8 ec", ec8.clone(), ec8_crt.clone(), true),
            ("pkcs8 ec p384", ec384.clone(), ec384_crt.clone(), true),
            ("pkcs8 ec p384, other cert", ec384, ec8_crt.clone(), false),
            ("pkcs1 multi-prime", multi, multi_crt, false),
            ("pkcs1, other cert", pkcs1.clone(), rsa8_crt.clone(), false),
            ("sec1, other cert", sec1.clone(), ec8_crt.clone(), false),
            (
                "pkcs8 rsa, other cert",
                rsa8.clone(),
                pkcs1_crt.clone(),
                false,
            ),
            ("pkcs8 ec, other cert", ec8.clone(), sec1_crt.clone(), false),
            ("rsa key, ec cert", pkcs1.clone(), sec1_crt.clone(), false),
            (
                "garbage",
                b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n".to_vec(),
                pkcs1_crt.clone(),
                false,
            ),
        ]
    }

    #[test]
    fn key_matches_quickly_golden() {
        for (what, key, crt, want) in key_golden() {
            let info = parse_pem_bundle(&crt).unwrap().info;
            assert_eq!(key_matches_quickly(&key, &info), want, "{what}");
            // The quick verdict never contradicts loading the key.
            if let Ok(k) = parse_private_key(&key) {
                assert_eq!(k.matches(&info), want, "{what}");
            }
        }
    }

    #[test]
    fn dn_fields_are_the_first_value_of_each_attribute() {
        let c = parse_pem_bundle(ODD_NAME.as_bytes()).unwrap();
        let f = dn_fields(&c.info.subject_der);
        let want: Vec<(&str, &str)> = vec![
            ("C", "FR"),
            ("CN", "a, b"),
            ("L", "Paris"),
            // A multi-valued RDN: the SET OF is sorted in DER, so "other, X=y" comes first.
            ("O", "other, X=y"),
            ("OU", "Ops \"q\""),
            ("ST", "Ile de France"),
        ];
        let got: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(got, want);
        assert_eq!(dn_fields(&c.info.issuer_der), f);
        assert_eq!(
            c.info.serial_decimal,
            "86773327620741724286131199504468332708095"
        );
        let c = parse_pem_bundle(NEGATIVE_SERIAL.as_bytes()).unwrap();
        let f = dn_fields(&c.info.subject_der);
        let got: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(got, vec![("CN", "kube-apiserver"), ("O", "x")]);
        // -5 is the single byte 0xfb, read unsigned.
        assert_eq!(c.info.serial, "fb");
        assert_eq!(c.info.serial_decimal, "251");
        assert!(dn_fields(b"not a name").is_empty());
        assert!(dn_fields(&[]).is_empty());
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(matches!(
            parse_pem_bundle(b"hello"),
            Err(PemError::NoCertificate) | Err(PemError::Malformed(_))
        ));
        let bad = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            parse_pem_bundle(bad),
            Err(PemError::BadCertificate(_))
        ));
        assert!(parse_private_key(b"").is_err());
        let bad_key = b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let err = parse_private_key(bad_key).unwrap_err().to_string();
        assert!(!err.contains("AAAA"));
    }

    #[test]
    fn quick_key_match_agrees_with_loading_the_key() {
        use crate::pki::issue::{generate_key, key_pem, self_signed_ca, KeyAlgorithm};
        let mut infos = Vec::new();
        let mut pems = Vec::new();
        for alg in [
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
        ] {
            let kp = generate_key(alg).unwrap();
            infos.push(parse_der(&self_signed_ca("x", &kp, 0, 4_000_000_000).unwrap()).unwrap());
            // kubeadm's labels (PKCS#1 / SEC1) and PKCS#8 as generated.
            let traditional = key_pem(&kp, KeyFormat::Pkcs8).unwrap().into_bytes();
            let pkcs8 = ::pem::encode(&::pem::Pem::new("PRIVATE KEY", kp.serialized_der()));
            pems.push(vec![traditional, pkcs8.into_bytes()]);
        }
        for (i, info) in infos.iter().enumerate() {
            for (j, forms) in pems.iter().enumerate() {
                for pem in forms {
                    let loaded = parse_private_key(pem).unwrap().matches(info);
                    assert_eq!(loaded, i == j);
                    let quick = key_matches_quickly(pem, info);
                    // Never a match the real load would deny; these encodings all carry the
                    // public half, so each pair is decided without loading the key.
                    assert!(!quick || loaded, "key {j} vs cert {i}");
                    if i == j {
                        assert!(quick, "key {j} in {}", String::from_utf8_lossy(&pem[..30]));
                    }
                }
            }
        }
        assert!(!key_matches_quickly(b"not a key", &infos[0]));
    }
}
