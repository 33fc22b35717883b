//! The kubecert agent: the library calls as typed JSON-RPC 2.0 (contract: `docs/rpc.md`).
//!
//! One [`RpcModule`](jsonrpsee::RpcModule) is built from the method table [`api::METHODS`]
//! and served over two transports:
//!
//! - [`stdio`]: newline-delimited JSON on stdin/stdout (`kubecert serve --stdio`), batches
//!   and notifications included; the caller's own rights apply;
//! - [`unix`]: JSON-RPC over HTTP/1.1 on a unix socket (`kubecert serve --socket PATH`),
//!   with SO_PEERCRED-based authorization tiers (read / write) checked in each method.
//!
//! The same table produces the OpenRPC document (`rpc.discover`, `schema/openrpc.json`) and
//! the per-method JSON Schemas in `schema/` ([`openrpc`]). Errors of the library map to
//! JSON-RPC error codes in exactly one function, [`errors::to_rpc_error`].
//!
//! # Adding a method (e.g. `csr-export`)
//!
//! 1. In the library, give the operation a params struct (`#[derive(Debug, Clone, Default,
//!    Serialize, Deserialize, JsonSchema)]`, `#[serde(deny_unknown_fields)]`, fields
//!    `snake_case` and `#[serde(default)]` where optional) and a result struct
//!    (`#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]`,
//!    `#[serde(rename_all = "camelCase")]`), and a blocking function
//!    `fn(&Params) -> kubecert::Result<Result>`.
//! 2. Add one row to [`api::METHODS`]:
//!    ```ignore
//!    &Method::<CsrExportParams, CsrExportResult> {
//!        name: "csr-export",
//!        doc: "Write CSRs (and keys) for an external CA to sign.",
//!        mutating: true,                 // write tier on the socket
//!        read_only_if: None,             // or Some(fn(&P) -> bool) when some params only read
//!        inline: None,                   // or Some(fn(&P) -> Option<Result<R>>): a cache hit
//!        errors: WRITE_ERRORS,           // server-defined codes listed in the OpenRPC doc
//!        call: |p| kubecert::csr::export(&p),
//!    },
//!    ```
//!    Registration, authorization, `version`'s method list and the OpenRPC doc follow.
//! 3. Map any new [`crate::Error`] variant in [`errors::to_rpc_error`] (one `match`).
//! 4. Regenerate and commit the schemas: `cargo run -- schema --out schema/` (the test
//!    `rpc::openrpc::tests::committed_schema_is_current` fails until you do), and document
//!    the method in `docs/rpc.md`.
//!
//! A method that needs server state (e.g. `metrics` counting calls) can keep it in a
//! `static` (atomics) in its own module; the call still runs on the blocking pool (unless
//! its `inline` call answers at once).

pub mod api;
pub mod errors;
pub mod openrpc;
pub mod stdio;
pub mod unix;
pub mod wire;

use jsonrpsee::RpcModule;

pub use crate::confine::Roots;

pub use api::{Caller, RpcMethod, METHODS};

/// Why a transport could not start or serve (the calls' own errors are JSON-RPC errors,
/// [`errors::to_rpc_error`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A system call on a file or socket failed (`what` says which, then the path).
    #[error("{what} {}", path.display())]
    Io {
        /// What failed ("cannot bind", "cannot open lock file", ...).
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A system call not about one file failed (runtime, signals, the listener, stdio).
    #[error("{what}")]
    Os {
        /// What failed.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The socket could not be given to `--group`.
    #[error("cannot chown {} to group {group}", path.display())]
    Chown {
        /// The socket (under its temporary name).
        path: std::path::PathBuf,
        /// The group.
        group: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The socket could not be renamed into place.
    #[error("cannot rename {} to {}", from.display(), to.display())]
    Rename {
        /// The temporary name.
        from: std::path::PathBuf,
        /// The socket path.
        to: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another `kubecert serve` holds the socket's lock.
    #[error("another kubecert serve holds {} (serving {})", lock.display(), socket.display())]
    Locked {
        /// The lock file.
        lock: std::path::PathBuf,
        /// The socket it guards.
        socket: std::path::PathBuf,
    },
    /// The socket path names no file (`/`, `..`).
    #[error("{} is not a socket file path", .0.display())]
    NotAFilePath(std::path::PathBuf),
    /// A symlink at the socket path.
    #[error("refusing symlink at {}", .0.display())]
    Symlink(std::path::PathBuf),
    /// A live server already listens on the socket path.
    #[error("{} is in use: a server is listening on it", .0.display())]
    InUse(std::path::PathBuf),
    /// Something other than a socket is at the socket path.
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(std::path::PathBuf),
    /// The socket path (or the temporary name it is bound under, `temp`) does not fit in a
    /// unix socket address.
    #[error("socket path {}{}", path.display(), match temp {
        None => format!(" is {len} bytes; a unix socket path is at most {max} bytes"),
        Some(t) => format!(": its temporary name {} is {len} bytes; a unix socket path is at most {max} bytes", t.display()),
    })]
    PathTooLong {
        /// The socket path.
        path: std::path::PathBuf,
        /// The temporary name, when it is the one too long.
        temp: Option<std::path::PathBuf>,
        /// Its length in bytes.
        len: usize,
        /// The most a socket address holds.
        max: usize,
    },
    /// `--group` names no group.
    #[error("unknown group {0:?} (not in the group database)")]
    UnknownGroup(String),
}

/// Default maximum size of one request (a stdio line or an HTTP body): 1 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// How methods decide who may call them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforce {
    /// Every call must carry a [`Caller`] extension (set by the socket server from
    /// SO_PEERCRED); calls without one are refused (fail closed).
    PeerCredentials,
    /// No check: the transport runs with the caller's own rights (stdio).
    None,
}

/// Builds the RPC module: every row of [`METHODS`], registered once, serving `roots`
/// (absent path params are filled from them; confined callers may pass no others, see
/// [`crate::confine`]).
pub fn module(enforce: Enforce, roots: Roots) -> RpcModule<()> {
    // A serving process answers many checks: keep their reads (the library's cache).
    crate::check::cache::enable();
    let roots = std::sync::Arc::new(roots);
    let mut m = RpcModule::new(());
    for method in METHODS {
        // Names are static and unique (tested): registration cannot fail.
        if let Err(e) = method.register(&mut m, enforce, roots.clone()) {
            tracing::error!(method = method.name(), error = %e, "cannot register method");
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_registered_method_is_in_the_table_and_back() {
        let m = module(Enforce::None, Roots::default());
        let registered: BTreeSet<&str> = m.method_names().collect();
        let table: BTreeSet<&str> = METHODS.iter().map(|r| r.name()).collect();
        assert_eq!(registered, table);
        assert_eq!(
            table.len(),
            METHODS.len(),
            "duplicate method names in the table"
        );
        for must in [
            "check",
            "renew",
            "restore",
            "kubelet-conf",
            "version",
            "rpc.discover",
        ] {
            assert!(table.contains(must), "{must} missing");
        }
    }

    #[test]
    fn tiers_match_the_contract() {
        let mutating: BTreeSet<&str> = METHODS
            .iter()
            .filter(|r| r.mutating())
            .map(|r| r.name())
            .collect();
        for m in ["renew", "restore", "kubelet-conf"] {
            assert!(mutating.contains(m), "{m} must be mutating");
        }
        for m in ["check", "version", "rpc.discover"] {
            assert!(!mutating.contains(m), "{m} must be read-only");
        }
    }
}
