//! The `cluster-info` ConfigMap in `kube-public` (kubeadm's bootstrap-token discovery
//! document): `ca rotate ca --kubeconfig` sets the `certificate-authority-data` of the
//! kubeconfig in its `data.kubeconfig` to the node's new trust bundle, leaving every other
//! byte of that kubeconfig and every other key of the ConfigMap as they are.
//!
//! The update is a GET then a PUT of the object as read (its `metadata.resourceVersion`
//! included): if anyone changed cluster-info in between, the API server answers 409 Conflict
//! and nothing is overwritten — the caller reports it.
//!
//! The `jws-kubeconfig-<token-id>` keys are detached JWS signatures of `data.kubeconfig` by
//! each bootstrap token; they no longer match after the update. kubecert does not (cannot:
//! it does not hold the token secrets) re-sign; kube-controller-manager's `bootstrapsigner`
//! controller (enabled by kubeadm: `--controllers=*,bootstrapsigner,tokencleaner`) watches
//! this ConfigMap and recomputes every signature when its content changes.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use kube::{Api, Client};

use super::{api_err, KubeApiError, Result};
use crate::ca::rotate::{CaRotateParams, CaRotateResult, ClusterInfoAttempt, ClusterInfoOutcome};

/// Namespace of the ConfigMap.
pub const NAMESPACE: &str = "kube-public";
/// Name of the ConfigMap.
pub const NAME: &str = "cluster-info";
/// The key holding the kubeconfig.
pub const KUBECONFIG_KEY: &str = "kubeconfig";

/// `ca rotate` with the cluster-info update through the API server (the CLI's and the RPC
/// method's entry; `ca` cannot depend on this module).
pub fn rotate(p: &CaRotateParams) -> crate::Result<CaRotateResult> {
    crate::ca::rotate::rotate_with(p, &update_blocking)
}

/// Sets cluster-info's CA data to `bundle` (PEM) through the API server of `kubeconfig`
/// (blocking: on the current runtime or a new one). `dry_run`: read and compare only.
pub fn update_blocking(kubeconfig: &Path, bundle: &[u8], dry_run: bool) -> ClusterInfoAttempt {
    match super::block_on(update(kubeconfig, bundle, dry_run)) {
        Ok((server, result)) => ClusterInfoAttempt {
            server,
            result: result.map_err(crate::Error::from),
        },
        Err(e) => ClusterInfoAttempt {
            server: None,
            result: Err(e.into()),
        },
    }
}

/// Async [`update_blocking`].
/// Gives the API server (when the kubeconfig names one) and the outcome.
pub async fn update(
    kubeconfig: &Path,
    bundle: &[u8],
    dry_run: bool,
) -> (Option<String>, Result<ClusterInfoOutcome>) {
    let mut config = match super::config(kubeconfig).await {
        Ok(c) => c,
        Err(e) => return (None, Err(e)),
    };
    let server = config.cluster_url.to_string();
    let server = server.trim_end_matches('/').to_string();
    // Bounded: an unreachable API server fails the call in seconds, not minutes.
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(30));
    config.write_timeout = Some(Duration::from_secs(30));
    let result = match Client::try_from(config) {
        Ok(client) => put(client, bundle, dry_run).await,
        Err(e) => Err(KubeApiError::Kubeconfig {
            path: kubeconfig.to_path_buf(),
            reason: crate::error::scrub(&super::describe(&e)),
        }),
    };
    (Some(server), result)
}

async fn put(client: Client, bundle: &[u8], dry_run: bool) -> Result<ClusterInfoOutcome> {
    let api: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
    let mut cm = api
        .get(NAME)
        .await
        .map_err(api_err(format!("reading ConfigMap {NAMESPACE}/{NAME}")))?;
    let rv = cm.metadata.resource_version.clone().unwrap_or_default();
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(KUBECONFIG_KEY))
        .ok_or_else(|| KubeApiError::Api {
            op: format!("reading ConfigMap {NAMESPACE}/{NAME}"),
            reason: format!("it has no data.{KUBECONFIG_KEY}"),
        })?;
    let label = Path::new("kube-public/cluster-info data.kubeconfig");
    let Some(new) = crate::pki::kubeconfig::set_cluster_ca_data(label, text, bundle)? else {
        return Ok(ClusterInfoOutcome {
            written: false,
            differs: false,
            resource_version: rv,
        });
    };
    if dry_run {
        return Ok(ClusterInfoOutcome {
            written: false,
            differs: true,
            resource_version: rv,
        });
    }
    if let Some(d) = cm.data.as_mut() {
        d.insert(KUBECONFIG_KEY.to_string(), new);
    }
    // The object as read, resourceVersion included: a concurrent change is 409 Conflict.
    let after = api
        .replace(NAME, &PostParams::default(), &cm)
        .await
        .map_err(api_err(format!(
            "updating ConfigMap {NAMESPACE}/{NAME} (resourceVersion {rv})"
        )))?;
    Ok(ClusterInfoOutcome {
        written: true,
        differs: true,
        resource_version: after.metadata.resource_version.unwrap_or_default(),
    })
}
