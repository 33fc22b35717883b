"""End-to-end tests of the kubecert JSON-RPC agent (docs/rpc.md) over both transports.

Run: .venv/bin/python -m pytest tests/agent   (needs jsonschema; builds target/debug/kubecert
if absent; KUBECERT_BIN overrides the binary). Runs as root: the authorization tests switch
uid with setpriv.
"""

import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import jsonschema
import pytest

from conftest import ROOT, SCHEMA_DIR, HERE
import rpcclient

NOW = "2026-12-01T00:00:00Z"
CORE_METHODS = ["check", "renew", "restore", "kubelet-conf", "version", "rpc.discover"]


def schema(method, kind):
    with open(os.path.join(SCHEMA_DIR, f"{method}.{kind}.json")) as f:
        return json.load(f)


def validate(method, params, response):
    """A real response validates against schema/; the params we sent against theirs."""
    if params is not None:
        jsonschema.Draft202012Validator(schema(method, "params")).validate(params)
    assert response.get("jsonrpc") == "2.0", response
    if "error" in response:
        return response
    jsonschema.Draft202012Validator(schema(method, "result")).validate(response["result"])
    return response


def dirs(pki):
    return {"cert_dir": os.path.join(pki, "pki"), "kubeconfig_dir": pki}


def ok(resp):
    assert "result" in resp, resp
    return resp["result"]


def err(resp, code):
    assert "error" in resp, resp
    assert resp["error"]["code"] == code, resp
    return resp["error"]


def exercise_all_methods(call, pki):
    """Calls every method with real params; returns {method: result}."""
    d = dirs(pki)
    kpki = os.path.join(pki, "kubelet-pki")
    seen = {}

    def c(method, params=None, check_params=True):
        resp = validate(method, params if check_params else None, call(method, params))
        seen[method] = resp
        return resp

    check = ok(c("check", {**d, "kubelet_pki": kpki, "now": NOW, "warn_within": "30d"}))
    assert check["kind"] == "CertificateExpirationInfo"
    assert not any(x["missing"] for x in check["certificates"])
    plan = ok(c("renew", {**d, "names": ["apiserver"], "dry_run": True, "now": NOW}))
    assert [i["action"] for i in plan["certificates"]] == ["would-renew"]
    done = ok(c("renew", {**d, "names": ["apiserver", "admin.conf"]}))
    assert {i["action"] for i in done["certificates"]} == {"renewed"} and done["backupDir"]
    back = ok(c("restore", {**d, "backup_dir": done["backupDir"], "dry_run": True}))
    assert back["restored"] and back["dryRun"]
    back = ok(c("restore", {**d, "backup_dir": done["backupDir"]}))
    assert back["changed"]
    kc = ok(c("kubelet-conf", {**d, "kubelet_pki": kpki}))
    assert kc["action"] in ("none", "refused")
    kc = ok(c("kubelet-conf", {**d, "kubelet_pki": kpki, "repair": True, "dry_run": True}))
    assert kc["action"] in ("refused", "would-repair", "none")
    ver = ok(c("version"))
    doc = ok(c("rpc.discover", {}))
    with open(os.path.join(SCHEMA_DIR, "openrpc.json")) as f:
        assert doc == json.load(f), "rpc.discover differs from schema/openrpc.json"
    assert set(CORE_METHODS) <= set(ver["methods"])
    assert sorted(m["name"] for m in doc["methods"]) == sorted(ver["methods"])
    # Methods added later (csr-export, approve, metrics, ...): at least a well-formed answer
    # that validates when it is a result.
    for m in ver["methods"]:
        if m not in seen:
            r = c(m, {**d}, check_params=False)
            assert "result" in r or isinstance(r["error"]["code"], int), r
    return {m: r.get("result") for m, r in seen.items()}


# --------------------------------------------------------------------------- every method


def test_every_method_over_socket_validates(agent, pki):
    exercise_all_methods(agent.call, pki)
    assert agent.stop() == 0
    assert not os.path.exists(agent.sock), "socket not removed at exit"


def test_every_method_over_stdio_validates(stdio_factory, pki, keyscan):
    c = stdio_factory()

    def call(method, params):
        r = c.call(method, params)
        keyscan.check(json.dumps(r))
        return r

    exercise_all_methods(call, pki)
    code, out, errtext = c.close()
    assert code == 0 and out == ""
    keyscan.check(errtext, "stdio log")


def test_results_are_what_the_cli_prints(agent, stdio_factory, binary, pki):
    d = dirs(pki)
    params = {**d, "now": NOW, "kubelet_pki": os.path.join(pki, "kubelet-pki")}
    over_socket = ok(agent.call("check", params))
    over_stdio = ok(stdio_factory().call("check", params))
    cli = subprocess.run(
        [binary, "check", "-o", "json", "--cert-dir", d["cert_dir"], "--kubeconfig-dir",
         d["kubeconfig_dir"], "--now", NOW, "--kubelet-pki", params["kubelet_pki"]],
        capture_output=True, check=True)
    assert over_socket == over_stdio == json.loads(cli.stdout)


# --------------------------------------------------------------------------- README examples


def example_lines():
    with open(os.path.join(ROOT, "docs", "agent-examples.md")) as f:
        text = f.read()
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if line.startswith(("curl ", "printf ")):
                lines.append(line)
    return lines


def test_agent_examples_run_literally(agent_factory, binary, keyscan, pki):
    lines = example_lines()
    assert any(l.startswith("curl ") for l in lines) and any("--stdio" in l for l in lines)
    default = "/run/kubecert/kubecert.sock"
    if not os.access("/run", os.W_OK):
        pytest.skip("the examples use /run/kubecert/kubecert.sock: needs a writable /run (root)")
    if os.path.exists(default):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(default)
            pytest.skip("an agent already listens on the default socket")
        except OSError:
            pass
        finally:
            s.close()
    # The examples run on a node, against its PKI: here the agent serves a demo PKI (the socket
    # agent is started for it; a stdio agent gets the same two flags, nothing else changes).
    d = dirs(pki)
    roots = ["--cert-dir", d["cert_dir"], "--kubeconfig-dir", d["kubeconfig_dir"]]
    a = agent_factory(*roots, sock=default)
    env = dict(os.environ, PATH=os.path.dirname(os.path.abspath(binary)) + ":" + os.environ["PATH"])
    for example in lines:
        line = example.replace("kubecert serve --stdio", "kubecert serve --stdio " + " ".join(roots))
        # The requests in the line, to validate each answer against its method's schema.
        methods = {}
        for q in re.findall(r"'([\[{].*?[\]}])'", line):
            msg = json.loads(q)
            for one in msg if isinstance(msg, list) else [msg]:
                methods[one["id"]] = (one["method"], one.get("params"))
        assert methods, line
        r = subprocess.run(["bash", "-c", line], capture_output=True, env=env, timeout=120)
        assert r.returncode == 0, (line, r.stderr)
        keyscan.check(r.stdout, line)
        out = r.stdout.decode().strip().splitlines()
        assert len(out) == 1, (line, out)
        resp = json.loads(out[0])
        for one in resp if isinstance(resp, list) else [resp]:
            assert "result" in one, (line, one)
            method, params = methods[one["id"]]
            validate(method, params, one)
    assert a.stop() == 0
    assert not os.path.exists(default)


# --------------------------------------------------------------------------- authorization


# The system interpreter: a pyenv/venv one may sit under a dir that nobody cannot enter.
NOBODY_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"


def as_nobody(workroot, sock, method, params=None):
    client = os.path.join(workroot, "rpcclient.py")
    if not os.path.exists(client):
        shutil.copy(os.path.join(HERE, "rpcclient.py"), client)
        os.chmod(client, 0o644)
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            NOBODY_PYTHON, client, sock, method]
    if params is not None:
        argv.append(json.dumps(params))
    r = subprocess.run(argv, capture_output=True, timeout=120)
    assert r.stdout, r.stderr
    return json.loads(r.stdout.decode())


needs_setpriv = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")


@needs_setpriv
def test_kernel_mode_blocks_other_uids_by_default(agent, workroot):
    assert os.stat(agent.sock).st_mode & 0o777 == 0o600
    r = as_nobody(workroot, agent.sock, "version")
    assert r.get("transport_error") in ("PermissionError", "ConnectionRefusedError"), r


@needs_setpriv
def test_other_uid_refused_for_every_method_without_allow_uid(agent, workroot, pki):
    os.chmod(agent.sock, 0o666)  # get past the kernel's check: SO_PEERCRED is what is tested
    for m in CORE_METHODS:
        e = err(as_nobody(workroot, agent.sock, m, {}), -31004)
        assert e["data"]["uid"] == 65534
    log = agent.log()
    assert "refused" in log and "uid=65534" in log and "pid=" in log
    # Inside a batch too, every entry is refused.
    client = os.path.join(workroot, "batch_nobody.py")
    with open(client, "w") as f:
        f.write("import sys, json; sys.path.insert(0, %r)\n" % workroot
                + "import rpcclient\n"
                + "st, body = rpcclient.post_raw(sys.argv[1], json.dumps(["
                + "rpcclient.request('version', None, 1), rpcclient.request('check', {}, 2)]))\n"
                + "sys.stdout.write(body.decode())\n")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        NOBODY_PYTHON, client, agent.sock], capture_output=True, timeout=60)
    out = json.loads(r.stdout)
    assert [x["error"]["code"] for x in out] == [-31004, -31004], out


@needs_setpriv
def test_allow_uid_reads_but_may_not_mutate(agent_factory, workroot, pki):
    d = dirs(pki)
    # Non-root callers may pass only the agent's own roots (issue 12): serve this PKI.
    a = agent_factory("--allow-uid", "65534", "--cert-dir", d["cert_dir"],
                      "--kubeconfig-dir", d["kubeconfig_dir"])
    os.chmod(a.sock, 0o666)
    for m, p in [("version", None), ("rpc.discover", None), ("check", {**d, "now": NOW}),
                 ("kubelet-conf", {**d})]:
        r = as_nobody(workroot, a.sock, m, p)
        assert "result" in r, (m, r)
        validate(m, p, r)
    for m, p in [("renew", {**d, "dry_run": True}), ("restore", {"backup_dir": "/nonexistent"}),
                 ("kubelet-conf", {**d, "repair": True})]:
        err(as_nobody(workroot, a.sock, m, p), -31004)
    assert re.search(r"refused.*uid=65534", a.log()) or re.search(r"uid=65534.*refused", a.log())


@needs_setpriv
def test_group_members_read_and_write_uid_writes(agent_factory, workroot, pki):
    d = dirs(pki)
    roots = ("--cert-dir", d["cert_dir"], "--kubeconfig-dir", d["kubeconfig_dir"])
    a = agent_factory("--group", "nogroup", "--allow-write-uid", "65533", *roots)
    st = os.stat(a.sock)
    assert st.st_mode & 0o777 == 0o660 and st.st_gid == 65534
    assert "result" in as_nobody(workroot, a.sock, "check", {**d, "now": NOW})  # gid nogroup
    err(as_nobody(workroot, a.sock, "renew", {**d, "dry_run": True}), -31004)
    b = agent_factory("--allow-write-uid", "65534", *roots)
    os.chmod(b.sock, 0o666)
    r = as_nobody(workroot, b.sock, "renew", {**d, "dry_run": True})
    # Allowed through: whatever happens next is the library's answer, not -31004.
    assert r.get("error", {}).get("code") != -31004, r


# --------------------------------------------------------------------------- protocol errors


def test_socket_protocol_errors_and_server_keeps_serving(agent):
    status, body = agent.post(b"{not json")
    assert json.loads(body)["error"]["code"] == -32700 and json.loads(body)["id"] is None
    err(agent.call("check", {"bogus": 1}), -32602)
    err(agent.call("check", ["positional"]), -32602)
    err(agent.call("restore", {}), -32602)  # backup_dir is required
    err(agent.call("check", {"warn_within": "soon"}), -32602)
    err(agent.call("nope"), -32601)
    err(agent.call("renew", {"names": ["nope"], "dry_run": True, "cert_dir": "/nonexistent"}), -31005)
    # batch: two calls and a notification -> two responses
    batch = [rpcclient.request("version", None, 1), {"jsonrpc": "2.0", "method": "version"},
             rpcclient.request("nope", None, 3)]
    status, body = agent.post(json.dumps(batch))
    out = json.loads(body)
    assert [r["id"] for r in out] == [1, 3] and out[1]["error"]["code"] == -32601
    # notification only: executed, nothing back
    status, body = agent.post(json.dumps({"jsonrpc": "2.0", "method": "version"}))
    assert status == 204 and body == b""
    status, body = agent.post(b"[]")
    assert json.loads(body)["error"]["code"] == -32600
    status, body = agent.post(json.dumps(rpcclient.request("version")), content_type="text/plain")
    assert status == 415
    # too large: -31008, and the server goes on
    big = json.dumps(rpcclient.request("version", {"x": "a" * (2 * 1024 * 1024)}))
    status, body = agent.post(big)
    assert status == 413 and json.loads(body)["error"]["code"] == -31008
    assert json.loads(body)["id"] is None
    # abrupt disconnects: mid-headers, mid-body
    for chunk in (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Ty",
                  b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 500\r\n\r\n{\"jsonrpc\":\"2.0\""):
        s = socket.socket(socket.AF_UNIX)
        s.connect(agent.sock)
        s.sendall(chunk)
        s.close()
    assert ok(agent.call("version"))["version"]
    assert agent.stop() == 0


def test_disconnect_during_a_renew_leaves_a_valid_pki(agent, pki):
    d = dirs(pki)
    before = {c["name"]: c["detail"]["serial"] for c in ok(agent.call("check", d))["certificates"]}
    body = json.dumps(rpcclient.request("renew", {**d, "names": ["all"]})).encode()
    s = socket.socket(socket.AF_UNIX)
    s.connect(agent.sock)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    time.sleep(0.2)
    s.close()  # gone before the answer
    # The renew still completes, as one transaction.
    deadline = time.time() + 120
    while True:
        r = ok(agent.call("check", d))
        after = {c["name"]: c["detail"]["serial"] for c in r["certificates"]}
        if all(after[n] != before[n] for n in before):
            break
        assert time.time() < deadline, "renew of the vanished client never completed"
        time.sleep(0.3)
    for c in r["certificates"] + r["certificateAuthorities"]:
        assert not c["detail"]["problems"], c
    assert ok(agent.call("version"))


def test_stdio_protocol_errors(stdio_factory):
    c = stdio_factory("--max-request-bytes", "2000")
    c.send_line(b"{not json")
    assert json.loads(c.recv_line())["error"]["code"] == -32700
    c.send_line(b"42")
    assert json.loads(c.recv_line())["error"]["code"] == -32600
    c.send_line(b"[]")
    assert json.loads(c.recv_line())["error"]["code"] == -32600
    c.send_line(json.dumps({"jsonrpc": "2.0", "method": "version"}))  # notification
    c.send_line(b"x" * 5000)  # over the limit
    r = json.loads(c.recv_line())
    assert r["error"]["code"] == -31008 and r["id"] is None
    c.send_line(json.dumps([rpcclient.request("version", None, 7),
                            {"jsonrpc": "2.0", "method": "version"},
                            rpcclient.request("check", {"bogus": True}, 8)]))
    out = json.loads(c.recv_line())
    assert [r["id"] for r in out] == [7, 8] and out[1]["error"]["code"] == -32602
    c.send_line(json.dumps(rpcclient.request("nope", None, "s")))
    assert json.loads(c.recv_line())["error"]["code"] == -32601
    assert ok(c.call("version", None, 9))["version"]
    c.proc.stdin.write(b'{"jsonrpc":"2.0","id":10,"meth')  # EOF mid-line
    code, out, errtext = c.close()
    assert code == 0
    assert json.loads(out)["error"]["code"] == -32700  # the cut line is answered, then exit 0


def test_stdio_logs_only_on_stderr(binary, pki, keyscan):
    d = dirs(pki)
    reqs = "\n".join(json.dumps(rpcclient.request(m, p, i)) for i, (m, p) in enumerate([
        ("check", {**d, "now": NOW}), ("renew", {**d, "names": ["apiserver"]}),
        ("version", None), ("nope", None)])) + "\n"
    r = subprocess.run([binary, "-vv", "--log-format", "json", "serve", "--stdio"],
                       input=reqs.encode(), capture_output=True, timeout=120)
    assert r.returncode == 0
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 4 and all(json.loads(l)["jsonrpc"] == "2.0" for l in lines)
    assert b'"method":"renew"' in r.stderr.replace(b" ", b"")  # logged, as JSON, on stderr
    keyscan.check(r.stdout, "stdout")
    keyscan.check(r.stderr, "stderr")


# --------------------------------------------------------------------------- concurrency


def test_200_concurrent_checks(agent, pki):
    params = {**dirs(pki), "now": NOW}
    expected = ok(agent.call("check", params))
    barrier = threading.Barrier(200)

    def one(i):
        barrier.wait(timeout=60)
        return agent.call("check", params, rid=i)

    with concurrent.futures.ThreadPoolExecutor(200) as ex:
        results = list(ex.map(one, range(200)))
    assert [r["id"] for r in results] == list(range(200))
    assert all(r.get("result") == expected for r in results)


def test_two_concurrent_renews_serialize(agent, pki):
    d = dirs(pki)
    barrier = threading.Barrier(2)

    def renew(i):
        barrier.wait(timeout=30)
        return agent.call("renew", {**d, "names": ["all"]}, rid=i)

    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        a, b = [ok(r) for r in ex.map(renew, [1, 2])]
    for r in (a, b):
        assert r["changed"] and {c["action"] for c in r["certificates"]} == {"renewed"}
    assert a["backupDir"] != b["backupDir"]
    a_items = {c["name"]: c for c in a["certificates"]}
    b_items = {c["name"]: c for c in b["certificates"]}
    # One ran entirely after the other: its "old" is the other's "new", for every cert.
    first, second = (a_items, b_items)
    if b_items["apiserver"]["old"]["serial"] != a_items["apiserver"]["new"]["serial"]:
        first, second = b_items, a_items
    for name, item in second.items():
        assert item["old"]["serial"] == first[name]["new"]["serial"], name
    final = ok(agent.call("check", {**d}))
    for c in final["certificates"] + final["certificateAuthorities"]:
        assert not c["detail"]["problems"], c
    final_serials = {c["name"]: c["detail"]["serial"] for c in final["certificates"]}
    for name, item in second.items():
        assert final_serials[name] == item["new"]["serial"]


def test_slow_client_does_not_stall_others(agent):
    stuck = []
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX)
        s.connect(agent.sock)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{")  # never finished
        stuck.append(s)
    t = time.time()
    for i in range(20):
        assert ok(agent.call("version", None, i))
    assert time.time() - t < 10
    for s in stuck:
        s.close()


def test_idle_connections_are_closed(agent_factory):
    a = agent_factory("--idle-timeout", "1s")
    s = socket.socket(socket.AF_UNIX)
    s.connect(a.sock)
    body = json.dumps(rpcclient.request("version")).encode()
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    s.settimeout(10)
    first = s.recv(65536)
    assert b"200 OK" in first
    t = time.time()
    rest = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    assert 0.5 < time.time() - t < 8, "idle keep-alive connection not closed in time"
    s.close()
    # Headers only, or a body that stops arriving: closed as idle too (not a call in flight).
    for chunk in (b"POST / HTTP/1.1\r\nHost: x\r\n",
                  b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"jsonrpc\""):
        s = socket.socket(socket.AF_UNIX)
        s.connect(a.sock)
        s.sendall(chunk)
        s.settimeout(15)
        t = time.time()
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass
        assert time.time() - t < 8, "stalled request not cut"
        s.close()
    assert ok(a.call("version"))


# --------------------------------------------------------------------------- lifecycle


def test_sigterm_finishes_in_flight_calls(agent, pki):
    d = dirs(pki)
    result = {}

    def slow():
        result["r"] = agent.call("renew", {**d, "names": ["all"], "key_algorithm": "rsa-4096"})

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    agent.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    refused = False
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(agent.sock)
    except OSError:
        refused = True
    finally:
        s.close()
    assert refused, "still accepting after SIGTERM"
    t.join(timeout=300)
    assert agent.proc.wait(timeout=120) == 0
    assert {c["action"] for c in ok(result["r"])["certificates"]} == {"renewed"}
    assert not os.path.exists(agent.sock)


def test_socket_file_safety(agent_factory, binary, workroot):
    d = tempfile.mkdtemp(prefix="safety-", dir=workroot)
    # Stale socket (nobody listens): replaced.
    stale = os.path.join(d, "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(stale)
    s.close()
    a = agent_factory(sock=stale)
    assert ok(a.call("version"))
    # A second agent on the same path: refused (lock held / live socket), first untouched.
    r = subprocess.run([binary, "serve", "--socket", stale], capture_output=True, timeout=30)
    assert r.returncode != 0 and (b"another kubecert serve" in r.stderr or b"in use" in r.stderr)
    assert ok(a.call("version"))
    # Symlink at the path: refused.
    link = os.path.join(d, "link.sock")
    os.symlink(os.path.join(d, "target"), link)
    r = subprocess.run([binary, "serve", "--socket", link], capture_output=True, timeout=30)
    assert r.returncode != 0 and b"symlink" in r.stderr
    # A regular file at the path: refused, left alone.
    reg = os.path.join(d, "file.sock")
    with open(reg, "w") as f:
        f.write("keep me")
    r = subprocess.run([binary, "serve", "--socket", reg], capture_output=True, timeout=30)
    assert r.returncode != 0 and open(reg).read() == "keep me"
    # Parent dir created 0755.
    deep = os.path.join(d, "new", "dir", "k.sock")
    b = agent_factory(sock=deep)
    assert os.stat(os.path.dirname(deep)).st_mode & 0o777 == 0o755
    assert ok(b.call("version"))


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_systemd_units_verify(binary, workroot):
    d = tempfile.mkdtemp(prefix="units-", dir=workroot)
    shutil.copy(os.path.join(ROOT, "systemd", "kubecert.socket"), d)
    with open(os.path.join(ROOT, "systemd", "kubecert.service")) as f:
        unit = f.read()
    assert "ExecStart=/usr/local/bin/kubecert serve --socket /run/kubecert/kubecert.sock" in unit
    # verify insists that ExecStart exists: point it at the built binary.
    with open(os.path.join(d, "kubecert.service"), "w") as f:
        f.write(unit.replace("/usr/local/bin/kubecert", os.path.abspath(binary)))
    r = subprocess.run(["systemd-analyze", "verify", os.path.join(d, "kubecert.socket"),
                        os.path.join(d, "kubecert.service")], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()


@pytest.mark.skipif(not shutil.which("systemd-socket-activate"), reason="needs systemd-socket-activate")
def test_systemd_socket_activation(binary, workroot, keyscan):
    d = tempfile.mkdtemp(prefix="sa-", dir=workroot)
    sock = os.path.join(d, "k.sock")
    p = subprocess.Popen(["systemd-socket-activate", "-l", sock, binary, "-v", "serve",
                          "--socket", sock], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while not os.path.exists(sock) and time.time() < deadline:
            time.sleep(0.05)
        r = rpcclient.call_socket(sock, "version")
        assert ok(r)["version"]
        p.send_signal(signal.SIGTERM)
        _, errtext = p.communicate(timeout=60)
        assert p.returncode == 0
        assert b"using the socket passed by systemd" in errtext
        keyscan.check(errtext)
    finally:
        if p.poll() is None:
            p.kill()


# --------------------------------------------------------------------------- schema files


def test_schema_files_are_valid_and_openrpc_is_well_formed():
    names = sorted(os.listdir(SCHEMA_DIR))
    for n in names:
        with open(os.path.join(SCHEMA_DIR, n)) as f:
            doc = json.load(f)
        if n != "openrpc.json":
            jsonschema.Draft202012Validator.check_schema(doc)
    with open(os.path.join(SCHEMA_DIR, "openrpc.json")) as f:
        doc = json.load(f)
    assert doc["openrpc"] == "1.3.2" and doc["info"]["title"] and doc["info"]["version"]
    allowed_method_keys = {"name", "description", "summary", "tags", "paramStructure", "params",
                           "result", "errors", "links", "examples", "deprecated"}
    for m in doc["methods"]:
        assert set(m) <= allowed_method_keys, m.keys()
        assert m["paramStructure"] == "by-name"
        assert f"{m['name']}.params.json" in names and f"{m['name']}.result.json" in names
        with open(os.path.join(SCHEMA_DIR, f"{m['name']}.params.json")) as f:
            params_file = json.load(f)
        assert sorted(p["name"] for p in m["params"]) == sorted(params_file.get("properties", {}))
        for p in m["params"]:
            assert set(p) <= {"name", "description", "summary", "schema", "required", "deprecated"}
            assert isinstance(p["required"], bool)
            assert p["required"] == (p["name"] in params_file.get("required", []))
        assert set(m["result"]) <= {"name", "description", "summary", "schema", "required"}
        for e in m["errors"]:
            assert isinstance(e["code"], int) and isinstance(e["message"], str)
        assert any(e["code"] == -31004 for e in m["errors"])
    for name, s in doc["components"]["schemas"].items():
        jsonschema.Draft7Validator.check_schema(s)
