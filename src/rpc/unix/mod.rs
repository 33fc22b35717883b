//! `kubecert serve --socket PATH`: JSON-RPC over HTTP/1.1 on a unix socket (the
//! Docker-socket convention), hyper serving each connection (jsonrpsee's
//! `serve_with_graceful_shutdown`) and the request path shared with stdio ([`wire`]):
//!
//! ```text
//! curl -s --unix-socket /run/kubecert/kubecert.sock http://localhost \
//!   -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"check","params":{}}'
//! ```
//!
//! Socket file: created 0600 (0660 and group-owned with `--group`) under a temporary name
//! and renamed into place, so it is never reachable with looser permissions; its parent dir
//! is created 0755 when absent; a symlink at the path is refused; an existing socket is
//! replaced only when nobody listens on it; `<socket>.lock` (flock) is held while serving;
//! a path longer than a socket address holds (107 bytes) is refused before anything is
//! created. With systemd socket activation the inherited socket is used as is (systemd
//! owns the file and its mode).
//!
//! Authorization: the kernel checks the socket file's mode first; then SO_PEERCRED gives the
//! caller's uid/gid/pid, turned into a [`Caller`] put in every call's extensions. Read
//! methods: root, the server's own uid, `--allow-uid`, `--allow-write-uid` and members of
//! `--group`. Mutating methods: root, the server's own uid and `--allow-write-uid`. A refused
//! call gets -31004 and is logged with uid/pid.
//!
//! HTTP: `POST` with a JSON content type; every JSON-RPC answer (parse errors and invalid
//! requests included) is 200, notifications only → 204, a body over the limit → 413 with
//! -31008 (by `Content-Length` or, chunked, at the first byte over), a broken HTTP body →
//! 400, other methods → 405, other content types → 415.
//!
//! Robustness (docs/rpc.md "Limits"): one task per connection; the library calls run on
//! the blocking pool. Every byte read or written is seen by the connection's `State`:
//! a request must arrive whole (headers and body) within `request_timeout` of its first
//! byte and may not stall for `idle_timeout`; a connection between requests is closed after
//! `idle_timeout` (and jsonrpsee closes one that sends no request within 30 s). At most
//! `max_connections` connections hold a slot; when all are taken, a new connection takes
//! the slot of the connection whose current phase (idle, receiving, or not reading its
//! response) started earliest; only connections running a call are never evicted, and a
//! new connection waits only when every slot runs a call. SIGTERM/SIGINT: stop accepting,
//! remove the socket, let in-flight calls finish (up to `shutdown_timeout`), exit 0.

mod auth;
mod conn;
mod http;
mod server;
mod socket;

use std::path::PathBuf;
use std::time::Duration;

use super::wire;

pub use auth::{effective_uid, lookup_group, Group, Policy};
pub use http::{declared_too_large, BodyError};
pub use server::run;
pub use socket::{check_path_len, MAX_SOCKET_PATH};

/// Default socket path.
pub const DEFAULT_SOCKET: &str = "/run/kubecert/kubecert.sock";

/// Options of the socket server.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    /// Socket path.
    pub path: PathBuf,
    /// Group allowed to read (socket 0660, group-owned).
    pub group: Option<String>,
    /// Extra uids allowed to call read methods.
    pub allow_uids: Vec<u32>,
    /// Extra uids allowed to call mutating methods (and read methods).
    pub allow_write_uids: Vec<u32>,
    /// Maximum HTTP request body.
    pub max_request_bytes: usize,
    /// Batch length and response bounds.
    pub limits: wire::Limits,
    /// A request (headers and body) must arrive within this time of its first byte.
    pub request_timeout: Duration,
    /// Maximum connections served at once.
    pub max_connections: u32,
    /// Close a connection with no request in flight after this long.
    pub idle_timeout: Duration,
    /// How long to wait for in-flight calls at shutdown.
    pub shutdown_timeout: Duration,
    /// The PKI served (see [`crate::confine`]).
    pub roots: super::Roots,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            path: PathBuf::from(DEFAULT_SOCKET),
            group: None,
            allow_uids: Vec::new(),
            allow_write_uids: Vec::new(),
            max_request_bytes: super::DEFAULT_MAX_REQUEST_BYTES,
            limits: wire::Limits::default(),
            request_timeout: Duration::from_secs(10),
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(60),
            roots: super::Roots::default(),
        }
    }
}
