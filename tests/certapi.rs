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
        Env::with_server(demo_args, None, &[])
    }

    /// An Env whose server is seeded with `nodes` (a core/v1 List) and gets `server_args`.
    fn with_server(demo_args: &[&str], nodes: Option<&Value>, server_args: &[&str]) -> Env {
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
        let mut extra: Vec<String> = server_args.iter().map(|s| s.to_string()).collect();
        if let Some(n) = nodes {
            let seed = t.path().join("seed.json");
            std::fs::write(&seed, serde_json::to_vec(n).unwrap()).unwrap();
            extra.extend(["--seed".to_string(), seed.display().to_string()]);
        }
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
            .args(&extra)
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

    /// A kubeconfig of `system:node:<node>` in `system:nodes` (a client certificate from the
    /// cluster CA, made by mkenv.sh), as a kubelet has.
    fn node_conf(&self, node: &str) -> PathBuf {
        let dir = self.t.path().join(format!("node-{node}"));
        let cn = format!("system:node:{node}");
        let o = run(Command::new("bash")
            .arg(repo().join("tests/certapi/mkenv.sh"))
            .args(["--ca-cert"])
            .arg(self.pki.join("ca.crt"))
            .arg("--ca-key")
            .arg(self.pki.join("ca.key"))
            .args([
                "--server",
                &self.url,
                "--user-cn",
                &cn,
                "--user-org",
                "system:nodes",
            ])
            .arg(&dir));
        assert!(o.status.success(), "mkenv node {node}: {}", text(&o));
        dir.join("user.conf")
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

// ---------------------------------------------------------------------------------------------
// approve --kubelet-serving
// ---------------------------------------------------------------------------------------------

const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
const SERVING_USAGES: [&str; 3] = ["digital signature", "key encipherment", "server auth"];

fn node_obj(name: &str, addrs: &[(&str, &str)]) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "status": {"addresses": addrs.iter()
            .map(|(t, a)| serde_json::json!({"type": t, "address": a}))
            .collect::<Vec<_>>()},
    })
}

fn node_list(nodes: &[Value]) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": nodes})
}

/// `kubectl get csr -o json`: name → status (conditions without timestamps, certificate set).
fn csr_states(env: &Env) -> std::collections::BTreeMap<String, String> {
    let v: Value = serde_json::from_str(&env.kubectl(&["get", "csr", "-o", "json"])).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let conds: Vec<String> = c["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| format!("{}:{}", x["type"], x["reason"]))
                .collect();
            let issued = !c["status"]["certificate"].is_null();
            (
                c["metadata"]["name"].as_str().unwrap().to_string(),
                format!("{conds:?} issued={issued}"),
            )
        })
        .collect()
}

/// `kubectl get csr NAME -o jsonpath={.status.conditions[*].type}`.
fn condition_types(env: &Env, name: &str) -> String {
    env.kubectl(&[
        "get",
        "csr",
        name,
        "-o",
        "jsonpath={.status.conditions[*].type}",
    ])
}

/// findings of one request in an approve result: (code, message) pairs.
fn findings_of(v: &Value, name: &str) -> Vec<(String, String)> {
    let r = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {v}"));
    r["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn utc_in(seconds: i64) -> String {
    let o = run(Command::new("date").args([
        "-u",
        "-d",
        &format!("{seconds} seconds"),
        "+%Y-%m-%dT%H:%M:%SZ",
    ]));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn approve_kubelet_serving_only_for_addresses_of_the_node() {
    let nodes = node_list(&[
        node_obj(
            "node-a",
            &[
                ("InternalIP", "10.0.0.11"),
                ("ExternalIP", "203.0.113.11"),
                ("Hostname", "node-a"),
                ("InternalDNS", "node-a.cluster.internal"),
            ],
        ),
        node_obj(
            "node-b",
            &[("InternalIP", "10.0.0.12"), ("Hostname", "node-b")],
        ),
    ]);
    let env = Env::with_server(&["--key-algorithm", "ecdsa-p256"], Some(&nodes), &[]);
    let d = env.t.path().join("kubelet");
    std::fs::create_dir_all(&d).unwrap();
    let (conf_a, conf_c) = (env.node_conf("node-a"), env.node_conf("node-c"));
    let subj_a = "/O=system:nodes/CN=system:node:node-a";
    // The kubelet's request: a subset of node-a's addresses.
    let good = create_csr(
        &env,
        &conf_a,
        "a-good",
        &openssl_csr(
            &d,
            "good",
            subj_a,
            "DNS:node-a,DNS:node-a.cluster.internal,IP:10.0.0.11",
            &[],
        ),
        KUBELET_SERVING,
        &SERVING_USAGES,
        None,
    );
    let extra = create_csr(
        &env,
        &conf_a,
        "a-extra-san",
        &openssl_csr(
            &d,
            "extra",
            subj_a,
            "DNS:node-a,IP:10.0.0.11,DNS:evil.example.com",
            &[],
        ),
        KUBELET_SERVING,
        &SERVING_USAGES,
        None,
    );
    let foreign = create_csr(
        &env,
        &conf_a,
        "a-for-b",
        &openssl_csr(
            &d,
            "foreign",
            "/O=system:nodes/CN=system:node:node-b",
            "DNS:node-b,IP:10.0.0.12",
            &[],
        ),
        KUBELET_SERVING,
        &SERVING_USAGES,
        None,
    );
    let good_pem = openssl_csr(&d, "good2", subj_a, "IP:10.0.0.11", &[]);
    let other_signer = create_csr(
        &env,
        &conf_a,
        "a-other-signer",
        &good_pem,
        "example.com/kubelet-serving",
        &SERVING_USAGES,
        None,
    );
    let client_usage = create_csr(
        &env,
        &conf_a,
        "a-client-usage",
        &good_pem,
        KUBELET_SERVING,
        &["digital signature", "client auth"],
        None,
    );
    let no_node = create_csr(
        &env,
        &conf_c,
        "c-no-node",
        &openssl_csr(
            &d,
            "c",
            "/O=system:nodes/CN=system:node:node-c",
            "DNS:node-c,IP:10.0.0.13",
            &[],
        ),
        KUBELET_SERVING,
        &SERVING_USAGES,
        None,
    );
    let all = [
        &good,
        &extra,
        &foreign,
        &other_signer,
        &client_usage,
        &no_node,
    ];
    let before = csr_states(&env);
    assert_eq!(before.len(), all.len());
    assert!(
        before.values().all(|s| s == "[] issued=false"),
        "{before:?}"
    );
    // The PKI approver does not touch kubelet requests (not this node's business).
    let o = env.kubecert(&["approve", &good, "--dry-run", "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let plain = decisions(&serde_json::from_slice(&o.stdout).unwrap());
    assert_eq!(plain[&good].0, "pending", "{plain:?}");
    // Dry run: the decisions, nothing written.
    let o = env.kubecert(&[
        "approve",
        "--kubelet-serving",
        "--all-pending",
        "--dry-run",
        "-o",
        "json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let dry: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(dry["kubeletServing"], true);
    assert_eq!(dry["changed"], false);
    let got = decisions(&dry);
    assert_eq!(got[&good].0, "would-approve", "{got:?}");
    assert_eq!(got[&extra].0, "would-deny", "{got:?}");
    assert!(
        !got.contains_key(&other_signer),
        "another signer is not listed: {got:?}"
    );
    assert_eq!(csr_states(&env), before, "the dry run changed the cluster");
    // The real run.
    let o = env.kubecert(&[
        "approve",
        "--kubelet-serving",
        "--all-pending",
        "-o",
        "json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let res: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(res["changed"], true);
    let got = decisions(&res);
    let expect: [(&String, &str, &str); 5] = [
        (&good, "approved", "all addresses of the Node"),
        (
            &extra,
            "denied",
            "CSR \"a-extra-san\": subjectAltName DNS:evil.example.com is not an address of node \"node-a\"",
        ),
        (
            &foreign,
            "denied",
            "CSR \"a-for-b\": node \"node-a\" asks for a certificate of node \"node-b\"",
        ),
        (
            &client_usage,
            "denied",
            "usage \"client auth\" is not allowed for a kubelet serving certificate",
        ),
        (
            &no_node,
            "pending",
            "CSR \"c-no-node\": node \"node-c\" not found",
        ),
    ];
    for (name, decision, why) in expect {
        let (dec, reasons) = &got[name.as_str()];
        assert_eq!(dec, decision, "{name}: {reasons}");
        assert!(reasons.contains(why), "{name}: {reasons}");
    }
    assert_eq!(got.len(), 5, "{got:?}");
    let codes =
        |n: &str| -> Vec<String> { findings_of(&res, n).into_iter().map(|f| f.0).collect() };
    assert!(codes(&good).is_empty());
    assert_eq!(codes(&extra), ["san-not-of-node"]);
    // a-for-b: another node's CN, and SANs of node-b, not node-a.
    assert_eq!(
        codes(&foreign),
        ["foreign-node", "san-not-of-node", "san-not-of-node"]
    );
    assert!(findings_of(&res, &foreign)[1].1.contains("DNS:node-b"));
    assert_eq!(codes(&client_usage), ["usage-not-allowed", "usage-missing"]);
    assert_eq!(codes(&no_node), ["node-not-found"]);
    // The cluster, as kubectl shows it: approved and issued by the built-in signer, denied
    // with the reasons in the message, the rest untouched.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !listed_with(&env, &good, "Approved,Issued") {
        assert!(Instant::now() < deadline, "{good} was not issued");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(condition_types(&env, &good), "Approved");
    let c = env.csr(&good);
    assert_eq!(
        condition(&c, "Approved").unwrap()["reason"],
        "KubecertApprove"
    );
    let c = env.csr(&extra);
    let denied = condition(&c, "Denied").expect("Denied");
    assert_eq!(denied["reason"], "KubecertPolicy");
    assert!(denied["message"]
        .as_str()
        .unwrap()
        .contains("DNS:evil.example.com is not an address of node \"node-a\""));
    assert_eq!(condition_types(&env, &foreign), "Denied");
    assert_eq!(condition_types(&env, &client_usage), "Denied");
    assert_eq!(condition_types(&env, &no_node), "");
    assert_eq!(condition_types(&env, &other_signer), "");
    let after = csr_states(&env);
    for n in [&other_signer, &no_node] {
        assert_eq!(after[n.as_str()], before[n.as_str()], "{n} changed");
    }
    // The issued certificate: from the cluster CA, node-a's subject and SANs, serverAuth.
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(c_cert(&env, &good))
        .unwrap();
    let issued = env.t.path().join("a-good.crt");
    std::fs::write(&issued, pem).unwrap();
    assert!(verify(&env.pki.join("ca.crt"), &issued));
    let x = x509_text(&issued);
    assert!(x.contains("CN = system:node:node-a"), "{x}");
    assert!(
        x.contains("DNS:node-a, DNS:node-a.cluster.internal, IP Address:10.0.0.11"),
        "{x}"
    );
    assert!(x.contains("TLS Web Server Authentication"), "{x}");
    // A wrong signer, named: not touched, said so.
    let o = env.kubecert(&["approve", "--kubelet-serving", &other_signer, "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(decisions(&v)[&other_signer].0, "pending");
    assert_eq!(findings_of(&v, &other_signer)[0].0, "not-kubelet-serving");
    assert_eq!(v["changed"], false);
    assert_eq!(condition_types(&env, &other_signer), "");
    // node-c registers: the pending request is approved on the next run (text output).
    let nc = env.t.path().join("node-c.json");
    std::fs::write(
        &nc,
        serde_json::to_vec(&node_obj(
            "node-c",
            &[("InternalIP", "10.0.0.13"), ("Hostname", "node-c")],
        ))
        .unwrap(),
    )
    .unwrap();
    env.kubectl(&["create", "-f", nc.to_str().unwrap()]);
    let o = env.kubecert(&["approve", "--kubelet-serving", "--all-pending"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("[approve] c-no-node: approved (node node-c)\n"),
        "{out}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !listed_with(&env, &no_node, "Approved,Issued") {
        assert!(Instant::now() < deadline, "{no_node} was not issued");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Nothing pending is left: the run says so.
    let o = env.kubecert(&["approve", "--kubelet-serving", "--all-pending"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "[approve] no pending kubelet-serving certificate signing request\n"
    );
    // Denied requests are not judged again (skipped), a missing one is exit 1.
    let o = env.kubecert(&["approve", "--kubelet-serving", &extra, "no-such-csr"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(
            "[approve] a-extra-san: skipped (node node-a)\n    - not pending (Denied): left alone"
        ),
        "{out}"
    );
    assert!(out.contains("[approve] no-such-csr: NOT FOUND"), "{out}");
    // The JSON-RPC `approve` method with kubelet_serving (dry run over stdio).
    let fresh = create_csr(
        &env,
        &conf_a,
        "a-fresh",
        &openssl_csr(&d, "fresh", subj_a, "DNS:node-a,IP:203.0.113.11", &[]),
        KUBELET_SERVING,
        &["digital signature", "server auth"],
        None,
    );
    let params = serde_json::json!({
        "names": [&fresh, &extra],
        "kubelet_serving": true,
        "dry_run": true,
        "kubeconfig": env.admin_conf(),
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
    let r = &resp["result"];
    assert_eq!(r["kubeletServing"], true, "{resp}");
    assert_eq!(r["requests"][0]["decision"], "would-approve", "{resp}");
    assert_eq!(r["requests"][0]["node"], "node-a", "{resp}");
    assert_eq!(r["requests"][1]["decision"], "skipped", "{resp}");
    assert_eq!(condition_types(&env, &fresh), "");
}

fn c_cert(env: &Env, name: &str) -> String {
    env.csr(name)["status"]["certificate"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no certificate"))
        .to_string()
}

#[test]
fn approve_kubelet_serving_reports_approved_but_not_issued() {
    let nodes = node_list(&[node_obj("node-a", &[("InternalIP", "10.0.0.11")])]);
    // No signer for kubelet-serving here: an approved request stays without a certificate.
    let env = Env::with_server(
        &["--key-algorithm", "ecdsa-p256"],
        Some(&nodes),
        &["--signer", "kubernetes.io/kube-apiserver-client"],
    );
    let d = env.t.path().join("kubelet");
    std::fs::create_dir_all(&d).unwrap();
    let conf_a = env.node_conf("node-a");
    let name = create_csr(
        &env,
        &conf_a,
        "a-stuck",
        &openssl_csr(
            &d,
            "stuck",
            "/O=system:nodes/CN=system:node:node-a",
            "IP:10.0.0.11",
            &[],
        ),
        KUBELET_SERVING,
        &SERVING_USAGES,
        None,
    );
    let o = env.kubecert(&["approve", "--kubelet-serving", "--all-pending"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(listed_with(&env, &name, "Approved"));
    let before = csr_states(&env);
    // Within the bound (5 min by default): nothing to report.
    let o = env.kubecert(&[
        "approve",
        "--kubelet-serving",
        "--all-pending",
        "--now",
        &utc_in(240),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "[approve] no pending kubelet-serving certificate signing request\n"
    );
    // Past it: reported, exit 3, nothing changed.
    let o = env.kubecert(&[
        "approve",
        "--kubelet-serving",
        "--all-pending",
        "--now",
        &utc_in(420),
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(decisions(&v)[&name].0, "skipped");
    let f = findings_of(&v, &name);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0, "approved-not-issued");
    assert!(
        f[0].1
            .starts_with("CSR \"a-stuck\" (node \"node-a\"): approved 7m"),
        "{f:?}"
    );
    assert!(f[0].1.contains("no certificate issued within 5m"), "{f:?}");
    assert_eq!(v["policy"]["issuedWithinSeconds"], 300);
    // --issued-within and the policy field move the bound.
    let o = env.kubecert(&[
        "approve",
        "--kubelet-serving",
        &name,
        "--issued-within",
        "1m",
        "--now",
        &utc_in(120),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("    - [approved-not-issued] CSR \"a-stuck\" (node \"node-a\"): approved 2m"),
        "{out}"
    );
    assert!(out.contains("no certificate issued within 1m"), "{out}");
    let policy = env.t.path().join("policy.yaml");
    std::fs::write(&policy, "issuedWithinSeconds: 3600\n").unwrap();
    let o = env.kubecert(&[
        "approve",
        "--kubelet-serving",
        "--all-pending",
        "--policy",
        policy.to_str().unwrap(),
        "--now",
        &utc_in(420),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The reports changed nothing.
    assert_eq!(csr_states(&env), before);
    // A caller that may not read Nodes (the unprivileged user may list CSRs): the run fails
    // naming the Node, and nothing is approved or denied.
    let pending = create_csr(
        &env,
        &conf_a,
        "a-pending",
        &openssl_csr(
            &d,
            "pending",
            "/O=system:nodes/CN=system:node:node-a",
            "IP:10.0.0.11",
            &[],
        ),
        KUBELET_SERVING,
        &SERVING_USAGES,
        None,
    );
    let before = csr_states(&env);
    let o = run(Command::new(bin())
        .args([
            "approve",
            "--kubelet-serving",
            "--all-pending",
            "--kubeconfig",
        ])
        .arg(env.user_conf()));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("reading Node \"node-a\" for certificate signing request \"a-pending\" (nothing was approved or denied)"),
        "{err}"
    );
    assert!(err.contains("cannot get resource \"nodes\""), "{err}");
    assert_eq!(csr_states(&env), before);
    assert_eq!(condition_types(&env, &pending), "");
    // Bad input: a clear error, exit 2 (usage) or 1, nothing changed.
    let o = env.kubecert(&["approve", "--issued-within", "1m", "--all-pending"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--kubelet-serving"),
        "{}",
        text(&o)
    );
    let o = env.kubecert(&[
        "approve",
        "--kubelet-serving",
        "--all-pending",
        "--issued-within",
        "soon",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("issued_within \"soon\""),
        "{}",
        text(&o)
    );
    assert_eq!(csr_states(&env), before);
}
