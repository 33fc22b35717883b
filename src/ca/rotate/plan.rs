//! The planned transaction of a phase: the files it writes (with why) and removes, and
//! the kubeconfigs' CA data.

use std::path::PathBuf;

use super::files::{trusting_kubeconfigs, Parsed};
use crate::error::Result;
use crate::pki::inventory::CaId;
use crate::pki::issue;
use crate::pki::store::{Link, Write_};
use crate::pki::{fsread, Layout};

pub(super) fn pem_of(certs: &[&Parsed]) -> String {
    certs.iter().map(|c| issue::cert_pem(&c.der)).collect()
}

pub(super) fn write(target: PathBuf, contents: Vec<u8>, mode: u32) -> Write_ {
    Write_ {
        target,
        contents,
        mode,
        force_mode: mode == 0o600,
    }
}

/// The planned transaction of a phase.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) writes: Vec<(Write_, String)>,
    pub(super) removes: Vec<(PathBuf, String)>,
    pub(super) links: Vec<(Link, String)>,
}

impl Plan {
    pub(super) fn push(&mut self, w: Write_, what: impl Into<String>) {
        self.writes.push((w, what.into()));
    }
    pub(super) fn link(&mut self, l: Link, what: impl Into<String>) {
        self.links.push((l, what.into()));
    }
    pub(super) fn remove(&mut self, p: PathBuf, what: impl Into<String>) {
        if fsread::exists_nofollow(&p) {
            self.removes.push((p, what.into()));
        }
    }
}

/// The kubeconfigs holding the old or new CA get `bundle` as their CA data (and, in
/// `resign`, a new embedded client certificate).
pub(super) fn kubeconfig_writes(
    plan: &mut Plan,
    layout: &Layout,
    id: CaId,
    cas: &[&Parsed],
    bundle: &str,
    what: &str,
    resign: &[(PathBuf, String)],
) -> Result<()> {
    for (kc, _) in trusting_kubeconfigs(layout, id, cas)? {
        let cert = resign
            .iter()
            .find(|(p, _)| *p == kc.path)
            .map(|(_, pem)| pem.as_bytes());
        let text = kc.rewrite_embedded(cert, None, Some(bundle.as_bytes()))?;
        if text != kc.text {
            let why = if cert.is_some() {
                format!("{what}; client certificate re-signed by the new CA")
            } else {
                what.to_string()
            };
            plan.push(write(kc.path.clone(), text.into_bytes(), 0o600), why);
        }
    }
    Ok(())
}
