//! JSON-RPC errors. [`to_rpc_error`] is the one place where a [`crate::Error`] becomes a
//! code; every server-defined error carries `data: {"cert", "path", "cause"}` (plus `pid`
//! for [`codes::LOCKED`]). Causes are scrubbed so that no PEM block can ever leave the agent.

use jsonrpsee::types::{ErrorCode, ErrorObjectOwned};
use serde_json::{json, Value};

use crate::Error;

/// Error codes (docs/rpc.md, "Errors").
///
/// The standard codes of JSON-RPC 2.0 (-32700, -32600 … -32603) keep their meaning. Every
/// code kubecert defines itself is in **-31001 ..= -31099**, outside the band -32768 ..=
/// -32000 that JSON-RPC 2.0 (section 5.1) reserves for pre-defined and implementation-defined
/// server errors: jsonrpsee, the JSON-RPC library the agent is built on, emits its own codes
/// from that band (-32000, -32001, -32005 … -32011: unknown error, batches not supported, too
/// many subscriptions, oversized request and response, server busy, batch too large; see
/// `JSONRPSEE_CODES` in the tests below), so a kubecert code there would mean two things.
/// Nothing kubecert links emits a code in -31001 ..= -31099. The last two digits are those
/// of the codes kubecert used before (-32001 … -32011), so -31002 is still "locked".
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
    pub const CA_KEY_MISSING: i32 = -31001;
    /// The PKI is locked by another kubecert run (`data.pid`).
    pub const LOCKED: i32 = -31002;
    /// A planned or imported certificate is not acceptable.
    pub const VALIDATION: i32 = -31003;
    /// The caller's uid may not call this method.
    pub const NOT_AUTHORIZED: i32 = -31004;
    /// Not an inventory name.
    pub const UNKNOWN_CERTIFICATE: i32 = -31005;
    /// PKI or file error: unreadable, malformed, symlink refused, CA absent.
    pub const FILE: i32 = -31006;
    /// The CA has expired (renew refused without `allow_expired_ca`).
    pub const CA_EXPIRED: i32 = -31007;
    /// The request (body, line or batch length) or the response is over the server's bound.
    pub const TOO_LARGE: i32 = -31008;
    /// The Kubernetes API failed or refused (certificates API methods).
    pub const KUBE_API: i32 = -31009;
    /// A path param this caller may not choose (only the agent's configured roots).
    pub const PATH_NOT_ALLOWED: i32 = -31010;
    /// A backup dir or manifest that restore refuses (outside the backup root, symlink,
    /// an entry that is not an inventory file or not a plain file of the backup).
    pub const BACKUP_REFUSED: i32 = -31011;
    /// kubecert's own store is corrupt: the journal of an interrupted run does not parse
    /// (recovery refuses to guess), or a journal or backup manifest could not be encoded.
    pub const STORE_CORRUPT: i32 = -31012;
    /// The agent could not start the async runtime a call needs.
    pub const RUNTIME: i32 = -31013;
}

/// The band of the codes kubecert defines (see [`codes`]).
pub const KUBECERT_CODES: std::ops::RangeInclusive<i32> = -31099..=-31001;

/// One of kubecert's own codes: its name (the key in the OpenRPC document's
/// `components.errors`) and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerError {
    /// The code, in [`KUBECERT_CODES`].
    pub code: i32,
    /// Its name.
    pub name: &'static str,
    /// Its `message`.
    pub message: &'static str,
}

const fn se(code: i32, name: &'static str, message: &'static str) -> ServerError {
    ServerError {
        code,
        name,
        message,
    }
}

/// Every code kubecert defines (docs/rpc.md, "Errors"; the OpenRPC document).
pub const SERVER_ERRORS: &[ServerError] = &[
    se(
        codes::CA_KEY_MISSING,
        "CaKeyMissing",
        "CA key missing (externally managed)",
    ),
    se(
        codes::LOCKED,
        "Locked",
        "PKI locked by another kubecert run",
    ),
    se(codes::VALIDATION, "Validation", "validation failed"),
    se(codes::NOT_AUTHORIZED, "NotAuthorized", "not authorized"),
    se(
        codes::UNKNOWN_CERTIFICATE,
        "UnknownCertificate",
        "unknown certificate name",
    ),
    se(codes::FILE, "File", "PKI or file error"),
    se(codes::CA_EXPIRED, "CaExpired", "CA expired"),
    se(
        codes::TOO_LARGE,
        "TooLarge",
        "request or response too large",
    ),
    se(codes::KUBE_API, "KubeApi", "Kubernetes API error"),
    se(
        codes::PATH_NOT_ALLOWED,
        "PathNotAllowed",
        "path not allowed for this caller",
    ),
    se(codes::BACKUP_REFUSED, "BackupRefused", "backup refused"),
    se(
        codes::STORE_CORRUPT,
        "StoreCorrupt",
        "kubecert store corrupt",
    ),
    se(codes::RUNTIME, "Runtime", "runtime failure"),
];

/// The standard JSON-RPC 2.0 codes the agent answers with, and their names.
pub const STANDARD_ERRORS: &[(i32, &str)] = &[
    (codes::PARSE_ERROR, "ParseError"),
    (codes::INVALID_REQUEST, "InvalidRequest"),
    (codes::METHOD_NOT_FOUND, "MethodNotFound"),
    (codes::INVALID_PARAMS, "InvalidParams"),
    (codes::INTERNAL, "InternalError"),
];

/// The message of a server-defined code.
pub fn message(code: i32) -> &'static str {
    SERVER_ERRORS
        .iter()
        .find(|e| e.code == code)
        .map(|e| e.message)
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
        Error::CaKeyMissing { .. } | Error::PromoteKeyMissing { .. } => codes::CA_KEY_MISSING,
        Error::Locked { dir, pid } => {
            let mut d = data(cert, Some(dir), &cause);
            d["pid"] = json!(pid);
            return ErrorObjectOwned::owned(codes::LOCKED, message(codes::LOCKED), Some(d));
        }
        Error::Validation { .. }
        | Error::ForeignIdentity { .. }
        | Error::ClockSkew { .. }
        | Error::RotationPhase { .. }
        | Error::RotationClientFile { .. }
        | Error::CaValidityShortened { .. } => codes::VALIDATION,
        Error::UnknownCertificate(_) => codes::UNKNOWN_CERTIFICATE,
        Error::Io { .. }
        | Error::Pem { .. }
        | Error::Kubeconfig { .. }
        | Error::Symlink(_)
        | Error::CaMissing { .. }
        | Error::NotACa { .. }
        | Error::NoPki { .. } => codes::FILE,
        Error::Recovery { .. } | Error::StoreCorrupt { .. } => codes::STORE_CORRUPT,
        Error::Runtime { .. } => codes::RUNTIME,
        Error::CaExpired { .. } | Error::CaNotYetValid { .. } => codes::CA_EXPIRED,
        Error::KubeApi(_) => codes::KUBE_API,
        Error::ClusterInfo { server, result, .. } => {
            let mut d = data(cert, path, &cause);
            d["server"] = json!(server);
            d["result"] = (**result).clone();
            return ErrorObjectOwned::owned(codes::KUBE_API, message(codes::KUBE_API), Some(d));
        }
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
        // An unreadable kubeadm config file is a file error; one that does not read as a
        // kubeadm config is bad input, like an invalid argument.
        Error::Config(c) if matches!(**c, crate::error::ConfigError::Read { .. }) => codes::FILE,
        // The kubeadm-config ConfigMap could not be read from the API server.
        Error::Config(c) if matches!(**c, crate::error::ConfigError::ConfigMap { .. }) => {
            codes::KUBE_API
        }
        Error::InvalidArgument(_) | Error::Time(_) | Error::Config(_) => {
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

/// [`codes::NOT_AUTHORIZED`]: `uid` may not call `method`.
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

/// The [`codes::TOO_LARGE`] response for a request over `limit` bytes.
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
                -31001,
            ),
            (
                Error::Validation {
                    cert: "apiserver".into(),
                    reason: "x".into(),
                },
                -31003,
            ),
            (
                Error::PromoteKeyMissing {
                    ca: "ca",
                    path: "/p/ca.next.key".into(),
                    todo: "x".into(),
                },
                -31001,
            ),
            (
                Error::RotationClientFile {
                    ca: "ca",
                    requested: "distrust",
                    kubeconfig: "/etc/kubernetes/kubelet.conf".into(),
                    file: "/var/lib/kubelet/pki/kubelet-client-current.pem".into(),
                    reason: "x".into(),
                },
                -31003,
            ),
            (Error::UnknownCertificate("nope".into()), -31005),
            (Error::Symlink("/p/l".into()), -31006),
            (
                Error::Kubeconfig {
                    path: "/k".into(),
                    reason: "r".into(),
                },
                -31006,
            ),
            (
                Error::CaExpired {
                    ca: "ca".into(),
                    not_after: "2020-01-01T00:00:00Z".into(),
                },
                -31007,
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

    /// Every error code jsonrpsee 0.26 defines and can emit: the constants of
    /// `jsonrpsee-types-0.26.1/src/error.rs` (`PARSE_ERROR_CODE` … `TOO_BIG_BATCH_RESPONSE_CODE`;
    /// emitted by jsonrpsee-server `server.rs`, `middleware/rpc.rs`, `transport/http.rs` and
    /// jsonrpsee-core `server/method_response.rs`, `server/rpc_module.rs`).
    const JSONRPSEE_CODES: &[(i32, &str)] = &[
        (-32700, "parse error"),
        (-32600, "invalid request"),
        (-32601, "method not found"),
        (-32602, "invalid params"),
        (-32603, "internal error"),
        (-32000, "call execution failed"),
        (-32001, "unknown error"),
        (-32005, "batches not supported"),
        (-32006, "too many subscriptions"),
        (-32007, "oversized request"),
        (-32008, "oversized response"),
        (-32009, "server is busy"),
        (-32010, "batch request too large"),
        (-32011, "batch response too large"),
    ];

    #[test]
    fn jsonrpsee_codes_are_those_of_the_crate() {
        use jsonrpsee::types::error as j;
        let krate = [
            j::PARSE_ERROR_CODE,
            j::INVALID_REQUEST_CODE,
            j::METHOD_NOT_FOUND_CODE,
            j::INVALID_PARAMS_CODE,
            j::INTERNAL_ERROR_CODE,
            j::CALL_EXECUTION_FAILED_CODE,
            j::UNKNOWN_ERROR_CODE,
            j::BATCHES_NOT_SUPPORTED_CODE,
            j::TOO_MANY_SUBSCRIPTIONS_CODE,
            j::OVERSIZED_REQUEST_CODE,
            j::OVERSIZED_RESPONSE_CODE,
            j::SERVER_IS_BUSY_CODE,
            j::TOO_BIG_BATCH_REQUEST_CODE,
            j::TOO_BIG_BATCH_RESPONSE_CODE,
        ];
        let listed: Vec<i32> = JSONRPSEE_CODES.iter().map(|(c, _)| *c).collect();
        assert_eq!(listed, krate);
    }

    /// The codes of the `codes` module, read from this file.
    fn code_table() -> std::collections::BTreeMap<String, i32> {
        let src = include_str!("errors.rs");
        let body = src
            .split("pub mod codes {")
            .nth(1)
            .and_then(|b| b.split("\n}\n").next())
            .unwrap_or_default();
        body.lines()
            .filter_map(|l| l.trim().strip_prefix("pub const "))
            .filter_map(|l| {
                let (name, rest) = l.split_once(": i32 = ")?;
                Some((name.to_string(), rest.trim_end_matches(';').parse().ok()?))
            })
            .collect()
    }

    #[test]
    fn documented_codes_are_the_code_table() {
        use std::collections::BTreeSet;
        let table = code_table();
        assert_eq!(table["LOCKED"], codes::LOCKED, "{table:?}");
        let standard: BTreeSet<i32> = STANDARD_ERRORS.iter().map(|(c, _)| *c).collect();
        let ours: BTreeSet<i32> = SERVER_ERRORS.iter().map(|e| e.code).collect();
        assert_eq!(ours.len(), SERVER_ERRORS.len(), "a code twice");
        let names: BTreeSet<&str> = SERVER_ERRORS.iter().map(|e| e.name).collect();
        assert_eq!(names.len(), SERVER_ERRORS.len(), "a name twice");
        // The `codes` module is exactly the standard codes and the kubecert table.
        let all: BTreeSet<i32> = standard.union(&ours).copied().collect();
        assert_eq!(table.values().copied().collect::<BTreeSet<_>>(), all);
        assert_eq!(table.len(), all.len(), "two constants with one code");

        // Ours: in the kubecert band, none a code jsonrpsee emits; the standard ones are
        // jsonrpsee's with the same meaning.
        let jsonrpsee: BTreeSet<i32> = JSONRPSEE_CODES.iter().map(|(c, _)| *c).collect();
        for e in SERVER_ERRORS {
            assert!(KUBECERT_CODES.contains(&e.code), "{e:?} outside the band");
            assert!(!jsonrpsee.contains(&e.code), "{e:?} is a jsonrpsee code");
        }
        assert!(standard.is_subset(&jsonrpsee));
        assert!(jsonrpsee.iter().all(|c| !KUBECERT_CODES.contains(c)));

        // docs/rpc.md, section "Errors": one table row per kubecert code, and the standard
        // codes in the text before it.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let doc = std::fs::read_to_string(root.join("docs/rpc.md")).expect("docs/rpc.md");
        let section = doc
            .split("\n## Errors\n")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("docs/rpc.md has an Errors section");
        let rows: Vec<i32> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| -"))
            .filter_map(|l| l.split(' ').next()?.parse::<i32>().ok())
            .map(|c| -c)
            .collect();
        assert_eq!(
            rows.iter().copied().collect::<BTreeSet<_>>(),
            ours,
            "docs/rpc.md's table of codes differs from SERVER_ERRORS"
        );
        assert_eq!(rows.len(), ours.len(), "a code twice in docs/rpc.md");
        for c in &standard {
            assert!(section.contains(&c.to_string()), "{c} not in docs/rpc.md");
        }

        // schema/openrpc.json: components.errors is every code; methods name no other.
        let text = std::fs::read_to_string(root.join("schema/openrpc.json")).expect("openrpc.json");
        let v: Value = serde_json::from_str(&text).expect("openrpc.json is JSON");
        let listed: BTreeSet<i32> = v["components"]["errors"]
            .as_object()
            .map(|o| {
                o.values()
                    .filter_map(|e| e["code"].as_i64())
                    .filter_map(|c| i32::try_from(c).ok())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(listed, all, "schema/openrpc.json components.errors");
        let methods = v["methods"].as_array().cloned().unwrap_or_default();
        assert!(!methods.is_empty());
        for m in &methods {
            for e in m["errors"].as_array().cloned().unwrap_or_default() {
                let c = e["code"].as_i64().and_then(|c| i32::try_from(c).ok());
                assert!(c.is_some_and(|c| all.contains(&c)), "{}: {e}", m["name"]);
                if let Some(se) = SERVER_ERRORS.iter().find(|s| Some(s.code) == c) {
                    assert_eq!(e["message"], se.message);
                }
            }
        }
    }

    #[test]
    fn store_corruption_and_runtime_have_their_own_codes() {
        let cases: Vec<(Error, i32)> = vec![
            (
                Error::StoreCorrupt {
                    path: "/p/.kubecert-journal.json".into(),
                    reason: "not valid JSON (syntax error at line 1, column 2)".into(),
                },
                -31012,
            ),
            (
                Error::Recovery {
                    reason: "/p/.kubecert-journal.json: x".into(),
                },
                -31012,
            ),
            (
                Error::Runtime {
                    source: std::io::Error::other("no threads"),
                },
                -31013,
            ),
        ];
        for (e, code) in cases {
            let o = to_rpc_error(&e);
            assert_eq!(o.code(), code, "{e}");
            assert_eq!(o.message(), message(code));
        }
        let o = to_rpc_error(&Error::Runtime {
            source: std::io::Error::other("no threads"),
        });
        assert!(
            o.data()
                .map(|d| d.get())
                .unwrap_or("")
                .contains("\"cause\":\"tokio runtime: no threads\""),
            "{:?}",
            o.data()
        );
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
