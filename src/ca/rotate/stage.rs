//! *stage*: a new CA (made, or validated when placed), the bundle old+new everywhere.

use super::files::{next_crt, next_key, parse, Parsed};
use super::phase::{key_of, State};
use super::plan::{kubeconfig_writes, pem_of, write, Plan};
use crate::ca::join_hash;
use crate::error::{Error, Result};
use crate::pki::cert::{self, PrivateKey};
use crate::pki::inventory::CaId;
use crate::pki::issue::{self, KeyAlgorithm};
use crate::pki::Layout;
use crate::timefmt;

/// Checks a `.next` CA placed before stage (or made by it): a self-signed CA valid now,
/// its key (when present) matches, a different key than the current CA.
pub(super) fn validate_next(
    id: CaId,
    layout: &Layout,
    next: &Parsed,
    key: &Option<(PrivateKey, Vec<u8>)>,
    current: &Parsed,
    current_key_present: bool,
    now: i64,
) -> Result<()> {
    let path = next_crt(layout, id);
    let bad = |reason: String| Error::Validation {
        cert: id.name().into(),
        reason: format!("{}: {reason}", path.display()).into(),
    };
    if !next.info.is_ca {
        return Err(bad("not a CA (basicConstraints CA:FALSE or absent)".into()));
    }
    if !cert::signed_by(&next.der, &next.der) {
        return Err(bad("not self-signed".into()));
    }
    if !next.info.valid_at(now) {
        return Err(bad(format!(
            "not valid now ({}): valid {} to {}",
            timefmt::rfc3339(now),
            timefmt::rfc3339(next.info.not_before),
            timefmt::rfc3339(next.info.not_after)
        )));
    }
    if next.info.spki_der == current.info.spki_der {
        return Err(bad(format!(
            "has the same key as the current {} ({}): a rotation needs a new key (same-key \
             renewal is `ca renew`)",
            id.name(),
            join_hash(&next.info.spki_der)
        )));
    }
    match key {
        Some((k, _)) if !k.matches(&next.info) => Err(bad(format!(
            "{} is not its key",
            next_key(layout, id).display()
        ))),
        None if current_key_present => Err(bad(format!(
            "{} is absent, but this {} signs with a local key: place both files (an \
             external CA's certificate alone only when {} is absent too)",
            next_key(layout, id).display(),
            id.name(),
            layout.ca_key(id).display()
        ))),
        _ => Ok(()),
    }
}

pub(super) fn stage(
    layout: &Layout,
    id: CaId,
    s: &State,
    now: i64,
    validity: i64,
    plan: &mut Plan,
) -> Result<Parsed> {
    let old = &s.bundle[0];
    if s.key.is_some() && !key_of(&s.key, old) {
        return Err(Error::Validation {
            cert: id.name().into(),
            reason: format!(
                "{} does not match {}",
                layout.ca_key(id).display(),
                layout.ca_crt(id).display()
            )
            .into(),
        });
    }
    let new = match &s.next {
        Some(n) => {
            validate_next(id, layout, n, &s.next_key, old, s.key.is_some(), now)?;
            Parsed {
                der: n.der.clone(),
                info: n.info.clone(),
            }
        }
        None => {
            if s.key.is_none() {
                return Err(Error::CaKeyMissing {
                    ca: id.name().into(),
                    path: layout.ca_key(id),
                });
            }
            let alg = KeyAlgorithm::Same.resolve(&old.info.key_algorithm);
            let issue_err = |e: issue::IssueError| Error::Issue {
                cert: id.name().into(),
                reason: crate::error::Reason::of(e),
            };
            let (key, key_pem) = issue::new_key(alg).map_err(issue_err)?;
            let der = issue::self_signed_ca_named(
                &old.info.subject_der,
                &old.info.dns_names,
                &key.pair,
                now - issue::BACKDATE_SECONDS,
                now + validity,
            )
            .map_err(issue_err)?;
            let parsed = parse(&der, &next_crt(layout, id))?;
            validate_next(
                id,
                layout,
                &parsed,
                &Some((key, key_pem.clone().into_bytes())),
                old,
                true,
                now,
            )?;
            plan.push(
                write(next_key(layout, id), key_pem.into_bytes(), 0o600),
                "the new CA's key",
            );
            plan.push(
                write(
                    next_crt(layout, id),
                    issue::cert_pem(&der).into_bytes(),
                    0o644,
                ),
                "the new CA",
            );
            parsed
        }
    };
    let bundle = pem_of(&[old, &new]);
    plan.push(
        write(layout.ca_crt(id), bundle.clone().into_bytes(), 0o644),
        "trust bundle old+new (the old CA first: it still signs)",
    );
    kubeconfig_writes(
        plan,
        layout,
        id,
        &[old, &new],
        &bundle,
        "certificate-authority-data old+new",
        &[],
    )?;
    Ok(new)
}
