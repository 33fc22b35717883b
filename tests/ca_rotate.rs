//! `kubecert ca rotate <ca> --phase stage|promote|distrust [--rollback]` (issue 16 item 3) on
//! demo PKIs, checked with openssl end to end: after stage a client certificate of either
//! CA verifies against the bundle and nothing is signed by the new CA; after promote every
//! leaf and kubeconfig client certificate verifies against the new CA alone and `<ca>.key`
//! is the key of the first certificate of `<ca>.crt`; after distrust the old CA is in no
//! bundle. Rollbacks give back the previous phase's tree byte for byte; phases out of order,
//! repeated phases and bad `.next` files change nothing. Also `ca renew` refusing a
//! validity that would shorten the CA (issue 16 item 2).

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const NOW: &str = "2026-12-01T00:00:00Z";

struct Node {
    _t: tempfile::TempDir,
    root: PathBuf,
    backup: PathBuf,
    now: String,
}

impl Node {
    /// An empty kubelet PKI dir beside the node's PKI (outside the default one, so only
    /// `--kubelet-pki` makes kubecert look there).
    fn kubelet_pki(&self) -> PathBuf {
        let kp = self.root.join("kubelet-pki");
        std::fs::create_dir_all(&kp).unwrap();
        kp
    }

    /// `kubelet-conf repair`: kubelet.conf then references `kp`'s
    /// `kubelet-client-current.pem`, as on a kubeadm >= 1.17 node.
    fn refer_kubelet_conf_to(&self, kp: &Path) {
        let pki = self.root.join("pki");
        ok(&[
            "kubelet-conf",
            "repair",
            "--kubeconfig-dir",
            self.root.to_str().unwrap(),
            "--cert-dir",
            pki.to_str().unwrap(),
            "--kubelet-pki",
            kp.to_str().unwrap(),
        ]);
    }

    fn new() -> Node {
        let (t, root) = demo(&["--now", NOW]);
        let backup = t.path().join("backup");
        Node {
            _t: t,
            root,
            backup,
            now: NOW.into(),
        }
    }

    fn pki(&self, f: &str) -> PathBuf {
        self.root.join("pki").join(f)
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        for x in [
            "--cert-dir",
            self.root.join("pki").to_str().unwrap(),
            "--kubeconfig-dir",
            self.root.to_str().unwrap(),
            "--now",
            &self.now,
        ] {
            a.push(x.to_string());
        }
        if args.get(1) != Some(&"check") {
            a.push("--backup-dir".into());
            a.push(self.backup.display().to_string());
        }
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        kubecert(&a)
    }

    /// `ca rotate <ca> --phase <phase> [more] -o json`, asserting success.
    fn rotate(&self, ca: &str, phase: &str, more: &[&str]) -> serde_json::Value {
        let mut a = vec!["ca", "rotate", ca, "--phase", phase, "-o", "json"];
        a.extend_from_slice(more);
        let o = self.run(&a);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{ca} {phase} {more:?}: {}",
            text(&o)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn tree(&self) -> BTreeMap<String, String> {
        hash_tree(&self.root)
    }
}

/// The certificates of a PEM file, each as its own PEM.
fn pems(path: &Path) -> Vec<String> {
    let s = std::fs::read_to_string(path).unwrap();
    s.split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|p| p.contains("BEGIN CERTIFICATE"))
        .map(str::to_string)
        .collect()
}

fn write_pem(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    p
}

fn verifies(ca_file: &Path, leaf: &Path) -> (bool, String) {
    openssl_status(&[
        "verify",
        "-CAfile",
        ca_file.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ])
}

/// The CA data of a kubeconfig, decoded, as separate PEMs.
fn kubeconfig_ca(conf: &Path) -> Vec<String> {
    use base64::Engine;
    let text = std::fs::read_to_string(conf).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("certificate-authority-data:"))
        .unwrap();
    let b64 = line.split(':').nth(1).unwrap().trim();
    let pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap();
    pem.split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|p| p.contains("BEGIN CERTIFICATE"))
        .map(str::to_string)
        .collect()
}

const KUBECONFIGS: [&str; 5] = [
    "admin.conf",
    "super-admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
    "kubelet.conf",
];

/// Every leaf of `ca` on a demo node: the PKI `.crt` files and the kubeconfig client
/// certificates (extracted into `scratch`).
fn ca_leaves(n: &Node, scratch: &Path) -> Vec<PathBuf> {
    let mut v = vec![
        n.pki("apiserver.crt"),
        n.pki("apiserver-kubelet-client.crt"),
    ];
    for k in KUBECONFIGS {
        let out = scratch.join(format!("{k}.pem"));
        kubeconfig_cert(&n.root.join(k), &out);
        v.push(out);
    }
    v
}

/// A client certificate signed by `ca_crt`/`ca_key`, made by openssl.
fn openssl_client(dir: &Path, name: &str, ca_crt: &Path, ca_key: &Path) -> PathBuf {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let crt = dir.join(format!("{name}.crt"));
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-subj",
        &format!("/CN={name}"),
        "-out",
        csr.to_str().unwrap(),
    ]);
    // With an authority key identifier, as Go (kube-controller-manager's signer, kubeadm)
    // always sets it: two CAs of the same subject are told apart by it.
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        "authorityKeyIdentifier=keyid:always\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-extfile",
        ext.to_str().unwrap(),
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        ca_crt.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-CAcreateserial",
        "-days",
        "30",
        "-out",
        crt.to_str().unwrap(),
    ]);
    crt
}

fn pubkey(path: &Path, is_key: bool) -> String {
    if is_key {
        openssl(&["pkey", "-in", path.to_str().unwrap(), "-pubout"])
    } else {
        openssl(&["x509", "-in", path.to_str().unwrap(), "-noout", "-pubkey"])
    }
}

#[test]
fn rotation_of_ca_checked_with_openssl_phase_by_phase_with_rollbacks() {
    let n = Node::new();
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let before = n.tree();
    let old_ca = write_pem(s, "old-ca.crt", &pems(&n.pki("ca.crt"))[0]);
    let old_key = s.join("old-ca.key");
    std::fs::copy(n.pki("ca.key"), &old_key).unwrap();

    // stage, rolled back: the tree of before, byte for byte.
    let v = n.rotate("ca", "stage", &[]);
    assert_eq!(v["phaseBefore"], "none", "{v}");
    assert_eq!(v["phaseAfter"], "staged", "{v}");
    let v = n.rotate("ca", "stage", &["--rollback"]);
    assert_eq!(v["phaseAfter"], "none", "{v}");
    assert_eq!(n.tree(), before, "rollback of stage");

    // stage.
    let v = n.rotate("ca", "stage", &[]);
    assert_eq!(v["phaseAfter"], "staged");
    // The restart targets, typed (the static pods in restart order, then the kubelet).
    assert_eq!(
        v["componentsToRestart"],
        serde_json::json!([
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubelet"
        ]),
        "{v}"
    );
    let new_hash = v["newCa"]["spkiSha256"].as_str().unwrap().to_string();
    assert_ne!(new_hash, v["oldCa"]["spkiSha256"].as_str().unwrap());
    assert!(v["checklist"].to_string().contains(&new_hash), "{v}");
    let bundle = pems(&n.pki("ca.crt"));
    assert_eq!(bundle.len(), 2);
    assert_eq!(bundle[0], pems(&old_ca)[0], "the old CA stays first");
    assert_eq!(bundle[1], pems(&n.pki("ca.next.crt"))[0]);
    assert_eq!(mode(&n.pki("ca.next.key")), 0o600);
    // openssl: the new CA is a CA of the same subject and another key.
    let subj = |p: &Path| openssl(&["x509", "-in", p.to_str().unwrap(), "-noout", "-subject"]);
    assert_eq!(subj(&n.pki("ca.next.crt")), subj(&old_ca));
    assert_ne!(pubkey(&n.pki("ca.next.crt"), false), pubkey(&old_ca, false));
    assert_eq!(
        pubkey(&n.pki("ca.next.key"), true),
        pubkey(&n.pki("ca.next.crt"), false)
    );
    // Every existing leaf still verifies against the bundle, none against the new CA alone.
    for l in ca_leaves(&n, s) {
        let (ok, out) = verifies(&n.pki("ca.crt"), &l);
        assert!(ok, "{}: {out}", l.display());
        let (ok, _) = verifies(&n.pki("ca.next.crt"), &l);
        assert!(!ok, "{} signed by the new CA after stage", l.display());
    }
    // A client certificate of either CA verifies against the bundle.
    let from_old = openssl_client(s, "from-old", &old_ca, &old_key);
    let from_new = openssl_client(s, "from-new", &n.pki("ca.next.crt"), &n.pki("ca.next.key"));
    for c in [&from_old, &from_new] {
        let (ok, out) = verifies(&n.pki("ca.crt"), c);
        assert!(ok, "{}: {out}", c.display());
    }
    for k in KUBECONFIGS {
        assert_eq!(kubeconfig_ca(&n.root.join(k)), bundle, "{k}");
    }
    // ca check reports the rotation.
    let o = n.run(&["ca", "check", "-o", "json"]);
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["cas"][0]["rotation"]["phase"], "staged", "{c}");
    assert_eq!(c["cas"][0]["rotation"]["newSpkiSha256"], new_hash.as_str());
    assert!(c["cas"][1].get("rotation").is_none(), "{c}");
    let staged = n.tree();
    let new_ca = n.pki("ca.next.crt");
    let new_ca = write_pem(s, "new-ca.crt", &pems(&new_ca)[0]);

    // promote, rolled back, promoted again.
    let v = n.rotate("ca", "promote", &[]);
    assert_eq!(v["phaseAfter"], "promoted", "{v}");
    assert_eq!(v["joinHash"], new_hash.as_str());
    let v = n.rotate("ca", "promote", &["--rollback"]);
    assert_eq!(v["phaseAfter"], "staged", "{v}");
    assert_eq!(n.tree(), staged, "rollback of promote");
    n.rotate("ca", "promote", &[]);
    let bundle = pems(&n.pki("ca.crt"));
    assert_eq!(
        bundle,
        vec![pems(&new_ca)[0].clone(), pems(&old_ca)[0].clone()]
    );
    assert!(!n.pki("ca.next.crt").exists() && !n.pki("ca.next.key").exists());
    assert_eq!(pubkey(&n.pki("ca.key"), true), pubkey(&new_ca, false));
    assert_eq!(
        std::fs::read(n.pki("ca.prev.crt")).unwrap(),
        std::fs::read(&old_ca).unwrap()
    );
    assert_eq!(
        std::fs::read(n.pki("ca.prev.key")).unwrap(),
        std::fs::read(&old_key).unwrap()
    );
    // Every leaf and kubeconfig client certificate: signed by the new CA (alone), not the old.
    for l in ca_leaves(&n, s) {
        let (ok, out) = verifies(&new_ca, &l);
        assert!(ok, "{}: {out}", l.display());
        let (ok, _) = verifies(&old_ca, &l);
        assert!(!ok, "{} still verifies against the old CA", l.display());
    }
    // Each leaf kept its key.
    assert_eq!(
        pubkey(&n.pki("apiserver.crt"), false),
        pubkey(&n.pki("apiserver.key"), true)
    );
    for c in [&from_old, &from_new] {
        let (ok, out) = verifies(&n.pki("ca.crt"), c);
        assert!(ok, "{}: {out}", c.display());
    }
    let promoted = n.tree();

    // distrust, rolled back, distrusted again.
    let v = n.rotate("ca", "distrust", &[]);
    assert_eq!(v["phaseAfter"], "distrusted", "{v}");
    let v = n.rotate("ca", "distrust", &["--rollback"]);
    assert_eq!(v["phaseAfter"], "promoted", "{v}");
    assert_eq!(n.tree(), promoted, "rollback of distrust");
    n.rotate("ca", "distrust", &[]);
    assert_eq!(pems(&n.pki("ca.crt")), pems(&new_ca));
    for k in KUBECONFIGS {
        assert_eq!(kubeconfig_ca(&n.root.join(k)), pems(&new_ca), "{k}");
    }
    assert!(!n.pki("ca.prev.key").exists());
    let (ok, _) = verifies(&n.pki("ca.crt"), &from_old);
    assert!(!ok, "a client certificate of the old CA still verifies");
    let (ok, out) = verifies(&n.pki("ca.crt"), &from_new);
    assert!(ok, "{out}");
    // ca check: the old CA is in no bundle (every bundle of ca is its new certificate).
    let o = n.run(&["ca", "check", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(c["cas"][0]["spkiSha256"], new_hash.as_str());
    assert_eq!(c["cas"][0]["rotation"]["phase"], "distrusted");
    assert_eq!(c["cas"][0]["bundles"].as_array().unwrap().len(), 6, "{c}");
}

#[test]
fn phases_out_of_order_or_repeated_change_nothing() {
    let n = Node::new();
    let before = n.tree();
    for (phase, more) in [
        ("promote", vec![]),
        ("distrust", vec![]),
        ("promote", vec!["--rollback"]),
        ("distrust", vec!["--rollback"]),
    ] {
        let mut a = vec!["ca", "rotate", "ca", "--phase", phase];
        a.extend(more.iter());
        let o = n.run(&a);
        let what = if more.is_empty() {
            phase.to_string()
        } else {
            format!("roll back {phase}")
        };
        assert_fails(
            &o,
            1,
            &format!("cannot {what} ca: the rotation is at phase none (no rotation in progress)"),
        );
        assert_eq!(n.tree(), before, "{phase} {more:?}");
    }
    let v = n.rotate("ca", "stage", &["--rollback"]);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("nothing to roll back"),
        "{v}"
    );
    assert_eq!(v["changed"], false);
    assert_eq!(n.tree(), before);
    // Dry run: the plan, nothing written.
    let v = n.rotate("ca", "stage", &["--dry-run"]);
    assert_eq!(v["phaseAfter"], "staged");
    assert_eq!(v["changes"][0]["action"], "would-write", "{v}");
    assert_eq!(n.tree(), before, "dry run wrote");
    n.rotate("ca", "stage", &[]);
    let staged = n.tree();
    let v = n.rotate("ca", "stage", &[]);
    assert!(
        v["message"].as_str().unwrap().contains("already done"),
        "{v}"
    );
    assert_eq!(v["changed"], false);
    let o = n.run(&["ca", "rotate", "ca", "--phase", "distrust"]);
    assert_fails(&o, 1, "cannot distrust ca: the rotation is at phase staged");
    assert_eq!(n.tree(), staged);
    // A same-key renewal would drop the new CA from the bundle: refused while staged.
    let o = n.run(&["ca", "renew", "ca", "--validity", "175200h"]);
    assert_fails(&o, 1, "cannot renew ca: the rotation is at phase staged");
    assert_eq!(n.tree(), staged);
    // A hand edit (a leaf of the new CA while staged) is named exactly.
    let o = n.run(&["ca", "rotate", "ca", "--phase", "promote"]);
    assert!(o.status.success(), "{}", text(&o));
    let promoted = n.tree();
    let v = n.rotate("ca", "promote", &[]);
    assert!(
        v["message"].as_str().unwrap().contains("already done"),
        "{v}"
    );
    assert_eq!(n.tree(), promoted);
    // Put one leaf of the old CA back: "promote interrupted: 6 of 7".
    let b = n.backup.clone();
    let last = std::fs::read_dir(&b)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let copy = std::fs::read_dir(&last)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().ends_with("-apiserver.crt"))
        .unwrap();
    std::fs::copy(&copy, n.pki("apiserver.crt")).unwrap();
    let hand = n.tree();
    let o = n.run(&["ca", "rotate", "ca", "--phase", "distrust"]);
    assert_fails(
        &o,
        1,
        "cannot distrust ca: the rotation is at phase inconsistent (promote interrupted: 6 of 7 leaves signed by the new CA)",
    );
    assert_eq!(n.tree(), hand);
}

#[test]
fn bad_next_files_are_refused_and_good_ones_used() {
    // CAs made by openssl start now: the real clock (the demo CA is valid from NOW).
    let mut n = Node::new();
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let before = n.tree();
    let next_crt = n.pki("ca.next.crt");
    let next_key = n.pki("ca.next.key");
    let newca_key = s.join("k.pem");
    let newca = s.join("c.pem");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        newca_key.to_str().unwrap(),
        "-subj",
        "/CN=kubernetes",
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
        "-out",
        newca.to_str().unwrap(),
    ]);
    n.now = tool("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .1
        .trim()
        .to_string();
    let cases: [(&Path, Option<&Path>, &str); 4] = [
        (
            &n.pki("ca.crt"),
            Some(&n.pki("ca.key")),
            "has the same key as the current ca",
        ),
        (
            &n.pki("apiserver.crt"),
            Some(&n.pki("apiserver.key")),
            "not a CA",
        ),
        (&newca, Some(&n.pki("ca.key")), "ca.next.key is not its key"),
        (
            &newca,
            None,
            "ca.next.key is absent, but this ca signs with a local key",
        ),
    ];
    for (crt, key, needle) in cases {
        std::fs::copy(crt, &next_crt).unwrap();
        let _ = std::fs::remove_file(&next_key);
        if let Some(k) = key {
            std::fs::copy(k, &next_key).unwrap();
        }
        let placed = n.tree();
        let o = n.run(&["ca", "rotate", "ca", "--phase", "stage"]);
        let t = assert_fails(&o, 1, needle);
        assert!(!t.contains("PRIVATE KEY"), "{t}");
        assert_eq!(n.tree(), placed, "{needle}");
    }
    // A good pair placed beforehand (as the playbook copies it from the first node) is used
    // as is: its bytes become the second certificate of ca.crt.
    std::fs::copy(&newca, &next_crt).unwrap();
    std::fs::copy(&newca_key, &next_key).unwrap();
    let v = n.rotate("ca", "stage", &[]);
    assert_eq!(v["phaseAfter"], "staged", "{v}");
    assert_eq!(pems(&n.pki("ca.crt"))[1], pems(&newca)[0]);
    assert_eq!(
        std::fs::read(&next_key).unwrap(),
        std::fs::read(&newca_key).unwrap()
    );
    // Its rollback leaves the placed files where they were.
    n.rotate("ca", "stage", &["--rollback"]);
    assert!(next_crt.exists() && next_key.exists());
    std::fs::remove_file(&next_crt).unwrap();
    std::fs::remove_file(&next_key).unwrap();
    assert_eq!(n.tree(), before);
}

#[test]
fn etcd_ca_and_front_proxy_ca_stage_promote_distrust() {
    let n = Node::new();
    for (ca, base, leaves) in [
        (
            "etcd-ca",
            "etcd/ca",
            vec![
                "etcd/server.crt",
                "etcd/peer.crt",
                "etcd/healthcheck-client.crt",
                "apiserver-etcd-client.crt",
            ],
        ),
        (
            "front-proxy-ca",
            "front-proxy-ca",
            vec!["front-proxy-client.crt"],
        ),
    ] {
        let scratch = tempfile::tempdir().unwrap();
        let crt = n.pki(&format!("{base}.crt"));
        let old = write_pem(scratch.path(), "old.crt", &pems(&crt)[0]);
        let ca_before = std::fs::read(n.pki("ca.crt")).unwrap();
        let v = n.rotate(ca, "stage", &[]);
        let want: &[&str] = if ca == "etcd-ca" {
            &["etcd", "kube-apiserver"]
        } else {
            &["kube-apiserver"]
        };
        assert_eq!(
            v["componentsToRestart"],
            serde_json::json!(want),
            "{ca}: {v}"
        );
        assert_eq!(pems(&crt).len(), 2, "{ca}");
        for l in &leaves {
            let (ok, out) = verifies(&crt, &n.pki(l));
            assert!(ok, "{ca} {l}: {out}");
        }
        let new = write_pem(
            scratch.path(),
            "new.crt",
            &pems(&n.pki(&format!("{base}.next.crt")))[0],
        );
        n.rotate(ca, "promote", &[]);
        for l in &leaves {
            let (ok, out) = verifies(&new, &n.pki(l));
            assert!(ok, "{ca} {l}: {out}");
            assert!(!verifies(&old, &n.pki(l)).0, "{ca} {l}");
        }
        assert_eq!(
            pubkey(&n.pki(&format!("{base}.key")), true),
            pubkey(&new, false)
        );
        n.rotate(ca, "distrust", &[]);
        assert_eq!(pems(&crt), pems(&new), "{ca}");
        // The cluster CA and its kubeconfigs are untouched.
        assert_eq!(std::fs::read(n.pki("ca.crt")).unwrap(), ca_before, "{ca}");
    }
}

#[test]
fn ca_renew_refuses_a_validity_that_shortens_the_ca() {
    let n = Node::new();
    let before = n.tree();
    let o = n.run(&["ca", "renew", "ca", "--validity", "8760h"]);
    assert_fails(
        &o,
        1,
        "refusing to renew ca: the new NotAfter 2027-12-01T00:00:00Z is before the current 2036-11-28T00:00:00Z",
    );
    assert_eq!(n.tree(), before);
    // As long or longer: renewed.
    let o = n.run(&["ca", "renew", "ca", "--validity", "87600h"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn rpc_ca_rotate_is_typed_and_audited() {
    use serde_json::json;
    use std::io::Write;
    use std::process::{Command, Stdio};
    let n = Node::new();
    let before = n.tree();
    let params = |phase: &str, dry: bool| {
        json!({
            "cert_dir": n.root.join("pki"), "kubeconfig_dir": n.root,
            "backup_dir": n.backup, "now": NOW,
            "ca": "ca", "phase": phase, "dry_run": dry,
        })
    };
    let calls = [
        json!({"jsonrpc":"2.0","id":1,"method":"ca-rotate","params": params("stage", true)}),
        json!({"jsonrpc":"2.0","id":2,"method":"ca-rotate","params": params("promote", false)}),
        json!({"jsonrpc":"2.0","id":3,"method":"ca-rotate","params": {"ca":"ca","phase":"stage","bogus":1}}),
        json!({"jsonrpc":"2.0","id":4,"method":"ca-rotate","params": params("stage", false)}),
    ];
    let mut child = Command::new(bin())
        .args(["serve", "--stdio", "--cert-dir"])
        .arg(n.root.join("pki"))
        .arg("--kubeconfig-dir")
        .arg(&n.root)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = calls.iter().map(|c| format!("{c}\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let r: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(r[0]["result"]["phaseAfter"], "staged", "{}", r[0]);
    assert_eq!(r[0]["result"]["dryRun"], true);
    assert_eq!(r[1]["error"]["code"], -31003, "{}", r[1]);
    assert!(
        r[1]["error"]["data"]["cause"]
            .as_str()
            .unwrap()
            .contains("cannot promote ca: the rotation is at phase none"),
        "{}",
        r[1]
    );
    assert_eq!(r[2]["error"]["code"], -32602, "{}", r[2]);
    assert_eq!(r[3]["result"]["phaseAfter"], "staged", "{}", r[3]);
    assert!(log.contains("method=ca-rotate"), "{log}");
    assert!(log.contains("ca.next.key"), "{log}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
    assert_ne!(n.tree(), before);
}

/// `kubecert restore` of a phase's backup puts the phase before back too (the rotation
/// files are restorable: written back from their copies, or removed when the phase made
/// them), modes included.
#[test]
fn restore_of_a_promote_backup_gives_back_the_staged_tree() {
    let n = Node::new();
    n.rotate("ca", "stage", &[]);
    let staged = n.tree();
    let v = n.rotate("ca", "promote", &[]);
    let b = v["backupDir"].as_str().unwrap().to_string();
    let o = kubecert(&[
        "restore",
        &b,
        "--backup-root",
        n.backup.to_str().unwrap(),
        "--cert-dir",
        n.root.join("pki").to_str().unwrap(),
        "--kubeconfig-dir",
        n.root.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(n.tree(), staged);
}

// ---------------------------------------------------------------------------------------
// cluster-info (kube-public) through the API, against tests/certapi/server.py

/// kubeadm's cluster-info kubeconfig (phases/bootstraptoken/clusterinfo), CA data of `ca`.
#[cfg(feature = "k8s")]
fn cluster_info_kubeconfig(ca: &Path) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(ca).unwrap());
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {b64}\n    \
         server: https://10.0.0.1:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\n\
         kind: Config\npreferences: {{}}\nusers: null\n"
    )
}

/// A signature of the cluster-info content by a bootstrap token (what kube-controller-manager's
/// bootstrapsigner writes); kubecert must leave it as it is.
#[cfg(feature = "k8s")]
const JWS: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..c2lnbmF0dXJl";

/// tests/certapi/server.py serving with a certificate of the node's (old) CA, seeded with a
/// cluster-info ConfigMap whose CA data is the node's ca.crt; mkenv.sh's admin.conf.
#[cfg(feature = "k8s")]
struct ApiServer {
    server: common::apiserver::ApiServer,
    seeded: String,
}

#[cfg(feature = "k8s")]
impl std::ops::Deref for ApiServer {
    type Target = common::apiserver::ApiServer;
    fn deref(&self) -> &Self::Target {
        &self.server
    }
}

#[cfg(feature = "k8s")]
impl ApiServer {
    fn start(n: &Node, extra: &[&str]) -> ApiServer {
        let ca = n.pki("ca.crt");
        let seeded = cluster_info_kubeconfig(&ca);
        let data = serde_json::json!({"kubeconfig": seeded, "jws-kubeconfig-abcdef": JWS});
        let server = common::apiserver::ApiServer::start(
            &ca,
            &n.pki("ca.key"),
            &[("kube-public", "cluster-info", data)],
            extra,
        );
        ApiServer { server, seeded }
    }

    /// `kubectl get cm cluster-info -n kube-public -o jsonpath=...` (the real kubectl).
    fn get(&self, jsonpath: &str) -> String {
        self.kubectl(&[
            "get",
            "cm",
            "cluster-info",
            "-n",
            "kube-public",
            "-o",
            &format!("jsonpath={jsonpath}"),
        ])
    }

    /// The CA data of cluster-info's kubeconfig, decoded.
    fn ca_bytes(&self) -> Vec<u8> {
        use base64::Engine;
        let kc = self.get("{.data.kubeconfig}");
        let line = kc
            .lines()
            .find(|l| l.trim_start().starts_with("certificate-authority-data:"))
            .unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(line.split(':').nth(1).unwrap().trim())
            .unwrap()
    }

    /// cluster-info's kubeconfig must be the seeded one with only the CA data changed, and
    /// the signature key must be untouched.
    fn assert_only_ca_changed(&self, ca: &Path) {
        let kc = self.get("{.data.kubeconfig}");
        assert_eq!(kc, cluster_info_kubeconfig(ca), "seeded:\n{}", self.seeded);
        assert_eq!(self.get("{.data.jws-kubeconfig-abcdef}"), JWS);
    }
}

#[cfg(feature = "k8s")]
fn fingerprint(pem: &str, dir: &Path, name: &str) -> String {
    let p = write_pem(dir, name, pem);
    openssl(&[
        "x509",
        "-in",
        p.to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ])
}

#[cfg(feature = "k8s")]
fn pems_of(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|p| p.contains("BEGIN CERTIFICATE"))
        .map(str::to_string)
        .collect()
}

/// stage, promote, distrust and a rollback of `ca` with `--kubeconfig`: after each, the real
/// kubectl shows cluster-info's CA data = the node's ca.crt byte for byte (old+new, new+old,
/// new alone: openssl fingerprints), the rest of its kubeconfig and the bootstrap-token
/// signature key as they were; a dry run writes nothing to the API.
#[cfg(feature = "k8s")]
#[test]
fn cluster_info_follows_every_phase_of_ca() {
    let n = Node::new();
    let api = ApiServer::start(&n, &[]);
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let old_fp = fingerprint(&pems(&n.pki("ca.crt"))[0], s, "old.pem");
    let admin = api.admin.to_str().unwrap().to_string();
    let rv0 = api.get("{.metadata.resourceVersion}");

    // dry run: what would change, no write
    let r = n.rotate("ca", "stage", &["--kubeconfig", &admin, "--dry-run"]);
    assert_eq!(r["clusterInfo"]["updated"], false, "{r}");
    assert_eq!(r["clusterInfo"]["wouldUpdate"], true, "{r}");
    assert_eq!(r["clusterInfo"]["server"], api.url.as_str(), "{r}");
    assert_eq!(api.get("{.metadata.resourceVersion}"), rv0);

    let r = n.rotate("ca", "stage", &["--kubeconfig", &admin]);
    assert_eq!(r["clusterInfo"]["updated"], true, "{r}");
    let rv1 = api.get("{.metadata.resourceVersion}");
    assert_eq!(r["clusterInfo"]["resourceVersion"], rv1.as_str(), "{r}");
    assert_ne!(rv1, rv0);
    assert_eq!(api.ca_bytes(), std::fs::read(n.pki("ca.crt")).unwrap());
    api.assert_only_ca_changed(&n.pki("ca.crt"));
    let new_fp = fingerprint(&pems(&n.pki("ca.next.crt"))[0], s, "new.pem");
    let got: Vec<String> = pems_of(&api.ca_bytes())
        .iter()
        .enumerate()
        .map(|(i, p)| fingerprint(p, s, &format!("s{i}.pem")))
        .collect();
    assert_eq!(got, vec![old_fp.clone(), new_fp.clone()]);
    let cl = r["checklist"].to_string();
    assert!(cl.contains("bootstrapsigner"), "{cl}");
    assert!(!cl.contains("update it by hand"), "{cl}");

    let r = n.rotate("ca", "promote", &["--kubeconfig", &admin]);
    assert_eq!(r["clusterInfo"]["updated"], true, "{r}");
    assert_eq!(api.ca_bytes(), std::fs::read(n.pki("ca.crt")).unwrap());
    api.assert_only_ca_changed(&n.pki("ca.crt"));
    let got: Vec<String> = pems_of(&api.ca_bytes())
        .iter()
        .enumerate()
        .map(|(i, p)| fingerprint(p, s, &format!("p{i}.pem")))
        .collect();
    assert_eq!(got, vec![new_fp.clone(), old_fp.clone()]);

    let r = n.rotate("ca", "distrust", &["--kubeconfig", &admin]);
    assert_eq!(r["clusterInfo"]["updated"], true, "{r}");
    assert_eq!(api.ca_bytes(), std::fs::read(n.pki("ca.crt")).unwrap());
    api.assert_only_ca_changed(&n.pki("ca.crt"));
    let got: Vec<String> = pems_of(&api.ca_bytes())
        .iter()
        .enumerate()
        .map(|(i, p)| fingerprint(p, s, &format!("d{i}.pem")))
        .collect();
    assert_eq!(got, vec![new_fp.clone()]);

    // a rollback of distrust: the bundle new+old again, in cluster-info too
    let r = n.rotate("ca", "distrust", &["--rollback", "--kubeconfig", &admin]);
    assert_eq!(r["clusterInfo"]["updated"], true, "{r}");
    assert_eq!(api.ca_bytes(), std::fs::read(n.pki("ca.crt")).unwrap());
    assert_eq!(pems_of(&api.ca_bytes()).len(), 2);

    // without --kubeconfig: no clusterInfo, the manual checklist line
    let r = n.rotate("ca", "distrust", &[]);
    assert!(r.get("clusterInfo").is_none(), "{r}");
    assert!(r["checklist"].to_string().contains("cluster-info"), "{r}");
}

/// The API server answers the update with 409 Conflict (someone changed cluster-info in
/// between), or cannot be reached: the phase's files are committed (the source of truth,
/// not rolled back), the result says `clusterInfo.updated == false` with the error, the
/// call fails naming cluster-info and the API server; running the phase again with
/// `--kubeconfig` then updates cluster-info.
#[cfg(feature = "k8s")]
#[test]
fn cluster_info_conflict_or_unreachable_fails_after_the_files_are_committed() {
    let n = Node::new();
    let api = ApiServer::start(&n, &["--configmap-conflicts", "1"]);
    let admin = api.admin.to_str().unwrap().to_string();
    let before = n.tree();
    let seeded_ca = api.ca_bytes();
    let o = n.run(&[
        "ca",
        "rotate",
        "ca",
        "--phase",
        "stage",
        "--kubeconfig",
        &admin,
        "-o",
        "json",
    ]);
    let t = assert_fails(&o, 1, "cluster-info");
    assert!(t.contains(&api.url), "{t}");
    assert!(t.contains("Conflict"), "{t}");
    assert!(t.contains("files of this node are committed"), "{t}");
    assert!(!t.contains("PRIVATE KEY"), "{t}");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["clusterInfo"]["updated"], false, "{r}");
    assert!(
        r["clusterInfo"]["error"]
            .as_str()
            .unwrap()
            .contains("Conflict"),
        "{r}"
    );
    assert_eq!(r["phaseAfter"], "staged");
    assert_ne!(n.tree(), before);
    assert_eq!(pems(&n.pki("ca.crt")).len(), 2);
    assert_eq!(api.ca_bytes(), seeded_ca, "cluster-info must be unchanged");
    // again: the phase is done, cluster-info is brought up to date
    let r = n.rotate("ca", "stage", &["--kubeconfig", &admin]);
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["clusterInfo"]["updated"], true, "{r}");
    assert_eq!(api.ca_bytes(), std::fs::read(n.pki("ca.crt")).unwrap());

    // unreachable: a kubeconfig whose server is a closed port
    let port = free_port();
    let dead = n.root.join("dead.conf");
    let text_ = std::fs::read_to_string(&api.admin)
        .unwrap()
        .replace(&api.url, &format!("https://127.0.0.1:{port}"));
    std::fs::write(&dead, text_).unwrap();
    let before = n.tree();
    let o = n.run(&[
        "ca",
        "rotate",
        "ca",
        "--phase",
        "promote",
        "--kubeconfig",
        dead.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let t = assert_fails(&o, 1, "cluster-info");
    assert!(t.contains(&format!("https://127.0.0.1:{port}")), "{t}");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["clusterInfo"]["updated"], false, "{r}");
    assert_eq!(r["phaseAfter"], "promoted");
    assert_ne!(n.tree(), before);
}

/// etcd-ca / front-proxy-ca: cluster-info holds only the cluster CA; --kubeconfig changes
/// nothing there and the result says so.
#[cfg(feature = "k8s")]
#[test]
fn cluster_info_is_not_touched_for_etcd_ca() {
    let n = Node::new();
    let api = ApiServer::start(&n, &[]);
    let rv0 = api.get("{.metadata.resourceVersion}");
    let admin = api.admin.to_str().unwrap().to_string();
    let r = n.rotate("etcd-ca", "stage", &["--kubeconfig", &admin]);
    assert!(r.get("clusterInfo").is_none(), "{r}");
    assert!(
        r["checklist"]
            .to_string()
            .contains("cluster-info holds only the cluster CA"),
        "{r}"
    );
    assert_eq!(api.get("{.metadata.resourceVersion}"), rv0);
}

/// The kubelet's rotated client pair (`kubelet-client-current.pem`, certificate then key) for
/// node-1, signed with openssl by `ca_crt`/`ca_key`.
fn kubelet_client_pem(dir: &Path, out: &Path, ca_crt: &Path, ca_key: &Path) {
    let key = dir.join("kubelet-client.key");
    let csr = dir.join("kubelet-client.csr");
    let crt = dir.join("kubelet-client.crt");
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-subj",
        "/O=system:nodes/CN=system:node:node-1",
        "-out",
        csr.to_str().unwrap(),
    ]);
    let ext = dir.join("kubelet-client.ext");
    std::fs::write(
        &ext,
        "authorityKeyIdentifier=keyid:always\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-extfile",
        ext.to_str().unwrap(),
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        ca_crt.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-set_serial",
        "0x1234abcd",
        "-days",
        "365",
        "-out",
        crt.to_str().unwrap(),
    ]);
    let mut pem = std::fs::read(&crt).unwrap();
    pem.extend(std::fs::read(&key).unwrap());
    std::fs::write(out, pem).unwrap();
    std::fs::set_permissions(out, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

#[test]
fn distrust_of_ca_refuses_while_the_kubelets_client_file_is_signed_by_the_old_ca_only() {
    let n = Node::new();
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let kp = n.kubelet_pki();
    let current = kp.join("kubelet-client-current.pem");
    kubelet_client_pem(s, &current, &n.pki("ca.crt"), &n.pki("ca.key"));
    // kubelet.conf references it, as on a kubeadm >= 1.17 node.
    n.refer_kubelet_conf_to(&kp);
    n.rotate("ca", "stage", &[]);
    n.rotate("ca", "promote", &[]);
    let before = n.tree();
    let o = n.run(&["ca", "rotate", "ca", "--phase", "distrust", "-o", "json"]);
    assert_fails(
        &o,
        1,
        &format!(
            "cannot distrust ca: the rotation is at phase promoted (the client certificate {} \
             (used by {}) is still signed by the old CA only: the API server would refuse it \
             after distrust.",
            current.display(),
            n.root.join("kubelet.conf").display()
        ),
    );
    assert_eq!(n.tree(), before, "a refused distrust changes nothing");
    // Re-issued by the new CA (what the kubelet's rotation does): distrust goes through.
    let new_ca = write_pem(s, "new-ca.crt", &pems(&n.pki("ca.crt"))[0]);
    kubelet_client_pem(s, &current, &new_ca, &n.pki("ca.key"));
    let v = n.rotate("ca", "distrust", &[]);
    assert_eq!(v["phaseAfter"], "distrusted", "{v}");
    let (ok, out) = verifies(&n.pki("ca.crt"), &current);
    assert!(ok, "{out}");
}

/// The subject of a certificate as openssl prints it (`-nameopt RFC2253`).
fn subject_of(p: &Path) -> String {
    openssl(&[
        "x509",
        "-in",
        p.to_str().unwrap(),
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
    ])
}

/// Promote of `ca` with `--kubelet-pki`: the kubelet's file-referenced client certificate
/// (kubelet.conf → `kubelet-client-current.pem` → a dated pair, as the kubelet keeps it) is
/// re-issued by the new CA with the same key and identity, as a new dated pair the link is
/// swapped to (backed up: the rollback of promote puts the old link back and removes the new
/// pair); distrust then goes through.
#[test]
fn promote_of_ca_reissues_the_kubelets_client_file_in_its_kubelet_pki() {
    let n = Node::new();
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    let kp = n.kubelet_pki();
    let dated = kp.join("kubelet-client-2026-11-01-00-00-00.pem");
    kubelet_client_pem(s, &dated, &n.pki("ca.crt"), &n.pki("ca.key"));
    let current = kp.join("kubelet-client-current.pem");
    std::os::unix::fs::symlink(&dated, &current).unwrap();
    n.refer_kubelet_conf_to(&kp);
    let old_ca = write_pem(s, "old-ca.crt", &pems(&n.pki("ca.crt"))[0]);
    let old_subject = subject_of(&current);
    let old_pubkey = pubkey(&current, false);
    let kpa = ["--kubelet-pki", kp.to_str().unwrap()];
    n.rotate("ca", "stage", &kpa);
    let new_ca = write_pem(s, "new-ca.crt", &pems(&n.pki("ca.next.crt"))[0]);
    let staged = n.tree();
    let v = n.rotate("ca", "promote", &kpa);
    assert_eq!(v["phaseAfter"], "promoted", "{v}");
    assert!(
        v["written"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w == current.to_str().unwrap()),
        "{v}"
    );
    // The link now names a new dated pair; the old pair is untouched.
    let target = std::fs::read_link(&current).unwrap();
    assert_ne!(target, dated, "the link still names the old pair");
    assert_eq!(target.parent(), Some(kp.as_path()));
    assert_eq!(mode(&target), 0o600);
    let (ok_new, out) = verifies(&new_ca, &current);
    assert!(
        ok_new,
        "the kubelet's client certificate against the new CA: {out}"
    );
    let (ok_old, _) = verifies(&old_ca, &current);
    assert!(
        !ok_old,
        "the kubelet's client certificate still verifies against the old CA"
    );
    assert_eq!(subject_of(&current), old_subject);
    assert!(old_subject.contains("O=system:nodes"), "{old_subject}");
    assert!(
        old_subject.contains("CN=system:node:node-1"),
        "{old_subject}"
    );
    // Same key: the certificate's public key is the pair's key.
    assert_eq!(pubkey(&current, false), old_pubkey);
    assert_eq!(pubkey(&current, true), old_pubkey);
    let eku = openssl(&[
        "x509",
        "-in",
        current.to_str().unwrap(),
        "-noout",
        "-ext",
        "extendedKeyUsage",
    ]);
    assert!(eku.contains("TLS Web Client Authentication"), "{eku}");
    // The checklist no longer asks to re-issue it by hand.
    assert!(
        !v["checklist"]
            .to_string()
            .contains("is a file kubecert does not re-sign"),
        "{v}"
    );
    // Rollback of promote: the staged tree byte for byte (link and old pair back, new pair gone).
    n.rotate(
        "ca",
        "promote",
        &["--rollback", "--kubelet-pki", kp.to_str().unwrap()],
    );
    assert_eq!(n.tree(), staged, "rollback of promote");
    n.rotate("ca", "promote", &kpa);
    let v = n.rotate("ca", "distrust", &kpa);
    assert_eq!(v["phaseAfter"], "distrusted", "{v}");
    let (ok, out) = verifies(&n.pki("ca.crt"), &current);
    assert!(ok, "{out}");
}

/// A kubelet client file referenced by kubelet.conf that is missing, not a certificate, or a
/// link out of its dir makes distrust of `ca` refuse (exit 1, typed: RPC -31003), naming the
/// file and the kubeconfig; nothing changes on disk. Readable again (re-issued by the new
/// CA), distrust goes through.
#[test]
fn distrust_of_ca_refuses_while_the_kubelets_client_file_cannot_be_read() {
    let n = Node::new();
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    // Outside the default kubelet PKI dir: promote leaves it alone.
    let kp = n.kubelet_pki();
    let current = kp.join("kubelet-client-current.pem");
    kubelet_client_pem(s, &current, &n.pki("ca.crt"), &n.pki("ca.key"));
    n.refer_kubelet_conf_to(&kp);
    n.rotate("ca", "stage", &[]);
    n.rotate("ca", "promote", &[]);
    let new_ca = write_pem(s, "new-ca.crt", &pems(&n.pki("ca.crt"))[0]);
    let want = format!(
        "cannot distrust ca: the client certificate file {} referenced by {} cannot be read, \
         so whether the API server accepts it after distrust cannot be told; restore it or \
         re-issue it (`kubecert kubelet-conf rebuild`), then run distrust again; nothing was \
         changed",
        current.display(),
        n.root.join("kubelet.conf").display()
    );
    let elsewhere = s.join("elsewhere.pem");
    kubelet_client_pem(s, &elsewhere, &new_ca, &n.pki("ca.key"));
    type Break = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Break, &str)> = vec![
        (
            "missing",
            Box::new(|p: &Path| std::fs::remove_file(p).unwrap()),
            "No such file",
        ),
        (
            "not a certificate",
            Box::new(|p: &Path| std::fs::write(p, "not a pem\n").unwrap()),
            "",
        ),
        (
            "a link out of its dir",
            Box::new(move |p: &Path| {
                std::fs::remove_file(p).unwrap();
                std::os::unix::fs::symlink(&elsewhere, p).unwrap()
            }),
            "symlink",
        ),
    ];
    for (what, brk, cause) in cases {
        let _ = std::fs::remove_file(&current);
        kubelet_client_pem(s, &current, &n.pki("ca.prev.crt"), &n.pki("ca.prev.key"));
        brk(&current);
        let before = n.tree();
        let o = n.run(&["ca", "rotate", "ca", "--phase", "distrust"]);
        let t = assert_fails(&o, 1, &want);
        assert!(t.contains(cause), "{what}: {t}");
        assert_eq!(
            n.tree(),
            before,
            "{what}: a refused distrust changes nothing"
        );
    }
    let _ = std::fs::remove_file(&current);
    kubelet_client_pem(s, &current, &new_ca, &n.pki("ca.key"));
    let v = n.rotate("ca", "distrust", &[]);
    assert_eq!(v["phaseAfter"], "distrusted", "{v}");
}

/// Promote of an external CA (no `<ca>.key`, the new CA placed as `ca.next.crt` alone):
/// -31001 / exit 1, and the message says what the operator must do, with the real commands;
/// nothing changes.
#[test]
fn promote_of_an_external_ca_says_what_to_do() {
    let mut n = Node::new();
    let scratch = tempfile::tempdir().unwrap();
    let s = scratch.path();
    std::fs::rename(n.pki("ca.key"), s.join("old-ca.key")).unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        s.join("new-ca.key").to_str().unwrap(),
        "-out",
        n.pki("ca.next.crt").to_str().unwrap(),
        "-subj",
        "/CN=kubernetes",
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    ]);
    // openssl made the new CA with the real clock: run at it (after it).
    n.now = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string())
        .unwrap();
    let v = n.rotate("ca", "stage", &[]);
    assert_eq!(v["phaseAfter"], "staged", "{v}");
    let before = n.tree();
    let o = n.run(&["ca", "rotate", "ca", "--phase", "promote"]);
    let next_key = n.pki("ca.next.key");
    let next_crt = n.pki("ca.next.crt");
    assert_fails(
        &o,
        1,
        &format!(
            "cannot promote ca: {} is absent, and promote re-signs every leaf of ca with the \
             new CA's key. Either place the new CA's key there (the key of {}, mode 0600) and \
             run `kubecert ca rotate ca --phase promote` again, or roll the stage back \
             (`kubecert ca rotate ca --phase stage --rollback`) and re-issue the leaves with \
             the external CA yourself (`kubecert csr export all --csr-dir DIR`, sign the CSRs \
             with the new CA, `kubecert csr import all --csr-dir DIR` once the new CA is the \
             first certificate of {}); nothing was changed",
            next_key.display(),
            next_crt.display(),
            n.pki("ca.crt").display()
        ),
    );
    assert_eq!(n.tree(), before, "a refused promote changes nothing");
}
