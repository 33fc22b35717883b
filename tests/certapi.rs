//! The certificates API end to end: tests/certapi/server.py (a certificates.k8s.io/v1 API
//! server with kube-controller-manager's built-in signer) serving with a certificate of a
//! demo PKI's CA, the real kubectl, and kubecert's `renew --use-api`, `sign` and `approve`.
//! `make e2e-certapi` runs this file alone. Needs the default cargo feature `k8s`.
#![cfg(feature = "k8s")]

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A demo PKI, client certs from its CA (mkenv.sh) and a running API server.
struct Env {
    t: tempfile::TempDir,
    root: PathBuf,
    pki: PathBuf,
    api: PathBuf,
    server: Child,
    url: String,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.t.path().join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- server.log (last lines, reversed) ---\n{}",
                tail.join("\n")
            );
        }
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Env {
    fn new(demo_args: &[&str]) -> Env {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("k8s");
        let mut a = vec!["demo-pki", root.to_str().unwrap()];
        a.extend_from_slice(demo_args);
        ok(&a);
        let pki = root.join("pki");
        let api = t.path().join("api");
        let mkenv = repo().join("tests/certapi/mkenv.sh");
        let ca = pki.join("ca.crt");
        let ca_key = pki.join("ca.key");
        let o = run(Command::new("bash").arg(&mkenv).args([
            "--ca-cert",
            ca.to_str().unwrap(),
            "--ca-key",
            ca_key.to_str().unwrap(),
            api.to_str().unwrap(),
        ]));
        assert!(o.status.success(), "mkenv: {}", text(&o));
        let port_file = t.path().join("port");
        let log = std::fs::File::create(t.path().join("server.log")).unwrap();
        let server = Command::new("python3")
            .arg(repo().join("tests/certapi/server.py"))
            .args(["--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(api.join("server.crt"))
            .arg("--tls-key")
            .arg(api.join("server.key"))
            .arg("--client-ca")
            .arg(&ca)
            .arg("--cluster-signing-cert")
            .arg(&ca)
            .arg("--cluster-signing-key")
            .arg(&ca_key)
            .arg("--port-file")
            .arg(&port_file)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("python3 tests/certapi/server.py");
        let mut env = Env {
            t,
            root,
            pki,
            api,
            server,
            url: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                if !p.trim().is_empty() {
                    break p.trim().to_string();
                }
            }
            assert!(Instant::now() < deadline, "the API server did not start");
            if let Ok(Some(st)) = env.server.try_wait() {
                panic!("the API server exited: {st}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        env.url = format!("https://127.0.0.1:{port}");
        let o = run(Command::new("bash").arg(&mkenv).args([
            "--ca-cert",
            ca.to_str().unwrap(),
            "--ca-key",
            ca_key.to_str().unwrap(),
            "--server",
            &env.url,
            env.api.to_str().unwrap(),
        ]));
        assert!(o.status.success(), "mkenv --server: {}", text(&o));
        env
    }

    fn admin_conf(&self) -> PathBuf {
        self.api.join("admin.conf")
    }

    fn user_conf(&self) -> PathBuf {
        self.api.join("user.conf")
    }

    /// `--kubeconfig api/admin.conf --cert-dir ... --kubeconfig-dir ...`
    fn dirs(&self) -> Vec<String> {
        vec![
            "--kubeconfig".into(),
            self.admin_conf().display().to_string(),
            "--cert-dir".into(),
            self.pki.display().to_string(),
            "--kubeconfig-dir".into(),
            self.root.display().to_string(),
        ]
    }

    fn kubectl_as(&self, conf: &Path, args: &[&str]) -> Output {
        run(Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(conf)
            .args(args))
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let o = self.kubectl_as(&self.admin_conf(), args);
        assert!(o.status.success(), "kubectl {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn csr(&self, name: &str) -> Value {
        serde_json::from_str(&self.kubectl(&["get", "csr", name, "-o", "json"])).unwrap()
    }

    fn kubecert(&self, args: &[&str]) -> Output {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.extend(self.dirs());
        run(Command::new(bin()).args(&a))
    }

    /// Starts `kubecert renew ... --use-api` and returns it with the CSR name it printed.
    fn start_renew(&self, args: &[&str]) -> Renewal {
        let mut a: Vec<String> = vec!["renew".into()];
        a.extend(args.iter().map(|s| s.to_string()));
        a.push("--use-api".into());
        a.extend(self.dirs());
        let mut child = Command::new(bin())
            .args(&a)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubecert renew");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let name = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    lines.push(l.clone());
                    if let Some(rest) = l.strip_prefix("[certs] certificate request \"") {
                        break rest.trim_end_matches("\" created").to_string();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let o = child.wait_with_output().unwrap();
                    panic!(
                        "renew --use-api printed no request name: {lines:?} {}",
                        text(&o)
                    );
                }
            }
        };
        Renewal {
            child,
            name,
            rx,
            lines,
        }
    }
}

struct Renewal {
    child: Child,
    name: String,
    rx: mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl Renewal {
    /// Waits for the process; returns (success, stdout lines, stderr).
    fn finish(mut self) -> (bool, Vec<String>, String) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("renew --use-api did not finish");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        while let Ok(l) = self.rx.recv_timeout(Duration::from_millis(500)) {
            self.lines.push(l);
        }
        (status.success(), self.lines, err)
    }
}

/// A background `kubecert sign --watch`.
struct Signer {
    child: Child,
    out: PathBuf,
}

impl Signer {
    fn start(env: &Env, signer: &str) -> Signer {
        let out = env
            .t
            .path()
            .join(format!("sign-{}.out", signer.replace('/', "_")));
        let mut a: Vec<String> = vec![
            "sign".into(),
            "--signer-name".into(),
            signer.into(),
            "--watch".into(),
        ];
        a.extend(env.dirs());
        let child = Command::new(bin())
            .args(&a)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kubecert sign --watch");
        Signer { child, out }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// SIGTERM, then the exit status must be 0 within 10 s.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                assert!(s.success(), "sign --watch exited with {s} on SIGTERM");
                return;
            }
            assert!(Instant::now() < deadline, "sign --watch ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn x509_text(cert: &Path) -> String {
    let (okk, out) = openssl_status(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-subject",
        "-ext",
        "subjectAltName,extendedKeyUsage,basicConstraints",
    ]);
    assert!(okk, "{out}");
    out
}

fn serial(cert: &Path) -> String {
    openssl_status(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-serial"]).1
}

fn verify(ca: &Path, cert: &Path) -> bool {
    let (okk, out) = openssl_status(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    okk && out.contains(": OK")
}

fn condition<'a>(csr: &'a Value, type_: &str) -> Option<&'a Value> {
    csr["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// `kubectl get csr` (the Table) shows NAME ... CONDITION.
fn listed_with(env: &Env, name: &str, cond: &str) -> bool {
    env.kubectl(&["get", "csr"])
        .lines()
        .any(|l| l.starts_with(name) && l.trim_end().ends_with(cond))
}

// ---------------------------------------------------------------------------------------------

#[test]
fn renew_admin_conf_through_the_builtin_signer_after_kubectl_approve() {
    let env = Env::new(&[]);
    let conf = env.root.join("admin.conf");
    let old_pem = env.t.path().join("old-admin.crt");
    kubeconfig_cert(&conf, &old_pem);
    let r = env.start_renew(&["admin.conf"]);
    let name = r.name.clone();
    assert!(
        r.name.starts_with("kubeadm-cert-kubernetes-admin-") && r.name.len() == 35,
        "{}",
        r.name
    );
    assert!(listed_with(&env, &r.name, "Pending"));
    let csr = env.csr(&r.name);
    assert_eq!(
        csr["spec"]["signerName"],
        "kubernetes.io/kube-apiserver-client"
    );
    assert_eq!(
        csr["spec"]["usages"],
        serde_json::json!(["digital signature", "key encipherment", "client auth"])
    );
    assert_eq!(csr["spec"]["username"], "kubernetes-admin");
    env.kubectl(&["certificate", "approve", &r.name]);
    let (success, lines, err) = r.finish();
    assert!(success, "{lines:?} {err}");
    assert!(
        lines.iter().any(|l| l
            == "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself renewed"),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"No component needs a restart.".to_string()),
        "{lines:?}"
    );
    assert!(listed_with(&env, &name, "Approved,Issued"));
    let new_pem = env.t.path().join("new-admin.crt");
    kubeconfig_cert(&conf, &new_pem);
    assert_ne!(serial(&old_pem), serial(&new_pem));
    assert!(verify(&env.pki.join("ca.crt"), &new_pem));
    assert_eq!(x509_text(&old_pem), x509_text(&new_pem));
    // The renewed kubeconfig authenticates to the API server as the same identity.
    let o = run(Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&conf)
        .args(["--server", &env.url, "auth", "whoami", "-o", "json"]));
    assert!(o.status.success(), "{}", text(&o));
    let who: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "kubernetes-admin");
    // A backup of the replaced kubeconfig was made.
    let backups: Vec<_> = std::fs::read_dir(env.root.join("kubecert-backup"))
        .unwrap()
        .collect();
    assert_eq!(backups.len(), 1);
}

#[test]
fn renew_apiserver_signed_by_kubecert_sign_and_installed() {
    let env = Env::new(&[]);
    let crt = env.pki.join("apiserver.crt");
    let before = x509_text(&crt);
    let old_serial = serial(&crt);
    let signer = Signer::start(&env, "kubecert.io/apiserver");
    let r = env.start_renew(&["apiserver", "--signer-name", "kubecert.io/apiserver"]);
    assert!(
        r.name.starts_with("kubeadm-cert-kube-apiserver-"),
        "{}",
        r.name
    );
    assert!(listed_with(&env, &r.name, "Pending"));
    let csr = env.csr(&r.name);
    assert_eq!(
        csr["spec"]["usages"],
        serde_json::json!(["digital signature", "key encipherment", "server auth"])
    );
    env.kubectl(&["certificate", "approve", &r.name]);
    let (success, lines, err) = r.finish();
    assert!(success, "{lines:?} {err}");
    assert!(
        lines.contains(&"certificate for serving the Kubernetes API renewed".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("kube-apiserver")),
        "{lines:?}"
    );
    assert_ne!(serial(&crt), old_serial);
    assert!(verify(&env.pki.join("ca.crt"), &crt));
    assert_eq!(x509_text(&crt), before);
    let (k, out) = openssl_status(&[
        "x509",
        "-in",
        crt.to_str().unwrap(),
        "-noout",
        "-ext",
        "keyUsage",
    ]);
    assert!(
        k && out.contains("Digital Signature, Key Encipherment"),
        "{out}"
    );
    // The key on disk belongs to the installed certificate.
    let pubkey = |args: &[&str]| openssl_status(args).1;
    assert_eq!(
        pubkey(&["x509", "-in", crt.to_str().unwrap(), "-noout", "-pubkey"]),
        pubkey(&[
            "pkey",
            "-in",
            env.pki.join("apiserver.key").to_str().unwrap(),
            "-pubout"
        ])
    );
    let out = signer.output();
    assert!(
        out.contains(&format!(
            "[sign] {}: signed",
            csr["metadata"]["name"].as_str().unwrap()
        )),
        "{out}"
    );
    signer.stop();
}

fn assert_fails_cleanly(r: Renewal, want: &[&str]) {
    let (success, lines, err) = r.finish();
    assert!(!success, "renew succeeded: {lines:?}");
    for w in want {
        assert!(err.contains(w), "stderr lacks {w:?}: {err}");
    }
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");
}

#[test]
fn denied_or_timed_out_requests_change_nothing() {
    let env = Env::new(&["--key-algorithm", "ecdsa-p256"]);
    let before = hash_tree(&env.root);
    // kubectl certificate deny.
    let r = env.start_renew(&["apiserver-kubelet-client", "--timeout", "60s"]);
    env.kubectl(&["certificate", "deny", &r.name]);
    let name = r.name.clone();
    assert_fails_cleanly(r, &["denied", &name, "KubectlDeny"]);
    assert_eq!(hash_tree(&env.root), before);
    assert!(listed_with(&env, &name, "Denied"));
    // Timeout: nobody approves.
    let r = env.start_renew(&["admin.conf", "--timeout", "3s"]);
    let name = r.name.clone();
    assert_fails_cleanly(r, &["timed out after 3s", &name, "Pending"]);
    assert_eq!(hash_tree(&env.root), before);
    // Approved, but no signer for the signer name: times out too, saying so.
    let r = env.start_renew(&[
        "front-proxy-client",
        "--signer-name",
        "kubecert.io/nobody",
        "--timeout",
        "4s",
    ]);
    env.kubectl(&["certificate", "approve", &r.name]);
    assert_fails_cleanly(r, &["timed out", "no certificate was issued"]);
    assert_eq!(hash_tree(&env.root), before);
    // Refused before any request is created.
    for (args, want) in [
        (&["apiserver"][..], "pass --signer-name"),
        (&["etcd-peer"][..], "pass --signer-name"),
        (&["super-admin.conf"][..], "system:masters"),
        (
            &[
                "apiserver",
                "--signer-name",
                "kubernetes.io/kube-apiserver-client",
            ][..],
            "client certificates from the cluster CA only",
        ),
    ] {
        let mut a = vec!["renew"];
        a.extend_from_slice(args);
        a.push("--use-api");
        let o = env.kubecert(&a);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        assert!(e.contains(want), "{args:?}: {e}");
    }
    assert_eq!(hash_tree(&env.root), before);
    let all: Value = serde_json::from_str(&env.kubectl(&["get", "csr", "-o", "json"])).unwrap();
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        3,
        "refusals created requests"
    );
}

#[test]
fn renew_etcd_server_signed_by_etcd_ca_and_etcd_accepts_it() {
    let env = Env::new(&["--key-algorithm", "ecdsa-p256"]);
    let crt = env.pki.join("etcd/server.crt");
    let before = x509_text(&crt);
    let old = serial(&crt);
    let signer = Signer::start(&env, "kubecert.io/etcd");
    let r = env.start_renew(&["etcd-server", "--signer-name", "kubecert.io/etcd"]);
    assert!(r.name.starts_with("kubeadm-cert-node-1-"), "{}", r.name);
    // kubecert approve (default policy) approves it: it renews this node's etcd-server.
    let o = env.kubecert(&["approve", "--all-pending", "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let res: Value = serde_json::from_slice(&o.stdout).unwrap();
    let item = &res["requests"][0];
    assert_eq!(item["name"], r.name.as_str());
    assert_eq!(item["decision"], "approved");
    assert_eq!(item["caName"], "etcd-ca");
    let (success, lines, err) = r.finish();
    assert!(success, "{lines:?} {err}");
    assert!(
        lines.contains(&"certificate for serving etcd renewed".to_string()),
        "{lines:?}"
    );
    assert_ne!(serial(&crt), old);
    assert_eq!(x509_text(&crt), before);
    assert!(verify(&env.pki.join("etcd/ca.crt"), &crt));
    assert!(!verify(&env.pki.join("ca.crt"), &crt));
    signer.stop();
    // A real etcd serves with it and accepts the healthcheck client.
    let etcd = Etcd::start(&env.pki, env.t.path());
    if let Err(last) = etcd.wait_healthy() {
        panic!(
            "etcd never became healthy with the renewed server cert: {last}\n{}",
            etcd.log()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// approve: legitimate vs forged requests
// ---------------------------------------------------------------------------------------------

const OPENSSL_CNF: &str =
    "[req]\ndistinguished_name = dn\nprompt = no\nstring_mask = nombstr\n[dn]\nCN = unused\n";

/// A PEM CSR made by openssl: an EC key, `subj`, SANs (`DNS:a,IP:1.2.3.4`), extra `-addext`.
fn openssl_csr(dir: &Path, tag: &str, subj: &str, sans: &str, extra: &[&str]) -> String {
    let cnf = dir.join("openssl.cnf");
    std::fs::write(&cnf, OPENSSL_CNF).unwrap();
    let key = dir.join(format!("{tag}.key"));
    let (k, out) = openssl_status(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        key.to_str().unwrap(),
    ]);
    assert!(k, "{out}");
    let csr = dir.join(format!("{tag}.csr"));
    let san = format!("subjectAltName={sans}");
    let mut a = vec![
        "req",
        "-new",
        "-config",
        cnf.to_str().unwrap(),
        "-key",
        key.to_str().unwrap(),
        "-subj",
        subj,
        "-out",
        csr.to_str().unwrap(),
    ];
    if !sans.is_empty() {
        a.extend(["-addext", &san]);
    }
    for e in extra {
        a.extend(["-addext", e]);
    }
    let (k, out) = openssl_status(&a);
    assert!(k, "{out}");
    std::fs::read_to_string(&csr).unwrap()
}

/// `kubectl create -f` a CSR object; returns its name.
fn create_csr(
    env: &Env,
    conf: &Path,
    name: &str,
    pem: &str,
    signer: &str,
    usages: &[&str],
    expiration: Option<u32>,
) -> String {
    use base64::Engine;
    let mut spec = serde_json::json!({
        "request": base64::engine::general_purpose::STANDARD.encode(pem),
        "signerName": signer,
        "usages": usages,
    });
    if let Some(e) = expiration {
        spec["expirationSeconds"] = e.into();
    }
    let obj = serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": spec,
    });
    let f = env.t.path().join(format!("{name}.json"));
    std::fs::write(&f, serde_json::to_vec(&obj).unwrap()).unwrap();
    let o = env.kubectl_as(conf, &["create", "-f", f.to_str().unwrap()]);
    assert!(o.status.success(), "create {name}: {}", text(&o));
    name.to_string()
}

fn apiserver_sans(pki: &Path) -> String {
    let out = x509_text(&pki.join("apiserver.crt"));
    let line = out
        .lines()
        .skip_while(|l| !l.contains("Subject Alternative Name"))
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    line.replace("IP Address:", "IP:").replace(", ", ",")
}

fn decisions(v: &Value) -> std::collections::BTreeMap<String, (String, String)> {
    v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                (
                    r["decision"].as_str().unwrap().to_string(),
                    r["reasons"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_str().unwrap())
                        .collect::<Vec<_>>()
                        .join(" | "),
                ),
            )
        })
        .collect()
}

#[test]
fn approve_approves_the_legitimate_request_and_refuses_forged_ones() {
    let env = Env::new(&["--key-algorithm", "ecdsa-p256"]);
    let d = env.t.path().join("forge");
    std::fs::create_dir_all(&d).unwrap();
    let sans = apiserver_sans(&env.pki);
    let admin = env.admin_conf();
    let server_usages = ["digital signature", "key encipherment", "server auth"];
    let legit_pem = openssl_csr(&d, "legit", "/CN=kube-apiserver", &sans, &[]);
    let legit = create_csr(
        &env,
        &admin,
        "legit",
        &legit_pem,
        "kubecert.io/apiserver",
        &server_usages,
        Some(86400),
    );
    let extra_san = create_csr(
        &env,
        &admin,
        "extra-san",
        &openssl_csr(
            &d,
            "extra",
            "/CN=kube-apiserver",
            &format!("{sans},DNS:evil.example.com"),
            &[],
        ),
        "kubecert.io/apiserver",
        &server_usages,
        None,
    );
    let other_cn = create_csr(
        &env,
        &admin,
        "other-cn",
        &openssl_csr(&d, "cn", "/CN=kube-apiserver-evil", &sans, &[]),
        "kubecert.io/apiserver",
        &server_usages,
        None,
    );
    let ca_req = create_csr(
        &env,
        &admin,
        "ca-request",
        &openssl_csr(
            &d,
            "ca",
            "/CN=kube-apiserver",
            &sans,
            &["basicConstraints=critical,CA:TRUE"],
        ),
        "kubecert.io/apiserver",
        &server_usages,
        None,
    );
    let wrong_signer = create_csr(
        &env,
        &admin,
        "wrong-signer",
        &legit_pem,
        "example.com/anything",
        &server_usages,
        None,
    );
    let client_signer = create_csr(
        &env,
        &admin,
        "client-signer",
        &legit_pem,
        "kubernetes.io/kube-apiserver-client",
        &["digital signature", "key encipherment", "client auth"],
        None,
    );
    let outsider = create_csr(
        &env,
        &env.user_conf(),
        "outsider",
        &legit_pem,
        "kubecert.io/apiserver",
        &server_usages,
        None,
    );
    let too_long = create_csr(
        &env,
        &admin,
        "too-long",
        &legit_pem,
        "kubecert.io/apiserver",
        &server_usages,
        Some(2 * 365 * 86400),
    );
    let bad_usage = create_csr(
        &env,
        &admin,
        "bad-usage",
        &legit_pem,
        "kubecert.io/apiserver",
        &[
            "digital signature",
            "key encipherment",
            "server auth",
            "client auth",
        ],
        None,
    );
    let unrelated = create_csr(
        &env,
        &admin,
        "unrelated",
        &openssl_csr(
            &d,
            "unrelated",
            "/CN=somebody-else",
            "DNS:elsewhere.example",
            &[],
        ),
        "kubecert.io/apiserver",
        &["digital signature", "client auth"],
        None,
    );
    // Dry run: decisions, nothing written.
    let o = env.kubecert(&["approve", "--all-pending", "--dry-run", "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let dry = decisions(&serde_json::from_slice(&o.stdout).unwrap());
    assert_eq!(dry[&legit].0, "would-approve", "{dry:?}");
    assert_eq!(dry[&ca_req].0, "would-deny", "{dry:?}");
    assert!(listed_with(&env, &legit, "Pending"));
    // The real run.
    let o = env.kubecert(&["approve", "--all-pending", "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let res: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(res["changed"], true);
    let got = decisions(&res);
    let expect = [
        (&legit, "approved", "renews apiserver"),
        (&extra_san, "pending", "extra SAN(s) DNS:evil.example.com"),
        (&other_cn, "pending", "subject \"CN=kube-apiserver-evil\""),
        (&ca_req, "denied", "CA certificate"),
        (
            &wrong_signer,
            "denied",
            "signer example.com/anything is not allowed",
        ),
        (
            &client_signer,
            "denied",
            "issues client certificates from the cluster CA",
        ),
        (&outsider, "denied", "requester \"developer\""),
        (&too_long, "denied", "exceeds the policy maximum 31536000s"),
        (&bad_usage, "denied", "usage \"client auth\" is not allowed"),
        (&unrelated, "pending", "not this node's business"),
    ];
    for (name, decision, why) in expect {
        let (dec, reasons) = &got[name.as_str()];
        assert_eq!(dec, decision, "{name}: {reasons}");
        assert!(reasons.contains(why), "{name}: {reasons}");
    }
    // The conditions are in the cluster, as kubectl shows them.
    let c = env.csr(&legit);
    let approved = condition(&c, "Approved").expect("Approved condition");
    assert_eq!(approved["reason"], "KubecertApprove");
    let c = env.csr(&too_long);
    let denied = condition(&c, "Denied").expect("Denied condition");
    assert_eq!(denied["reason"], "KubecertPolicy");
    assert!(denied["message"]
        .as_str()
        .unwrap()
        .contains("exceeds the policy maximum"));
    assert!(listed_with(&env, &extra_san, "Pending"));
    assert!(listed_with(&env, &outsider, "Denied"));
    // With `unmatched: deny`, the forged variants are denied; the unrelated request stays.
    let policy = env.t.path().join("policy.yaml");
    std::fs::write(&policy, "unmatched: deny\n").unwrap();
    let o = env.kubecert(&[
        "approve",
        &extra_san,
        &other_cn,
        &unrelated,
        "--policy",
        policy.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let got = decisions(&serde_json::from_slice(&o.stdout).unwrap());
    assert_eq!(got[&extra_san].0, "denied");
    assert_eq!(got[&other_cn].0, "denied");
    assert_eq!(got[&unrelated].0, "pending");
    // A policy that allows the developer.
    std::fs::write(&policy, "users: [developer]\n").unwrap();
    let o = env.kubecert(&["approve", &outsider, "--policy", policy.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("skipped"),
        "{}",
        text(&o)
    );
    // A named request that does not exist: exit 1.
    let o = env.kubecert(&["approve", "no-such-csr"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // kubecert sign (one pass) signs the approved request with the CA of the matching row,
    // and fails an approved request whose usages do not fit its role.
    let sign_bad = create_csr(
        &env,
        &admin,
        "approved-bad-usage",
        &legit_pem,
        "kubecert.io/apiserver",
        &[
            "digital signature",
            "key encipherment",
            "server auth",
            "code signing",
        ],
        None,
    );
    env.kubectl(&["certificate", "approve", &sign_bad]);
    let o = env.kubecert(&[
        "sign",
        "--signer-name",
        "kubecert.io/apiserver",
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let res: Value = serde_json::from_slice(&o.stdout).unwrap();
    let by_name = |n: &str| {
        res["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_name(&legit)["action"], "signed");
    assert_eq!(by_name(&legit)["caName"], "ca");
    assert_eq!(by_name(&sign_bad)["action"], "failed");
    assert_eq!(by_name(&bad_usage)["action"], "ignored");
    assert_eq!(by_name(&too_long)["action"], "ignored");
    let c = env.csr(&sign_bad);
    assert_eq!(
        condition(&c, "Failed").expect("Failed")["reason"],
        "SignerValidationFailure"
    );
    let c = env.csr(&legit);
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(c["status"]["certificate"].as_str().unwrap())
        .unwrap();
    let issued = env.t.path().join("legit.crt");
    std::fs::write(&issued, pem).unwrap();
    assert!(verify(&env.pki.join("ca.crt"), &issued));
    let (k, out) = openssl_status(&[
        "x509",
        "-in",
        issued.to_str().unwrap(),
        "-noout",
        "-enddate",
        "-startdate",
    ]);
    assert!(k, "{out}");
    // expirationSeconds 86400 was honoured (NotAfter - NotBefore = 1 day + 5 min backdate).
    let issued_text = x509_text(&issued);
    assert_eq!(issued_text, x509_text(&env.pki.join("apiserver.crt")));
    // The JSON-RPC `approve` method: same decisions (dry run over stdio).
    let params = serde_json::json!({
        "names": [&unrelated],
        "dry_run": true,
        "kubeconfig": env.admin_conf(),
        "cert_dir": env.pki,
        "kubeconfig_dir": env.root,
    });
    let req = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "approve", "params": params});
    let mut child = Command::new(bin())
        .args(["serve", "--stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{req}").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let resp: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        resp["result"]["requests"][0]["decision"], "pending",
        "{resp}"
    );
    assert_eq!(resp["result"]["dryRun"], true);
}
