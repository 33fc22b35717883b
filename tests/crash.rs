//! Crash safety of `renew all`: killed at random instants (SIGKILL) and at every failpoint of
//! the store, the next kubecert invocation recovers and every cert/key pair on disk matches
//! (checked with openssl), and the PKI is either entirely old or entirely new.
//! Trials: KUBECERT_CRASH_TRIALS (default 50; `make soak` runs 500).

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const PAIRS: &[&str] = &[
    "apiserver",
    "apiserver-kubelet-client",
    "apiserver-etcd-client",
    "front-proxy-client",
    "etcd/server",
    "etcd/peer",
    "etcd/healthcheck-client",
];

fn pub_of(args: &[&str]) -> String {
    let (ok, out) = openssl(args);
    assert!(ok, "{args:?}: {out}");
    out
}

fn assert_consistent(
    root: &Path,
    original: &std::collections::BTreeMap<String, String>,
    trial: &str,
) -> Outcome {
    let cert_dir = root.join("pki");
    // The next invocation recovers (check runs recovery first).
    let out = ok(&[
        "check",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for c in v["certificates"].as_array().unwrap() {
        let problems = c["detail"]["problems"].as_array().unwrap();
        assert!(
            problems.is_empty(),
            "{trial}: {} has problems {problems:?}",
            c["name"]
        );
    }
    for p in PAIRS {
        let crt = cert_dir.join(format!("{p}.crt"));
        let key = cert_dir.join(format!("{p}.key"));
        assert_eq!(
            pub_of(&["x509", "-in", crt.to_str().unwrap(), "-noout", "-pubkey"]),
            pub_of(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]),
            "{trial}: {p} cert/key mismatch after recovery"
        );
    }
    // No journal or staged file left behind.
    let now = hash_tree(root);
    assert!(
        now.keys()
            .all(|k| !k.contains(".kubecert-new") && !k.contains("journal")),
        "{trial}: leftovers {now:?}"
    );
    // All-or-nothing: every credential file changed, or none did.
    let creds: Vec<&String> = original
        .keys()
        .filter(|k| {
            !k.contains("kubecert-backup")
                && (k.ends_with(".crt") || k.ends_with(".key") || k.ends_with(".conf"))
        })
        .filter(|k| {
            !k.contains("/ca.")
                && !k.starts_with("pki/ca.")
                && !k.contains("front-proxy-ca")
                && !k.contains("sa.")
                && !k.ends_with("kubelet.conf")
        })
        .collect();
    let changed = creds
        .iter()
        .filter(|k| now.get(**k) != original.get(**k))
        .count();
    assert!(
        changed == 0 || changed == creds.len(),
        "{trial}: {changed} of {} files changed",
        creds.len()
    );
    if changed == 0 {
        Outcome::Old
    } else {
        Outcome::Renewed
    }
}

/// What the tree holds after recovery: all old files or all new ones.
#[derive(Debug, PartialEq)]
enum Outcome {
    Old,
    Renewed,
}

#[test]
fn sigkill_and_failpoints_during_renew_all() {
    let trials: usize = std::env::var("KUBECERT_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let (t, template) = demo(&["--expires-in", "5d"]);
    let failpoints: Vec<String> = [
        "after-backup",
        "after-journal-staging",
        "after-journal-prepared",
        "after-commit",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain((0..22).map(|i| format!("after-stage-{i}")))
    .chain((0..22).map(|i| format!("after-rename-{i}")))
    .collect();
    let mut killed = 0;
    let mut completed = 0;
    for i in 0..trials {
        let root = t.path().join(format!("trial-{i}"));
        copy_dir(&template, &root);
        let original = hash_tree(&root);
        let mut cmd = Command::new(bin());
        cmd.args([
            "renew",
            "all",
            "--cert-dir",
            root.join("pki").to_str().unwrap(),
            "--kubeconfig-dir",
            root.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let label;
        if i % 2 == 0 {
            // Deterministic: abort at a failpoint.
            let fp = &failpoints[(i / 2) % failpoints.len()];
            cmd.env("KUBECERT_FAILPOINT", fp);
            label = format!("trial {i} failpoint {fp}");
            let st = cmd.status().unwrap();
            if st.success() {
                completed += 1;
            } else {
                killed += 1;
            }
        } else {
            // Random SIGKILL; a small per-step delay widens the window in which it can land.
            cmd.env("KUBECERT_STEP_DELAY_MS", "3");
            let mut child = cmd.spawn().unwrap();
            let ms = rand::random::<u64>() % 1500;
            label = format!("trial {i} SIGKILL after {ms}ms");
            std::thread::sleep(Duration::from_millis(ms));
            let _ = child.kill();
            let st = child.wait().unwrap();
            if st.success() {
                completed += 1;
            } else {
                killed += 1;
            }
        }
        assert_consistent(&root, &original, &label);
        std::fs::remove_dir_all(&root).unwrap();
    }
    eprintln!(
        "crash trials: {trials}, interrupted: {killed}, completed before the kill: {completed}"
    );
    assert!(killed > trials / 3, "too few interrupted runs ({killed})");
}

#[test]
fn concurrent_renews_serialize() {
    let (_t, root) = demo(&["--expires-in", "5d"]);
    let cert_dir = root.join("pki");
    // The baseline is the tree before either run.
    let before = hash_tree(&root);
    let spawn = || {
        Command::new(bin())
            .args([
                "renew",
                "all",
                "--cert-dir",
                cert_dir.to_str().unwrap(),
                "--kubeconfig-dir",
                root.to_str().unwrap(),
                "-o",
                "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn();
    let b = spawn();
    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        oa.status.success(),
        "{}",
        String::from_utf8_lossy(&oa.stderr)
    );
    assert!(
        ob.status.success(),
        "{}",
        String::from_utf8_lossy(&ob.stderr)
    );
    let va: serde_json::Value = serde_json::from_slice(&oa.stdout).unwrap();
    let vb: serde_json::Value = serde_json::from_slice(&ob.stdout).unwrap();
    // Serialized: the later run's "old" serials are the earlier run's "new" ones.
    let serials = |v: &serde_json::Value, which: &str| -> Vec<String> {
        v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c[which]["serial"].as_str().unwrap().to_string())
            .collect()
    };
    let (a_new, b_old, b_new, a_old) = (
        serials(&va, "new"),
        serials(&vb, "old"),
        serials(&vb, "new"),
        serials(&va, "old"),
    );
    assert!(
        a_new == b_old || b_new == a_old,
        "runs interleaved: {va} {vb}"
    );
    // The tree holds the later run's certificates (no write of either run was lost).
    let later_new = if a_new == b_old { &b_new } else { &a_new };
    let on_disk: serde_json::Value = serde_json::from_str(&ok(&[
        "check",
        "--cert-dir",
        cert_dir.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "-o",
        "json",
    ]))
    .unwrap();
    let disk_serials: Vec<String> = on_disk["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] != "kubelet.conf" && !c["detail"]["serial"].is_null())
        .map(|c| c["detail"]["serial"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(&disk_serials, later_new, "tree is not the later run's");
    // Both runs succeeded, so every credential file is new (not a mix, not the old tree).
    assert_eq!(
        assert_consistent(&root, &before, "concurrent"),
        Outcome::Renewed
    );
}
