//! `kubecert ca check|renew|export|install` (issue 16 items 1 and 2) on the real fixtures
//! (copied to a tempdir) and on demo PKIs, checked with openssl: the join hash against
//! `openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum`, every leaf against
//! the renewed CA with `openssl verify`, SKI and subject unchanged, NotAfter as asked; and
//! refusals that leave the tree unchanged.

mod common;
use common::*;
use std::path::{Path, PathBuf};

const CAS: [(&str, &str); 3] = [
    ("ca", "ca.crt"),
    ("front-proxy-ca", "front-proxy-ca.crt"),
    ("etcd-ca", "etcd/ca.crt"),
];

/// The join hash as openssl computes it.
fn openssl_join_hash(crt: &Path) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | sha256sum",
            crt.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", s.split_whitespace().next().unwrap())
}

fn x509_field(crt: &Path, args: &[&str]) -> String {
    let mut a = vec!["x509", "-in", crt.to_str().unwrap(), "-noout"];
    a.extend_from_slice(args);
    openssl(&a)
}

fn fixture_dirs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().to_str().unwrap().starts_with("pki-"))
        .collect();
    v.sort();
    v
}

fn ca_check(cert_dir: &Path, kc_dir: &Path) -> (i32, serde_json::Value) {
    let o = kubecert(&[
        "ca",
        "check",
        "-o",
        "json",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--kubeconfig-dir",
        kc_dir.to_str().unwrap(),
        "--now",
        "2026-12-01T00:00:00Z",
    ]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    (o.status.code().unwrap(), v)
}

#[test]
fn join_hash_and_chains_match_openssl_on_every_fixture() {
    let mut hashes = 0;
    for f in fixture_dirs() {
        let (_, v) = ca_check(&f, &f.join("kubeconfig"));
        for c in v["cas"].as_array().unwrap() {
            let path = PathBuf::from(c["path"].as_str().unwrap());
            if !path.exists() {
                assert_eq!(c["present"], false, "{}", f.display());
                assert!(c["problem"].as_str().unwrap().contains("does not exist"));
                continue;
            }
            assert_eq!(
                c["spkiSha256"].as_str().unwrap(),
                openssl_join_hash(&path),
                "{} {}",
                f.display(),
                c["name"]
            );
            hashes += 1;
            // Every certificate said to chain to it verifies against it with openssl.
            for l in c["chained"].as_array().unwrap() {
                let lp = l["path"].as_str().unwrap();
                if lp.ends_with(".crt") {
                    let (ok, out) = openssl_status(&[
                        "verify",
                        "-no_check_time",
                        "-CAfile",
                        path.to_str().unwrap(),
                        lp,
                    ]);
                    assert!(ok, "{lp} vs {}: {out}", path.display());
                }
            }
            // Its own file is an exact trust location.
            assert!(c["bundles"]
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["path"] == c["path"] && b["match"] == "exact"));
        }
    }
    assert!(hashes >= 16, "only {hashes} CAs seen");
}

#[test]
fn ca_check_names_leaves_and_kubeconfig_bundles() {
    let f = fixtures().join("pki-zetaoss-2024");
    let (code, v) = ca_check(&f, &f.join("kubeconfig"));
    assert_eq!(code, 0, "{v}");
    let ca = &v["cas"][0];
    assert_eq!(ca["name"], "ca");
    let chained: Vec<&str> = ca["chained"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in [
        "apiserver",
        "apiserver-kubelet-client",
        "admin.conf",
        "super-admin.conf",
    ] {
        assert!(chained.contains(&n), "{chained:?}");
    }
    assert!(!chained.contains(&"front-proxy-client"));
    let bundles: Vec<&str> = ca["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["path"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        bundles,
        [
            "ca.crt",
            "admin.conf",
            "controller-manager.conf",
            "kubelet.conf",
            "scheduler.conf",
            "super-admin.conf"
        ]
    );
    assert_eq!(ca["keyAlgorithm"], "RSA-2048");
    assert_eq!(ca["keyPresent"], true);
}

#[test]
fn ca_check_fails_on_a_missing_ca_or_an_unsigned_leaf() {
    let t = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("pki-zetaoss-2024"), t.path());
    let args = |p: &Path| {
        kubecert(&[
            "ca",
            "check",
            "--cert-dir",
            p.to_str().unwrap(),
            "--kubeconfig-dir",
            p.join("kubeconfig").to_str().unwrap(),
            "--now",
            "2026-12-01T00:00:00Z",
        ])
    };
    // A leaf of front-proxy-ca replaced by one the cluster CA signed.
    std::fs::copy(
        t.path().join("apiserver.crt"),
        t.path().join("front-proxy-client.crt"),
    )
    .unwrap();
    std::fs::copy(
        t.path().join("apiserver.key"),
        t.path().join("front-proxy-client.key"),
    )
    .unwrap();
    assert_fails(&args(t.path()), 4, "front-proxy-ca: front-proxy-client (");
    std::fs::remove_file(t.path().join("front-proxy-ca.crt")).unwrap();
    let out = assert_fails(&args(t.path()), 4, "front-proxy-ca: ");
    assert!(out.contains("front-proxy-ca.crt does not exist"), "{out}");
}

/// Runs `ca renew` on a copy of a fixture and checks every promise with openssl.
fn renew_fixture(name: &str) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("pki");
    copy_dir(&fixtures().join(name), &root);
    let kc = root.join("kubeconfig");
    let before = hash_tree(&root);
    let old: Vec<_> = CAS
        .iter()
        .filter(|(_, f)| root.join(f).exists() && root.join(f.replace(".crt", ".key")).exists())
        .map(|(n, f)| {
            let p = root.join(f);
            let orig = t.path().join(format!("orig-{n}.crt"));
            std::fs::copy(&p, &orig).unwrap();
            (n.to_string(), p, orig)
        })
        .collect();
    assert!(!old.is_empty());
    // Leaves that verify (signature) against each CA before.
    let leaves: Vec<PathBuf> = before
        .keys()
        .filter(|k| k.ends_with(".crt") && !k.contains("ca.crt"))
        .map(|k| root.join(k))
        .collect();
    let verifies = |ca: &Path, leaf: &Path| {
        openssl_status(&[
            "verify",
            "-no_check_time",
            "-CAfile",
            ca.to_str().unwrap(),
            leaf.to_str().unwrap(),
        ])
        .0
    };
    let mut names: Vec<&str> = vec!["ca", "renew"];
    names.extend(old.iter().map(|(n, _, _)| n.as_str()));
    let args: Vec<String> = names
        .iter()
        .map(|s| s.to_string())
        .chain(
            [
                "--cert-dir",
                root.to_str().unwrap(),
                "--kubeconfig-dir",
                kc.to_str().unwrap(),
                "--validity",
                // 20 years: longer than any fixture CA has left (a shorter one is refused).
                "175200h",
                "--now",
                "2026-12-01T00:00:00Z",
                "--backup-dir",
                t.path().join("bk").to_str().unwrap(),
                "-o",
                "json",
            ]
            .iter()
            .map(|s| s.to_string()),
        )
        .collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let v: serde_json::Value = serde_json::from_str(&ok(&a)).unwrap();
    assert_eq!(v["changed"], true);
    for (n, p, orig) in &old {
        assert_eq!(openssl_join_hash(p), openssl_join_hash(orig), "{name} {n}");
        assert_eq!(
            x509_field(p, &["-ext", "subjectKeyIdentifier,authorityKeyIdentifier,basicConstraints,keyUsage,subjectAltName", "-subject"]),
            x509_field(orig, &["-ext", "subjectKeyIdentifier,authorityKeyIdentifier,basicConstraints,keyUsage,subjectAltName", "-subject"]),
            "{name} {n}"
        );
        assert_eq!(
            x509_field(p, &["-enddate"]).trim(),
            "notAfter=Nov 26 00:00:00 2046 GMT",
            "{name} {n}"
        );
        assert_ne!(x509_field(p, &["-serial"]), x509_field(orig, &["-serial"]));
        // Key and cert still match.
        let key = p.with_extension("key");
        assert_eq!(
            openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]),
            openssl(&["x509", "-in", p.to_str().unwrap(), "-noout", "-pubkey"])
        );
        let mut n_leaves = 0;
        for l in &leaves {
            if verifies(orig, l) {
                assert!(verifies(p, l), "{name}: {} vs renewed {n}", l.display());
                n_leaves += 1;
            }
        }
        if *n == "ca" {
            assert!(n_leaves >= 1, "{name}: no leaf of ca");
        }
    }
    // Kubeconfigs: CA data is the renewed ca.crt (those that embedded the old one).
    let ca_pem = std::fs::read_to_string(root.join("ca.crt")).unwrap();
    let orig_ca = std::fs::read_to_string(t.path().join("orig-ca.crt")).unwrap_or_default();
    for f in [
        "admin.conf",
        "super-admin.conf",
        "controller-manager.conf",
        "scheduler.conf",
        "kubelet.conf",
    ] {
        let p = kc.join(f);
        if !p.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let b64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("certificate-authority-data:"))
            .map(str::trim);
        if let Some(b64) = b64 {
            use base64::Engine;
            let pem = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            let pem = String::from_utf8(pem).unwrap();
            assert_ne!(pem.trim(), orig_ca.trim(), "{name} {f}: still the old CA");
            assert_eq!(pem.trim(), ca_pem.trim(), "{name} {f}");
        }
    }
    // Only the CA files and the kubeconfigs changed.
    let after = hash_tree(&root);
    for (k, h) in &before {
        if after.get(k) != Some(h) {
            assert!(
                k.ends_with("ca.crt") || k.ends_with(".conf"),
                "{name}: {k} changed"
            );
        }
    }
    // And check still finds nothing wrong with the chain.
    let (_, v) = ca_check(&root, &kc);
    for c in v["cas"].as_array().unwrap() {
        assert!(
            c["notChained"].as_array().unwrap().is_empty(),
            "{name}: {c}"
        );
    }
}

#[test]
fn same_key_renewal_on_the_real_fixtures() {
    for f in [
        "pki-devopsyuva-2018",
        "pki-ebenneil-2023",
        "pki-maxxmoney-2019",
        "pki-nielslemmens-2017",
        "pki-zetaoss-2024",
    ] {
        renew_fixture(f);
    }
}

fn pki_args(root: &Path) -> Vec<String> {
    vec![
        "--cert-dir".into(),
        root.join("pki").display().to_string(),
        "--kubeconfig-dir".into(),
        root.display().to_string(),
    ]
}

fn run(args: &[&str], root: &Path) -> std::process::Output {
    let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    a.extend(pki_args(root));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    kubecert(&a)
}

#[test]
fn demo_pki_renew_export_install_across_two_nodes() {
    for alg in ["rsa-2048", "ecdsa-p256"] {
        let (_t, dir) = demo(&["--nodes", "2", "--key-algorithm", alg]);
        let (a, b) = (dir.join("node-1"), dir.join("node-2"));
        let before_hash = openssl_join_hash(&a.join("pki/ca.crt"));
        let o = run(&["ca", "renew", "ca", "front-proxy-ca", "etcd-ca"], &a);
        assert!(o.status.success(), "{}", text(&o));
        for (_, f) in CAS {
            let ca = a.join("pki").join(f);
            // Every leaf of node 1 and node 2 (same CAs) verifies, with time checks.
            for node in [&a, &b] {
                for l in [
                    "apiserver.crt",
                    "apiserver-kubelet-client.crt",
                    "front-proxy-client.crt",
                    "etcd/peer.crt",
                    "etcd/server.crt",
                ] {
                    let leaf = node.join("pki").join(l);
                    let (okv, out) = openssl_status(&[
                        "verify",
                        "-CAfile",
                        ca.to_str().unwrap(),
                        leaf.to_str().unwrap(),
                    ]);
                    let issuer_matches = (f == "ca.crt") == (l.starts_with("apiserver"))
                        && (f == "etcd/ca.crt") == l.starts_with("etcd/");
                    if issuer_matches {
                        assert!(okv, "{alg} {f} {l}: {out}");
                    }
                }
            }
        }
        assert_eq!(openssl_join_hash(&a.join("pki/ca.crt")), before_hash);
        // Export from node 1, install on node 2: the same bytes.
        let out = dir.join("ca.pem");
        let o = run(&["ca", "export", "ca", "--out", out.to_str().unwrap()], &a);
        assert!(o.status.success(), "{}", text(&o));
        let exported = std::fs::read_to_string(&out).unwrap();
        assert!(!exported.contains("PRIVATE KEY"));
        let o = run(&["ca", "install", "ca", out.to_str().unwrap()], &b);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(
            std::fs::read(a.join("pki/ca.crt")).unwrap(),
            std::fs::read(b.join("pki/ca.crt")).unwrap()
        );
        let (code, v) = ca_check(&b.join("pki"), &b);
        assert_eq!(code, 0, "{v}");
        assert!(
            v["cas"][0]["bundles"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["match"] == "exact"),
            "{v}"
        );
    }
}

#[test]
fn refusals_leave_the_tree_unchanged() {
    let (_t, dir) = demo(&["--nodes", "2"]);
    let (a, b) = (dir.join("node-1"), dir.join("node-2"));
    let inputs = tempfile::tempdir().unwrap();
    let before = hash_tree(&dir);
    // Unknown CA.
    assert_fails(&run(&["ca", "renew", "sa"], &a), 1, "unknown CA \"sa\"");
    // A CA certificate of another key: the node's front-proxy-ca offered as ca.
    let fp = a.join("pki/front-proxy-ca.crt");
    assert_fails(
        &run(&["ca", "install", "ca", fp.to_str().unwrap()], &b),
        1,
        "is not the key of this node's ca",
    );
    // A private key is never accepted.
    let mixed = inputs.path().join("mixed.pem");
    let mut m = std::fs::read(a.join("pki/ca.crt")).unwrap();
    m.extend(std::fs::read(a.join("pki/ca.key")).unwrap());
    std::fs::write(&mixed, m).unwrap();
    assert_fails(
        &run(&["ca", "install", "ca", mixed.to_str().unwrap()], &b),
        1,
        "holds a private key",
    );
    // Not a certificate.
    let junk = inputs.path().join("junk.pem");
    std::fs::write(&junk, "hello\n").unwrap();
    assert_fails(
        &run(&["ca", "install", "ca", junk.to_str().unwrap()], &b),
        1,
        "not a PEM certificate",
    );
    // A leaf, not a CA.
    let leaf = a.join("pki/apiserver.crt");
    assert_fails(
        &run(&["ca", "install", "ca", leaf.to_str().unwrap()], &b),
        1,
        "not a CA",
    );
    // Not valid yet at the given clock.
    let ca = a.join("pki/ca.crt");
    assert_fails(
        &run(
            &[
                "ca",
                "install",
                "ca",
                ca.to_str().unwrap(),
                "--now",
                "2001-01-01T00:00:00Z",
            ],
            &b,
        ),
        1,
        "not valid now",
    );
    assert_eq!(live(&hash_tree(&dir)), live(&before));
    // CA key absent (external CA): nothing written.
    std::fs::remove_file(b.join("pki/ca.key")).unwrap();
    let before = hash_tree(&dir);
    assert_fails(&run(&["ca", "renew", "ca"], &b), 1, "ca.key");
    // Key of another CA in ca.key.
    std::fs::copy(a.join("pki/front-proxy-ca.key"), b.join("pki/ca.key")).unwrap();
    let before2 = hash_tree(&dir);
    assert_fails(&run(&["ca", "renew", "ca"], &b), 1, "does not match");
    assert_eq!(live(&hash_tree(&dir)), live(&before2));
    drop(before);
}

/// The tree without lock files and backups.
fn live(
    t: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    t.iter()
        .filter(|(k, _)| {
            !k.contains("kubecert-backup") && !k.ends_with(".kubecert.pid") && !k.ends_with(".lock")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn dry_run_writes_nothing_and_external_ca_fixture_is_refused() {
    let t = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("pki-zetaoss-2024"), t.path());
    let before = hash_tree(t.path());
    let kc = t.path().join("kubeconfig");
    let s = ok(&[
        "ca",
        "renew",
        "ca",
        "--dry-run",
        "--cert-dir",
        t.path().to_str().unwrap(),
        "--kubeconfig-dir",
        kc.to_str().unwrap(),
    ]);
    assert!(s.contains("ca would renew"), "{s}");
    assert_eq!(live(&hash_tree(t.path())), live(&before));
    let t2 = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("pki-minahilnisar-2025"), t2.path());
    let before = hash_tree(t2.path());
    let o = kubecert(&[
        "ca",
        "renew",
        "ca",
        "--cert-dir",
        t2.path().to_str().unwrap(),
        "--kubeconfig-dir",
        t2.path().join("kubeconfig").to_str().unwrap(),
    ]);
    assert_fails(&o, 1, "ca.key");
    assert_eq!(live(&hash_tree(t2.path())), live(&before));
}

#[test]
fn check_ca_section_and_metrics_only_when_asked() {
    let f = fixtures().join("pki-zetaoss-2024");
    let kc = f.join("kubeconfig");
    let base = [
        "--cert-dir",
        f.to_str().unwrap(),
        "--kubeconfig-dir",
        kc.to_str().unwrap(),
        "--now",
        "2026-12-01T00:00:00Z",
    ];
    let mut a = vec!["check", "-o", "json"];
    a.extend(base);
    // (exit 4: the fixture's leaves have expired by then; the JSON is what is compared)
    let v: serde_json::Value = serde_json::from_slice(&kubecert(&a).stdout).unwrap();
    assert!(v.get("ca").is_none(), "{v}");
    a.push("--ca");
    let v: serde_json::Value = serde_json::from_slice(&kubecert(&a).stdout).unwrap();
    let hash = openssl_join_hash(&f.join("ca.crt"));
    assert_eq!(v["ca"]["cas"][0]["spkiSha256"], hash.as_str());
    let mut m = vec!["metrics"];
    m.extend(base);
    assert!(!ok(&m).contains("kubecert_ca_"));
    m.push("--ca");
    let text = ok(&m);
    assert!(
        text.contains(&format!(
            "kubecert_ca_not_after_seconds{{ca=\"ca\",spki_sha256=\"{hash}\"}} 2022393273"
        )),
        "{text}"
    );
    assert!(text.contains("kubecert_ca_unsigned_certificates{ca=\"ca\"} 0"));
    assert!(text.contains("kubecert_ca_trust_bundles{ca=\"ca\",match=\"exact\"} 6"));
}

/// `kubecert serve --stdio` with the node's dirs; one JSON-RPC line per call; returns the
/// responses and stderr (the audit lines).
fn agent(root: &Path, calls: &[serde_json::Value]) -> (Vec<serde_json::Value>, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(bin())
        .args(["serve", "--stdio"])
        .args(pki_args(root))
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = calls.iter().map(|c| format!("{c}\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8(o.stdout).unwrap();
    (
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn rpc_ca_renew_export_install_are_typed_and_audited() {
    use serde_json::json;
    let (_t, dir) = demo(&["--nodes", "2"]);
    let (a, b) = (dir.join("node-1"), dir.join("node-2"));
    let (r, err) = agent(
        &a,
        &[
            json!({"jsonrpc":"2.0","id":1,"method":"ca-renew","params":{"cas":["ca"],"validity":"175200h"}}),
            json!({"jsonrpc":"2.0","id":2,"method":"ca-export","params":{"ca":"ca"}}),
            json!({"jsonrpc":"2.0","id":3,"method":"ca-check","params":{}}),
        ],
    );
    assert_eq!(
        r[0]["result"]["certificates"][0]["action"], "renewed",
        "{r:?}"
    );
    assert!(err.contains("method=ca-renew outcome=ok"), "{err}");
    let pem = r[1]["result"]["pem"].as_str().unwrap().to_string();
    assert_eq!(pem, std::fs::read_to_string(a.join("pki/ca.crt")).unwrap());
    assert_eq!(
        r[2]["result"]["cas"][0]["spkiSha256"],
        openssl_join_hash(&a.join("pki/ca.crt")).as_str()
    );
    let before = hash_tree(&b);
    let wrong = std::fs::read_to_string(a.join("pki/front-proxy-ca.crt")).unwrap();
    let (r, err) = agent(
        &b,
        &[
            json!({"jsonrpc":"2.0","id":1,"method":"ca-install","params":{"ca":"ca","pem":wrong}}),
            json!({"jsonrpc":"2.0","id":2,"method":"ca-install","params":{"ca":"ca","pem":"x"}}),
        ],
    );
    for x in &r {
        assert_eq!(x["error"]["code"], -31003, "{x}");
    }
    assert!(r[0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("validation failed"));
    assert!(
        err.contains("method=ca-install outcome=failed code=-31003"),
        "{err}"
    );
    assert_eq!(live(&hash_tree(&b)), live(&before));
    let (r, err) = agent(
        &b,
        &[json!({"jsonrpc":"2.0","id":1,"method":"ca-install","params":{"ca":"ca","pem":pem}})],
    );
    assert_eq!(
        r[0]["result"]["certificates"][0]["action"], "installed",
        "{r:?}"
    );
    assert!(err.contains("method=ca-install outcome=ok"), "{err}");
    assert_eq!(
        std::fs::read(b.join("pki/ca.crt")).unwrap(),
        std::fs::read(a.join("pki/ca.crt")).unwrap()
    );
}

#[test]
fn ca_check_on_external_ca_and_external_etcd_layouts() {
    // No *.key files: every CA is externally managed.
    let f = fixtures().join("pki-minahilnisar-2025");
    let (_, v) = ca_check(&f, &f.join("kubeconfig"));
    let cas = v["cas"].as_array().unwrap();
    assert_eq!(cas.len(), 3, "{v}");
    assert!(cas.iter().all(|c| c["keyPresent"] == false), "{v}");
    let o = kubecert(&[
        "ca",
        "check",
        "--cert-dir",
        f.to_str().unwrap(),
        "--kubeconfig-dir",
        f.join("kubeconfig").to_str().unwrap(),
        "--now",
        "2026-12-01T00:00:00Z",
    ]);
    assert!(
        text(&o).contains("(key absent: externally managed)"),
        "{}",
        text(&o)
    );
    // No etcd/: external etcd, no etcd-ca row; `ca renew etcd-ca` is refused.
    let f = fixtures().join("pki-nielslemmens-2017");
    let (_, v) = ca_check(&f, &f.join("kubeconfig"));
    let names: Vec<&str> = v["cas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ca", "front-proxy-ca"]);
    let o = kubecert(&[
        "ca",
        "renew",
        "etcd-ca",
        "--dry-run",
        "--cert-dir",
        f.to_str().unwrap(),
        "--kubeconfig-dir",
        f.join("kubeconfig").to_str().unwrap(),
    ]);
    assert_fails(&o, 1, "etcd-ca is not part of this layout (external etcd)");
}
