//! kubecert: keeps the certificates of kubeadm-built Kubernetes clusters alive.
//!
//! The library holds everything; the `kubecert` binary (CLI) and the JSON-RPC agent are thin
//! faces over the same calls and the same serde types:
//!
//! - [`pki`]: the inventory table, reading certs/keys/kubeconfigs, issuing, the crash-safe store;
//! - [`ca`]: the CA lifecycle — `ca check`, same-key `ca renew`, `ca export`/`ca install`;
//! - [`check`]: expiry report in kubeadm's `CertificateExpirationInfo` shape;
//! - [`renew`]: plan → issue → install, faithful to `kubeadm certs renew`;
//! - [`csr`]: external CA — CSR export and validated, all-or-nothing import of signed certs;
//! - [`render`]: kubeadm's table, JSON and YAML renderings;
//! - [`metrics`]: Prometheus text exposition of a check (x509-certificate-exporter names);
//! - [`confine`]: the roots the agent serves and which path params a caller may choose;
//! - [`ops`]: restart, health and the served-certificate proof of the running control plane;
//! - [`renew_state`]: the scheduled renewal's state file (written by autorenew, read by metrics);
//! - [`autorenew`]: the scheduled, conditional renewal with static pod restarts;
//! - [`build_info`]: version, git commit, build date and features (set by build.rs);
//! - `kubeapi` (feature `k8s`, default): the certificates API — `renew --use-api`, the
//!   `sign` external signer and the policy-checked `approve`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod autorenew;
pub mod build_info;
pub mod ca;
pub mod check;
pub mod config;
pub mod confine;
pub mod csr;
pub mod demo;
pub mod der;
pub mod error;
#[cfg(feature = "k8s")]
pub mod kubeapi;
pub mod kubelet;
pub mod metrics;
pub mod ops;
pub mod pki;
pub mod render;
pub mod renew;
pub mod renew_state;
pub mod rpc;
pub mod timefmt;

pub use error::{Error, Result};

/// The reader of the `kubeadm-config` ConfigMap (`--kubeconfig` as the kubeadm configuration
/// source) of this build: kube-rs with the `k8s` feature
/// ([`kubeapi::kubeadm_config::read_blocking`]), else an error saying it is not compiled
/// in. The CLI and the RPC methods pass it to `resolve_with`/`metrics_with`/`expected`
/// (`config`, `check` and `renew` cannot depend on `kubeapi`).
pub fn kubeadm_configmap_reader() -> config::ConfigMapReader<'static> {
    #[cfg(feature = "k8s")]
    {
        &kubeapi::kubeadm_config::read_blocking
    }
    #[cfg(not(feature = "k8s"))]
    {
        &config::configmap_not_compiled_in
    }
}
