//! In-process JSON-RPC calls as a given peer (the `Caller` extension the unix socket would
//! set from SO_PEERCRED): confinement tests without a socket and without root.

use kubecert::rpc::{module, Caller, Enforce, Roots};
use serde_json::{json, Value};

/// A uid that is neither root nor the test's own (so it is confined).
pub fn other_uid() -> u32 {
    if kubecert::rpc::unix::effective_uid() == 1000 {
        1001
    } else {
        1000
    }
}

/// A peer with `uid` in the read tier, and in the write tier when `may_write`.
pub fn caller_uid(uid: u32, may_write: bool) -> Caller {
    Caller {
        uid,
        gid: uid,
        pid: Some(4242),
        may_read: true,
        may_write,
    }
}

/// A confined peer ([`other_uid`]).
pub fn caller(may_write: bool) -> Caller {
    caller_uid(other_uid(), may_write)
}

/// Calls `method` on a socket-style module serving `roots`, as `who` (`None`: no peer
/// credentials at all); the whole JSON-RPC response.
pub fn call_as(
    roots: &Roots,
    who: impl Into<Option<Caller>>,
    method: &str,
    params: Value,
) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut m = module(Enforce::PeerCredentials, roots.clone());
    if let Some(c) = who.into() {
        m.extensions_mut().insert(c);
    }
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let (resp, _) = rt
        .block_on(m.raw_json_request(&req, 1))
        .expect("a JSON-RPC response");
    serde_json::from_str(resp.get()).expect("JSON")
}
