//! review15: adversarial cases of issue 15's kubelet section (`check --kubelet`): a rotated
//! PEM without its key, rotation links that point out of the kubelet PKI dir (the agent runs
//! as root: it must never read, let alone echo, what such a link points at), and an embedded
//! kubelet.conf without its key. Each must be a named finding that fails the check.

mod common;
use common::*;
use std::path::Path;

const DEMO_NOW: &str = "2026-01-01T00:00:00Z";
const CHECK_NOW: &str = "2026-06-01T00:00:00Z";

fn check_kubelet(root: &Path, pki: &Path) -> (i32, serde_json::Value, String) {
    let o = check(root)
        .args(&[
            "--kubelet",
            "--kubelet-pki",
            pki.to_str().unwrap(),
            "--now",
            CHECK_NOW,
            "-o",
            "json",
        ])
        .output();
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    (o.status.code().unwrap_or(-1), v, text(&o))
}

/// The client's problems as (code, message).
fn client_problems(v: &serde_json::Value) -> Vec<(String, String)> {
    v["kubelet"]["client"]["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("{v:#}"))
        .iter()
        .map(|p| {
            (
                p["code"].as_str().unwrap().to_string(),
                p["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Only the certificate blocks of a PEM file.
fn cert_only(pem: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for l in pem.lines() {
        if l == "-----BEGIN CERTIFICATE-----" {
            inside = true;
        }
        if inside {
            out.push_str(l);
            out.push('\n');
        }
        if l == "-----END CERTIFICATE-----" {
            inside = false;
        }
    }
    out
}

#[test]
fn rotated_pem_without_key_and_links_out_of_the_dir_are_named_failures() {
    let (t, root) = demo(&[
        "--now",
        DEMO_NOW,
        "--kubelet",
        "--key-algorithm",
        "ecdsa-p256",
    ]);
    let pki = root.join("kubelet-pki");
    let current = pki.join("kubelet-client-current.pem");
    let dated = std::fs::canonicalize(&current).unwrap();
    let (code, v, _) = check_kubelet(&root, &pki);
    assert_eq!(code, 0, "the demo is healthy: {v:#}");

    // 1. The dated PEM holds the certificate but not its key: key-missing, fail (exit 4).
    let full = std::fs::read_to_string(&dated).unwrap();
    std::fs::write(&dated, cert_only(&full)).unwrap();
    let before = hash_tree(t.path());
    let (code, v, _) = check_kubelet(&root, &pki);
    assert_eq!(code, 4, "{v:#}");
    let p = client_problems(&v);
    assert!(
        p.iter().any(|(c, m)| c == "key-missing"
            && m == &format!("private key not found (in {})", current.display())),
        "{p:?}"
    );
    assert_eq!(hash_tree(t.path()), before, "check wrote something");
    std::fs::write(&dated, &full).unwrap();

    // 2. The rotation link points out of the dir, absolutely or by `..`, or through a second
    // link: refused as a symlink, the target never read; exit 4, the link named.
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let secret = outside.join("secret.pem");
    std::fs::write(
        &secret,
        format!("{full}\nSECRET-MARKER-4f1d shadow-like content\n"),
    )
    .unwrap();
    let hop = pki.join("kubelet-client-hop.pem");
    std::os::unix::fs::symlink(&secret, &hop).unwrap();
    for target in [
        secret.clone(),
        Path::new("../outside/secret.pem").to_path_buf(),
        Path::new("kubelet-client-hop.pem").to_path_buf(),
        Path::new("/etc/shadow").to_path_buf(),
    ] {
        std::fs::remove_file(&current).unwrap();
        std::os::unix::fs::symlink(&target, &current).unwrap();
        let before = hash_tree(t.path());
        let (code, v, all) = check_kubelet(&root, &pki);
        assert_eq!(code, 4, "{target:?}: {v:#}");
        let p = client_problems(&v);
        assert_eq!(p.len(), 1, "{target:?}: {p:?}");
        assert_eq!(p[0].0, "unreadable", "{target:?}: {p:?}");
        assert!(
            p[0].1 == format!("refusing symlink at {}", current.display())
                || p[0].1 == format!("refusing symlink at {}", hop.display()),
            "{target:?}: {p:?}"
        );
        assert!(!all.contains("SECRET-MARKER"), "{target:?}: {all}");
        assert!(!all.contains("PRIVATE KEY"), "{target:?}: {all}");
        assert!(!all.contains("root:"), "{target:?}: {all}");
        assert_eq!(hash_tree(t.path()), before, "check wrote something");
    }
}

/// kubelet.conf with an embedded client certificate but no client-key-data (and no rotated
/// PEM): key-unreadable, fail, the kubeconfig named.
#[test]
fn embedded_client_cert_without_key_is_key_missing() {
    let (t, root) = demo(&["--now", DEMO_NOW, "--key-algorithm", "ecdsa-p256"]);
    let pki = root.join("kubelet-pki");
    std::fs::create_dir(&pki).unwrap();
    let conf = root.join("kubelet.conf");
    let text: String = std::fs::read_to_string(&conf)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("client-key-data:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&conf, text).unwrap();
    let before = hash_tree(t.path());
    let (code, v, _) = check_kubelet(&root, &pki);
    assert_eq!(code, 4, "{v:#}");
    assert_eq!(v["kubelet"]["client"]["rotation"], "embedded", "{v:#}");
    let p = client_problems(&v);
    assert!(
        p.iter().any(|(c, m)| c == "key-unreadable"
            && m == &format!(
                "invalid kubeconfig {}: the current context's user has no client key",
                conf.display()
            )),
        "{p:?}"
    );
    assert_eq!(hash_tree(t.path()), before);
}

// ---- confinement of issue 15's RPC surfaces (in-process, the caller as an extension) ----

use common::rpc::{call_as as call, caller};
use kubecert::rpc::{Caller, Roots};
use serde_json::{json, Value};

/// A read-tier caller cannot steer root's `check` (served proof, kubelet section) at other
/// files or hosts, nor run `kubelet-conf-rebuild` for real; a write-tier caller cannot point
/// the rebuild at another kubelet PKI or kubeconfig dir, nor use a node name that is a
/// path. Each refusal: its code, the param named, nothing on disk changed, no byte of the
/// secret in the answer. (Without `confine`'s PathParams rows for these params, the calls
/// would run: the first would answer a result, the rebuild would write.)
#[test]
fn issue15_rpc_params_are_confined() {
    let (t, root) = demo(&[
        "--now",
        DEMO_NOW,
        "--kubelet",
        "--key-algorithm",
        "ecdsa-p256",
    ]);
    let mut roots = Roots::for_dirs(root.join("pki"), &root);
    roots.kubelet_pki = root.join("kubelet-pki");
    let evil = t.path().join("evil");
    std::fs::create_dir(&evil).unwrap();
    std::fs::write(evil.join("secret"), "SECRET-MARKER-77\n").unwrap();
    let before = hash_tree(t.path());
    let refused = |who: Caller, method: &str, params: Value, code: i64, param: Option<&str>| {
        let r = call(&roots, who, method, params.clone());
        assert_eq!(r["error"]["code"], code, "{method} {params}: {r}");
        if let Some(p) = param {
            assert_eq!(r["error"]["data"]["param"], p, "{method} {params}: {r}");
            let cause = r["error"]["data"]["cause"].as_str().unwrap();
            assert!(
                cause.starts_with(&format!("{p}: ")) && cause.contains("is not allowed"),
                "{cause}"
            );
        }
        assert!(!r.to_string().contains("SECRET-MARKER"), "{r}");
        assert_eq!(
            hash_tree(t.path()),
            before,
            "{method} {params} changed the tree"
        );
    };
    let reader = caller(false);
    let writer = caller(true);
    let secret = evil.join("secret");
    // check: served options and the kubelet section.
    for (params, param) in [
        (
            json!({"served": true, "kubelet_config": secret}),
            "kubelet_config",
        ),
        (
            json!({"served": true, "manifests_dir": evil}),
            "manifests_dir",
        ),
        (
            json!({"served": true, "endpoints": [{"endpoint": "kube-apiserver",
                "address": "169.254.169.254:80"}]}),
            "endpoints[].address",
        ),
        (
            json!({"served": true, "endpoints": [{"endpoint": "kubelet", "cert": secret}]}),
            "endpoints[].cert",
        ),
        (json!({"kubelet": true, "kubelet_pki": evil}), "kubelet_pki"),
    ] {
        refused(reader, "check", params, -31010, Some(param));
    }
    // served: the same options.
    refused(
        reader,
        "served",
        json!({"endpoints": [{"endpoint": "etcd-client", "address": "10.0.0.1:22"}]}),
        -31010,
        Some("endpoints[].address"),
    );
    // kubelet-conf-rebuild: a reader may not rebuild; a writer only the agent's dirs.
    refused(
        reader,
        "kubelet-conf-rebuild",
        json!({"node_name": "node-1", "now": "2027-02-01T00:00:00Z"}),
        -31004,
        None,
    );
    for (params, param) in [
        (
            json!({"node_name": "node-1", "kubelet_pki": evil}),
            "kubelet_pki",
        ),
        (
            json!({"node_name": "node-1", "kubeconfig_dir": evil}),
            "kubeconfig_dir",
        ),
        (
            json!({"node_name": "node-1", "cert_dir": evil, "dry_run": true}),
            "cert_dir",
        ),
    ] {
        refused(writer, "kubelet-conf-rebuild", params, -31010, Some(param));
    }
    let r = call(
        &roots,
        writer,
        "kubelet-conf-rebuild",
        json!({"node_name": "../../etc/cron.d/x", "now": "2027-02-01T00:00:00Z"}),
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(
        r["error"]["data"]["cause"],
        "invalid node name \"../../etc/cron.d/x\": it contains '/' (a Node name is a DNS-1123 \
         subdomain: lowercase letters, digits, '-' and '.')"
    );
    assert_eq!(hash_tree(t.path()), before);
}

/// review15: an agent started with its own `--backup-root` keeps the backups of every write
/// there (restore reads only from there). `kubelet-conf-rebuild` over the socket, as a
/// write-tier caller, must back up what it replaces under that root, not beside the PKI
/// dir. Before the fix: `backupDir` was `<cert-dir>/../kubecert-backup/...`.
#[test]
fn rebuild_backs_up_under_the_agents_backup_root() {
    let (t, root) = demo(&[
        "--now",
        DEMO_NOW,
        "--kubelet",
        "--key-algorithm",
        "ecdsa-p256",
    ]);
    let mut roots = Roots::for_dirs(root.join("pki"), &root);
    roots.kubelet_pki = root.join("kubelet-pki");
    roots.backup_root = t.path().join("agent-backups");
    let r = call(
        &roots,
        caller(true),
        "kubelet-conf-rebuild",
        json!({"node_name": "node-1", "now": "2027-02-01T00:00:00Z"}),
    );
    assert_eq!(r["result"]["action"], "rebuilt", "{r}");
    let b = r["result"]["backupDir"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"));
    assert!(
        Path::new(b).starts_with(&roots.backup_root),
        "backup {b} outside the agent's backup root {}",
        roots.backup_root.display()
    );
    assert!(Path::new(b).is_dir(), "{b}");
    assert!(!root.join("kubecert-backup").exists());
}
