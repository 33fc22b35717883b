//! Issue 12: confinement of the root agent, restore hardening, audit. In-process RPC tests
//! (no root needed: the caller is a `Caller` extension) and CLI tests of `restore`.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::rpc::{call_as as call, caller, other_uid};
use common::{bin, demo, hash_tree, kubecert};
use kubecert::rpc::Roots;
use serde_json::{json, Value};

fn roots_of(root: &Path) -> Roots {
    Roots::for_dirs(root.join("pki"), root)
}

fn error_code(r: &Value) -> i64 {
    r["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("expected an error: {r}"))
}

#[test]
fn no_caller_and_read_only_caller_may_not_renew() {
    let (t, root) = demo(&[]);
    let roots = roots_of(&root);
    let before = hash_tree(t.path());
    let r = call(&roots, None, "renew", json!({"names": ["apiserver"]}));
    assert_eq!(error_code(&r), -31004, "{r}");
    assert_eq!(
        r["error"]["data"]["cause"],
        "an unidentified caller may not call renew (mutating method)"
    );
    let r = call(
        &roots,
        Some(caller(false)),
        "renew",
        json!({"names": ["apiserver"]}),
    );
    assert_eq!(error_code(&r), -31004, "{r}");
    assert_eq!(
        r["error"]["data"]["cause"],
        format!("uid {} may not call renew (mutating method)", other_uid())
    );
    assert_eq!(hash_tree(t.path()), before);
}

#[test]
fn write_caller_with_foreign_cert_dir_is_refused() {
    let (t, root) = demo(&[]);
    let (t2, other) = demo(&[]);
    let roots = roots_of(&root);
    let before = (hash_tree(t.path()), hash_tree(t2.path()));
    let foreign = other.join("pki");
    let r = call(
        &roots,
        Some(caller(true)),
        "renew",
        json!({"names": ["apiserver"], "cert_dir": foreign}),
    );
    assert_eq!(error_code(&r), -31010, "{r}");
    let d = &r["error"]["data"];
    assert_eq!(d["param"], "cert_dir");
    assert_eq!(d["configured"], root.join("pki").display().to_string());
    assert_eq!(
        d["cause"],
        format!(
            "cert_dir: {} is not allowed for this caller: the agent serves {}; omit cert_dir \
             or pass that",
            foreign.display(),
            root.join("pki").display()
        )
    );
    assert_eq!((hash_tree(t.path()), hash_tree(t2.path())), before);
}

/// Issue item 2(a) as a write-tier caller: kubeconfig_dir at the caller's own dir (holding an
/// admin.conf it made) with the real cert_dir → refused, nothing signed.
#[test]
fn write_caller_with_own_kubeconfig_dir_gets_nothing_signed() {
    let (t, root) = demo(&[]);
    let (t2, own) = demo(&[]); // the caller's own admin.conf (another CA: the point is the dir)
    let roots = roots_of(&root);
    let before = (hash_tree(t.path()), hash_tree(t2.path()));
    let r = call(
        &roots,
        Some(caller(true)),
        "renew",
        json!({"names": ["admin.conf"], "cert_dir": root.join("pki"), "kubeconfig_dir": own}),
    );
    assert_eq!(error_code(&r), -31010, "{r}");
    assert_eq!(r["error"]["data"]["param"], "kubeconfig_dir");
    assert_eq!(r["error"]["data"]["configured"], root.display().to_string());
    assert_eq!((hash_tree(t.path()), hash_tree(t2.path())), before);
}

/// Issue item 3 as a read-tier caller: admin.conf a symlink to a file the caller may not
/// read → refused before anything is read; no byte of it in the answer.
#[test]
fn read_caller_cannot_point_check_at_a_symlinked_secret() {
    let (t, root) = demo(&[]);
    let roots = roots_of(&root);
    let evil = t.path().join("evil");
    fs::create_dir(&evil).unwrap();
    let secret = t.path().join("secret");
    fs::write(
        &secret,
        "-----BEGIN RSA PRIVATE KEY-----\nSECRETBYTES\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    symlink(&secret, evil.join("admin.conf")).unwrap();
    let r = call(
        &roots,
        Some(caller(false)),
        "check",
        json!({"kubeconfig_dir": evil}),
    );
    assert_eq!(error_code(&r), -31010, "{r}");
    assert_eq!(r["error"]["data"]["param"], "kubeconfig_dir");
    let text = r.to_string();
    assert!(
        !text.contains("SECRETBYTES") && !text.contains("BEGIN"),
        "{text}"
    );
}

#[test]
fn write_caller_with_absent_paths_renews_the_configured_pki() {
    let (t, root) = demo(&[]);
    let roots = roots_of(&root);
    let crt = root.join("pki/apiserver.crt");
    let old = fs::read(&crt).unwrap();
    let r = call(
        &roots,
        Some(caller(true)),
        "renew",
        json!({"names": ["apiserver"]}),
    );
    let res = &r["result"];
    assert_eq!(res["changed"], true, "{r}");
    assert_eq!(res["certificates"][0]["action"], "renewed");
    assert_ne!(fs::read(&crt).unwrap(), old);
    let backup = PathBuf::from(res["backupDir"].as_str().expect("backupDir"));
    assert_eq!(backup.parent(), Some(roots.backup_root.as_path()));
    // The same caller may restore it (backup_dir under the configured root, no other path).
    let r = call(
        &roots,
        Some(caller(true)),
        "restore",
        json!({"backup_dir": backup}),
    );
    assert_eq!(r["result"]["changed"], true, "{r}");
    assert_eq!(fs::read(&crt).unwrap(), old);
    drop(t);
}

#[test]
fn write_caller_restore_outside_the_backup_root_is_refused() {
    let (t, root) = demo(&[]);
    let roots = roots_of(&root);
    let (own, victim) = attacker_backup(t.path(), &root.join("pki/apiserver.crt"));
    let before = hash_tree(t.path());
    let r = call(
        &roots,
        Some(caller(true)),
        "restore",
        json!({"backup_dir": own}),
    );
    assert_eq!(error_code(&r), -31011, "{r}");
    assert_eq!(
        r["error"]["data"]["cause"],
        format!(
            "backup {} refused: not a backup of this PKI: backups are read only from \
             directories directly under the backup root {}",
            own.display(),
            roots.backup_root.display()
        )
    );
    // A root-chosen backup_root is also not the caller's to pass.
    let r = call(
        &roots,
        Some(caller(true)),
        "restore",
        json!({"backup_dir": own, "backup_root": t.path()}),
    );
    assert_eq!(error_code(&r), -31010, "{r}");
    assert_eq!(r["error"]["data"]["param"], "backup_root");
    assert_eq!(hash_tree(t.path()), before);
    assert_eq!(
        fs::read(&victim).unwrap(),
        b"root:x:0:0:root:/root:/bin/bash\n"
    );
}

/// A caller-written backup dir `<base>/own` whose manifest puts the caller's bytes over a
/// passwd-like `<base>/victim`, and copies `<base>/shadow` (0600) over `secret_target`.
fn attacker_backup(base: &Path, secret_target: &Path) -> (PathBuf, PathBuf) {
    let own = base.join("own");
    fs::create_dir_all(&own).unwrap();
    let victim = base.join("victim");
    fs::write(&victim, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let shadow = base.join("shadow");
    fs::write(&shadow, "root:$6$secret:19000::::::\n").unwrap();
    fs::set_permissions(&shadow, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(own.join("payload"), "evil::0:0::/:/bin/sh\n").unwrap();
    let manifest = json!({
        "created": "20260101T000000Z",
        "entries": [
            {"target": victim, "copy": own.join("payload")},
            {"target": secret_target, "copy": shadow},
        ]
    });
    fs::write(own.join("manifest.json"), manifest.to_string()).unwrap();
    (own, victim)
}

fn restore_cli(root: &Path, backup: &Path) -> std::process::Output {
    kubecert(&[
        "restore",
        backup.to_str().unwrap(),
        "--cert-dir",
        root.join("pki").to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
    ])
}

fn assert_refused(o: &std::process::Output, msg: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(msg), "expected {msg:?} in stderr: {err}");
}

/// Issue item 1 (CLI, so for every caller): a caller-written manifest outside the backup
/// root naming a passwd-like target and a root-only copy source → refused, bytes unchanged.
#[test]
fn restore_refuses_a_manifest_outside_the_backup_root() {
    let (t, root) = demo(&[]);
    let (own, victim) = attacker_backup(t.path(), &root.join("pki/apiserver.crt"));
    let before = hash_tree(t.path());
    let o = restore_cli(&root, &own);
    assert_refused(
        &o,
        &format!(
            "backup {} refused: not a backup of this PKI: backups are read only from \
             directories directly under the backup root {}",
            own.display(),
            root.join("kubecert-backup").display()
        ),
    );
    assert_eq!(hash_tree(t.path()), before);
    assert_eq!(
        fs::read(&victim).unwrap(),
        b"root:x:0:0:root:/root:/bin/bash\n"
    );
}

/// The same manifest moved under the backup root: its entries are refused one by one.
#[test]
fn restore_refuses_manifest_entries_that_are_not_inventory_files_or_plain_copies() {
    let (t, root) = demo(&[]);
    let crt = root.join("pki/apiserver.crt");
    let (own, victim) = attacker_backup(t.path(), &crt);
    let broot = root.join("kubecert-backup");
    fs::create_dir_all(&broot).unwrap();
    let inside = broot.join("20260101T000000Z");
    fs::rename(&own, &inside).unwrap();
    let manifest = |entries: Value| {
        fs::write(
            inside.join("manifest.json"),
            json!({"created": "x", "entries": entries}).to_string(),
        )
        .unwrap();
    };
    let before = hash_tree(t.path());
    // A target that is not a file of the PKI.
    manifest(json!([{"target": victim, "copy": inside.join("payload")}]));
    assert_refused(
        &restore_cli(&root, &inside),
        &format!(
            "backup {} refused: manifest entry {} is not a certificate, key or kubeconfig of \
             the PKI being restored",
            inside.display(),
            victim.display()
        ),
    );
    // An inventory target, but the copy is a root-only file outside the backup dir.
    let shadow = t.path().join("shadow");
    manifest(json!([{"target": crt, "copy": shadow}]));
    assert_refused(
        &restore_cli(&root, &inside),
        &format!(
            "copy {} is not a file inside the backup dir",
            shadow.display()
        ),
    );
    manifest(json!([{"target": crt, "copy": "../../shadow"}]));
    assert_refused(
        &restore_cli(&root, &inside),
        "is not a file inside the backup dir",
    );
    // A copy inside the dir that is a symlink to the root-only file.
    symlink(&shadow, inside.join("link")).unwrap();
    manifest(json!([{"target": crt, "copy": inside.join("link")}]));
    assert_refused(
        &restore_cli(&root, &inside),
        &format!(
            "backup {} refused: is a symlink",
            inside.join("link").display()
        ),
    );
    // A copy that is not a regular file.
    fs::create_dir(inside.join("dir")).unwrap();
    manifest(json!([{"target": crt, "copy": "dir"}]));
    assert_refused(&restore_cli(&root, &inside), "refused: not a regular file");
    // An oversized copy.
    fs::write(inside.join("big"), vec![b'a'; 1024 * 1024 + 1]).unwrap();
    manifest(json!([{"target": crt, "copy": "big"}]));
    assert_refused(
        &restore_cli(&root, &inside),
        "big refused: more than 1048576 bytes",
    );
    // The same target twice.
    manifest(json!([{"target": crt, "copy": null}, {"target": crt, "copy": null}]));
    assert_refused(&restore_cli(&root, &inside), "twice");
    fs::remove_file(inside.join("big")).unwrap();
    fs::remove_dir(inside.join("dir")).unwrap();
    fs::remove_file(inside.join("link")).unwrap();
    fs::remove_file(inside.join("manifest.json")).unwrap();
    // A manifest that is a symlink.
    let fake = t.path().join("fake.json");
    fs::write(&fake, json!({"created": "x", "entries": []}).to_string()).unwrap();
    symlink(&fake, inside.join("manifest.json")).unwrap();
    assert_refused(
        &restore_cli(&root, &inside),
        "manifest.json refused: is a symlink",
    );
    fs::remove_file(inside.join("manifest.json")).unwrap();
    fs::write(inside.join("manifest.json"), "{\"created\": ").unwrap();
    assert_refused(
        &restore_cli(&root, &inside),
        "manifest.json refused: not a kubecert manifest (line 1, column 12)",
    );
    // A backup dir under the root that is a symlink to the caller's dir.
    fs::remove_dir_all(&inside).unwrap();
    let (own2, _) = attacker_backup(&t.path().join("again"), &crt);
    symlink(&own2, &inside).unwrap();
    let before2 = hash_tree(&root.join("pki"));
    assert_refused(
        &restore_cli(&root, &inside),
        &format!("backup {} refused: is a symlink", inside.display()),
    );
    assert_eq!(hash_tree(&root.join("pki")), before2);
    let mut after = hash_tree(t.path());
    after.retain(|k, _| before.contains_key(k) && !k.starts_with("k8s/kubecert-backup"));
    let mut b = before.clone();
    b.retain(|k, _| !k.starts_with("k8s/kubecert-backup"));
    assert_eq!(after, b);
    assert_eq!(
        fs::read(&victim).unwrap(),
        b"root:x:0:0:root:/root:/bin/bash\n"
    );
}

/// A genuine backup still restores, from the CLI, with and without --backup-root.
#[test]
fn restore_of_a_real_backup_still_works() {
    let (t, root) = demo(&[]);
    let pki = root.join("pki");
    let before = hash_tree(&pki);
    let o = kubecert(&[
        "renew",
        "all",
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let backup = r["backupDir"].as_str().unwrap().to_string();
    assert_ne!(hash_tree(&pki), before);
    let o = kubecert(&[
        "restore",
        &backup,
        "--cert-dir",
        pki.to_str().unwrap(),
        "--kubeconfig-dir",
        root.to_str().unwrap(),
        "--backup-root",
        root.join("kubecert-backup").to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("restored "));
    assert_eq!(hash_tree(&pki), before);
    drop(t);
}

/// Runs `kubecert serve --stdio ARGS` on `input`; returns (exit code, stdout, stderr).
fn stdio(args: &[&str], input: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = Command::new(bin())
        .arg("serve")
        .arg("--stdio")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Every mutating call logs one audit line at the default level (no -v), with uid, method,
/// what changed, outcome; read calls none.
#[test]
fn stdio_agent_audits_mutating_calls() {
    let (t, root) = demo(&[]);
    let input = concat!(
        r#"{"jsonrpc":"2.0","id":1,"method":"renew","params":{"names":["apiserver","admin.conf"]}}"#,
        "\n",
        r#"{"jsonrpc":"2.0","id":2,"method":"check","params":{}}"#,
        "\n",
        r#"{"jsonrpc":"2.0","id":3,"method":"renew","params":{"names":["nope"]}}"#,
        "\n",
    );
    let (code, out, err) = stdio(
        &[
            "--cert-dir",
            root.join("pki").to_str().unwrap(),
            "--kubeconfig-dir",
            root.to_str().unwrap(),
        ],
        input,
    );
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let backup = lines[0]["result"]["backupDir"]
        .as_str()
        .expect("renewed")
        .to_string();
    assert!(backup.starts_with(&root.join("kubecert-backup").display().to_string()));
    let err = strip_ansi(&err);
    let audit: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("kubecert::audit"))
        .collect();
    assert_eq!(
        audit.len(),
        2,
        "one line per mutating call, none for check: {err}"
    );
    let uid = kubecert::rpc::unix::effective_uid();
    assert!(
        audit[0].contains(&format!(
            "audit uid={uid} pid=- method=renew outcome=ok code=- dry_run=false \
             changed=admin.conf,apiserver backup_dir={backup}"
        )),
        "{}",
        audit[0]
    );
    assert!(
        audit[1].contains(&format!(
            "audit uid={uid} pid=- method=renew outcome=failed code=-31005 dry_run=false \
             changed= backup_dir=-"
        )),
        "{}",
        audit[1]
    );
    drop(t);
}

/// `serve --stdio --socket X` used to drop --socket silently.
#[test]
fn stdio_and_socket_together_are_refused() {
    let o = kubecert(&["serve", "--stdio", "--socket", "/tmp/kubecert-x.sock"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error: the argument '--stdio' cannot be used with '--socket <SOCKET>'"),
        "{err}"
    );
}

/// stdio (the caller's own rights) may pass other paths; the agent's roots are only the
/// defaults there.
#[test]
fn stdio_caller_may_choose_paths() {
    let (t, root) = demo(&[]);
    let input = format!(
        "{}\n",
        json!({"jsonrpc": "2.0", "id": 1, "method": "check",
               "params": {"cert_dir": root.join("pki"), "kubeconfig_dir": root}})
    );
    let (code, out, err) = stdio(&[], &input);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["result"]["kind"], "CertificateExpirationInfo", "{v}");
    assert_eq!(v["result"]["certificates"][0]["missing"], false, "{v}");
    drop(t);
}
