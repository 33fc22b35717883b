//! `kubecert check --served` on a whole control-plane node made of real servers: a TLS etcd
//! (tests/common's launcher) and `openssl s_server` standing in for kube-apiserver, the
//! controller-manager, the scheduler and the kubelet, each on a free port read from its
//! static pod manifest or from the kubelet config. Renewing a certificate without
//! restarting its server makes check report `stale … restart <component>` and fail (exit
//! 4); restarting makes it `current` (exit 0). Served serials are checked against `openssl
//! x509 -serial` of the files. Fails (never skips) when etcd or openssl is missing.

mod common;
use common::*;
use serde_json::Value;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {port}");
}

/// Kills the child on drop (also when an assertion fails).
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_server` serving `cert`/`key` on 127.0.0.1:`port` (it loads them once, at
/// start, like the real components).
fn s_server(cert: &Path, key: &Path, port: u16) -> Proc {
    let child = Command::new("openssl")
        .args([
            "s_server",
            "-cert",
            cert.to_str().unwrap(),
            "-key",
            key.to_str().unwrap(),
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-www",
            "-quiet",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let p = Proc(child);
    wait_port(port);
    p
}

/// The serial of a PEM file as openssl prints it, lowercased (kubecert's form).
fn serial(pem: &Path) -> String {
    let out = openssl(&["x509", "-noout", "-serial", "-in", pem.to_str().unwrap()]);
    out.trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

/// A self-signed serving certificate and key made by openssl (as the kubelet's kubelet.crt,
/// or the in-memory certificates of the controller-manager and scheduler written to disk).
fn self_signed(cert: &Path, key: &Path, cn: &str, days: u32) {
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        &format!("/CN={cn}"),
        "-days",
        &days.to_string(),
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
}

fn rfc3339_in(days: u64) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + days * 86400;
    let o = Command::new("date")
        .args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn pod(name: &str, flags: &[String]) -> String {
    let mut m = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n    - {name}\n"
    );
    for f in flags {
        m.push_str(&format!("    - {f}\n"));
    }
    m.push_str(&format!("    name: {name}\n"));
    m
}

/// One node: the demo PKI, its manifests, the kubelet's config and cert dir, and the
/// servers. etcd 3.4 re-reads its certificate files on every handshake, so to behave like a
/// process that loaded them at start it runs on a copy of `pki/etcd` taken when it starts.
struct Node {
    _t: tempfile::TempDir,
    root: PathBuf,
    pki: PathBuf,
    manifests: PathBuf,
    kubelet_pki: PathBuf,
    kubelet_config: PathBuf,
    now: String,
    etcd: Option<Etcd>,
    servers: Vec<(&'static str, u16, Option<Proc>)>,
}

const STAND_INS: [&str; 4] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
];

impl Node {
    fn new() -> Node {
        let (t, root) = demo(&[]);
        let pki = root.join("pki");
        let manifests = root.join("manifests");
        let kubelet_pki = root.join("kubelet-pki");
        std::fs::create_dir_all(&manifests).unwrap();
        std::fs::create_dir_all(&kubelet_pki).unwrap();
        // The controller-manager and scheduler serve files kubecert is told about by their
        // manifests (--tls-cert-file); the kubelet its self-signed kubelet.crt.
        for c in ["kube-controller-manager", "kube-scheduler"] {
            self_signed(
                &pki.join(format!("{c}.crt")),
                &pki.join(format!("{c}.key")),
                c,
                365,
            );
        }
        self_signed(
            &kubelet_pki.join("kubelet.crt"),
            &kubelet_pki.join("kubelet.key"),
            "node-1@1700000000",
            365,
        );
        let mut n = Node {
            kubelet_config: root.join("kubelet-config.yaml"),
            _t: t,
            root,
            pki,
            manifests,
            kubelet_pki,
            now: rfc3339_in(30),
            etcd: None,
            servers: STAND_INS.iter().map(|c| (*c, free_port(), None)).collect(),
        };
        n.start_etcd();
        for c in STAND_INS {
            n.start(c);
        }
        n.write_configs();
        n
    }

    fn port(&self, c: &str) -> u16 {
        self.servers.iter().find(|s| s.0 == c).unwrap().1
    }

    /// The files the stand-in of `c` serves.
    fn files(&self, c: &str) -> (PathBuf, PathBuf) {
        match c {
            "kube-apiserver" => (
                self.pki.join("apiserver.crt"),
                self.pki.join("apiserver.key"),
            ),
            "kubelet" => (
                self.kubelet_pki.join("kubelet.crt"),
                self.kubelet_pki.join("kubelet.key"),
            ),
            _ => (
                self.pki.join(format!("{c}.crt")),
                self.pki.join(format!("{c}.key")),
            ),
        }
    }

    /// (Re)starts the stand-in of `c` on its port.
    fn start(&mut self, c: &str) {
        let i = self.servers.iter().position(|s| s.0 == c).unwrap();
        self.servers[i].2 = None;
        let (cert, key) = self.files(c);
        let port = self.servers[i].1;
        self.servers[i].2 = Some(s_server(&cert, &key, port));
    }

    /// (Re)starts etcd on a copy of the etcd certificates as they are now.
    fn start_etcd(&mut self) {
        self.etcd = None;
        let snap = self.root.join("etcd-snapshot");
        let _ = std::fs::remove_dir_all(&snap);
        std::fs::create_dir_all(snap.join("etcd")).unwrap();
        for f in std::fs::read_dir(self.pki.join("etcd")).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), snap.join("etcd").join(f.file_name())).unwrap();
        }
        // A fresh data dir each start: the ports are new, a stale membership would be wrong.
        let data = self.root.join("etcd-run");
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).unwrap();
        let e = Etcd::start(&snap, &data);
        e.wait_healthy()
            .unwrap_or_else(|l| panic!("{l}\n{}", e.log()));
        self.etcd = Some(e);
        self.write_configs();
    }

    /// The manifests (ports and files of the static pods) and the kubelet config.
    fn write_configs(&self) {
        let f = |p: PathBuf| p.display().to_string();
        if let Some(e) = &self.etcd {
            std::fs::write(
                self.manifests.join("etcd.yaml"),
                pod(
                    "etcd",
                    &[
                        format!("--advertise-client-urls={}", e.endpoint),
                        format!("--listen-client-urls={}", e.endpoint),
                        format!("--listen-peer-urls={}", e.peer),
                        format!("--cert-file={}", f(self.pki.join("etcd/server.crt"))),
                        format!("--peer-cert-file={}", f(self.pki.join("etcd/peer.crt"))),
                    ],
                ),
            )
            .unwrap();
        }
        for c in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            std::fs::write(
                self.manifests.join(format!("{c}.yaml")),
                pod(
                    c,
                    &[
                        "--bind-address=127.0.0.1".into(),
                        format!("--secure-port={}", self.port(c)),
                        format!("--tls-cert-file={}", f(self.files(c).0)),
                    ],
                ),
            )
            .unwrap();
        }
        std::fs::write(
            &self.kubelet_config,
            format!(
                "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\naddress: 127.0.0.1\nport: {}\nrotateCertificates: true\n",
                self.port("kubelet")
            ),
        )
        .unwrap();
    }

    fn check(&self, extra: &[&str]) -> Output {
        let mut a = vec![
            "check",
            "--cert-dir",
            self.pki.to_str().unwrap(),
            "--kubeconfig-dir",
            self.root.to_str().unwrap(),
            "--kubelet-pki",
            self.kubelet_pki.to_str().unwrap(),
            "--now",
            &self.now,
            "--served",
            "--manifests-dir",
            self.manifests.to_str().unwrap(),
            "--kubelet-config",
            self.kubelet_config.to_str().unwrap(),
            "--served-timeout",
            "2s",
        ];
        a.extend_from_slice(extra);
        kubecert(&a)
    }

    fn check_json(&self) -> (i32, Value) {
        let o = self.check(&["-o", "json"]);
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&o)));
        (o.status.code().unwrap(), v)
    }

    fn renew(&self, name: &str) {
        ok(&[
            "renew",
            name,
            "--cert-dir",
            self.pki.to_str().unwrap(),
            "--kubeconfig-dir",
            self.root.to_str().unwrap(),
        ]);
    }
}

fn verdicts(v: &Value) -> Vec<(String, String)> {
    v["served"]["endpoints"]
        .as_array()
        .unwrap_or_else(|| panic!("no served section: {v}"))
        .iter()
        .map(|e| {
            (
                e["endpoint"].as_str().unwrap().to_string(),
                e["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn all(verdict: &str) -> Vec<(String, String)> {
    [
        "etcd-client",
        "etcd-peer",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
    ]
    .iter()
    .map(|e| (e.to_string(), verdict.to_string()))
    .collect()
}

fn with(endpoint: &str, verdict: &str) -> Vec<(String, String)> {
    all("current")
        .into_iter()
        .map(|(e, v)| {
            if e == endpoint {
                (e, verdict.to_string())
            } else {
                (e, v)
            }
        })
        .collect()
}

fn endpoint<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["served"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == name)
        .unwrap()
}

#[test]
fn stale_until_restarted_for_etcd_and_every_stand_in() {
    let mut n = Node::new();

    // Everything current: exit 0, each served serial is the file's (openssl).
    let (code, v) = n.check_json();
    assert_eq!(verdicts(&v), all("current"), "{v}");
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["status"]["level"], "ok");
    assert_eq!(v["served"]["level"], "ok");
    for (ep, file) in [
        ("etcd-client", n.pki.join("etcd/server.crt")),
        ("etcd-peer", n.pki.join("etcd/peer.crt")),
        ("kube-apiserver", n.pki.join("apiserver.crt")),
        ("kubelet", n.kubelet_pki.join("kubelet.crt")),
    ] {
        let e = endpoint(&v, ep);
        assert_eq!(e["served"]["serial"], serial(&file), "{ep}: {e}");
        assert_eq!(e["onDisk"]["serial"], serial(&file), "{ep}: {e}");
        assert_eq!(e["certPath"], file.display().to_string());
        assert_eq!(e["summary"], "current");
    }
    let k = endpoint(&v, "kubelet");
    assert_eq!(k["component"], "kubelet");
    assert_eq!(k["addressSource"], "kubelet-config");
    assert_eq!(k["address"], format!("127.0.0.1:{}", n.port("kubelet")));

    // etcd-server renewed, etcd not restarted: stale, named restart, check's fail code.
    let before = serial(&n.pki.join("etcd/server.crt"));
    n.renew("etcd-server");
    let after = serial(&n.pki.join("etcd/server.crt"));
    assert_ne!(before, after);
    let (code, v) = n.check_json();
    assert_eq!(verdicts(&v), with("etcd-client", "stale"), "{v}");
    assert_eq!(code, 4, "{v}");
    assert_eq!(v["status"]["level"], "fail");
    assert_eq!(v["status"]["exitCode"], 2);
    let e = endpoint(&v, "etcd-client");
    assert_eq!(
        e["summary"],
        "stale: serving a certificate other than the one on disk — restart etcd"
    );
    assert_eq!(e["served"]["serial"], before);
    assert_eq!(
        before,
        serial(&n.root.join("etcd-snapshot/etcd/server.crt")),
        "etcd serves its copy"
    );
    assert_eq!(e["onDisk"]["serial"], after);
    assert_eq!(v["served"]["staleComponents"], serde_json::json!(["etcd"]));
    // The text output: kubeadm's table, then the section.
    let o = n.check(&[]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(4), "{out}");
    assert!(out.starts_with("CERTIFICATE "), "{out}");
    assert!(
        out.contains(&format!(
            "etcd-client (etcd) {}: stale: serving a certificate other than the one on disk — restart etcd\n    served   serial {before}  NotAfter ",
            n.etcd.as_ref().unwrap().endpoint.trim_start_matches("https://")
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("    on disk  serial {after}  NotAfter ")),
        "{out}"
    );
    assert!(out.ends_with("served level: fail\n"), "{out}");

    // Restart etcd: current, exit 0.
    n.start_etcd();
    let (code, v) = n.check_json();
    assert_eq!(verdicts(&v), all("current"), "{v}");
    assert_eq!(code, 0, "{v}");
    assert_eq!(endpoint(&v, "etcd-client")["served"]["serial"], after);

    // The same for each stand-in: its file changes on disk, the server keeps the old one.
    for c in STAND_INS {
        let (cert, key) = n.files(c);
        let old = serial(&cert);
        match c {
            "kube-apiserver" => n.renew("apiserver"),
            _ => self_signed(&cert, &key, c, 365),
        }
        let new = serial(&cert);
        assert_ne!(old, new);
        let (code, v) = n.check_json();
        assert_eq!(verdicts(&v), with(c, "stale"), "{c}: {v}");
        assert_eq!(code, 4, "{c}: {v}");
        let e = endpoint(&v, c);
        assert_eq!(
            e["summary"].as_str().unwrap(),
            format!("stale: serving a certificate other than the one on disk — restart {c}")
        );
        assert_eq!(
            (&e["served"]["serial"], &e["onDisk"]["serial"]),
            (&Value::from(old), &Value::from(new.clone()))
        );
        assert_eq!(v["served"]["staleComponents"], serde_json::json!([c]));
        n.start(c);
        let (code, v) = n.check_json();
        assert_eq!(verdicts(&v), all("current"), "{c}: {v}");
        assert_eq!(code, 0, "{c}: {v}");
        assert_eq!(endpoint(&v, c)["served"]["serial"], new);
    }

    // Metrics of the same probe: the served NotAfter per endpoint, and the verdicts.
    let prom = String::from_utf8_lossy(&n.check(&["-o", "prometheus"]).stdout).to_string();
    let (_, v) = n.check_json();
    let e = endpoint(&v, "kube-apiserver");
    let not_after = Command::new("date")
        .args(["-u", "-d", e["served"]["notAfter"].as_str().unwrap(), "+%s"])
        .output()
        .unwrap();
    let not_after = String::from_utf8(not_after.stdout).unwrap();
    let line = format!(
        "kubecert_served_cert_not_after_seconds{{component=\"kube-apiserver\",endpoint=\"kube-apiserver\",address=\"127.0.0.1:{}\",serial_number=\"",
        n.port("kube-apiserver")
    );
    let sample = prom
        .lines()
        .find(|l| l.starts_with(&line))
        .unwrap_or_else(|| panic!("{prom}"));
    assert!(
        sample.ends_with(&format!(" {}", not_after.trim())),
        "{sample}"
    );
    assert!(
        prom.contains(&format!(
            "kubecert_served_cert_verdict{{component=\"kubelet\",endpoint=\"kubelet\",address=\"127.0.0.1:{}\",verdict=\"current\"}} 1\n",
            n.port("kubelet")
        )),
        "{prom}"
    );
    // `metrics --served` renders the same series.
    let m = ok(&[
        "metrics",
        "--cert-dir",
        n.pki.to_str().unwrap(),
        "--kubeconfig-dir",
        n.root.to_str().unwrap(),
        "--kubelet-pki",
        n.kubelet_pki.to_str().unwrap(),
        "--state-file",
        n.root.join("no-state.json").to_str().unwrap(),
        "--served",
        "--manifests-dir",
        n.manifests.to_str().unwrap(),
        "--kubelet-config",
        n.kubelet_config.to_str().unwrap(),
    ]);
    assert!(m.contains(sample), "{m}");
    assert_eq!(
        m.matches("kubecert_served_cert_verdict{").count(),
        24,
        "six endpoints × four verdicts: {m}"
    );
    // Without --served: no served key, no served series.
    let o = kubecert(&[
        "check",
        "--cert-dir",
        n.pki.to_str().unwrap(),
        "--kubeconfig-dir",
        n.root.to_str().unwrap(),
        "--now",
        &n.now,
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.get("served").is_none(), "{v}");
}

#[test]
fn an_expired_served_certificate_fails_the_check() {
    let mut n = Node::new();
    // The kubelet serves (and has on disk) a certificate valid for one day; the check's
    // clock is 30 days ahead: the served certificate is expired, although current.
    let (cert, key) = n.files("kubelet");
    self_signed(&cert, &key, "node-1@1700000000", 1);
    n.start("kubelet");
    let (code, v) = n.check_json();
    assert_eq!(verdicts(&v), all("current"), "{v}");
    assert_eq!(code, 4, "{v}");
    assert_eq!(v["status"]["level"], "fail");
    let e = endpoint(&v, "kubelet");
    assert_eq!(e["servedExpired"], true);
    let s = e["summary"].as_str().unwrap();
    assert!(
        s.starts_with("current; expired: the served certificate expired "),
        "{s}"
    );
    assert_eq!(e["served"]["serial"], serial(&cert));
    let o = n.check(&[]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(4), "{out}");
    assert!(
        out.contains(&format!(
            "kubelet (kubelet) 127.0.0.1:{}: current; expired: the served certificate expired ",
            n.port("kubelet")
        )),
        "{out}"
    );
}

/// Six endpoints that never answer TLS: three accept TCP and stay silent, three are closed.
/// `check --served` reports them unreachable (warn: exit 3, never ok) within about one
/// timeout, not one per endpoint.
#[test]
fn six_dead_ports_warn_within_about_one_timeout() {
    let (_t, root) = demo(&[]);
    let silent: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut addrs: Vec<String> = silent
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    addrs.extend((0..3).map(|_| format!("127.0.0.1:{}", free_port())));
    let eps = [
        "etcd-client",
        "etcd-peer",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
    ];
    let overrides: Vec<String> = eps
        .iter()
        .zip(&addrs)
        .map(|(e, a)| format!("{e}={a}"))
        .collect();
    let mut a: Vec<String> = vec![
        "check".into(),
        "--cert-dir".into(),
        root.join("pki").to_str().unwrap().to_string(),
        "--kubeconfig-dir".into(),
        root.to_str().unwrap().to_string(),
        "--served".into(),
        "--manifests-dir".into(),
        root.join("none").to_str().unwrap().to_string(),
        "--kubelet-config".into(),
        root.join("none.yaml").to_str().unwrap().to_string(),
        "--served-timeout".into(),
        "1s".into(),
        "-o".into(),
        "json".into(),
    ];
    for o in &overrides {
        a.push("--endpoint".into());
        a.push(o.clone());
    }
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let t0 = Instant::now();
    let o = kubecert(&a);
    let took = t0.elapsed();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    assert_eq!(verdicts(&v), all("unreachable"), "{v}");
    assert_eq!(o.status.code(), Some(3), "{v}");
    assert_eq!(v["status"]["level"], "warn");
    assert_eq!(v["served"]["level"], "warn");
    for (i, e) in v["served"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let m = e["message"].as_str().unwrap();
        let want = if i < 3 {
            "no answer within 1000 ms"
        } else {
            "cannot connect to 127.0.0.1:"
        };
        assert!(m.contains(want), "{m}");
        assert!(e.get("served").is_none_or(Value::is_null), "{e}");
    }
    // Three silent ports probed one after the other would take 3 s.
    assert!(took < Duration::from_millis(2800), "{took:?}");
}

/// Bad probe options are refused before anything runs; the option flags need --served.
#[test]
fn probe_options_are_checked() {
    let (_t, root) = demo(&[]);
    let pki = root.join("pki");
    let o = kubecert(&[
        "check",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--served",
        "--served-timeout",
        "0s",
    ]);
    assert_fails(&o, 1, "timeout_ms must be positive");
    let o = kubecert(&[
        "check",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--endpoint",
        "kubelet=127.0.0.1:1",
    ]);
    assert_fails(&o, 2, "--served");
    let o = kubecert(&[
        "check",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--served",
        "--endpoint",
        "kubelett=127.0.0.1:1",
    ]);
    assert_fails(&o, 2, "unknown endpoint \"kubelett\"");
}

/// The `check` RPC method: `served: true` adds the section and folds its level; without it
/// there is no `served` key; a confined caller may not name endpoints or another kubelet
/// config.
mod rpc {
    use super::*;
    use common::rpc::{call_as, caller_uid};
    use kubecert::rpc::{Caller, Roots};
    use serde_json::json;

    fn call(roots: &Roots, who: Caller, params: Value) -> Value {
        call_as(roots, who, "check", params)
    }

    fn caller(uid: u32) -> Caller {
        caller_uid(uid, false)
    }

    #[test]
    fn check_method_served_param() {
        let (_t, root) = demo(&[]);
        let mut roots = Roots::for_dirs(root.join("pki"), &root);
        roots.kubelet_config = root.join("kubelet-config.yaml");
        let me = kubecert::rpc::unix::effective_uid();
        let confined = caller(if me == 1000 { 1001 } else { 1000 });
        let owner = caller(me);
        let dead = free_port();
        // Without served: no key, level ok.
        let r = call(&roots, confined, json!({}));
        assert!(r["result"].get("served").is_none(), "{r}");
        assert_eq!(r["result"]["status"]["level"], "ok", "{r}");
        // Confined: no overrides, no foreign kubelet config.
        let r = call(
            &roots,
            confined,
            json!({"served": true, "endpoints": [{"endpoint": "kubelet", "address": format!("127.0.0.1:{dead}")}]}),
        );
        assert_eq!(r["error"]["code"], -31010, "{r}");
        assert_eq!(r["error"]["data"]["param"], "endpoints[].address");
        let r = call(
            &roots,
            confined,
            json!({"served": true, "kubelet_config": "/etc/passwd"}),
        );
        assert_eq!(r["error"]["code"], -31010, "{r}");
        assert_eq!(r["error"]["data"]["param"], "kubelet_config");
        // The agent's own uid: every endpoint on a dead port, unreachable, level warn.
        let eps: Vec<Value> = [
            "etcd-client",
            "etcd-peer",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubelet",
        ]
        .iter()
        .map(|e| json!({"endpoint": e, "address": format!("127.0.0.1:{dead}")}))
        .collect();
        let r = call(
            &roots,
            owner,
            json!({"served": true, "timeout_ms": 500, "endpoints": eps}),
        );
        assert_eq!(verdicts(&r["result"]), all("unreachable"), "{r}");
        assert_eq!(r["result"]["status"]["level"], "warn", "{r}");
        assert_eq!(r["result"]["status"]["exitCode"], 1);
        assert_eq!(r["result"]["served"]["level"], "warn");
    }
}

/// `serverTLSBootstrap: true`: the kubelet serves its rotated `kubelet-server-current.pem`
/// (a symlink to the dated PEM holding certificate and key); kubecert follows the link in
/// its directory and compares. The other endpoints are dead here: unreachable, level warn.
#[test]
fn kubelet_rotated_serving_certificate() {
    let (_t, root) = demo(&[]);
    let kpki = root.join("kubelet-pki");
    std::fs::create_dir_all(&kpki).unwrap();
    let (c, k) = (kpki.join("c.pem"), kpki.join("k.pem"));
    self_signed(&c, &k, "system:node:node-1", 30);
    let dated = kpki.join("kubelet-server-2026-12-01-00-00-00.pem");
    let mut pem = std::fs::read(&c).unwrap();
    pem.extend(std::fs::read(&k).unwrap());
    std::fs::write(&dated, pem).unwrap();
    std::os::unix::fs::symlink(
        "kubelet-server-2026-12-01-00-00-00.pem",
        kpki.join("kubelet-server-current.pem"),
    )
    .unwrap();
    let port = free_port();
    let conf = root.join("kubelet-config.yaml");
    std::fs::write(
        &conf,
        format!("kind: KubeletConfiguration\nport: {port}\nserverTLSBootstrap: true\n"),
    )
    .unwrap();
    let _kubelet = s_server(&dated, &dated, port);
    let dead = format!("127.0.0.1:{}", free_port());
    let mut a: Vec<String> = [
        "check",
        "--cert-dir",
        root.join("pki").to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--kubelet-pki",
        kpki.to_str().unwrap(),
        "--served",
        "--manifests-dir",
        root.join("none").to_str().unwrap(),
        "--kubelet-config",
        conf.to_str().unwrap(),
        "--served-timeout",
        "1s",
        "-o",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for e in [
        "etcd-client",
        "etcd-peer",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        a.push("--endpoint".into());
        a.push(format!("{e}={dead}"));
    }
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = kubecert(&a);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    assert_eq!(o.status.code(), Some(3), "{v}");
    let e = endpoint(&v, "kubelet");
    assert_eq!(e["verdict"], "current", "{e}");
    assert_eq!(e["addressSource"], "kubelet-config");
    assert_eq!(e["address"], format!("127.0.0.1:{port}"));
    assert_eq!(
        e["certPath"],
        kpki.join("kubelet-server-current.pem")
            .display()
            .to_string()
    );
    assert_eq!(e["served"]["serial"], serial(&c));
    assert_eq!(e["onDisk"]["serial"], serial(&c));
    // The key in that file never shows up in the result.
    assert!(!String::from_utf8_lossy(&o.stdout).contains("PRIVATE KEY"));
}

/// review15: the kubelet config names a serving certificate file that is missing on disk
/// while the kubelet serves one: nothing is compared, so the run must not be `ok` (rule 1:
/// a missing path is a finding). `served kubelet` exits 3 (warn), the verdict stays
/// `not-checked` and the message names the missing file. Before the fix: exit 0, level ok.
#[test]
fn a_configured_cert_file_missing_on_disk_is_not_ok() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let (c, k) = (root.join("served.crt"), root.join("served.key"));
    self_signed(&c, &k, "node-1@1700000000", 30);
    let port = free_port();
    let missing = root.join("kubelet-pki/kubelet.crt");
    let conf = root.join("kubelet-config.yaml");
    std::fs::write(
        &conf,
        format!(
            "kind: KubeletConfiguration\nport: {port}\ntlsCertFile: {}\n",
            missing.display()
        ),
    )
    .unwrap();
    let _kubelet = s_server(&c, &k, port);
    let before = hash_tree(root);
    let kpki = root.join("kubelet-pki");
    let a = [
        "served",
        "kubelet",
        "--kubelet-config",
        conf.to_str().unwrap(),
        "--kubelet-pki",
        kpki.to_str().unwrap(),
        "--timeout",
        "2s",
        "-o",
        "json",
    ];
    let o = kubecert(&a);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    assert_eq!(o.status.code(), Some(3), "{v}");
    assert_eq!(v["level"], "warn", "{v}");
    let e = &v["endpoints"][0];
    assert_eq!(e["endpoint"], "kubelet", "{v}");
    assert_eq!(e["verdict"], "not-checked", "{e}");
    let m = e["message"].as_str().unwrap();
    assert!(
        m.starts_with("kubelet: not compared: ")
            && m.contains(&missing.display().to_string())
            && m.contains("No such file"),
        "{m}"
    );
    assert_eq!(hash_tree(root), before);
}

/// review15: the served certificate is the one on disk but not valid yet at the clock (a
/// clock behind the certificates, or a certificate issued ahead): every TLS client refuses
/// it, so `current` alone must not make the run `ok`. `served kubelet --now` a day before
/// its NotBefore: exit 3 (warn), the message names the NotBefore. Before the fix: exit 0.
#[test]
fn a_served_certificate_not_yet_valid_is_not_ok() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let (c, k) = (root.join("kubelet.crt"), root.join("kubelet.key"));
    self_signed(&c, &k, "node-1@1700000000", 30);
    let port = free_port();
    let conf = root.join("kubelet-config.yaml");
    std::fs::write(
        &conf,
        format!(
            "kind: KubeletConfiguration\nport: {port}\ntlsCertFile: {}\n",
            c.display()
        ),
    )
    .unwrap();
    let _kubelet = s_server(&c, &k, port);
    let now = |secs_from_now: i64| {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + secs_from_now;
        let o = Command::new("date")
            .args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    let kpki = root.join("kubelet-pki");
    let run = |at: &str| {
        let o = kubecert(&[
            "served",
            "kubelet",
            "--kubelet-config",
            conf.to_str().unwrap(),
            "--kubelet-pki",
            kpki.to_str().unwrap(),
            "--timeout",
            "2s",
            "--now",
            at,
            "-o",
            "json",
        ]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
        (o.status.code(), v)
    };
    let (code, v) = run(&now(60));
    assert_eq!(code, Some(0), "valid now: {v}");
    let before = hash_tree(root);
    let (code, v) = run(&now(-86400));
    assert_eq!(code, Some(3), "{v}");
    assert_eq!(v["level"], "warn", "{v}");
    let e = &v["endpoints"][0];
    assert_eq!(e["verdict"], "current", "{e}");
    let m = e["message"].as_str().unwrap();
    assert!(
        m.contains("; the served certificate is not valid before "),
        "{m}"
    );
    assert_eq!(hash_tree(root), before);
}
