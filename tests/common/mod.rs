//! The one helper module of the integration tests (tests/csr_support re-exports it): run the
//! real binary (`kubecert`, `ok`, `json`, the `check()` builder), openssl and other tools,
//! demo PKIs, fixtures, tree hashes, a real etcd ([`Etcd`]).
#![allow(dead_code)]

#[cfg(feature = "k8s")]
pub mod apiserver;
pub mod rpc;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_kubecert")
}

pub fn kubecert(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run kubecert")
}

/// stdout+stderr of a run.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs kubecert, asserts success, returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = kubecert(args);
    assert!(
        o.status.success(),
        "kubecert {args:?} failed:\n{}",
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs kubecert and parses its stdout as JSON (whatever the exit code).
pub fn json(args: &[&str]) -> serde_json::Value {
    let o = kubecert(args);
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("kubecert {args:?}: not JSON ({e}):\n{}", text(&o)))
}

/// `kubecert check --cert-dir <root>/pki --kubeconfig-dir <root>`, more args to add.
pub fn check(root: &Path) -> Check {
    Check::dirs(&root.join("pki"), root)
}

/// A `kubecert check` command line.
#[derive(Debug, Clone)]
pub struct Check {
    args: Vec<OsString>,
}

impl Check {
    /// `check --cert-dir <cert_dir> --kubeconfig-dir <kubeconfig_dir>`.
    pub fn dirs(cert_dir: &Path, kubeconfig_dir: &Path) -> Check {
        Check {
            args: vec![
                "check".into(),
                "--cert-dir".into(),
                cert_dir.into(),
                "--kubeconfig-dir".into(),
                kubeconfig_dir.into(),
            ],
        }
    }

    /// `check` on a fixture of tests/fixtures (certs in it, kubeconfigs in its kubeconfig/).
    pub fn fixture(name: &str) -> Check {
        let dir = fixtures().join(name);
        Check::dirs(&dir, &dir.join("kubeconfig"))
    }

    /// Appends arguments.
    pub fn args<S: AsRef<std::ffi::OsStr>>(mut self, more: &[S]) -> Check {
        self.args
            .extend(more.iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Runs it.
    pub fn output(&self) -> Output {
        Command::new(bin())
            .args(&self.args)
            .output()
            .expect("run kubecert")
    }

    /// Runs it, asserts exit code 0, returns stdout.
    pub fn ok(&self) -> String {
        let o = self.output();
        assert!(o.status.success(), "{:?} failed:\n{}", self.args, text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs it with `-o json`; returns the exit code and the parsed report.
    pub fn json(&self) -> (i32, serde_json::Value) {
        let o = self.clone().args(&["-o", "json"]).output();
        let v = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{:?}: not JSON ({e}):\n{}", self.args, text(&o)));
        (o.status.code().unwrap_or(-1), v)
    }
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

/// sha256 and mode of every file, and the mode of every dir, under `dir` (relative path ->
/// "hex mode"; dirs as "path/" -> "dir mode"; a symlink as "-> target" and the hash of the
/// file it points to, never followed into a dir).
pub fn hash_tree(dir: &Path) -> BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_symlink() {
                // The link, and the contents of a file it points to (a dir is not followed).
                let target = std::fs::read_link(&p).unwrap();
                let contents = match std::fs::metadata(&p) {
                    Ok(m) if m.is_file() => hex::encode(Sha256::digest(std::fs::read(&p).unwrap())),
                    Ok(_) => "not a file".into(),
                    Err(_) => "dangling".into(),
                };
                out.insert(rel, format!("-> {} {contents}", target.display()));
            } else if meta.is_dir() {
                out.insert(
                    format!("{rel}/"),
                    format!("dir {:o}", meta.permissions().mode()),
                );
                walk(base, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(
                    rel,
                    format!(
                        "{} {:o}",
                        hex::encode(Sha256::digest(&bytes)),
                        meta.permissions().mode()
                    ),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Permission bits of a file.
pub fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Runs a tool; returns (success, stdout+stderr).
pub fn tool(cmd: &str, args: &[&str]) -> (bool, String) {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    (o.status.success(), text(&o))
}

/// Runs openssl, asserts success, returns stdout+stderr.
pub fn openssl(args: &[&str]) -> String {
    let (ok, out) = tool("openssl", args);
    assert!(ok, "openssl {args:?} failed:\n{out}");
    out
}

/// Runs openssl; returns (success, stdout+stderr).
pub fn openssl_status(args: &[&str]) -> (bool, String) {
    tool("openssl", args)
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

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A single-member etcd over TLS with a kubeadm PKI's etcd/server and etcd/peer certs,
/// requiring client certificates of etcd/ca.crt; killed on drop.
pub struct Etcd {
    child: Child,
    /// `https://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The peer URL, `https://127.0.0.1:<port>`.
    pub peer: String,
    pki: PathBuf,
    log: PathBuf,
}

impl Etcd {
    /// Starts etcd with `pki`'s certificates; data and log under `dir`. Panics (with the way
    /// to install it) when etcd is not installed.
    pub fn start(pki: &Path, dir: &Path) -> Etcd {
        if Command::new("etcd").arg("--version").output().is_err() {
            panic!("etcd is not installed: run `make deps` (apt: etcd-server etcd-client)");
        }
        let (cport, pport) = (free_port(), free_port());
        let endpoint = format!("https://127.0.0.1:{cport}");
        let peer = format!("https://127.0.0.1:{pport}");
        let p = |f: &str| pki.join(f).display().to_string();
        let log = dir.join("etcd.log");
        let child = Command::new("etcd")
            .args([
                "--name",
                "node-1",
                "--data-dir",
                dir.join("etcd-data").to_str().unwrap(),
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
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start etcd");
        Etcd {
            child,
            endpoint,
            peer,
            pki: pki.to_path_buf(),
            log,
        }
    }

    /// `etcdctl endpoint health` with a client cert and key, trusting etcd/ca.crt.
    pub fn etcdctl(&self, cert: &Path, key: &Path) -> Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(&self.endpoint)
            .arg("--cacert")
            .arg(self.pki.join("etcd/ca.crt"))
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .args([
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

    /// Waits up to 20 s until etcd answers the healthcheck client; Err: the last answer.
    pub fn wait_healthy(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = String::new();
        while Instant::now() < deadline {
            let o = self.etcdctl(
                &self.pki.join("etcd/healthcheck-client.crt"),
                &self.pki.join("etcd/healthcheck-client.key"),
            );
            if o.status.success() {
                return Ok(());
            }
            last = text(&o);
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(last)
    }

    /// etcd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
