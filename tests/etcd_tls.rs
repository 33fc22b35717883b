//! Real etcd over TLS with renewed certificates: etcd serves with the renewed etcd-server and
//! etcd-peer certs; etcdctl talks to it with the renewed etcd-healthcheck-client and
//! apiserver-etcd-client certs; a client cert from another CA is refused.
//! Skips (with a message) only when the etcd binaries are not installed.

mod common;
use common::*;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn etcdctl(endpoint: &str, pki: &Path, cert: &str, key: &str) -> std::process::Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            endpoint,
            "--cacert",
            pki.join("etcd/ca.crt").to_str().unwrap(),
            "--cert",
            cert,
            "--key",
            key,
            "--dial-timeout",
            "3s",
            "--command-timeout",
            "5s",
            "endpoint",
            "health",
        ])
        .output()
        .expect("etcdctl")
}

/// etcdctl's refusal: exit 1 and "is unhealthy" (not a usage error or a missing file).
fn assert_refused(o: &std::process::Output, what: &str) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(1), "etcd accepted {what}: {text}");
    assert!(text.contains("is unhealthy"), "{what}: {text}");
}

#[test]
fn etcd_accepts_renewed_certs_and_refuses_foreign_ones() {
    if Command::new("etcd").arg("--version").output().is_err() {
        panic!("etcd is not installed: run `make deps` (apt: etcd-server etcd-client)");
    }
    let (t, root) = demo(&["--expires-in", "3d"]);
    let pki = root.join("pki");
    let before = std::fs::read(pki.join("etcd/server.crt")).unwrap();
    ok(&[
        "renew",
        "all",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ]);
    assert_ne!(before, std::fs::read(pki.join("etcd/server.crt")).unwrap());
    let (cport, pport) = (free_port(), free_port());
    let endpoint = format!("https://127.0.0.1:{cport}");
    let peer = format!("https://127.0.0.1:{pport}");
    let data = t.path().join("etcd-data");
    let p = |f: &str| pki.join(f).display().to_string();
    let log = std::fs::File::create(t.path().join("etcd.log")).unwrap();
    let mut etcd = Command::new("etcd")
        .args([
            "--name",
            "node-1",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen-client-urls",
            &endpoint,
            "--advertise-client-urls",
            &endpoint,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("node-1={peer}"),
            "--cert-file",
            &p("etcd/server.crt"),
            "--key-file",
            &p("etcd/server.key"),
            "--trusted-ca-file",
            &p("etcd/ca.crt"),
            "--client-cert-auth",
            "--peer-cert-file",
            &p("etcd/peer.crt"),
            "--peer-key-file",
            &p("etcd/peer.key"),
            "--peer-trusted-ca-file",
            &p("etcd/ca.crt"),
            "--peer-client-cert-auth",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start etcd");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut healthy = false;
    while Instant::now() < deadline {
        let o = etcdctl(
            &endpoint,
            &pki,
            &p("etcd/healthcheck-client.crt"),
            &p("etcd/healthcheck-client.key"),
        );
        if o.status.success() {
            healthy = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let result = std::panic::catch_unwind(|| {
        assert!(
            healthy,
            "etcd never became healthy with renewed certs: {}",
            std::fs::read_to_string(t.path().join("etcd.log")).unwrap_or_default()
        );
        let o = etcdctl(
            &endpoint,
            &pki,
            &p("apiserver-etcd-client.crt"),
            &p("apiserver-etcd-client.key"),
        );
        assert!(
            o.status.success(),
            "apiserver-etcd-client refused: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        // A client cert from another CA (the cluster CA, not etcd-ca) must be refused.
        let o = etcdctl(
            &endpoint,
            &pki,
            &p("apiserver-kubelet-client.crt"),
            &p("apiserver-kubelet-client.key"),
        );
        assert_refused(&o, "a cert from a foreign CA");
        // And a cert from an unrelated PKI.
        let (_t2, other) = demo(&[]);
        let op = other.join("pki");
        let o = etcdctl(
            &endpoint,
            &pki,
            op.join("etcd/healthcheck-client.crt").to_str().unwrap(),
            op.join("etcd/healthcheck-client.key").to_str().unwrap(),
        );
        assert_refused(&o, "a cert from another cluster's etcd CA");
        // etcd refused them for their certificates: its log says so, and it still serves.
        let log = std::fs::read_to_string(t.path().join("etcd.log")).unwrap();
        assert!(
            log.matches("certificate signed by unknown authority")
                .count()
                >= 2,
            "{log}"
        );
        let o = etcdctl(
            &endpoint,
            &pki,
            &p("etcd/healthcheck-client.crt"),
            &p("etcd/healthcheck-client.key"),
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    });
    let _ = etcd.kill();
    let _ = etcd.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
