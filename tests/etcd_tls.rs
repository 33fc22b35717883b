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

/// A real 3-member etcd cluster over mutual TLS (tests/harness/etcd_cluster.py), members
/// `node-K` on 127.0.1.K; stopped (with its watcher) on drop.
struct Cluster {
    harness: std::path::PathBuf,
    state: std::path::PathBuf,
    _state_dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

impl Cluster {
    fn start(root: &std::path::Path) -> Cluster {
        let harness =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/etcd_cluster.py");
        // On tmpfs when there is one: a slow shared disk's fdatasync makes etcd's own /health
        // answer false, which is not what these tests look at.
        let shm = std::path::Path::new("/dev/shm");
        let state_dir = if shm.is_dir() {
            tempfile::Builder::new()
                .prefix("kubecert-etcd-tls-")
                .tempdir_in(shm)
                .unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let state = state_dir.path().join("state");
        let mut c = Cluster {
            harness,
            state,
            _state_dir: state_dir,
            client_port: 0,
            peer_port: 0,
        };
        let o = c.run(&[
            "start",
            "--root",
            root.to_str().unwrap(),
            "--nodes",
            "3",
            "--port-base",
            "0",
        ]);
        assert!(o.status.success(), "cluster start: {}", text(&o));
        let j: serde_json::Value =
            serde_json::from_slice(&std::fs::read(c.state.join("cluster.json")).unwrap()).unwrap();
        c.client_port = j["client_port"].as_u64().unwrap() as u16;
        c.peer_port = j["peer_port"].as_u64().unwrap() as u16;
        c
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut a = vec![self.harness.to_str().unwrap(), args[0], "--state"];
        a.push(self.state.to_str().unwrap());
        a.extend_from_slice(&args[1..]);
        std::process::Command::new("python3")
            .args(&a)
            .output()
            .expect("python3 runs the etcd harness")
    }

    /// The harness's command line (for a restart command template).
    fn command(&self, args: &str) -> String {
        let (first, rest) = args.split_once(' ').unwrap_or((args, ""));
        format!(
            "python3 {} {first} --state {} {rest}",
            self.harness.display(),
            self.state.display()
        )
    }

    /// The node that leads, as etcdctl's `endpoint status` sees it (independent of kubecert).
    fn leader(&self) -> usize {
        let o = self.run(&["status"]);
        leader_of(&serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!("status: not JSON ({e}): {}", text(&o));
        }))
    }
}

fn leader_of(status: &serde_json::Value) -> usize {
    let leaders: Vec<usize> = status["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["is_leader"] == true)
        .map(|e| e["node"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(leaders.len(), 1, "one leader: {status}");
    leaders[0]
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run(&["stop"]);
    }
}

/// The watcher's samples: (how many, how many with fewer than 2 healthy members, the lowest).
fn quorum_samples(path: &std::path::Path) -> (usize, usize, u64) {
    let mut n = 0;
    let mut few = 0;
    let mut min = u64::MAX;
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["summary"] == true {
            continue;
        }
        let h = v["healthy_members"].as_u64().unwrap();
        n += 1;
        if h < 2 {
            few += 1;
        }
        min = min.min(h);
    }
    (n, few, min)
}

/// `kubecert restart etcd` of node `k` with the harness's restart-node as the restart command;
/// the command first records etcdctl's `endpoint status` (who leads at the moment of the stop).
fn restart_member(
    c: &Cluster,
    root: &std::path::Path,
    dir: &std::path::Path,
    k: usize,
) -> (std::process::Output, serde_json::Value) {
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let at_stop = dir.join(format!("status-at-stop-{k}.json"));
    let cmd = format!(
        "{} >{} && {}",
        c.command("status"),
        at_stop.display(),
        c.command(&format!("restart-node --node {k} --timeout 30"))
    );
    let pki = root.join(format!("node-{k}/pki"));
    let o = kubecert(&[
        "restart",
        "etcd",
        "--method",
        "command",
        "--restart-command",
        &cmd,
        "--cert-dir",
        pki.to_str().unwrap(),
        "--manifests-dir",
        manifests.to_str().unwrap(),
        "--park-dir",
        dir.join("parked").to_str().unwrap(),
        "--endpoint",
        &format!("etcd-client=127.0.1.{k}:{}", c.client_port),
        "--endpoint",
        &format!("etcd-peer=127.0.1.{k}:{}", c.peer_port),
        "--health-timeout",
        "60s",
        "--poll-interval",
        "500ms",
        "--command-timeout",
        "10s",
        "-o",
        "json",
    ]);
    let status: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&at_stop)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", at_stop.display(), text(&o))),
    )
    .unwrap();
    (o, status)
}

#[test]
fn restarting_the_leader_moves_leadership_first_and_keeps_two_members_healthy() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("k8s");
    ok(&["demo-pki", root.to_str().unwrap(), "--nodes", "3"]);
    let c = Cluster::start(&root);
    let leader = c.leader();
    let watch = t.path().join("watch.jsonl");
    let w = c.run(&[
        "watch",
        "--out",
        watch.to_str().unwrap(),
        "--interval",
        "0.2",
        "--detach",
    ]);
    assert!(w.status.success(), "watch: {}", text(&w));
    let (o, at_stop) = restart_member(&c, &root, t.path(), leader);
    let w = c.run(&["watch-stop", "--out", watch.to_str().unwrap()]);
    assert!(w.status.success(), "watch-stop: {}", text(&w));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // When the restart command ran (the stop), another member already led: etcdctl says so.
    let new_leader = leader_of(&at_stop);
    assert_ne!(
        new_leader, leader,
        "node-{leader} still led when it was stopped: {at_stop}"
    );
    let l = &r["restarts"][0]["leadership"];
    assert_eq!(l["member"], format!("node-{leader}"), "{r}");
    assert_eq!(l["action"], "transferred", "{r}");
    assert_eq!(l["transferredTo"], format!("node-{new_leader}"), "{r}");
    assert!(
        l["message"].as_str().unwrap().starts_with(&format!(
            "node-{leader} led the cluster: leadership moved to node-{new_leader}"
        )),
        "{r}"
    );
    assert_eq!(r["ok"], true, "{r}");
    // Strict: no sample with fewer than 2 healthy members.
    let (n, few, min) = quorum_samples(&watch);
    assert!(n >= 5, "{n} samples");
    assert_eq!(
        few, 0,
        "{few} of {n} samples with fewer than 2 healthy members (lowest {min})"
    );

    // A follower: nothing to move, and the leader stays where it is.
    let follower = (1..=3).find(|k| *k != new_leader).unwrap();
    let (o, at_stop) = restart_member(&c, &root, t.path(), follower);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(leader_of(&at_stop), new_leader, "{at_stop}");
    let l = &r["restarts"][0]["leadership"];
    assert_eq!(l["action"], "not-leader", "{r}");
    assert_eq!(l["member"], format!("node-{follower}"), "{r}");
    assert!(l.get("transferredTo").is_none(), "{r}");
    assert_eq!(c.leader(), new_leader);
}
