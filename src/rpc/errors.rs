//! JSON-RPC errors. [`to_rpc_error`] is the one place where a [`crate::Error`] becomes a
//! code; every server-defined error carries `data: {"cert", "path", "cause"}` (plus `pid`
//! for -32002). Causes are scrubbed so that no PEM block can ever leave the agent.

use jsonrpsee::types::{ErrorCode, ErrorObjectOwned};
use serde_json::{json, Value};

use crate::Error;

/// Error codes (docs/rpc.md).
pub mod codes {
    /// Invalid JSON.
    pub const PARSE_ERROR: i32 = -32700;
    /// Not a JSON-RPC request object.
    pub const INVALID_REQUEST: i32 = -32600;
    /// Unknown method.
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// Params do not fit the method (also: bad duration, time, option combination).
    pub const INVALID_PARAMS: i32 = -32602;
    /// Unexpected failure inside the agent.
    pub const INTERNAL: i32 = -32603;
    /// The CA key is absent (CA externally managed) where an operation needs it.
    pub const CA_KEY_MISSING: i32 = -32001;
    /// The PKI is locked by another kubecert run (`data.pid`).
    pub const LOCKED: i32 = -32002;
    /// A planned or imported certificate is not acceptable.
    pub const VALIDATION: i32 = -32003;
    /// The caller's uid may not call this method.
    pub const NOT_AUTHORIZED: i32 = -32004;
    /// Not an inventory name.
    pub const UNKNOWN_CERTIFICATE: i32 = -32005;
    /// PKI or file error: unreadable, malformed, symlink refused, CA absent.
    pub const FILE: i32 = -32006;
    /// The CA has expired (renew refused without `allow_expired_ca`).
    pub const CA_EXPIRED: i32 = -32007;
    /// The request (body, line or batch length) or the response is over the server's bound.
    pub const TOO_LARGE: i32 = -32008;
    /// The Kubernetes API failed or refused (certificates API methods).
    pub const KUBE_API: i32 = -32009;
    /// A path param this caller may not choose (only the agent's configured roots).
    pub const PATH_NOT_ALLOWED: i32 = -32010;
    /// A backup dir or manifest that restore refuses (outside the backup root, symlink,
    /// an entry that is not an inventory file or not a plain file of the backup).
    pub const BACKUP_REFUSED: i32 = -32011;
}

/// Message and meaning of each server-defined code (for the OpenRPC doc).
pub const SERVER_ERRORS: &[(i32, &str)] = &[
    (codes::CA_KEY_MISSING, "CA key missing (externally managed)"),
    (codes::LOCKED, "PKI locked by another kubecert run"),
    (codes::VALIDATION, "validation failed"),
    (codes::NOT_AUTHORIZED, "not authorized"),
    (codes::UNKNOWN_CERTIFICATE, "unknown certificate name"),
    (codes::FILE, "PKI or file error"),
    (codes::CA_EXPIRED, "CA expired"),
    (codes::TOO_LARGE, "request or response too large"),
    (codes::KUBE_API, "Kubernetes API error"),
    (codes::PATH_NOT_ALLOWED, "path not allowed for this caller"),
    (codes::BACKUP_REFUSED, "backup refused"),
];

/// The message of a server-defined code.
pub fn message(code: i32) -> &'static str {
    SERVER_ERRORS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, m)| *m)
        .unwrap_or("error")
}

/// The one scrubber of the library ([`crate::error::scrub`]): causes go through it.
pub use crate::error::scrub;

fn data(cert: Option<&str>, path: Option<&std::path::Path>, cause: &str) -> Value {
    json!({
        "cert": cert,
        "path": path.map(|p| p.display().to_string()),
        "cause": scrub(cause),
    })
}

fn server_error(
    code: i32,
    cert: Option<&str>,
    path: Option<&std::path::Path>,
    cause: &str,
) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message(code), Some(data(cert, path, cause)))
}

/// THE mapping from library errors to JSON-RPC errors.
pub fn to_rpc_error(e: &Error) -> ErrorObjectOwned {
    let cause = crate::error::report(e);
    let (cert, path) = (e.cert(), e.path());
    let code = match e {
        Error::CaKeyMissing { .. } => codes::CA_KEY_MISSING,
        Error::Locked { dir, pid } => {
            let mut d = data(cert, Some(dir), &cause);
            d["pid"] = json!(pid);
            return ErrorObjectOwned::owned(codes::LOCKED, message(codes::LOCKED), Some(d));
        }
        Error::Validation { .. } | Error::ForeignIdentity { .. } => codes::VALIDATION,
        Error::UnknownCertificate(_) => codes::UNKNOWN_CERTIFICATE,
        Error::Io { .. }
        | Error::Pem { .. }
        | Error::Kubeconfig { .. }
        | Error::Symlink(_)
        | Error::CaMissing { .. }
        | Error::NotACa { .. }
        | Error::Recovery(_)
        | Error::NoPki { .. } => codes::FILE,
        Error::CaExpired { .. } | Error::CaNotYetValid { .. } => codes::CA_EXPIRED,
        Error::KubeApi(_) => codes::KUBE_API,
        Error::PathNotAllowed {
            param, configured, ..
        } => {
            let mut d = data(cert, path, &cause);
            d["param"] = json!(param);
            d["configured"] = json!(configured.as_ref().map(|c| c.display().to_string()));
            return ErrorObjectOwned::owned(
                codes::PATH_NOT_ALLOWED,
                message(codes::PATH_NOT_ALLOWED),
                Some(d),
            );
        }
        Error::BackupRefused { .. } => codes::BACKUP_REFUSED,
        Error::InvalidArgument(_) | Error::Time(_) => {
            return ErrorObjectOwned::owned(
                codes::INVALID_PARAMS,
                "Invalid params",
                Some(data(cert, path, &cause)),
            )
        }
        // Key generation or signing failed: not the caller's fault.
        Error::Issue { .. } => {
            return ErrorObjectOwned::owned(
                codes::INTERNAL,
                "Internal error",
                Some(data(cert, path, &cause)),
            )
        }
        // Variants added later default to "PKI or file error" until mapped above.
        #[allow(unreachable_patterns)]
        _ => codes::FILE,
    };
    server_error(code, cert, path, &cause)
}

/// The `data` of an error that has only a cause: `{"cert": null, "path": null, "cause"}`.
pub fn cause_data(cause: &str) -> Value {
    data(None, None, cause)
}

/// -32602 with a cause.
pub fn invalid_params(cause: &str) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        codes::INVALID_PARAMS,
        "Invalid params",
        Some(data(None, None, cause)),
    )
}

/// -32603 with a cause.
pub fn internal(cause: &str) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        codes::INTERNAL,
        "Internal error",
        Some(data(None, None, cause)),
    )
}

/// -32004: `uid` may not call `method`.
pub fn not_authorized(method: &str, uid: Option<u32>, write: bool) -> ErrorObjectOwned {
    let who = uid.map_or_else(
        || "an unidentified caller".to_string(),
        |u| format!("uid {u}"),
    );
    let tier = if write { "mutating" } else { "read" };
    let mut d = data(
        None,
        None,
        &format!("{who} may not call {method} ({tier} method)"),
    );
    d["uid"] = json!(uid);
    d["method"] = json!(method);
    ErrorObjectOwned::owned(
        codes::NOT_AUTHORIZED,
        message(codes::NOT_AUTHORIZED),
        Some(d),
    )
}

/// A complete JSON-RPC error response (id null unless given) as a JSON value.
pub fn response(id: Value, code: i32, msg: &str, data: Option<Value>) -> Value {
    let mut err = json!({"code": code, "message": msg});
    if let Some(d) = data {
        err["data"] = d;
    }
    json!({"jsonrpc": "2.0", "id": id, "error": err})
}

/// The -32008 response for a request over `limit` bytes.
pub fn too_large_response(limit: usize) -> Value {
    response(
        Value::Null,
        codes::TOO_LARGE,
        message(codes::TOO_LARGE),
        Some(data(None, None, &format!("request exceeds {limit} bytes"))),
    )
}

/// Message of a standard code (jsonrpsee's wording).
pub fn standard_message(code: i32) -> String {
    ErrorCode::from(code).message().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn codes_and_data() {
        let e = to_rpc_error(&Error::Locked {
            dir: PathBuf::from("/etc/kubernetes/pki"),
            pid: 42,
        });
        assert_eq!(e.code(), codes::LOCKED);
        let d: Value =
            serde_json::from_str(e.data().map(|d| d.get()).unwrap_or("null")).unwrap_or_default();
        assert_eq!(d["pid"], 42);
        assert_eq!(d["path"], "/etc/kubernetes/pki");
        assert!(d["cert"].is_null());

        let cases: Vec<(Error, i32)> = vec![
            (
                Error::CaKeyMissing {
                    ca: "ca".into(),
                    path: "/p/ca.key".into(),
                },
                -32001,
            ),
            (
                Error::Validation {
                    cert: "apiserver".into(),
                    reason: "x".into(),
                },
                -32003,
            ),
            (Error::UnknownCertificate("nope".into()), -32005),
            (Error::Symlink("/p/l".into()), -32006),
            (
                Error::Kubeconfig {
                    path: "/k".into(),
                    reason: "r".into(),
                },
                -32006,
            ),
            (
                Error::CaExpired {
                    ca: "ca".into(),
                    not_after: "2020-01-01T00:00:00Z".into(),
                },
                -32007,
            ),
            (Error::InvalidArgument("bad".into()), -32602),
        ];
        for (e, code) in cases {
            let o = to_rpc_error(&e);
            assert_eq!(o.code(), code, "{e}");
            let d: Value = serde_json::from_str(o.data().map(|d| d.get()).unwrap_or("null"))
                .unwrap_or_default();
            assert!(d.get("cert").is_some() && d.get("path").is_some() && d.get("cause").is_some());
        }
        let o = to_rpc_error(&Error::UnknownCertificate("nope".into()));
        assert!(o
            .data()
            .map(|d| d.get())
            .unwrap_or("")
            .contains("\"cert\":\"nope\""));
    }

    #[test]
    fn scrub_removes_pem() {
        let s =
            scrub("bad key: -----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----");
        assert!(!s.contains("MIIB") && !s.contains("PRIVATE KEY"), "{s}");
        assert_eq!(
            scrub("no PRIVATE KEY block found"),
            "no private key block found"
        );
    }
}
