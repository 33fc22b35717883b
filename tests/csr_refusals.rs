//! `csr import` refusals. Every case starts from a complete set of correctly signed
//! certificates (so an import that was not all-or-nothing would install the others), breaks
//! one of them, and checks: exit 1, a finding that says exactly what is wrong, every other
//! certificate reported valid but not installed, and the cluster tree byte-identical.

mod csr_support;

use std::path::Path;

use csr_support::*;
use kubecert::pki::cert::parse_pem_bundle;
use kubecert::pki::inventory::CaId;

/// Imports `all` and checks the refusal of `name` with `code` (message containing `msg`).
fn assert_refused(c: &Cluster, name: &str, code: &str, msg: &str) -> serde_json::Value {
    let before = hash_tree(&c.kube);
    let o = c.run(&[
        "csr",
        "import",
        "all",
        "--csr-dir",
        c.csr_dir(),
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let it = item(&v, name);
    assert_eq!(it["action"], "refused", "{it}");
    let findings = it["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["code"] == code && f["message"].as_str().unwrap().contains(msg)),
        "{name}: expected {code} containing {msg:?}, got {findings:?}"
    );
    for other in c.names().into_iter().filter(|n| *n != name) {
        let o = item(&v, other);
        assert_eq!(o["action"], "would-install", "{o}");
        assert!(
            o["reason"].as_str().unwrap().contains("all or nothing"),
            "{o}"
        );
    }
    assert_eq!(v["changed"], false);
    assert_eq!(v["backupDir"], serde_json::Value::Null);
    assert_eq!(
        hash_tree(&c.kube),
        before,
        "a refused import changed the tree"
    );
    // The text output says the same, and a dry run refuses too.
    let o = c.run(&["csr", "import", "all", "--csr-dir", c.csr_dir()]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o);
    assert!(
        out.contains(&format!("[csr-import] {name}: REFUSED")),
        "{out}"
    );
    assert!(out.contains(&format!("- {code}: ")), "{out}");
    assert!(out.contains("Nothing was changed"), "{out}");
    let o = c.run(&[
        "csr",
        "import",
        "all",
        "--csr-dir",
        c.csr_dir(),
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(hash_tree(&c.kube), before);
    v
}

fn resign(
    cas: &std::collections::BTreeMap<CaId, OpensslCa>,
    c: &Cluster,
    ca: CaId,
    name: &str,
    section: &str,
    o: SignOpts,
) {
    cas[&ca].sign(
        &c.csr.join(format!("{name}.csr")),
        section,
        &c.csr.join(format!("{name}.crt")),
        &o,
    );
}

fn apiserver_sans(pki: &Path) -> Vec<String> {
    let pem = std::fs::read(pki.join("apiserver.crt")).unwrap();
    parse_pem_bundle(&pem).unwrap().info.san_strings()
}

#[test]
fn refuses_cert_signed_by_another_ca() {
    let (c, _) = exported_and_signed("ecdsa-p256");
    let other = c.tmp.path().join("other-ca");
    std::fs::create_dir_all(&other).unwrap();
    let (k, crt) = (other.join("ca.key"), other.join("ca.crt"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=kubernetes",
        "-keyout",
        k.to_str().unwrap(),
        "-out",
        crt.to_str().unwrap(),
    ]);
    // Same subject as the real CA (CN=kubernetes): only the signature tells them apart.
    let rogue = OpensslCa::new(&other.join("db"), &crt, &k, "");
    rogue.sign(
        &c.csr.join("apiserver.csr"),
        "server",
        &c.csr.join("apiserver.crt"),
        &SignOpts::default(),
    );
    assert_refused(&c, "apiserver", "wrong-ca", "not signed by ca");
}

#[test]
fn refuses_cert_signed_by_the_wrong_pki_ca() {
    let (c, cas) = exported_and_signed("ecdsa-p256");
    resign(
        &cas,
        &c,
        CaId::FrontProxyCa,
        "apiserver",
        "server",
        SignOpts::default(),
    );
    assert_refused(&c, "apiserver", "wrong-ca", "signed by front-proxy-ca");
    // And an etcd cert signed by the cluster CA.
    let (c, cas) = exported_and_signed("ecdsa-p256");
    resign(&cas, &c, CaId::Ca, "etcd-peer", "peer", SignOpts::default());
    assert_refused(&c, "etcd-peer", "wrong-ca", "must be signed by etcd-ca");
}

#[test]
fn refuses_cert_for_the_wrong_key() {
    let (c, _) = exported_and_signed("ecdsa-p256");
    std::fs::copy(
        c.csr.join("front-proxy-client.key"),
        c.csr.join("apiserver.key"),
    )
    .unwrap();
    assert_refused(&c, "apiserver", "key-mismatch", "does not belong to");
}

#[test]
fn refuses_a_missing_san() {
    let c0 = Cluster::demo("ecdsa-p256");
    let sans = apiserver_sans(&c0.pki);
    drop(c0);
    let (c, _) = exported_and_signed("ecdsa-p256");
    let sans_now = apiserver_sans(&c.pki);
    assert_eq!(sans, sans_now);
    let kept: Vec<String> = sans
        .iter()
        .filter(|s| *s != "DNS:kubernetes.default")
        .cloned()
        .collect();
    let extra = format!(
        "[ server_fewer ]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\nextendedKeyUsage = serverAuth\nsubjectAltName = {}\n",
        kept.join(",")
    );
    let cas = openssl_cas(&c, &extra);
    resign(
        &cas,
        &c,
        CaId::Ca,
        "apiserver",
        "server_fewer",
        SignOpts::default(),
    );
    assert_refused(
        &c,
        "apiserver",
        "san-mismatch",
        "missing SAN(s) DNS:kubernetes.default",
    );
}

#[test]
fn refuses_an_added_san() {
    let (c, _) = exported_and_signed("ecdsa-p256");
    let mut sans = apiserver_sans(&c.pki);
    sans.push("DNS:evil.example.com".into());
    sans.push("IP:192.0.2.7".into());
    let extra = format!(
        "[ server_more ]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\nextendedKeyUsage = serverAuth\nsubjectAltName = {}\n",
        sans.join(",")
    );
    let cas = openssl_cas(&c, &extra);
    resign(
        &cas,
        &c,
        CaId::Ca,
        "apiserver",
        "server_more",
        SignOpts::default(),
    );
    assert_refused(
        &c,
        "apiserver",
        "san-mismatch",
        "unexpected SAN(s) DNS:evil.example.com, IP:192.0.2.7",
    );
}

#[test]
fn refuses_the_wrong_eku() {
    let (c, cas) = exported_and_signed("ecdsa-p256");
    resign(
        &cas,
        &c,
        CaId::Ca,
        "apiserver",
        "client",
        SignOpts::default(),
    );
    assert_refused(&c, "apiserver", "eku-mismatch", "needs serverAuth");
    let (c, cas) = exported_and_signed("ecdsa-p256");
    resign(
        &cas,
        &c,
        CaId::EtcdCa,
        "etcd-server",
        "server",
        SignOpts::default(),
    );
    assert_refused(&c, "etcd-server", "eku-mismatch", "missing clientAuth");
    let (c, cas) = exported_and_signed("ecdsa-p256");
    resign(
        &cas,
        &c,
        CaId::Ca,
        "admin.conf",
        "server",
        SignOpts::default(),
    );
    assert_refused(&c, "admin.conf", "eku-mismatch", "needs clientAuth");
}

#[test]
fn refuses_an_expired_cert() {
    let (c, cas) = exported_and_signed("ecdsa-p256");
    let o = SignOpts {
        startdate: Some(openssl_date(-400)),
        enddate: Some(openssl_date(-35)),
        ..Default::default()
    };
    resign(&cas, &c, CaId::Ca, "scheduler.conf", "client", o);
    assert_refused(&c, "scheduler.conf", "expired", "expired: NotAfter was");
}

#[test]
fn refuses_a_not_yet_valid_cert() {
    let (c, cas) = exported_and_signed("ecdsa-p256");
    let o = SignOpts {
        startdate: Some(openssl_date(30)),
        enddate: Some(openssl_date(300)),
        ..Default::default()
    };
    resign(
        &cas,
        &c,
        CaId::FrontProxyCa,
        "front-proxy-client",
        "client",
        o,
    );
    assert_refused(
        &c,
        "front-proxy-client",
        "not-yet-valid",
        "not valid yet: NotBefore is",
    );
}

#[test]
fn refuses_a_cert_outliving_its_ca() {
    let (c, cas) = exported_and_signed("ecdsa-p256");
    let o = SignOpts {
        enddate: Some(openssl_date(12 * 365)),
        ..Default::default()
    };
    resign(
        &cas,
        &c,
        CaId::EtcdCa,
        "etcd-healthcheck-client",
        "client",
        o,
    );
    assert_refused(
        &c,
        "etcd-healthcheck-client",
        "outlives-ca",
        "is after the etcd-ca NotAfter",
    );
}

#[test]
fn refuses_a_ca_cert() {
    let extra = "[ server_ca ]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,digitalSignature,keyEncipherment\nextendedKeyUsage = serverAuth\n";
    let (c, _) = exported_and_signed("ecdsa-p256");
    let cas = openssl_cas(&c, extra);
    resign(
        &cas,
        &c,
        CaId::Ca,
        "apiserver",
        "server_ca",
        SignOpts::default(),
    );
    assert_refused(&c, "apiserver", "is-ca", "is a CA certificate");
}

#[test]
fn refuses_garbage_pem() {
    let (c, _) = exported_and_signed("ecdsa-p256");
    std::fs::write(
        c.csr.join("apiserver-kubelet-client.crt"),
        "this is not a certificate\n",
    )
    .unwrap();
    assert_refused(
        &c,
        "apiserver-kubelet-client",
        "bad-certificate",
        "apiserver-kubelet-client.crt",
    );
    std::fs::write(
        c.csr.join("apiserver-kubelet-client.crt"),
        "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert_refused(
        &c,
        "apiserver-kubelet-client",
        "bad-certificate",
        "invalid certificate",
    );
}

#[test]
fn refuses_crt_without_key() {
    let (c, _) = exported_and_signed("ecdsa-p256");
    std::fs::remove_file(c.csr.join("etcd-server.key")).unwrap();
    assert_refused(
        &c,
        "etcd-server",
        "key-missing",
        "etcd-server.key is absent",
    );
}

#[test]
fn refuses_a_broken_key_without_printing_it() {
    let (c, _) = exported_and_signed("ecdsa-p256");
    let key = std::fs::read_to_string(c.csr.join("controller-manager.conf.key")).unwrap();
    let body: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    // Drop the last body line: still PEM, no longer a key.
    let broken = format!(
        "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
        body[..body.len() - 1].join("\n")
    );
    std::fs::write(c.csr.join("controller-manager.conf.key"), broken).unwrap();
    assert_refused(
        &c,
        "controller-manager.conf",
        "bad-key",
        "controller-manager.conf.key",
    );
    let o = c.run(&[
        "csr",
        "import",
        "all",
        "--csr-dir",
        c.csr_dir(),
        "-o",
        "json",
    ]);
    let all = text(&o);
    for l in body {
        assert!(!all.contains(l), "key material in the output");
    }
}

#[test]
fn refuses_a_changed_subject() {
    let (c, cas) = exported_and_signed("ecdsa-p256");
    let o = SignOpts {
        subj: Some("/O=system:masters/CN=kubernetes-admin".into()),
        ..Default::default()
    };
    resign(&cas, &c, CaId::Ca, "admin.conf", "client", o);
    assert_refused(
        &c,
        "admin.conf",
        "subject-mismatch",
        "differs from the current certificate's \"O=kubeadm:cluster-admins, CN=kubernetes-admin\"",
    );
}

#[test]
fn refuses_a_reordered_subject() {
    let (c, _) = exported_and_signed("ecdsa-p256");
    // openssl ca orders the subject by its policy (CN first here) without -preserveDN.
    let cas = openssl_cas(
        &c,
        "[ policy_cn_first ]\ncommonName = optional\norganizationName = optional\n",
    );
    let o = SignOpts {
        no_preserve_dn: true,
        policy: Some("policy_cn_first".into()),
        ..Default::default()
    };
    resign(&cas, &c, CaId::Ca, "super-admin.conf", "client", o);
    assert_refused(&c, "super-admin.conf", "subject-mismatch", "-preserveDN");
}

#[test]
fn refuses_an_explicitly_named_but_absent_cert() {
    let (c, _) = exported_and_signed("ecdsa-p256");
    std::fs::remove_file(c.csr.join("apiserver.crt")).unwrap();
    let before = hash_tree(&c.kube);
    let o = c.run(&[
        "csr",
        "import",
        "apiserver",
        "front-proxy-client",
        "--csr-dir",
        c.csr_dir(),
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(item(&v, "apiserver")["action"], "absent");
    assert_eq!(item(&v, "apiserver")["findings"][0]["code"], "not-found");
    assert_eq!(item(&v, "front-proxy-client")["action"], "would-install");
    assert_eq!(hash_tree(&c.kube), before);
    // With `all`, an absent cert is simply absent: the rest installs.
    let v = c.json(&[
        "csr",
        "import",
        "all",
        "--csr-dir",
        c.csr_dir(),
        "-o",
        "json",
    ]);
    assert_eq!(item(&v, "apiserver")["action"], "absent");
    assert_eq!(item(&v, "front-proxy-client")["action"], "installed");
    assert_eq!(v["changed"], true);
}

#[test]
fn reports_every_problem_of_every_cert_at_once() {
    let (c, cas) = exported_and_signed("ecdsa-p256");
    resign(
        &cas,
        &c,
        CaId::FrontProxyCa,
        "apiserver",
        "client",
        SignOpts::default(),
    );
    std::fs::remove_file(c.csr.join("etcd-peer.key")).unwrap();
    let before = hash_tree(&c.kube);
    let o = c.run(&[
        "csr",
        "import",
        "all",
        "--csr-dir",
        c.csr_dir(),
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let codes = |n: &str| -> Vec<String> {
        item(&v, n)["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(codes("apiserver"), ["wrong-ca", "eku-mismatch"]);
    assert_eq!(codes("etcd-peer"), ["key-missing"]);
    assert_eq!(hash_tree(&c.kube), before);
}

#[test]
fn import_from_the_cert_dir_is_refused() {
    let (c, _) = exported_and_signed("ecdsa-p256");
    let before = hash_tree(&c.kube);
    let o = c.run(&["csr", "import", "all", "--csr-dir", c.pki.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("pass --csr-dir"), "{}", text(&o));
    assert_eq!(hash_tree(&c.kube), before);
}

#[test]
fn refuses_a_pki_ca_that_is_not_a_ca() {
    // Issue 12 item 9: a ca.crt with CA:FALSE (same key, so signatures still verify) was
    // accepted by csr import although renew refuses it.
    let (c, _) = exported_and_signed("ecdsa-p256");
    let (_, key) = c.ca_files(CaId::Ca);
    let crt = c.pki.join("ca.crt");
    openssl(&[
        "req",
        "-x509",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        "/CN=kubernetes",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-days",
        "3650",
        "-out",
        crt.to_str().unwrap(),
    ]);
    let before = hash_tree(&c.kube);
    for dry in [false, true] {
        let mut args = vec![
            "csr",
            "import",
            "all",
            "--csr-dir",
            c.csr_dir(),
            "-o",
            "json",
        ];
        if dry {
            args.push("--dry-run");
        }
        let o = c.run(&args);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        for name in ["apiserver", "admin.conf", "apiserver-kubelet-client"] {
            let it = item(&v, name);
            assert_eq!(it["action"], "refused", "{it}");
            assert_eq!(it["findings"][0]["code"], "ca-not-a-ca", "{it}");
            assert_eq!(
                it["findings"][0]["message"],
                format!(
                    "the ca certificate {} is not a certificate authority (CA:FALSE), so nothing signed by it can be trusted as {name}",
                    crt.display()
                ),
            );
        }
        assert_eq!(item(&v, "front-proxy-client")["action"], "would-install");
        assert_eq!(hash_tree(&c.kube), before);
    }
}
