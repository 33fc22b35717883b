//! `kubecert renew` end to end, verified with openssl (not with kubecert's own parser).

mod common;
use common::*;
use std::path::{Path, PathBuf};

const LEAVES: &[(&str, &str)] = &[
    ("apiserver", "ca"),
    ("apiserver-kubelet-client", "ca"),
    ("apiserver-etcd-client", "etcd/ca"),
    ("front-proxy-client", "front-proxy-ca"),
    ("etcd/server", "etcd/ca"),
    ("etcd/peer", "etcd/ca"),
    ("etcd/healthcheck-client", "etcd/ca"),
];
const KUBECONFIGS: &[&str] = &[
    "admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
    "super-admin.conf",
];

fn ossl_field(cert: &Path, args: &[&str]) -> String {
    let mut a = vec!["x509", "-in", cert.to_str().unwrap(), "-noout"];
    a.extend_from_slice(args);
    let (okk, out) = openssl_status(&a);
    assert!(okk, "{out}");
    out
}

fn pubkey_of_cert(cert: &Path) -> String {
    ossl_field(cert, &["-pubkey"])
}

fn pubkey_of_key(key: &Path) -> String {
    let (okk, out) = openssl_status(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    assert!(okk, "{out}");
    out
}

fn not_after_epoch(cert: &Path) -> i64 {
    let out = ossl_field(cert, &["-enddate", "-dateopt", "iso_8601"]);
    let s = out.trim().trim_start_matches("notAfter=").replace(' ', "T");
    kubecert::timefmt::parse_rfc3339(&s).unwrap()
}

/// Subject, SANs and EKU as openssl prints them.
fn attributes(cert: &Path) -> String {
    // One extension at a time: their order inside the certificate carries no meaning.
    let mut s = ossl_field(cert, &["-subject", "-nameopt", "RFC2253"]);
    // kubeadm sorts DNS SANs on renewal, so compare SANs as a set.
    let san = ossl_field(cert, &["-ext", "subjectAltName"]);
    let mut lines = san.lines();
    if let (Some(h), Some(v)) = (lines.next(), lines.next()) {
        let mut items: Vec<&str> = v.trim().split(", ").collect();
        items.sort();
        s += &format!("{h}\n    {}\n", items.join(", "));
    } else {
        s += &san;
    }
    s += &ossl_field(cert, &["-ext", "extendedKeyUsage"]);
    s
}

fn strip_cred_lines(text: &str) -> String {
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("client-certificate-data:") || t.starts_with("client-key-data:"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

struct Snapshot {
    attrs: Vec<(String, String)>,
    pubkeys: Vec<(String, String)>,
    kubeconfigs: Vec<(String, String)>,
}

fn snapshot(cert_dir: &Path, kc_dir: &Path, tmp: &Path) -> Snapshot {
    let mut s = Snapshot {
        attrs: vec![],
        pubkeys: vec![],
        kubeconfigs: vec![],
    };
    for (leaf, _) in LEAVES {
        let crt = cert_dir.join(format!("{leaf}.crt"));
        if crt.exists() {
            s.attrs.push((leaf.to_string(), attributes(&crt)));
            s.pubkeys.push((leaf.to_string(), pubkey_of_cert(&crt)));
        }
    }
    for kc in KUBECONFIGS {
        let p = kc_dir.join(kc);
        if p.exists() {
            let pem = tmp.join(format!("{kc}.pem"));
            kubeconfig_cert(&p, &pem);
            s.attrs.push((kc.to_string(), attributes(&pem)));
            s.pubkeys.push((kc.to_string(), pubkey_of_cert(&pem)));
            s.kubeconfigs
                .push((kc.to_string(), std::fs::read_to_string(&p).unwrap()));
        }
    }
    s
}

/// The core acceptance check for a renewed PKI.
fn verify_renewed(cert_dir: &Path, kc_dir: &Path, before: &Snapshot, start: i64, validity: i64) {
    let tmp = tempfile::tempdir().unwrap();
    let after = snapshot(cert_dir, kc_dir, tmp.path());
    assert_eq!(before.attrs, after.attrs, "subject/SAN/EKU changed");
    for ((n, a), (_, b)) in before.pubkeys.iter().zip(after.pubkeys.iter()) {
        assert_ne!(a, b, "{n}: key did not change");
    }
    for (leaf, ca) in LEAVES {
        let crt = cert_dir.join(format!("{leaf}.crt"));
        if !crt.exists() {
            continue;
        }
        let ca_crt = cert_dir.join(format!("{ca}.crt"));
        let (okk, out) = openssl_status(&[
            "verify",
            "-CAfile",
            ca_crt.to_str().unwrap(),
            crt.to_str().unwrap(),
        ]);
        assert!(okk, "{leaf}: {out}");
        let key = cert_dir.join(format!("{leaf}.key"));
        assert_eq!(
            pubkey_of_cert(&crt),
            pubkey_of_key(&key),
            "{leaf}: key does not match"
        );
        let key_text = std::fs::read_to_string(&key).unwrap();
        assert!(
            key_text.starts_with("-----BEGIN RSA PRIVATE KEY-----")
                || key_text.starts_with("-----BEGIN EC PRIVATE KEY-----"),
            "{leaf}: key not written as kubeadm writes it"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let na = not_after_epoch(&crt);
        let ca_na = not_after_epoch(&ca_crt);
        let expect = (start + validity).min(ca_na);
        assert!(
            (na - expect).abs() <= 120,
            "{leaf}: NotAfter {na} expected ~{expect}"
        );
    }
    let ca_crt = cert_dir.join("ca.crt");
    for (kc, old_text) in &before.kubeconfigs {
        let p = kc_dir.join(kc);
        let pem = tmp.path().join(format!("{kc}.new.pem"));
        kubeconfig_cert(&p, &pem);
        let (okk, out) = openssl_status(&[
            "verify",
            "-CAfile",
            ca_crt.to_str().unwrap(),
            pem.to_str().unwrap(),
        ]);
        assert!(okk, "{kc}: {out}");
        let keyf = tmp.path().join(format!("{kc}.key"));
        kubeconfig_key(&p, &keyf);
        assert_eq!(
            pubkey_of_cert(&pem),
            pubkey_of_key(&keyf),
            "{kc}: key mismatch"
        );
        // Everything but the credentials is byte-identical (the CA data equals ca.crt here).
        let new_text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            strip_cred_lines(old_text),
            strip_cred_lines(&new_text),
            "{kc}: other fields changed"
        );
    }
}

fn cas_and_sa(cert_dir: &Path) -> Vec<(String, Vec<u8>)> {
    [
        "ca.crt",
        "ca.key",
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "etcd/ca.crt",
        "etcd/ca.key",
        "sa.key",
        "sa.pub",
    ]
    .iter()
    .filter_map(|f| {
        std::fs::read(cert_dir.join(f))
            .ok()
            .map(|b| (f.to_string(), b))
    })
    .collect()
}

fn fixture_copy(name: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dst = t.path().join("pki");
    copy_dir(&fixtures().join(name), &dst);
    let kc = dst.join("kubeconfig");
    (t, dst, kc)
}

fn now() -> i64 {
    kubecert::timefmt::now_unix()
}

#[test]
fn renew_all_on_real_fixtures() {
    for f in [
        "pki-zetaoss-2024",
        "pki-ebenneil-2023",
        "pki-maxxmoney-2019",
        "pki-devopsyuva-2018",
        "pki-nielslemmens-2017",
    ] {
        let (t, cert_dir, kc_dir) = fixture_copy(f);
        let before = snapshot(&cert_dir, &kc_dir, t.path());
        let cas = cas_and_sa(&cert_dir);
        let kubelet = std::fs::read(kc_dir.join("kubelet.conf")).ok();
        let start = now();
        let mut args = vec![
            "renew",
            "all",
            "--cert-dir",
            cert_dir.to_str().unwrap(),
            "--kubeconfig-dir",
            kc_dir.to_str().unwrap(),
        ];
        // issue 13: nielslemmens has no kubeconfigs; missing = not renewed = exit 4 unless
        // accepted (before, ok() passed on exit 0).
        if f == "pki-nielslemmens-2017" {
            args.extend([
                "--allow-unrenewable",
                "admin.conf,controller-manager.conf,scheduler.conf",
            ]);
        }
        let out = ok(&args);
        assert!(
            out.contains("certificate for serving the Kubernetes API renewed"),
            "{out}"
        );
        assert!(out.contains("Done renewing certificates."), "{out}");
        verify_renewed(&cert_dir, &kc_dir, &before, start, 365 * 86400);
        assert_eq!(cas, cas_and_sa(&cert_dir), "{f}: CA or sa files changed");
        assert_eq!(
            kubelet,
            std::fs::read(kc_dir.join("kubelet.conf")).ok(),
            "{f}: kubelet.conf touched"
        );
    }
}

#[test]
fn renew_caps_at_ca_and_reports_it() {
    // nielslemmens' CA expires 2027-08-19, before now + 1y.
    let (_t, cert_dir, kc_dir) = fixture_copy("pki-nielslemmens-2017");
    let out = ok(&[
        "renew",
        "apiserver",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--kubeconfig-dir",
        kc_dir.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let item = &v["certificates"][0];
    assert_eq!(item["cappedAtCa"], true, "{v}");
    assert_eq!(
        not_after_epoch(&cert_dir.join("apiserver.crt")),
        not_after_epoch(&cert_dir.join("ca.crt"))
    );
}

#[test]
fn renew_demo_rsa_and_ecdsa() {
    for alg in ["rsa-2048", "ecdsa-p256", "ecdsa-p384"] {
        let (t, root) = demo(&["--key-algorithm", alg, "--expires-in", "10d"]);
        let cert_dir = root.join("pki");
        let before = snapshot(&cert_dir, &root, t.path());
        let cas = cas_and_sa(&cert_dir);
        let start = now();
        ok(&[
            "renew",
            "all",
            "--cert-dir",
            cert_dir.to_str().unwrap(),
            "--kubeconfig-dir",
            root.to_str().unwrap(),
            "--validity",
            "100d",
        ]);
        verify_renewed(&cert_dir, &root, &before, start, 100 * 86400);
        assert_eq!(cas, cas_and_sa(&cert_dir));
        let text = ossl_field(&cert_dir.join("apiserver.crt"), &["-text"]);
        let expect = match alg {
            "rsa-2048" => "Public-Key: (2048 bit)",
            "ecdsa-p256" => "NIST CURVE: P-256",
            _ => "NIST CURVE: P-384",
        };
        assert!(text.contains(expect), "{alg}: {text}");
    }
}

#[test]
fn key_algorithm_override() {
    let (_t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    ok(&[
        "renew",
        "apiserver",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--key-algorithm",
        "ecdsa-p256",
    ]);
    let text = ossl_field(&cert_dir.join("apiserver.crt"), &["-text"]);
    assert!(text.contains("NIST CURVE: P-256"));
    let (okk, out) = openssl_status(&[
        "verify",
        "-CAfile",
        cert_dir.join("ca.crt").to_str().unwrap(),
        cert_dir.join("apiserver.crt").to_str().unwrap(),
    ]);
    assert!(okk, "{out}");
}

#[test]
fn external_ca_rows_skipped_with_kubeadm_message() {
    let (_t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    std::fs::rename(cert_dir.join("ca.key"), root.join("ca.key.offline")).unwrap();
    std::fs::remove_file(cert_dir.join("front-proxy-client.crt")).unwrap();
    let before_api = std::fs::read(cert_dir.join("apiserver.crt")).unwrap();
    let o = kubecert(&[
        "renew",
        "all",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ]);
    // issue 13: the due rows that could not be renewed fail the run (was: exit 0); the
    // others are renewed and kubeadm's lines kept.
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "error: 7 certificates due for renewal were not renewed: admin.conf (externally managed: {} is absent), apiserver (",
            cert_dir.join("ca.key").display()
        )) && err.contains(&format!(
            ", front-proxy-client (missing: {} does not exist), ",
            cert_dir.join("front-proxy-client.crt").display()
        )),
        "{err}"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(
            "Detected external ca, certificate for serving the Kubernetes API can't be renewed"
        ),
        "{out}"
    );
    assert!(out.contains("Detected external ca, certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself can't be renewed"), "{out}");
    assert!(
        out.contains("MISSING! certificate for the front proxy client"),
        "{out}"
    );
    assert!(
        out.contains("certificate for serving etcd renewed"),
        "{out}"
    );
    assert_eq!(
        before_api,
        std::fs::read(cert_dir.join("apiserver.crt")).unwrap()
    );
    let check = Check::dirs(&cert_dir, &root).args(&["-o", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&check).unwrap();
    for c in v["certificates"].as_array().unwrap() {
        let ext = c["caName"] == "ca";
        assert_eq!(c["externallyManaged"], ext, "{c}");
    }
}

#[test]
fn within_twice_renews_nothing_second_time_and_dry_run_writes_nothing() {
    let (_t, root) = demo(&["--expires-in", "20d"]);
    let cert_dir = root.join("pki");
    let args = |extra: &[&'static str]| {
        let mut a: Vec<String> = vec![
            "renew".into(),
            "all".into(),
            "--cert-dir".into(),
            cert_dir.display().to_string(),
            "--kubeconfig-dir".into(),
            root.display().to_string(),
            "--within".into(),
            "30d".into(),
            "-o".into(),
            "json".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let h0 = hash_tree(&root);
    let dry = ok(&args(&["--dry-run"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert_eq!(h0, hash_tree(&root), "dry-run changed bytes");
    let v: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert!(
        v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["action"] == "would-renew"),
        "{v}"
    );
    let first = ok(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["changed"], true);
    assert_eq!(
        v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["action"] == "renewed")
            .count(),
        11
    );
    let h1 = hash_tree(&root);
    let second = ok(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    let v: serde_json::Value = serde_json::from_str(&second).unwrap();
    assert_eq!(v["changed"], false, "{v}");
    assert!(v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["action"] == "skipped"));
    assert_eq!(h1, hash_tree(&root), "second run changed bytes");
}

#[test]
fn repeated_organizations_kept_in_order() {
    // A client cert with two O= groups (two RBAC groups), made by openssl, signed by the CA.
    let (t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    let key = cert_dir.join("apiserver-kubelet-client.key");
    let csr = t.path().join("x.csr");
    let ext = t.path().join("ext.cnf");
    std::fs::write(&ext, "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\nsubjectAltName=URI:spiffe://cluster/kubelet-client,email:ops@example.com\n").unwrap();
    let (okk, out) = openssl_status(&[
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        "/O=system:masters/O=kubeadm:cluster-admins/OU=lab/CN=kube-apiserver-kubelet-client",
        "-out",
        csr.to_str().unwrap(),
    ]);
    assert!(okk, "{out}");
    let crt = cert_dir.join("apiserver-kubelet-client.crt");
    let (okk, out) = openssl_status(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        cert_dir.join("ca.crt").to_str().unwrap(),
        "-CAkey",
        cert_dir.join("ca.key").to_str().unwrap(),
        "-set_serial",
        "7",
        "-days",
        "30",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        crt.to_str().unwrap(),
    ]);
    assert!(okk, "{out}");
    let before = attributes(&crt);
    assert!(
        before.contains(
            "CN=kube-apiserver-kubelet-client,OU=lab,O=kubeadm:cluster-admins,O=system:masters"
        ),
        "{before}"
    );
    // Not what kubeadm issues (OU, a third-party O, URI/email SANs on a client cert):
    // refused unless explicitly overridden (issue 12 item 2).
    let h = hash_tree(&root);
    let (code, _, err) = renew_on(&root, &["apiserver-kubelet-client"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("refusing to renew apiserver-kubelet-client: ")
            && err.contains("subject attribute")
            && err.contains(
                "SAN URI:spiffe://cluster/kubelet-client (a client certificate carries no SANs)"
            ),
        "{err}"
    );
    assert_eq!(h, hash_tree(&root));
    ok(&[
        "renew",
        "apiserver-kubelet-client",
        "--allow-foreign-identity",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ]);
    assert_eq!(before, attributes(&crt));
    assert!(ossl_field(&crt, &["-serial"]).trim() != "serial=07");
}

#[test]
fn expired_ca_refused_unless_allowed() {
    let (_t, root) = demo(&["--now", "2010-01-01T00:00:00Z"]);
    let cert_dir = root.join("pki");
    let h = hash_tree(&root);
    let o = kubecert(&[
        "renew",
        "all",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ]);
    assert_fails(
        &o,
        1,
        "ca has expired (NotAfter 2019-12-30T00:00:00Z); refusing to sign with it (pass --allow-expired-ca to override)",
    );
    assert_eq!(h, hash_tree(&root));
    // With the override it renews (capped at the expired CA's NotAfter, so the run reports it).
    let o = kubecert(&[
        "renew",
        "apiserver",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--allow-expired-ca",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn unknown_name_gets_kubeadms_error() {
    let (_t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    for bad in ["kubelet.conf", "ca", "nonsense"] {
        let o = kubecert(&[
            "renew",
            bad,
            "--cert-dir",
            cert_dir.to_str().unwrap(),
            "--kubeconfig-dir",
            root.to_str().unwrap(),
        ]);
        assert_fails(
            &o,
            1,
            &format!("error: {bad} is not a valid certificate for this cluster"),
        );
    }
}

#[test]
fn bad_input_changes_nothing() {
    let (_t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    // Garbage PEM in one cert: the whole run is refused before anything is written.
    std::fs::write(
        cert_dir.join("front-proxy-client.crt"),
        b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let h = hash_tree(&root);
    let o = kubecert(&[
        "renew",
        "all",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ]);
    assert_fails(&o, 1, "front-proxy-client.crt: invalid certificate");
    assert_eq!(h, hash_tree(&root));
    // Truncated kubeconfig.
    let (_t2, root2) = demo(&[]);
    let adm = root2.join("admin.conf");
    let text = std::fs::read_to_string(&adm).unwrap();
    std::fs::write(&adm, &text[..text.len() / 3]).unwrap();
    let h = hash_tree(&root2);
    let o = kubecert(&[
        "renew",
        "all",
        "--cert-dir",
        root2.join("pki").to_str().unwrap(),
        "--kubeconfig-dir",
        root2.to_str().unwrap(),
    ]);
    assert_fails(&o, 1, "invalid kubeconfig");
    assert_fails(&o, 1, "admin.conf");
    assert_eq!(h, hash_tree(&root2));
    // check on the same input: a per-row problem, no crash.
    let out = Check::dirs(&root2.join("pki"), &root2)
        .args(&["-o", "json"])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let adm = v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "admin.conf")
        .unwrap();
    assert_eq!(adm["detail"]["problems"][0]["code"], "kubeconfig-invalid");
    // A symlinked cert is refused for writing.
    let (_t3, root3) = demo(&[]);
    let c3 = root3.join("pki");
    std::fs::rename(c3.join("apiserver.crt"), root3.join("real.crt")).unwrap();
    std::os::unix::fs::symlink(root3.join("real.crt"), c3.join("apiserver.crt")).unwrap();
    let h = hash_tree(&root3);
    let o = kubecert(&[
        "renew",
        "all",
        "--cert-dir",
        c3.to_str().unwrap(),
        "--kubeconfig-dir",
        root3.to_str().unwrap(),
    ]);
    assert_fails(&o, 1, "refusing symlink at ");
    assert_fails(&o, 1, "apiserver.crt");
    assert_eq!(h, hash_tree(&root3));
}

#[test]
fn kubeconfig_with_file_references_renews_the_files() {
    let (t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    // Move admin.conf's credentials into files referenced relatively.
    let adm = root.join("admin.conf");
    kubeconfig_cert(&adm, &root.join("admin.crt"));
    kubeconfig_key(&adm, &root.join("admin.key"));
    let text = std::fs::read_to_string(&adm).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("client-certificate-data:") {
                "    client-certificate: admin.crt".to_string()
            } else if l.trim_start().starts_with("client-key-data:") {
                "    client-key: admin.key".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    std::fs::write(&adm, &text).unwrap();
    let old_pub = pubkey_of_cert(&root.join("admin.crt"));
    ok(&[
        "renew",
        "admin.conf",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&adm).unwrap(),
        text,
        "kubeconfig itself unchanged"
    );
    let new_pub = pubkey_of_cert(&root.join("admin.crt"));
    assert_ne!(old_pub, new_pub);
    assert_eq!(new_pub, pubkey_of_key(&root.join("admin.key")));
    let (okk, out) = openssl_status(&[
        "verify",
        "-CAfile",
        cert_dir.join("ca.crt").to_str().unwrap(),
        root.join("admin.crt").to_str().unwrap(),
    ]);
    assert!(okk, "{out}");
    drop(t);
}

#[test]
fn chain_in_cert_file_is_kept_after_the_new_leaf() {
    let (_t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    let crt = cert_dir.join("apiserver.crt");
    let mut bundle = std::fs::read(&crt).unwrap();
    bundle.extend(std::fs::read(cert_dir.join("ca.crt")).unwrap());
    std::fs::write(&crt, &bundle).unwrap();
    let check = Check::dirs(&cert_dir, &root).args(&["-o", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&check).unwrap();
    let api = v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "apiserver")
        .unwrap();
    assert_eq!(api["detail"]["chainLength"], 1);
    ok(&[
        "renew",
        "apiserver",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&crt).unwrap();
    assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(text.ends_with(&std::fs::read_to_string(cert_dir.join("ca.crt")).unwrap()));
    let (okk, out) = openssl_status(&[
        "verify",
        "-CAfile",
        cert_dir.join("ca.crt").to_str().unwrap(),
        crt.to_str().unwrap(),
    ]);
    assert!(okk, "{out}");
}

/// Makes a leaf with openssl: a new RSA key (written to `key_out`), subject `subj`, the given
/// extension lines, signed by `ca` (crt, key) or self-signed when `ca` is None.
fn openssl_leaf(
    tmp: &Path,
    ca: Option<(&Path, &Path)>,
    subj: &str,
    ext: &str,
    crt_out: &Path,
    key_out: &Path,
) {
    let csr = tmp.join("leaf.csr");
    let extf = tmp.join("leaf-ext.cnf");
    std::fs::write(&extf, ext).unwrap();
    let (okk, out) = openssl_status(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key_out.to_str().unwrap(),
        "-subj",
        subj,
        "-out",
        csr.to_str().unwrap(),
    ]);
    assert!(okk, "{out}");
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-days",
        "30",
        "-set_serial",
        "9",
        "-extfile",
        extf.to_str().unwrap(),
        "-out",
        crt_out.to_str().unwrap(),
    ];
    match ca {
        Some((c, k)) => args.extend(["-CA", c.to_str().unwrap(), "-CAkey", k.to_str().unwrap()]),
        None => args.extend(["-signkey", key_out.to_str().unwrap()]),
    }
    let (okk, out) = openssl_status(&args);
    assert!(okk, "{out}");
}

fn foreign_ca(tmp: &Path) -> (PathBuf, PathBuf) {
    let (crt, key) = (tmp.join("foreign-ca.crt"), tmp.join("foreign-ca.key"));
    let (okk, out) = openssl_status(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        crt.to_str().unwrap(),
        "-subj",
        "/CN=foreign-ca",
        "-days",
        "30",
    ]);
    assert!(okk, "{out}");
    (crt, key)
}

const SERVER_EXT: &str = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:evil.example.com\n";
const CLIENT_EXT: &str = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n";

/// Runs `renew <names> ARGS` on a demo root; returns (exit code, stdout, stderr).
fn renew_on(root: &Path, args: &[&str]) -> (i32, String, String) {
    let cert_dir = root.join("pki");
    let mut a = vec!["renew"];
    a.extend_from_slice(args);
    a.extend([
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ]);
    let o = kubecert(&a);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn cert_of_a_foreign_ca_over_apiserver_is_refused() {
    // Issue 12 item 2(b): a foreign CA's cert with DNS:evil.example.com copied over apiserver.crt.
    let (t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    let (fca, fkey) = foreign_ca(t.path());
    openssl_leaf(
        t.path(),
        Some((&fca, &fkey)),
        "/CN=kube-apiserver",
        SERVER_EXT,
        &cert_dir.join("apiserver.crt"),
        &t.path().join("evil.key"),
    );
    let h = hash_tree(&root);
    let (code, out, err) = renew_on(&root, &["all"]);
    assert_eq!(code, 1, "{out}{err}");
    let crt = cert_dir.join("apiserver.crt");
    assert!(
        err.contains(&format!(
            "error: refusing to renew apiserver: {} was not issued by ca (its signature does not verify with the public key of {}; its issuer is \"CN=foreign-ca\")",
            crt.display(),
            cert_dir.join("ca.crt").display()
        )),
        "{err}"
    );
    assert!(err.contains("--allow-foreign-identity"), "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(h, hash_tree(&root), "tree changed");
}

#[test]
fn self_signed_admin_kubeconfig_is_refused_unless_overridden() {
    // Issue 12 item 2(a): admin.conf whose client cert is self-signed O=system:masters.
    let (t, root) = demo(&[]);
    let adm = root.join("admin.conf");
    let (crt, key) = (t.path().join("self.crt"), t.path().join("self.key"));
    openssl_leaf(
        t.path(),
        None,
        "/O=system:masters/CN=kubernetes-admin",
        CLIENT_EXT,
        &crt,
        &key,
    );
    use base64::Engine;
    let b64 =
        |p: &Path| base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap());
    let text: String = std::fs::read_to_string(&adm)
        .unwrap()
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("client-certificate-data:") {
                format!("    client-certificate-data: {}", b64(&crt))
            } else if l.trim_start().starts_with("client-key-data:") {
                format!("    client-key-data: {}", b64(&key))
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    std::fs::write(&adm, text).unwrap();
    let h = hash_tree(&root);
    let (code, out, err) = renew_on(&root, &["admin.conf"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!(
            "error: refusing to renew admin.conf: {} was not issued by ca (its signature does not verify with the public key of {}; its issuer is \"O=system:masters, CN=kubernetes-admin\")",
            adm.display(),
            root.join("pki/ca.crt").display()
        )),
        "{err}"
    );
    assert_eq!(h, hash_tree(&root), "tree changed");
    // The dry run refuses the same way.
    let (code, _, err2) = renew_on(&root, &["admin.conf", "--dry-run"]);
    assert_eq!(code, 1);
    assert_eq!(err, err2);
    // The explicit override renews it, says so, and logs a warning.
    let (code, out, err) = renew_on(
        &root,
        &["admin.conf", "--allow-foreign-identity", "-o", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let reason = v["certificates"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "renewed despite a foreign identity (allow_foreign_identity): it was not issued by ca"
        ),
        "{reason}"
    );
    assert!(
        err.contains("WARN")
            && err.contains("renewing a certificate kubeadm would not have issued"),
        "{err}"
    );
}

#[test]
fn ca_issued_cert_with_a_wrong_identity_is_refused() {
    let (t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    let ca = (cert_dir.join("ca.crt"), cert_dir.join("ca.key"));
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "apiserver-kubelet-client",
            "/O=system:masters/O=evil:group/CN=kube-apiserver-kubelet-client",
            CLIENT_EXT,
            "apiserver-kubelet-client.crt",
            "is not what kubeadm issues for apiserver-kubelet-client: O=system:masters,O=evil:group (expected O=kubeadm:cluster-admins or O=system:masters)",
        ),
        (
            "apiserver",
            "/CN=kube-apiserver",
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:kubernetes\n",
            "apiserver.crt",
            "is not what kubeadm issues for apiserver: extended key usages [clientAuth, serverAuth] (expected [serverAuth] for a server certificate)",
        ),
        (
            "front-proxy-client",
            "/CN=front-proxy-client",
            "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\nsubjectAltName=DNS:evil.example.com,URI:spiffe://x\n",
            "front-proxy-client.crt",
            "is not what kubeadm issues for front-proxy-client: SAN DNS:evil.example.com (a client certificate carries no SANs); SAN URI:spiffe://x (a client certificate carries no SANs)",
        ),
        (
            "apiserver",
            "/CN=system:kube-controller-manager",
            "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
            "apiserver.crt",
            "is not what kubeadm issues for apiserver: CN=\"system:kube-controller-manager\" (expected \"kube-apiserver\")",
        ),
    ];
    for (name, subj, ext, file, want) in cases {
        let (_t2, root) = demo(&[]);
        let cert_dir = root.join("pki");
        let ca = (cert_dir.join("ca.crt"), cert_dir.join("ca.key"));
        let ca = if *name == "front-proxy-client" {
            (
                cert_dir.join("front-proxy-ca.crt"),
                cert_dir.join("front-proxy-ca.key"),
            )
        } else {
            ca
        };
        let base = file.trim_end_matches(".crt");
        openssl_leaf(
            t.path(),
            Some((&ca.0, &ca.1)),
            subj,
            ext,
            &cert_dir.join(file),
            &cert_dir.join(format!("{base}.key")),
        );
        let h = hash_tree(&root);
        let (code, out, err) = renew_on(&root, &[name]);
        assert_eq!(code, 1, "{name}: {out}{err}");
        let msg = format!(
            "error: refusing to renew {name}: {} {want} (pass --allow-foreign-identity to override)\n",
            cert_dir.join(file).display()
        );
        assert!(err.ends_with(&msg), "{name}:\n{err}\nwanted {msg}");
        assert_eq!(h, hash_tree(&root), "{name}: tree changed");
    }
    drop(ca);
}

#[test]
fn not_yet_valid_ca_refused_like_an_expired_one() {
    // Issue 12 item 7: the CAs start in 2030; renewing now would make certs nobody verifies.
    let (_t, root) = demo(&["--now", "2030-01-01T00:00:00Z"]);
    let h = hash_tree(&root);
    let (code, out, err) = renew_on(&root, &["apiserver", "--now", "2026-12-01T00:00:00Z"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        err,
        "error: ca is not yet valid (NotBefore 2029-12-31T23:55:00Z); refusing to sign with it (pass --allow-expired-ca to override)\n"
    );
    assert_eq!(h, hash_tree(&root));
    let (code, _, err) = renew_on(
        &root,
        &[
            "apiserver",
            "--now",
            "2026-12-01T00:00:00Z",
            "--allow-expired-ca",
        ],
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn rpc_renew_with_empty_names_is_invalid_params() {
    // Issue 12 item 8: `names: []` renewed everything.
    use std::io::Write;
    use std::process::{Command, Stdio};
    let (_t, root) = demo(&[]);
    let h = hash_tree(&root);
    let req = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "renew",
        "params": {"names": [], "cert_dir": root.join("pki").to_str().unwrap(),
                   "kubeconfig_dir": root.to_str().unwrap()}
    });
    let mut child = Command::new(bin())
        .args(["serve", "--stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{req}").unwrap();
    let o = child.wait_with_output().unwrap();
    let line = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["error"]["code"], -32602, "{v}");
    assert_eq!(
        v["error"]["data"]["cause"], "names must not be empty: give inventory names or [\"all\"]",
        "{v}"
    );
    assert_eq!(h, hash_tree(&root));
}

#[test]
fn dry_run_of_a_kubeconfig_says_what_would_change() {
    // Issue 12 item 10: "would be renewed" then "nothing would change".
    let (_t, root) = demo(&[]);
    let h = hash_tree(&root);
    let (code, out, err) = renew_on(&root, &["admin.conf", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("nothing would change"), "{out}");
    assert!(
        out.ends_with(
            "[dry-run] 1 certificate would be renewed; no component would need a restart\n"
        ),
        "{out}"
    );
    assert_eq!(h, hash_tree(&root));
    let (_, out, _) = renew_on(&root, &["admin.conf"]);
    assert!(
        out.contains("\n1 certificate renewed; no component needs a restart.\n"),
        "{out}"
    );
}

#[test]
fn missing_or_broken_ca_says_why() {
    // Issue 12 item 10: "couldn't load ca certificate authority from DIR" gave no reason.
    let (_t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    std::fs::remove_file(cert_dir.join("front-proxy-ca.crt")).unwrap();
    let h = hash_tree(&root);
    let (code, _, err) = renew_on(&root, &["front-proxy-client"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "error: couldn't load front-proxy-ca certificate authority from {}: {} does not exist\n",
            cert_dir.display(),
            cert_dir.join("front-proxy-ca.crt").display()
        )
    );
    assert_eq!(h, hash_tree(&root));
    std::fs::write(
        cert_dir.join("front-proxy-ca.crt"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let (code, _, err) = renew_on(&root, &["front-proxy-client"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!(
            "error: couldn't load front-proxy-ca certificate authority from {}: {}: ",
            cert_dir.display(),
            cert_dir.join("front-proxy-ca.crt").display()
        )),
        "{err}"
    );
    assert!(!err.contains("AAAA"), "{err}");
    assert!(!root.join("kubecert-backup").exists());
}

#[test]
fn unrelated_certificates_after_the_leaf_are_not_carried_over() {
    // Issue 12 item 9: junk after the leaf (a foreign CA, the CA twice) was copied into the
    // renewed file. Only the chain that verifies the new leaf (here: ca.crt once) is kept.
    let (t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    let crt = cert_dir.join("apiserver.crt");
    let (fca, _) = foreign_ca(t.path());
    let ca_pem = std::fs::read_to_string(cert_dir.join("ca.crt")).unwrap();
    let mut bundle = std::fs::read_to_string(&crt).unwrap();
    bundle.push_str(&ca_pem);
    bundle.push_str(&ca_pem);
    bundle.push_str(&std::fs::read_to_string(&fca).unwrap());
    std::fs::write(&crt, &bundle).unwrap();
    let (code, out, err) = renew_on(&root, &["apiserver", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["certificates"][0]["reason"].as_str().unwrap().ends_with(
            "; dropped 2 certificates that followed the leaf but are not its chain to ca"
        ),
        "{v}"
    );
    let text = std::fs::read_to_string(&crt).unwrap();
    assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2, "{text}");
    assert!(text.ends_with(&ca_pem));
}

/// The dry run and the real run fail alike (exit 1, the same stderr, starting with `want`),
/// and leave the tree as it was.
fn refused_alike(root: &Path, names: &[&str], want: &str) {
    let h = hash_tree(root);
    let mut dry = names.to_vec();
    dry.push("--dry-run");
    let (code, out, dry_err) = renew_on(root, &dry);
    assert_eq!(code, 1, "dry run: {out}");
    assert!(dry_err.starts_with(want), "{dry_err}\nwanted {want}");
    let (code, out, err) = renew_on(root, names);
    assert_eq!(
        (code, err.as_str()),
        (1, dry_err.as_str()),
        "real run: {out}"
    );
    assert_eq!(h, hash_tree(root), "tree changed");
}

#[test]
fn symlinked_etcd_dir_is_refused() {
    // Issue 12 item 9: a symlinked pki/etcd was written through.
    let (_t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    std::fs::rename(cert_dir.join("etcd"), root.join("etcd-elsewhere")).unwrap();
    std::os::unix::fs::symlink(root.join("etcd-elsewhere"), cert_dir.join("etcd")).unwrap();
    refused_alike(
        &root,
        &["etcd-server"],
        &format!(
            "error: refusing symlink at {}\n",
            cert_dir.join("etcd").display()
        ),
    );
}

#[test]
fn dry_run_fails_where_the_apply_fails() {
    // Issue 12 item 9: dry-run said OK for a symlinked file, a key path that is a directory,
    // and a JSON kubeconfig; the real run then failed.
    let (_t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    let key = cert_dir.join("front-proxy-client.key");
    std::fs::remove_file(&key).unwrap();
    std::fs::create_dir(&key).unwrap();
    refused_alike(
        &root,
        &["front-proxy-client"],
        &format!(
            "error: {}: is a directory; refusing to replace it",
            key.display()
        ),
    );
    assert!(!root.join("kubecert-backup").exists());

    let (_t, root) = demo(&[]);
    let crt = root.join("pki/apiserver.crt");
    std::fs::rename(&crt, root.join("real.crt")).unwrap();
    std::os::unix::fs::symlink(root.join("real.crt"), &crt).unwrap();
    refused_alike(
        &root,
        &["apiserver"],
        &format!("error: refusing symlink at {}\n", crt.display()),
    );

    // admin.conf as JSON (valid YAML; kubectl reads it; kubecert cannot rewrite it in place).
    let (_t, root) = demo(&[]);
    let adm = root.join("admin.conf");
    let data = |k: &str| {
        std::fs::read_to_string(&adm)
            .unwrap()
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{k}: ")).map(str::to_string))
            .unwrap()
    };
    let json = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "a@k",
        "clusters": [{"name": "kubernetes", "cluster": {
            "certificate-authority-data": data("certificate-authority-data"),
            "server": "https://127.0.0.1:6443"}}],
        "contexts": [{"name": "a@k", "context": {"cluster": "kubernetes", "user": "kubernetes-admin"}}],
        "users": [{"name": "kubernetes-admin", "user": {
            "client-certificate-data": data("client-certificate-data"),
            "client-key-data": data("client-key-data")}}],
    });
    std::fs::write(&adm, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    refused_alike(
        &root,
        &["admin.conf"],
        &format!(
            "error: invalid kubeconfig {}: cannot rewrite client-certificate-data: its value is not a single-line scalar\n",
            adm.display()
        ),
    );
}

#[test]
fn a_failed_run_leaves_no_backup_dir_and_no_journal() {
    // Issue 12 item 9: a run that failed after its backup left the backup dir behind (a full
    // disk never frees). A stray directory where the staged file goes makes staging fail.
    let (_t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    let stray = cert_dir.join("front-proxy-client.crt.kubecert-new");
    std::fs::create_dir(&stray).unwrap();
    let h = hash_tree(&root);
    let (code, out, err) = renew_on(&root, &["front-proxy-client", "apiserver"]);
    assert_eq!(code, 1, "{out}");
    // (How an I/O cause is printed is another helper's item; the path and cause are ours.)
    assert!(
        err.starts_with(&format!(
            "error: {}: File exists (os error 17)",
            stray.display()
        )),
        "{err}"
    );
    // Nothing changes: not even the (empty) backup root the failed run created.
    assert_eq!(h, hash_tree(&root), "tree changed");
    assert!(!root.join("kubecert-backup").exists());
    let left: Vec<String> = std::fs::read_dir(&cert_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".kubecert-journal") || n.ends_with(".kubecert-new"))
        .collect();
    assert_eq!(
        left,
        ["front-proxy-client.crt.kubecert-new"],
        "only the stray dir stays"
    );
}

#[test]
fn a_run_aborted_before_its_journal_leaves_no_pid_file() {
    // Issue 14: a run killed after its backup and before its journal left pki/.kubecert.pid
    // behind (the lock's Drop never ran), so the PKI dir differed from before the run.
    let (_t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    let h = hash_tree(&root);
    let o = std::process::Command::new(bin())
        .args(["renew", "apiserver", "--cert-dir"])
        .arg(&cert_dir)
        .arg("--kubeconfig-dir")
        .arg(&root)
        .env("KUBECERT_FAILPOINT", "after-backup")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(o.status.signal(), Some(6), "{:?} {err}", o.status);
    assert!(
        err.contains("kubecert: failpoint after-backup hit, aborting"),
        "{err}"
    );
    assert!(!cert_dir.join(".kubecert.pid").exists(), "stale pid file");
    // The journal (written before the backup) is what the next run recovers from: it
    // removes the partial backup, so the tree is exactly as before the run (but for the
    // empty backup root).
    assert!(cert_dir.join(".kubecert-journal.json").exists());
    let o = std::process::Command::new(bin())
        .args(["check", "--cert-dir"])
        .arg(&cert_dir)
        .arg("--kubeconfig-dir")
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let mut after = hash_tree(&root);
    after.remove("kubecert-backup/");
    assert_eq!(h, after, "tree changed");
}

/// issue 13: a due certificate that cannot be renewed (its CA key absent, its file missing)
/// fails the run (exit 4, the names on stderr, kubeadm's lines kept on stdout) unless the
/// user accepts it with `--allow-unrenewable NAME,...|all` (RPC `allow_unrenewable`).
/// super-admin.conf absent is normal (kubeadm < 1.29, joined nodes) and never fails.
#[test]
fn due_certificates_that_cannot_be_renewed_fail_the_run() {
    let (_t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    std::fs::rename(
        cert_dir.join("front-proxy-ca.key"),
        root.join("fp.key.offline"),
    )
    .unwrap();
    std::fs::remove_file(root.join("super-admin.conf")).unwrap();
    let fp_key = cert_dir.join("front-proxy-ca.key");
    let h = hash_tree(&root);
    let (code, out, err) = renew_on(&root, &["front-proxy-client"]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.contains("Detected external front-proxy-ca, certificate for the front proxy client can't be renewed"), "{out}");
    assert!(err.contains(&format!(
        "error: 1 certificate due for renewal was not renewed: front-proxy-client (externally managed: {} is absent); renew it by other means, or accept this with --allow-unrenewable front-proxy-client (or all)",
        fp_key.display()
    )), "{err}");
    assert_eq!(h, hash_tree(&root), "nothing was renewed");
    // Accepted explicitly: exit 0, same output.
    let (code, out, err) = renew_on(
        &root,
        &[
            "front-proxy-client",
            "--allow-unrenewable",
            "front-proxy-client",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Detected external front-proxy-ca"), "{out}");
    // Not due (outside --within): not a failure.
    let (code, out, err) = renew_on(&root, &["front-proxy-client", "--within", "30d"]);
    assert_eq!(code, 0, "{out}{err}");
    // all: the others are renewed, the run still fails, naming the one.
    let (code, out, err) = renew_on(&root, &["all", "--dry-run"]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(
        err.contains("1 certificate due for renewal was not renewed: front-proxy-client ("),
        "{err}"
    );
    assert!(!err.contains("super-admin.conf"), "{err}");
    // Wrong kubeconfig dir: the kubeconfigs are missing, not silently skipped.
    let wrong = root.join("nope");
    let o = kubecert(&[
        "renew",
        "all",
        "--dry-run",
        "--allow-unrenewable",
        "front-proxy-client",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--kubeconfig-dir",
        wrong.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains(&format!(
        "error: 3 certificates due for renewal were not renewed: admin.conf (missing: {0}/admin.conf does not exist), controller-manager.conf (missing: {0}/controller-manager.conf does not exist), scheduler.conf (missing: {0}/scheduler.conf does not exist); renew them by other means, or accept this with --allow-unrenewable admin.conf,controller-manager.conf,scheduler.conf (or all)",
        wrong.display()
    )), "{err}");
    // The RPC face: the same verdict in the result, accepted by `allow_unrenewable`.
    use std::io::Write;
    use std::process::{Command, Stdio};
    let req = |allow: serde_json::Value| {
        serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "renew",
            "params": {"names": ["front-proxy-client"], "dry_run": true,
                       "cert_dir": cert_dir.to_str().unwrap(),
                       "kubeconfig_dir": root.to_str().unwrap(),
                       "allow_unrenewable": allow}
        })
    };
    for (allow, want) in [
        (
            serde_json::json!([]),
            serde_json::json!(["front-proxy-client"]),
        ),
        (serde_json::json!(["all"]), serde_json::json!([])),
    ] {
        let mut child = Command::new(bin())
            .args(["serve", "--stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{}", req(allow)).unwrap();
        let o = child.wait_with_output().unwrap();
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
        assert_eq!(v["result"]["unrenewable"], want, "{v}");
    }
    assert_eq!(h, hash_tree(&root));
}

/// A kubeconfig whose credentials are files and whose embedded CA is not the cluster's
/// current one (here: the same certificate, base64 of the PEM with a blank line added) is
/// rewritten with the CA re-embedded, alongside its files, all in one backed-up transaction.
#[test]
fn file_referencing_kubeconfig_with_a_stale_embedded_ca_is_rewritten_and_backed_up() {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let (_t, root) = demo(&[]);
    let cert_dir = root.join("pki");
    let adm = root.join("admin.conf");
    kubeconfig_cert(&adm, &root.join("admin.crt"));
    kubeconfig_key(&adm, &root.join("admin.key"));
    let ca = std::fs::read(cert_dir.join("ca.crt")).unwrap();
    let stale = [ca.as_slice(), b"\n"].concat();
    let text: String = std::fs::read_to_string(&adm)
        .unwrap()
        .lines()
        .map(|l| {
            let t = l.trim_start();
            let indent = &l[..l.len() - t.len()];
            if t.starts_with("client-certificate-data:") {
                format!("{indent}client-certificate: admin.crt")
            } else if t.starts_with("client-key-data:") {
                format!("{indent}client-key: admin.key")
            } else if t.starts_with("certificate-authority-data:") {
                format!("{indent}certificate-authority-data: {}", b64(&stale))
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    std::fs::write(&adm, &text).unwrap();
    let old_crt = std::fs::read(root.join("admin.crt")).unwrap();
    let r = json(&[
        "renew",
        "admin.conf",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let files: Vec<String> = r["certificates"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        files,
        [
            root.join("admin.key").display().to_string(),
            root.join("admin.crt").display().to_string(),
            adm.display().to_string()
        ],
        "{r}"
    );
    let now = std::fs::read_to_string(&adm).unwrap();
    assert!(
        now.contains(&format!("certificate-authority-data: {}\n", b64(&ca))),
        "{now}"
    );
    assert_eq!(now, text.replace(&b64(&stale), &b64(&ca)));
    let bd = PathBuf::from(r["backupDir"].as_str().expect("backupDir"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bd.join("manifest.json")).unwrap()).unwrap();
    let entries = manifest["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{manifest}");
    for e in entries {
        let copy = e["copy"].as_str().expect("each file backed up");
        let old: &[u8] = match e["target"].as_str().unwrap() {
            t if t.ends_with("admin.conf") => text.as_bytes(),
            t if t.ends_with("admin.crt") => &old_crt,
            _ => continue,
        };
        assert_eq!(std::fs::read(copy).unwrap(), old, "{e}");
    }
    assert_eq!(
        pubkey_of_cert(&root.join("admin.crt")),
        pubkey_of_key(&root.join("admin.key"))
    );
}

/// A row that cannot be installed — a kubeconfig user with no client key (the new key would
/// have nowhere to go) — fails the run with the install's own error, found when the targets
/// are predicted (the same rule as the install), before the store prepares anything: no
/// backup dir, no journal, the tree as it was. (A failure after the preparation, while
/// issuing, drops it: `pki::store::tests::a_prepared_commit_dropped_or_given_other_writes_changes_nothing`.)
#[test]
fn a_row_that_cannot_be_installed_fails_before_anything_is_prepared() {
    let (_t, root) = demo(&[]);
    let adm = root.join("admin.conf");
    let text: String = std::fs::read_to_string(&adm)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("client-key-data:"))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    std::fs::write(&adm, &text).unwrap();
    let h = hash_tree(&root);
    let (code, out, err) = renew_on(&root, &["apiserver", "admin.conf"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains(&format!("{}", adm.display()))
            && err.contains("has no client key to replace, so the new key has nowhere to go"),
        "{err}"
    );
    assert_eq!(h, hash_tree(&root), "tree changed");
    assert!(!root.join("kubecert-backup").exists(), "backup root left");
    assert!(!root.join("pki/.kubecert-journal.json").exists());
}
