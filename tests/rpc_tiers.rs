//! The socket's peer-credential tiers in-process (no root needed, unlike the end-to-end tests
//! in tests/agent): the module the socket server serves (`Enforce::PeerCredentials`) is called
//! with the `Caller` a `Policy` computes for a peer, exactly as the accept loop attaches it.
//! The policy grants read to the current process's group and write to one other uid; the
//! synthetic caller uids are neither 0 nor ours, so the test means the same as root or not.

mod common;
use common::*;
use kubecert::rpc::errors::codes;
use kubecert::rpc::unix::{Group, Policy};
use kubecert::rpc::{module, Caller, Enforce, Roots};
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A uid that is neither root nor the uid running the test.
fn foreign_uid(n: u32) -> u32 {
    let me = kubecert::rpc::unix::effective_uid();
    let u = 60_000 + n;
    if u == me {
        u + 100
    } else {
        u
    }
}

/// One JSON-RPC call to the module served on the socket, as `caller` (none: a connection the
/// server could not identify).
fn call(root: &Path, caller: Option<Caller>, method: &str, params: Value) -> Value {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let roots = Roots::for_dirs(root.join("pki"), root);
    let mut m = module(Enforce::PeerCredentials, roots);
    if let Some(c) = caller {
        m.extensions_mut().insert(c);
    }
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let (resp, _) = rt.block_on(m.raw_json_request(&req, 1)).unwrap();
    serde_json::from_str(resp.get()).unwrap()
}

/// `resp` is a NOT_AUTHORIZED refusal of `method` naming `who` and the tier.
#[track_caller]
fn assert_refused(resp: &Value, method: &str, who: &str, tier: &str) {
    assert_eq!(
        resp["error"]["code"],
        json!(codes::NOT_AUTHORIZED),
        "{resp}"
    );
    assert_eq!(resp["error"]["data"]["method"], json!(method), "{resp}");
    let cause = resp["error"]["data"]["cause"].as_str().unwrap_or_default();
    assert_eq!(
        cause,
        format!("{who} may not call {method} ({tier} method)"),
        "{resp}"
    );
    assert!(resp.get("result").is_none(), "{resp}");
}

#[test]
fn peer_credential_tiers_refuse_renew_without_write_and_allow_check_with_read() {
    let (_t, root) = demo(&["--expires-in", "5d", "--key-algorithm", "ecdsa-p256"]);
    let my_gid = std::fs::metadata("/proc/self").unwrap().gid();
    let (reader, writer, stranger) = (foreign_uid(1), foreign_uid(2), foreign_uid(3));
    let other_gid = my_gid.wrapping_add(1);
    let policy = Policy {
        // The server is none of the callers (the server's own uid may always write).
        server_uid: foreign_uid(4),
        read_uids: vec![],
        write_uids: vec![writer],
        group: Some(Group {
            name: "kubecert-test".into(),
            gid: my_gid,
        }),
    };
    let as_reader = policy.caller(reader, my_gid, None);
    assert!(as_reader.may_read && !as_reader.may_write, "{as_reader:?}");
    let as_writer = policy.caller(writer, other_gid, None);
    assert!(as_writer.may_read && as_writer.may_write, "{as_writer:?}");
    let as_stranger = policy.caller(stranger, other_gid, None);
    assert!(!as_stranger.may_read && !as_stranger.may_write);

    let before = hash_tree(&root);
    let renew = json!({"names": ["all"]});
    // No caller (fail closed) and a read-only caller: renew refused, nothing written.
    let r = call(&root, None, "renew", renew.clone());
    assert_refused(&r, "renew", "an unidentified caller", "mutating");
    let r = call(&root, Some(as_reader), "renew", renew.clone());
    assert_refused(&r, "renew", &format!("uid {reader}"), "mutating");
    let r = call(&root, Some(as_stranger), "renew", renew.clone());
    assert_refused(&r, "renew", &format!("uid {stranger}"), "mutating");
    assert_eq!(hash_tree(&root), before, "a refused renew changed the tree");

    // Read tier: the reader (by group) may check; a stranger and no caller may not.
    let r = call(&root, Some(as_reader), "check", json!({}));
    let certs = r["result"]["certificates"].as_array();
    assert!(certs.is_some_and(|c| c.len() >= 10), "{r}");
    let r = call(&root, Some(as_stranger), "check", json!({}));
    assert_refused(&r, "check", &format!("uid {stranger}"), "read");
    let r = call(&root, None, "check", json!({}));
    assert_refused(&r, "check", "an unidentified caller", "read");
    assert_eq!(hash_tree(&root), before, "check changed the tree");

    // The write grant works: the same renew by the writer changes the tree (so the refusals
    // above were the tiers, not a broken call).
    let r = call(&root, Some(as_writer), "renew", renew);
    assert!(r["result"]["changed"] == json!(true), "{r}");
    let after = hash_tree(&root);
    for f in ["pki/apiserver.crt", "pki/apiserver.key", "admin.conf"] {
        assert_ne!(after.get(f), before.get(f), "{f} not renewed by the writer");
    }
}
