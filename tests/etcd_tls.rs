//! Real etcd over TLS with renewed certificates: etcd serves with the renewed etcd-server and
//! etcd-peer certs; etcdctl talks to it with the renewed etcd-healthcheck-client and
//! apiserver-etcd-client certs; a client cert from another CA is refused.
//! Skips (with a message) only when the etcd binaries are not installed.

mod common;
use common::*;

/// etcdctl's refusal: exit 1 and "is unhealthy" (not a usage error or a missing file).
fn assert_refused(o: &std::process::Output, what: &str) {
    let text = text(o);
    assert_eq!(o.status.code(), Some(1), "etcd accepted {what}: {text}");
    assert!(text.contains("is unhealthy"), "{what}: {text}");
}

#[test]
fn etcd_accepts_renewed_certs_and_refuses_foreign_ones() {
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
    let etcd = Etcd::start(&pki, t.path());
    if let Err(last) = etcd.wait_healthy() {
        panic!(
            "etcd never became healthy with renewed certs: {last}\n{}",
            etcd.log()
        );
    }
    let p = |f: &str| pki.join(f);
    let o = etcd.etcdctl(
        &p("apiserver-etcd-client.crt"),
        &p("apiserver-etcd-client.key"),
    );
    assert!(
        o.status.success(),
        "apiserver-etcd-client refused: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A client cert from another CA (the cluster CA, not etcd-ca) must be refused.
    let o = etcd.etcdctl(
        &p("apiserver-kubelet-client.crt"),
        &p("apiserver-kubelet-client.key"),
    );
    assert_refused(&o, "a cert from a foreign CA");
    // And a cert from an unrelated PKI.
    let (_t2, other) = demo(&[]);
    let op = other.join("pki");
    let o = etcd.etcdctl(
        &op.join("etcd/healthcheck-client.crt"),
        &op.join("etcd/healthcheck-client.key"),
    );
    assert_refused(&o, "a cert from another cluster's etcd CA");
    // etcd refused them for their certificates: its log says so, and it still serves.
    let log = etcd.log();
    assert!(
        log.matches("certificate signed by unknown authority")
            .count()
            >= 2,
        "{log}"
    );
    let o = etcd.etcdctl(
        &p("etcd/healthcheck-client.crt"),
        &p("etcd/healthcheck-client.key"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
