//! `kubecert served`, `kubecert health` and `kubecert restart` against real servers: a TLS
//! etcd started on loopback from a demo PKI (endpoints read from its static pod manifest),
//! and `openssl s_server` standing in for kube-apiserver, the controller-manager and the
//! scheduler. Fails (never skips) when etcd or openssl is not installed: `make deps`.

mod common;
use common::*;
use serde_json::Value;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// Kills the child on drop (also when an assertion fails).
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serial(pem: &Path) -> String {
    let (okk, out) = openssl_status(&["x509", "-noout", "-serial", "-in", pem.to_str().unwrap()]);
    assert!(okk, "{out}");
    // kubecert prints the serial's bytes in lowercase hex, leading zero bytes included, as
    // openssl does (kubecert's serials never need a sign byte).
    out.trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

/// A one-member TLS etcd on loopback, with a kubeadm-like static pod manifest describing it.
/// With `snapshot`, the process serves copies of its certificate files taken when it
/// starts (as a process that cannot see the renewed files until restarted), while the
/// manifest names the PKI's files.
struct Etcd {
    pki: PathBuf,
    snapshot: Option<PathBuf>,
    manifests: PathBuf,
    data: PathBuf,
    log: PathBuf,
    client: u16,
    peer: u16,
}

impl Etcd {
    fn new(root: &Path) -> Self {
        assert!(
            Command::new("etcd").arg("--version").output().is_ok(),
            "etcd is not installed: run `make deps` (apt: etcd-server etcd-client)"
        );
        let e = Etcd {
            pki: root.join("pki"),
            snapshot: None,
            manifests: root.join("manifests"),
            data: root.join("etcd-data"),
            log: root.join("etcd.log"),
            client: free_port(),
            peer: free_port(),
        };
        std::fs::create_dir_all(&e.manifests).unwrap();
        let args = e.args(false);
        let mut m = String::from(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n    - etcd\n",
        );
        for pair in args.chunks(2) {
            m.push_str(&format!("    - {}={}\n", pair[0], pair[1]));
        }
        m.push_str("    image: registry.k8s.io/etcd:3.5.15-0\n    name: etcd\n");
        std::fs::write(e.manifests.join("etcd.yaml"), m).unwrap();
        e
    }

    fn args(&self, process: bool) -> Vec<String> {
        let c = format!("https://127.0.0.1:{}", self.client);
        let p = format!("https://127.0.0.1:{}", self.peer);
        let dir = match (&self.snapshot, process) {
            (Some(s), true) => s.clone(),
            _ => self.pki.clone(),
        };
        let f = |x: &str| dir.join(x).display().to_string();
        [
            ("--name", "node-1".to_string()),
            ("--data-dir", self.data.display().to_string()),
            ("--listen-client-urls", c.clone()),
            ("--advertise-client-urls", c),
            ("--listen-peer-urls", p.clone()),
            ("--initial-advertise-peer-urls", p.clone()),
            ("--initial-cluster", format!("node-1={p}")),
            ("--cert-file", f("etcd/server.crt")),
            ("--key-file", f("etcd/server.key")),
            ("--trusted-ca-file", f("etcd/ca.crt")),
            ("--client-cert-auth", "true".to_string()),
            ("--peer-cert-file", f("etcd/peer.crt")),
            ("--peer-key-file", f("etcd/peer.key")),
            ("--peer-trusted-ca-file", f("etcd/ca.crt")),
            ("--peer-client-cert-auth", "true".to_string()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v])
        .collect()
    }

    fn start(&self) -> Proc {
        if let Some(s) = &self.snapshot {
            std::fs::create_dir_all(s.join("etcd")).unwrap();
            for f in ["ca.crt", "server.crt", "server.key", "peer.crt", "peer.key"] {
                std::fs::copy(self.pki.join("etcd").join(f), s.join("etcd").join(f)).unwrap();
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let args: Vec<String> = self
            .args(true)
            .chunks(2)
            .map(|p| format!("{}={}", p[0], p[1]))
            .collect();
        let child = Command::new("etcd")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        let p = Proc(child);
        wait_port(self.client);
        p
    }

    fn common(&self) -> Vec<String> {
        vec![
            "--cert-dir".into(),
            self.pki.display().to_string(),
            "--manifests-dir".into(),
            self.manifests.display().to_string(),
        ]
    }

    fn run(&self, cmd: &str, extra: &[&str]) -> Output {
        let mut a: Vec<String> = vec![cmd.into()];
        a.extend(self.common());
        a.extend(extra.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        kubecert(&a)
    }
}

fn verdicts(v: &Value) -> Vec<(String, String)> {
    v["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["endpoint"].as_str().unwrap().to_string(),
                e["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn renew_etcd_server(etcd: &Etcd, root: &Path) {
    ok(&[
        "renew",
        "etcd-server",
        "--cert-dir",
        etcd.pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ]);
}

#[test]
fn etcd_health_and_served_proof_stale_until_restarted() {
    let (t, root) = demo(&["--expires-in", "3d"]);
    let mut etcd = Etcd::new(&root);
    let proc = etcd.start();

    // Healthy, with its member list, over TLS with the healthcheck client.
    let t0 = Instant::now();
    let o = etcd.run("health", &["etcd", "--timeout", "20s", "-o", "json"]);
    let h = json_of(&o);
    assert_eq!(o.status.code(), Some(0), "{h}\n{}", etcd.log.display());
    assert!(t0.elapsed() < Duration::from_secs(21));
    let e = &h["components"][0]["etcd"];
    assert_eq!(e["members"].as_array().unwrap().len(), 1, "{h}");
    assert_eq!(e["members"][0]["name"], "node-1");
    assert_eq!(e["members"][0]["healthy"], true);
    assert_eq!(
        e["members"][0]["clientUrls"][0],
        format!("https://127.0.0.1:{}", etcd.client)
    );
    assert_eq!(e["quorum"], true);

    // current, endpoints from the manifest.
    let o = etcd.run("served", &["etcd", "-o", "json"]);
    let v = json_of(&o);
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert_eq!(
        verdicts(&v),
        vec![
            ("etcd-client".into(), "current".into()),
            ("etcd-peer".into(), "current".into())
        ]
    );
    assert_eq!(v["endpoints"][0]["addressSource"], "manifest");
    assert_eq!(
        v["endpoints"][0]["address"],
        format!("127.0.0.1:{}", etcd.client)
    );
    let before = serial(&etcd.pki.join("etcd/server.crt"));
    assert_eq!(v["endpoints"][0]["served"]["serial"], before);

    // etcd (3.4) reads its certificate files on every handshake: right after a renewal,
    // without a restart, it already serves the new certificate.
    renew_etcd_server(&etcd, &root);
    let renewed = serial(&etcd.pki.join("etcd/server.crt"));
    assert_ne!(before, renewed);
    let o = etcd.run("served", &["etcd", "-o", "json"]);
    let v = json_of(&o);
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert_eq!(v["endpoints"][0]["served"]["serial"], renewed);
    drop(proc);

    // A process that serves what it loaded at start (its own copies of the files).
    etcd.snapshot = Some(t.path().join("etcd-snapshot"));
    let mut proc = etcd.start();
    let o = etcd.run("served", &["etcd", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", json_of(&o));
    renew_etcd_server(&etcd, &root);
    let after = serial(&etcd.pki.join("etcd/server.crt"));
    assert_ne!(renewed, after);
    let o = etcd.run("served", &["etcd", "-o", "json"]);
    let v = json_of(&o);
    assert_eq!(o.status.code(), Some(4), "{v}");
    assert_eq!(v["level"], "fail");
    assert_eq!(
        verdicts(&v),
        vec![
            ("etcd-client".into(), "stale".into()),
            ("etcd-peer".into(), "current".into())
        ]
    );
    assert_eq!(v["staleComponents"], serde_json::json!(["etcd"]));
    assert_eq!(v["endpoints"][0]["served"]["serial"], renewed);
    assert_eq!(v["endpoints"][0]["onDisk"]["serial"], after);
    let msg = v["endpoints"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("is serving a certificate other than the one on disk")
            && msg.contains("restart etcd"),
        "{msg}"
    );
    // The text output says the same.
    let o = etcd.run("served", &["etcd"]);
    assert_eq!(o.status.code(), Some(4));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("etcd-client") && text.contains("STALE"),
        "{text}"
    );

    // Restart the process: current.
    drop(proc);
    proc = etcd.start();
    let o = etcd.run("health", &["etcd", "--timeout", "20s"]);
    assert_eq!(o.status.code(), Some(0));
    let o = etcd.run("served", &["etcd", "-o", "json"]);
    let v = json_of(&o);
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert_eq!(verdicts(&v)[0], ("etcd-client".into(), "current".into()));
    assert_eq!(v["endpoints"][0]["served"]["serial"], after);
    drop(proc);

    // Stopped: health fails within its bound; served says unreachable (exit 3).
    let t0 = Instant::now();
    let o = etcd.run(
        "health",
        &[
            "etcd",
            "--timeout",
            "2s",
            "--interval",
            "200ms",
            "-o",
            "json",
        ],
    );
    let took = t0.elapsed();
    let h = json_of(&o);
    assert_eq!(o.status.code(), Some(4), "{h}");
    assert!(took < Duration::from_millis(3500), "{took:?}");
    assert!(
        h["components"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("member list: cannot connect"),
        "{h}"
    );
    let o = etcd.run("served", &["etcd", "-o", "json", "--timeout", "500ms"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(json_of(&o)["level"], "warn");
}

/// `openssl s_server -www` serving `cert`/`key` on `port`.
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

#[test]
fn s_server_stands_in_for_apiserver_controller_manager_and_scheduler() {
    let (_t, root) = demo(&["--expires-in", "3d"]);
    let pki = root.join("pki");
    let manifests = root.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let (api, cm, sched) = (free_port(), free_port(), free_port());
    // kube-apiserver's port and file from its manifest; the others by override.
    std::fs::write(
        manifests.join("kube-apiserver.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --secure-port={api}\n    - --tls-cert-file={}\n    name: kube-apiserver\n",
            pki.join("apiserver.crt").display()
        ),
    )
    .unwrap();
    // The controller-manager and scheduler serve files kubecert was told about.
    let side = root.join("side");
    std::fs::create_dir_all(&side).unwrap();
    for f in ["front-proxy-client.crt", "front-proxy-client.key"] {
        std::fs::copy(pki.join(f), side.join(f)).unwrap();
    }
    let _a = s_server(&pki.join("apiserver.crt"), &pki.join("apiserver.key"), api);
    let _c = s_server(
        &side.join("front-proxy-client.crt"),
        &side.join("front-proxy-client.key"),
        cm,
    );
    // The scheduler serves a different certificate than the one it is compared with.
    let _s = s_server(
        &pki.join("apiserver.crt"),
        &pki.join("apiserver.key"),
        sched,
    );
    let args = |extra: &[&str]| -> Output {
        let cm_a = format!("kube-controller-manager=127.0.0.1:{cm}");
        let cm_c = format!(
            "kube-controller-manager={}",
            side.join("front-proxy-client.crt").display()
        );
        let s_a = format!("kube-scheduler=127.0.0.1:{sched}");
        let s_c = format!(
            "kube-scheduler={}",
            side.join("front-proxy-client.crt").display()
        );
        let mut a = vec![
            "served",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "--cert-dir",
            pki.to_str().unwrap(),
            "--manifests-dir",
            manifests.to_str().unwrap(),
            "--endpoint",
            &cm_a,
            "--endpoint-cert",
            &cm_c,
            "--endpoint",
            &s_a,
            "--endpoint-cert",
            &s_c,
            "-o",
            "json",
        ];
        a.extend_from_slice(extra);
        kubecert(&a)
    };
    let o = args(&[]);
    let v = json_of(&o);
    assert_eq!(o.status.code(), Some(4), "{v}");
    assert_eq!(
        verdicts(&v),
        vec![
            ("kube-apiserver".into(), "current".into()),
            ("kube-controller-manager".into(), "current".into()),
            ("kube-scheduler".into(), "stale".into()),
        ]
    );
    assert_eq!(v["endpoints"][0]["addressSource"], "manifest");
    assert_eq!(v["endpoints"][0]["address"], format!("127.0.0.1:{api}"));
    assert!(v["endpoints"][2]["message"]
        .as_str()
        .unwrap()
        .contains("restart kube-scheduler"));

    // Renew the apiserver certificate: s_server still serves the old one.
    ok(&[
        "renew",
        "apiserver",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ]);
    let v = json_of(&args(&[]));
    assert_eq!(verdicts(&v)[0], ("kube-apiserver".into(), "stale".into()));

    // Health of the stand-ins: /readyz verified against ca.crt with the name "kubernetes",
    // /healthz unverified.
    let o = kubecert(&[
        "health",
        "kube-apiserver",
        "kube-controller-manager",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--manifests-dir",
        manifests.to_str().unwrap(),
        "--endpoint",
        &format!("kube-controller-manager=127.0.0.1:{cm}"),
        "--timeout",
        "5s",
        "-o",
        "json",
    ]);
    let h = json_of(&o);
    assert_eq!(o.status.code(), Some(0), "{h}");
    assert_eq!(
        h["components"][0]["url"],
        format!("https://127.0.0.1:{api}/readyz")
    );
}

#[test]
fn health_on_dead_and_silent_ports_fails_within_the_timeout() {
    let dead = free_port();
    // Accepts TCP, never answers: a request would hang for --request-timeout (10s).
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let d = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let o = kubecert(&[
        "health",
        "kube-apiserver",
        "kube-scheduler",
        "--cert-dir",
        d.path().to_str().unwrap(),
        "--manifests-dir",
        d.path().to_str().unwrap(),
        "--endpoint",
        &format!("kube-apiserver=127.0.0.1:{dead}"),
        "--endpoint",
        &format!("kube-scheduler={}", silent.local_addr().unwrap()),
        "--timeout",
        "2s",
        "--request-timeout",
        "10s",
        "--interval",
        "500ms",
    ]);
    let took = t0.elapsed();
    assert_eq!(o.status.code(), Some(4));
    // The bound is the whole wait, not a per-try timeout times the number of tries.
    assert!(took < Duration::from_millis(3500), "{took:?}");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("kube-apiserver")
            && text.contains("UNHEALTHY")
            && text.contains("NOT healthy"),
        "{text}"
    );
    assert!(text.contains("cannot connect to 127.0.0.1:"), "{text}");
    assert!(text.contains("no answer within"), "{text}");
}

fn manifests_dir(root: &Path) -> PathBuf {
    let m = root.join("manifests");
    std::fs::create_dir_all(&m).unwrap();
    for c in ["etcd", "kube-apiserver", "kube-scheduler"] {
        std::fs::write(m.join(format!("{c}.yaml")), format!("# {c}\n")).unwrap();
    }
    m
}

#[test]
fn restart_manifest_move_recovers_parked_manifests_and_waits_for_health() {
    let d = tempfile::tempdir().unwrap();
    let m = manifests_dir(d.path());
    let park = d.path().join("kubecert-parked-manifests");
    // A killed run left the scheduler's manifest parked.
    std::fs::create_dir_all(&park).unwrap();
    std::fs::rename(
        m.join("kube-scheduler.yaml"),
        park.join("kube-scheduler.yaml"),
    )
    .unwrap();
    let log = d.path().join("log");
    let health = format!(
        "echo health {{component}} >> {}; test -e {{manifest}}",
        log.display()
    );
    let stop = format!(
        "echo stop {{component}} >> {}; test ! -e {{manifest}}",
        log.display()
    );
    let o = kubecert(&[
        "restart",
        "kube-apiserver",
        "etcd",
        "--manifests-dir",
        m.to_str().unwrap(),
        "--health-command",
        &health,
        "--stop-command",
        &stop,
        "--poll-interval",
        "100ms",
        "--no-served-proof",
        "-o",
        "json",
    ]);
    let v = json_of(&o);
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(
        v["recoveredManifests"],
        serde_json::json!([m.join("kube-scheduler.yaml").display().to_string()])
    );
    // kubeadm's order, whatever the order given; each stopped, then healthy.
    assert_eq!(
        v["components"],
        serde_json::json!(["etcd", "kube-apiserver"])
    );
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        lines,
        vec![
            "stop etcd",
            "health etcd",
            "stop kube-apiserver",
            "health kube-apiserver"
        ]
    );
    for c in ["etcd", "kube-apiserver", "kube-scheduler"] {
        assert!(m.join(format!("{c}.yaml")).is_file(), "{c} back in place");
    }
    assert_eq!(std::fs::read_dir(&park).unwrap().count(), 0);

    // A pod that never becomes healthy: exit 4, stage health:etcd, manifest in place, and the
    // wait is bounded.
    let t0 = Instant::now();
    let o = kubecert(&[
        "restart",
        "etcd",
        "--manifests-dir",
        m.to_str().unwrap(),
        "--health-command",
        "echo not yet; false",
        "--stop-delay",
        "0s",
        "--health-timeout",
        "1s",
        "--poll-interval",
        "100ms",
        "--no-served-proof",
        "-o",
        "json",
    ]);
    let v = json_of(&o);
    assert_eq!(o.status.code(), Some(4), "{v}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(v["failedStage"], "health:etcd");
    assert_eq!(
        v["error"],
        "etcd did not become healthy within 1s (last output: not yet)"
    );
    assert!(m.join("etcd.yaml").is_file());
    // Dry run: nothing run, nothing moved.
    let before = hash_tree(d.path());
    let o = kubecert(&[
        "restart",
        "etcd",
        "--manifests-dir",
        m.to_str().unwrap(),
        "--restart-command",
        "touch /nonexistent-kubecert",
        "--method",
        "command",
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("[dry-run] would restart: etcd"));
    assert_eq!(before, hash_tree(d.path()));
}

#[test]
fn restart_command_method_and_a_restart_that_does_not_reload_is_a_served_failure() {
    let (_t, root) = demo(&["--expires-in", "3d"]);
    let pki = root.join("pki");
    let m = manifests_dir(&root);
    let port = free_port();
    let pidfile = root.join("s_server.pid");
    // The stand-in kube-apiserver: `start` serves whatever apiserver.crt is on disk now.
    let script = root.join("apiserver.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\nif [ -f {pid} ]; then kill $(cat {pid}) 2>/dev/null || true; sleep 0.3; fi\n\
             openssl s_server -cert {crt} -key {key} -accept 127.0.0.1:{port} -www -quiet \
             </dev/null >/dev/null 2>&1 &\necho $! > {pid}\n",
            pid = pidfile.display(),
            crt = pki.join("apiserver.crt").display(),
            key = pki.join("apiserver.key").display(),
        ),
    )
    .unwrap();
    let st = Command::new("sh").arg(&script).status().unwrap();
    assert!(st.success());
    wait_port(port);
    let kill = || {
        if let Ok(p) = std::fs::read_to_string(&pidfile) {
            let _ = Command::new("kill").arg(p.trim()).status();
        }
    };
    let result = std::panic::catch_unwind(|| {
        ok(&[
            "renew",
            "apiserver",
            "--cert-dir",
            pki.to_str().unwrap(),
            "--kubeconfig-dir",
            root.to_str().unwrap(),
        ]);
        let restart = |cmd: &str| -> Output {
            kubecert(&[
                "restart",
                "kube-apiserver",
                "--method",
                "command",
                "--restart-command",
                cmd,
                "--cert-dir",
                pki.to_str().unwrap(),
                "--manifests-dir",
                m.to_str().unwrap(),
                "--endpoint",
                &format!("kube-apiserver=127.0.0.1:{port}"),
                "--health-timeout",
                "10s",
                "--poll-interval",
                "200ms",
                "-o",
                "json",
            ])
        };
        // A "restart" that does not reload: healthy, but still the old certificate.
        let o = restart("true");
        let v = json_of(&o);
        assert_eq!(o.status.code(), Some(4), "{v}");
        assert_eq!(v["failedStage"], "served:kube-apiserver");
        let err = v["error"].as_str().unwrap();
        assert!(
            err.starts_with(
                "kube-apiserver was restarted and is healthy but still does not serve the certificate on disk: "
            ) && err.contains("restart kube-apiserver"),
            "{err}"
        );
        // A real restart: healthy (native /readyz, verified against ca.crt) and current.
        let o = restart(&format!("sh {}", script.display()));
        let v = json_of(&o);
        assert_eq!(o.status.code(), Some(0), "{v}");
        assert_eq!(v["restarts"][0]["ok"], true);
        assert_eq!(v["restarts"][0]["served"][0]["verdict"], "current");
        assert_eq!(
            v["restarts"][0]["served"][0]["served"]["serial"],
            serial(&pki.join("apiserver.crt"))
        );
        // A failing restart command: stage restart:, its output in the message.
        let o = restart("echo boom >&2; exit 3");
        let v = json_of(&o);
        assert_eq!(o.status.code(), Some(4));
        assert_eq!(v["failedStage"], "restart:kube-apiserver");
        assert_eq!(v["error"], "restart command failed (last output: boom)");
    });
    kill();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// A component declared not running on this host (`--served-not-required`): its unreachable
/// endpoint is reported, not a failure; without the declaration the same restart fails at
/// the served proof naming the endpoint.
#[test]
fn served_not_required_reports_an_unreachable_endpoint_without_failing() {
    let (_t, root) = demo(&["--expires-in", "3d"]);
    let pki = root.join("pki");
    let m = manifests_dir(&root);
    let dead = free_port();
    let restart = |extra: &[&str]| -> Output {
        let ep = format!("kube-scheduler=127.0.0.1:{dead}");
        let mut args = vec![
            "restart",
            "kube-scheduler",
            "--method",
            "command",
            "--restart-command",
            "true",
            "--health-command",
            "true",
            "--cert-dir",
            pki.to_str().unwrap(),
            "--manifests-dir",
            m.to_str().unwrap(),
            "--endpoint",
            &ep,
            "--served-timeout",
            "500ms",
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        kubecert(&args)
    };
    let o = restart(&[]);
    let v = json_of(&o);
    assert_eq!(o.status.code(), Some(4), "{v}");
    assert_eq!(v["failedStage"], "served:kube-scheduler", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{dead}")),
        "{v}"
    );
    let o = restart(&["--served-not-required", "kube-scheduler"]);
    let v = json_of(&o);
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert_eq!(v["restarts"][0]["ok"], true, "{v}");
    assert_eq!(
        v["restarts"][0]["served"][0]["verdict"], "unreachable",
        "{v}"
    );
    // Another component is not excused by it.
    let o = restart(&["--served-not-required", "etcd"]);
    assert_eq!(o.status.code(), Some(4), "{}", json_of(&o));
}

// ------------------------------------------------------------------- the RPC methods

mod rpc {
    use super::*;
    use common::rpc::{call_as as call, caller};
    use kubecert::rpc::Roots;
    use serde_json::json;

    #[test]
    fn tiers_and_confinement_of_restart_health_served() {
        let (t, root) = demo(&[]);
        let m = manifests_dir(&root);
        let roots = Roots::for_dirs(root.join("pki"), &root);
        assert_eq!(roots.manifests_dir, m);
        let before = hash_tree(t.path());
        let marker = t.path().join("ran");
        // Read tier: restart only as a dry run.
        let r = call(
            &roots,
            caller(false),
            "restart",
            json!({"components": ["etcd"]}),
        );
        assert_eq!(r["error"]["code"], -31004, "{r}");
        let r = call(
            &roots,
            caller(false),
            "restart",
            json!({"components": ["kube-scheduler", "etcd"], "dry_run": true}),
        );
        assert_eq!(
            r["result"]["components"],
            json!(["etcd", "kube-scheduler"]),
            "{r}"
        );
        assert_eq!(r["result"]["dryRun"], true);
        // Write tier, confined: no command templates, no foreign manifests dir.
        let r = call(
            &roots,
            caller(true),
            "restart",
            json!({"components": ["etcd"], "method": "command",
                   "restart_command": format!("touch {}", marker.display())}),
        );
        assert_eq!(r["error"]["code"], -31010, "{r}");
        assert_eq!(r["error"]["data"]["param"], "restart_command");
        let r = call(
            &roots,
            caller(true),
            "restart",
            json!({"components": ["etcd"], "manifests_dir": "/tmp"}),
        );
        assert_eq!(r["error"]["code"], -31010, "{r}");
        assert_eq!(r["error"]["data"]["param"], "manifests_dir");
        let r = call(&roots, caller(true), "restart", json!({}));
        assert_eq!(r["error"]["code"], -32602, "{r}");
        assert!(!marker.exists());
        assert_eq!(hash_tree(t.path()), before, "nothing changed");
        // Read tier: served and health, but no endpoint overrides.
        let r = call(
            &roots,
            caller(false),
            "served",
            json!({"endpoints": [{"endpoint": "kube-apiserver", "address": "10.0.0.1:6443"}]}),
        );
        assert_eq!(r["error"]["code"], -31010, "{r}");
        assert_eq!(r["error"]["data"]["param"], "endpoints[].address");
        let r = call(
            &roots,
            caller(false),
            "served",
            json!({"components": ["kube-controller-manager"], "timeout_ms": 300}),
        );
        let e = &r["result"]["endpoints"][0];
        assert_eq!(e["endpoint"], "kube-controller-manager", "{r}");
        assert!(["unreachable", "not-checked"].contains(&e["verdict"].as_str().unwrap()));
        let t0 = Instant::now();
        let r = call(
            &roots,
            caller(false),
            "health",
            json!({"components": ["kube-scheduler"], "timeout_ms": 800, "interval_ms": 100}),
        );
        assert!(t0.elapsed() < Duration::from_millis(2000));
        assert_eq!(r["result"]["healthy"], false, "{r}");
    }
}
