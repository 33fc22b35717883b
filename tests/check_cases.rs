//! `check` edge cases on generated PKIs, exit codes, kubelet.conf diagnosis and repair, and
//! multi-node demo PKIs.

mod common;
use common::*;
use serde_json::Value;

fn check_json(root: &std::path::Path, extra: &[&str]) -> (i32, Value) {
    let pki = root.join("pki");
    let mut a = vec![
        "check",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "-o",
        "json",
    ];
    a.extend_from_slice(extra);
    let o = kubecert(&a);
    (
        o.status.code().unwrap_or(-1),
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null),
    )
}

fn row<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v["certificateAuthorities"].as_array().unwrap().iter())
        .find(|c| c["name"] == name)
        .unwrap()
}

fn codes(r: &Value) -> Vec<String> {
    r["detail"]["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p["code"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn missing_crt_is_a_missing_row_and_exit_zero() {
    let (_t, root) = demo(&[]);
    std::fs::remove_file(root.join("pki/apiserver.crt")).unwrap();
    std::fs::remove_file(root.join("super-admin.conf")).unwrap();
    let (code, v) = check_json(&root, &[]);
    assert_eq!(code, 0);
    for n in ["apiserver", "super-admin.conf"] {
        let r = row(&v, n);
        assert_eq!(r["missing"], true);
        assert_eq!(r["expirationDate"], Value::Null);
        assert_eq!(r["residualTime"], 0);
    }
    let text = ok(&[
        "check",
        "--cert-dir",
        root.join("pki").to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ]);
    assert!(text.contains("\n!MISSING! apiserver   "), "{text}");
}

#[test]
fn ca_key_removed_makes_its_rows_externally_managed() {
    let (_t, root) = demo(&[]);
    for (ca, leaves) in [
        ("front-proxy-ca", vec!["front-proxy-client"]),
        (
            "etcd/ca",
            vec![
                "etcd-server",
                "etcd-peer",
                "apiserver-etcd-client",
                "etcd-healthcheck-client",
            ],
        ),
    ] {
        std::fs::remove_file(root.join(format!("pki/{ca}.key"))).unwrap();
        let (_, v) = check_json(&root, &[]);
        let ca_name = if ca == "etcd/ca" { "etcd-ca" } else { ca };
        assert_eq!(row(&v, ca_name)["externallyManaged"], true);
        for l in leaves {
            assert_eq!(row(&v, l)["externallyManaged"], true, "{l}");
        }
        assert_eq!(row(&v, "apiserver")["externallyManaged"], false);
    }
}

#[test]
fn key_mismatch_and_wrong_ca_are_row_problems() {
    let (_t, root) = demo(&[]);
    let pki = root.join("pki");
    // apiserver.key from another cert.
    std::fs::copy(
        pki.join("front-proxy-client.key"),
        pki.join("apiserver.key"),
    )
    .unwrap();
    // front-proxy-client signed by the wrong CA: take the etcd healthcheck cert+key.
    std::fs::copy(
        pki.join("etcd/healthcheck-client.crt"),
        pki.join("front-proxy-client.crt"),
    )
    .unwrap();
    std::fs::copy(
        pki.join("etcd/healthcheck-client.key"),
        pki.join("front-proxy-client.key"),
    )
    .unwrap();
    // garbage key
    std::fs::write(pki.join("apiserver-kubelet-client.key"), b"not a key").unwrap();
    let (code, v) = check_json(&root, &[]);
    assert_eq!(
        code, 0,
        "no thresholds: problems are reported, exit 0 like kubeadm"
    );
    assert_eq!(codes(row(&v, "apiserver")), ["key-mismatch"]);
    let fp = row(&v, "front-proxy-client");
    assert_eq!(codes(fp), ["not-signed-by-ca"]);
    assert!(fp["detail"]["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("signed by etcd-ca"));
    assert_eq!(
        codes(row(&v, "apiserver-kubelet-client")),
        ["key-unreadable"]
    );
    let (code, v) = check_json(&root, &["--fail-within", "1d"]);
    assert_eq!(code, 4, "unusable certs fail a gated check");
    assert_eq!(v["status"]["level"], "fail");
    // Private key material never appears in the output.
    let out = String::from_utf8_lossy(
        &kubecert(&[
            "check",
            "--cert-dir",
            pki.to_str().unwrap(),
            "--kubeconfig-dir",
            root.to_str().unwrap(),
            "-o",
            "yaml",
        ])
        .stdout,
    )
    .into_owned();
    assert!(!out.contains("-----BEGIN"));
}

#[test]
fn exit_codes_for_ci() {
    let (_t, root) = demo(&["--expires-in", "20d"]);
    assert_eq!(check_json(&root, &[]).0, 0);
    assert_eq!(check_json(&root, &["--warn-within", "10d"]).0, 0);
    assert_eq!(check_json(&root, &["--warn-within", "30d"]).0, 3);
    assert_eq!(
        check_json(&root, &["--warn-within", "60d", "--fail-within", "30d"]).0,
        4
    );
    let (_, v) = check_json(&root, &["--warn-within", "30d"]);
    assert_eq!(v["status"]["level"], "warn");
    assert_eq!(v["status"]["soonest"], "admin.conf");
    // A fixed clock after expiry: residual negative, `<invalid>` in the table.
    let text = String::from_utf8_lossy(
        &kubecert(&[
            "check",
            "--cert-dir",
            root.join("pki").to_str().unwrap(),
            "--kubeconfig-dir",
            root.to_str().unwrap(),
            "--now",
            "2040-01-01T00:00:00Z",
        ])
        .stdout,
    )
    .into_owned();
    assert!(text.contains("<invalid>"), "{text}");
    let o = kubecert(&[
        "check",
        "--now",
        "yesterday",
        "--cert-dir",
        root.join("pki").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("RFC 3339"));
}

#[test]
fn kubelet_conf_modes_on_real_fixtures() {
    for (f, mode) in [
        ("pki-maxxmoney-2019", "embedded"),
        ("pki-ebenneil-2023", "file-reference"),
        ("pki-devopsyuva-2018", "embedded"),
        ("pki-zetaoss-2024", "file-reference"),
    ] {
        let d = fixtures().join(f);
        let out = ok(&[
            "check",
            "--cert-dir",
            d.to_str().unwrap(),
            "--kubeconfig-dir",
            d.join("kubeconfig").to_str().unwrap(),
            "-o",
            "json",
            "--kubelet-pki",
            "/nonexistent",
        ]);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["kubeletConf"]["mode"], mode, "{f}");
        assert_eq!(v["kubeletConf"]["clientCurrentPemExists"], false);
        // kubelet.conf is never a row.
        assert!(v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "kubelet.conf"));
    }
}

#[test]
fn kubelet_conf_repair_points_at_current_pem() {
    let (t, root) = demo(&[]);
    let kpki = t.path().join("kubelet-pki");
    std::fs::create_dir_all(&kpki).unwrap();
    let kc = root.join("kubelet.conf");
    // Refused: no kubelet-client-current.pem.
    let o = kubecert(&[
        "kubelet-conf",
        "repair",
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--cert-dir",
        root.join("pki").to_str().unwrap(),
        "--kubelet-pki",
        kpki.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(!o.status.success());
    // A pem for another identity is refused, kubelet.conf unchanged.
    let before = std::fs::read(&kc).unwrap();
    let tmp = t.path();
    kubeconfig_cert(&root.join("admin.conf"), &tmp.join("a.crt"));
    kubeconfig_key(&root.join("admin.conf"), &tmp.join("a.key"));
    let pem = kpki.join("kubelet-client-current.pem");
    std::fs::write(
        &pem,
        [
            std::fs::read(tmp.join("a.crt")).unwrap(),
            std::fs::read(tmp.join("a.key")).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let o = kubecert(&[
        "kubelet-conf",
        "repair",
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--cert-dir",
        root.join("pki").to_str().unwrap(),
        "--kubelet-pki",
        kpki.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("not the same identity"));
    assert_eq!(before, std::fs::read(&kc).unwrap());
    // The kubelet's own identity: repaired, backed up, now a file reference.
    kubeconfig_cert(&kc, &tmp.join("k.crt"));
    kubeconfig_key(&kc, &tmp.join("k.key"));
    std::fs::write(
        &pem,
        [
            std::fs::read(tmp.join("k.crt")).unwrap(),
            std::fs::read(tmp.join("k.key")).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let dry = ok(&[
        "kubelet-conf",
        "repair",
        "--dry-run",
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--cert-dir",
        root.join("pki").to_str().unwrap(),
        "--kubelet-pki",
        kpki.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(dry.contains("would-repair"));
    assert_eq!(before, std::fs::read(&kc).unwrap());
    let out = ok(&[
        "kubelet-conf",
        "repair",
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--cert-dir",
        root.join("pki").to_str().unwrap(),
        "--kubelet-pki",
        kpki.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["action"], "repaired");
    assert_eq!(v["mode"], "file-reference");
    let text = std::fs::read_to_string(&kc).unwrap();
    assert!(text.contains(&format!("client-certificate: {}", pem.display())));
    assert!(text.contains(&format!("client-key: {}", pem.display())));
    assert!(!text.contains("client-certificate-data"));
    assert!(std::path::Path::new(v["backupDir"].as_str().unwrap()).is_dir());
}

#[test]
fn demo_with_three_nodes_shares_cas_and_has_per_node_leaves() {
    let (_t, root) = demo(&["--nodes", "3"]);
    let ca1 = std::fs::read(root.join("node-1/pki/ca.crt")).unwrap();
    for k in 1..=3 {
        let pki = root.join(format!("node-{k}/pki"));
        assert_eq!(ca1, std::fs::read(pki.join("ca.crt")).unwrap());
        let (okk, out) = openssl(&[
            "x509",
            "-in",
            pki.join("etcd/server.crt").to_str().unwrap(),
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
        ]);
        assert!(okk);
        assert!(out.contains(&format!("CN = node-{k}")), "{out}");
        assert!(out.contains(&format!("IP Address:127.0.1.{k}")), "{out}");
        let (okk, out) = openssl(&[
            "verify",
            "-CAfile",
            pki.join("etcd/ca.crt").to_str().unwrap(),
            pki.join("etcd/peer.crt").to_str().unwrap(),
        ]);
        assert!(okk, "{out}");
    }
    assert_ne!(
        std::fs::read(root.join("node-1/pki/apiserver.crt")).unwrap(),
        std::fs::read(root.join("node-2/pki/apiserver.crt")).unwrap()
    );
}

#[test]
fn ecdsa_ca_fixture_reads() {
    let d = fixtures().join("pki-edgecenter-ecdsa-2025");
    let out = ok(&[
        "check",
        "--cert-dir",
        d.to_str().unwrap(),
        "--kubeconfig-dir",
        d.join("kubeconfig").to_str().unwrap(),
        "-o",
        "json",
        "--now",
        "2025-06-20T00:00:00Z",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let ca = row(&v, "ca");
    assert_eq!(ca["detail"]["keyAlgorithm"], "ECDSA-P256");
    assert_eq!(ca["externallyManaged"], true);
}
