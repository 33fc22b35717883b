//! Shared helpers for integration tests: run the real binary, copy fixtures, hash trees.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_kubecert")
}

pub fn kubecert(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run kubecert")
}

pub fn ok(args: &[&str]) -> String {
    let o = kubecert(args);
    assert!(
        o.status.success(),
        "kubecert {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let t = dst.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

/// sha256 of every file under `dir` (relative path -> hex digest).
pub fn hash_tree(dir: &Path) -> BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    let mut out = BTreeMap::new();
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, hex::encode(Sha256::digest(&bytes)));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// Runs openssl; returns (success, stdout+stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Extracts the user's client-certificate-data of a kubeconfig into a PEM file next to it.
pub fn kubeconfig_cert(conf: &Path, out: &Path) {
    let text = std::fs::read_to_string(conf).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("client-certificate-data:"))
        .expect("client-certificate-data");
    let b64 = line.split(':').nth(1).unwrap().trim();
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    std::fs::write(out, pem).unwrap();
}

pub fn kubeconfig_key(conf: &Path, out: &Path) {
    let text = std::fs::read_to_string(conf).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("client-key-data:"))
        .expect("client-key-data");
    let b64 = line.split(':').nth(1).unwrap().trim();
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    std::fs::write(out, pem).unwrap();
}

/// A fresh demo PKI in a tempdir; returns (tempdir, root).
pub fn demo(args: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("k8s");
    let mut a = vec!["demo-pki", root.to_str().unwrap()];
    a.extend_from_slice(args);
    ok(&a);
    (t, root)
}

/// Asserts `o` exited with `code` (not a signal, not another failure) and that its stderr or
/// stdout says `needle`; returns stdout+stderr.
#[track_caller]
pub fn assert_fails(o: &Output, code: i32, needle: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(code), "{:?}: {text}", o.status);
    assert!(text.contains(needle), "wanted {needle:?} in: {text}");
    text
}
