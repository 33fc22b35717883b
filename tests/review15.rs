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
