//! `kubecert auto-renew` (what kubecert-renew.service runs) against demo PKIs and a fake
//! static pod manifests dir: conditional renewal, restarts of only the affected components,
//! health waits, failure recording, and `systemd-analyze verify` of the unit files.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const COMPONENTS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// A demo node: PKI in `<root>/k8s`, manifests in `<root>/k8s/manifests`.
struct Node {
    _tmp: tempfile::TempDir,
    k8s: PathBuf,
    log: PathBuf,
}

impl Node {
    /// A demo PKI whose leaves expire in 20 days, and a manifests dir.
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let k8s = tmp.path().join("k8s");
        ok(&[
            "demo-pki",
            k8s.to_str().unwrap(),
            "--expires-in",
            "20d",
            "--key-algorithm",
            "ecdsa-p256",
        ]);
        let m = k8s.join("manifests");
        std::fs::create_dir_all(&m).unwrap();
        for c in COMPONENTS {
            std::fs::write(m.join(format!("{c}.yaml")), format!("kind: Pod # {c}\n")).unwrap();
        }
        let log = tmp.path().join("log");
        Node {
            _tmp: tmp,
            k8s,
            log,
        }
    }

    fn pki(&self) -> String {
        self.k8s.join("pki").display().to_string()
    }
    fn kc(&self) -> String {
        self.k8s.display().to_string()
    }
    fn manifests(&self) -> PathBuf {
        self.k8s.join("manifests")
    }
    fn state(&self) -> PathBuf {
        self.k8s.join("kubecert-state.json")
    }

    /// `renew NAMES --validity 8760h`: makes these long-lived (outside the 30d window).
    fn make_long_lived(&self, names: &[&str]) {
        let mut args = vec!["renew"];
        args.extend_from_slice(names);
        let (p, k) = (self.pki(), self.kc());
        args.extend_from_slice(&[
            "--cert-dir",
            &p,
            "--kubeconfig-dir",
            &k,
            "--validity",
            "8760h",
        ]);
        ok(&args);
    }

    /// Runs `auto-renew -o json` with the fake manifests dir and `extra` flags.
    fn auto_renew(&self, extra: &[&str]) -> (Output, Value) {
        self.auto_renew_env(extra, &[])
    }

    fn auto_renew_env(&self, extra: &[&str], env: &[(&str, &str)]) -> (Output, Value) {
        let (p, k) = (self.pki(), self.kc());
        let m = self.manifests().display().to_string();
        let mut args = vec![
            "auto-renew",
            "--cert-dir",
            &p,
            "--kubeconfig-dir",
            &k,
            "--manifests-dir",
            &m,
            "--poll-interval",
            "0s",
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        let mut cmd = Command::new(bin());
        cmd.args(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "auto-renew output is not JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        });
        (o, v)
    }

    /// A health command that logs `health <component>` and succeeds once the manifest is back.
    fn logging_health(&self) -> String {
        format!(
            "echo health {{component}} >> {log}; test -e {{manifest}}",
            log = self.log.display()
        )
    }

    /// A stop command that logs `stop <component>` and succeeds once the manifest is gone.
    fn logging_stop(&self) -> String {
        format!(
            "echo stop {{component}} >> {log}; test ! -e {{manifest}}",
            log = self.log.display()
        )
    }

    fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn manifests_intact(&self) {
        for c in COMPONENTS {
            let p = self.manifests().join(format!("{c}.yaml"));
            assert_eq!(
                std::fs::read_to_string(&p).unwrap(),
                format!("kind: Pod # {c}\n"),
                "{} must be back in place, unchanged",
                p.display()
            );
        }
        let park = self.k8s.join("kubecert-parked-manifests");
        if park.exists() {
            assert_eq!(
                std::fs::read_dir(&park).unwrap().count(),
                0,
                "park dir empty"
            );
        }
    }

    fn state_json(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.state()).unwrap()).unwrap()
    }

    /// Inventory name → residual seconds, from `check -o json`.
    fn residuals(&self) -> BTreeMap<String, i64> {
        let out = ok(&[
            "check",
            "--cert-dir",
            &self.pki(),
            "--kubeconfig-dir",
            &self.kc(),
            "-o",
            "json",
        ]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| !r["missing"].as_bool().unwrap())
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_string(),
                    r["residualTime"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    /// Hashes of the PKI and the kubeconfigs (what a renewal writes).
    fn material(&self) -> BTreeMap<String, String> {
        let mut h = hash_tree(&self.k8s.join("pki"));
        for f in [
            "admin.conf",
            "controller-manager.conf",
            "scheduler.conf",
            "super-admin.conf",
        ] {
            if let Ok(b) = std::fs::read(self.k8s.join(f)) {
                use sha2::{Digest, Sha256};
                h.insert(f.to_string(), hex::encode(Sha256::digest(&b)));
            }
        }
        h
    }

    fn metrics(&self) -> BTreeMap<String, f64> {
        let out = ok(&[
            "metrics",
            "--cert-dir",
            &self.pki(),
            "--kubeconfig-dir",
            &self.kc(),
        ]);
        out.lines()
            .filter(|l| l.starts_with("kubecert_renew_"))
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
            .collect()
    }
}

fn actions(v: &Value) -> BTreeMap<String, String> {
    v["renew"]["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn names_with(v: &Value, action: &str) -> Vec<String> {
    actions(v)
        .into_iter()
        .filter(|(_, a)| a == action)
        .map(|(n, _)| n)
        .collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

const LONG_LIVED: [&str; 6] = [
    "apiserver",
    "apiserver-etcd-client",
    "apiserver-kubelet-client",
    "controller-manager.conf",
    "etcd-peer",
    "front-proxy-client",
];

#[test]
fn renews_only_inside_the_window_and_restarts_only_affected_pods_twice() {
    let node = Node::new();
    node.make_long_lived(&LONG_LIVED);
    // A joined node has no super-admin.conf: it must never force anything.
    std::fs::remove_file(node.k8s.join("super-admin.conf")).unwrap();
    let before = node.residuals();

    // First run.
    let health = node.logging_health();
    let stop = node.logging_stop();
    let (o, v) = node.auto_renew(&["--health-command", &health, "--stop-command", &stop]);
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let inside: Vec<String> = [
        "admin.conf",
        "etcd-healthcheck-client",
        "etcd-server",
        "scheduler.conf",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(names_with(&v, "renewed"), inside);
    let mut skipped = names_with(&v, "skipped");
    skipped.sort();
    assert_eq!(skipped, LONG_LIVED.map(String::from).to_vec());
    assert_eq!(
        names_with(&v, "missing"),
        vec!["super-admin.conf".to_string()]
    );
    // etcd-server → etcd, scheduler.conf → kube-scheduler; admin.conf and the healthcheck
    // client restart nothing. kube-apiserver and the controller manager are left alone.
    assert_eq!(
        strs(&v["componentsToRestart"]),
        vec!["etcd".to_string(), "kube-scheduler".to_string()]
    );
    let restarts = v["restarts"].as_array().unwrap();
    assert_eq!(restarts.len(), 2);
    assert!(restarts
        .iter()
        .all(|r| r["ok"] == true && r["method"] == "manifest-move"));
    let log = node.log_lines();
    assert_eq!(log.first().map(String::as_str), Some("stop etcd"));
    assert!(log.contains(&"health etcd".to_string()));
    assert!(log.contains(&"stop kube-scheduler".to_string()));
    assert!(log.contains(&"health kube-scheduler".to_string()));
    assert!(!log
        .iter()
        .any(|l| l.contains("kube-apiserver") || l.contains("controller-manager")));
    // etcd is healthy before the scheduler is touched (one at a time).
    let etcd_health = log.iter().position(|l| l == "health etcd").unwrap();
    let sched_stop = log.iter().position(|l| l == "stop kube-scheduler").unwrap();
    assert!(etcd_health < sched_stop);
    node.manifests_intact();
    assert!(v.get("failure").is_none());

    // The renewed certs are now long-lived, the skipped ones untouched.
    let after = node.residuals();
    for n in &inside {
        assert!(before[n] < 30 * 86400 && after[n] > 300 * 86400, "{n}");
    }
    for n in LONG_LIVED {
        assert!(
            (after[n] - before[n]).abs() < 120,
            "{n} must not have been renewed"
        );
    }
    assert!(!after.contains_key("super-admin.conf"));
    assert!(!node.k8s.join("super-admin.conf").exists());

    // Success recorded.
    let st = node.state_json();
    assert_eq!(strs(&st["lastSuccess"]["renewed"]), inside);
    assert_eq!(
        strs(&st["lastSuccess"]["restarted"]),
        vec!["etcd".to_string(), "kube-scheduler".to_string()]
    );
    assert!(st["lastFailure"].is_null());
    let m = node.metrics();
    assert!(m["kubecert_renew_last_success_timestamp_seconds"] > 1.6e9);
    assert_eq!(m["kubecert_renew_last_failure_timestamp_seconds"], 0.0);
    assert_eq!(m["kubecert_renew_last_renewed_certificates"], 4.0);

    // Second run: nothing inside the window, nothing renewed, nothing restarted, no write.
    let material = node.material();
    std::fs::remove_file(&node.log).unwrap();
    let (o, v) = node.auto_renew(&["--health-command", &health, "--stop-command", &stop]);
    assert!(o.status.success());
    assert!(names_with(&v, "renewed").is_empty());
    assert_eq!(
        names_with(&v, "missing"),
        vec!["super-admin.conf".to_string()]
    );
    assert!(strs(&v["componentsToRestart"]).is_empty());
    assert!(v["restarts"].as_array().unwrap().is_empty());
    assert!(node.log_lines().is_empty(), "no stop/health command ran");
    assert_eq!(node.material(), material, "nothing written");
    assert!(v["renew"]["backupDir"].is_null());
    node.manifests_intact();
    let st = node.state_json();
    assert!(strs(&st["lastSuccess"]["renewed"]).is_empty());
    assert_eq!(
        node.metrics()["kubecert_renew_last_renewed_certificates"],
        0.0
    );
}

#[test]
fn failing_health_exits_nonzero_records_failure_and_next_run_restarts_pending() {
    let node = Node::new();
    node.make_long_lived(&LONG_LIVED);
    let t0 = std::time::Instant::now();
    let (o, v) = node.auto_renew(&[
        "--health-command",
        "echo not ready; exit 1",
        "--stop-delay",
        "0s",
        "--health-timeout",
        "1s",
    ]);
    assert_eq!(o.status.code(), Some(1), "a failed restart fails the unit");
    assert!(t0.elapsed().as_secs() < 60, "the health wait is bounded");
    assert_eq!(v["failure"]["stage"], "health:etcd");
    assert!(v["failure"]["message"]
        .as_str()
        .unwrap()
        .contains("not ready"));
    // Stopped at the first failure: the scheduler was not touched.
    assert_eq!(v["restarts"].as_array().unwrap().len(), 1);
    node.manifests_intact();
    // The renewal itself happened and is kept.
    assert!(!names_with(&v, "renewed").is_empty());

    let st = node.state_json();
    assert!(st["lastSuccess"].is_null());
    assert_eq!(st["lastFailure"]["stage"], "health:etcd");
    assert_eq!(
        strs(&st["pendingRestart"]),
        vec!["etcd".to_string(), "kube-scheduler".to_string()]
    );
    let m = node.metrics();
    assert!(m["kubecert_renew_last_failure_timestamp_seconds"] > 1.6e9);
    assert_eq!(m["kubecert_renew_last_success_timestamp_seconds"], 0.0);
    assert_eq!(m["kubecert_renew_pending_restarts"], 2.0);

    // Next run: nothing left to renew, but the pending components are restarted.
    let health = node.logging_health();
    let (o, v) = node.auto_renew(&["--health-command", &health, "--stop-delay", "0s"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(names_with(&v, "renewed").is_empty());
    assert_eq!(
        strs(&v["componentsToRestart"]),
        vec!["etcd".to_string(), "kube-scheduler".to_string()]
    );
    assert_eq!(
        node.log_lines(),
        vec![
            "health etcd".to_string(),
            "health kube-scheduler".to_string()
        ]
    );
    let st = node.state_json();
    assert!(strs(&st["pendingRestart"]).is_empty());
    assert_eq!(st["lastFailure"]["stage"], "health:etcd", "history kept");
    let m = node.metrics();
    assert_eq!(m["kubecert_renew_pending_restarts"], 0.0);
    assert!(
        m["kubecert_renew_last_success_timestamp_seconds"]
            >= m["kubecert_renew_last_failure_timestamp_seconds"]
    );
}

#[test]
fn pod_that_never_stops_is_a_failure_and_its_manifest_comes_back() {
    let node = Node::new();
    node.make_long_lived(&LONG_LIVED);
    let (o, v) = node.auto_renew(&[
        "--stop-command",
        "false",
        "--stop-timeout",
        "1s",
        "--health-command",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(v["failure"]["stage"], "restart:etcd");
    node.manifests_intact();
}

#[test]
fn restart_command_method_and_env_configuration() {
    let node = Node::new();
    node.make_long_lived(&LONG_LIVED);
    let log = node.log.display().to_string();
    let restart = format!("echo restart {{component}} $KUBECERT_COMPONENT >> {log}");
    // Configuration through the environment, as /etc/default/kubecert does for the unit.
    let (o, v) = node.auto_renew_env(
        &[],
        &[
            ("KUBECERT_RESTART_COMMAND", restart.as_str()),
            ("KUBECERT_HEALTH_COMMAND", "true"),
            ("KUBECERT_WITHIN", "30d"),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(v["restarts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["method"] == "command" && r["ok"] == true));
    assert_eq!(
        node.log_lines(),
        vec![
            "restart etcd etcd".to_string(),
            "restart kube-scheduler kube-scheduler".to_string()
        ]
    );
    // KUBECERT_WITHIN wide enough renews everything (but still not the missing file).
    std::fs::remove_file(node.k8s.join("super-admin.conf")).unwrap();
    let (o, v) = node.auto_renew_env(&["--restart", "none"], &[("KUBECERT_WITHIN", "400d")]);
    assert!(o.status.success());
    assert_eq!(names_with(&v, "renewed").len(), 10);
    assert_eq!(
        names_with(&v, "missing"),
        vec!["super-admin.conf".to_string()]
    );
    assert_eq!(strs(&v["componentsToRestart"]).len(), 4);
    assert!(v["restarts"].as_array().unwrap().is_empty());
    // A restart command that fails fails the run.
    let (o, v) = node.auto_renew(&[
        "--within",
        "400d",
        "--restart-command",
        "exit 3",
        "--health-command",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(v["failure"]["stage"], "restart:etcd");
}

#[test]
fn missing_manifest_fails_and_dry_run_changes_nothing() {
    let node = Node::new();
    node.make_long_lived(&LONG_LIVED);
    let material = node.material();
    let (o, v) = node.auto_renew(&["--dry-run"]);
    assert!(o.status.success());
    assert_eq!(names_with(&v, "would-renew").len(), 5);
    assert_eq!(
        strs(&v["componentsToRestart"]),
        vec!["etcd".to_string(), "kube-scheduler".to_string()]
    );
    assert_eq!(node.material(), material);
    assert!(!node.state().exists(), "a dry run records nothing");

    std::fs::remove_file(node.manifests().join("etcd.yaml")).unwrap();
    let (o, v) = node.auto_renew(&["--health-command", "true", "--stop-delay", "0s"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(v["failure"]["stage"], "restart:etcd");
    assert!(v["failure"]["message"]
        .as_str()
        .unwrap()
        .contains("not found"));
}

#[test]
fn manifest_left_parked_by_a_killed_run_is_moved_back() {
    let node = Node::new();
    node.make_long_lived(&[
        "apiserver",
        "apiserver-etcd-client",
        "apiserver-kubelet-client",
        "controller-manager.conf",
        "etcd-peer",
        "front-proxy-client",
        "admin.conf",
        "etcd-healthcheck-client",
        "etcd-server",
        "scheduler.conf",
        "super-admin.conf",
    ]);
    let park = node.k8s.join("kubecert-parked-manifests");
    std::fs::create_dir_all(&park).unwrap();
    std::fs::rename(
        node.manifests().join("kube-apiserver.yaml"),
        park.join("kube-apiserver.yaml"),
    )
    .unwrap();
    let (o, v) = node.auto_renew(&["--health-command", "true"]);
    assert!(o.status.success());
    assert_eq!(v["recoveredManifests"].as_array().unwrap().len(), 1);
    node.manifests_intact();
}

/// Copies the unit files to a temp dir with ExecStart pointing at the built binary (verify
/// requires the binary to exist) and runs `systemd-analyze verify` on them.
fn verify_units(units: &[(&str, String)]) -> Output {
    let tmp = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (name, text) in units {
        let p = tmp.path().join(name);
        std::fs::write(&p, text.replace("/usr/local/bin/kubecert", bin())).unwrap();
        paths.push(p);
    }
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .args(&paths)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    drop(tmp);
    o
}

fn unit(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("systemd")
            .join(name),
    )
    .unwrap()
}

#[test]
fn systemd_units_verify() {
    let names = [
        "kubecert-renew.service",
        "kubecert-renew.timer",
        "kubecert-metrics.service",
        "kubecert-metrics.timer",
    ];
    let units: Vec<(&str, String)> = names.iter().map(|n| (*n, unit(n))).collect();
    let o = verify_units(&units);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "systemd-analyze verify failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // What the units promise.
    let service = unit("kubecert-renew.service");
    let timer = unit("kubecert-renew.timer");
    assert!(service.contains("EnvironmentFile=-/etc/default/kubecert"));
    assert!(service.contains("ExecStart=/usr/local/bin/kubecert auto-renew"));
    assert!(service.contains("Type=oneshot"));
    assert!(service.contains("ExecStopPost=/usr/local/bin/kubecert auto-renew --recover-manifests"));
    assert!(timer.contains("OnCalendar=*-*-01,15 03:00:00"));
    assert!(timer.contains("Persistent=true"));
    assert!(timer.contains("RandomizedDelaySec="));
    // The flags the unit passes exist.
    assert!(
        kubecert(&["auto-renew", "--log-format", "json", "-v", "--help"])
            .status
            .success()
    );

    // Negative control: verify does catch a broken unit.
    let broken = vec![
        (
            "kubecert-renew.timer",
            timer.replace("OnCalendar=*-*-01,15 03:00:00", "OnCalendar=not-a-calendar"),
        ),
        ("kubecert-renew.service", service.clone()),
    ];
    let o = verify_units(&broken);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("Failed to parse calendar specification"),
        "a broken OnCalendar must be reported: {:?} {err}",
        o.status
    );
}

#[test]
fn recover_manifests_mode_only_moves_parked_manifests_back() {
    let node = Node::new();
    let material = node.material();
    let park = node.k8s.join("kubecert-parked-manifests");
    std::fs::create_dir_all(&park).unwrap();
    std::fs::rename(node.manifests().join("etcd.yaml"), park.join("etcd.yaml")).unwrap();
    let (o, v) = node.auto_renew(&["--recover-manifests"]);
    assert!(o.status.success());
    assert_eq!(v.as_array().unwrap().len(), 1);
    node.manifests_intact();
    // Nothing renewed (the demo certs are inside the window), nothing recorded.
    assert_eq!(node.material(), material);
    assert!(!node.state().exists());
}

#[test]
fn sigkill_while_a_pod_is_down_then_exec_stop_post_puts_it_back() {
    let node = Node::new();
    node.make_long_lived(&LONG_LIVED);
    let (p, k) = (node.pki(), node.kc());
    let m = node.manifests().display().to_string();
    let mut child = Command::new(bin())
        .args([
            "auto-renew",
            "--cert-dir",
            &p,
            "--kubeconfig-dir",
            &k,
            "--manifests-dir",
            &m,
            "--stop-command",
            "sleep 20",
            "--command-timeout",
            "120s",
            "--health-command",
            "true",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let parked = node.k8s.join("kubecert-parked-manifests/etcd.yaml");
    let t0 = std::time::Instant::now();
    while !parked.exists() {
        assert!(t0.elapsed().as_secs() < 60, "etcd manifest never parked");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    assert!(!node.manifests().join("etcd.yaml").exists(), "etcd is down");
    // What the unit's ExecStopPost runs.
    let (o, v) = node.auto_renew(&["--recover-manifests"]);
    assert!(o.status.success());
    assert_eq!(v.as_array().unwrap().len(), 1);
    node.manifests_intact();
    // The renewal was committed before the kill and the components to restart were
    // recorded first: the next timer run renews nothing but restarts them.
    assert_eq!(
        strs(&node.state_json()["pendingRestart"]),
        vec!["etcd".to_string(), "kube-scheduler".to_string()]
    );
    let health = node.logging_health();
    let (o, v) = node.auto_renew(&["--health-command", &health, "--stop-delay", "0s"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(names_with(&v, "renewed").is_empty());
    assert_eq!(
        node.log_lines(),
        vec![
            "health etcd".to_string(),
            "health kube-scheduler".to_string()
        ]
    );
    assert!(strs(&node.state_json()["pendingRestart"]).is_empty());
}

/// After a restart, auto-renew proves the component serves the renewed certificate: a
/// "restart" that does not reload (the stand-in API server, `openssl s_server`, keeps the
/// certificate it loaded) fails the run at stage `served:kube-apiserver` with its own
/// message and leaves the component pending; a real restart then succeeds with the proof.
#[test]
fn restart_that_does_not_reload_fails_the_served_proof() {
    let node = Node::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        node.manifests().join("kube-apiserver.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --bind-address=127.0.0.1\n    - --secure-port={port}\n    name: kube-apiserver\n"
        ),
    )
    .unwrap();
    let pidfile = node.k8s.join("s_server.pid");
    let script = node.k8s.join("apiserver.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -f {pid} ]; then kill $(cat {pid}) 2>/dev/null; sleep 0.3; fi\n\
             openssl s_server -cert {pki}/apiserver.crt -key {pki}/apiserver.key \
             -accept 127.0.0.1:{port} -www -quiet </dev/null >/dev/null 2>&1 &\necho $! > {pid}\n",
            pid = pidfile.display(),
            pki = node.pki(),
        ),
    )
    .unwrap();
    assert!(Command::new("sh").arg(&script).status().unwrap().success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "s_server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let result = std::panic::catch_unwind(|| {
        let (o, v) = node.auto_renew(&[
            "apiserver",
            "--restart",
            "command",
            "--restart-command",
            "true",
            "--health-command",
            "true",
        ]);
        assert_eq!(o.status.code(), Some(1), "{v}");
        assert_eq!(v["failure"]["stage"], "served:kube-apiserver", "{v}");
        let msg = v["failure"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with(
                "kube-apiserver was restarted and is healthy but still does not serve the \
                 certificate on disk: kube-apiserver at 127.0.0.1:"
            ) && msg.contains("restart kube-apiserver"),
            "{msg}"
        );
        let st = node.state_json();
        assert_eq!(st["lastFailure"]["stage"], "served:kube-apiserver");
        assert_eq!(st["pendingRestart"], serde_json::json!(["kube-apiserver"]));
        let text = String::from_utf8_lossy(&o.stderr);
        assert!(!text.contains("PRIVATE KEY"));
        // A restart that reloads: the pending component is restarted, found healthy by
        // kubecert's own /readyz check (verified against ca.crt) and proven.
        let restart = format!("sh {}", script.display());
        let (o, v) = node.auto_renew(&[
            "apiserver",
            "--restart",
            "command",
            "--restart-command",
            &restart,
            "--health-timeout",
            "20s",
        ]);
        assert_eq!(o.status.code(), Some(0), "{v}");
        assert_eq!(v["restarts"][0]["component"], "kube-apiserver");
        assert_eq!(v["restarts"][0]["served"][0]["verdict"], "current", "{v}");
        assert_eq!(node.state_json()["pendingRestart"], serde_json::json!([]));
    });
    if let Ok(p) = std::fs::read_to_string(&pidfile) {
        let _ = Command::new("kill").arg(p.trim()).status();
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
