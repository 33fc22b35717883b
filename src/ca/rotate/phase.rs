//! Phase detection: where a rotation stands, derived from the files alone ([`detect`]).

use std::path::Path;

use super::files::{
    leaves, next_crt, next_key, prev_crt, prev_key, read_bundle, read_key, Leaf, Parsed,
};
use super::{RotationPhase, RotationStatus};
use crate::ca::join_hash;
use crate::error::{Error, Result};
use crate::pki::cert::{self, PrivateKey};
use crate::pki::inventory::CaId;
use crate::pki::Layout;

/// What the files say about a rotation of one CA.
pub(super) struct State {
    pub(super) phase: RotationPhase,
    pub(super) detail: String,
    pub(super) bundle: Vec<Parsed>,
    pub(super) key: Option<(PrivateKey, Vec<u8>)>,
    pub(super) next: Option<Parsed>,
    pub(super) next_key: Option<(PrivateKey, Vec<u8>)>,
    pub(super) prev: Option<Parsed>,
    pub(super) prev_key: Option<(PrivateKey, Vec<u8>)>,
    pub(super) leaves: Vec<Leaf>,
    pub(super) by_new: usize,
}

impl State {
    /// (old, new) CA of the rotation in progress.
    /// By the files: with `.next` files the current CA is the old one; with `.prev` files
    /// (and no `.next`) the current CA is the new one.
    pub(super) fn old_new(&self) -> (Option<&Parsed>, Option<&Parsed>) {
        if self.next.is_none() && self.prev.is_some() {
            (self.prev.as_ref(), self.bundle.first())
        } else {
            (self.bundle.first(), self.next.as_ref())
        }
    }
}

pub(super) fn key_of(k: &Option<(PrivateKey, Vec<u8>)>, c: &Parsed) -> bool {
    k.as_ref().is_some_and(|(k, _)| k.matches(&c.info))
}

pub(super) fn detect(layout: &Layout, id: CaId) -> Result<State> {
    let crt = layout.ca_crt(id);
    let bundle = read_bundle(&crt)?.ok_or_else(|| Error::CaMissing {
        ca: id.name().into(),
        dir: layout.cert_dir.clone(),
        reason: format!("{} does not exist", crt.display()),
    })?;
    let one = |p: &Path| -> Result<Option<Parsed>> {
        Ok(read_bundle(p)?.and_then(|mut v| {
            if v.is_empty() {
                None
            } else {
                Some(v.remove(0))
            }
        }))
    };
    let mut s = State {
        phase: RotationPhase::Inconsistent,
        detail: String::new(),
        key: read_key(&layout.ca_key(id))?,
        next: one(&next_crt(layout, id))?,
        next_key: read_key(&next_key(layout, id))?,
        prev: one(&prev_crt(layout, id))?,
        prev_key: read_key(&prev_key(layout, id))?,
        leaves: leaves(layout, id)?,
        bundle,
        by_new: 0,
    };
    let same = |a: Option<&Parsed>, b: Option<&Parsed>| match (a, b) {
        (Some(a), Some(b)) => a.der == b.der,
        _ => false,
    };
    let n = s.bundle.len();
    let file = crt.display().to_string();
    let (_, new) = s.old_new();
    let new_der = new.map(|c| c.der.clone());
    let old_der = s.old_new().0.map(|c| c.der.clone());
    let count = |der: &Option<Vec<u8>>| {
        der.as_ref().map_or(0, |d| {
            s.leaves
                .iter()
                .filter(|l| cert::signed_by(&l.der, d))
                .count()
        })
    };
    let by_new = count(&new_der);
    let by_old = count(&old_der);
    let total = s.leaves.len();
    let (phase, detail) = if s.next.is_some() {
        if s.prev_key.is_some() {
            (
                RotationPhase::Inconsistent,
                format!(
                    "both {} and {} exist",
                    next_crt(layout, id).display(),
                    prev_key(layout, id).display()
                ),
            )
        } else if n == 1 {
            (
                RotationPhase::None,
                format!(
                    "a new CA is placed at {} (stage will use it)",
                    next_crt(layout, id).display()
                ),
            )
        } else if n == 2 && same(s.bundle.get(1), s.next.as_ref()) {
            let first = &s.bundle[0];
            if s.key.is_some() && !key_of(&s.key, first) {
                (
                    RotationPhase::Inconsistent,
                    format!("{file} is old+new but the key is not the old CA's"),
                )
            } else if by_new > 0 {
                (
                    RotationPhase::Inconsistent,
                    format!(
                        "staged, but {by_new} of {total} leaves are signed by the new CA \
                         (promote interrupted?)"
                    ),
                )
            } else {
                (
                    RotationPhase::Staged,
                    format!(
                        "{file} trusts old+new, the old CA signs; {total} leaves by the old CA"
                    ),
                )
            }
        } else {
            (
                RotationPhase::Inconsistent,
                format!(
                    "{} exists but {file} holds {n} certificate(s) that are not old+new",
                    next_crt(layout, id).display()
                ),
            )
        }
    } else if s.prev.is_some() {
        let first = s.bundle.first();
        if n == 2 && same(s.bundle.get(1), s.prev.as_ref()) {
            if !first.is_some_and(|f| key_of(&s.key, f)) {
                (
                    RotationPhase::Inconsistent,
                    format!("{file} is new+old but the key is not the new CA's"),
                )
            } else if s.prev_key.is_none() {
                (
                    RotationPhase::Inconsistent,
                    format!(
                        "{file} is new+old but {} is absent",
                        prev_key(layout, id).display()
                    ),
                )
            } else if by_new < total {
                (
                    RotationPhase::Inconsistent,
                    format!("promote interrupted: {by_new} of {total} leaves signed by the new CA"),
                )
            } else {
                (
                    RotationPhase::Promoted,
                    format!("{file} trusts new+old, the new CA signs all {total} leaves"),
                )
            }
        } else if n == 1 && !same(first, s.prev.as_ref()) {
            if s.prev_key.is_some() {
                (
                    RotationPhase::Inconsistent,
                    format!(
                        "{file} no longer holds the old CA but {} is still there",
                        prev_key(layout, id).display()
                    ),
                )
            } else if by_old > 0 {
                (
                    RotationPhase::Inconsistent,
                    format!(
                        "distrusted, but {by_old} of {total} leaves are still signed by the old CA"
                    ),
                )
            } else {
                (
                    RotationPhase::Distrusted,
                    format!("{file} trusts the new CA only"),
                )
            }
        } else {
            (
                RotationPhase::Inconsistent,
                format!(
                    "{} exists but {file} holds {n} certificate(s) that are not new+old",
                    prev_crt(layout, id).display()
                ),
            )
        }
    } else if s.next_key.is_some() || s.prev_key.is_some() {
        (
            RotationPhase::Inconsistent,
            "a .next.key or .prev.key exists without its certificate".into(),
        )
    } else if n == 1 {
        (RotationPhase::None, "no rotation in progress".into())
    } else {
        (
            RotationPhase::Inconsistent,
            format!("{file} holds {n} certificates but no rotation files exist"),
        )
    };
    s.phase = phase;
    s.detail = detail;
    s.by_new = by_new;
    Ok(s)
}

/// The `rotation` object of `ca check` for one CA: `None` when no rotation is in progress
/// (so `ca check`'s JSON stays as it was), or when the CA cannot be read (`ca check`
/// reports that itself).
pub fn status(layout: &Layout, id: CaId) -> Option<RotationStatus> {
    let s = detect(layout, id).ok()?;
    if s.phase == RotationPhase::None && s.next.is_none() {
        return None;
    }
    let (_, new) = s.old_new();
    Some(RotationStatus {
        phase: s.phase,
        detail: s.detail.clone(),
        leaves: s.leaves.len(),
        leaves_signed_by_new: s.by_new,
        new_spki_sha256: new.map(|c| join_hash(&c.info.spki_der)),
    })
}

/// Refuses a same-key `ca renew` / `ca install` of `id` while a rotation of it is staged or
/// promoted (or an inconsistent mix): it would rewrite `<ca>.crt` with one certificate and
/// drop the other CA of the bundle.
pub(in crate::ca) fn refuse_during_rotation(layout: &Layout, id: CaId, what: &str) -> Result<()> {
    let Ok(s) = detect(layout, id) else {
        return Ok(());
    };
    match s.phase {
        RotationPhase::None | RotationPhase::Distrusted => Ok(()),
        _ => Err(Error::RotationPhase {
            ca: id.name().into(),
            requested: what.into(),
            phase: s.phase.name().into(),
            detail: format!("{}; finish the rotation (or roll it back) first", s.detail),
        }),
    }
}

pub(super) fn wrong_phase(id: CaId, requested: String, s: &State) -> Error {
    Error::RotationPhase {
        ca: id.name().into(),
        requested,
        phase: s.phase.name().into(),
        detail: s.detail.clone(),
    }
}
