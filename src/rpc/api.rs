//! The method table: one row per JSON-RPC method. Registration ([`super::module`]), the
//! authorization tier, `version`'s method list, the OpenRPC document and the files in
//! `schema/` are all derived from [`METHODS`].

use std::sync::Arc;
use std::time::Instant;

use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::{Extensions, RpcModule};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::errors::{self, codes};
use super::Enforce;
use crate::check::{CheckParams, CheckResult};
use crate::confine::{PathParam, PathParams, Roots};
use crate::csr::{CsrExportParams, CsrExportResult, CsrImportParams, CsrImportResult};
use crate::kubelet::{KubeletConfParams, KubeletConfResult};
use crate::metrics::{MetricsParams, MetricsResult};
use crate::ops::health::{HealthParams, HealthResult};
use crate::ops::restart::{RestartParams, RestartResult};
use crate::ops::served::{ServedParams, ServedResult};
use crate::pki::restore::{RestoreParams, RestoreResult};
use crate::renew::{RenewParams, RenewResult};

/// Who is calling, as the socket server learned it from SO_PEERCRED. Inserted into each
/// HTTP request's extensions; methods read it before doing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Peer uid.
    pub uid: u32,
    /// Peer primary gid.
    pub gid: u32,
    /// Peer pid (when the kernel told).
    pub pid: Option<i32>,
    /// May call read methods.
    pub may_read: bool,
    /// May call mutating methods.
    pub may_write: bool,
}

/// One row of the table, type-erased so that rows of different params/result types sit in
/// one array.
pub trait RpcMethod: Sync {
    /// JSON-RPC method name.
    fn name(&self) -> &'static str;
    /// One-paragraph description (OpenRPC `description`).
    fn doc(&self) -> &'static str;
    /// Whether the method may change files (write tier on the socket).
    fn mutating(&self) -> bool;
    /// Server-defined error codes the method can return (listed in the OpenRPC doc).
    fn errors(&self) -> &'static [i32];
    /// Root schema of the params object, made with `g` (nested types go to its definitions).
    fn params_schema(&self, g: &mut SchemaGenerator) -> Schema;
    /// Schema of the result (a `$ref` into `g`'s definitions for named types).
    fn result_schema(&self, g: &mut SchemaGenerator) -> Schema;
    /// Standalone schema of the params object (for `schema/<method>.params.json`).
    fn params_file_schema(&self, settings: SchemaSettings) -> Schema;
    /// Standalone schema of the result (for `schema/<method>.result.json`).
    fn result_file_schema(&self, settings: SchemaSettings) -> Schema;
    /// Name of the result type (OpenRPC result descriptor name).
    fn result_name(&self) -> String;
    /// Registers the method on `module`, serving `roots`.
    fn register(
        &'static self,
        module: &mut RpcModule<()>,
        enforce: Enforce,
        roots: Arc<Roots>,
    ) -> Result<(), jsonrpsee::core::RegisterMethodError>;
}

/// A library call that answers at once or not at all ([`Method::inline`]).
pub type Inline<P, R> = fn(&P) -> Option<crate::Result<R>>;

/// A method whose params are the whole `params` object (by name), deserialized into `P`, and
/// whose result is `R`, computed by a blocking library call run on tokio's blocking pool.
pub struct Method<P: 'static, R: 'static> {
    /// JSON-RPC method name.
    pub name: &'static str,
    /// Description.
    pub doc: &'static str,
    /// Write tier.
    pub mutating: bool,
    /// For a mutating method: params with which the call only reads (read tier suffices).
    pub read_only_if: Option<fn(&P) -> bool>,
    /// The library call when it can answer at once from memory, without blocking (a cache
    /// hit: no file read, no wait); `None` from it, or no such function, runs `call` on the
    /// blocking pool. Run on the transport's own thread: it saves the hand-over to a
    /// blocking thread and back (futex wake-ups and context switches on both sides: with
    /// the stats a hit skips, half of a cached check's agent CPU, bench/RESULTS.md).
    pub inline: Option<Inline<P, R>>,
    /// Server-defined error codes it can return.
    pub errors: &'static [i32],
    /// The library call.
    pub call: fn(P) -> crate::Result<R>,
}

/// Server-defined errors of read methods.
pub const READ_ERRORS: &[i32] = &[codes::NOT_AUTHORIZED, codes::FILE, codes::PATH_NOT_ALLOWED];
/// Server-defined errors of mutating methods.
pub const WRITE_ERRORS: &[i32] = &[
    codes::CA_KEY_MISSING,
    codes::LOCKED,
    codes::VALIDATION,
    codes::NOT_AUTHORIZED,
    codes::UNKNOWN_CERTIFICATE,
    codes::FILE,
    codes::CA_EXPIRED,
    codes::PATH_NOT_ALLOWED,
    codes::STORE_CORRUPT,
];
/// Server-defined errors of `check` (read) and of `renew` and `metrics` (write): the
/// kubeadm-config ConfigMap (`kubeconfig`) is read through the API server.
pub const CHECK_ERRORS: &[i32] = &[
    codes::NOT_AUTHORIZED,
    codes::FILE,
    codes::PATH_NOT_ALLOWED,
    codes::KUBE_API,
];
/// Server-defined errors of `renew` and `metrics` (see [`CHECK_ERRORS`]).
pub const CONFIG_WRITE_ERRORS: &[i32] = &[
    codes::CA_KEY_MISSING,
    codes::LOCKED,
    codes::VALIDATION,
    codes::NOT_AUTHORIZED,
    codes::UNKNOWN_CERTIFICATE,
    codes::FILE,
    codes::CA_EXPIRED,
    codes::PATH_NOT_ALLOWED,
    codes::STORE_CORRUPT,
    codes::KUBE_API,
];
/// Server-defined errors of `ca-rotate`: a write, plus the cluster-info update through the
/// API server (`kubeconfig`) and the runtime it needs.
pub const CA_ROTATE_ERRORS: &[i32] = &[
    codes::CA_KEY_MISSING,
    codes::LOCKED,
    codes::VALIDATION,
    codes::NOT_AUTHORIZED,
    codes::UNKNOWN_CERTIFICATE,
    codes::FILE,
    codes::CA_EXPIRED,
    codes::KUBE_API,
    codes::PATH_NOT_ALLOWED,
    codes::STORE_CORRUPT,
    codes::RUNTIME,
];
/// Server-defined errors of `restore`.
pub const RESTORE_ERRORS: &[i32] = &[
    codes::LOCKED,
    codes::NOT_AUTHORIZED,
    codes::FILE,
    codes::PATH_NOT_ALLOWED,
    codes::BACKUP_REFUSED,
    codes::STORE_CORRUPT,
];
/// Server-defined errors of the certificates-API methods.
pub const KUBE_ERRORS: &[i32] = &[
    codes::NOT_AUTHORIZED,
    codes::FILE,
    codes::KUBE_API,
    codes::PATH_NOT_ALLOWED,
    codes::RUNTIME,
];
/// Server-defined errors of methods that touch no file.
pub const META_ERRORS: &[i32] = &[codes::NOT_AUTHORIZED];

/// Empty params (`version`, `rpc.discover`): absent, `{}` or `[]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

impl PathParams for NoParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        Vec::new()
    }
}

/// approve's path fields (beside its row: `confine` does not depend on the `k8s` feature's
/// module).
#[cfg(feature = "k8s")]
impl PathParams for crate::kubeapi::approve::ApproveParams {
    fn path_params(&mut self) -> Vec<PathParam<'_>> {
        use crate::confine::{Root, Slot};
        let p = |name, root, v| PathParam {
            name,
            root,
            slot: Slot::Opt(v),
        };
        vec![
            p("cert_dir", Root::CertDir, &mut self.location.cert_dir),
            p(
                "kubeconfig_dir",
                Root::KubeconfigDir,
                &mut self.location.kubeconfig_dir,
            ),
            p("kubeconfig", Root::ApiKubeconfig, &mut self.kubeconfig),
            p("policy", Root::ApprovePolicy, &mut self.policy),
        ]
    }
}

/// Result of `version`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VersionResult {
    /// kubecert's version.
    pub version: String,
    /// The git commit it was built from (12 hex digits), or "unknown" (built outside git).
    pub git_commit: String,
    /// When it was built, UTC RFC 3339 (SOURCE_DATE_EPOCH for reproducible packages).
    pub build_date: String,
    /// Whether the Kubernetes-API features (`renew --use-api`, `sign`, `approve`; cargo
    /// feature `k8s`) are compiled in.
    pub kubernetes_api: bool,
    /// Every method the agent serves.
    pub methods: Vec<String>,
    /// The subset that needs the write tier on the socket.
    pub mutating_methods: Vec<String>,
    /// The OpenRPC version of `rpc.discover`.
    pub openrpc: String,
}

/// The OpenRPC document returned by `rpc.discover`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct OpenRpcDocument(pub serde_json::Value);

impl JsonSchema for OpenRpcDocument {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OpenRpcDocument".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "description": "An OpenRPC 1.3.2 document (https://spec.open-rpc.org).",
            "type": "object",
            "required": ["openrpc", "info", "methods"],
            "properties": {
                "openrpc": {"type": "string"},
                "info": {
                    "type": "object",
                    "required": ["title", "version"],
                    "properties": {"title": {"type": "string"}, "version": {"type": "string"}}
                },
                "methods": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "params", "result"],
                        "properties": {
                            "name": {"type": "string"},
                            "params": {"type": "array"},
                            "result": {"type": "object"}
                        }
                    }
                },
                "components": {"type": "object"}
            }
        })
    }
}

fn version(_: NoParams) -> crate::Result<VersionResult> {
    Ok(VersionResult {
        version: crate::build_info::VERSION.to_string(),
        git_commit: crate::build_info::GIT_COMMIT.to_string(),
        build_date: crate::build_info::BUILD_DATE.to_string(),
        kubernetes_api: crate::build_info::KUBERNETES_API,
        methods: METHODS.iter().map(|m| m.name().to_string()).collect(),
        mutating_methods: METHODS
            .iter()
            .filter(|m| m.mutating())
            .map(|m| m.name().to_string())
            .collect(),
        openrpc: super::openrpc::OPENRPC_VERSION.to_string(),
    })
}

/// Result of `stats`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatsResult {
    /// The check cache: bounds, size, hits and misses, and the consistent read's retries
    /// and waits.
    pub check_cache: crate::check::cache::CacheStats,
}

fn stats(_: NoParams) -> crate::Result<StatsResult> {
    Ok(StatsResult {
        check_cache: crate::check::cache::stats(),
    })
}

fn discover(_: NoParams) -> crate::Result<OpenRpcDocument> {
    Ok(OpenRpcDocument(super::openrpc::document().clone()))
}

fn check(p: CheckParams) -> crate::Result<CheckResult> {
    crate::check::check(&p.resolve_with(crate::kubeadm_configmap_reader())?)
}

/// The method table. Add a row here to add a method (see the module docs of [`super`]).
pub static METHODS: &[&dyn RpcMethod] = &[
    &Method::<CheckParams, CheckResult> {
        name: "check",
        doc: "Expiry and health of every certificate of the inventory, in kubeadm's \
              CertificateExpirationInfo shape plus per-certificate detail and a verdict.",
        mutating: false,
        read_only_if: None,
        inline: Some(crate::check::check_cached),
        errors: CHECK_ERRORS,
        call: check,
    },
    &Method::<RenewParams, RenewResult> {
        name: "renew",
        doc: "Renew certificates (all, or by name; optionally only those expiring within a \
              duration) in one locked, journaled, backed-up transaction. Waits up to 300 s \
              for the PKI lock held by another run, then fails with -31002.",
        mutating: true,
        read_only_if: None,
        inline: None,
        errors: CONFIG_WRITE_ERRORS,
        call: |p| crate::renew::renew(&p.resolve_with(crate::kubeadm_configmap_reader())?),
    },
    &Method::<RestoreParams, RestoreResult> {
        name: "restore",
        doc: "Put every file of a backup made by renew back in place, through the same \
              locked transaction. The backup dir must be directly under the backup root and \
              its manifest may only name inventory files of the PKI and plain files of the \
              backup dir (else -31011, nothing written).",
        mutating: true,
        read_only_if: None,
        inline: None,
        errors: RESTORE_ERRORS,
        call: |p| crate::pki::restore::restore(&p),
    },
    &Method::<KubeletConfParams, KubeletConfResult> {
        name: "kubelet-conf",
        doc: "Diagnose kubelet.conf (embedded client cert vs kubelet-client-current.pem) and, \
              with repair=true, point it at the rotated cert (kubeadm#1753). Without repair \
              it only reads (read tier).",
        mutating: true,
        read_only_if: Some(|p| !p.repair),
        inline: None,
        errors: WRITE_ERRORS,
        call: |p| crate::kubelet::repair(&p),
    },
    &Method::<
        crate::kubelet::rebuild::KubeletRebuildParams,
        crate::kubelet::rebuild::KubeletRebuildResult,
    > {
        name: "kubelet-conf-rebuild",
        doc: "Break-glass for an expired kubelet client certificate: a clock check first \
              (a NotBefore ahead of the clock is -31003 clock skew, not expiry); then, with \
              the local ca.key (-31001 when absent), issue system:node:<node_name> in \
              system:nodes (clientAuth), write it as a dated kubelet-client-<time>.pem, \
              repoint kubelet-client-current.pem and write kubelet.conf referencing it, in \
              one transaction with backup. dry_run returns the plan.",
        mutating: true,
        read_only_if: Some(|p| p.dry_run),
        inline: None,
        errors: WRITE_ERRORS,
        call: |p| crate::kubelet::rebuild::rebuild(&p),
    },
    &Method::<crate::ca::CaCheckParams, crate::ca::CaCheckResult> {
        name: "ca-check",
        doc: "Each CA of the layout: expiry, key algorithm, kubeadm's join hash \
              (sha256:<hex> of the DER SubjectPublicKeyInfo), the inventory certificates it \
              signed (by signature) and the trust bundles (CA files, kubeconfigs' \
              certificate-authority data) that hold it.",
        mutating: false,
        read_only_if: None,
        inline: None,
        errors: READ_ERRORS,
        call: |p| crate::ca::check(&p),
    },
    &Method::<crate::ca::CaRenewParams, crate::ca::CaRenewResult> {
        name: "ca-renew",
        doc: "Same-key CA renewal: re-issue each named CA (default: all) with its own key, \
              subject, SKI and extensions, a new serial and validity (default 87600h), and \
              rewrite the certificate-authority-data of the node's kubeconfigs that hold it, \
              in one transaction with backup. -31001 when the CA key is absent (external \
              CA), -31003 when it does not match. dry_run returns the plan.",
        mutating: true,
        read_only_if: Some(|p| p.dry_run),
        inline: None,
        errors: WRITE_ERRORS,
        call: |p| crate::ca::renew(&p),
    },
    &Method::<crate::ca::CaExportParams, crate::ca::CaExportResult> {
        name: "ca-export",
        doc: "A CA certificate as PEM (never its key), for ca-install on the other \
              control-plane nodes.",
        mutating: false,
        read_only_if: None,
        inline: None,
        errors: READ_ERRORS,
        call: |p| crate::ca::export(&p),
    },
    &Method::<crate::ca::CaInstallParams, crate::ca::CaRenewResult> {
        name: "ca-install",
        doc: "Install a CA certificate renewed on another node (pem): refused (-31003, \
              nothing written) unless it is a self-signed CA valid now with this node's CA \
              key, subject and SKI; then the same transaction as ca-renew.",
        mutating: true,
        read_only_if: Some(|p| p.dry_run),
        inline: None,
        errors: WRITE_ERRORS,
        call: |p| crate::ca::install(&p),
    },
    &Method::<crate::ca::rotate::CaRotateParams, crate::ca::rotate::CaRotateResult> {
        name: "ca-rotate",
        doc: "Staged rotation of a CA to a new key, one phase on this node: stage (new CA at \
              <ca-path>.next.crt/.key, or the ones placed there, validated; trust bundles \
              old+new, old first), promote (every leaf re-signed by the new CA, <ca>.key the \
              new key, bundle new+old, old pair kept as .prev), distrust (bundles new only, \
              old key removed). The phase is derived from the files; a phase already done is \
              a no-op, one out of order -31003 naming the current phase, nothing written. \
              rollback undoes the phase from its own backup. One transaction with backup; \
              dry_run returns the plan. With kubeconfig (ca only), the cluster-info ConfigMap \
              in kube-public then gets the new bundle (resourceVersion-checked update): its \
              failure is -31009 with data.result (clusterInfo.updated false), the files \
              staying committed.",
        mutating: true,
        read_only_if: Some(|p| p.dry_run),
        inline: None,
        errors: CA_ROTATE_ERRORS,
        #[cfg(feature = "k8s")]
        call: |p| crate::kubeapi::clusterinfo::rotate(&p),
        #[cfg(not(feature = "k8s"))]
        call: |p| crate::ca::rotate::rotate(&p),
    },
    &Method::<CsrExportParams, CsrExportResult> {
        name: "csr-export",
        doc: "External CA: write <name>.csr and <name>.key (0600, dir 0700) for each \
              certificate, with the current subject and SANs, for an external CA to sign. \
              Needs no CA key and never modifies the PKI; refuses, before writing anything, a \
              csr_dir where a target would land on a live key, certificate or kubeconfig.",
        mutating: true,
        read_only_if: None,
        inline: None,
        errors: WRITE_ERRORS,
        call: |p| crate::csr::export(&p),
    },
    &Method::<CsrImportParams, CsrImportResult> {
        name: "csr-import",
        doc: "External CA: validate each signed <name>.crt (+ <name>.key) in csr_dir (issuing \
              CA by signature, key match, subject and SANs equal to the current certificate, \
              EKU for its role, not a CA, valid now, not outliving its CA) and install all of \
              them in one locked, journaled, backed-up transaction, or none: refusals are \
              per-certificate findings in the result (changed=false). dry_run only reads.",
        mutating: true,
        read_only_if: Some(|p| p.dry_run),
        inline: None,
        errors: WRITE_ERRORS,
        call: |p| crate::csr::import(&p),
    },
    &Method::<MetricsParams, MetricsResult> {
        name: "metrics",
        doc: "Prometheus metrics of a check (text exposition 0.0.4 in `text`): \
              x509-certificate-exporter series (x509_cert_not_after, ...) plus kubecert_* \
              (residual, missing, externally managed, problems, last scheduled renewal). With \
              textfile_dir, also replaces <textfile_dir>/kubecert.prom atomically (write tier); \
              without it, it only reads.",
        mutating: true,
        read_only_if: Some(|p| p.textfile_dir.is_none()),
        inline: None,
        errors: CONFIG_WRITE_ERRORS,
        call: |p| crate::metrics::metrics_with(&p, crate::kubeadm_configmap_reader()),
    },
    &Method::<RestartParams, RestartResult> {
        name: "restart",
        doc: "Restart control-plane static pods (components, one at a time in kubeadm's order) \
              by manifest-move (park the manifest beside the manifests dir, wait for the pod \
              to stop, move it back; manifests an interrupted run left parked are moved back \
              first), crictl (stop the containers) or a command; after each, wait within \
              health_timeout_ms for it to be healthy, then prove that each of its TLS \
              endpoints serves the certificate file on disk. A failure (stage restart:, \
              health:, served:) stops the sequence and is in the result (ok=false). Command \
              templates, crictl and endpoint overrides are for unconfined callers only. \
              dry_run only says what would be restarted (read tier).",
        mutating: true,
        read_only_if: Some(|p| p.dry_run),
        inline: None,
        errors: WRITE_ERRORS,
        call: |p| crate::ops::restart::restart(&p),
    },
    &Method::<HealthParams, HealthResult> {
        name: "health",
        doc: "Poll the control plane's health until healthy or timeout_ms (the call returns \
              within it): etcd's member list (v3 gateway) and /health of every member over \
              TLS with the etcd healthcheck-client certificate, kube-apiserver /readyz \
              (verified against ca.crt), controller-manager and scheduler /healthz. \
              Endpoints from the static pod manifests, overridable.",
        mutating: false,
        read_only_if: None,
        inline: None,
        errors: READ_ERRORS,
        call: |p| crate::ops::health::health_call(&p),
    },
    &Method::<ServedParams, ServedResult> {
        name: "served",
        doc: "The served-certificate proof: connect over TLS to each endpoint of the \
              components (etcd client and peer, kube-apiserver, controller-manager :10257, \
              scheduler :10259; from the static pod manifests, overridable), take the leaf \
              it presents (no client certificate is sent) and compare it with the \
              certificate file: current, stale (restart the component), unreachable or \
              not-checked. level fail on a stale or expired served certificate, warn on an \
              unreachable endpoint.",
        mutating: false,
        read_only_if: None,
        inline: None,
        errors: READ_ERRORS,
        call: |p| crate::ops::served::served_call(&p),
    },
    #[cfg(feature = "k8s")]
    &Method::<crate::kubeapi::approve::ApproveParams, crate::kubeapi::approve::ApproveResult> {
        name: "approve",
        doc: "Certificates API: judge pending CertificateSigningRequests (names, or \
              all_pending) against this node's PKI and a policy. A request whose subject and \
              SANs are those of a current certificate of the PKI is approved (GET, append an \
              Approved condition, PUT /approval, as kubectl does) when its signer name, \
              requester, expirationSeconds and usages satisfy the policy and it is not a CA \
              request, else denied (Denied condition, reason KubecertPolicy, the broken rules \
              in the message); any other request is left pending. Per-request decisions and \
              reasons in the result. dry_run decides without writing (read tier). With \
              kubelet_serving: judge kubernetes.io/kubelet-serving requests instead: requester \
              and subject system:node:NAME in system:nodes, usages server auth (+ digital \
              signature, key encipherment), DNS/IP SANs only among that Node's \
              status.addresses; typed findings; a missing Node leaves the request pending; \
              approved requests not issued within issued_within are reported \
              (approved-not-issued).",
        mutating: true,
        read_only_if: Some(|p| p.dry_run),
        inline: None,
        errors: KUBE_ERRORS,
        call: |p| crate::kubeapi::approve::approve_blocking(&p),
    },
    &Method::<NoParams, VersionResult> {
        name: "version",
        doc: "kubecert's version and the methods this agent serves.",
        mutating: false,
        read_only_if: None,
        // Memory only: never worth a blocking thread.
        inline: Some(|p| Some(version(p.clone()))),
        errors: META_ERRORS,
        call: version,
    },
    &Method::<NoParams, StatsResult> {
        name: "stats",
        doc: "The agent's check cache: layouts and bytes kept and their bounds, hits, misses, \
              invalidations, evictions, and the consistent read's retries and waits for a \
              renewal's swap.",
        mutating: false,
        read_only_if: None,
        // Memory only: never worth a blocking thread.
        inline: Some(|p| Some(stats(p.clone()))),
        errors: META_ERRORS,
        call: stats,
    },
    &Method::<NoParams, OpenRpcDocument> {
        name: "rpc.discover",
        doc: "The OpenRPC document of this agent (same as schema/openrpc.json).",
        mutating: false,
        read_only_if: None,
        // Memory only: never worth a blocking thread.
        inline: Some(|p| Some(discover(p.clone()))),
        errors: META_ERRORS,
        call: discover,
    },
];

/// Parses the params object (by name) into `P`. Absent, `null` and `[]` mean "all
/// defaults"; positional (non-empty array) params are refused.
pub fn parse_params<P: DeserializeOwned>(raw: Option<&str>) -> Result<P, ErrorObjectOwned> {
    let raw = raw.map(str::trim).unwrap_or("");
    let text = match raw {
        "" | "null" => "{}",
        r if r.starts_with('[') => {
            let empty = serde_json::from_str::<Vec<serde_json::Value>>(r)
                .map(|v| v.is_empty())
                .unwrap_or(false);
            if !empty {
                return Err(errors::invalid_params(
                    "params must be an object (by name), not an array",
                ));
            }
            "{}"
        }
        r => r,
    };
    serde_json::from_str(text).map_err(|e| errors::invalid_params(&e.to_string()))
}

impl<P, R> RpcMethod for Method<P, R>
where
    P: DeserializeOwned + Serialize + PathParams + JsonSchema + Send + 'static,
    R: Serialize + JsonSchema + Clone + Send + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }
    fn doc(&self) -> &'static str {
        self.doc
    }
    fn mutating(&self) -> bool {
        self.mutating
    }
    fn errors(&self) -> &'static [i32] {
        self.errors
    }
    fn params_schema(&self, g: &mut SchemaGenerator) -> Schema {
        g.root_schema_for::<P>()
    }
    fn result_schema(&self, g: &mut SchemaGenerator) -> Schema {
        g.subschema_for::<R>()
    }
    fn params_file_schema(&self, settings: SchemaSettings) -> Schema {
        settings.into_generator().into_root_schema_for::<P>()
    }
    fn result_file_schema(&self, settings: SchemaSettings) -> Schema {
        settings.into_generator().into_root_schema_for::<R>()
    }
    fn result_name(&self) -> String {
        R::schema_name().into_owned()
    }

    fn register(
        &'static self,
        module: &mut RpcModule<()>,
        enforce: Enforce,
        roots: Arc<Roots>,
    ) -> Result<(), jsonrpsee::core::RegisterMethodError> {
        module.register_async_method(self.name, move |params, _ctx, ext| {
            let roots = roots.clone();
            async move {
                let r = self.handle(params.as_str(), &ext, enforce, &roots).await?;
                // Serialized here into one buffer, handed to jsonrpsee as raw JSON: its own
                // serializer writes through a bounded writer in many small pieces (about a
                // tenth of a cached check's CPU in perf). The response bound still applies to the
                // whole response, raw value included.
                serde_json::value::to_raw_value(&r).map_err(|e| {
                    errors::internal(&format!("{}: cannot serialize the result: {e}", self.name))
                })
            }
        })?;
        Ok(())
    }
}

/// Whether calls of `caller` are confined to the configured roots: every socket caller but
/// root and the agent's own uid (who has the agent's rights anyway); never over stdio, where
/// the caller runs the agent with its own rights.
pub fn confined(enforce: Enforce, caller: Option<Caller>) -> bool {
    match enforce {
        Enforce::None => false,
        Enforce::PeerCredentials => {
            caller.is_none_or(|c| c.uid != 0 && c.uid != super::unix::effective_uid())
        }
    }
}

/// What a mutating call changed, for its audit line: names renewed, installed, exported or
/// restored (or, for a dry run, that would be), approve's decisions, kubelet.conf, the
/// metrics textfile; and the backup dir.
fn audit_changes(result: &serde_json::Value) -> (Vec<String>, Option<String>) {
    use serde_json::Value;
    let s = |v: &Value| v.as_str().map(str::to_string);
    let mut names = Vec::new();
    for c in result["certificates"].as_array().into_iter().flatten() {
        if let ("renewed" | "installed" | "exported" | "would-renew" | "would-install", Some(n)) =
            (c["action"].as_str().unwrap_or(""), s(&c["name"]))
        {
            names.push(n);
        }
    }
    names.extend(
        result["restored"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(s),
    );
    // restore: the pair a kubelet-conf rebuild had created, removed.
    names.extend(
        result["removed"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| s(v).map(|f| format!("removed:{f}"))),
    );
    for r in result["requests"].as_array().into_iter().flatten() {
        if let (Some(d @ ("approved" | "denied")), Some(n)) =
            (r["decision"].as_str(), s(&r["name"]))
        {
            names.push(format!("{n}:{d}"));
        }
    }
    if result["changed"] == Value::Bool(true) && result.get("status").is_some() {
        names.push("kubelet.conf".into());
    }
    names.extend(s(&result["textfile"]));
    // kubelet-conf-rebuild: the files written (or that would be).
    names.extend(
        result["written"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(s),
    );
    // restart: the components restarted, the manifests moved back.
    for r in result["restarts"].as_array().into_iter().flatten() {
        if let (Some(true), Some(c)) = (r["ok"].as_bool(), s(&r["component"])) {
            names.push(format!("restarted:{c}"));
        }
    }
    names.extend(
        result["recoveredManifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(s),
    );
    (names, s(&result["backupDir"]))
}

/// The one audit line of a mutating call (target `kubecert::audit`, level info, enabled by
/// default).
#[allow(clippy::too_many_arguments)]
fn audit(
    method: &str,
    uid: Option<u32>,
    pid: Option<i32>,
    outcome: &str,
    code: Option<i32>,
    dry_run: bool,
    changed: &[String],
    backup_dir: Option<&str>,
) {
    let uid = uid.map_or_else(|| "unknown".to_string(), |u| u.to_string());
    let pid = pid.map_or_else(|| "-".to_string(), |p| p.to_string());
    let code = code.map_or_else(|| "-".to_string(), |c| c.to_string());
    tracing::info!(
        target: "kubecert::audit",
        uid = %uid,
        pid = %pid,
        method = %method,
        outcome = %outcome,
        code = %code,
        dry_run,
        changed = %changed.join(","),
        backup_dir = %backup_dir.unwrap_or("-"),
        "audit"
    );
}

impl<P, R> Method<P, R>
where
    P: DeserializeOwned + Serialize + PathParams + Send + 'static,
    R: Serialize + Send + 'static,
{
    /// Runs one call: authorization tier, params, confinement to `roots`, the library call
    /// on the blocking pool, the audit line of a mutating call.
    pub async fn handle(
        &'static self,
        raw_params: Option<&str>,
        ext: &Extensions,
        enforce: Enforce,
        roots: &Roots,
    ) -> Result<R, ErrorObjectOwned> {
        let started = Instant::now();
        let caller = ext.get::<Caller>().copied();
        let (uid, pid) = match enforce {
            // stdio: the caller is whoever runs this process.
            Enforce::None => (Some(super::unix::effective_uid()), None),
            Enforce::PeerCredentials => (caller.map(|c| c.uid), caller.and_then(|c| c.pid)),
        };
        let refuse = |err: ErrorObjectOwned, audited: bool, dry_run: bool| {
            if audited {
                let outcome = match err.code() {
                    codes::NOT_AUTHORIZED | codes::PATH_NOT_ALLOWED | codes::BACKUP_REFUSED => {
                        "refused"
                    }
                    _ => "failed",
                };
                audit(
                    self.name,
                    uid,
                    pid,
                    outcome,
                    Some(err.code()),
                    dry_run,
                    &[],
                    None,
                );
            }
            err
        };
        let authorize = |needs_write: bool| -> Result<(), ErrorObjectOwned> {
            if enforce == Enforce::None {
                return Ok(());
            }
            let ok = match caller {
                Some(c) => c.may_read && (!needs_write || c.may_write),
                None => false,
            };
            if ok {
                return Ok(());
            }
            if !self.mutating {
                tracing::warn!(
                    method = self.name,
                    uid,
                    pid,
                    tier = "read",
                    "refused: caller not authorized"
                );
            }
            Err(refuse(
                errors::not_authorized(self.name, uid, needs_write),
                self.mutating,
                false,
            ))
        };
        // Refuse before looking at the params when even the weakest tier is not granted.
        let always_write = self.mutating && self.read_only_if.is_none();
        authorize(always_write)?;
        let mut p: P = parse_params(raw_params).map_err(|e| refuse(e, always_write, false))?;
        let needs_write = self.mutating && !self.read_only_if.is_some_and(|f| f(&p));
        authorize(needs_write)?;
        // Only a mutating method's audit line says whether it was a dry run.
        let dry_run = self.mutating
            && serde_json::to_value(&p).unwrap_or_default()["dry_run"]
                == serde_json::Value::Bool(true);
        if let Err(e) = roots.apply(&mut p, confined(enforce, caller)) {
            let err = errors::to_rpc_error(&e);
            if !needs_write {
                tracing::warn!(method = self.name, uid, pid, code = err.code(), error = %err.message(), "refused");
            }
            return Err(refuse(err, needs_write, dry_run));
        }
        let out = match self.inline.and_then(|f| f(&p)) {
            Some(r) => Ok(r),
            None => {
                let call = self.call;
                tokio::task::spawn_blocking(move || call(p)).await
            }
        };
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match out {
            Ok(Ok(r)) => {
                if needs_write {
                    let v = serde_json::to_value(&r).unwrap_or_default();
                    let (changed, backup) = audit_changes(&v);
                    audit(
                        self.name,
                        uid,
                        pid,
                        "ok",
                        None,
                        dry_run,
                        &changed,
                        backup.as_deref(),
                    );
                } else {
                    tracing::info!(method = self.name, uid, pid, us, "ok");
                }
                Ok(r)
            }
            Ok(Err(e)) => {
                let err = errors::to_rpc_error(&e);
                if needs_write {
                    Err(refuse(err, true, dry_run))
                } else {
                    tracing::warn!(method = self.name, uid, pid, us, code = err.code(), error = %err.message(), "failed");
                    Err(err)
                }
            }
            Err(join) => {
                tracing::error!(
                    method = self.name,
                    uid,
                    pid,
                    "call panicked or was cancelled"
                );
                let err = errors::internal(&format!("{} did not complete: {join}", self.name));
                Err(refuse(err, needs_write, dry_run))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn audit_names_what_changed() {
        let renew = json!({"backupDir": "/b/1", "changed": true, "certificates": [
            {"name": "admin.conf", "action": "renewed"},
            {"name": "apiserver", "action": "skipped"},
            {"name": "etcd-peer", "action": "would-renew"}]});
        assert_eq!(
            audit_changes(&renew),
            (
                vec!["admin.conf".to_string(), "etcd-peer".to_string()],
                Some("/b/1".to_string())
            )
        );
        let restore = json!({"restored": ["/p/a.crt"], "changed": true, "dryRun": false});
        assert_eq!(audit_changes(&restore).0, vec!["/p/a.crt".to_string()]);
        // restore of a kubelet-conf rebuild: the link and kubelet.conf, and the pair removed.
        let restore = json!({"restored": ["/e/kubelet.conf", "/k/kubelet-client-current.pem"],
            "removed": ["/k/kubelet-client-2027.pem"], "changed": true, "dryRun": false});
        assert_eq!(
            audit_changes(&restore).0,
            vec![
                "/e/kubelet.conf".to_string(),
                "/k/kubelet-client-current.pem".to_string(),
                "removed:/k/kubelet-client-2027.pem".to_string()
            ]
        );
        let kubelet = json!({"status": {}, "changed": true, "backupDir": null});
        assert_eq!(audit_changes(&kubelet), (vec!["kubelet.conf".into()], None));
        let rebuild = json!({"written": ["/k/kubelet-client-2027.pem", "/e/kubelet.conf"],
                             "changed": true, "backupDir": "/b/1"});
        assert_eq!(
            audit_changes(&rebuild),
            (
                vec![
                    "/k/kubelet-client-2027.pem".into(),
                    "/e/kubelet.conf".into()
                ],
                Some("/b/1".into())
            )
        );
        let approve = json!({"requests": [{"name": "csr-1", "decision": "approved"},
                                          {"name": "csr-2", "decision": "pending"}]});
        assert_eq!(
            audit_changes(&approve).0,
            vec!["csr-1:approved".to_string()]
        );
        let restart = json!({"restarts": [{"component": "etcd", "ok": true},
                                          {"component": "kube-apiserver", "ok": false}],
                             "recoveredManifests": ["/m/etcd.yaml"]});
        assert_eq!(
            audit_changes(&restart).0,
            vec!["restarted:etcd".to_string(), "/m/etcd.yaml".to_string()]
        );
    }

    #[test]
    fn who_is_confined() {
        let c = |uid| Caller {
            uid,
            gid: uid,
            pid: None,
            may_read: true,
            may_write: true,
        };
        let me = super::super::unix::effective_uid();
        let other = if me == 1000 { 1001 } else { 1000 };
        assert!(!confined(Enforce::None, None));
        assert!(!confined(Enforce::None, Some(c(other))));
        assert!(confined(Enforce::PeerCredentials, None));
        assert!(confined(Enforce::PeerCredentials, Some(c(other))));
        assert!(!confined(Enforce::PeerCredentials, Some(c(0))));
        assert!(!confined(Enforce::PeerCredentials, Some(c(me))));
    }
}
