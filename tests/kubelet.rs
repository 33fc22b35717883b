//! The kubelet's certificates: `check --kubelet` (issue 15 item 2) on generated kubelet PKIs
//! (rotation symlink to a dated PEM, an embedded client cert in kubelet.conf, missing files),
//! every fact checked against openssl; and `kubelet-conf rebuild` (item 3).

mod common;
use common::*;
use std::path::{Path, PathBuf};

const DEMO_NOW: &str = "2026-01-01T00:00:00Z";
const CHECK_NOW: &str = "2026-06-01T00:00:00Z";

fn kubelet_demo() -> (tempfile::TempDir, PathBuf) {
    demo(&[
        "--now",
        DEMO_NOW,
        "--kubelet",
        "--key-algorithm",
        "ecdsa-p256",
    ])
}

fn check_kubelet(root: &Path, pki: &Path, now: &str) -> (i32, serde_json::Value) {
    check(root)
        .args(&[
            "--kubelet",
            "--kubelet-pki",
            pki.to_str().unwrap(),
            "--now",
            now,
        ])
        .json()
}

/// `openssl x509 -<what> -noout` of a file, the value after `=`.
fn x509_field(file: &Path, what: &str) -> String {
    let out = openssl(&[
        "x509",
        "-in",
        file.to_str().unwrap(),
        "-noout",
        what,
        "-dateopt",
        "iso_8601",
        "-nameopt",
        "RFC2253",
    ]);
    out.trim().split_once('=').unwrap().1.trim().to_string()
}

/// openssl's ISO date `2027-01-01 00:00:00Z` as RFC 3339.
fn iso(openssl_date: &str) -> String {
    openssl_date.replace(' ', "T")
}

/// The CN of an RFC 2253 DN (openssl) or of kubecert's subject.
fn cn(dn: &str) -> String {
    dn.split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("CN="))
        .unwrap_or_default()
        .to_string()
}

/// An openssl ISO date moved by `secs`, as RFC 3339 (GNU date does the arithmetic).
fn shift(openssl_date: &str, secs: i64) -> String {
    let (ok, e) = tool("date", &["-u", "-d", openssl_date, "+%s"]);
    assert!(ok, "{e}");
    let t = e.trim().parse::<i64>().unwrap() + secs;
    let (ok, s) = tool(
        "date",
        &["-u", "-d", &format!("@{t}"), "+%Y-%m-%dT%H:%M:%SZ"],
    );
    assert!(ok, "{s}");
    s.trim().to_string()
}

fn verify(ca: &Path, file: &Path) -> (bool, String) {
    openssl_status(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        "-attime",
        "1780000000",
        file.to_str().unwrap(),
    ])
}

#[test]
fn rotated_client_and_self_generated_serving_match_openssl() {
    let (_t, root) = kubelet_demo();
    let pki = root.join("kubelet-pki");
    let (code, v) = check_kubelet(&root, &pki, CHECK_NOW);
    assert_eq!(code, 0, "{v:#}");
    let k = &v["kubelet"];
    let c = &k["client"];
    let current = pki.join("kubelet-client-current.pem");
    let dated = std::fs::canonicalize(&current).unwrap();
    assert!(dated
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("kubelet-client-2026-01-01-00-00-00"));
    assert_eq!(c["rotation"], "rotated");
    assert_eq!(c["path"], current.to_str().unwrap());
    assert_eq!(c["linkTarget"], dated.to_str().unwrap());
    assert_eq!(
        c["expirationDate"],
        iso(&x509_field(&dated, "-enddate")).as_str()
    );
    assert_eq!(cn(c["subject"].as_str().unwrap()), "system:node:node-1");
    assert_eq!(cn(&x509_field(&dated, "-subject")), "system:node:node-1");
    assert_eq!(
        cn(c["issuer"].as_str().unwrap()),
        cn(&x509_field(&dated, "-issuer"))
    );
    assert_eq!(c["chainsToCa"], true);
    let (ok, out) = verify(&root.join("pki/ca.crt"), &dated);
    assert!(ok, "{out}");
    assert_eq!(c["problems"], serde_json::json!([]));
    // Serving: kubelet.crt, issued by the kubelet's own CA in the same file.
    let s = &k["serving"];
    let crt = pki.join("kubelet.crt");
    assert_eq!(s["rotation"], "static-file");
    assert_eq!(s["path"], crt.to_str().unwrap());
    assert_eq!(s["selfSigned"], true);
    assert_eq!(s["chainsToCa"], false);
    assert_eq!(
        s["expirationDate"],
        iso(&x509_field(&crt, "-enddate")).as_str()
    );
    assert_eq!(
        cn(&x509_field(&crt, "-issuer")),
        cn(s["issuer"].as_str().unwrap())
    );
    assert!(cn(s["issuer"].as_str().unwrap()).starts_with("node-1-ca@"));
    let (ok, _) = verify(&root.join("pki/ca.crt"), &crt);
    assert!(!ok, "kubelet.crt must not verify against the cluster CA");
    // Its own CA (the second certificate of kubelet.crt) verifies it.
    let pem = std::fs::read_to_string(&crt).unwrap();
    let second = pem
        .match_indices("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .unwrap()
        .0;
    let own_ca = root.join("own-ca.pem");
    std::fs::write(&own_ca, &pem[second..]).unwrap();
    let (ok, out) = verify(&own_ca, &crt);
    assert!(ok, "{out}");
    // kubelet.conf references the link.
    assert_eq!(k["kubeletConf"]["mode"], "file-reference");
    assert_eq!(k["kubeletConfClient"]["file"], current.to_str().unwrap());
    assert_eq!(k["kubeletConfClient"]["sameAsClient"], true);
    // Text: a section under kubeadm's table.
    let o = check(&root)
        .args(&[
            "--kubelet",
            "--kubelet-pki",
            pki.to_str().unwrap(),
            "--now",
            CHECK_NOW,
        ])
        .output();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let table_end = text.find("CERTIFICATE AUTHORITY").unwrap();
    let section = text.find("KUBELET CERTIFICATE").expect(&text);
    assert!(section > table_end, "{text}");
    assert!(text.contains(&format!(
        "kubelet-client-current.pem -> {}",
        dated.display()
    )));
    assert!(text.contains("self-signed"), "{text}");
}

/// Without `--kubelet` the JSON has no `kubelet` key (the fixture snapshots stay as they
/// were) and metrics carry no kubelet family unless the kubelet PKI dir exists.
#[test]
fn section_absent_unless_asked() {
    let (_t, root) = kubelet_demo();
    let pki = root.join("kubelet-pki");
    let (code, v) = check(&root)
        .args(&["--kubelet-pki", pki.to_str().unwrap(), "--now", CHECK_NOW])
        .json();
    assert_eq!(code, 0);
    assert!(v.get("kubelet").is_none(), "{v:#}");
    let m = ok(&[
        "metrics",
        "--cert-dir",
        root.join("pki").to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--kubelet-pki",
        pki.to_str().unwrap(),
        "--now",
        CHECK_NOW,
    ]);
    let dated = std::fs::canonicalize(pki.join("kubelet-client-current.pem")).unwrap();
    let na = openssl(&["x509", "-in", dated.to_str().unwrap(), "-noout", "-enddate"]);
    let na = na.trim().trim_start_matches("notAfter=");
    let (_, epoch) = tool("date", &["-u", "-d", na, "+%s"]);
    assert!(
        m.contains(&format!(
            "kubecert_kubelet_cert_not_after_timestamp_seconds{{name=\"kubelet-client\",path=\"{}\",rotation=\"rotated\"}} {}",
            pki.join("kubelet-client-current.pem").display(),
            epoch.trim()
        )),
        "{m}"
    );
    let m = ok(&[
        "metrics",
        "--cert-dir",
        root.join("pki").to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--kubelet-pki",
        root.join("no-such-dir").to_str().unwrap(),
        "--now",
        CHECK_NOW,
    ]);
    assert!(!m.contains("kubecert_kubelet_cert_"), "{m}");
}

/// A client pair made by openssl under the cluster CA, valid one day, installed the way the
/// kubelet rotates (dated file + symlink); kubelet.conf still embeds the demo's own
/// certificate: the section reports the rotated one (what the kubelet loads first), says
/// kubelet.conf differs, and fails once the rotated one has expired.
#[test]
fn embedded_kubelet_conf_beside_a_rotated_pair_and_its_expiry() {
    let (_t, root) = demo(&["--now", DEMO_NOW, "--key-algorithm", "ecdsa-p256"]);
    let pki = root.join("kubelet-pki");
    std::fs::create_dir(&pki).unwrap();
    let key = root.join("k.pem");
    let csr = root.join("k.csr");
    let crt = root.join("k.crt");
    openssl(&[
        "ecparam",
        "-genkey",
        "-name",
        "prime256v1",
        "-noout",
        "-out",
        key.to_str().unwrap(),
    ]);
    openssl(&[
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        "/O=system:nodes/CN=system:node:node-1",
        "-out",
        csr.to_str().unwrap(),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        root.join("pki/ca.crt").to_str().unwrap(),
        "-CAkey",
        root.join("pki/ca.key").to_str().unwrap(),
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        crt.to_str().unwrap(),
    ]);
    let dated = pki.join("kubelet-client-2026-05-01-00-00-00.pem");
    let pair = format!(
        "{}{}",
        std::fs::read_to_string(&crt).unwrap(),
        std::fs::read_to_string(&key).unwrap()
    );
    std::fs::write(&dated, pair).unwrap();
    std::os::unix::fs::symlink(&dated, pki.join("kubelet-client-current.pem")).unwrap();
    let start = x509_field(&dated, "-startdate");
    let end = x509_field(&dated, "-enddate");
    // Within its day: ok (the serving certificate is missing: a warning, named).
    let mid = shift(&start, 3600);
    let (code, v) = check_kubelet(&root, &pki, &mid);
    let k = &v["kubelet"];
    assert_eq!(k["client"]["rotation"], "rotated", "{k:#}");
    assert_eq!(k["client"]["expirationDate"], iso(&end).as_str());
    assert_eq!(k["client"]["chainsToCa"], true);
    assert_eq!(k["kubeletConf"]["mode"], "embedded");
    assert_eq!(k["kubeletConfClient"]["sameAsClient"], false);
    assert!(k["kubeletConfClient"]["note"]
        .as_str()
        .unwrap()
        .contains("is not the one in"));
    assert_eq!(k["serving"]["missing"], true);
    assert_eq!(k["serving"]["problems"][0]["code"], "not-found");
    assert!(k["serving"]["problems"][0]["message"]
        .as_str()
        .unwrap()
        .contains("kubelet.crt"));
    assert_eq!(code, 3, "missing serving certificate: warn, {v:#}");
    assert_eq!(v["status"]["level"], "warn");
    // Two days later the rotated client certificate has expired: fail, whatever the
    // thresholds, while kubeadm's own rows are all valid.
    let later = shift(&end, 86400);
    let (code, v) = check_kubelet(&root, &pki, &later);
    assert_eq!(code, 4, "{v:#}");
    assert_eq!(v["kubelet"]["client"]["problems"][0]["code"], "expired");
    assert!(v["status"]["unhealthy"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("kubelet-client")));
    assert!(v["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["detail"]["problems"].as_array().unwrap().is_empty()));
    // --warn-within counts the kubelet certificate: 10 h before its end → warn (3).
    let before_end = shift(&end, -10 * 3600);
    std::fs::write(
        pki.join("kubelet.crt"),
        std::fs::read(root.join("pki/apiserver.crt")).unwrap(),
    )
    .unwrap();
    std::fs::write(
        pki.join("kubelet.key"),
        std::fs::read(root.join("pki/apiserver.key")).unwrap(),
    )
    .unwrap();
    let (code, v) = check(&root)
        .args(&[
            "--kubelet",
            "--kubelet-pki",
            pki.to_str().unwrap(),
            "--now",
            before_end.trim(),
            "--warn-within",
            "1d",
        ])
        .json();
    assert_eq!(code, 3, "{v:#}");
    assert_eq!(v["status"]["soonest"], "kubelet-client");
    let (code, _) = check(&root)
        .args(&[
            "--kubelet",
            "--kubelet-pki",
            pki.to_str().unwrap(),
            "--now",
            before_end.trim(),
            "--warn-within",
            "1h",
        ])
        .json();
    assert_eq!(code, 0);
}

/// Only the embedded certificate (no kubelet-client-current.pem), then nothing at all: the
/// missing client certificate is a named failure, never a silent ok.
#[test]
fn embedded_only_then_missing_files() {
    let (_t, root) = demo(&["--now", DEMO_NOW, "--key-algorithm", "ecdsa-p256"]);
    let pki = root.join("kubelet-pki");
    std::fs::create_dir(&pki).unwrap();
    let (code, v) = check_kubelet(&root, &pki, CHECK_NOW);
    let c = &v["kubelet"]["client"];
    assert_eq!(c["rotation"], "embedded", "{v:#}");
    assert_eq!(c["path"], root.join("kubelet.conf").to_str().unwrap());
    assert_eq!(c["chainsToCa"], true);
    // The embedded certificate, extracted, says the same to openssl.
    let pem = root.join("kubelet-embedded.pem");
    kubeconfig_cert(&root.join("kubelet.conf"), &pem);
    assert_eq!(
        c["expirationDate"],
        iso(&x509_field(&pem, "-enddate")).as_str()
    );
    let (ok, out) = verify(&root.join("pki/ca.crt"), &pem);
    assert!(ok, "{out}");
    assert_eq!(code, 3, "serving missing → warn: {v:#}");
    // No kubelet.conf either: the client certificate is missing → fail, named.
    std::fs::remove_file(root.join("kubelet.conf")).unwrap();
    let (code, v) = check_kubelet(&root, &pki, CHECK_NOW);
    assert_eq!(code, 4, "{v:#}");
    let c = &v["kubelet"]["client"];
    assert_eq!(c["missing"], true);
    assert_eq!(c["rotation"], "missing");
    assert_eq!(c["problems"][0]["code"], "not-found");
    let msg = c["problems"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("kubelet-client-current.pem") && msg.contains("kubelet.conf"),
        "{msg}"
    );
    // A dangling rotation link is reported as unreadable, not as missing.
    std::os::unix::fs::symlink(
        pki.join("kubelet-client-gone.pem"),
        pki.join("kubelet-client-current.pem"),
    )
    .unwrap();
    let (code, v) = check_kubelet(&root, &pki, CHECK_NOW);
    assert_eq!(code, 4, "{v:#}");
    assert_eq!(v["kubelet"]["client"]["problems"][0]["code"], "unreadable");
}

// ---- kubelet-conf rebuild (issue 15 item 3) ----

/// A year and a month after the demo: every demo leaf (and so the kubelet client
/// certificate) has expired, the CA has not.
const EXPIRED_NOW: &str = "2027-02-01T00:00:00Z";
/// EXPIRED_NOW + 1 h, for `openssl verify -attime`.
const EXPIRED_NOW_PLUS_1H: &str = "1801443600";

fn rebuild_args<'a>(root: &'a Path, pki: &'a Path, node: &'a str) -> Vec<String> {
    [
        "kubelet-conf",
        "rebuild",
        "--node-name",
        node,
        "--cert-dir",
        root.join("pki").to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--kubelet-pki",
        pki.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run(args: &[String]) -> std::process::Output {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    kubecert(&a)
}

/// The value of `key:` on a line of a kubeconfig.
fn conf_value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("{key} not in {text}"))
        .trim()
        .to_string()
}

#[test]
fn rebuild_issues_what_kubeadm_would_and_points_everything_at_it() {
    // RSA (the default), so that keyEncipherment is expected as kubeadm sets it.
    let (_t, root) = demo(&["--now", DEMO_NOW, "--kubelet"]);
    let pki = root.join("kubelet-pki");
    let old_conf = std::fs::read_to_string(root.join("kubelet.conf")).unwrap();
    let old_target = std::fs::read_link(pki.join("kubelet-client-current.pem")).unwrap();
    // Before: the kubelet client certificate has expired (check fails on it).
    let (code, v) = check_kubelet(&root, &pki, EXPIRED_NOW);
    assert_eq!(code, 4);
    assert_eq!(v["kubelet"]["client"]["problems"][0]["code"], "expired");
    let mut args = rebuild_args(&root, &pki, "node-1");
    args.extend(["--now", EXPIRED_NOW, "-o", "json"].map(String::from));
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["action"], "rebuilt");
    let dated = pki.join("kubelet-client-2027-02-01-00-00-00.pem");
    // The symlink points to the dated file (absolute, as the kubelet writes it).
    assert_eq!(
        std::fs::read_link(pki.join("kubelet-client-current.pem")).unwrap(),
        std::path::absolute(&dated).unwrap()
    );
    assert_eq!(mode(&dated), 0o600);
    // openssl: verifies against ca.crt; CN, O, clientAuth only, key usages, CA:FALSE.
    let ca = root.join("pki/ca.crt");
    let (ok, out) = openssl_status(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        "-attime",
        EXPIRED_NOW_PLUS_1H,
        "-purpose",
        "sslclient",
        dated.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let t = openssl(&["x509", "-in", dated.to_str().unwrap(), "-noout", "-text"]);
    assert!(
        t.contains("Subject: O = system:nodes, CN = system:node:node-1"),
        "{t}"
    );
    assert!(t.contains("TLS Web Client Authentication"), "{t}");
    assert!(!t.contains("TLS Web Server Authentication"), "{t}");
    assert!(t.contains("Digital Signature, Key Encipherment"), "{t}");
    assert!(t.contains("CA:FALSE"), "{t}");
    assert!(!t.contains("Subject Alternative Name"), "{t}");
    assert_eq!(
        x509_field(&dated, "-enddate"),
        "2028-02-01 00:00:00Z",
        "kubeadm's one year"
    );
    assert_eq!(x509_field(&dated, "-startdate"), "2027-01-31 23:55:00Z");
    // The key in the same file is the certificate's.
    let cert_pub = openssl(&["x509", "-in", dated.to_str().unwrap(), "-noout", "-pubkey"]);
    let key_pub = openssl(&["pkey", "-in", dated.to_str().unwrap(), "-pubout"]);
    assert_eq!(cert_pub, key_pub);
    // kubelet.conf references the link for both; server and CA data preserved.
    let conf = std::fs::read_to_string(root.join("kubelet.conf")).unwrap();
    let link = pki.join("kubelet-client-current.pem");
    assert_eq!(
        conf_value(&conf, "client-certificate"),
        link.to_str().unwrap()
    );
    assert_eq!(conf_value(&conf, "client-key"), link.to_str().unwrap());
    assert!(!conf.contains("client-certificate-data"));
    assert_eq!(conf_value(&conf, "server"), conf_value(&old_conf, "server"));
    assert_eq!(
        conf_value(&conf, "certificate-authority-data"),
        conf_value(&old_conf, "certificate-authority-data")
    );
    assert_eq!(
        conf_value(&conf, "current-context"),
        "system:node:node-1@kubernetes"
    );
    // check agrees: rotated, chains to the CA, no problem left on the client certificate.
    let (_, v) = check_kubelet(&root, &pki, EXPIRED_NOW);
    let c = &v["kubelet"]["client"];
    assert_eq!(c["rotation"], "rotated");
    assert_eq!(c["chainsToCa"], true);
    assert_eq!(c["problems"], serde_json::json!([]), "{v:#}");
    assert_eq!(v["kubelet"]["kubeletConfClient"]["sameAsClient"], true);
    // The backup holds the old kubelet.conf and the old link target; the old pair stays.
    let bd = PathBuf::from(r["backupDir"].as_str().unwrap());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bd.join("manifest.json")).unwrap()).unwrap();
    let entries = manifest["entries"].as_array().unwrap();
    let conf_copy = entries
        .iter()
        .find(|e| e["target"].as_str().unwrap().ends_with("/kubelet.conf"))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(conf_copy["copy"].as_str().unwrap()).unwrap(),
        old_conf
    );
    let link_entry = entries
        .iter()
        .find(|e| {
            e["target"]
                .as_str()
                .unwrap()
                .ends_with("kubelet-client-current.pem")
        })
        .unwrap();
    assert_eq!(link_entry["linkTarget"], old_target.to_str().unwrap());
    assert!(old_target.exists());
}

#[test]
fn rebuild_dry_run_plans_and_caps_at_the_ca() {
    let (_t, root) = demo(&[
        "--now",
        DEMO_NOW,
        "--kubelet",
        "--key-algorithm",
        "ecdsa-p256",
    ]);
    let pki = root.join("kubelet-pki");
    let before = hash_tree(root.parent().unwrap());
    // Half a year before the CA ends: NotAfter is capped at the CA's.
    let mut args = rebuild_args(&root, &pki, "node-1");
    args.extend(["--now", "2035-06-01T00:00:00Z", "--dry-run", "-o", "json"].map(String::from));
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["action"], "would-rebuild");
    assert_eq!(r["changed"], false);
    assert_eq!(r["certificate"]["cappedAtCa"], true);
    assert_eq!(r["certificate"]["keyAlgorithm"], "ECDSA-P256");
    assert_eq!(
        r["certificate"]["keyUsage"],
        serde_json::json!(["digitalSignature"])
    );
    assert_eq!(
        r["certificate"]["notAfter"],
        iso(&x509_field(&root.join("pki/ca.crt"), "-enddate")).as_str()
    );
    assert_eq!(
        hash_tree(root.parent().unwrap()),
        before,
        "a dry run wrote something"
    );
    // Text: the plan, step by step.
    args.retain(|a| a != "-o" && a != "json");
    let out = String::from_utf8_lossy(&run(&args).stdout).into_owned();
    assert!(
        out.contains("[kubelet-conf rebuild] [dry-run] would issue system:node:node-1"),
        "{out}"
    );
    assert!(out.contains("(capped at the CA's NotAfter)"), "{out}");
    assert_eq!(hash_tree(root.parent().unwrap()), before);
}

/// Bad input: a typed error, exit code and message, and nothing on disk changed.
#[test]
fn rebuild_refusals_change_nothing() {
    let (t, root) = demo(&[
        "--now",
        DEMO_NOW,
        "--kubelet",
        "--key-algorithm",
        "ecdsa-p256",
    ]);
    let pki = root.join("kubelet-pki");
    let tree = |_: ()| hash_tree(t.path());
    let cases: Vec<(&str, i32, &str)> = vec![
        ("", 1, "invalid node name \"\": it is empty"),
        ("a/b", 1, "invalid node name \"a/b\": it contains '/'"),
        ("Node-1", 1, "it contains 'N'"),
        (
            "node-2",
            1,
            "is for \"system:node:node-1\", not \"system:node:node-2\"",
        ),
    ];
    for (node, code, needle) in cases {
        let before = tree(());
        let mut args = rebuild_args(&root, &pki, node);
        args.extend(["--now", EXPIRED_NOW].map(String::from));
        assert_fails(&run(&args), code, needle);
        assert_eq!(tree(()), before, "{node:?} changed the tree");
    }
    // Clock skew: the clock says before every certificate's NotBefore → exit 5, the file
    // and both times named; not an expiry.
    let before = tree(());
    let mut args = rebuild_args(&root, &pki, "node-1");
    args.extend(["--now", "2025-06-01T00:00:00Z"].map(String::from));
    let msg = assert_fails(&run(&args), 5, "clock skew: ");
    assert!(
        msg.contains("is not valid before 2025-12-31T23:55:00Z"),
        "{msg}"
    );
    assert!(
        msg.contains("the local clock says 2025-06-01T00:00:00Z"),
        "{msg}"
    );
    assert!(msg.contains(root.to_str().unwrap()), "{msg}");
    assert!(!msg.contains("expired"), "{msg}");
    assert_eq!(tree(()), before);
    // Within the tolerance: 2 minutes before the newest NotBefore is not skew.
    let mut args = rebuild_args(&root, &pki, "node-1");
    args.extend(["--now", "2025-12-31T23:53:00Z", "--dry-run"].map(String::from));
    assert!(run(&args).status.success());
    // --clock-skew 0s: strict.
    args.extend(["--clock-skew", "0s"].map(String::from));
    assert_fails(&run(&args), 5, "clock skew");
    // External CA: ca.key absent.
    std::fs::rename(root.join("pki/ca.key"), t.path().join("ca.key.aside")).unwrap();
    let before = tree(());
    let mut args = rebuild_args(&root, &pki, "node-1");
    args.extend(["--now", EXPIRED_NOW].map(String::from));
    let msg = assert_fails(&run(&args), 1, "the ca key is absent");
    assert!(
        msg.contains(root.join("pki/ca.key").to_str().unwrap()),
        "{msg}"
    );
    assert!(msg.contains("externally managed"), "{msg}");
    assert_eq!(tree(()), before);
}

/// The same through the JSON-RPC method `kubelet-conf-rebuild` (stdio): typed errors with
/// their codes, then a rebuild with its audit line.
#[test]
fn rebuild_over_rpc_is_typed_and_audited() {
    let (t, root) = demo(&[
        "--now",
        DEMO_NOW,
        "--kubelet",
        "--key-algorithm",
        "ecdsa-p256",
    ]);
    let pki = root.join("kubelet-pki");
    let call = |params: serde_json::Value| -> (serde_json::Value, String) {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let req = serde_json::json!({"jsonrpc": "2.0", "id": 1,
            "method": "kubelet-conf-rebuild", "params": params});
        let mut child = Command::new(bin())
            .args(["serve", "--stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{req}").unwrap();
        let o = child.wait_with_output().unwrap();
        (
            serde_json::from_slice(&o.stdout).unwrap(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let base = |node: &str, now: &str| {
        serde_json::json!({"node_name": node, "cert_dir": root.join("pki"),
            "kubeconfig_dir": root, "kubelet_pki": pki, "now": now})
    };
    let before = hash_tree(t.path());
    let (r, _) = call(base("a/b", EXPIRED_NOW));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(r["error"]["data"]["cause"]
        .as_str()
        .unwrap()
        .contains("invalid node name"));
    let (r, _) = call(base("node-1", "2025-06-01T00:00:00Z"));
    assert_eq!(r["error"]["code"], -31003, "{r}");
    assert!(
        r["error"]["data"]["cause"]
            .as_str()
            .unwrap()
            .starts_with("clock skew: "),
        "{r}"
    );
    assert_eq!(hash_tree(t.path()), before);
    let (r, log) = call(base("node-1", EXPIRED_NOW));
    assert_eq!(r["result"]["action"], "rebuilt", "{r}");
    let dated = pki.join("kubelet-client-2027-02-01-00-00-00.pem");
    assert!(
        log.contains("method=kubelet-conf-rebuild outcome=ok")
            && log.contains(dated.to_str().unwrap()),
        "{log}"
    );
    let (ok, out) = verify(&root.join("pki/ca.crt"), &dated);
    assert!(!ok, "-attime before the rebuild: {out}");
    let (ok, out) = openssl_status(&[
        "verify",
        "-CAfile",
        root.join("pki/ca.crt").to_str().unwrap(),
        "-attime",
        EXPIRED_NOW_PLUS_1H,
        dated.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
}

/// The dated file is named in local time, as the kubelet names it (client-go
/// `certificate_store.go`: `time.Now().Format("2006-01-02-15-04-05")`, Go's local zone from
/// `TZ` / /etc/localtime), not in UTC.
#[test]
fn rebuild_names_the_dated_file_in_local_time() {
    let (_t, root) = kubelet_demo();
    let pki = root.join("kubelet-pki");
    let mut args = rebuild_args(&root, &pki, "node-1");
    args.extend(["--now", EXPIRED_NOW, "--dry-run", "-o", "json"].map(String::from));
    for (tz, name) in [
        ("Asia/Tokyo", "kubelet-client-2027-02-01-09-00-00.pem"),
        ("America/New_York", "kubelet-client-2027-01-31-19-00-00.pem"),
        ("UTC", "kubelet-client-2027-02-01-00-00-00.pem"),
    ] {
        let o = std::process::Command::new(bin())
            .args(&args)
            .env("TZ", tz)
            .output()
            .unwrap();
        assert!(o.status.success(), "{tz}: {}", text(&o));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            r["certificate"]["path"],
            pki.join(name).to_str().unwrap(),
            "TZ={tz}"
        );
    }
}

// ---- restore of a kubelet-conf rebuild backup ----

/// The tree under `root` without the backup root (the one thing a rebuild + restore adds).
fn tree_without_backups(root: &Path) -> std::collections::BTreeMap<String, String> {
    let mut t = hash_tree(root);
    t.retain(|k, _| !k.starts_with("kubecert-backup"));
    t
}

fn restore_args(root: &Path, pki: &Path, backup: &Path) -> Vec<String> {
    [
        "restore",
        backup.to_str().unwrap(),
        "--cert-dir",
        root.join("pki").to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--kubelet-pki",
        pki.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Rebuilds at EXPIRED_NOW; returns the backup dir and the rebuild's dated PEM.
fn rebuilt(root: &Path, pki: &Path) -> (PathBuf, PathBuf) {
    let mut args = rebuild_args(root, pki, "node-1");
    args.extend(["--now", EXPIRED_NOW, "-o", "json"].map(String::from));
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    (
        PathBuf::from(r["backupDir"].as_str().unwrap()),
        PathBuf::from(r["certificate"]["path"].as_str().unwrap()),
    )
}

/// A rebuild is undone exactly by `restore <backup-dir>`: the old kubelet.conf, the old link
/// target, and the dated PEM the rebuild created (the manifest says it did not exist) is
/// removed — the tree equals the tree before the rebuild, the backup root aside.
#[test]
fn restore_undoes_a_rebuild_exactly() {
    let (_t, root) = demo(&["--now", DEMO_NOW, "--kubelet"]);
    let pki = root.join("kubelet-pki");
    // Something the operator has in the kubelet dir that no backup names: stays.
    std::fs::write(
        pki.join("kubelet-client-2025-01-01-00-00-00.pem"),
        "old pair\n",
    )
    .unwrap();
    // A kubelet.conf that differs from what the rebuild writes (the demo's has its shape).
    let conf = root.join("kubelet.conf");
    let mut c = std::fs::read_to_string(&conf).unwrap();
    c.push_str("# the operator's kubelet.conf\n");
    std::fs::write(&conf, c).unwrap();
    let before = tree_without_backups(&root);
    let old_target = std::fs::read_link(pki.join("kubelet-client-current.pem")).unwrap();
    let (backup, dated) = rebuilt(&root, &pki);
    assert_ne!(tree_without_backups(&root), before);
    // Dry run: says what it would do, changes nothing.
    let mut args = restore_args(&root, &pki, &backup);
    let mid = tree_without_backups(&root);
    let mut dry = args.clone();
    dry.extend(["--dry-run", "-o", "json"].map(String::from));
    let o = run(&dry);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        r["restored"],
        serde_json::json!([
            root.join("kubelet.conf").to_str().unwrap(),
            pki.join("kubelet-client-current.pem").to_str().unwrap()
        ]),
        "{r}"
    );
    assert_eq!(r["removed"], serde_json::json!([dated.to_str().unwrap()]));
    assert_eq!(tree_without_backups(&root), mid);
    // The restore itself.
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("removed {}", dated.display())),
        "{out}"
    );
    assert_eq!(tree_without_backups(&root), before);
    assert_eq!(
        std::fs::read_link(pki.join("kubelet-client-current.pem")).unwrap(),
        old_target
    );
    // check agrees: the old (expired) certificate is back.
    let (code, v) = check_kubelet(&root, &pki, EXPIRED_NOW);
    assert_eq!(code, 4);
    assert_eq!(v["kubelet"]["client"]["problems"][0]["code"], "expired");
    // Again: nothing left to do.
    args.extend(["-o", "json"].map(String::from));
    let r: serde_json::Value = serde_json::from_slice(&run(&args).stdout).unwrap();
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(tree_without_backups(&root), before);
}

/// A tampered rebuild backup (a target or a link target outside the PKI/kubelet dirs, by
/// absolute path or by `..`) is refused with a typed error naming the entry; nothing changes.
/// The same over RPC (-31011), where `kubelet_pki` is a param.
#[test]
fn restore_refuses_a_tampered_rebuild_manifest() {
    let (t, root) = kubelet_demo();
    let pki = root.join("kubelet-pki");
    let (backup, _) = rebuilt(&root, &pki);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup.join("manifest.json")).unwrap()).unwrap();
    let link = pki.join("kubelet-client-current.pem");
    let up = format!("{}/../../../../../../etc/passwd", pki.display());
    let cases: Vec<(&str, serde_json::Value, String)> = vec![
        (
            "target-passwd",
            serde_json::json!({"target": "/etc/passwd", "copy": null}),
            "manifest entry /etc/passwd is not".into(),
        ),
        (
            "target-dotdot",
            serde_json::json!({"target": up, "copy": null}),
            format!("manifest entry {up} is not"),
        ),
        (
            "link-passwd",
            serde_json::json!({"target": link, "copy": null, "linkTarget": "/etc/passwd"}),
            "link target /etc/passwd".into(),
        ),
        (
            "link-dotdot",
            serde_json::json!({"target": link, "copy": null,
                "linkTarget": "../../../etc/passwd"}),
            "link target ../../../etc/passwd".into(),
        ),
        (
            "link-elsewhere",
            serde_json::json!({"target": root.join("kubelet.conf"), "copy": null,
                "linkTarget": "/etc/passwd"}),
            "is not a kubelet link".into(),
        ),
    ];
    for (name, entry, needle) in cases {
        let bad = backup.parent().unwrap().join(name);
        copy_dir(&backup, &bad);
        let mut m = manifest.clone();
        let entries = m["entries"].as_array_mut().unwrap();
        // Copies named by file name: the copied dir is another dir.
        for e in entries.iter_mut() {
            if let Some(c) = e["copy"].as_str() {
                let n = Path::new(c)
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                e["copy"] = n.into();
            }
        }
        entries.retain(|e| e["target"] != entry["target"]);
        entries.push(entry);
        std::fs::write(bad.join("manifest.json"), m.to_string()).unwrap();
        let before = hash_tree(t.path());
        let o = run(&restore_args(&root, &pki, &bad));
        let msg = assert_fails(&o, 1, &format!("backup {} refused: ", bad.display()));
        assert!(msg.contains(&needle), "{name}: {msg}");
        assert_eq!(hash_tree(t.path()), before, "{name} changed the tree");
        // RPC: the same refusal, typed.
        let req = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "restore",
            "params": {"backup_dir": bad, "cert_dir": root.join("pki"),
                "kubeconfig_dir": root, "kubelet_pki": pki}});
        let r = rpc_stdio(&req);
        assert_eq!(r["error"]["code"], -31011, "{name}: {r}");
        assert!(
            r["error"]["data"]["cause"]
                .as_str()
                .unwrap()
                .contains(&needle),
            "{name}: {r}"
        );
        assert_eq!(hash_tree(t.path()), before, "{name} (RPC) changed the tree");
    }
    // The untampered backup restores over RPC.
    let req = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "restore",
        "params": {"backup_dir": backup, "cert_dir": root.join("pki"),
            "kubeconfig_dir": root, "kubelet_pki": pki}});
    let r = rpc_stdio(&req);
    assert_eq!(r["result"]["changed"], true, "{r}");
    assert!(std::fs::read_link(&link)
        .unwrap()
        .ends_with("kubelet-client-2026-01-01-00-00-00.pem"));
}

fn rpc_stdio(req: &serde_json::Value) -> serde_json::Value {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(bin())
        .args(["serve", "--stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{req}").unwrap();
    let o = child.wait_with_output().unwrap();
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The serving certificate the section reports is the one the kubelet config names — the
/// same reader and rule as the served probe of :10250 (`--kubelet-config`): a custom
/// `tlsCertFile`/`tlsPrivateKeyFile`, and `serverTLSBootstrap` with no rotated pair yet.
#[test]
fn serving_follows_the_kubelet_config() {
    let (t, root) = kubelet_demo();
    let pki = root.join("kubelet-pki");
    // A custom serving pair: apiserver's (signed by the cluster CA), elsewhere.
    let custom = t.path().join("custom");
    std::fs::create_dir(&custom).unwrap();
    let (crt, key) = (custom.join("serving.crt"), custom.join("serving.key"));
    std::fs::copy(root.join("pki/apiserver.crt"), &crt).unwrap();
    std::fs::copy(root.join("pki/apiserver.key"), &key).unwrap();
    let config = t.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ntlsCertFile: {}\ntlsPrivateKeyFile: {}\n",
            crt.display(),
            key.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let (_, v) = check(&root)
        .args(&[
            "--kubelet",
            "--kubelet-pki",
            pki.to_str().unwrap(),
            "--kubelet-config",
            cfg,
            "--now",
            CHECK_NOW,
        ])
        .json();
    let s = &v["kubelet"]["serving"];
    assert_eq!(s["path"], crt.to_str().unwrap(), "{s:#}");
    assert_eq!(s["rotation"], "static-file");
    assert_eq!(s["chainsToCa"], true);
    assert_eq!(
        s["expirationDate"],
        iso(&x509_field(&crt, "-enddate")).as_str()
    );
    assert_eq!(s["problems"], serde_json::json!([]), "{s:#}");
    // The key named by tlsPrivateKeyFile is checked: another key is a mismatch.
    std::fs::copy(root.join("pki/front-proxy-client.key"), &key).unwrap();
    let (code, v) = check(&root)
        .args(&[
            "--kubelet",
            "--kubelet-pki",
            pki.to_str().unwrap(),
            "--kubelet-config",
            cfg,
            "--now",
            CHECK_NOW,
        ])
        .json();
    assert_eq!(code, 4, "{v:#}");
    let p = &v["kubelet"]["serving"]["problems"][0];
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .contains(key.to_str().unwrap()),
        "{p}"
    );
    // serverTLSBootstrap without a rotated pair yet (and no tlsCertFile): not kubelet.crt.
    std::fs::write(&config, "serverTLSBootstrap: true\n").unwrap();
    let (_, v) = check(&root)
        .args(&[
            "--kubelet",
            "--kubelet-pki",
            pki.to_str().unwrap(),
            "--kubelet-config",
            cfg,
            "--now",
            CHECK_NOW,
        ])
        .json();
    let s = &v["kubelet"]["serving"];
    assert_eq!(s["missing"], true, "{s:#}");
    assert_eq!(
        s["path"],
        pki.join("kubelet-server-current.pem").to_str().unwrap()
    );
    assert_eq!(s["problems"][0]["code"], "not-found");
    assert!(
        s["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("serverTLSBootstrap"),
        "{s:#}"
    );
}

/// The clock check's other side: a clock far AHEAD of the PKI (more than the longest leaf
/// validity past the newest NotBefore, so every leaf has expired) is reported as possible
/// clock skew — a warning in the result, not a refusal (a node really off for a year looks
/// the same). A clock within a validity period gets no warning.
#[test]
fn rebuild_warns_when_the_clock_is_far_ahead() {
    let (t, root) = kubelet_demo();
    let pki = root.join("kubelet-pki");
    // Within the leaves' year: no warning (the key is absent).
    let mut args = rebuild_args(&root, &pki, "node-1");
    args.extend(["--now", CHECK_NOW, "--dry-run", "-o", "json"].map(String::from));
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r.get("warnings").is_none(), "{r}");
    // 13 months after every leaf was issued (1 year of validity): a warning, and it runs.
    let before = hash_tree(t.path());
    let mut args = rebuild_args(&root, &pki, "node-1");
    args.extend(["--now", EXPIRED_NOW, "--dry-run", "-o", "json"].map(String::from));
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let w = r["warnings"][0].as_str().unwrap_or_else(|| panic!("{r}"));
    assert!(
        w.starts_with("possible clock skew: the local clock says 2027-02-01T00:00:00Z"),
        "{w}"
    );
    assert!(w.contains("newest NotBefore 2025-12-31T23:55:00Z"), "{w}");
    assert!(
        w.contains("longest validity of a certificate here (365d)"),
        "{w}"
    );
    assert_eq!(hash_tree(t.path()), before);
    // Text: the warning on stderr, the plan on stdout, exit 0.
    args.retain(|a| a != "-o" && a != "json");
    let o = run(&args);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("warning: possible clock skew"),
        "{}",
        text(&o)
    );
}
