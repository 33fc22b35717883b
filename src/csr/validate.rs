//! The checks of `csr import` for one signed certificate and its key, wherever they came
//! from (files in the CSR dir, or the certificates API): chain walk, leaf judging, findings.

use super::*;

/// Why a signed certificate was refused: the one finding vocabulary of check, csr and kubeapi.
pub use crate::pki::finding::FindingCode;

/// What the checks of one row read: the row, its PKI and the PKI's CAs, the cluster CA's
/// PEM (re-embedded into kubeconfigs) and the clock.
#[derive(Clone, Copy)]
pub(super) struct RowCheck<'a> {
    pub(super) e: &'a Entry,
    pub(super) layout: &'a Layout,
    pub(super) cas: &'a Cas,
    pub(super) ca_pem: Option<&'a [u8]>,
    pub(super) now: i64,
}

/// One thing wrong with a signed certificate.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Machine-readable code.
    pub code: FindingCode,
    /// What exactly is wrong.
    pub message: String,
}

pub(super) fn finding(code: FindingCode, message: impl Into<String>) -> Finding {
    Finding {
        code,
        message: message.into(),
    }
}

/// Walks from the leaf to the PKI CA through the certificates that follow it in the file.
/// Returns the chain to install after the leaf: the intermediates in chain order, then the CA
/// and its own issuers once each when the file carried them (never duplicates or strays).
fn check_chain(
    row: &RowCheck,
    ca_id: CaId,
    ca: &Cert,
    signed: &Cert,
    out: &mut Vec<Finding>,
) -> Vec<Vec<u8>> {
    let RowCheck { e, cas, now, .. } = *row;
    let ca_path = &row.layout.ca_crt(ca_id);
    let n = signed.chain.len();
    let mut used = vec![false; n];
    let mut path: Vec<usize> = Vec::new();
    let mut cur: &[u8] = &signed.der;
    let reached = loop {
        if cert::signed_by(cur, &ca.der) {
            break true;
        }
        let next = (0..n).find(|&i| {
            !used[i]
                && signed.chain.get(i).is_some_and(|c| cert::signed_by(cur, c))
                && signed.chain.get(i).map(Vec::as_slice) != Some(cur)
        });
        match next.and_then(|i| signed.chain.get(i).map(|c| (i, c))) {
            Some((i, c)) => {
                used[i] = true;
                path.push(i);
                cur = c;
            }
            None => break false,
        }
    };
    if !reached {
        let msg = if path.is_empty() {
            match cas.signer_of(&signed.der).filter(|o| *o != ca_id) {
                Some(other) => format!(
                    "signed by {} (the {} of this PKI), but {} must be signed by {} ({})",
                    other.name(),
                    other.base_name(),
                    e.name,
                    ca_id.name(),
                    ca_path.display()
                ),
                None => format!(
                    "not signed by {} ({}): its issuer is \"{}\" and its signature does not \
                     verify with the {} key{}",
                    ca_id.name(),
                    ca_path.display(),
                    signed.info.issuer,
                    ca_id.name(),
                    if n > 0 {
                        ", nor with any certificate that follows it in the file"
                    } else {
                        ""
                    }
                ),
            }
        } else {
            format!(
                "the chain in the file ends at \"{}\", which is not signed by {} ({})",
                cert::parse_der(cur).map(|i| i.subject).unwrap_or_default(),
                ca_id.name(),
                ca_path.display()
            )
        };
        out.push(finding(FindingCode::WrongCa, msg));
        return Vec::new();
    }
    for &i in &path {
        let Some(der) = signed.chain.get(i) else {
            continue;
        };
        match cert::parse_der(der) {
            Err(err) => out.push(finding(
                FindingCode::ChainInvalid,
                format!("certificate #{} in the file is invalid: {err}", i + 2),
            )),
            Ok(info) => {
                if !info.is_ca {
                    out.push(finding(
                        FindingCode::ChainInvalid,
                        format!(
                            "intermediate \"{}\" (certificate #{} in the file) is not a CA",
                            info.subject,
                            i + 2
                        ),
                    ));
                }
                if !info.valid_at(now) {
                    out.push(finding(
                        FindingCode::ChainInvalid,
                        format!(
                            "intermediate \"{}\" (certificate #{} in the file) is not valid now \
                             (NotBefore {}, NotAfter {})",
                            info.subject,
                            i + 2,
                            timefmt::rfc3339(info.not_before),
                            timefmt::rfc3339(info.not_after)
                        ),
                    ));
                }
                if signed.info.not_after > info.not_after {
                    out.push(finding(
                        FindingCode::OutlivesCa,
                        format!(
                            "NotAfter {} is after the NotAfter {} of intermediate \"{}\"",
                            timefmt::rfc3339(signed.info.not_after),
                            timefmt::rfc3339(info.not_after),
                            info.subject
                        ),
                    ));
                }
            }
        }
    }
    let mut keep: Vec<Vec<u8>> = path
        .iter()
        .filter_map(|&i| signed.chain.get(i).cloned())
        .collect();
    if signed.chain.contains(&ca.der) {
        keep.push(ca.der.clone());
    }
    // Whatever else follows must be the CA itself or the CA's own issuers.
    let mut cur: &[u8] = &ca.der;
    while let Some(j) = (0..n).find(|&j| {
        !used[j]
            && signed
                .chain
                .get(j)
                .is_some_and(|c| c.as_slice() != cur && cert::signed_by(cur, c))
    }) {
        used[j] = true;
        match signed.chain.get(j) {
            Some(c) => {
                if !keep.contains(c) {
                    keep.push(c.clone());
                }
                cur = c
            }
            None => break,
        }
    }
    for (j, c) in signed.chain.iter().enumerate() {
        if !used.get(j).copied().unwrap_or(true) && *c != ca.der {
            out.push(finding(
                FindingCode::ChainInvalid,
                format!(
                    "certificate #{} in the file (\"{}\") is not part of the chain to {}",
                    j + 2,
                    cert::parse_der(c).map(|i| i.subject).unwrap_or_default(),
                    ca_id.name()
                ),
            ));
        }
    }
    keep
}

/// Whether two subjects (as text) hold the same attributes, ignoring their order.
fn same_attributes(a: &str, b: &str) -> bool {
    let parts = |s: &str| {
        let mut v: Vec<String> = s.split(", ").map(str::to_string).collect();
        v.sort();
        v
    };
    parts(a) == parts(b)
}

fn san_diff(old: &CertInfo, new: &CertInfo) -> Option<String> {
    let (o, n) = (old.san_set(), new.san_set());
    if o == n {
        return None;
    }
    let (missing, added) = cert::san_difference(&o, &n);
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing SAN(s) {}", missing.join(", ")));
    }
    if !added.is_empty() {
        parts.push(format!("unexpected SAN(s) {}", added.join(", ")));
    }
    Some(format!(
        "{} (the SANs must equal those of the certificate it replaces)",
        parts.join("; ")
    ))
}

/// Checks the signed certificate's own attributes (role, CA flag, validity).
fn check_leaf(
    e: &Entry,
    info: &CertInfo,
    ca_id: CaId,
    ca: &CertInfo,
    now: i64,
    out: &mut Vec<Finding>,
) {
    let need = e.role.ext_key_usages();
    let lacking: Vec<&str> = need
        .iter()
        .copied()
        .filter(|u| !info.ext_key_usage.iter().any(|x| x == u))
        .collect();
    if info.ext_key_usage.is_empty() {
        out.push(finding(
            FindingCode::EkuMismatch,
            format!(
                "has no extendedKeyUsage; a {} certificate needs {}",
                e.role.describe(),
                need.join(" and ")
            ),
        ));
    } else if !lacking.is_empty() {
        out.push(finding(
            FindingCode::EkuMismatch,
            format!(
                "extendedKeyUsage is {} but a {} certificate needs {} (missing {})",
                info.ext_key_usage.join(", "),
                e.role.describe(),
                need.join(" and "),
                lacking.join(", ")
            ),
        ));
    }
    if !info.key_usage.is_empty() {
        let mut bad = Vec::new();
        if !info.key_usage.iter().any(|k| k == "digitalSignature") {
            bad.push("lacks digitalSignature, which TLS requires".to_string());
        }
        if info.key_usage.iter().any(|k| k == "keyCertSign") {
            bad.push("includes keyCertSign, which a leaf must not have".to_string());
        }
        if !bad.is_empty() {
            out.push(finding(
                FindingCode::KeyUsage,
                format!(
                    "keyUsage {} {}",
                    info.key_usage.join(", "),
                    bad.join(" and ")
                ),
            ));
        }
    }
    if info.is_ca {
        out.push(finding(
            FindingCode::IsCa,
            "is a CA certificate (basicConstraints CA:TRUE); a leaf certificate is required",
        ));
    }
    if now < info.not_before {
        out.push(finding(
            FindingCode::NotYetValid,
            format!(
                "not valid yet: NotBefore is {} (now is {})",
                timefmt::rfc3339(info.not_before),
                timefmt::rfc3339(now)
            ),
        ));
    }
    if now > info.not_after {
        out.push(finding(
            FindingCode::Expired,
            format!(
                "expired: NotAfter was {} (now is {})",
                timefmt::rfc3339(info.not_after),
                timefmt::rfc3339(now)
            ),
        ));
    }
    if info.not_after > ca.not_after {
        out.push(finding(
            FindingCode::OutlivesCa,
            format!(
                "NotAfter {} is after the {} NotAfter {}",
                timefmt::rfc3339(info.not_after),
                ca_id.name(),
                timefmt::rfc3339(ca.not_after)
            ),
        ));
    }
}

/// A signed certificate that passed every check of [`judge`].
pub(super) struct Judged {
    pub(super) unchanged: bool,
    pub(super) writes: Vec<Write_>,
    pub(super) current_der: Vec<u8>,
}

/// The checks of `csr import` for one signed certificate and its key, wherever they came
/// from (files in the CSR dir, or the certificates API): pushes findings, returns the
/// snapshot of the certificate being replaced and, when acceptable, the writes.
pub(super) fn judge(
    row: &RowCheck,
    signed: Option<&Cert>,
    key: Option<&PrivateKey>,
    key_desc: &str,
    out: &mut Vec<Finding>,
) -> (Option<CertSnapshot>, Option<Judged>) {
    let RowCheck {
        e,
        layout,
        cas,
        ca_pem,
        now,
    } = *row;
    let Some(ca_id) = e.ca else {
        return (None, None);
    };
    let mut old = None;
    // The certificate being replaced.
    let found = match pki::load(layout, e) {
        Material::Missing => {
            out.push(finding(
                FindingCode::NoCurrentCertificate,
                format!(
                    "{} does not exist, so there is no certificate to compare with and replace",
                    layout.primary_path(e).display()
                ),
            ));
            None
        }
        Material::Broken(err) => {
            out.push(finding(
                FindingCode::CurrentUnreadable,
                crate::error::report(&err),
            ));
            None
        }
        Material::Present(found) => {
            old = Some(CertSnapshot::of(&found.cert.info));
            Some(found)
        }
    };
    let ca_cert = cas.get(ca_id).and_then(|c| c.cert());
    if ca_cert.is_none() {
        out.push(finding(
            FindingCode::CaMissing,
            format!(
                "the {} certificate {} is missing or unreadable",
                ca_id.name(),
                layout.ca_crt(ca_id).display()
            ),
        ));
    }
    let mut chain: Vec<Vec<u8>> = Vec::new();
    if let Some(s) = signed {
        if let Some(ca) = ca_cert {
            if ca.info.is_ca {
                chain = check_chain(row, ca_id, ca, s, out);
            } else {
                out.push(finding(
                    FindingCode::CaNotACa,
                    format!(
                        "the {} certificate {} is not a certificate authority (CA:FALSE), so \
                         nothing signed by it can be trusted as {}",
                        ca_id.name(),
                        layout.ca_crt(ca_id).display(),
                        e.name
                    ),
                ));
            }
        }
        if let Some(k) = key {
            if !k.matches(&s.info) {
                out.push(finding(
                    FindingCode::KeyMismatch,
                    format!(
                        "the certificate's public key ({}) does not belong to {}",
                        s.info.key_algorithm, key_desc
                    ),
                ));
            }
        }
        if let Some(old) = &found {
            let old = &old.cert.info;
            if s.info.subject_der != old.subject_der {
                let msg = if s.info.subject == old.subject {
                    format!(
                        "subject \"{}\" is encoded differently from the current certificate's; \
                         the signer must copy the requested subject verbatim",
                        s.info.subject
                    )
                } else if same_attributes(&s.info.subject, &old.subject) {
                    format!(
                        "subject \"{}\" has the attributes of the current certificate's \"{}\" \
                         in a different order; the signer must keep the requested order \
                         (openssl ca reorders by its policy unless given -preserveDN)",
                        s.info.subject, old.subject
                    )
                } else {
                    format!(
                        "subject \"{}\" differs from the current certificate's \"{}\"",
                        s.info.subject, old.subject
                    )
                };
                out.push(finding(FindingCode::SubjectMismatch, msg));
            }
            if let Some(msg) = san_diff(old, &s.info) {
                out.push(finding(FindingCode::SanMismatch, msg));
            }
        }
        if let Some(ca) = ca_cert {
            check_leaf(e, &s.info, ca_id, &ca.info, now, out);
        }
    }
    let accepted = match (signed, key, &found, out.is_empty()) {
        (Some(s), Some(k), Some(found), true) => {
            let unchanged = s.der == found.cert.der && chain == found.cert.chain;
            if unchanged {
                Some(Judged {
                    unchanged: true,
                    writes: Vec::new(),
                    current_der: found.cert.der.clone(),
                })
            } else {
                let mut cert_pem = issue::cert_pem(&s.der);
                for c in &chain {
                    cert_pem.push_str(&issue::cert_pem(c));
                }
                let key_pem = key_pem_same_format(k);
                match crate::pki::install::install_writes(
                    e, found, layout, &cert_pem, &key_pem, ca_pem,
                ) {
                    Ok(w) => Some(Judged {
                        unchanged: false,
                        writes: w,
                        current_der: found.cert.der.clone(),
                    }),
                    Err(err) => {
                        out.push(finding(
                            FindingCode::NotInstallable,
                            crate::error::report(&err),
                        ));
                        None
                    }
                }
            }
        }
        _ => None,
    };
    (old, accepted)
}

/// A certificate issued elsewhere (e.g. through the certificates API) that passed the checks
/// of `csr import`.
#[derive(Debug)]
pub struct ValidatedIssue {
    /// The files that install it (empty when it is already the certificate in use).
    pub writes: Vec<Write_>,
    /// Whether it is already the certificate in use.
    pub unchanged: bool,
    /// DER of the certificate in use when it was validated (to detect concurrent changes).
    pub current_der: Vec<u8>,
    /// The certificate in use.
    pub old: Option<CertSnapshot>,
    /// The issued certificate.
    pub new: CertSnapshot,
}

/// Validates a signed certificate held in memory exactly as `csr import` validates
/// `<name>.crt`: chain to the row's CA of the PKI by signature, key match, subject DER and
/// SAN set equal to the current certificate's, EKU for the role, not a CA, valid at `now`,
/// not outliving its CA. `key_desc` names the key in messages (never its contents).
pub fn validate_issued(
    e: &Entry,
    layout: &Layout,
    cas: &Cas,
    signed: &Cert,
    key: &PrivateKey,
    key_desc: &str,
    now: i64,
) -> std::result::Result<ValidatedIssue, Vec<Finding>> {
    let ca_pem = cas
        .get(CaId::Ca)
        .and_then(|c| c.cert())
        .map(|c| issue::cert_pem(&c.der).into_bytes());
    let mut f = Vec::new();
    let row = RowCheck {
        e,
        layout,
        cas,
        ca_pem: ca_pem.as_deref(),
        now,
    };
    let (old, judged) = judge(&row, Some(signed), Some(key), key_desc, &mut f);
    match judged {
        Some(j) if f.is_empty() => Ok(ValidatedIssue {
            writes: j.writes,
            unchanged: j.unchanged,
            current_der: j.current_der,
            old,
            new: CertSnapshot::of(&signed.info),
        }),
        _ => {
            if f.is_empty() {
                f.push(finding(
                    FindingCode::NotInstallable,
                    "refused for an unknown reason",
                ));
            }
            Err(f)
        }
    }
}
