//! The `kubeadm-config` ConfigMap in `kube-system` (written by kubeadm's `upload-config`):
//! the text of its `ClusterConfiguration` key, the source of `--kubeconfig` for
//! `check --drift`, `config expected`, `renew --reconcile-sans` and their RPC params
//! ([`crate::config::ConfigParams`]). `config` parses it; this module only fetches it (a
//! GET through kube-rs, bounded in time). A missing ConfigMap, a missing key, a refused or
//! unreachable API server are each a [`ConfigError::ConfigMap`] naming the ConfigMap, the
//! kubeconfig and the API server; nothing falls back to another source.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};

use crate::config::{ConfigError, ConfigMapProblem};

/// Namespace of the ConfigMap.
pub const NAMESPACE: &str = "kube-system";
/// Name of the ConfigMap.
pub const NAME: &str = "kubeadm-config";
/// The key holding the ClusterConfiguration.
pub const KEY: &str = "ClusterConfiguration";

/// Reads `data.ClusterConfiguration` of kube-system/kubeadm-config through the API server
/// of `kubeconfig` (blocking: on the current runtime or a new one). This is the
/// [`crate::config::ConfigMapReader`] of a build with the `k8s` feature.
pub fn read_blocking(kubeconfig: &Path) -> Result<String, Box<ConfigError>> {
    let err = |server: Option<String>, problem| {
        Box::new(ConfigError::ConfigMap {
            kubeconfig: kubeconfig.to_path_buf(),
            server,
            problem,
        })
    };
    match super::block_on(read(kubeconfig)) {
        Ok(r) => r,
        Err(e) => Err(err(
            None,
            ConfigMapProblem::Api(crate::error::scrub(&e.to_string())),
        )),
    }
}

/// Async [`read_blocking`].
pub async fn read(kubeconfig: &Path) -> Result<String, Box<ConfigError>> {
    let err = |server: Option<String>, problem| {
        Box::new(ConfigError::ConfigMap {
            kubeconfig: kubeconfig.to_path_buf(),
            server,
            problem,
        })
    };
    let mut config = match super::config(kubeconfig).await {
        Ok(c) => c,
        Err(e) => {
            let reason = match e {
                super::KubeApiError::Kubeconfig { reason, .. } => reason,
                other => crate::error::scrub(&other.to_string()),
            };
            return Err(err(None, ConfigMapProblem::Kubeconfig(reason)));
        }
    };
    let server = config.cluster_url.to_string();
    let server = Some(server.trim_end_matches('/').to_string());
    // Bounded: an unreachable API server fails the call in seconds, not minutes.
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(30));
    let client = Client::try_from(config).map_err(|e| {
        err(
            server.clone(),
            ConfigMapProblem::Kubeconfig(crate::error::scrub(&super::describe(&e))),
        )
    })?;
    let api: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
    let cm = match api.get(NAME).await {
        Ok(cm) => cm,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(err(server, ConfigMapProblem::NotFound));
        }
        Err(e) => return Err(err(server, ConfigMapProblem::Api(super::describe(&e)))),
    };
    cm.data
        .and_then(|mut d| d.remove(KEY))
        .ok_or_else(|| err(server, ConfigMapProblem::NoKey))
}
