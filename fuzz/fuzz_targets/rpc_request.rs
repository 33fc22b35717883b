//! The JSON-RPC request path of both transports, on arbitrary bytes: the stdio framing
//! (`read_line`: lines, `\r\n`, the size limit), the HTTP body as one message, then
//! `wire::parse` (ids, request objects, batches and their limit), every method's params
//! parser, and `wire::handle` against the real method table with a caller that may call
//! nothing (every method refuses before running: no file is read or written).
//!
//! Invariants checked: every answer is JSON-RPC 2.0 JSON; a refused id is never
//! dispatched; an accepted id is echoed byte for byte; a batch answer has at most one
//! element per request; nothing but the expected error codes comes back (no method ran).
#![no_main]

use std::sync::OnceLock;

use kubecert::rpc::api::{parse_params, Caller, NoParams};
use kubecert::rpc::{self, stdio, wire, Enforce};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const LIMITS: wire::Limits = wire::Limits {
    max_batch: 8,
    max_response_bytes: 4096,
};
const MAX_LINE: usize = 4096;

struct World {
    rt: tokio::runtime::Runtime,
    module: jsonrpsee::RpcModule<()>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        // A method added to the table without a params parser here fails at once.
        for m in rpc::METHODS {
            assert!(
                params_of(m.name(), None).is_some(),
                "fuzz target: no params parser for {}",
                m.name()
            );
        }
        World {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            module: rpc::module(
                Enforce::PeerCredentials,
                kubecert::confine::Roots::default(),
            ),
        }
    })
}

/// Parses params with the method's own type; `None` for an unknown method.
fn params_of(method: &str, raw: Option<&str>) -> Option<bool> {
    use kubecert::check::CheckParams;
    use kubecert::csr::{CsrExportParams, CsrImportParams};
    use kubecert::kubelet::KubeletConfParams;
    use kubecert::metrics::MetricsParams;
    use kubecert::renew::{RenewParams, RestoreParams};
    Some(match method {
        "check" => parse_params::<CheckParams>(raw).is_ok(),
        "renew" => parse_params::<RenewParams>(raw).is_ok(),
        "restore" => parse_params::<RestoreParams>(raw).is_ok(),
        "kubelet-conf" => parse_params::<KubeletConfParams>(raw).is_ok(),
        "kubelet-conf-rebuild" => {
            parse_params::<kubecert::kubelet::rebuild::KubeletRebuildParams>(raw).is_ok()
        }
        "ca-check" => parse_params::<kubecert::ca::CaCheckParams>(raw).is_ok(),
        "ca-renew" => parse_params::<kubecert::ca::CaRenewParams>(raw).is_ok(),
        "ca-export" => parse_params::<kubecert::ca::CaExportParams>(raw).is_ok(),
        "ca-install" => parse_params::<kubecert::ca::CaInstallParams>(raw).is_ok(),
        "csr-export" => parse_params::<CsrExportParams>(raw).is_ok(),
        "csr-import" => parse_params::<CsrImportParams>(raw).is_ok(),
        "metrics" => parse_params::<MetricsParams>(raw).is_ok(),
        "restart" => parse_params::<kubecert::ops::restart::RestartParams>(raw).is_ok(),
        "health" => parse_params::<kubecert::ops::health::HealthParams>(raw).is_ok(),
        "served" => parse_params::<kubecert::ops::served::ServedParams>(raw).is_ok(),
        #[cfg(feature = "k8s")]
        "approve" => parse_params::<kubecert::kubeapi::approve::ApproveParams>(raw).is_ok(),
        "version" | "stats" | "rpc.discover" => parse_params::<NoParams>(raw).is_ok(),
        _ => return None,
    })
}

/// Error codes a caller without rights can get back.
const EXPECTED: &[i64] = &[-32700, -32600, -32601, -31004, -31008];

fn check_response(v: &Value, id: Option<&str>) {
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert!(v.get("result").is_none(), "a method ran: {v}");
    let code = v["error"]["code"].as_i64().expect("error code");
    assert!(EXPECTED.contains(&code), "unexpected code {code}: {v}");
    if let Some(id) = id {
        let want: Value = serde_json::from_str(id).expect("echoed id is JSON");
        assert_eq!(v["id"], want, "id not echoed");
    }
}

fn message(w: &World, bytes: &[u8]) {
    let msg = wire::parse(bytes, &LIMITS);
    // What the entries are, before anything runs.
    let entries: Vec<(Option<String>, bool)> = match &msg {
        wire::Message::Single(e) => vec![entry(e)],
        wire::Message::Batch(es) => {
            assert!(!es.is_empty() && es.len() <= LIMITS.max_batch);
            es.iter().map(entry).collect()
        }
        wire::Message::Reject(r) => {
            check_response(&serde_json::from_str(r).expect("reject is JSON"), None);
            Vec::new()
        }
        wire::Message::Empty => {
            assert!(bytes.iter().all(|b| b" \t\r\n".contains(b)));
            Vec::new()
        }
    };
    let batch = matches!(msg, wire::Message::Batch(_));
    let mut ext = jsonrpsee::Extensions::new();
    ext.insert(Caller {
        uid: 65534,
        gid: 65534,
        pid: None,
        may_read: false,
        may_write: false,
    });
    let out = w.rt.block_on(wire::handle(&w.module, msg, &ext, &LIMITS));
    let answered: Vec<&(Option<String>, bool)> = entries.iter().filter(|(_, a)| *a).collect();
    let Some(out) = out else {
        assert!(answered.is_empty(), "answerable entries got no answer");
        return;
    };
    let v: Value = serde_json::from_str(&out).expect("answer is JSON");
    if batch {
        let arr = v.as_array().expect("batch answer is an array");
        assert_eq!(arr.len(), answered.len());
        for (r, (id, _)) in arr.iter().zip(answered) {
            check_response(r, id.as_deref());
        }
    } else if let Some((id, _)) = answered.first() {
        check_response(&v, id.as_deref());
    } else {
        check_response(&v, None);
    }
}

/// (the id to see echoed, whether it is answered) of one entry; parses its params.
fn entry(e: &wire::Entry<'_>) -> (Option<String>, bool) {
    match e {
        wire::Entry::Call { id, method, params } => {
            assert!(wire::bad_id(id).is_none(), "refused id dispatched: {id}");
            let _ = params_of(method, *params);
            (Some((*id).to_string()), true)
        }
        wire::Entry::Notification { method, params } => {
            let _ = params_of(method, *params);
            (None, false)
        }
        wire::Entry::Invalid(r) => {
            let v: Value = serde_json::from_str(r).expect("invalid-request answer is JSON");
            assert_eq!(v["error"]["code"], -32600, "{v}");
            (None, true)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    // stdio: the input as lines.
    let lines = w.rt.block_on(async {
        let mut r: &[u8] = data;
        let mut lines = Vec::new();
        while let Ok(Some(l)) = stdio::read_line(&mut r, MAX_LINE).await {
            lines.push(l);
        }
        lines
    });
    for l in &lines {
        if let stdio::Line::Data(bytes) = l {
            assert!(bytes.len() <= MAX_LINE && !bytes.contains(&b'\n'));
            message(w, bytes);
        }
    }
    // HTTP: the input as one body.
    message(w, data);
});
