#!/usr/bin/env python3
"""Real etcd cluster over TLS on loopback, driven by kubeadm-layout PKIs.

Test harness for kubecert (Python 3 stdlib only). Each node K uses the files of
ROOT/node-K/ (a mimic of /etc/kubernetes on control-plane node K) and listens
on its own loopback address 127.0.1.K. See README.md next to this file.

CLI:   etcd_cluster.py {start,restart-node,start-node,stop-node,stop,health,
                        status,put,get,env,watch,watch-stop} ...
Import: ``import etcd_cluster; etcd_cluster.main(["start", ...])`` or use the
functions (start_cluster, restart_node, health, ...) directly.

Every command exits 0 on success, 1 on a failed check/operation, 2 on a usage
or setup error, and prints one JSON document on stdout (diagnostics go to
stderr). Nothing here waits without a timeout.
"""

import argparse
import base64
import concurrent.futures
import http.client
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid

STATE_FILE = "cluster.json"
DEFAULT_IP_TEMPLATE = "127.0.1.{k}"
CERT_CHOICES = ("healthcheck", "apiserver-etcd-client")


class HarnessError(Exception):
    """A setup/usage problem (exit 2)."""


class CheckFailed(Exception):
    """An operation or check that did not succeed (exit 1)."""


# --------------------------------------------------------------------------
# small utilities

def log(msg):
    sys.stderr.write("etcd_cluster: %s\n" % msg)
    sys.stderr.flush()


def now_iso():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def which(name, override_env):
    path = os.environ.get(override_env) or shutil.which(name)
    if not path:
        raise HarnessError("%s not found in PATH (set %s); on Debian: apt-get install -y "
                           "etcd-server etcd-client" % (name, override_env))
    return path


def tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    return "\n".join(data.splitlines()[-lines:])


def atomic_write(path, text):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def pid_alive(pid, marker=None):
    """True if pid runs (not a zombie) and, if marker given, its cmdline contains it."""
    if not pid or pid <= 0:
        return False
    try:
        # reap if it is our own child (when used as a library)
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    except OSError:
        pass
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        state = stat.rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
        if marker is not None:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            if marker not in cmd:
                return False
        return True
    except (OSError, IndexError):
        return False


def kill_and_wait(pid, marker, timeout=15.0, sig=signal.SIGTERM):
    """Send sig, wait up to timeout, then SIGKILL. Returns 'term', 'kill' or 'gone'."""
    if not pid_alive(pid, marker):
        return "gone"
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return "gone"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid, marker):
            return "term"
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "term"
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and pid_alive(pid, marker):
        time.sleep(0.05)
    return "kill"


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def scan_procs(marker):
    """pids whose cmdline contains marker (our own data dirs only)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        if pid == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if marker in cmd:
            out.append(pid)
    return out


# --------------------------------------------------------------------------
# layout / state

class Cluster:
    """Cluster description persisted as STATEDIR/cluster.json."""

    def __init__(self, state_dir, root=None, nodes=None, client_port=None, peer_port=None,
                 ip_template=DEFAULT_IP_TEMPLATE, token=None, extra_args=None):
        self.state_dir = os.path.abspath(state_dir)
        self.root = os.path.abspath(root) if root else None
        self.nodes = nodes
        self.client_port = client_port
        self.peer_port = peer_port
        self.ip_template = ip_template
        self.token = token
        self.extra_args = list(extra_args or [])

    # persistence
    @property
    def state_path(self):
        return os.path.join(self.state_dir, STATE_FILE)

    @classmethod
    def load(cls, state_dir, root=None):
        path = os.path.join(os.path.abspath(state_dir), STATE_FILE)
        try:
            with open(path) as f:
                d = json.load(f)
        except OSError:
            raise HarnessError("no cluster state at %s (run `start` first)" % path)
        c = cls(state_dir, root=root or d["root"], nodes=d["nodes"], client_port=d["client_port"],
                peer_port=d["peer_port"], ip_template=d.get("ip_template", DEFAULT_IP_TEMPLATE),
                token=d["token"], extra_args=d.get("extra_args"))
        return c

    def save(self):
        os.makedirs(self.state_dir, exist_ok=True)
        atomic_write(self.state_path, json.dumps({
            "root": self.root, "nodes": self.nodes, "client_port": self.client_port,
            "peer_port": self.peer_port, "ip_template": self.ip_template, "token": self.token,
            "extra_args": self.extra_args,
            "endpoints": self.endpoints(), "names": [self.name(k) for k in self.node_ids()],
        }, indent=2) + "\n")

    # layout
    def node_ids(self):
        return list(range(1, self.nodes + 1))

    def check_node(self, k):
        if not (1 <= k <= self.nodes):
            raise HarnessError("node %d out of range 1..%d" % (k, self.nodes))

    def name(self, k):
        return "node-%d" % k

    def ip(self, k):
        return self.ip_template.format(k=k)

    def node_root(self, k):
        d = os.path.join(self.root, "node-%d" % k)
        if os.path.isdir(d):
            return d
        # single-node layout: ROOT/pki + ROOT/*.conf
        if self.nodes == 1 and k == 1 and os.path.isdir(os.path.join(self.root, "pki")):
            return self.root
        return d

    def pki(self, k, *parts):
        return os.path.join(self.node_root(k), "pki", *parts)

    def client_url(self, k):
        return "https://%s:%d" % (self.ip(k), self.client_port)

    def peer_url(self, k):
        return "https://%s:%d" % (self.ip(k), self.peer_port)

    def endpoints(self, only=None):
        return [self.client_url(k) for k in (only or self.node_ids())]

    def data_dir(self, k):
        return os.path.join(self.state_dir, self.name(k))

    def log_path(self, k):
        return os.path.join(self.state_dir, "%s.log" % self.name(k))

    def pid_path(self, k):
        return os.path.join(self.state_dir, "%s.pid" % self.name(k))

    def marker(self, k):
        # unique substring of node K's etcd command line; used to never signal
        # a process that is not ours (pid reuse) and to find leftovers.
        return "--data-dir=%s " % self.data_dir(k)

    def client_creds(self, k=1, cert="healthcheck"):
        if cert == "healthcheck":
            c, key = self.pki(k, "etcd", "healthcheck-client.crt"), self.pki(k, "etcd", "healthcheck-client.key")
        elif cert == "apiserver-etcd-client":
            c, key = self.pki(k, "apiserver-etcd-client.crt"), self.pki(k, "apiserver-etcd-client.key")
        else:
            raise HarnessError("unknown --cert %r (choose from %s)" % (cert, ", ".join(CERT_CHOICES)))
        return {"cacert": self.pki(k, "etcd", "ca.crt"), "cert": c, "key": key}

    def server_files(self, k):
        e = self.pki(k, "etcd")
        files = {n: os.path.join(e, n) for n in
                 ("ca.crt", "server.crt", "server.key", "peer.crt", "peer.key")}
        missing = [p for p in files.values() if not os.path.isfile(p)]
        if missing:
            raise HarnessError("node %d: missing cert files: %s" % (k, ", ".join(missing)))
        return files

    def initial_cluster(self):
        return ",".join("%s=%s" % (self.name(k), self.peer_url(k)) for k in self.node_ids())

    def etcd_argv(self, k, cluster_state):
        f = self.server_files(k)
        # "--flag=value" form so that marker() is a stable substring of the cmdline
        argv = [
            which("etcd", "ETCD_BIN"),
            "--name=%s" % self.name(k),
            "--data-dir=%s" % self.data_dir(k),
            "--listen-client-urls=%s" % self.client_url(k),
            "--advertise-client-urls=%s" % self.client_url(k),
            "--listen-peer-urls=%s" % self.peer_url(k),
            "--initial-advertise-peer-urls=%s" % self.peer_url(k),
            "--initial-cluster=%s" % self.initial_cluster(),
            "--initial-cluster-state=%s" % cluster_state,
            "--initial-cluster-token=%s" % self.token,
            "--cert-file=%s" % f["server.crt"],
            "--key-file=%s" % f["server.key"],
            "--trusted-ca-file=%s" % f["ca.crt"],
            "--client-cert-auth=true",
            "--peer-cert-file=%s" % f["peer.crt"],
            "--peer-key-file=%s" % f["peer.key"],
            "--peer-trusted-ca-file=%s" % f["ca.crt"],
            "--peer-client-cert-auth=true",
            # etcd 3.5 (what kubeadm ships) defaults to pre-vote; 3.4 does not. Without
            # it a member that was isolated (e.g. bad peer cert) comes back with a
            # higher term and forces a needless election. Override with --etcd-arg.
            "--pre-vote=true",
            "--snapshot-count=10000",
            "--logger=zap",
            "--log-outputs=stderr",
        ]
        return argv + self.extra_args


# --------------------------------------------------------------------------
# etcdctl

def etcdctl(cl, args, k=1, cert="healthcheck", endpoints=None, creds=None,
            timeout=3.0, dial_timeout=2.0):
    """Run etcdctl with node k's client creds. Returns (rc, stdout, stderr)."""
    creds = creds or cl.client_creds(k, cert)
    env = {kk: v for kk, v in os.environ.items() if not kk.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    argv = [which("etcdctl", "ETCDCTL_BIN"),
            "--endpoints=%s" % ",".join(endpoints or cl.endpoints()),
            "--cacert=%s" % creds["cacert"], "--cert=%s" % creds["cert"], "--key=%s" % creds["key"],
            "--dial-timeout=%dms" % int(dial_timeout * 1000),
            "--command-timeout=%dms" % int(timeout * 1000)] + list(args)
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           env=env, timeout=timeout + dial_timeout + 3.0)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return 124, out, "etcdctl timed out after %.1fs" % (timeout + dial_timeout + 3.0)


def _ep_to_node(cl, ep):
    for k in cl.node_ids():
        if cl.client_url(k) == ep.rstrip("/"):
            return k
    return None


def probe_health(cl, k=1, cert="healthcheck", creds=None, only=None, timeout=2.0, dial_timeout=1.0):
    """One `etcdctl endpoint health` over the given endpoints (a linearizable read
    per endpoint: it succeeds only where the member can reach a leader with quorum).
    Returns a dict: endpoints[{endpoint,node,health,took,error}], healthy, total,
    quorum (some member served a linearizable read), ok (all healthy)."""
    eps = cl.endpoints(only)
    t0 = time.monotonic()
    rc, out, err = etcdctl(cl, ["endpoint", "health", "-w", "json"], k=k, cert=cert, creds=creds,
                           endpoints=eps, timeout=timeout, dial_timeout=dial_timeout)
    results = {}
    try:
        parsed = json.loads(out) if out.strip() else []
    except ValueError:
        parsed = []
    for item in parsed if isinstance(parsed, list) else []:
        ep = item.get("endpoint", "")
        results[ep.rstrip("/")] = {
            "endpoint": ep, "node": _ep_to_node(cl, ep), "health": bool(item.get("health")),
            "took": item.get("took"), "error": item.get("error") or None}
    rows = []
    for ep in eps:
        rows.append(results.get(ep) or {"endpoint": ep, "node": _ep_to_node(cl, ep), "health": False,
                                        "took": None, "error": (err.strip() or "no result")[-500:]})
    healthy = sum(1 for r in rows if r["health"])
    return {"endpoints": rows, "healthy": healthy, "total": len(rows), "quorum": healthy > 0,
            "ok": healthy == len(rows) and len(rows) > 0, "etcdctl_rc": rc,
            "etcdctl_stderr": err.strip()[-2000:] if rc != 0 else "",
            "elapsed_ms": int((time.monotonic() - t0) * 1000)}


def _http_health_one(ctx, ip, port, timeout):
    t0 = time.monotonic()
    conn = http.client.HTTPSConnection(ip, port, context=ctx, timeout=timeout)
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        body = resp.read(4096).decode("utf-8", "replace")
        try:
            healthy = str(json.loads(body).get("health")).lower() == "true"
        except ValueError:
            healthy = False
        err = None if healthy else "HTTP %d %s" % (resp.status, body.strip()[:200])
    except (OSError, http.client.HTTPException, ssl.SSLError) as e:
        healthy, err = False, "%s: %s" % (type(e).__name__, e)
    finally:
        conn.close()
    return healthy, err, "%.3fs" % (time.monotonic() - t0)


def make_ssl_context(creds):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=creds["cacert"])
    ctx.load_cert_chain(creds["cert"], creds["key"])
    return ctx


def probe_health_http(cl, k=1, cert="healthcheck", creds=None, only=None, timeout=1.0, ctx=None):
    """Like probe_health(), without etcdctl: GET /health on every member's client
    URL in parallel over mutual TLS. In etcd 3.4 /health is true only if the member
    has a leader and a quorum read (QGET through raft) succeeds within 1s, so one
    healthy member proves quorum. A stopped member answers ECONNREFUSED at once,
    so a probe never waits for dial retries the way etcdctl's gRPC balancer does."""
    ctx = ctx or make_ssl_context(creds or cl.client_creds(k, cert))
    nodes = only or cl.node_ids()
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(nodes)) as ex:
        futs = {n: ex.submit(_http_health_one, ctx, cl.ip(n), cl.client_port, timeout) for n in nodes}
        rows = []
        for n in nodes:
            healthy, err, took = futs[n].result()
            rows.append({"endpoint": cl.client_url(n), "node": n, "health": healthy,
                         "took": took, "error": err})
    healthy = sum(1 for r in rows if r["health"])
    return {"endpoints": rows, "healthy": healthy, "total": len(rows), "quorum": healthy > 0,
            "ok": healthy == len(rows) and len(rows) > 0,
            "elapsed_ms": int((time.monotonic() - t0) * 1000)}


def member_list(cl, k=1, cert="healthcheck", timeout=3.0, only=None):
    rc, out, err = etcdctl(cl, ["member", "list", "-w", "json"], k=k, cert=cert, timeout=timeout,
                           endpoints=cl.endpoints(only))
    if rc != 0:
        return None, err.strip()
    try:
        d = json.loads(out)
    except ValueError:
        return None, "bad member list output: %r" % out[:200]
    members = []
    for m in d.get("members", []):
        members.append({"id": "%x" % m.get("ID", 0), "name": m.get("name", ""),
                        "peer_urls": m.get("peerURLs", []), "client_urls": m.get("clientURLs", []),
                        "started": bool(m.get("name"))})
    return members, None


def endpoint_status(cl, k=1, cert="healthcheck", timeout=3.0):
    rc, out, err = etcdctl(cl, ["endpoint", "status", "-w", "json"], k=k, cert=cert, timeout=timeout)
    rows = []
    try:
        parsed = json.loads(out) if out.strip() else []
    except ValueError:
        parsed = []
    for item in parsed:
        st = item.get("Status", {})
        hdr = st.get("header", {})
        rows.append({"endpoint": item.get("Endpoint"), "node": _ep_to_node(cl, item.get("Endpoint", "")),
                     "member_id": "%x" % hdr.get("member_id", 0), "leader": "%x" % st.get("leader", 0),
                     "is_leader": hdr.get("member_id") == st.get("leader"),
                     "raft_term": st.get("raftTerm"), "raft_index": st.get("raftIndex"),
                     "version": st.get("version")})
    return {"endpoints": rows, "etcdctl_rc": rc, "etcdctl_stderr": err.strip() if rc != 0 else ""}


def cluster_health(cl, k=1, cert="healthcheck", creds=None, only=None, timeout=3.0):
    """Full health report: every (selected) endpoint healthy and every member started."""
    h = probe_health(cl, k=k, cert=cert, creds=creds, only=only, timeout=timeout)
    members, merr = (None, None)
    if h["quorum"] and creds is None:
        members, merr = member_list(cl, k=k, cert=cert, timeout=timeout,
                                    only=[e["node"] for e in h["endpoints"] if e["health"]][:1])
    h["members"] = members
    if merr:
        h["member_error"] = merr
    if members is not None:
        h["members_started"] = sum(1 for m in members if m["started"])
        if only is None:
            h["ok"] = h["ok"] and h["members_started"] == cl.nodes and len(members) == cl.nodes
    return h


# --------------------------------------------------------------------------
# process control

def node_running(cl, k):
    return pid_alive(read_pid(cl.pid_path(k)), cl.marker(k))


def launch_node(cl, k, cluster_state):
    argv = cl.etcd_argv(k, cluster_state)
    os.makedirs(cl.data_dir(k), mode=0o700, exist_ok=True)
    os.chmod(cl.data_dir(k), 0o700)
    logf = open(cl.log_path(k), "ab")
    logf.write(("\n=== etcd_cluster %s: starting %s (initial-cluster-state=%s)\n=== %s\n" % (
        now_iso(), cl.name(k), cluster_state, " ".join(argv))).encode())
    logf.flush()
    # marker() needs a trailing space after the data dir: the next argv element follows
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                         start_new_session=True, close_fds=True)
    logf.close()
    atomic_write(cl.pid_path(k), "%d\n" % p.pid)
    return p.pid


def stop_node_proc(cl, k, timeout=15.0):
    pid = read_pid(cl.pid_path(k))
    how = kill_and_wait(pid, cl.marker(k), timeout=timeout) if pid else "gone"
    # leftovers of this node not matching the pid file (e.g. a crashed harness)
    for other in scan_procs(cl.marker(k)):
        kill_and_wait(other, cl.marker(k), timeout=timeout)
    try:
        os.unlink(cl.pid_path(k))
    except FileNotFoundError:
        pass
    return how


def wait_until(cl, pred_desc, pred, nodes_to_watch, timeout, interval=0.25):
    """Poll pred() -> (done, info) until done, a watched node dies, or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        done, info = pred()
        if done:
            return True, info, []
        died = [k for k in nodes_to_watch if not node_running(cl, k)]
        if died:
            return False, info, died
        if time.monotonic() >= deadline:
            return False, info, []
        time.sleep(interval)


def failure_report(cl, what, info, nodes, died):
    log("%s" % what)
    if died:
        log("etcd process exited: %s" % ", ".join(cl.name(k) for k in died))
    for k in nodes:
        log("---- tail of %s ----\n%s" % (cl.log_path(k), tail(cl.log_path(k))))
    return {"ok": False, "error": what, "died": [cl.name(k) for k in died], "last_probe": info}


def ports_free(ips, ports):
    for ip in ips:
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((ip, port))
            except OSError:
                return False
            finally:
                s.close()
    return True


def pick_port_base(ips):
    rnd = random.Random(os.getpid() ^ int(time.time() * 1000))
    for _ in range(200):
        base = rnd.randrange(20000, 32000, 2)
        if ports_free(ips, (base, base + 1)):
            return base
    raise HarnessError("could not find two free ports on %s" % ", ".join(ips))


def start_cluster(root, state_dir, nodes=3, client_port=None, peer_port=None, port_base=None,
                  ip_template=DEFAULT_IP_TEMPLATE, timeout=30.0, extra_args=None, keep_on_failure=False):
    state_dir = os.path.abspath(state_dir)
    os.makedirs(state_dir, exist_ok=True)
    if os.path.exists(os.path.join(state_dir, STATE_FILE)):
        old = Cluster.load(state_dir)
        running = [k for k in old.node_ids() if node_running(old, k)]
        if running:
            raise HarnessError("cluster in %s still running (%s); run `stop` first" % (
                state_dir, ", ".join(old.name(k) for k in running)))
    cl = Cluster(state_dir, root=root, nodes=nodes, ip_template=ip_template,
                 token="kubecert-test-%s" % uuid.uuid4().hex[:12], extra_args=extra_args)
    ips = [cl.ip(k) for k in cl.node_ids()]
    if port_base is not None:
        if port_base == 0:
            port_base = pick_port_base(ips)
        cl.client_port, cl.peer_port = port_base, port_base + 1
    else:
        cl.client_port, cl.peer_port = client_port or 2379, peer_port or 2380
    if not ports_free(ips, (cl.client_port, cl.peer_port)):
        raise HarnessError("ports %d/%d not free on %s (use --port-base)" % (
            cl.client_port, cl.peer_port, ", ".join(ips)))
    for k in cl.node_ids():
        cl.server_files(k)
        cl.client_creds(k)
    # a new cluster: fresh data dirs and logs (only our own files in STATEDIR)
    for k in cl.node_ids():
        shutil.rmtree(cl.data_dir(k), ignore_errors=True)
        for p in (cl.log_path(k), cl.pid_path(k)):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
    cl.save()
    t0 = time.monotonic()
    for k in cl.node_ids():
        launch_node(cl, k, "new")

    def pred():
        h = cluster_health(cl)
        return h["ok"], h

    ok, info, died = wait_until(cl, "healthy", pred, cl.node_ids(), timeout)
    if not ok:
        what = ("etcd exited during startup: %s" % ", ".join(cl.name(k) for k in died) if died
                else "cluster did not become healthy within %.0fs" % timeout)
        rep = failure_report(cl, what, info, cl.node_ids(), died)
        if not keep_on_failure:
            stop_cluster(cl)
        raise CheckFailed(rep)
    return {"ok": True, "state": state_dir, "root": cl.root, "nodes": cl.nodes,
            "endpoints": cl.endpoints(), "client_port": cl.client_port, "peer_port": cl.peer_port,
            "startup_s": round(time.monotonic() - t0, 3), "health": info}


def start_node(cl, k, timeout=30.0, cluster_state="existing", stop_first=False,
               stop_on_failure=False):
    cl.check_node(k)
    t0 = time.monotonic()
    stopped = None
    if stop_first:
        stopped = stop_node_proc(cl, k)
    elif node_running(cl, k):
        raise HarnessError("%s is already running" % cl.name(k))
    t1 = time.monotonic()
    launch_node(cl, k, cluster_state)

    def pred():
        h = cluster_health(cl)
        mine = [e for e in h["endpoints"] if e["node"] == k]
        return h["ok"] and mine and mine[0]["health"], h

    ok, info, died = wait_until(cl, "rejoined", pred, [k], timeout)
    if not ok:
        what = "%s did not rejoin a healthy cluster within %.0fs" % (cl.name(k), timeout)
        if died:
            what = "%s did not rejoin a healthy cluster: etcd exited" % cl.name(k)
        rep = failure_report(cl, what, info, [k], died)
        rep["node"] = cl.name(k)
        if stop_on_failure:
            stop_node_proc(cl, k)
            rep["stopped"] = True
        raise CheckFailed(rep)
    return {"ok": True, "node": cl.name(k), "stopped": stopped,
            "stop_s": round(t1 - t0, 3), "rejoin_s": round(time.monotonic() - t1, 3), "health": info}


def restart_node(cl, k, timeout=30.0, stop_on_failure=False):
    return start_node(cl, k, timeout=timeout, stop_first=True, stop_on_failure=stop_on_failure)


def stop_cluster(cl):
    res = {}
    # stop followers first, leader last, to minimise elections (best effort)
    for k in reversed(cl.node_ids()):
        res[cl.name(k)] = stop_node_proc(cl, k)
    stop_watcher(cl, quiet=True)
    # anything else still running on one of our data dirs
    leftovers = scan_procs("--data-dir=%s%s" % (cl.state_dir, os.sep))
    for pid in leftovers:
        kill_and_wait(pid, "--data-dir=%s%s" % (cl.state_dir, os.sep))
    return {"ok": True, "stopped": res, "leftovers_killed": leftovers}


# --------------------------------------------------------------------------
# watcher

def watch_pid_path(cl):
    return os.path.join(cl.state_dir, "watch.pid")


def run_watch(cl, out, interval=0.2, k=1, cert="healthcheck", probe_timeout=1.0, max_duration=3600.0,
              probe="http", creds=None, confirm_delay=0.1):
    ctx = make_ssl_context(creds or cl.client_creds(k, cert)) if probe == "http" else None
    stop = {"flag": False}

    def on_sig(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_sig)
    signal.signal(signal.SIGINT, on_sig)
    probes = no_quorum_probes = no_quorum_moments = transient_probes = 0
    min_healthy = None
    max_ms = 0
    in_outage = False
    started = now_iso()
    t_end = time.monotonic() + max_duration
    with open(out, "a", buffering=1) as f:
        while not stop["flag"] and time.monotonic() < t_end:
            if not os.path.exists(cl.state_path):
                break  # cluster state removed: nobody will stop us, so stop now
            t0 = time.monotonic()
            ts = now_iso()
            if probe == "http":
                h = probe_health_http(cl, timeout=probe_timeout, ctx=ctx)
            else:
                h = probe_health(cl, k=k, cert=cert, timeout=probe_timeout, dial_timeout=probe_timeout)
            transient = {}
            failed = [e["node"] for e in h["endpoints"] if not e["health"]]
            if failed and confirm_delay > 0 and probe == "http":
                # A member is unhealthy only when it fails twice, confirm_delay apart: a planned
                # leadership handover leaves a few ms without a leader (a member answers /health
                # false) and times out the /health reads in flight on the old leader; a probe
                # landing there is not an outage. A member that is down, frozen or leaderless
                # for longer fails the second probe too (test EtcdLeaderChangeWatchTest).
                time.sleep(confirm_delay)
                again = {e["node"]: e for e in probe_health_http(cl, timeout=probe_timeout, ctx=ctx,
                                                                 only=failed)["endpoints"]}
                rows = []
                for e in h["endpoints"]:
                    if not e["health"] and again[e["node"]]["health"]:
                        transient["node-%s" % e["node"]] = e["error"]
                        e = again[e["node"]]
                    rows.append(e)
                healthy = sum(1 for e in rows if e["health"])
                h = dict(h, endpoints=rows, healthy=healthy, quorum=healthy > 0,
                         elapsed_ms=int((time.monotonic() - t0) * 1000))
            probes += 1
            transient_probes += bool(transient)
            errors = {("node-%s" % e["node"]): e["error"] for e in h["endpoints"] if not e["health"]}
            if not h["quorum"]:
                no_quorum_probes += 1
                if not in_outage:
                    no_quorum_moments += 1
                in_outage = True
            else:
                in_outage = False
            min_healthy = h["healthy"] if min_healthy is None else min(min_healthy, h["healthy"])
            max_ms = max(max_ms, h["elapsed_ms"])
            sample = {"ts": ts, "quorum": h["quorum"], "healthy_members": h["healthy"],
                      "members": h["total"], "ms": h["elapsed_ms"], "errors": errors}
            if transient:
                sample["transient"] = transient
            f.write(json.dumps(sample) + "\n")
            delay = interval - (time.monotonic() - t0)
            while delay > 0 and not stop["flag"]:
                time.sleep(min(delay, 0.05))
                delay = interval - (time.monotonic() - t0)
        summary = {"summary": True, "started": started, "ended": now_iso(), "probes": probes,
                   "no_quorum_moments": no_quorum_moments, "no_quorum_probes": no_quorum_probes,
                   "min_healthy_members": min_healthy, "max_probe_ms": max_ms,
                   "transient_probes": transient_probes, "confirm_delay": confirm_delay}
        f.write(json.dumps(summary) + "\n")
    return summary


def start_watcher_detached(cl, out, interval, k, cert, probe_timeout, max_duration, probe="http", creds=None,
                           confirm_delay=0.1):
    if pid_alive(read_pid(watch_pid_path(cl)), "etcd_cluster"):
        raise HarnessError("a watcher is already running (watch-stop first)")
    out = os.path.abspath(out)
    size0 = os.path.getsize(out) if os.path.exists(out) else 0
    argv = [sys.executable, os.path.abspath(__file__), "watch", "--state", cl.state_dir,
            "--root", cl.root, "--interval", str(interval), "--out", out, "--node", str(k),
            "--cert", cert, "--probe-timeout", str(probe_timeout), "--max-duration", str(max_duration),
            "--probe", probe, "--confirm-delay", str(confirm_delay)]
    if creds:
        argv += ["--cacert-file", creds["cacert"], "--cert-file", creds["cert"], "--key-file", creds["key"]]
    errlog = open(os.path.join(cl.state_dir, "watch.log"), "ab")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=errlog, stderr=subprocess.STDOUT,
                         start_new_session=True, close_fds=True)
    errlog.close()
    atomic_write(watch_pid_path(cl), "%d\n" % p.pid)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if os.path.exists(out) and os.path.getsize(out) > size0:
            return {"ok": True, "pid": p.pid, "out": out}
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    raise CheckFailed({"ok": False, "error": "watcher did not produce a probe within 10s",
                       "log": tail(os.path.join(cl.state_dir, "watch.log"))})


def last_summary(path):
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if d.get("summary"):
            return d
    return None


def stop_watcher(cl, quiet=False, timeout=10.0):
    pid = read_pid(watch_pid_path(cl))
    how = kill_and_wait(pid, "etcd_cluster", timeout=timeout) if pid else "gone"
    try:
        os.unlink(watch_pid_path(cl))
    except FileNotFoundError:
        pass
    return how


# --------------------------------------------------------------------------
# CLI

def add_common(p, root_required=False):
    p.add_argument("--root", required=root_required,
                   help="PKI root: ROOT/node-K/pki/... (default: the one recorded at start)")
    p.add_argument("--state", required=True, help="state dir (data dirs, logs, pids, cluster.json)")


def add_client(p):
    p.add_argument("--node", type=int, default=1, help="take client certs from node K (default 1)")
    p.add_argument("--cert", choices=CERT_CHOICES, default="healthcheck",
                   help="client cert: pki/etcd/healthcheck-client or pki/apiserver-etcd-client")
    p.add_argument("--cacert-file", help="override: CA bundle to verify the servers")
    p.add_argument("--cert-file", help="override: client certificate")
    p.add_argument("--key-file", help="override: client key")
    p.add_argument("--timeout", type=float, default=3.0, help="per-request timeout, seconds")


def creds_from(args, cl):
    if args.cert_file or args.key_file or args.cacert_file:
        base = cl.client_creds(args.node, args.cert)
        return {"cacert": args.cacert_file or base["cacert"], "cert": args.cert_file or base["cert"],
                "key": args.key_file or base["key"]}
    return None


def build_parser():
    ap = argparse.ArgumentParser(prog="etcd_cluster.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("start", help="start a new N-node cluster and wait until healthy")
    add_common(p, root_required=True)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--client-port", type=int)
    p.add_argument("--peer-port", type=int)
    p.add_argument("--port-base", type=int,
                   help="client port = N, peer port = N+1 (0 = pick free ports)")
    p.add_argument("--ip-template", default=DEFAULT_IP_TEMPLATE,
                   help="advertise address of node K (default %(default)s)")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--keep-on-failure", action="store_true", help="do not stop nodes if start fails")
    p.add_argument("--etcd-arg", action="append", default=[], help="extra etcd flag (repeatable)")

    for name, hlp in (("restart-node", "stop node K, start it with the current cert files, wait until it rejoined"),
                      ("start-node", "start a stopped node K (existing member) and wait until it rejoined")):
        p = sub.add_parser(name, help=hlp)
        add_common(p)
        p.add_argument("--node", type=int, required=True)
        p.add_argument("--timeout", type=float, default=30.0)
        p.add_argument("--stop-on-failure", action="store_true",
                       help="stop node K again if it fails to rejoin (default: leave it running)")

    p = sub.add_parser("stop-node", help="stop node K (SIGTERM, then SIGKILL after --timeout)")
    add_common(p)
    p.add_argument("--node", type=int, required=True)
    p.add_argument("--timeout", type=float, default=15.0)

    p = sub.add_parser("stop", help="stop all nodes, the watcher and any leftovers")
    add_common(p)

    p = sub.add_parser("health", help="endpoint health of every member (exit 1 unless all healthy)")
    add_common(p)
    add_client(p)
    p.add_argument("--only", type=int, action="append", help="check only node K's endpoint (repeatable)")

    p = sub.add_parser("status", help="endpoint status (leader, raft term/index) as JSON")
    add_common(p)
    add_client(p)

    p = sub.add_parser("put", help="put KEY VALUE (linearizable write)")
    add_common(p)
    add_client(p)
    p.add_argument("key")
    p.add_argument("value")

    p = sub.add_parser("get", help="get KEY (linearizable read); prints the value; exit 1 if absent")
    add_common(p)
    add_client(p)
    p.add_argument("key")

    p = sub.add_parser("env", help="print ETCDCTL_* exports for interactive etcdctl use")
    add_common(p)
    p.add_argument("--node", type=int, default=1)
    p.add_argument("--cert", choices=CERT_CHOICES, default="healthcheck")

    p = sub.add_parser("watch", help="probe quorum every --interval and append JSON lines to --out")
    add_common(p)
    p.add_argument("--out", required=True)
    p.add_argument("--interval", type=float, default=0.2)
    p.add_argument("--probe-timeout", type=float, default=1.0)
    p.add_argument("--node", type=int, default=1)
    p.add_argument("--cert", choices=CERT_CHOICES, default="healthcheck")
    p.add_argument("--max-duration", type=float, default=3600.0, help="stop by itself after this (s)")
    p.add_argument("--probe", choices=("http", "etcdctl"), default="http",
                   help="http: parallel GET /health over mTLS (default, fast); "
                        "etcdctl: `etcdctl endpoint health` (slow when a member is down)")
    p.add_argument("--confirm-delay", type=float, default=0.1,
                   help="http probe: probe a failed member again after this many seconds and count it "
                        "unhealthy only if that fails too (0: a single failed probe counts)")
    p.add_argument("--detach", action="store_true",
                   help="run in the background (pid in STATE/watch.pid); stop with watch-stop")
    p.add_argument("--cacert-file", help="override (http probe): CA bundle to verify the servers")
    p.add_argument("--cert-file", help="override (http probe): client certificate (may hold its chain)")
    p.add_argument("--key-file", help="override (http probe): client key")

    p = sub.add_parser("watch-stop", help="SIGTERM the detached watcher, print its summary")
    add_common(p)
    p.add_argument("--out", help="watch output file (to read the summary from)")
    p.add_argument("--assert-quorum", action="store_true",
                   help="exit 1 if the watcher saw any moment without quorum")
    return ap


def emit(obj):
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def run(args):
    if args.cmd == "start":
        return start_cluster(args.root, args.state, nodes=args.nodes, client_port=args.client_port,
                             peer_port=args.peer_port, port_base=args.port_base,
                             ip_template=args.ip_template, timeout=args.timeout,
                             extra_args=args.etcd_arg, keep_on_failure=args.keep_on_failure)
    if args.cmd == "stop" and not os.path.exists(os.path.join(os.path.abspath(args.state), STATE_FILE)):
        # no state (e.g. a start that crashed early): still kill anything on our data dirs
        marker = "--data-dir=%s%s" % (os.path.abspath(args.state), os.sep)
        leftovers = scan_procs(marker)
        for pid in leftovers:
            kill_and_wait(pid, marker)
        return {"ok": True, "stopped": {}, "leftovers_killed": leftovers, "note": "no cluster state"}
    cl = Cluster.load(args.state, root=args.root)
    if args.cmd == "restart-node":
        return restart_node(cl, args.node, timeout=args.timeout, stop_on_failure=args.stop_on_failure)
    if args.cmd == "start-node":
        return start_node(cl, args.node, timeout=args.timeout, stop_on_failure=args.stop_on_failure)
    if args.cmd == "stop-node":
        cl.check_node(args.node)
        return {"ok": True, "node": cl.name(args.node), "how": stop_node_proc(cl, args.node, args.timeout)}
    if args.cmd == "stop":
        return stop_cluster(cl)
    if args.cmd == "health":
        creds = creds_from(args, cl)
        h = cluster_health(cl, k=args.node, cert=args.cert, creds=creds, only=args.only, timeout=args.timeout)
        if not h["ok"]:
            raise CheckFailed(h)
        return h
    if args.cmd == "status":
        s = endpoint_status(cl, k=args.node, cert=args.cert, timeout=args.timeout)
        if s["etcdctl_rc"] != 0:
            raise CheckFailed(s)
        return s
    if args.cmd in ("put", "get"):
        creds = creds_from(args, cl)
        if args.cmd == "put":
            rc, out, err = etcdctl(cl, ["put", args.key, args.value], k=args.node, cert=args.cert,
                                   creds=creds, timeout=args.timeout)
            res = {"ok": rc == 0, "key": args.key, "error": err.strip() or None}
        else:
            rc, out, err = etcdctl(cl, ["get", "--consistency=l", "-w", "json", args.key], k=args.node,
                                   cert=args.cert, creds=creds, timeout=args.timeout)
            res = {"ok": False, "key": args.key, "value": None, "error": err.strip() or None}
            if rc == 0:
                kvs = json.loads(out).get("kvs") or []
                if kvs:
                    res["value"] = base64.b64decode(kvs[0]["value"]).decode("utf-8", "replace")
                    res["ok"] = True
                else:
                    res["error"] = "key not found"
        if not res["ok"]:
            raise CheckFailed(res)
        return res
    if args.cmd == "env":
        c = cl.client_creds(args.node, args.cert)
        return {"ETCDCTL_API": "3", "ETCDCTL_ENDPOINTS": ",".join(cl.endpoints()),
                "ETCDCTL_CACERT": c["cacert"], "ETCDCTL_CERT": c["cert"], "ETCDCTL_KEY": c["key"]}
    if args.cmd == "watch":
        if args.probe == "etcdctl" and (args.cert_file or args.key_file or args.cacert_file):
            raise HarnessError("--cacert-file/--cert-file/--key-file are for --probe http")
        creds = creds_from(args, cl)
        if args.detach:
            return start_watcher_detached(cl, args.out, args.interval, args.node, args.cert,
                                          args.probe_timeout, args.max_duration, args.probe, creds=creds,
                                          confirm_delay=args.confirm_delay)
        return run_watch(cl, args.out, interval=args.interval, k=args.node, cert=args.cert,
                         probe_timeout=args.probe_timeout, max_duration=args.max_duration,
                         probe=args.probe, creds=creds, confirm_delay=args.confirm_delay)
    if args.cmd == "watch-stop":
        how = stop_watcher(cl)
        res = {"ok": True, "how": how, "summary": last_summary(args.out) if args.out else None}
        if args.assert_quorum:
            s = res["summary"]
            if s is None or s.get("no_quorum_moments", 1) != 0:
                res["ok"] = False
                raise CheckFailed(res)
        return res
    raise HarnessError("unknown command %s" % args.cmd)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        res = run(args)
    except HarnessError as e:
        log("error: %s" % e)
        emit({"ok": False, "error": str(e)})
        return 2
    except CheckFailed as e:
        emit(e.args[0] if e.args and isinstance(e.args[0], dict) else {"ok": False, "error": str(e)})
        return 1
    if args.cmd == "get":
        sys.stdout.write(res["value"] + "\n")
    elif args.cmd == "env":
        for kk, v in res.items():
            sys.stdout.write("export %s=%s\n" % (kk, v))
    else:
        emit(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
