//! External CA round trip with real cfssl (`cfssl sign -ca .. -ca-key .. -config cfg.json
//! -profile server|client|peer req.csr`, its JSON output parsed with serde_json).

mod csr_support;

use csr_support::*;
use kubecert::pki::cert::parse_pem_bundle;
use kubecert::pki::inventory;

fn round_trip(alg: &str, expect_key_label: &str) {
    let c = Cluster::demo(alg);
    c.externalize();
    // renew all cannot renew the rows of an external CA: exit 4, each one named.
    let refused = c.run(&["renew", "all"]);
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("7 certificates due for renewal were not renewed")
            && err.contains("apiserver (externally managed:"),
        "{err}"
    );
    // Accepting that explicitly turns it into kubeadm's behaviour: skipped with a notice.
    let renewed = c.ok(&["renew", "all", "--allow-unrenewable", "all"]);
    assert!(renewed.contains("Detected external ca, "), "{renewed}");
    let before = hash_tree(&c.kube);
    c.ok(&["csr", "export", "all", "--csr-dir", c.csr_dir()]);
    assert_eq!(hash_tree(&c.kube), before, "csr export modified the PKI");

    let cfg = cfssl_config(c.tmp.path());
    let mut not_after = Vec::new();
    for name in c.names() {
        let e = inventory::find(name).unwrap();
        let key = std::fs::read_to_string(c.csr.join(format!("{name}.key"))).unwrap();
        assert!(key.starts_with(expect_key_label), "{name}: {key:.40}");
        let (ca_crt, ca_key) = c.ca_files(e.ca.unwrap());
        let pem = cfssl_sign(
            &ca_crt,
            &ca_key,
            &cfg,
            profile(e.role),
            &c.csr.join(format!("{name}.csr")),
        );
        std::fs::write(c.csr.join(format!("{name}.crt")), &pem).unwrap();
        not_after.push((
            name,
            parse_pem_bundle(pem.as_bytes()).unwrap().info.not_after,
        ));
    }
    let imported = c.json(&[
        "csr",
        "import",
        "all",
        "--csr-dir",
        c.csr_dir(),
        "-o",
        "json",
    ]);
    assert_eq!(imported["changed"], true, "{imported}");
    let report = c.json(&["check", "-o", "json"]);
    let verify = c.tmp.path().join("verify");
    std::fs::create_dir_all(&verify).unwrap();
    for (name, na) in not_after {
        assert_eq!(item(&imported, name)["action"], "installed");
        assert_eq!(
            item(&report, name)["expirationDate"].as_str().unwrap(),
            kubecert::timefmt::rfc3339(na)
        );
        let e = inventory::find(name).unwrap();
        let crt = verify.join(format!("{name}.crt"));
        std::fs::write(&crt, c.installed_cert_pem(name)).unwrap();
        let ca = c.ca_files(e.ca.unwrap()).0;
        let out = openssl(&[
            "verify",
            "-CAfile",
            ca.to_str().unwrap(),
            crt.to_str().unwrap(),
        ]);
        assert!(out.contains(": OK"), "{name}: {out}");
        let key = verify.join(format!("{name}.key"));
        std::fs::write(&key, c.installed_key_pem(name)).unwrap();
        assert_eq!(
            openssl(&["x509", "-in", crt.to_str().unwrap(), "-noout", "-pubkey"]),
            openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]),
            "{name}"
        );
    }
}

#[test]
fn external_ca_round_trip_with_cfssl_rsa() {
    round_trip("rsa-2048", "-----BEGIN RSA PRIVATE KEY-----");
}

#[test]
fn external_ca_round_trip_with_cfssl_ecdsa() {
    round_trip("ecdsa-p256", "-----BEGIN EC PRIVATE KEY-----");
}

#[test]
fn cfssl_with_the_wrong_profile_is_refused() {
    let c = Cluster::demo("ecdsa-p256");
    c.externalize();
    c.ok(&[
        "csr",
        "export",
        "apiserver",
        "etcd-server",
        "--csr-dir",
        c.csr_dir(),
    ]);
    let cfg = cfssl_config(c.tmp.path());
    let (ca_crt, ca_key) = c.ca_files(kubecert::pki::inventory::CaId::Ca);
    // apiserver signed as a client.
    let pem = cfssl_sign(
        &ca_crt,
        &ca_key,
        &cfg,
        "client",
        &c.csr.join("apiserver.csr"),
    );
    std::fs::write(c.csr.join("apiserver.crt"), pem).unwrap();
    // etcd-server signed as a plain server (etcd needs both).
    let (ecrt, ekey) = c.ca_files(kubecert::pki::inventory::CaId::EtcdCa);
    let pem = cfssl_sign(&ecrt, &ekey, &cfg, "server", &c.csr.join("etcd-server.csr"));
    std::fs::write(c.csr.join("etcd-server.crt"), pem).unwrap();
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
    let f = &item(&v, "apiserver")["findings"][0];
    assert_eq!(f["code"], "eku-mismatch", "{v}");
    assert!(
        f["message"].as_str().unwrap().contains("needs serverAuth"),
        "{f}"
    );
    let f = &item(&v, "etcd-server")["findings"][0];
    assert_eq!(f["code"], "eku-mismatch", "{v}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("missing clientAuth"),
        "{f}"
    );
    assert_eq!(hash_tree(&c.kube), before);
}
