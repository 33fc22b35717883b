//! What a release ships, seen from outside the binary: `--version` and the `version` RPC
//! method say the same build (version, commit, date, Kubernetes-API features), the
//! completion scripts are valid for their shells, and the man pages render with man(1).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_kubecert")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin()).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn version_flag_and_rpc_say_the_same_build() {
    let (code, out, err) = run(&["--version"]);
    assert_eq!(code, 0, "{err}");
    // kubecert 0.1.0 (commit 0c75129eb139, built 2026-12-02T00:25:50Z, kubernetes-api: yes)
    let line = out.trim_end();
    let rest = line
        .strip_prefix(&format!("kubecert {} (commit ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{line}"));
    let (commit, rest) = rest.split_once(", built ").unwrap();
    let (date, rest) = rest.split_once(", kubernetes-api: ").unwrap();
    let k8s = rest.strip_suffix(')').unwrap();
    assert!(commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(k8s, if cfg!(feature = "k8s") { "yes" } else { "no" });
    assert_eq!(run(&["-V"]).1, out, "-V and --version differ");

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--stdio", "--cert-dir"])
        .arg(dir.path())
        .arg("--kubeconfig-dir")
        .arg(dir.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"version\"}\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let v = &r["result"];
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"), "{r}");
    assert_eq!(v["gitCommit"], commit, "{r}");
    assert_eq!(v["buildDate"], date, "{r}");
    assert_eq!(v["kubernetesApi"], k8s == "yes", "{r}");
}

#[test]
fn completions_are_valid_scripts_for_their_shells() {
    for (shell, checker, marker) in [
        ("bash", "bash", "complete -F _kubecert"),
        ("zsh", "zsh", "#compdef kubecert"),
        ("fish", "fish", "complete -c kubecert"),
    ] {
        let (code, out, err) = run(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains(marker), "{shell}: no {marker:?}");
        // Every visible command is completed, the newest ones included.
        for cmd in ["check", "renew", "ca", "serve", "completions", "man"] {
            assert!(out.contains(cmd), "{shell}: {cmd} missing");
        }
        if !have(checker) {
            eprintln!("SKIP {shell} -n: {checker} not installed");
            continue;
        }
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), &out).unwrap();
        let o = Command::new(checker)
            .arg("-n")
            .arg(f.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{checker} -n: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let (code, _, err) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
}

#[test]
fn man_pages_render_with_man() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(&["man", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let pages = out
        .lines()
        .filter(|l| l.starts_with("[man] wrote "))
        .count();
    assert!(pages > 20, "{out}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), pages);
    if !have("man") {
        eprintln!("SKIP man -l: man not installed");
        return;
    }
    for (page, want) in [
        (
            "kubecert.1",
            "Keeps the certificates of kubeadm clusters alive",
        ),
        ("kubecert-renew.1", "--within"),
        ("kubecert-ca-rotate.1", "kubecert-ca-rotate"),
    ] {
        let o = Command::new("man")
            .arg("-l")
            .arg(Path::new(dir.path()).join(page))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "man -l {page}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(text.contains("NAME"), "{page}: {text}");
        assert!(text.contains(want), "{page}: no {want:?} in {text}");
    }
}
