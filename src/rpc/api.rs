//! The method table: one row per JSON-RPC method. Registration ([`super::module`]), the
//! authorization tier, `version`'s method list, the OpenRPC document and the files in
//! `schema/` are all derived from [`METHODS`].

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
use crate::csr::{CsrExportParams, CsrExportResult, CsrImportParams, CsrImportResult};
use crate::kubelet::{KubeletConfParams, KubeletConfResult};
use crate::metrics::{MetricsParams, MetricsResult};
use crate::renew::{RenewParams, RenewResult, RestoreParams, RestoreResult};

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
    /// Registers the method on `module`.
    fn register(
        &'static self,
        module: &mut RpcModule<()>,
        enforce: Enforce,
    ) -> Result<(), jsonrpsee::core::RegisterMethodError>;
}

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
    /// Server-defined error codes it can return.
    pub errors: &'static [i32],
    /// The library call.
    pub call: fn(P) -> crate::Result<R>,
}

/// Server-defined errors of read methods.
pub const READ_ERRORS: &[i32] = &[codes::NOT_AUTHORIZED, codes::FILE];
/// Server-defined errors of mutating methods.
pub const WRITE_ERRORS: &[i32] = &[
    codes::CA_KEY_MISSING,
    codes::LOCKED,
    codes::VALIDATION,
    codes::NOT_AUTHORIZED,
    codes::UNKNOWN_CERTIFICATE,
    codes::FILE,
    codes::CA_EXPIRED,
];
/// Server-defined errors of the certificates-API methods.
pub const KUBE_ERRORS: &[i32] = &[codes::NOT_AUTHORIZED, codes::FILE, codes::KUBE_API];
/// Server-defined errors of methods that touch no file.
pub const META_ERRORS: &[i32] = &[codes::NOT_AUTHORIZED];

/// Empty params (`version`, `rpc.discover`): absent, `{}` or `[]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Result of `version`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VersionResult {
    /// kubecert's version.
    pub version: String,
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
        version: env!("CARGO_PKG_VERSION").to_string(),
        methods: METHODS.iter().map(|m| m.name().to_string()).collect(),
        mutating_methods: METHODS
            .iter()
            .filter(|m| m.mutating())
            .map(|m| m.name().to_string())
            .collect(),
        openrpc: super::openrpc::OPENRPC_VERSION.to_string(),
    })
}

fn discover(_: NoParams) -> crate::Result<OpenRpcDocument> {
    Ok(OpenRpcDocument(super::openrpc::document().clone()))
}

fn check(p: CheckParams) -> crate::Result<CheckResult> {
    Ok(crate::check::check(&p.resolve()?))
}

/// The method table. Add a row here to add a method (see the module docs of [`super`]).
pub static METHODS: &[&dyn RpcMethod] = &[
    &Method::<CheckParams, CheckResult> {
        name: "check",
        doc: "Expiry and health of every certificate of the inventory, in kubeadm's \
              CertificateExpirationInfo shape plus per-certificate detail and a verdict.",
        mutating: false,
        read_only_if: None,
        errors: READ_ERRORS,
        call: check,
    },
    &Method::<RenewParams, RenewResult> {
        name: "renew",
        doc: "Renew certificates (all, or by name; optionally only those expiring within a \
              duration) in one locked, journaled, backed-up transaction. Waits up to 300 s \
              for the PKI lock held by another run, then fails with -32002.",
        mutating: true,
        read_only_if: None,
        errors: WRITE_ERRORS,
        call: |p| crate::renew::renew(&p.resolve()?),
    },
    &Method::<RestoreParams, RestoreResult> {
        name: "restore",
        doc: "Put every file of a backup made by renew back in place, through the same \
              locked transaction.",
        mutating: true,
        read_only_if: None,
        errors: WRITE_ERRORS,
        call: |p| crate::renew::restore(&p),
    },
    &Method::<KubeletConfParams, KubeletConfResult> {
        name: "kubelet-conf",
        doc: "Diagnose kubelet.conf (embedded client cert vs kubelet-client-current.pem) and, \
              with repair=true, point it at the rotated cert (kubeadm#1753). Without repair \
              it only reads (read tier).",
        mutating: true,
        read_only_if: Some(|p| !p.repair),
        errors: WRITE_ERRORS,
        call: |p| crate::kubelet::repair(&p),
    },
    &Method::<CsrExportParams, CsrExportResult> {
        name: "csr-export",
        doc: "External CA: write <name>.csr and <name>.key (0600, dir 0700) for each \
              certificate, with the current subject and SANs, for an external CA to sign. \
              Needs no CA key and never modifies the PKI; refuses, before writing anything, a \
              csr_dir where a target would land on a live key, certificate or kubeconfig.",
        mutating: true,
        read_only_if: None,
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
        errors: WRITE_ERRORS,
        call: |p| crate::metrics::metrics(&p),
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
              reasons in the result. dry_run decides without writing (read tier).",
        mutating: true,
        read_only_if: Some(|p| p.dry_run),
        errors: KUBE_ERRORS,
        call: |p| crate::kubeapi::approve::approve_blocking(&p),
    },
    &Method::<NoParams, VersionResult> {
        name: "version",
        doc: "kubecert's version and the methods this agent serves.",
        mutating: false,
        read_only_if: None,
        errors: META_ERRORS,
        call: version,
    },
    &Method::<NoParams, OpenRpcDocument> {
        name: "rpc.discover",
        doc: "The OpenRPC document of this agent (same as schema/openrpc.json).",
        mutating: false,
        read_only_if: None,
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
    P: DeserializeOwned + JsonSchema + Send + 'static,
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
    ) -> Result<(), jsonrpsee::core::RegisterMethodError> {
        module.register_async_method(self.name, move |params, _ctx, ext| async move {
            self.handle(params.as_str(), &ext, enforce).await
        })?;
        Ok(())
    }
}

impl<P, R> Method<P, R>
where
    P: DeserializeOwned + Send + 'static,
    R: Send + 'static,
{
    async fn handle(
        &'static self,
        raw_params: Option<&str>,
        ext: &Extensions,
        enforce: Enforce,
    ) -> Result<R, ErrorObjectOwned> {
        let started = Instant::now();
        let caller = ext.get::<Caller>().copied();
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
            let (uid, pid) = (caller.map(|c| c.uid), caller.and_then(|c| c.pid));
            tracing::warn!(
                method = self.name,
                uid,
                pid,
                tier = if needs_write { "write" } else { "read" },
                "refused: caller not authorized"
            );
            Err(errors::not_authorized(self.name, uid, needs_write))
        };
        // Refuse before looking at the params when even the weakest tier is not granted.
        let always_write = self.mutating && self.read_only_if.is_none();
        authorize(always_write)?;
        let p: P = parse_params(raw_params)?;
        let needs_write = self.mutating && !self.read_only_if.is_some_and(|f| f(&p));
        authorize(needs_write)?;
        let call = self.call;
        let out = tokio::task::spawn_blocking(move || call(p)).await;
        let (uid, pid) = (caller.map(|c| c.uid), caller.and_then(|c| c.pid));
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match out {
            Ok(Ok(r)) => {
                tracing::info!(method = self.name, uid, pid, us, "ok");
                Ok(r)
            }
            Ok(Err(e)) => {
                let err = errors::to_rpc_error(&e);
                tracing::warn!(method = self.name, uid, pid, us, code = err.code(), error = %err.message(), "failed");
                Err(err)
            }
            Err(join) => {
                tracing::error!(
                    method = self.name,
                    uid,
                    pid,
                    "call panicked or was cancelled"
                );
                Err(errors::internal(&format!(
                    "{} did not complete: {join}",
                    self.name
                )))
            }
        }
    }
}
