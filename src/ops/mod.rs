//! Operations on the running control plane, shared by `auto-renew`, the CLI and the
//! JSON-RPC methods `restart`, `health` and `served`:
//!
//! - [`endpoints`]: where each component listens and which certificate file it serves
//!   (static pod manifests, kubeadm's defaults, per-endpoint overrides);
//! - [`tls`]: the one blocking TLS client (leaf capture; bounded HTTPS requests);
//! - [`health`]: etcd members and their health, kube-apiserver `/readyz`,
//!   controller-manager/scheduler `/healthz`, polled within one bound;
//! - [`served`]: the served-certificate proof (`current`, `stale`, `unreachable`,
//!   `not-checked`);
//! - [`leader`]: before an etcd member is stopped, its leadership is moved to another
//!   healthy voting member when it leads a multi-member cluster;
//! - [`restart`]: manifest-move, crictl and command restarts with bounded waits and
//!   parked-manifest recovery, each followed by health and the served proof.
//!
//! Dependencies point one way: restart → leader → health, served → endpoints, tls.

pub mod endpoints;
pub mod health;
pub mod leader;
pub mod restart;
pub mod served;
pub mod tls;
