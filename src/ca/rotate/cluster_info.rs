//! `ca rotate ca --kubeconfig`: the update of the `cluster-info` ConfigMap in kube-public
//! after the files are committed (the updater is injected: `ca` cannot depend on `kubeapi`).

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::checklist::CLUSTER_INFO_MANUAL;
use super::{CaRotateParams, CaRotateResult};
use crate::error::{Error, Result};
use crate::pki::inventory::CaId;
use crate::pki::{fsread, Layout};

/// What `ca rotate ca --kubeconfig` did to the `cluster-info` ConfigMap in kube-public.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfoResult {
    /// Whether the ConfigMap was written (its kubeconfig's CA data is now the bundle of
    /// `<ca>.crt`).
    pub updated: bool,
    /// It already held exactly that bundle: nothing was written.
    pub unchanged: bool,
    /// Dry run: whether it would be written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_update: Option<bool>,
    /// The API server (the kubeconfig's current context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The ConfigMap's resourceVersion after the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Why it was not updated (the call then fails with -31009 / exit 1; the files stay
    /// committed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an update of cluster-info through the API server did ([`rotate_with`]'s updater:
/// `kubeapi::clusterinfo`, which `ca` cannot depend on).
#[derive(Debug)]
pub struct ClusterInfoAttempt {
    /// The API server of the kubeconfig's current context (None: the kubeconfig was unusable).
    pub server: Option<String>,
    /// How it went (no key material, no ConfigMap contents).
    pub result: Result<ClusterInfoOutcome>,
}

/// A successful [`ClusterInfoAttempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfoOutcome {
    /// Whether the ConfigMap was written.
    pub written: bool,
    /// Whether its CA data differed from the bundle (what a dry run would write).
    pub differs: bool,
    /// Its resourceVersion after the call.
    pub resource_version: String,
}

/// The updater of [`rotate_with`]: (kubeconfig, bundle PEM, dry run) → attempt.
pub type ClusterInfoUpdater<'a> = &'a dyn Fn(&Path, &[u8], bool) -> ClusterInfoAttempt;

/// After the files: with `kubeconfig` and CA `ca`, cluster-info gets `<ca>.crt` (or, in a
/// dry run, the bundle the phase would write: `dry_bundle`).
pub(super) fn cluster_info_step(
    p: &CaRotateParams,
    layout: &Layout,
    id: CaId,
    dry_bundle: Option<Vec<u8>>,
    update: ClusterInfoUpdater<'_>,
    mut result: CaRotateResult,
) -> Result<CaRotateResult> {
    let Some(k) = p.kubeconfig.as_deref() else {
        return Ok(result);
    };
    if id != CaId::Ca {
        result.checklist.push(format!(
            "--kubeconfig: cluster-info holds only the cluster CA (ca); nothing to update \
             there for {}",
            id.name()
        ));
        return Ok(result);
    }
    let bundle = match dry_bundle {
        Some(b) => b,
        None => fsread::read(&layout.ca_crt(id))?,
    };
    let a = update(Path::new(k), &bundle, p.dry_run);
    match a.result {
        Ok(o) => {
            result.cluster_info = Some(ClusterInfoResult {
                updated: o.written,
                unchanged: !o.differs,
                would_update: p.dry_run.then_some(o.differs),
                server: a.server.clone(),
                resource_version: Some(o.resource_version.clone()),
                error: None,
            });
            let line = if p.dry_run {
                format!(
                    "cluster-info (kube-public) through {}: {}",
                    a.server.as_deref().unwrap_or(k),
                    if o.differs {
                        "would be updated with the bundle of this phase"
                    } else {
                        "already holds the bundle of this phase"
                    }
                )
            } else {
                format!(
                    "cluster-info (kube-public) {} through {} (resourceVersion {}): its \
                     jws-kubeconfig-<token-id> signatures no longer match the content until \
                     kube-controller-manager's bootstrapsigner controller re-signs it \
                     (kubeadm enables it: --controllers=*,bootstrapsigner,tokencleaner); \
                     check `kubectl -n kube-public get cm cluster-info -o yaml` before \
                     `kubeadm join` with a token",
                    if o.written {
                        "updated with the bundle of this phase"
                    } else {
                        "already held the bundle of this phase"
                    },
                    a.server.as_deref().unwrap_or(k),
                    o.resource_version
                )
            };
            set_cluster_info_line(&mut result.checklist, line);
            Ok(result)
        }
        Err(e) => {
            let reason = crate::error::report(&e);
            let server = a
                .server
                .clone()
                .unwrap_or_else(|| format!("of the kubeconfig {k}"));
            result.cluster_info = Some(ClusterInfoResult {
                updated: false,
                unchanged: false,
                would_update: None,
                server: a.server,
                resource_version: None,
                error: Some(reason.clone()),
            });
            let value = serde_json::to_value(&result)
                .map_err(|e| Error::InvalidArgument(format!("encoding the result failed: {e}")))?;
            Err(Error::ClusterInfo {
                server,
                reason,
                what: result.message.clone(),
                result: Box::new(value),
            })
        }
    }
}

/// Replaces the manual cluster-info line of the checklist (or adds `line`).
pub(super) fn set_cluster_info_line(checklist: &mut Vec<String>, line: String) {
    match checklist.iter().position(|l| l == CLUSTER_INFO_MANUAL) {
        Some(i) => checklist[i] = line,
        None => checklist.push(line),
    }
}
