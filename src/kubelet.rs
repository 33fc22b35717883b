//! kubelet.conf repair (kubeadm#1753): a kubelet.conf made by old `kubeadm init` embeds a
//! client cert the kubelet never rotates. When `kubelet-client-current.pem` holds a valid
//! cert+key for the same identity signed by the cluster CA, point kubelet.conf at it — as
//! kubeadm's `kubelet-finalize enable-client-cert-rotation` phase does — after a backup.

use std::path::PathBuf;
use std::time::Duration;

pub mod rebuild;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::check::{kubelet_conf_status, KubeletConfStatus};
use crate::error::{Error, Result};
use crate::pki::cert;
use crate::pki::inventory::CaId;
use crate::pki::kubeconfig::{Kubeconfig, Source};
use crate::pki::store::{self, Store, Write_};
use crate::pki::{self, Layout};
use crate::timefmt;

/// Parameters of `kubelet-conf`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubeletConfParams {
    /// Dir holding kubelet.conf (default `/etc/kubernetes`).
    #[serde(default)]
    pub kubeconfig_dir: Option<String>,
    /// PKI dir with ca.crt (default `/etc/kubernetes/pki`).
    #[serde(default)]
    pub cert_dir: Option<String>,
    /// kubelet PKI dir (default `/var/lib/kubelet/pki`).
    #[serde(default)]
    pub kubelet_pki: Option<String>,
    /// Report what would be done.
    #[serde(default)]
    pub dry_run: bool,
    /// Repair (false: only diagnose).
    #[serde(default)]
    pub repair: bool,
    /// Fixed clock, RFC 3339.
    #[serde(default)]
    pub now: Option<String>,
}

/// Result of `kubelet-conf`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KubeletConfResult {
    /// The diagnosis (after the repair, when one was made).
    #[serde(flatten)]
    pub status: KubeletConfStatus,
    /// What was done.
    pub action: KubeletConfAction,
    /// Why.
    pub reason: String,
    /// Backup of the old kubelet.conf.
    pub backup_dir: Option<String>,
    /// Whether kubelet.conf changed.
    pub changed: bool,
}

/// What `kubelet-conf` did.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum KubeletConfAction {
    /// kubelet.conf now references `kubelet-client-current.pem`.
    Repaired,
    /// Dry run: the repair is possible and would be made.
    WouldRepair,
    /// Nothing to do, or only a diagnosis was asked for.
    None,
    /// The repair is not safe: see the reason.
    Refused,
}

impl KubeletConfAction {
    /// The kebab-case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            KubeletConfAction::Repaired => "repaired",
            KubeletConfAction::WouldRepair => "would-repair",
            KubeletConfAction::None => "none",
            KubeletConfAction::Refused => "refused",
        }
    }
}

impl std::fmt::Display for KubeletConfAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Diagnoses and (optionally) repairs kubelet.conf.
pub fn repair(p: &KubeletConfParams) -> Result<KubeletConfResult> {
    let layout = Layout::new(
        p.cert_dir.as_deref().unwrap_or(pki::DEFAULT_CERT_DIR),
        p.kubeconfig_dir
            .as_deref()
            .unwrap_or(pki::DEFAULT_KUBECONFIG_DIR),
        None,
    );
    let kubelet_pki = PathBuf::from(p.kubelet_pki.as_deref().unwrap_or(pki::DEFAULT_KUBELET_PKI));
    let now = match &p.now {
        Some(s) => timefmt::parse_rfc3339(s)?,
        None => timefmt::now_unix(),
    };
    let status = kubelet_conf_status(&layout, &kubelet_pki, now);
    let mut out = KubeletConfResult {
        status,
        action: KubeletConfAction::None,
        reason: String::new(),
        backup_dir: None,
        changed: false,
    };
    let refuse = |mut o: KubeletConfResult, why: String| {
        o.action = KubeletConfAction::Refused;
        o.reason = why;
        Ok(o)
    };
    let path = layout.kubeconfig_dir.join("kubelet.conf");
    if !out.status.present {
        return refuse(out, format!("{} does not exist", path.display()));
    }
    let kc = Kubeconfig::load(&path)?;
    if !matches!(kc.client_cert, Source::Embedded(_)) {
        out.reason = "kubelet.conf already references a client certificate file".into();
        return Ok(out);
    }
    if !p.repair {
        out.reason = out.status.advice.clone();
        return Ok(out);
    }
    let current = kubelet_pki.join("kubelet-client-current.pem");
    if !pki::file_exists(&current) {
        return refuse(out, format!("{} does not exist", current.display()));
    }
    let bytes = crate::pki::fsread::read_link_in_dir(&current)?;
    let pair = match (
        cert::parse_pem_bundle(&bytes),
        cert::parse_private_key(&bytes),
    ) {
        (Ok(c), Ok(k)) => (c, k),
        (Err(e), _) => return refuse(out, format!("{}: {e}", current.display())),
        (_, Err(e)) => return refuse(out, format!("{}: {e}", current.display())),
    };
    let (c, k) = pair;
    if !k.matches(&c.info) {
        return refuse(
            out,
            format!(
                "{}: the key does not match the certificate",
                current.display()
            ),
        );
    }
    let embedded = cert::parse_pem_bundle(&kc.client_cert_pem()?).map_err(|source| Error::Pem {
        path: path.clone(),
        source,
    })?;
    if embedded.info.common_name != c.info.common_name
        || embedded.info.organizations != c.info.organizations
    {
        return refuse(
            out,
            format!(
                "{} is for {:?}, kubelet.conf for {:?}: not the same identity",
                current.display(),
                c.info.subject,
                embedded.info.subject
            ),
        );
    }
    let ca = pki::CaMaterial::load(&layout, CaId::Ca);
    let Some(ca_cert) = ca.cert() else {
        return refuse(
            out,
            format!("{} is missing", layout.ca_crt(CaId::Ca).display()),
        );
    };
    if !cert::signed_by(&c.der, &ca_cert.der) {
        return refuse(out, format!("{} is not signed by ca", current.display()));
    }
    if !c.info.valid_at(now) {
        return refuse(
            out,
            format!("{} is expired or not yet valid", current.display()),
        );
    }
    let text = kc.rewrite_user_to_file(&current)?;
    if p.dry_run {
        out.action = KubeletConfAction::WouldRepair;
        out.reason = format!("would point kubelet.conf at {}", current.display());
        out.changed = true;
        return Ok(out);
    }
    let mut store = Store::open(&layout.cert_dir, Duration::from_secs(300))?;
    let backup = store.commit(
        &[Write_ {
            target: path.clone(),
            contents: text.into_bytes(),
            mode: 0o600,
            force_mode: false,
        }],
        &store::default_backup_root(&layout.cert_dir),
        &store::stamp(now),
    )?;
    drop(store);
    out.status = kubelet_conf_status(&layout, &kubelet_pki, now);
    out.action = KubeletConfAction::Repaired;
    out.reason = format!("kubelet.conf now references {}", current.display());
    out.backup_dir = backup.map(|b| b.display().to_string());
    out.changed = true;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text output prints `as_str`, JSON the serde name: they must agree.
    #[test]
    fn action_names_match_serde() {
        for a in [
            KubeletConfAction::Repaired,
            KubeletConfAction::WouldRepair,
            KubeletConfAction::None,
            KubeletConfAction::Refused,
        ] {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
    }
}
