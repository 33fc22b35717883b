//! Issue 17 items 1–3: `check --drift --config FILE` against kubeadm's configuration (v1beta3
//! and v1beta4 fixtures from the reference docs, tests/fixtures/config/SOURCE.md), the clear
//! errors of a wrong apiVersion or an unknown field, and drift on demo PKIs checked with
//! openssl.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const NOW: &str = "2026-06-01T00:00:00Z";
const MADE: &str = "2026-01-01T00:00:00Z";

fn config_fixture(name: &str) -> PathBuf {
    fixtures().join("config").join(name)
}

/// A demo PKI made at MADE (node-1 at 127.0.1.1, like `kubeadm init` with defaults).
fn demo_pki(extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let mut a = vec!["--now", MADE];
    a.extend_from_slice(extra);
    demo(&a)
}

/// The kubeadm config of the demo's node-1, with `cluster_extra` appended to its
/// ClusterConfiguration.
fn node1_config(dir: &Path, version: &str, cluster_extra: &str) -> PathBuf {
    let p = dir.join("kubeadm.yaml");
    std::fs::write(
        &p,
        format!(
            "apiVersion: kubeadm.k8s.io/{version}\nkind: InitConfiguration\nnodeRegistration:\n  name: node-1\nlocalAPIEndpoint:\n  advertiseAddress: 127.0.1.1\n---\napiVersion: kubeadm.k8s.io/{version}\nkind: ClusterConfiguration\n{cluster_extra}"
        ),
    )
    .unwrap();
    p
}

fn drift(root: &Path, config: &Path, more: &[&str]) -> std::process::Output {
    let pki = root.join("pki");
    let mut a = vec![
        "check",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--now",
        NOW,
        "--drift",
        "--config",
        config.to_str().unwrap(),
    ];
    a.extend_from_slice(more);
    kubecert(&a)
}

fn drift_json(root: &Path, config: &Path) -> (i32, Value) {
    let o = drift(root, config, &["-o", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&o)));
    (o.status.code().unwrap_or(-1), v)
}

fn drift_row<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["drift"]["certificates"]
        .as_array()
        .unwrap_or_else(|| panic!("no drift.certificates in {v}"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no drift row {name} in {v}"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn reference_fixtures_parse_v1beta3_and_v1beta4() {
    for (file, version, alg) in [
        ("v1beta3-init.yaml", "kubeadm.k8s.io/v1beta3", "RSA-2048"),
        ("v1beta4-init.yaml", "kubeadm.k8s.io/v1beta4", "ECDSA-P256"),
    ] {
        let out = ok(&[
            "config",
            "expected",
            "--config",
            config_fixture(file).to_str().unwrap(),
            "-o",
            "json",
        ]);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["apiVersion"], version, "{file}: {v}");
        assert_eq!(v["nodeName"], "ec2-10-100-0-1", "{file}");
        assert_eq!(v["advertiseAddress"], "10.100.0.1", "{file}");
        assert_eq!(v["encryptionAlgorithm"], alg, "{file}");
        let api = v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "apiserver")
            .unwrap();
        // kubeadm's GetAPIServerAltNames for this config: serviceSubnet 10.96.0.0/16 → 10.96.0.1,
        // controlPlaneEndpoint 10.100.0.1:6443 → its host, the two certSANs.
        assert_eq!(
            strs(&api["sans"]),
            [
                "DNS:ec2-10-100-0-1",
                "DNS:ec2-10-100-0-1.compute-1.amazonaws.com",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
                "IP:10.100.0.1",
                "IP:10.100.1.1",
                "IP:10.96.0.1",
            ],
            "{file}"
        );
        let peer = v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "etcd-peer")
            .unwrap();
        assert_eq!(
            strs(&peer["sans"]),
            [
                "DNS:ec2-10-100-0-1",
                "DNS:localhost",
                "IP:10.100.0.1",
                "IP:127.0.0.1",
                "IP:::1"
            ],
            "{file}"
        );
    }
    // The join fixture: the node facts come from JoinConfiguration.controlPlane.
    let out = ok(&[
        "config",
        "expected",
        "--config",
        config_fixture("v1beta4-join.yaml").to_str().unwrap(),
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["nodeName"], "ec2-10-100-0-2");
    assert_eq!(v["advertiseAddress"], "10.100.0.2");
}

#[test]
fn wrong_api_version_is_a_clear_error_naming_the_document() {
    let t = tempfile::tempdir().unwrap();
    let bad = t.path().join("bad.yaml");
    let text = std::fs::read_to_string(config_fixture("v1beta4-init.yaml"))
        .unwrap()
        .replacen(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration",
            "apiVersion: kubeadm.k8s.io/v1beta2\nkind: ClusterConfiguration",
            1,
        );
    std::fs::write(&bad, text).unwrap();
    let o = kubecert(&["config", "expected", "--config", bad.to_str().unwrap()]);
    let msg = assert_fails(&o, 1, "document 2 (ClusterConfiguration)");
    assert!(
        msg.contains("apiVersion kubeadm.k8s.io/v1beta2 is not supported")
            && msg.contains("kubeadm.k8s.io/v1beta3, kubeadm.k8s.io/v1beta4"),
        "{msg}"
    );
}

#[test]
fn unknown_field_is_a_clear_error_naming_the_field_and_changes_nothing() {
    let (_t, root) = demo_pki(&[]);
    let before = hash_tree(&root);
    // `certSans` (a common misspelling of certSANs): kubeadm's strict decoding refuses it.
    let cfg = node1_config(
        root.parent().unwrap(),
        "v1beta4",
        "apiServer:\n  certSans:\n    - kubecert.example.com\n",
    );
    let o = drift(&root, &cfg, &["-o", "json"]);
    let msg = assert_fails(&o, 1, "unknown field apiServer.certSans");
    assert!(
        msg.contains("document 2 (ClusterConfiguration, kubeadm.k8s.io/v1beta4)"),
        "{msg}"
    );
    assert_eq!(hash_tree(&root), before);
    // A v1beta4-only field in a v1beta3 document is unknown there too.
    let cfg = node1_config(
        root.parent().unwrap(),
        "v1beta3",
        "encryptionAlgorithm: ECDSA-P256\n",
    );
    let o = drift(&root, &cfg, &[]);
    assert_fails(&o, 1, "unknown field encryptionAlgorithm");
    // A value outside kubeadm's list.
    let cfg = node1_config(
        root.parent().unwrap(),
        "v1beta4",
        "encryptionAlgorithm: DSA-1024\n",
    );
    let o = drift(&root, &cfg, &[]);
    assert_fails(&o, 1, "encryptionAlgorithm");
    // --drift without --config.
    let pki = root.join("pki");
    let o = kubecert(&[
        "check",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--drift",
    ]);
    assert_fails(&o, 1, "--drift needs --config");
}

#[test]
fn apiserver_missing_a_cert_san_is_named_by_check_drift() {
    let (_t, root) = demo_pki(&[]);
    let before = hash_tree(&root);
    let cfg = node1_config(
        root.parent().unwrap(),
        "v1beta4",
        "apiServer:\n  certSANs:\n    - kubecert.example.com\n    - 10.0.0.10\n",
    );
    let (code, v) = drift_json(&root, &cfg);
    // Drift is a warning about the next renewal, not an expiry: exit 3, level warn.
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["status"]["level"], "warn");
    assert_eq!(strs(&v["drift"]["drifted"]), ["apiserver"]);
    let api = drift_row(&v, "apiserver");
    assert_eq!(api["status"], "drift");
    assert_eq!(
        strs(&api["missingSans"]),
        ["DNS:kubecert.example.com", "IP:10.0.0.10"]
    );
    assert_eq!(strs(&api["extraSans"]), Vec::<String>::new());
    for n in [
        "etcd-server",
        "etcd-peer",
        "front-proxy-client",
        "admin.conf",
        "ca",
    ] {
        assert_eq!(drift_row(&v, n)["status"], "match", "{n}: {v}");
    }
    // The text names it under the table.
    let o = drift(&root, &cfg, &[]);
    assert_eq!(o.status.code(), Some(3));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("apiserver")
            && out.contains("SANs missing: DNS:kubecert.example.com, IP:10.0.0.10"),
        "{out}"
    );
    // openssl agrees the SAN is absent from the certificate.
    let sans = openssl(&[
        "x509",
        "-in",
        root.join("pki/apiserver.crt").to_str().unwrap(),
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(sans.contains("DNS:kubernetes.default.svc"), "{sans}");
    assert!(!sans.contains("kubecert.example.com"), "{sans}");
    assert!(!sans.contains("10.0.0.10"), "{sans}");
    // Read only.
    assert_eq!(hash_tree(&root), before);
}

#[test]
fn a_pki_built_to_match_the_config_has_no_drift() {
    let (_t, root) = demo_pki(&[]);
    let cfg = node1_config(root.parent().unwrap(), "v1beta4", "");
    let (code, v) = drift_json(&root, &cfg);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["status"]["level"], "ok");
    assert_eq!(strs(&v["drift"]["drifted"]), Vec::<String>::new());
    let rows = v["drift"]["certificates"].as_array().unwrap();
    assert_eq!(rows.len(), 14, "{v}");
    for r in rows {
        assert_eq!(r["status"], "match", "{r}");
        assert_eq!(r["keyAlgorithm"]["actual"], "RSA-2048", "{r}");
        // Issued together with its CA (same NotBefore, as at kubeadm init): the span is the
        // configured validity plus the 5-minute backdate, a match, not "undetermined".
        assert_eq!(r["validity"]["status"], "match", "{r}");
    }
    // Without --drift the key is absent (the baseline JSON is unchanged).
    let (_, plain) = check(&root).args(&["--now", NOW]).json();
    assert!(plain.get("drift").is_none(), "{plain}");
}

#[test]
fn extra_sans_validity_and_algorithm_drift_are_reported() {
    let (_t, root) = demo_pki(&[]);
    // Another node name: the certificates carry node-1 (extra) and lack node-9 (missing);
    // the config asks for ECDSA-P256 and half a year.
    let p = root.parent().unwrap().join("other.yaml");
    std::fs::write(
        &p,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: node-9\nlocalAPIEndpoint:\n  advertiseAddress: 127.0.1.1\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: ECDSA-P256\ncertificateValidityPeriod: 4380h\n",
    )
    .unwrap();
    let (code, v) = drift_json(&root, &p);
    assert_eq!(code, 3, "{v}");
    let peer = drift_row(&v, "etcd-peer");
    assert_eq!(strs(&peer["missingSans"]), ["DNS:node-9"]);
    assert_eq!(strs(&peer["extraSans"]), ["DNS:node-1"]);
    let admin = drift_row(&v, "admin.conf");
    assert_eq!(admin["status"], "drift");
    assert_eq!(admin["keyAlgorithm"]["expected"], "ECDSA-P256");
    assert_eq!(admin["keyAlgorithm"]["actual"], "RSA-2048");
    assert_eq!(admin["validity"]["status"], "differs");
    assert_eq!(admin["validity"]["expectedSeconds"], 4380 * 3600);
    // The CA validity follows caCertificateValidityPeriod (default 10 years): it matches.
    assert_eq!(drift_row(&v, "ca")["validity"]["status"], "match");
}

#[test]
fn drift_metrics() {
    let (_t, root) = demo_pki(&[]);
    let cfg = node1_config(
        root.parent().unwrap(),
        "v1beta4",
        "apiServer:\n  certSANs:\n    - kubecert.example.com\n",
    );
    let pki = root.join("pki");
    let out = ok(&[
        "metrics",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--now",
        NOW,
        "--drift",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(
        out.contains("kubecert_drift_sans_missing{certificate=\"apiserver\"} 1"),
        "{out}"
    );
    assert!(
        out.contains("kubecert_drift{certificate=\"apiserver\"} 1"),
        "{out}"
    );
    assert!(
        out.contains("kubecert_drift{certificate=\"etcd-peer\"} 0"),
        "{out}"
    );
    // Without --drift: no drift series.
    let plain = ok(&[
        "metrics",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--now",
        NOW,
    ]);
    assert!(!plain.contains("kubecert_drift"), "{plain}");
}

/// Over RPC (in-process, a confined read caller): `check` may make the root agent read only
/// the kubeadm config it was started with; a secret named as `config` is refused with
/// -31010 and nothing of it is in the reply; the configured file is read and drift answered.
#[test]
fn rpc_config_is_confined_to_the_agents_kubeadm_config() {
    use kubecert::rpc::Roots;
    use serde_json::json;
    let (t, root) = demo_pki(&[]);
    let cfg = node1_config(
        t.path(),
        "v1beta4",
        "apiServer:\n  certSANs:\n    - kubecert.example.com\n",
    );
    let secret = t.path().join("secret.yaml");
    std::fs::write(&secret, "apiVersion: SECRETBYTES\nkind: x\n").unwrap();
    let call = |roots: &Roots, params: Value| -> Value {
        common::rpc::call_as(roots, common::rpc::caller(false), "check", params)
    };
    let mut roots = Roots::for_dirs(root.join("pki"), &root);
    let params = |c: &Path| json!({"drift": true, "config": c, "now": NOW});
    // The agent has no --kubeadm-config: no file at all.
    for f in [&secret, &cfg] {
        let r = call(&roots, params(f));
        assert_eq!(r["error"]["code"], -31010, "{r}");
        assert_eq!(r["error"]["data"]["param"], "config", "{r}");
        assert!(!r.to_string().contains("SECRETBYTES"), "{r}");
    }
    // Started with --kubeadm-config: that file only.
    roots.kubeadm_config = Some(cfg.clone());
    let r = call(&roots, params(&secret));
    assert_eq!(r["error"]["code"], -31010, "{r}");
    assert!(!r.to_string().contains("SECRETBYTES"), "{r}");
    let r = call(&roots, params(&cfg));
    assert_eq!(r["result"]["drift"]["drifted"], json!(["apiserver"]), "{r}");
    assert_eq!(r["result"]["status"]["level"], "warn");
    // drift without config is invalid params, named.
    let r = call(&roots, json!({"drift": true}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(r.to_string().contains("--drift needs --config"), "{r}");
}

// ---- Issue 17 item 4: renew --reconcile-sans [--exact] --config FILE ----

fn renew_cfg(root: &Path, backup: &Path, config: &Path, more: &[&str]) -> std::process::Output {
    let pki = root.join("pki");
    let mut a = vec![
        "renew",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--now",
        NOW,
        "--backup-dir",
        backup.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    a.extend_from_slice(more);
    kubecert(&a)
}

fn x509_sans(crt: &Path) -> String {
    openssl(&[
        "x509",
        "-in",
        crt.to_str().unwrap(),
        "-noout",
        "-ext",
        "subjectAltName",
    ])
}

/// The tree hash without the files of `changed` (relative paths).
fn hash_without(root: &Path, changed: &[&str]) -> std::collections::BTreeMap<String, String> {
    let mut h = hash_tree(root);
    for c in changed {
        assert!(h.remove(*c).is_some(), "{c} not in the tree");
    }
    h
}

#[test]
fn renew_reconcile_sans_adds_the_missing_cert_san_and_changes_nothing_else() {
    let (t, root) = demo_pki(&[]);
    let backup = t.path().join("backup");
    let cfg = node1_config(
        t.path(),
        "v1beta4",
        "apiServer:\n  certSANs:\n    - kubecert.example.com\n    - 10.0.0.10\n",
    );
    let (code, v) = drift_json(&root, &cfg);
    assert_eq!(code, 3, "{v}");
    assert_eq!(strs(&v["drift"]["drifted"]), ["apiserver"]);
    let crt = root.join("pki/apiserver.crt");
    let old_sans = x509_sans(&crt);
    let before = hash_without(&root, &["pki/apiserver.crt", "pki/apiserver.key"]);
    let o = renew_cfg(&root, &backup, &cfg, &["apiserver", "--reconcile-sans"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("certificate for serving the Kubernetes API renewed\n  SANs added: "),
        "{out}"
    );
    assert!(
        out.contains("SANs added: DNS:kubecert.example.com, IP:10.0.0.10"),
        "{out}"
    );
    // openssl: the new SANs, and every old one kept.
    let sans = x509_sans(&crt);
    assert!(sans.contains("DNS:kubecert.example.com"), "{sans}");
    assert!(sans.contains("IP Address:10.0.0.10"), "{sans}");
    for old in old_sans.lines().skip(1).flat_map(|l| l.split(", ")) {
        assert!(sans.contains(old.trim()), "{old} dropped: {sans}");
    }
    let (ok_, verify) = openssl_status(&[
        "verify",
        "-CAfile",
        root.join("pki/ca.crt").to_str().unwrap(),
        crt.to_str().unwrap(),
    ]);
    assert!(ok_, "{verify}");
    // Every other file byte-identical (the backup is outside the tree).
    assert_eq!(
        hash_without(&root, &["pki/apiserver.crt", "pki/apiserver.key"]),
        before
    );
    assert!(backup.exists());
    // And drift is gone.
    let (code, v) = drift_json(&root, &cfg);
    assert_eq!(code, 0, "{v}");
    assert_eq!(drift_row(&v, "apiserver")["status"], "match", "{v}");
}

#[test]
fn renew_reconcile_sans_exact_drops_extras_and_default_keeps_them() {
    let (t, root) = demo_pki(&[]);
    // node-9's config: etcd-peer carries DNS:node-1 (extra) and lacks DNS:node-9.
    let cfg = t.path().join("node9.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: node-9\nlocalAPIEndpoint:\n  advertiseAddress: 127.0.1.1\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n",
    )
    .unwrap();
    let peer = root.join("pki/etcd/peer.crt");
    let o = renew_cfg(
        &root,
        &t.path().join("b1"),
        &cfg,
        &["etcd-peer", "--reconcile-sans"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let sans = x509_sans(&peer);
    assert!(
        sans.contains("DNS:node-9") && sans.contains("DNS:node-1"),
        "{sans}"
    );
    let o = renew_cfg(
        &root,
        &t.path().join("b2"),
        &cfg,
        &["etcd-peer", "--reconcile-sans", "--exact"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("SANs dropped: DNS:node-1"),
        "{}",
        text(&o)
    );
    let sans = x509_sans(&peer);
    assert!(sans.contains("DNS:node-9"), "{sans}");
    assert!(!sans.contains("DNS:node-1"), "{sans}");
    let (code, v) = drift_json(&root, &cfg);
    assert_eq!(drift_row(&v, "etcd-peer")["status"], "match", "{code} {v}");
    // --exact without --reconcile-sans, --reconcile-sans without --config: clear errors.
    let before = hash_tree(&root);
    let pki = root.join("pki");
    let o = renew_cfg(&root, &t.path().join("b3"), &cfg, &["etcd-peer", "--exact"]);
    assert_fails(&o, 1, "--exact needs --reconcile-sans");
    let o = kubecert(&[
        "renew",
        "etcd-peer",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--reconcile-sans",
    ]);
    assert_fails(&o, 1, "--reconcile-sans needs --config");
    assert_eq!(hash_tree(&root), before);
}

#[test]
fn renew_with_config_follows_encryption_algorithm_and_validity() {
    let (t, root) = demo_pki(&[]);
    let cfg = node1_config(
        t.path(),
        "v1beta4",
        "encryptionAlgorithm: ECDSA-P256\ncertificateValidityPeriod: 4380h\n",
    );
    let o = renew_cfg(&root, &t.path().join("b"), &cfg, &["all"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for crt in [
        "pki/apiserver.crt",
        "pki/etcd/peer.crt",
        "pki/front-proxy-client.crt",
    ] {
        let p = root.join(crt);
        let txt = openssl(&["x509", "-in", p.to_str().unwrap(), "-noout", "-text"]);
        assert!(txt.contains("NIST CURVE: P-256"), "{crt}: {txt}");
        // 4380h = 182.5 days from NOW (NotBefore backdated 5 minutes, as renew does).
        let dates = openssl(&["x509", "-in", p.to_str().unwrap(), "-noout", "-dates"]);
        assert!(
            dates.contains("notBefore=May 31 23:55:00 2026 GMT"),
            "{crt}: {dates}"
        );
        assert!(
            dates.contains("notAfter=Nov 30 12:00:00 2026 GMT"),
            "{crt}: {dates}"
        );
        let key = root.join(crt.replace(".crt", ".key"));
        let k = openssl(&["pkey", "-in", key.to_str().unwrap(), "-noout", "-text"]);
        assert!(k.contains("NIST CURVE: P-256"), "{crt}: key is not P-256");
    }
    // Every leaf now matches; the CAs keep their RSA keys (renew does not touch CAs), so
    // only they still drift on the algorithm.
    let (code, v) = drift_json(&root, &cfg);
    assert_eq!(code, 3, "{v}");
    assert_eq!(
        strs(&v["drift"]["drifted"]),
        ["ca", "etcd-ca", "front-proxy-ca"],
        "{v}"
    );
    for c in v["drift"]["certificates"].as_array().unwrap() {
        if !c["name"].as_str().unwrap().ends_with("ca") {
            assert_eq!(c["status"], "match", "{c}");
        }
    }
}

#[test]
fn renew_with_a_bad_config_is_a_typed_error_and_writes_nothing() {
    let (t, root) = demo_pki(&[]);
    let before = hash_tree(&root);
    let backup = t.path().join("b");
    let cfg = node1_config(
        t.path(),
        "v1beta4",
        "apiServer:\n  certSans:\n    - kubecert.example.com\n",
    );
    let o = renew_cfg(&root, &backup, &cfg, &["apiserver", "--reconcile-sans"]);
    assert_fails(&o, 1, "unknown field apiServer.certSans");
    // No advertise address in the configuration and no apiserver manifest: kubeadm's rule
    // cannot be computed, and the certificate named.
    let cfg = t.path().join("noaddr.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: node-1\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n",
    )
    .unwrap();
    let o = renew_cfg(&root, &backup, &cfg, &["all", "--reconcile-sans"]);
    let msg = assert_fails(
        &o,
        1,
        "the SANs kubeadm issues for apiserver cannot be computed",
    );
    assert!(msg.contains("the advertise address is unknown"), "{msg}");
    // --config with --validity or --key-algorithm: which one wins is not guessed.
    let cfg = node1_config(t.path(), "v1beta4", "");
    let o = renew_cfg(&root, &backup, &cfg, &["apiserver", "--validity", "100h"]);
    assert_fails(&o, 1, "--validity and --config");
    let o = renew_cfg(
        &root,
        &backup,
        &cfg,
        &["apiserver", "--key-algorithm", "rsa-4096"],
    );
    assert_fails(&o, 1, "--key-algorithm and --config");
    assert_eq!(hash_tree(&root), before);
    assert!(!backup.exists());
}

/// Over RPC (in-process, a confined write caller): `renew`'s `config` is only the agent's
/// `--kubeadm-config`; another file is -31010 and nothing is written; the configured file
/// reconciles the SANs (`sansReconciled` in the reply).
#[test]
fn rpc_renew_config_is_confined_and_reconciles() {
    use kubecert::rpc::Roots;
    use serde_json::json;
    let (t, root) = demo_pki(&[]);
    let cfg = node1_config(
        t.path(),
        "v1beta4",
        "apiServer:\n  certSANs:\n    - kubecert.example.com\n",
    );
    let other_cfg = node1_config(&t.path().join("k8s"), "v1beta4", "");
    let call = |roots: &Roots, params: Value| -> Value {
        common::rpc::call_as(roots, common::rpc::caller(true), "renew", params)
    };
    let mut roots = Roots::for_dirs(root.join("pki"), &root);
    roots.kubeadm_config = Some(cfg.clone());
    let before = hash_tree(&root);
    let params =
        |c: &Path| json!({"names": ["apiserver"], "config": c, "reconcile_sans": true, "now": NOW});
    let r = call(&roots, params(&other_cfg));
    assert_eq!(r["error"]["code"], -31010, "{r}");
    assert_eq!(r["error"]["data"]["param"], "config", "{r}");
    assert_eq!(hash_tree(&root), before);
    let r = call(&roots, params(&cfg));
    let item = &r["result"]["certificates"][0];
    assert_eq!(item["action"], "renewed", "{r}");
    assert_eq!(
        item["sansReconciled"],
        json!({"added": ["DNS:kubecert.example.com"], "dropped": []}),
        "{r}"
    );
    assert!(x509_sans(&root.join("pki/apiserver.crt")).contains("DNS:kubecert.example.com"));
}

// ---- Issue 17 item 1: the kubeadm-config ConfigMap source (--kubeconfig) ----

#[cfg(feature = "k8s")]
use common::apiserver::ApiServer;

/// The certificates-API test server with the demo's CA, serving `configmaps`
/// ((namespace, name, data)).
#[cfg(feature = "k8s")]
fn api_server(root: &Path, configmaps: &[(&str, &str, Value)]) -> ApiServer {
    ApiServer::start(
        &root.join("pki/ca.crt"),
        &root.join("pki/ca.key"),
        configmaps,
        &[],
    )
}

/// kubeadm's static pod manifests of node-1 (the node facts of the ConfigMap source): etcd's
/// `--name`, kube-apiserver's `--advertise-address`.
#[cfg(feature = "k8s")]
fn node1_manifests(root: &Path) {
    let m = root.join("manifests");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(
        m.join("etcd.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\nspec:\n  containers:\n  - command:\n    - etcd\n    - --name=node-1\n    - --advertise-client-urls=https://127.0.1.1:2379\n",
    )
    .unwrap();
    std::fs::write(
        m.join("kube-apiserver.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\nspec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --advertise-address=127.0.1.1\n",
    )
    .unwrap();
}

#[cfg(feature = "k8s")]
const CM_CLUSTER: &str = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  certSANs:\n    - kubecert.example.com\n    - 10.0.0.10\n";

#[cfg(feature = "k8s")]
fn check_cm(root: &Path, kubeconfig: &str, more: &[&str]) -> std::process::Output {
    let pki = root.join("pki");
    let mut a = vec![
        "check",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--now",
        NOW,
        "--drift",
        "--kubeconfig",
        kubeconfig,
    ];
    a.extend_from_slice(more);
    kubecert(&a)
}

/// The ConfigMap holds what the file's ClusterConfiguration holds: check --drift finds the
/// same drift through both (the node facts from the manifests); kubectl reads the same
/// ConfigMap; renew --reconcile-sans --kubeconfig adds the SANs (openssl), nothing else
/// changes; config expected --kubeconfig gives the file's SANs.
#[cfg(feature = "k8s")]
#[test]
fn configmap_source_drift_equals_file_drift_and_renew_reconciles() {
    let (t, root) = demo_pki(&[]);
    node1_manifests(&root);
    let file = node1_config(
        root.parent().unwrap(),
        "v1beta4",
        "apiServer:\n  certSANs:\n    - kubecert.example.com\n    - 10.0.0.10\n",
    );
    let api = api_server(
        &root,
        &[(
            "kube-system",
            "kubeadm-config",
            serde_json::json!({ "ClusterConfiguration": CM_CLUSTER }),
        )],
    );
    // Independent check: the real kubectl reads the same ConfigMap from the server.
    let seen = api.kubectl(&[
        "get",
        "cm",
        "kubeadm-config",
        "-n",
        "kube-system",
        "-o",
        "jsonpath={.data.ClusterConfiguration}",
    ]);
    assert_eq!(seen, CM_CLUSTER);
    let before = hash_tree(&root);
    let (code_f, by_file) = drift_json(&root, &file);
    let o = check_cm(&root, api.admin(), &["-o", "json"]);
    let by_cm: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(o.status.code(), Some(code_f), "{}", text(&o));
    assert_eq!(code_f, 3);
    let (f, c) = (&by_file["drift"], &by_cm["drift"]);
    for k in [
        "certificates",
        "drifted",
        "unknown",
        "nodeName",
        "advertiseAddress",
        "apiVersion",
    ] {
        assert_eq!(f[k], c[k], "{k}: file {f} configmap {c}");
    }
    assert_eq!(strs(&c["drifted"]), ["apiserver"]);
    assert_eq!(
        strs(&drift_row(&by_cm, "apiserver")["missingSans"]),
        ["DNS:kubecert.example.com", "IP:10.0.0.10"]
    );
    assert_eq!(c["config"], "configmap kube-system/kubeadm-config");
    assert_eq!(c["nodeName"], "node-1");
    assert_eq!(c["nodeNameSource"], "manifest");
    assert_eq!(c["advertiseAddressSource"], "manifest");
    assert_eq!(hash_tree(&root), before, "check only reads");
    // config expected through the ConfigMap (node facts as params) = through the file.
    let exp = |src: &[&str]| -> Value {
        let mut a = vec!["config", "expected", "-o", "json"];
        a.extend_from_slice(src);
        serde_json::from_str(&ok(&a)).unwrap()
    };
    let ef = exp(&["--config", file.to_str().unwrap()]);
    let ec = exp(&[
        "--kubeconfig",
        api.admin(),
        "--node-name",
        "node-1",
        "--advertise-address",
        "127.0.1.1",
    ]);
    assert_eq!(ef["certificates"], ec["certificates"]);
    assert_eq!(ec["config"], "configmap kube-system/kubeadm-config");
    assert_eq!(ec["nodeNameSource"], "param");
    // renew --reconcile-sans through the ConfigMap.
    let backup = t.path().join("backup");
    let pki = root.join("pki");
    let o = kubecert(&[
        "renew",
        "apiserver",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--now",
        NOW,
        "--backup-dir",
        backup.to_str().unwrap(),
        "--kubeconfig",
        api.admin(),
        "--reconcile-sans",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let sans = x509_sans(&pki.join("apiserver.crt"));
    assert!(
        sans.contains("DNS:kubecert.example.com") && sans.contains("IP Address:10.0.0.10"),
        "{sans}"
    );
    let (ok_verify, out) = openssl_status(&[
        "verify",
        "-CAfile",
        pki.join("ca.crt").to_str().unwrap(),
        pki.join("apiserver.crt").to_str().unwrap(),
    ]);
    assert!(ok_verify, "{out}");
    assert_eq!(
        hash_without(&root, &["pki/apiserver.crt", "pki/apiserver.key"]),
        {
            let mut b = before.clone();
            b.remove("pki/apiserver.crt");
            b.remove("pki/apiserver.key");
            b
        }
    );
    // No drift left through the ConfigMap.
    let o = check_cm(&root, api.admin(), &["-o", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(strs(&v["drift"]["drifted"]), Vec::<String>::new(), "{v}");
}

/// A ConfigMap with an unknown field fails with the file's message naming the ConfigMap; a
/// missing ConfigMap, a missing key, an unreachable API server are typed errors naming
/// what and where; nothing is written and nothing falls back to another source.
#[cfg(feature = "k8s")]
#[test]
fn configmap_source_errors_name_the_configmap_and_change_nothing() {
    let (t, root) = demo_pki(&[]);
    node1_manifests(&root);
    let api = api_server(
        &root,
        &[(
            "kube-system",
            "kubeadm-config",
            serde_json::json!({ "ClusterConfiguration": CM_CLUSTER.replace("certSANs", "certSans") }),
        )],
    );
    let before = hash_tree(&root);
    let o = check_cm(&root, api.admin(), &[]);
    assert_fails(
        &o,
        1,
        "configmap kube-system/kubeadm-config (key ClusterConfiguration): document 1 (ClusterConfiguration, kubeadm.k8s.io/v1beta4): unknown field apiServer.certSans",
    );
    let pki = root.join("pki");
    let backup = t.path().join("backup");
    let renew = |kc: &str| {
        kubecert(&[
            "renew",
            "apiserver",
            "--cert-dir",
            pki.to_str().unwrap(),
            "--kubeconfig-dir",
            root.to_str().unwrap(),
            "--now",
            NOW,
            "--backup-dir",
            backup.to_str().unwrap(),
            "--kubeconfig",
            kc,
            "--reconcile-sans",
        ])
    };
    assert_fails(&renew(api.admin()), 1, "unknown field apiServer.certSans");
    // A wrong apiVersion.
    api.kubectl(&[
        "patch",
        "cm",
        "kubeadm-config",
        "-n",
        "kube-system",
        "--type",
        "merge",
        "-p",
        &serde_json::json!({"data": {"ClusterConfiguration": CM_CLUSTER.replace("v1beta4", "v1beta2")}}).to_string(),
    ]);
    assert_fails(
        &check_cm(&root, api.admin(), &[]),
        1,
        "configmap kube-system/kubeadm-config (key ClusterConfiguration): document 1 (ClusterConfiguration): apiVersion kubeadm.k8s.io/v1beta2 is not supported",
    );
    // The ConfigMap without its key; a server without the ConfigMap.
    api.kubectl(&[
        "patch",
        "cm",
        "kubeadm-config",
        "-n",
        "kube-system",
        "--type",
        "merge",
        "-p",
        r#"{"data": {"ClusterConfiguration": null, "other": "x"}}"#,
    ]);
    let msg = assert_fails(
        &check_cm(&root, api.admin(), &[]),
        1,
        "it has no data.ClusterConfiguration",
    );
    assert!(
        msg.contains("configmap kube-system/kubeadm-config (kubeconfig "),
        "{msg}"
    );
    assert!(msg.contains(", API server https://127.0.0.1:"), "{msg}");
    let empty = api_server(&root, &[]);
    assert_fails(
        &check_cm(&root, empty.admin(), &[]),
        1,
        "configmap kube-system/kubeadm-config",
    );
    assert_fails(&renew(empty.admin()), 1, "not found on the API server");
    // An API server that is not there.
    let gone = t.path().join("gone.conf");
    {
        let s = api_server(&root, &[]);
        std::fs::copy(&s.admin, &gone).unwrap();
    }
    let msg = assert_fails(
        &check_cm(&root, gone.to_str().unwrap(), &[]),
        1,
        "reading it failed",
    );
    assert!(
        msg.contains("configmap kube-system/kubeadm-config (kubeconfig "),
        "{msg}"
    );
    // A kubeconfig that is not there.
    assert_fails(
        &check_cm(&root, "/nonexistent/admin.conf", &[]),
        1,
        "the kubeconfig cannot be used",
    );
    // Both sources at once: refused before anything is read.
    let file = node1_config(root.parent().unwrap(), "v1beta4", "");
    assert_fails(
        &check_cm(&root, api.admin(), &["--config", file.to_str().unwrap()]),
        2,
        "cannot be used with",
    );
    assert_eq!(hash_tree(&root), before);
    assert!(!backup.exists());
}

/// With --within, --reconcile-sans still renews a certificate that is not due when its SANs
/// are not the configuration's (renew_ha's per-node reconcile), and only that one; a second
/// run changes nothing.
#[test]
fn reconcile_sans_renews_a_drifted_certificate_that_is_not_due_and_only_it() {
    let (t, root) = demo_pki(&[]);
    let cfg = node1_config(
        root.parent().unwrap(),
        "v1beta4",
        "apiServer:\n  certSANs:\n    - kubecert.example.com\n",
    );
    let before = hash_tree(&root);
    let backup = t.path().join("backup");
    let o = renew_cfg(
        &root,
        &backup,
        &cfg,
        &["all", "--within", "30d", "--reconcile-sans", "-o", "json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let item = |n: &str| {
        v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("{n} in {v}"))
            .clone()
    };
    assert_eq!(item("apiserver")["action"], "renewed", "{v}");
    let reason = item("apiserver")["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("not due, renewed for its SANs (--reconcile-sans)")
            && reason.contains("SANs added: DNS:kubecert.example.com"),
        "{reason}"
    );
    for n in [
        "etcd-server",
        "etcd-peer",
        "front-proxy-client",
        "admin.conf",
    ] {
        assert_eq!(item(n)["action"], "skipped", "{n}: {v}");
    }
    assert!(x509_sans(&root.join("pki/apiserver.crt")).contains("DNS:kubecert.example.com"));
    let mut b = before.clone();
    b.remove("pki/apiserver.crt");
    b.remove("pki/apiserver.key");
    assert_eq!(
        hash_without(&root, &["pki/apiserver.crt", "pki/apiserver.key"]),
        b
    );
    // Nothing left to reconcile: nothing renewed.
    let after = hash_tree(&root);
    let o = renew_cfg(
        &root,
        &backup,
        &cfg,
        &["all", "--within", "30d", "--reconcile-sans", "-o", "json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["action"] != "renewed"),
        "{v}"
    );
    assert_eq!(hash_tree(&root), after);
}
