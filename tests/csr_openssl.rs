//! External CA round trip with real `openssl ca`: a PKI whose ca.key and front-proxy-ca.key
//! are kept offline; check/renew see them as externally managed; `csr export all` → `openssl
//! ca` → `csr import all`; the installed certificates verify with `openssl verify`.

mod csr_support;

use csr_support::*;
use kubecert::pki::cert::parse_pem_bundle;
use kubecert::pki::inventory::{self, CaId, Role};

fn openssl_purpose(role: Role) -> &'static [&'static str] {
    match role {
        Role::Server => &["sslserver"],
        Role::Client => &["sslclient"],
        Role::ServerAndClient => &["sslserver", "sslclient"],
        Role::Authority => &[],
    }
}

/// `openssl verify` of a row's installed cert against its CA (with the role's purpose), and
/// the installed key matches the installed cert.
fn verify_installed(c: &Cluster, name: &str) {
    let e = inventory::find(name).unwrap();
    let ca_crt = c.ca_files(e.ca.unwrap()).0;
    let dir = c.tmp.path().join("verify");
    std::fs::create_dir_all(&dir).unwrap();
    let crt = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&crt, c.installed_cert_pem(name)).unwrap();
    std::fs::write(&key, c.installed_key_pem(name)).unwrap();
    let (crt_s, key_s, ca_s) = (
        crt.display().to_string(),
        key.display().to_string(),
        ca_crt.display().to_string(),
    );
    for purpose in openssl_purpose(e.role) {
        let out = openssl(&["verify", "-purpose", purpose, "-CAfile", &ca_s, &crt_s]);
        assert!(out.contains(": OK"), "{name}: {out}");
    }
    let cert_pub = openssl(&["x509", "-in", &crt_s, "-noout", "-pubkey"]);
    let key_pub = openssl(&["pkey", "-in", &key_s, "-pubout"]);
    assert_eq!(cert_pub, key_pub, "{name}: installed key does not match");
}

#[test]
fn external_ca_round_trip_with_openssl_ca() {
    let c = Cluster::demo("rsa-2048");
    c.externalize();

    // check: rows under ca and front-proxy-ca are externally managed, etcd rows are not.
    let report = c.json(&["check", "-o", "json"]);
    for row in report["certificates"].as_array().unwrap() {
        let name = row["name"].as_str().unwrap();
        let ca = inventory::find(name).unwrap().ca.unwrap();
        assert_eq!(
            row["externallyManaged"].as_bool(),
            Some(ca != CaId::EtcdCa),
            "{name}: {row}"
        );
    }
    for ca in report["certificateAuthorities"].as_array().unwrap() {
        let external = ca["name"] != "etcd-ca";
        assert_eq!(ca["externallyManaged"].as_bool(), Some(external), "{ca}");
    }

    // renew all cannot renew the rows of an external CA: exit 4, each one named (as in
    // csr_cfssl since issue 13).
    let refused = c.run(&["renew", "all"]);
    assert_fails(
        &refused,
        4,
        "7 certificates due for renewal were not renewed",
    );
    assert_fails(&refused, 4, "apiserver (externally managed:");
    // With --allow-unrenewable all: skips them like kubeadm (exit 0), renews the etcd rows.
    let out = c.ok(&["renew", "all", "--allow-unrenewable", "all"]);
    assert!(
        out.contains(
            "Detected external ca, certificate for serving the Kubernetes API can't be renewed"
        ),
        "{out}"
    );
    assert!(
        out.contains("Detected external front-proxy-ca, certificate for the front proxy client can't be renewed"),
        "{out}"
    );
    assert!(
        out.contains("Detected external ca, certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself can't be renewed"),
        "{out}"
    );
    assert!(
        out.contains("certificate for serving etcd renewed"),
        "{out}"
    );

    // export: nothing in the cluster tree changes.
    let before = hash_tree(&c.kube);
    let exported = c.json(&[
        "csr",
        "export",
        "all",
        "--csr-dir",
        c.csr_dir(),
        "-o",
        "json",
    ]);
    assert_eq!(exported["changed"], true);
    assert_eq!(hash_tree(&c.kube), before, "csr export modified the PKI");
    assert_eq!(mode(&c.csr), 0o700);
    for name in c.names() {
        let it = item(&exported, name);
        assert_eq!(it["action"], "exported", "{it}");
        let csr = c.csr.join(format!("{name}.csr"));
        let key = c.csr.join(format!("{name}.key"));
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&csr), 0o600);
        let out = openssl(&["req", "-verify", "-noout", "-in", csr.to_str().unwrap()]);
        assert!(
            out.contains("verify OK")
                || out.contains("Certificate request self-signature verify OK"),
            "{out}"
        );
        // Like kubeadm, no usages are requested.
        let txt = openssl(&["req", "-noout", "-text", "-in", csr.to_str().unwrap()]);
        assert!(!txt.contains("Extended Key Usage"), "{name}: {txt}");
        assert!(std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    }

    // Sign every CSR with openssl ca (SANs copied from the CSR), then import them all.
    let cas = openssl_cas(&c, "");
    sign_all_openssl(&c, &cas);
    let signed: Vec<(String, i64)> = c
        .names()
        .into_iter()
        .map(|n| {
            let pem = std::fs::read(c.csr.join(format!("{n}.crt"))).unwrap();
            (
                n.to_string(),
                parse_pem_bundle(&pem).unwrap().info.not_after,
            )
        })
        .collect();
    let dry = c.json(&[
        "csr",
        "import",
        "all",
        "--csr-dir",
        c.csr_dir(),
        "--dry-run",
        "-o",
        "json",
    ]);
    assert_eq!(hash_tree(&c.kube), before, "a dry run wrote");
    for (n, _) in &signed {
        assert_eq!(item(&dry, n)["action"], "would-install", "{dry}");
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
    let backup = imported["backupDir"].as_str().unwrap().to_string();
    assert!(std::path::Path::new(&backup)
        .join("manifest.json")
        .is_file());
    assert_eq!(
        imported["componentsToRestart"],
        serde_json::json!([
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler"
        ])
    );
    for (n, _) in &signed {
        let it = item(&imported, n);
        assert_eq!(it["action"], "installed", "{it}");
        assert_eq!(it["findings"], serde_json::json!([]));
    }

    // check shows the new dates; openssl verifies every installed cert and key.
    let report = c.json(&["check", "-o", "json"]);
    for (n, not_after) in &signed {
        let row = item(&report, n);
        assert_eq!(
            row["expirationDate"].as_str().unwrap(),
            kubecert::timefmt::rfc3339(*not_after),
            "{row}"
        );
        verify_installed(&c, n);
    }
    // Kubeconfigs keep their CA and server; the PKI keys are 0600.
    for k in ["apiserver.key", "etcd/server.key", "front-proxy-client.key"] {
        assert_eq!(mode(&c.pki.join(k)), 0o600, "{k}");
    }
    assert_eq!(
        kubeconfig_data(&c.kube.join("admin.conf"), "certificate-authority-data"),
        std::fs::read_to_string(c.pki.join("ca.crt")).unwrap()
    );

    // Importing again is a no-op.
    let again = c.json(&[
        "csr",
        "import",
        "all",
        "--csr-dir",
        c.csr_dir(),
        "-o",
        "json",
    ]);
    assert_eq!(again["changed"], false, "{again}");
    for (n, _) in &signed {
        assert_eq!(item(&again, n)["action"], "unchanged");
    }

    // The backup puts the pre-import PKI back.
    let after_import = hash_tree(&c.kube);
    c.ok(&["restore", &backup]);
    let restored = hash_tree(&c.kube);
    let strip = |m: &std::collections::BTreeMap<String, String>| {
        m.iter()
            .filter(|(k, _)| !k.starts_with("kubecert-backup"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(strip(&restored), strip(&before));
    assert_ne!(strip(&after_import), strip(&before));
}

#[test]
fn text_output_names_each_installed_certificate() {
    let (c, _cas) = exported_and_signed("ecdsa-p256");
    let out = c.ok(&[
        "csr",
        "import",
        "apiserver",
        "etcd-peer",
        "--csr-dir",
        c.csr_dir(),
    ]);
    assert!(out.contains("[csr-import] apiserver: installed"), "{out}");
    assert!(out.contains("[csr-import] etcd-peer: installed"), "{out}");
    assert!(
        out.contains("Components whose certificates changed: etcd, kube-apiserver"),
        "{out}"
    );
    assert!(out.contains("Backup of the replaced files: "), "{out}");
    verify_installed(&c, "apiserver");
    verify_installed(&c, "etcd-peer");
    // Only the named ones changed.
    let report = c.json(&["check", "-o", "json"]);
    let api = item(&report, "apiserver")["expirationDate"].clone();
    let fp = item(&report, "front-proxy-client")["expirationDate"].clone();
    assert_ne!(api, fp);
}

#[test]
fn reused_key_round_trip_keeps_the_key() {
    let c = Cluster::demo("rsa-2048");
    c.externalize();
    let key_before = std::fs::read(c.pki.join("apiserver.key")).unwrap();
    let out = c.json(&[
        "csr",
        "export",
        "apiserver",
        "admin.conf",
        "--reuse-key",
        "--csr-dir",
        c.csr_dir(),
        "-o",
        "json",
    ]);
    assert_eq!(item(&out, "apiserver")["keyReused"], true);
    // The current key, written back in its own format.
    assert_eq!(
        std::fs::read(c.csr.join("apiserver.key")).unwrap(),
        key_before
    );
    assert_eq!(
        std::fs::read_to_string(c.csr.join("admin.conf.key")).unwrap(),
        kubeconfig_data(&c.kube.join("admin.conf"), "client-key-data")
    );
    let cas = openssl_cas(&c, "");
    for n in ["apiserver", "admin.conf"] {
        let e = inventory::find(n).unwrap();
        cas[&CaId::Ca].sign(
            &c.csr.join(format!("{n}.csr")),
            profile(e.role),
            &c.csr.join(format!("{n}.crt")),
            &SignOpts::default(),
        );
    }
    c.ok(&[
        "csr",
        "import",
        "apiserver",
        "admin.conf",
        "--csr-dir",
        c.csr_dir(),
    ]);
    assert_eq!(
        std::fs::read(c.pki.join("apiserver.key")).unwrap(),
        key_before
    );
    verify_installed(&c, "apiserver");
    verify_installed(&c, "admin.conf");
}

#[test]
fn accepts_a_leaf_with_its_intermediate_chain() {
    let c = Cluster::demo("ecdsa-p256");
    c.externalize();
    c.ok(&["csr", "export", "apiserver", "--csr-dir", c.csr_dir()]);
    let cas = openssl_cas(&c, "");
    // An intermediate under the offline cluster CA.
    let inter = c.tmp.path().join("intermediate");
    std::fs::create_dir_all(&inter).unwrap();
    let (ikey, icsr, icrt) = (
        inter.join("i.key"),
        inter.join("i.csr"),
        inter.join("i.crt"),
    );
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=kubernetes-intermediate",
        "-keyout",
        ikey.to_str().unwrap(),
        "-out",
        icsr.to_str().unwrap(),
    ]);
    cas[&CaId::Ca].sign(&icsr, "v3_intermediate", &icrt, &SignOpts::default());
    let ica = OpensslCa::new(&inter.join("ca"), &icrt, &ikey, "");
    let leaf = c.tmp.path().join("leaf.crt");
    ica.sign(
        &c.csr.join("apiserver.csr"),
        "server",
        &leaf,
        &SignOpts::default(),
    );

    // Leaf alone: not signed by ca and no chain to get there.
    std::fs::copy(&leaf, c.csr.join("apiserver.crt")).unwrap();
    let before = hash_tree(&c.kube);
    let o = c.run(&[
        "csr",
        "import",
        "apiserver",
        "--csr-dir",
        c.csr_dir(),
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        item(&v, "apiserver")["findings"][0]["code"],
        "wrong-ca",
        "{v}"
    );
    assert_eq!(hash_tree(&c.kube), before);

    // Leaf + intermediate: accepted, installed with its chain.
    let mut bundle = std::fs::read_to_string(&leaf).unwrap();
    bundle.push_str(&std::fs::read_to_string(&icrt).unwrap());
    std::fs::write(c.csr.join("apiserver.crt"), &bundle).unwrap();
    c.ok(&["csr", "import", "apiserver", "--csr-dir", c.csr_dir()]);
    let installed = std::fs::read(c.pki.join("apiserver.crt")).unwrap();
    let parsed = parse_pem_bundle(&installed).unwrap();
    assert_eq!(parsed.chain.len(), 1);
    let out = openssl(&[
        "verify",
        "-purpose",
        "sslserver",
        "-CAfile",
        c.pki.join("ca.crt").to_str().unwrap(),
        "-untrusted",
        icrt.to_str().unwrap(),
        c.pki.join("apiserver.crt").to_str().unwrap(),
    ]);
    assert!(out.contains(": OK"), "{out}");

    // A stray certificate in the bundle is refused.
    let stray = std::fs::read_to_string(c.pki.join("front-proxy-ca.crt")).unwrap();
    std::fs::write(c.csr.join("apiserver.crt"), format!("{bundle}{stray}")).unwrap();
    let before = hash_tree(&c.kube);
    let o = c.run(&[
        "csr",
        "import",
        "apiserver",
        "--csr-dir",
        c.csr_dir(),
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        item(&v, "apiserver")["findings"][0]["code"],
        "chain-invalid",
        "{v}"
    );
    assert_eq!(hash_tree(&c.kube), before);
}

/// Rewrites the current user of `conf` to reference files instead of embedding data.
fn reference_files(conf: &std::path::Path, cert: &std::path::Path, key: &std::path::Path) {
    let text = std::fs::read_to_string(conf).unwrap();
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            let indent = &l[..l.len() - l.trim_start().len()];
            let t = l.trim_start();
            if t.starts_with("client-certificate-data:") || t.starts_with("client-certificate:") {
                format!("{indent}client-certificate: {}", cert.display())
            } else if t.starts_with("client-key-data:") || t.starts_with("client-key:") {
                format!("{indent}client-key: {}", key.display())
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(conf, out.join("\n") + "\n").unwrap();
}

#[test]
fn file_referenced_kubeconfigs_get_their_files() {
    let c = Cluster::demo("ecdsa-p256");
    c.externalize();
    // admin.conf: separate cert and key files; scheduler.conf: one combined PEM (like
    // kubelet-client-current.pem).
    let files = c.kube.join("users");
    std::fs::create_dir_all(&files).unwrap();
    let (acrt, akey) = (files.join("admin.crt"), files.join("admin.key"));
    std::fs::write(&acrt, c.installed_cert_pem("admin.conf")).unwrap();
    std::fs::write(&akey, c.installed_key_pem("admin.conf")).unwrap();
    reference_files(&c.kube.join("admin.conf"), &acrt, &akey);
    let spem = files.join("scheduler.pem");
    std::fs::write(
        &spem,
        c.installed_cert_pem("scheduler.conf") + &c.installed_key_pem("scheduler.conf"),
    )
    .unwrap();
    reference_files(&c.kube.join("scheduler.conf"), &spem, &spem);
    let admin_conf = std::fs::read(c.kube.join("admin.conf")).unwrap();

    c.ok(&[
        "csr",
        "export",
        "admin.conf",
        "scheduler.conf",
        "--csr-dir",
        c.csr_dir(),
    ]);
    let cas = openssl_cas(&c, "");
    for n in ["admin.conf", "scheduler.conf"] {
        cas[&CaId::Ca].sign(
            &c.csr.join(format!("{n}.csr")),
            "client",
            &c.csr.join(format!("{n}.crt")),
            &SignOpts::default(),
        );
    }
    let v = c.json(&[
        "csr",
        "import",
        "admin.conf",
        "scheduler.conf",
        "--csr-dir",
        c.csr_dir(),
        "-o",
        "json",
    ]);
    assert_eq!(
        item(&v, "admin.conf")["files"],
        serde_json::json!([akey.to_str().unwrap(), acrt.to_str().unwrap()])
    );
    assert_eq!(
        item(&v, "scheduler.conf")["files"],
        serde_json::json!([spem.to_str().unwrap()])
    );
    // The kubeconfig itself did not need to change.
    assert_eq!(
        std::fs::read(c.kube.join("admin.conf")).unwrap(),
        admin_conf
    );
    assert_eq!(
        std::fs::read(&acrt).unwrap(),
        std::fs::read(c.csr.join("admin.conf.crt")).unwrap()
    );
    assert_eq!(mode(&akey), 0o600);
    assert_eq!(mode(&spem), 0o600);
    let combined = std::fs::read_to_string(&spem).unwrap();
    assert!(combined.contains("-----BEGIN CERTIFICATE-----"));
    assert!(combined.contains("-----BEGIN EC PRIVATE KEY-----"));
    let ca = c.pki.join("ca.crt");
    for f in [&acrt, &spem] {
        let out = openssl(&[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            ca.to_str().unwrap(),
            f.to_str().unwrap(),
        ]);
        assert!(out.contains(": OK"), "{out}");
    }
    let report = c.json(&["check", "-o", "json"]);
    let signed = parse_pem_bundle(&std::fs::read(c.csr.join("scheduler.conf.crt")).unwrap())
        .unwrap()
        .info
        .not_after;
    assert_eq!(
        item(&report, "scheduler.conf")["expirationDate"]
            .as_str()
            .unwrap(),
        kubecert::timefmt::rfc3339(signed)
    );
    // Files a kubeconfig references are live files too: a CSR dir where a target would land
    // on one (here the key is named admin.conf.key) is refused before anything is written.
    std::fs::copy(c.csr.join("admin.conf.key"), c.tmp.path().join("saved.key")).unwrap();
    std::fs::rename(&akey, files.join("admin.conf.key")).unwrap();
    reference_files(
        &c.kube.join("admin.conf"),
        &acrt,
        &files.join("admin.conf.key"),
    );
    let before = hash_tree(&c.kube);
    let o = c.run(&[
        "csr",
        "export",
        "admin.conf",
        "--csr-dir",
        files.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("pass --csr-dir"));
    assert_eq!(hash_tree(&c.kube), before);
}

#[test]
fn copies_of_the_ca_after_the_leaf_are_installed_once() {
    // Issue 12 item 9: 999 junk certificates after the leaf were copied into the installed
    // file. Copies of the CA are accepted as chain, but written once.
    let (c, _) = exported_and_signed("ecdsa-p256");
    let ca_pem = std::fs::read_to_string(c.pki.join("ca.crt")).unwrap();
    let signed = c.csr.join("apiserver.crt");
    let mut bundle = std::fs::read_to_string(&signed).unwrap();
    for _ in 0..50 {
        bundle.push_str(&ca_pem);
    }
    std::fs::write(&signed, &bundle).unwrap();
    c.ok(&["csr", "import", "apiserver", "--csr-dir", c.csr_dir()]);
    let installed = std::fs::read_to_string(c.pki.join("apiserver.crt")).unwrap();
    assert_eq!(installed.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(installed.ends_with(&ca_pem));
}
