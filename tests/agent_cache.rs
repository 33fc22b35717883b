//! The agent's material cache (issue 18 items 1–2), over the real socket of a running
//! `kubecert serve --socket`: a file replaced by rename, rewritten in place with the same
//! size and mtime (only its ctime changes), or swapped via symlink is seen on the next call;
//! a check concurrent with renews (by the agent itself, or by another process) sees the state
//! before or after each renewal, never a mix. The oracle of "seen" is the CLI's own `check`
//! (a fresh process, no cache) on the same files with the same fixed clock.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{json, Value};

const NOW: &str = "2027-06-01T00:00:00Z";
/// More than the cache's racy window (`kubecert::pki::filestate::RACY_WINDOW`, 100 ms).
const RACY_WAIT: Duration = Duration::from_millis(250);

/// A `kubecert serve --socket` process, killed on drop.
struct Agent {
    child: Child,
    sock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start(env: &[(&str, &str)]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("kc.sock");
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--socket", sock.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let start = Instant::now();
        while !sock.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "agent did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent {
            child,
            sock,
            _dir: dir,
        }
    }

    /// One call on a new connection; the whole JSON-RPC response.
    fn call(&self, method: &str, params: Value) -> Value {
        rpc(&self.sock, method, params)
    }

    /// The cache's hit counter (`stats`).
    fn hits(&self) -> u64 {
        self.call("stats", json!({}))["result"]["checkCache"]["hits"]
            .as_u64()
            .unwrap()
    }

    /// The cache's counter `name` (`stats`).
    fn counter(&self, name: &str) -> u64 {
        self.call("stats", json!({}))["result"]["checkCache"][name]
            .as_u64()
            .unwrap()
    }

    /// A check answered from the cache (so that what follows tests the cache). Files
    /// changed less than the racy window (100 ms) before a read are not cached: the demo
    /// PKI was just written, so wait that out and read once more first.
    #[track_caller]
    fn warm(&self, root: &Path, r0: &Value) {
        std::thread::sleep(RACY_WAIT);
        assert_eq!(&self.check(root), r0);
        let h = self.hits();
        assert_eq!(&self.check(root), r0);
        assert_eq!(self.hits(), h + 1, "the second check was not a cache hit");
    }

    /// `check` of `root` at the fixed clock: the result (panics on an error response).
    fn check(&self, root: &Path) -> Value {
        let r = self.call("check", check_params(root));
        r.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("check failed: {r}"))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rpc(sock: &Path, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut s = UnixStream::connect(sock).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let (_, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn check_params(root: &Path) -> Value {
    json!({
        "cert_dir": root.join("pki"),
        "kubeconfig_dir": root,
        "kubelet_pki": root.join("kubelet-pki"),
        "now": NOW,
    })
}

/// The CLI's `check -o json` of the same files at the same clock (a fresh process: no cache).
fn cli_check(root: &Path) -> Value {
    check(root)
        .args(&[
            "--kubelet-pki",
            root.join("kubelet-pki").to_str().unwrap(),
            "--now",
            NOW,
        ])
        .json()
        .1
}

fn row<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .chain(result["certificateAuthorities"].as_array().unwrap())
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name}"))
}

/// The agent's answer is the CLI's, and it differs from `before` (the change was seen).
#[track_caller]
fn assert_seen(agent: &Agent, root: &Path, before: &Value, what: &str) -> Value {
    let now = agent.check(root);
    assert_eq!(now, cli_check(root), "{what}: agent and CLI disagree");
    assert_ne!(
        &now, before,
        "{what}: the agent still answers the old state"
    );
    now
}

#[test]
fn a_file_replaced_by_rename_is_seen_on_the_next_call() {
    let (_t, root) = demo(&["--key-algorithm", "ecdsa-p256"]);
    let (_t2, other) = demo(&["--key-algorithm", "ecdsa-p256"]);
    let agent = Agent::start(&[]);
    let r0 = agent.check(&root);
    assert_eq!(r0, cli_check(&root));
    agent.warm(&root, &r0);
    let crt = root.join("pki/apiserver.crt");
    let tmp = root.join("pki/apiserver.crt.tmp");
    std::fs::copy(other.join("pki/apiserver.crt"), &tmp).unwrap();
    std::fs::rename(&tmp, &crt).unwrap();
    let r1 = assert_seen(&agent, &root, &r0, "apiserver.crt replaced by rename");
    assert_ne!(
        row(&r1, "apiserver")["detail"]["serial"],
        row(&r0, "apiserver")["detail"]["serial"]
    );
    // A kubeconfig replaced by rename.
    let conf = root.join("admin.conf");
    let tmp = root.join("admin.conf.tmp");
    std::fs::copy(other.join("admin.conf"), &tmp).unwrap();
    std::fs::rename(&tmp, &conf).unwrap();
    let r2 = assert_seen(&agent, &root, &r1, "admin.conf replaced by rename");
    // A key replaced (the match is re-judged), then a file removed (missing).
    let key = root.join("pki/front-proxy-client.key");
    let tmp = root.join("pki/fpc.tmp");
    std::fs::copy(other.join("pki/front-proxy-client.key"), &tmp).unwrap();
    std::fs::rename(&tmp, &key).unwrap();
    let r3 = assert_seen(&agent, &root, &r2, "front-proxy-client.key replaced");
    assert!(row(&r3, "front-proxy-client")["detail"]["problems"]
        .to_string()
        .contains("key-mismatch"));
    std::fs::remove_file(root.join("pki/apiserver-kubelet-client.crt")).unwrap();
    let r4 = assert_seen(&agent, &root, &r3, "apiserver-kubelet-client.crt removed");
    assert_eq!(row(&r4, "apiserver-kubelet-client")["missing"], true);
}

#[test]
fn a_file_rewritten_in_place_with_the_same_size_and_mtime_is_seen() {
    let (_t, root) = demo(&["--key-algorithm", "ecdsa-p256"]);
    let agent = Agent::start(&[]);
    let r0 = agent.check(&root);
    agent.warm(&root, &r0);
    let crt = root.join("pki/apiserver.crt");
    let before = std::fs::metadata(&crt).unwrap();
    // Flip one base64 character inside the signature (the line before the last of the
    // first PEM block): same size, still parses, no longer verifies.
    let text = std::fs::read_to_string(&crt).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.starts_with("-----END"))
        .unwrap();
    let mut target = lines[end - 2].to_string();
    let c = target.remove(10);
    target.insert(10, if c == 'A' { 'B' } else { 'A' });
    let mut new_lines = lines.clone();
    new_lines[end - 2] = &target;
    let new_text = new_lines.join("\n") + "\n";
    assert_eq!(new_text.len(), text.len());
    assert_ne!(new_text, text);
    std::thread::sleep(Duration::from_millis(20));
    let mut f = std::fs::OpenOptions::new().write(true).open(&crt).unwrap();
    f.write_all(new_text.as_bytes()).unwrap();
    // Put the mtime back (utimensat through File::set_times): only ctime tells the change.
    f.set_times(std::fs::FileTimes::new().set_modified(before.modified().unwrap()))
        .unwrap();
    drop(f);
    let after = std::fs::metadata(&crt).unwrap();
    assert_eq!(
        (after.ino(), after.len(), after.mtime(), after.mtime_nsec()),
        (
            before.ino(),
            before.len(),
            before.mtime(),
            before.mtime_nsec()
        )
    );
    assert_ne!(
        (after.ctime(), after.ctime_nsec()),
        (before.ctime(), before.ctime_nsec())
    );
    let r1 = assert_seen(&agent, &root, &r0, "apiserver.crt rewritten in place");
    assert!(row(&r1, "apiserver")["detail"]["problems"]
        .to_string()
        .contains("not-signed-by-ca"));
}

/// Rewrites `path` in place with `new` (same size) and puts its mtime back.
fn rewrite_keeping_mtime(path: &Path, new: &[u8]) {
    let before = std::fs::metadata(path).unwrap();
    assert_eq!(before.len(), new.len() as u64);
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(new).unwrap();
    f.set_times(std::fs::FileTimes::new().set_modified(before.modified().unwrap()))
        .unwrap();
}

/// Racily clean (git's term): a file rewritten in place right after a check — within one
/// kernel timestamp tick, same size, mtime put back — may keep the ctime that check
/// recorded. Such a read is not cached (files changed less than 100 ms before it), so the
/// next call reads again. On kernels with multigrain timestamps (Linux ≥ 6.13) the rewrite
/// gets a new ctime anyway; the unit test
/// `pki::filestate::tests::a_file_changed_within_the_timestamp_granularity_of_a_read_is_racily_clean`
/// covers the rule with an injected clock.
#[test]
fn a_file_rewritten_right_after_a_check_within_the_timestamp_tick_is_seen() {
    let (_t, root) = demo(&["--key-algorithm", "ecdsa-p256"]);
    let agent = Agent::start(&[]);
    let crt = root.join("pki/apiserver.crt");
    let text = std::fs::read(&crt).unwrap();
    // One base64 character in the middle of the certificate flipped: same size, and the
    // certificate no longer verifies (or no longer parses).
    let i = (text.len() / 2..text.len())
        .find(|&j| text[j].is_ascii_alphanumeric())
        .unwrap();
    let mut flipped = text.clone();
    flipped[i] = if text[i] == b'A' { b'B' } else { b'A' };
    // What a fresh process sees of either content (the oracle), taken before the rounds so
    // that nothing slow runs between a check and the rewrite after it.
    let expected_text = cli_check(&root);
    rewrite_keeping_mtime(&crt, &flipped);
    let expected_flipped = cli_check(&root);
    assert_ne!(expected_text, expected_flipped);
    let mut within = 0;
    for round in 0..6 {
        let ((a, ea), (b, eb)) = if round % 2 == 0 {
            ((&text, &expected_text), (&flipped, &expected_flipped))
        } else {
            ((&flipped, &expected_flipped), (&text, &expected_text))
        };
        // A write, then at once: a check, the rewrite in place, the next check.
        rewrite_keeping_mtime(&crt, a);
        let m = std::fs::metadata(&crt).unwrap();
        let changed = UNIX_EPOCH + Duration::new(m.ctime() as u64, m.ctime_nsec() as u32);
        let racy = agent.counter("racy");
        assert_eq!(&agent.check(&root), ea, "round {round}: before the rewrite");
        let answered = SystemTime::now();
        rewrite_keeping_mtime(&crt, b);
        assert_eq!(
            &agent.check(&root),
            eb,
            "round {round}: the rewrite was not seen"
        );
        // The first check answered less than the window after the file's change, so it
        // started within it: answered, not kept.
        if answered.duration_since(changed).unwrap_or_default() < Duration::from_millis(100) {
            within += 1;
            assert!(
                agent.counter("racy") > racy,
                "round {round}: a racily clean read was kept"
            );
        }
    }
    eprintln!("{within} of 6 rounds checked within the racy window");
}

#[test]
fn a_symlink_swap_is_seen_and_a_symlink_in_place_of_a_file_is_refused() {
    let (_t, root) = demo(&["--key-algorithm", "ecdsa-p256", "--kubelet"]);
    // A second kubelet client pair, issued at least a second later (another NotAfter).
    std::thread::sleep(Duration::from_millis(1100));
    let (_t2, other) = demo(&["--key-algorithm", "ecdsa-p256", "--kubelet"]);
    let agent = Agent::start(&[]);
    let r0 = agent.check(&root);
    assert_eq!(r0, cli_check(&root));
    agent.warm(&root, &r0);
    let kp = root.join("kubelet-pki");
    let current = kp.join("kubelet-client-current.pem");
    let old_target = std::fs::read_link(&current).unwrap();
    let new_target = kp.join("kubelet-client-2099-01-01-00-00-00.pem");
    let other_current = other.join("kubelet-pki/kubelet-client-current.pem");
    std::fs::copy(std::fs::canonicalize(&other_current).unwrap(), &new_target).unwrap();
    // The kubelet's way: a new link renamed over the old one.
    let swap = |to: &Path| {
        let tmp = kp.join("current.tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(to, &tmp).unwrap();
        std::fs::rename(&tmp, &current).unwrap();
    };
    swap(&new_target);
    let r1 = assert_seen(&agent, &root, &r0, "kubelet-client-current.pem swapped");
    assert_ne!(
        r1["kubeletConf"]["expirationDate"],
        r0["kubeletConf"]["expirationDate"]
    );
    // Back to the old target (the link's target name changes back; the files do not).
    swap(&old_target);
    let r2 = assert_seen(&agent, &root, &r1, "link swapped back");
    assert_eq!(r2, r0);
    // The link's target replaced by rename (the link itself untouched).
    let tmp = kp.join("dated.tmp");
    std::fs::copy(&new_target, &tmp).unwrap();
    std::fs::rename(&tmp, &old_target).unwrap();
    let r3 = assert_seen(&agent, &root, &r2, "the link's target replaced");
    assert_eq!(
        r3["kubeletConf"]["expirationDate"],
        r1["kubeletConf"]["expirationDate"]
    );
    // A symlink in place of a PKI file: refused (unreadable), as the CLI says.
    let crt = root.join("pki/apiserver.crt");
    let moved = root.join("apiserver.crt.elsewhere");
    std::fs::rename(&crt, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &crt).unwrap();
    let r4 = assert_seen(&agent, &root, &r3, "a symlink in place of apiserver.crt");
    assert!(row(&r4, "apiserver")["detail"]["problems"]
        .to_string()
        .contains("refusing symlink"));
}

/// Each row's name and serial: the state a check saw.
type State = Vec<(String, String)>;

/// Each row's serial, by name: the state a check saw.
fn serials(result: &Value) -> State {
    let mut v: Vec<(String, String)> = result["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["detail"]["serial"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Renews at least `rounds` times (by `renew`) while two threads check back to back over the
/// socket, until they have made at least `2 * rounds` checks; every state a concurrent check
/// saw must be one of the states between renewals.
fn race(agent: &Agent, root: &Path, rounds: usize, renew: &dyn Fn()) {
    let mut states = vec![serials(&agent.check(root))];
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<State>>> = Arc::default();
    let checkers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, seen, sock, root) = (
                stop.clone(),
                seen.clone(),
                agent.sock.clone(),
                root.to_path_buf(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = rpc(&sock, "check", check_params(&root));
                    let res = r.get("result").unwrap_or_else(|| panic!("check: {r}"));
                    seen.lock().unwrap().push(serials(res));
                }
            })
        })
        .collect();
    // At least `rounds` renewals, and more until the checkers have done at least two checks
    // per round (a fast renew on a quiet machine overtakes slow checks; capped at 8× rounds,
    // after which the count assertion below fails).
    for i in 1..=rounds * 8 {
        renew();
        states.push(serials(&agent.check(root)));
        if i >= rounds && seen.lock().unwrap().len() >= rounds * 2 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in checkers {
        c.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    for w in states.windows(2) {
        assert!(
            w[0].iter().zip(&w[1]).all(|(a, b)| a.1 != b.1),
            "a renewal did not change every serial"
        );
    }
    eprintln!("{} concurrent checks, {} states", seen.len(), states.len());
    let mixed: Vec<_> = seen.iter().filter(|s| !states.contains(s)).collect();
    assert!(
        mixed.is_empty(),
        "{} of {} checks saw a mix of two states, e.g. {:?}\nstates: {states:?}",
        mixed.len(),
        seen.len(),
        mixed[0]
    );
    assert!(
        seen.len() >= rounds * 2,
        "too few concurrent checks ({}) to prove anything",
        seen.len()
    );
}

#[test]
fn check_concurrent_with_renew_by_the_agent_sees_old_or_new_never_a_mix() {
    let (_t, root) = demo(&["--key-algorithm", "ecdsa-p256"]);
    // The step delay (failpoints feature) widens the store's windows and check's row loop.
    let agent = Agent::start(&[("KUBECERT_STEP_DELAY_MS", "3")]);
    let params = json!({"names": ["all"], "cert_dir": root.join("pki"), "kubeconfig_dir": root});
    race(&agent, &root, 8, &|| {
        let r = agent.call("renew", params.clone());
        assert!(r.get("result").is_some(), "renew failed: {r}");
    });
}

#[test]
fn check_concurrent_with_renew_by_another_process_sees_old_or_new_never_a_mix() {
    let (_t, root) = demo(&["--key-algorithm", "ecdsa-p256"]);
    // The agent's check reads a row every 25 ms, the writer renames a file every 1 ms: a
    // check that began before the renewal's journal appeared is still reading when the
    // renames start, and overtaken by them.
    let agent = Agent::start(&[("KUBECERT_STEP_DELAY_MS", "25")]);
    race(&agent, &root, 8, &|| {
        let o = Command::new(bin())
            .args([
                "renew",
                "all",
                "--cert-dir",
                root.join("pki").to_str().unwrap(),
                "--kubeconfig-dir",
                root.to_str().unwrap(),
            ])
            .env("KUBECERT_STEP_DELAY_MS", "1")
            .output()
            .unwrap();
        assert!(o.status.success(), "renew: {}", text(&o));
    });
}

#[test]
fn stats_reports_the_cache_within_its_bounds() {
    let (_t, root) = demo(&["--key-algorithm", "ecdsa-p256"]);
    let agent = Agent::start(&[]);
    let s0 = agent.call("stats", json!({}))["result"].clone();
    std::thread::sleep(RACY_WAIT);
    agent.check(&root);
    agent.check(&root);
    let s1 = agent.call("stats", json!({}))["result"].clone();
    let c = &s1["checkCache"];
    assert_eq!(c["entries"], 1, "{s1}");
    assert!(c["hits"].as_u64().unwrap() > s0["checkCache"]["hits"].as_u64().unwrap());
    assert!(c["bytes"].as_u64().unwrap() > 0);
    assert!(c["bytes"].as_u64() <= c["maxBytes"].as_u64());
    assert!(c["entries"].as_u64() <= c["maxEntries"].as_u64());
}

#[test]
fn check_does_not_queue_behind_a_renew_waiting_for_the_lock_nor_a_staging_writer() {
    let (_t, root) = demo(&["--key-algorithm", "ecdsa-p256"]);
    let agent = Agent::start(&[]);
    let r0 = agent.check(&root);
    // Another run holds the PKI lock (a flock on the cert dir, as the store takes it).
    let pki = root.join("pki");
    let lock = std::fs::File::open(&pki).unwrap();
    lock.lock().unwrap();
    // A renew through the agent waits for it...
    let renew = {
        let sock = agent.sock.clone();
        let params = json!({"names": ["all"], "cert_dir": pki, "kubeconfig_dir": root});
        std::thread::spawn(move || rpc(&sock, "renew", params))
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!renew.is_finished(), "renew did not wait for the lock");
    // ...while checks are answered at once, also while the holder is staging (its journal
    // in place, `staging`: no file replaced yet).
    let timed = |what: &str| {
        let t = Instant::now();
        let r = agent.check(&root);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{what}: check took {:?}",
            t.elapsed()
        );
        assert_eq!(r, r0, "{what}");
    };
    timed("lock held");
    let journal = pki.join(".kubecert-journal.json");
    std::fs::write(
        &journal,
        r#"{"state":"staging","backup_dir":null,"entries":[]}"#,
    )
    .unwrap();
    timed("a staging journal, lock held");
    // A `prepared` journal: the holder may be renaming; a check waits until it is gone.
    std::fs::write(
        &journal,
        r#"{"state":"prepared","backup_dir":null,"entries":[]}"#,
    )
    .unwrap();
    let waits = agent.call("stats", json!({}))["result"]["checkCache"]["waits"]
        .as_u64()
        .unwrap();
    let waiting = {
        let (sock, root) = (agent.sock.clone(), root.clone());
        std::thread::spawn(move || rpc(&sock, "check", check_params(&root)))
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!waiting.is_finished(), "check read during a swap");
    std::fs::remove_file(&journal).unwrap();
    let r = waiting.join().unwrap();
    assert_eq!(r["result"], r0);
    let s = agent.call("stats", json!({}))["result"]["checkCache"].clone();
    assert_eq!(s["waits"].as_u64().unwrap(), waits + 1, "{s}");
    // The lock released: the renew goes through, and the next check sees it.
    drop(lock);
    let r = renew.join().unwrap();
    assert!(r.get("result").is_some(), "renew: {r}");
    let r1 = agent.check(&root);
    assert_ne!(serials(&r1), serials(&r0));
    assert_eq!(r1, cli_check(&root));
}
