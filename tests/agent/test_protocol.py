"""Protocol hygiene of the agent on both transports (issue 12, items 4, 5, 6 and the
protocol parts of 9/10; docs/rpc.md "Limits").

- ids that are not a string, an integer or null: -32600 with the id echoed, and the call
  never runs (tree hash of the PKI unchanged), alone and inside batches;
- slow or silent connections cannot starve a fresh client (--max-connections 10, 1 s
  timeouts);
- batch length and the total size of a batch's responses are bounded;
- one HTTP status for every malformed body; 413 for over-limit bodies, chunked or not;
- a socket path longer than a unix socket address can hold is refused at startup.

Run: /work/main/.venv/bin/python -m pytest -q tests/agent/test_protocol.py (after cargo build).
"""

import hashlib
import http.client
import json
import os
import socket
import subprocess
import threading
import time

import pytest

import rpcclient

NOW = "2026-12-01T00:00:00Z"


def dirs(pki):
    return {"cert_dir": os.path.join(pki, "pki"), "kubeconfig_dir": pki}


def tree_hash(root):
    """Hash of every path, mode and content under root."""
    h = hashlib.sha256()
    for d, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files + subdirs):
            p = os.path.join(d, name)
            st = os.lstat(p)
            h.update(os.path.relpath(p, root).encode() + b"\0" + str(st.st_mode).encode())
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def raw(msg_id, method, params=None):
    """A request with an id given as raw JSON text (so 1.5, 1e3, {} ... stay as written)."""
    p = "" if params is None else ',"params":' + json.dumps(params)
    return '{"jsonrpc":"2.0","id":%s,"method":"%s"%s}' % (msg_id, method, p)


BAD_IDS = ["1.5", "-2.5", "1e3", "1.0", '{"a":1}', "[1]", "true", "18446744073709551616"]


def assert_bad_id(resp, raw_id):
    assert resp["error"]["code"] == -32600, resp
    assert resp["id"] == json.loads(raw_id), resp
    assert "id must be a string, an integer or null" in resp["error"]["data"]["cause"], resp
    assert "result" not in resp


# --------------------------------------------------------------------------- item 4: ids


def test_http_bad_ids_are_refused_and_never_run(agent, pki):
    d = dirs(pki)
    before = tree_hash(pki)
    for rid in BAD_IDS:
        status, body = agent.post(raw(rid, "check", d))
        assert status == 200, (rid, status, body)
        assert_bad_id(json.loads(body), rid)
        # A write method with a bad id must not run: the PKI is unchanged.
        status, body = agent.post(raw(rid, "renew", {**d, "names": ["apiserver"]}))
        assert status == 200, (rid, status, body)
        assert_bad_id(json.loads(body), rid)
    assert tree_hash(pki) == before
    # In a batch: validated per element; the good ones run, the bad ones do not.
    batch = "[%s,%s,%s]" % (raw("2.5", "renew", {**d, "names": ["all"]}),
                            raw("1", "version"),
                            raw('{"x":1}', "renew", {**d, "names": ["apiserver"]}))
    status, body = agent.post(batch)
    assert status == 200, body
    out = json.loads(body)
    assert len(out) == 3, out
    assert_bad_id(out[0], "2.5")
    assert out[1]["id"] == 1 and out[1]["result"]["version"]
    assert_bad_id(out[2], '{"x":1}')
    assert tree_hash(pki) == before
    # Negative integers are integers: served, the id echoed exactly.
    status, body = agent.post(raw("-3", "check", {**d, "now": NOW}))
    r = json.loads(body)
    assert status == 200 and r["id"] == -3 and r["result"]["kind"] == "CertificateExpirationInfo", r
    # Ids that are valid keep working: strings, big u64, null.
    for rid in ['"a"', "18446744073709551615", "null", "0"]:
        r = json.loads(agent.post(raw(rid, "version"))[1])
        assert r["id"] == json.loads(rid) and r["result"]["version"], r
    assert tree_hash(pki) == before


def test_stdio_bad_ids_are_refused_and_never_run(stdio_factory, pki):
    d = dirs(pki)
    before = tree_hash(pki)
    c = stdio_factory()
    for rid in BAD_IDS:
        c.send_line(raw(rid, "renew", {**d, "names": ["apiserver"]}))
        assert_bad_id(json.loads(c.recv_line()), rid)
    c.send_line("[%s,%s]" % (raw("2.5", "renew", {**d, "names": ["all"]}), raw("-1", "version")))
    out = json.loads(c.recv_line())
    assert_bad_id(out[0], "2.5")
    assert out[1]["id"] == -1 and out[1]["result"]["version"]
    assert tree_hash(pki) == before
    code, _out, _err = c.close()
    assert code == 0


# --------------------------------------------------------------------------- item 5: slowloris


HEAD = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n")


def trickle(path, stop, closed, i):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    try:
        s.connect(path)
        s.sendall(HEAD)
        while not stop.is_set():
            s.sendall(b" ")
            time.sleep(0.2)
    except OSError:
        closed[i] = time.time()
    finally:
        s.close()


def test_slow_and_silent_connections_do_not_starve_a_fresh_client(agent_factory, pki):
    a = agent_factory("--max-connections", "10", "--request-timeout", "1s",
                      "--idle-timeout", "1s")
    params = {**dirs(pki), "now": NOW}
    stop = threading.Event()
    closed = {}
    started = time.time()
    threads = [threading.Thread(target=trickle, args=(a.sock, stop, closed, i), daemon=True)
               for i in range(10)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    silent = []
    for _ in range(200):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        try:
            s.connect(a.sock)
            silent.append(s)
        except OSError:
            s.close()
    try:
        t0 = time.time()
        r = rpcclient.call_socket(a.sock, "check", params, timeout=30)
        elapsed = time.time() - t0
        assert r["result"]["kind"] == "CertificateExpirationInfo", r
        assert elapsed < 3, f"a fresh check waited {elapsed:.1f}s behind slow/silent clients"
        # The tricklers lose their connection (request deadline 1 s, or evicted).
        deadline = time.time() + 10
        while len(closed) < 10 and time.time() < deadline:
            time.sleep(0.1)
        assert len(closed) == 10, f"only {len(closed)} of 10 trickling connections were closed"
        assert max(closed.values()) - started < 8, closed
    finally:
        stop.set()
        for s in silent:
            s.close()
    assert a.stop() == 0
    log = a.log()
    assert "request deadline" in log or "evicted" in log, log[-2000:]


def test_a_trickled_body_is_cut_at_the_request_deadline(agent_factory):
    a = agent_factory("--request-timeout", "1s", "--idle-timeout", "30s")
    stop = threading.Event()
    closed = {}
    t0 = time.time()
    t = threading.Thread(target=trickle, args=(a.sock, stop, closed, 0), daemon=True)
    t.start()
    t.join(timeout=8)
    stop.set()
    assert 0 in closed, "a body trickled at 5 bytes/s was never cut"
    assert 0.9 <= closed[0] - t0 < 4, closed[0] - t0
    # A slow header is cut as well.
    s = socket.socket(socket.AF_UNIX)
    s.connect(a.sock)
    s.settimeout(6)
    t0 = time.time()
    for b in b"POST / HTTP/1.1\r\nHost: x\r\n":
        try:
            s.sendall(bytes([b]))
        except OSError:
            break
        time.sleep(0.2)
    try:
        data = s.recv(100)
    except OSError:
        data = b""
    assert data in (b"",) or data.startswith(b"HTTP/1.1 408"), data
    assert time.time() - t0 < 6
    s.close()
    assert rpcclient.call_socket(a.sock, "version")["result"]["version"]


# --------------------------------------------------------------------------- item 6: memory


def discover_batch(n):
    return json.dumps([rpcclient.request("rpc.discover", None, i) for i in range(n)])


def test_http_batch_length_and_response_size_are_bounded(agent_factory):
    a = agent_factory("--max-response-bytes", "200000")
    status, body = a.post(discover_batch(10000))
    assert len(body) < 4096, len(body)
    r = json.loads(body)
    assert status == 200 and r["id"] is None and r["error"]["code"] == -31008, r
    assert "batch of 10000 requests" in r["error"]["data"]["cause"], r
    # Within the batch limit, the responses together stay under the bound.
    status, body = a.post(discover_batch(50))
    assert status == 200
    assert len(body) <= 200000 + 50 * 300, len(body)
    out = json.loads(body)
    assert [x["id"] for x in out] == list(range(50))
    assert "result" in out[0]
    errs = [x for x in out if "error" in x]
    assert errs and all(x["error"]["code"] == -31008 for x in errs), out[-1]
    assert "not run" in errs[-1]["error"]["data"]["cause"], errs[-1]
    # A single response over the bound.
    r = json.loads(a.post(json.dumps(rpcclient.request("rpc.discover", None, 5)))[1])
    assert "result" in r  # one rpc.discover fits in 200000
    c = agent_factory("--max-response-bytes", "1000")
    r = json.loads(c.post(json.dumps(rpcclient.request("rpc.discover", None, 5)))[1])
    assert r["id"] == 5 and r["error"]["code"] == -31008, r
    assert "response" in r["error"]["data"]["cause"], r


def test_stdio_batch_length_and_response_size_are_bounded(stdio_factory):
    c = stdio_factory("--max-response-bytes", "200000")
    c.send_line(discover_batch(10000))
    line = c.recv_line()
    assert len(line) < 4096
    r = json.loads(line)
    assert r["id"] is None and r["error"]["code"] == -31008, r
    assert "batch of 10000 requests" in r["error"]["data"]["cause"], r
    c.send_line(discover_batch(50))
    line = c.recv_line()
    assert len(line) <= 200000 + 50 * 300, len(line)
    out = json.loads(line)
    assert [x["id"] for x in out] == list(range(50))
    assert any("error" in x and x["error"]["code"] == -31008 for x in out)
    code, _o, _e = c.close()
    assert code == 0


# --------------------------------------------------------------------------- items 9/10


MALFORMED = [b"{not json", b"", b"   ", b"nul", b"[1,", b"\xff\xfe{}", b"}", b"42", b'"x"',
             b"[]", b"true"]


def test_every_malformed_body_gets_the_same_status(agent):
    seen = set()
    for body in MALFORMED:
        status, data = agent.post(body)
        r = json.loads(data)
        assert r["id"] is None and r["error"]["code"] in (-32700, -32600), (body, r)
        seen.add(status)
    assert seen == {200}, seen


def post_chunked(path, chunks):
    conn = rpcclient.UnixHTTPConnection(path, timeout=30)
    try:
        try:
            conn.request("POST", "/", body=iter(chunks), encode_chunked=True,
                         headers={"Content-Type": "application/json",
                                  "Transfer-Encoding": "chunked"})
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_over_limit_body_is_413_chunked_or_not(agent_factory):
    a = agent_factory("--max-request-bytes", "1000")
    big = json.dumps(rpcclient.request("version", {"x": "a" * 5000}))
    status, body = a.post(big)
    assert status == 413 and json.loads(body)["error"]["code"] == -31008, (status, body)
    status, body = post_chunked(a.sock, [big[i:i + 300].encode() for i in range(0, len(big), 300)])
    assert status == 413, (status, body)
    r = json.loads(body)
    assert r["error"]["code"] == -31008 and r["id"] is None, r
    # A chunked body under the limit is served.
    small = json.dumps(rpcclient.request("version", None, 4))
    status, body = post_chunked(a.sock, [small[:10].encode(), small[10:].encode()])
    assert status == 200 and json.loads(body)["id"] == 4, body


def test_socket_path_too_long_is_refused_at_startup(binary, workroot):
    d = os.path.join(workroot, "long")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "k" * (110 - len(d)) + ".sock")
    assert len(path.encode()) > 107
    r = subprocess.run([binary, "serve", "--socket", path], capture_output=True, timeout=30)
    assert r.returncode == 1, r
    msg = r.stderr.decode()
    assert "socket path" in msg and "at most 107 bytes" in msg, msg
    assert os.listdir(d) == [], os.listdir(d)
