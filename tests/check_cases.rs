//! `check` edge cases on generated PKIs, exit codes, kubelet.conf diagnosis and repair, and
//! multi-node demo PKIs.

mod common;
use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

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
    let text = Check::dirs(&root.join("pki"), &root).ok();
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
    // issue 13: a mismatched key or a wrong CA fails even without thresholds (was exit 0).
    assert_eq!(code, 4, "no thresholds: unusable certificates still fail");
    assert_eq!(v["status"]["level"], "fail");
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
        &Check::dirs(&pki, &root)
            .args(&["-o", "yaml"])
            .output()
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
        &Check::dirs(&root.join("pki"), &root)
            .args(&["--now", "2040-01-01T00:00:00Z"])
            .output()
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
        let o = Check::dirs(&d, &d.join("kubeconfig"))
            .args(&["-o", "json", "--kubelet-pki", "/nonexistent"])
            .output();
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        // issue 13: these real PKIs hold expired certificates at today's clock, which is
        // `fail` (exit 4) with no thresholds; the verdict and the exit code agree.
        let want = match v["status"]["level"].as_str() {
            Some("fail") => 4,
            Some("ok") => 0,
            other => panic!("{f}: level {other:?}"),
        };
        assert_eq!(o.status.code(), Some(want), "{f}");
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
    assert_fails(&o, 1, "kubelet-client-current.pem does not exist");
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
    assert_fails(&o, 1, "not the same identity");
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
        let (okk, out) = openssl_status(&[
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
        let (okk, out) = openssl_status(&[
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
    let out = Check::dirs(&d, &d.join("kubeconfig"))
        .args(&["-o", "json", "--now", "2025-06-20T00:00:00Z"])
        .ok();
    let v: Value = serde_json::from_str(&out).unwrap();
    let ca = row(&v, "ca");
    assert_eq!(ca["detail"]["keyAlgorithm"], "ECDSA-P256");
    assert_eq!(ca["externallyManaged"], true);
}

// ---------------------------------------------------------------------------------------
// Issue 12: file contents never echoed; bounded, non-following reads; messages.

/// Runs kubecert under a deadline (killed after `secs`) and a 1 GiB address-space limit, so
/// a runaway read fails the test instead of the machine; optionally as uid/gid 65534.
fn run_bounded(args: &[&str], stdin: Option<&str>, as_nobody: bool, secs: u64) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.args([
        "-s",
        "KILL",
        &secs.to_string(),
        "prlimit",
        "--as=1073741824",
        "--",
    ]);
    if as_nobody {
        cmd.args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]);
    }
    cmd.arg(bin()).args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn kubecert");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn have_setpriv() -> bool {
    Command::new("setpriv").arg("--version").output().is_ok()
}

/// Makes a tree readable and traversable by everyone (for runs as uid 65534).
fn open_up(dir: &Path) {
    let o = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success());
    let mut p = dir.parent();
    while let Some(d) = p {
        let _ = Command::new("chmod").args(["a+x"]).arg(d).output();
        p = d.parent();
    }
}

fn problem<'a>(r: &'a Value, code: &str) -> Option<&'a str> {
    r["detail"]["problems"]
        .as_array()?
        .iter()
        .find(|p| p["code"] == code)?["message"]
        .as_str()
}

/// A fresh RSA private key in PEM (PKCS#1, the `BEGIN RSA PRIVATE KEY` kind).
fn rsa_key_pem(dir: &Path) -> String {
    let p = dir.join("secret.key");
    let (ok, out) = openssl_status(&[
        "genrsa",
        "-traditional",
        "-out",
        p.to_str().unwrap(),
        "2048",
    ]);
    assert!(ok, "{out}");
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn no_line_of_a_bad_kubeconfig_appears_in_results_errors_or_logs() {
    let (t, root) = demo(&[]);
    let key = rsa_key_pem(t.path());
    let lines: Vec<&str> = key.lines().filter(|l| !l.trim().is_empty()).collect();
    // admin.conf: YAML holding key lines, with a syntax error right at them.
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\nusers:\n- name: a\n  user:\n    x: \"",
    );
    for l in &lines {
        yaml.push_str(&format!("    {l}\n"));
    }
    yaml.push_str("  : : [\n");
    std::fs::write(root.join("admin.conf"), &yaml).unwrap();
    // scheduler.conf: the private key itself.
    std::fs::write(root.join("scheduler.conf"), &key).unwrap();
    // controller-manager.conf: a symlink to a root-only file holding the key.
    let secret = t.path().join("root-only.key");
    std::fs::write(&secret, &key).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::remove_file(root.join("controller-manager.conf")).unwrap();
    std::os::unix::fs::symlink(&secret, root.join("controller-manager.conf")).unwrap();
    let pki = root.join("pki");
    let dirs = [
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ];
    let assert_clean = |what: &str, out: &str| {
        assert!(!out.contains("-----BEGIN"), "{what}: {out}");
        assert!(!out.contains("PRIVATE KEY"), "{what}: {out}");
        for l in &lines {
            assert!(!out.contains(l.trim()), "{what} echoes {l:?}: {out}");
        }
    };
    let mut outputs = Vec::new();
    for fmt in ["json", "text", "yaml", "prometheus"] {
        let mut a = vec!["check", "-o", fmt];
        a.extend_from_slice(&dirs);
        let o = run_bounded(&a, None, false, 120);
        assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
        assert_clean(fmt, &all_output(&o));
        outputs.push(o);
    }
    let v: Value = serde_json::from_slice(&outputs[0].stdout).unwrap();
    let adm = row(&v, "admin.conf");
    assert_eq!(codes(adm), ["kubeconfig-invalid"]);
    let admin_path = root.join("admin.conf");
    assert_eq!(
        problem(adm, "kubeconfig-invalid").unwrap(),
        format!(
            "invalid kubeconfig {}: not valid YAML (syntax error at line 7, column 8)",
            admin_path.display()
        )
    );
    assert_eq!(
        problem(row(&v, "scheduler.conf"), "kubeconfig-invalid").unwrap(),
        format!(
            "invalid kubeconfig {}: not a kubeconfig (top level is not a mapping)",
            root.join("scheduler.conf").display()
        )
    );
    let cm = row(&v, "controller-manager.conf");
    assert_eq!(codes(cm), ["unreadable"]);
    assert_eq!(
        problem(cm, "unreadable").unwrap(),
        format!(
            "refusing symlink at {}",
            root.join("controller-manager.conf").display()
        )
    );
    // Text mode: the same finding on stderr, once.
    let err = String::from_utf8_lossy(&outputs[1].stderr).into_owned();
    assert!(
        err.contains(&format!(
            "[check] admin.conf: invalid kubeconfig {}: not valid YAML (syntax error at line 7, column 8) (kubeconfig-invalid)\n",
            admin_path.display()
        )),
        "{err}"
    );
    // CLI errors on stderr.
    for a in [
        vec!["renew", "admin.conf", "--dry-run"],
        vec!["renew", "scheduler.conf", "--dry-run"],
        vec!["csr", "export", "admin.conf", "--csr-dir"],
    ] {
        let csr_dir = t.path().join("csr");
        let mut a: Vec<&str> = a;
        if a.last() == Some(&"--csr-dir") {
            a.push(csr_dir.to_str().unwrap());
        }
        a.extend_from_slice(&dirs);
        let o = run_bounded(&a, None, false, 120);
        assert_eq!(o.status.code(), Some(1), "{a:?}: {}", all_output(&o));
        assert_clean(&format!("{a:?}"), &all_output(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("invalid kubeconfig"),
            "{a:?}: {}",
            all_output(&o)
        );
    }
    // The RPC face (stdio): result and error.
    let params = serde_json::json!({
        "cert_dir": pki.to_str().unwrap(),
        "kubeconfig_dir": root.to_str().unwrap(),
    });
    let mut renew = params.clone();
    renew["names"] = serde_json::json!(["admin.conf"]);
    renew["dry_run"] = Value::Bool(true);
    let req = format!(
        "{}\n{}\n",
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "check", "params": params}),
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "renew", "params": renew}),
    );
    let o = run_bounded(&["serve", "--stdio"], Some(&req), false, 120);
    assert_clean("rpc", &all_output(&o));
    let resp: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(resp.len(), 2, "{}", all_output(&o));
    assert_eq!(
        problem(row(&resp[0]["result"], "admin.conf"), "kubeconfig-invalid").unwrap(),
        problem(adm, "kubeconfig-invalid").unwrap()
    );
    assert_eq!(resp[1]["error"]["code"], -31006, "{}", resp[1]);
}

#[test]
fn devices_fifos_directories_and_big_files_are_refused_by_name() {
    let (t, root) = demo(&[]);
    let pki = root.join("pki");
    // apiserver.crt -> /dev/zero, front-proxy-client.crt a FIFO, apiserver-kubelet-client.crt
    // 2 MiB, etcd/server.crt a directory, admin.conf -> /dev/urandom.
    std::fs::remove_file(pki.join("apiserver.crt")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", pki.join("apiserver.crt")).unwrap();
    std::fs::remove_file(pki.join("front-proxy-client.crt")).unwrap();
    let o = Command::new("mkfifo")
        .arg(pki.join("front-proxy-client.crt"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let mut big = std::fs::read(pki.join("apiserver-kubelet-client.crt")).unwrap();
    big.resize(2 * 1024 * 1024, b'\n');
    std::fs::write(pki.join("apiserver-kubelet-client.crt"), &big).unwrap();
    std::fs::remove_file(pki.join("etcd/server.crt")).unwrap();
    std::fs::create_dir(pki.join("etcd/server.crt")).unwrap();
    std::fs::remove_file(root.join("admin.conf")).unwrap();
    std::os::unix::fs::symlink("/dev/urandom", root.join("admin.conf")).unwrap();
    let before = hash_tree_nofollow(&pki);
    let dirs = [
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ];
    let start = std::time::Instant::now();
    let mut a = vec!["check", "-o", "json"];
    a.extend_from_slice(&dirs);
    let o = run_bounded(&a, None, false, 60);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let msg = |name: &str| -> String {
        let r = row(&v, name);
        assert_eq!(codes(r), ["unreadable"], "{name}: {r}");
        assert_eq!(r["missing"], false, "{name}");
        problem(r, "unreadable").unwrap().to_string()
    };
    assert_eq!(
        msg("apiserver"),
        format!(
            "refusing symlink at {}",
            pki.join("apiserver.crt").display()
        )
    );
    assert_eq!(
        msg("front-proxy-client"),
        format!(
            "{}: not a regular file (a FIFO)",
            pki.join("front-proxy-client.crt").display()
        )
    );
    assert_eq!(
        msg("apiserver-kubelet-client"),
        format!(
            "{}: larger than 1048576 bytes, the limit for a kubeadm file",
            pki.join("apiserver-kubelet-client.crt").display()
        )
    );
    assert_eq!(
        msg("etcd-server"),
        format!(
            "{}: not a regular file (a directory)",
            pki.join("etcd/server.crt").display()
        )
    );
    assert_eq!(
        msg("admin.conf"),
        format!("refusing symlink at {}", root.join("admin.conf").display())
    );
    // csr export of admin.conf (its kubeconfig is /dev/urandom): refused quickly, by name.
    let csr = t.path().join("csr");
    let mut a = vec![
        "csr",
        "export",
        "admin.conf",
        "--csr-dir",
        csr.to_str().unwrap(),
    ];
    a.extend_from_slice(&dirs);
    let o = run_bounded(&a, None, false, 60);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "error: refusing symlink at {}\n",
            root.join("admin.conf").display()
        )
    );
    assert_eq!(before, hash_tree_nofollow(&pki));
    // csr import dry run with <name>.crt -> /dev/zero: a finding naming the file.
    let (t, root) = demo(&[]);
    let pki = root.join("pki");
    let dirs = [
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ];
    let before = hash_tree(&root);
    let imp = t.path().join("import");
    std::fs::create_dir(&imp).unwrap();
    std::os::unix::fs::symlink("/dev/zero", imp.join("front-proxy-client.crt")).unwrap();
    std::fs::copy(
        pki.join("front-proxy-client.key"),
        imp.join("front-proxy-client.key"),
    )
    .unwrap();
    let mut a = vec![
        "csr",
        "import",
        "front-proxy-client",
        "--dry-run",
        "--csr-dir",
        imp.to_str().unwrap(),
    ];
    a.extend_from_slice(&dirs);
    let o = run_bounded(&a, None, false, 60);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!(
            "refusing symlink at {}",
            imp.join("front-proxy-client.crt").display()
        )),
        "{}",
        all_output(&o)
    );
    assert_eq!(before, hash_tree(&root));
}

/// Like hash_tree, but records symlinks, FIFOs and directories without reading them.
fn hash_tree_nofollow(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    fn walk(base: &Path, d: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if m.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()),
                );
            } else if m.is_dir() {
                out.insert(rel.clone(), "dir".into());
                walk(base, &p, out);
            } else if m.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(rel, format!("{:x}", bytes.len()) + &hex_sha(&bytes));
            } else {
                out.insert(rel, "special".into());
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

fn hex_sha(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(b))
}

#[test]
fn duplicate_kubeconfig_user_names_are_refused() {
    let (_t, root) = demo(&[]);
    let adm = root.join("admin.conf");
    let text = std::fs::read_to_string(&adm).unwrap();
    // A second user with the current user's name (kubectl refuses such a file).
    let dup = "- name: kubernetes-admin\n  user:\n    token: abc\n";
    let text = text.replacen("users:\n", &format!("users:\n{dup}"), 1);
    std::fs::write(&adm, &text).unwrap();
    let before = hash_tree(&root);
    let (code, v) = check_json(&root, &[]);
    assert_eq!(code, 0);
    let r = row(&v, "admin.conf");
    assert_eq!(codes(r), ["kubeconfig-invalid"]);
    assert_eq!(
        problem(r, "kubeconfig-invalid").unwrap(),
        format!(
            "invalid kubeconfig {}: users entries 1 and 2 have the same name (kubectl refuses such a file)",
            adm.display()
        )
    );
    let o = kubecert(&[
        "renew",
        "admin.conf",
        "--cert-dir",
        root.join("pki").to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!(
            "error: invalid kubeconfig {}: users entries 1 and 2 have the same name (kubectl refuses such a file)\n",
            adm.display()
        )
    );
    assert_eq!(before, hash_tree(&root));
}

#[test]
fn negative_durations_are_usage_errors() {
    let (_t, root) = demo(&[]);
    let pki = root.join("pki");
    let before = hash_tree(&root);
    for (args, flag, value) in [
        (vec!["check", "--warn-within=-1h"], "--warn-within", "-1h"),
        (vec!["check", "--fail-within=-30d"], "--fail-within", "-30d"),
        (vec!["renew", "all", "--within=-5d"], "--within", "-5d"),
        (vec!["renew", "all", "--validity=-1h"], "--validity", "-1h"),
    ] {
        let mut a = args.clone();
        a.extend_from_slice(&[
            "--cert-dir",
            pki.to_str().unwrap(),
            "--kubeconfig-dir",
            root.to_str().unwrap(),
        ]);
        let o = kubecert(&a);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {}", all_output(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with(&format!("error: invalid value '{value}' for '{flag} <"))
                && err.contains(&format!(
                    "invalid duration \"{value}\": negative durations are not allowed"
                )),
            "{a:?}: {err}"
        );
        assert!(o.stdout.is_empty());
    }
    assert_eq!(before, hash_tree(&root));
    // The RPC face: -32602 with the same cause.
    let req = format!(
        "{}\n",
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "check", "params": {
            "cert_dir": pki.to_str().unwrap(),
            "kubeconfig_dir": root.to_str().unwrap(),
            "warn_within": "-1h",
        }})
    );
    let o = run_bounded(&["serve", "--stdio"], Some(&req), false, 60);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(
        r["error"]["data"]["cause"],
        "invalid duration \"-1h\": negative durations are not allowed"
    );
}

#[test]
fn unreadable_malformed_and_missing_cas_are_told_apart() {
    if !have_setpriv() {
        eprintln!("setpriv missing: skipped");
        return;
    }
    let (t, root) = demo(&[]);
    let pki = root.join("pki");
    // ca.crt garbage, front-proxy-ca.crt unreadable (mode 000, run as uid 65534),
    // etcd/ca.crt absent; apiserver.crt unreadable too.
    std::fs::write(pki.join("ca.crt"), b"garbage\n").unwrap();
    std::fs::remove_file(pki.join("etcd/ca.crt")).unwrap();
    open_up(t.path());
    for f in ["front-proxy-ca.crt", "apiserver.crt"] {
        std::fs::set_permissions(
            pki.join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o000),
        )
        .unwrap();
    }
    let o = run_bounded(
        &[
            "check",
            "-o",
            "json",
            "--cert-dir",
            pki.to_str().unwrap(),
            "--kubeconfig-dir",
            root.to_str().unwrap(),
        ],
        None,
        true,
        60,
    );
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let fp_ca = pki.join("front-proxy-ca.crt");
    assert_eq!(
        problem(row(&v, "front-proxy-ca"), "unreadable").unwrap(),
        format!("{}: Permission denied (os error 13)", fp_ca.display())
    );
    assert_eq!(
        problem(row(&v, "front-proxy-client"), "ca-unreadable").unwrap(),
        format!(
            "its CA front-proxy-ca could not be read: {}: Permission denied (os error 13)",
            fp_ca.display()
        )
    );
    assert_eq!(
        problem(row(&v, "apiserver"), "unreadable").unwrap(),
        format!(
            "{}: Permission denied (os error 13)",
            pki.join("apiserver.crt").display()
        )
    );
    assert_eq!(codes(row(&v, "ca")), ["malformed"]);
    assert_eq!(
        problem(row(&v, "apiserver-kubelet-client"), "ca-malformed").unwrap(),
        format!(
            "its CA ca is malformed: {}: no CERTIFICATE block found",
            pki.join("ca.crt").display()
        )
    );
    assert_eq!(
        problem(row(&v, "etcd-server"), "ca-missing").unwrap(),
        "its CA etcd-ca is missing"
    );
    // The CLI prints an I/O cause once, without colour codes on a non-terminal stderr.
    let o = run_bounded(
        &[
            "renew",
            "apiserver",
            "--dry-run",
            "--cert-dir",
            pki.to_str().unwrap(),
            "--kubeconfig-dir",
            root.to_str().unwrap(),
        ],
        None,
        true,
        60,
    );
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err,
        format!(
            "error: {}: Permission denied (os error 13)\n",
            pki.join("apiserver.crt").display()
        )
    );
    assert!(!err.contains('\u{1b}'), "{err}");
}

#[test]
fn failed_recovery_fails_check() {
    let (_t, root) = demo(&[]);
    let pki = root.join("pki");
    let journal = pki.join(".kubecert-journal.json");
    std::fs::write(&journal, b"{\"state\": 7}\n").unwrap();
    let before = hash_tree(&root);
    let (code, v) = check_json(&root, &[]);
    assert_eq!(code, 4, "{v}");
    assert_eq!(v["status"]["level"], "fail");
    assert_eq!(v["status"]["problems"][0]["code"], "recovery-failed");
    let msg = format!(
        "recovery of an interrupted run failed: {}: not valid JSON (syntax error at line 1, column 11); the files may be half-installed until a kubecert run that can write the PKI recovers them",
        journal.display()
    );
    assert_eq!(v["status"]["problems"][0]["message"], msg.as_str());
    // Text mode: the log line and the note, no colour codes in a file.
    let o = Check::dirs(&pki, &root).output();
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains('\u{1b}'), "{err}");
    assert!(err.contains(" ERROR "), "{err}");
    assert!(
        err.contains(&format!("[check] {msg} (recovery-failed)\n")),
        "{err}"
    );
    assert_eq!(before, hash_tree(&root));
    // A valid journal on a PKI this caller cannot write (as on a read-only filesystem): the
    // rollback fails with EACCES, and check says so and fails.
    if !have_setpriv() {
        eprintln!("setpriv missing: the EACCES part is skipped");
        return;
    }
    let staged = pki.join("apiserver.crt.kubecert-new");
    std::fs::write(&staged, b"partial").unwrap();
    let j = serde_json::json!({
        "state": "staging",
        "backup_dir": null,
        "entries": [{"target": pki.join("apiserver.crt"), "staged": staged}],
    });
    std::fs::write(&journal, j.to_string()).unwrap();
    open_up(root.parent().unwrap());
    let before = hash_tree(&root);
    let o = run_bounded(
        &[
            "check",
            "-o",
            "json",
            "--cert-dir",
            pki.to_str().unwrap(),
            "--kubeconfig-dir",
            root.to_str().unwrap(),
        ],
        None,
        true,
        60,
    );
    assert_eq!(o.status.code(), Some(4), "{}", all_output(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"]["level"], "fail");
    assert_eq!(
        v["status"]["problems"][0]["message"],
        format!(
            "recovery of an interrupted run failed: {}: Permission denied (os error 13); the files may be half-installed until a kubecert run that can write the PKI recovers them",
            staged.display()
        )
        .as_str()
    );
    assert_eq!(before, hash_tree(&root));
}

/// issue 13: `check` on dirs with no kubeadm PKI at all is an error (exit 1) naming what was
/// looked for, on the CLI and over RPC (the file-error code), not a table of `!MISSING!`.
#[test]
fn no_pki_at_all_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    let certs = t.path().join("nonexistent");
    let kcs = t.path().join("nonexistent2");
    let o = Check::dirs(&certs, &kcs)
        .args(&["--fail-within", "30d"])
        .output();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        err.contains(&format!(
            "no kubeadm PKI found: none of ca.crt, front-proxy-ca.crt, apiserver.crt, apiserver-kubelet-client.crt, front-proxy-client.crt in {} nor admin.conf, controller-manager.conf, scheduler.conf, super-admin.conf in {}",
            certs.display(),
            kcs.display()
        )),
        "{err}"
    );
    // An empty but existing dir is no PKI either.
    std::fs::create_dir_all(&certs).unwrap();
    let o = Check::dirs(&certs, &kcs).args(&["-o", "json"]).output();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no kubeadm PKI found"));
    // The RPC face: the file-error code with the same cause.
    let req = format!(
        "{}\n",
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "check", "params": {
            "cert_dir": certs.to_str().unwrap(),
            "kubeconfig_dir": kcs.to_str().unwrap(),
        }})
    );
    let o = run_bounded(&["serve", "--stdio"], Some(&req), false, 60);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["error"]["code"], -31006, "{r}");
    assert!(
        r["error"]["data"]["cause"]
            .as_str()
            .unwrap()
            .starts_with("no kubeadm PKI found: none of ca.crt"),
        "{r}"
    );
    // One present file is a PKI: the rest are !MISSING! rows, exit 0 as before.
    let (_t2, root) = demo(&[]);
    for f in [
        "admin.conf",
        "controller-manager.conf",
        "scheduler.conf",
        "super-admin.conf",
    ] {
        std::fs::remove_file(root.join(f)).unwrap();
    }
    let o = Check::dirs(&root.join("pki"), &kcs).output();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// issue 13: expired, key-missing, key-mismatch and not-signed-by-ca are `fail` (exit 4)
/// with no thresholds; before, the level was `ok` with the rows listed under `unhealthy`.
#[test]
fn unusable_certificates_fail_without_thresholds() {
    let (_t, root) = demo(&[]);
    let pki = root.join("pki");
    std::fs::remove_file(pki.join("apiserver.key")).unwrap();
    let (code, v) = check_json(&root, &[]);
    assert_eq!(code, 4, "{v}");
    assert_eq!(v["status"]["level"], "fail");
    assert_eq!(v["status"]["exitCode"], 2);
    assert_eq!(v["status"]["unhealthy"], serde_json::json!(["apiserver"]));
    // Expired leaves (a clock after the leaves' NotAfter, before the CAs').
    let (_t, root) = demo(&["--expires-in", "20d", "--now", "2026-01-01T00:00:00Z"]);
    let (code, v) = check_json(&root, &["--now", "2026-02-01T00:00:00Z"]);
    assert_eq!(code, 4, "{v}");
    assert_eq!(v["status"]["level"], "fail");
    assert!(codes(row(&v, "apiserver")).contains(&"expired".to_string()));
    // A healthy PKI with no thresholds stays ok.
    let (code, v) = check_json(&root, &["--now", "2026-01-02T00:00:00Z"]);
    assert_eq!(
        (code, v["status"]["level"].as_str()),
        (0, Some("ok")),
        "{v}"
    );
    // A wrong-CA row alone fails too.
    let (_t, root) = demo(&[]);
    let pki = root.join("pki");
    for ext in ["crt", "key"] {
        std::fs::copy(
            pki.join(format!("etcd/healthcheck-client.{ext}")),
            pki.join(format!("front-proxy-client.{ext}")),
        )
        .unwrap();
    }
    let (code, v) = check_json(&root, &[]);
    assert_eq!(
        (code, v["status"]["level"].as_str()),
        (4, Some("fail")),
        "{v}"
    );
}

/// issue 13: right after demo-pki (365-day leaves), kubeadm's table says `364d` (it subtracts
/// a sub-second clock and truncates like Go's `int(d.Seconds())`); kubecert said `1y`. With a
/// fixed `--now` the whole-second arithmetic stays.
#[test]
fn residual_time_uses_the_precise_clock() {
    // Leaves issued at second T (a few seconds ahead), checked during second T itself, as
    // when `check` runs right after `demo-pki` or `renew`.
    let t = jiff::Timestamp::now().as_second() + 15;
    let issued = jiff::Timestamp::from_second(t).unwrap().to_string();
    let (_t, root) = demo(&["--now", &issued, "--key-algorithm", "ecdsa-p256"]);
    let (pki, kc) = (root.join("pki"), root.clone());
    loop {
        let n = jiff::Timestamp::now();
        assert!(n.as_second() <= t, "demo-pki took too long");
        if n.as_second() == t && n.subsec_nanosecond() >= 50_000_000 {
            assert!(n.subsec_nanosecond() < 600_000_000, "too late in second T");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let text = Check::dirs(&pki, &kc).ok();
    let line = text
        .lines()
        .find(|l| l.starts_with("apiserver "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("   364d   "), "{text}");
    // Fixed clock: whole seconds, as before (365 days exactly = `1y`).
    let (_, v) = check_json(&root, &["--now", &issued]);
    let r = row(&v, "apiserver");
    assert_eq!(r["residualTime"], 365 * 86400, "{r}");
    let text = Check::dirs(&pki, &kc).args(&["--now", &issued]).ok();
    assert!(
        text.contains("\napiserver ") && text.contains("   1y   "),
        "{text}"
    );
}
