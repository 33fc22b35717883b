#!/usr/bin/env python3
"""Latency of the kubecert agent's `check` (not a test; numbers for humans).

    cargo build --release && python3 bench/rpc_bench.py [--bin target/release/kubecert]

Makes a full demo PKI (`kubecert demo-pki`), starts `kubecert serve --socket` on a temporary
socket, and measures with a raw HTTP/1.1 client (stdlib only; responses are read by
Content-Length, not parsed, in the timed loop):

- socket, 1 client: sequential calls on one keep-alive connection, and with a new
  connection per call (what curl does);
- socket, 200 concurrent clients (processes x threads, each on its own connection);
- stdio: sequential round trips through `kubecert serve --stdio` (check, and version for
  the framing alone).

Prints p50/p90/p99/max in milliseconds and throughput.
"""

import argparse
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def report(name, lat, wall=None):
    ms = [x * 1000 for x in lat]
    line = (f"{name:<44} n={len(ms):<6} p50={pct(ms, 50):7.2f}  p90={pct(ms, 90):7.2f}  "
            f"p99={pct(ms, 99):7.2f}  max={max(ms):7.2f} ms")
    if wall:
        line += f"  {len(ms) / wall:8.0f} req/s"
    print(line, flush=True)


def http_request(body):
    return (b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""

    def roundtrip(self, req):
        self.s.sendall(req)
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(262144)
            if not chunk:
                raise EOFError
            self.buf += chunk
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(rest) < length:
            chunk = self.s.recv(262144)
            if not chunk:
                raise EOFError
            rest += chunk
        body, self.buf = rest[:length], rest[length:]
        status = int(head.split(b" ", 2)[1])
        return status, body

    def close(self):
        self.s.close()


def worker(path, req, calls, threads, start_at, q):
    lat = []
    lock = threading.Lock()
    errors = []

    def one():
        c = Conn(path)
        mine = []
        while time.time() < start_at:
            time.sleep(0.001)
        for _ in range(calls):
            t = time.perf_counter()
            status, body = c.roundtrip(req)
            mine.append(time.perf_counter() - t)
            if status != 200 or b'"result"' not in body[:200]:
                errors.append(body[:200])
        c.close()
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=one) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put((lat, errors))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "kubecert"))
    ap.add_argument("-n", type=int, default=1000, help="sequential calls")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--calls", type=int, default=10, help="calls per concurrent client")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kubecert-bench-")
    agent = None
    try:
        pki = os.path.join(tmp, "k")
        subprocess.run([a.bin, "demo-pki", pki], check=True, stdout=subprocess.DEVNULL)
        sock = os.path.join(tmp, "run", "kubecert.sock")
        agent = subprocess.Popen([a.bin, "serve", "--socket", sock],
                                 stderr=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        params = {"cert_dir": os.path.join(pki, "pki"), "kubeconfig_dir": pki}
        req_body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "check",
                               "params": params}).encode()
        req = http_request(req_body)
        c = Conn(sock)
        status, body = c.roundtrip(req)
        res = json.loads(body)["result"]
        print(f"binary {a.bin}; check covers {len(res['certificates'])} certificates + "
              f"{len(res['certificateAuthorities'])} CAs; response {len(body)} bytes; "
              f"{os.cpu_count()} CPUs")
        for _ in range(50):  # warm-up
            c.roundtrip(req)
        lat = []
        t0 = time.perf_counter()
        for _ in range(a.n):
            t = time.perf_counter()
            c.roundtrip(req)
            lat.append(time.perf_counter() - t)
        report("socket check, 1 client, keep-alive", lat, time.perf_counter() - t0)
        c.close()
        lat = []
        t0 = time.perf_counter()
        for _ in range(min(a.n, 500)):
            t = time.perf_counter()
            cc = Conn(sock)
            cc.roundtrip(req)
            cc.close()
            lat.append(time.perf_counter() - t)
        report("socket check, 1 client, connection per call", lat, time.perf_counter() - t0)
        ver = http_request(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "version"}).encode())
        c = Conn(sock)
        lat = []
        for _ in range(a.n):
            t = time.perf_counter()
            c.roundtrip(ver)
            lat.append(time.perf_counter() - t)
        c.close()
        report("socket version, 1 client, keep-alive", lat)

        procs = min(8, a.clients)
        per = [a.clients // procs + (1 if i < a.clients % procs else 0) for i in range(procs)]
        q = multiprocessing.Queue()
        start_at = time.time() + 1.0
        ps = [multiprocessing.Process(target=worker, args=(sock, req, a.calls, n, start_at, q))
              for n in per]
        for p in ps:
            p.start()
        lat, errors = [], []
        for _ in ps:
            l, e = q.get()
            lat += l
            errors += e
        for p in ps:
            p.join()
        wall = time.time() - start_at
        report(f"socket check, {a.clients} concurrent clients", lat, wall)
        if errors:
            print(f"  {len(errors)} bad responses, first: {errors[0]!r}")

        p = subprocess.Popen([a.bin, "serve", "--stdio"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for method, prm, label in (("check", params, "stdio check round trip"),
                                   ("version", None, "stdio version round trip")):
            line = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                               **({"params": prm} if prm else {})}).encode() + b"\n"
            for _ in range(20):
                p.stdin.write(line)
                p.stdin.flush()
                p.stdout.readline()
            lat = []
            for _ in range(a.n):
                t = time.perf_counter()
                p.stdin.write(line)
                p.stdin.flush()
                out = p.stdout.readline()
                lat.append(time.perf_counter() - t)
                if b'"result"' not in out[:100]:
                    raise SystemExit(f"bad stdio answer {out[:200]!r}")
            report(label, lat)
        p.stdin.close()
        p.wait()
    finally:
        if agent:
            agent.terminate()
            agent.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
