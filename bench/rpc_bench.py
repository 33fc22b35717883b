#!/usr/bin/env python3
"""Latency of the kubecert agent's `check` (not a test; numbers for humans).

    cargo build --release && python3 bench/rpc_bench.py [--bin NEW] [--bin OLD ...]

Makes a full demo PKI (`kubecert demo-pki`), starts `kubecert serve --socket` of every
binary given (one agent each, same PKI) and measures them side by side, interleaved case by
case and round by round (the machine is shared: a load change falls on all alike), with a raw
HTTP/1.1 client (stdlib only; responses read by Content-Length, checked for a result):

- open loop: `--clients` connections (default 200) each calling every `--period-ms` (100 ms:
  2,000 calls/s offered) for `--seconds`; a call's latency runs from its *scheduled* send
  time, so a queue cannot hide;
- one client back to back on a keep-alive connection, and with a connection per call;
- `--clients` connections back to back (throughput: calls/s);
- stdio: round trips through `kubecert serve --stdio` (check, and version for framing alone).

For each case: p50/p90/p99/max in ms, and the agent's CPU time per call (utime+stime from
/proc, 10 ms ticks). Agent RSS: idle after start-up and warm-up, and its peak (VmHWM) after
the open-loop load. With two binaries, the last table gives NEW/OLD ratios.
"""

import argparse
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


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


def ok(status, body):
    return status == 200 and b'"result"' in body[:200]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_kb(pid, key="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def open_loop_worker(path, req, threads, first, n_total, period, seconds, start_at, q):
    """`threads` connections, the i-th (global index first+i) sending at start_at +
    (first+i)/n_total*period + k*period."""
    lat, errors = [], []
    lock = threading.Lock()

    def one(idx):
        c = Conn(path)
        mine, bad = [], 0
        offset = idx / n_total * period
        k = 0
        while True:
            sched = start_at + offset + k * period
            if sched > start_at + seconds:
                break
            d = sched - time.time()
            if d > 0:
                time.sleep(d)
            status, body = c.roundtrip(req)
            mine.append(time.time() - sched)
            if not ok(status, body):
                bad += 1
            k += 1
        c.close()
        with lock:
            lat.extend(mine)
            errors.append(bad)

    ts = [threading.Thread(target=one, args=(first + i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put((lat, sum(errors)))


def closed_worker(path, req, calls, threads, start_at, q):
    lat, errors = [], []
    lock = threading.Lock()

    def one():
        c = Conn(path)
        mine, bad = [], 0
        while time.time() < start_at:
            time.sleep(0.001)
        for _ in range(calls):
            t = time.perf_counter()
            status, body = c.roundtrip(req)
            mine.append(time.perf_counter() - t)
            if not ok(status, body):
                bad += 1
        c.close()
        with lock:
            lat.extend(mine)
            errors.append(bad)

    ts = [threading.Thread(target=one) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put((lat, sum(errors)))


def spread(clients, procs):
    return [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]


def run_procs(target, argsets):
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=target, args=a + (q,)) for a in argsets]
    for p in ps:
        p.start()
    lat, bad = [], 0
    for _ in ps:
        l, b = q.get()
        lat += l
        bad += b
    for p in ps:
        p.join()
    return lat, bad


class Agent:
    def __init__(self, binary, tmp, label):
        self.bin, self.label = binary, label
        self.sock = os.path.join(tmp, f"{label}.sock")
        self.p = subprocess.Popen([binary, "serve", "--socket", self.sock],
                                  stderr=subprocess.DEVNULL)
        for _ in range(400):
            if os.path.exists(self.sock):
                break
            time.sleep(0.05)

    def stop(self):
        self.p.terminate()
        self.p.wait()


def case_open_loop(a, req, args):
    procs = min(8, args.clients)
    per = spread(args.clients, procs)
    start_at = time.time() + 1.0
    firsts = [sum(per[:i]) for i in range(procs)]
    c0 = cpu_ticks(a.p.pid)
    lat, bad = run_procs(open_loop_worker, [
        (a.sock, req, n, f, args.clients, args.period_ms / 1000.0, args.seconds, start_at)
        for n, f in zip(per, firsts)])
    return lat, bad, cpu_ticks(a.p.pid) - c0, args.seconds


def case_one_client(a, req, args):
    c = Conn(a.sock)
    for _ in range(50):
        c.roundtrip(req)
    lat, bad = [], 0
    c0 = cpu_ticks(a.p.pid)
    t0 = time.perf_counter()
    for _ in range(args.n):
        t = time.perf_counter()
        status, body = c.roundtrip(req)
        lat.append(time.perf_counter() - t)
        bad += not ok(status, body)
    wall = time.perf_counter() - t0
    c.close()
    return lat, bad, cpu_ticks(a.p.pid) - c0, wall


def case_conn_per_call(a, req, args):
    lat, bad = [], 0
    c0 = cpu_ticks(a.p.pid)
    t0 = time.perf_counter()
    for _ in range(min(args.n, 500)):
        t = time.perf_counter()
        cc = Conn(a.sock)
        status, body = cc.roundtrip(req)
        cc.close()
        lat.append(time.perf_counter() - t)
        bad += not ok(status, body)
    return lat, bad, cpu_ticks(a.p.pid) - c0, time.perf_counter() - t0


def case_closed(a, req, args):
    procs = min(8, args.clients)
    start_at = time.time() + 1.0
    c0 = cpu_ticks(a.p.pid)
    lat, bad = run_procs(closed_worker, [(a.sock, req, args.calls, n, start_at)
                                         for n in spread(args.clients, procs)])
    return lat, bad, cpu_ticks(a.p.pid) - c0, time.time() - start_at


def case_stdio(binary, line, args):
    p = subprocess.Popen([binary, "serve", "--stdio"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    for _ in range(50):
        p.stdin.write(line)
        p.stdin.flush()
        p.stdout.readline()
    lat, bad = [], 0
    c0 = cpu_ticks(p.pid)
    t0 = time.perf_counter()
    for _ in range(args.n):
        t = time.perf_counter()
        p.stdin.write(line)
        p.stdin.flush()
        out = p.stdout.readline()
        lat.append(time.perf_counter() - t)
        bad += b'"result"' not in out[:100]
    wall = time.perf_counter() - t0
    cpu = cpu_ticks(p.pid) - c0
    p.stdin.close()
    p.wait()
    return lat, bad, cpu, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append",
                    help="binary to measure (repeat for A/B; default target/release/kubecert)")
    ap.add_argument("-n", type=int, default=2000, help="sequential calls per round")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--calls", type=int, default=20, help="back-to-back calls per client")
    ap.add_argument("--period-ms", type=float, default=100.0, help="open loop: period per client")
    ap.add_argument("--seconds", type=float, default=5.0, help="open loop: duration")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    bins = a.bin or [os.path.join(ROOT, "target", "release", "kubecert")]
    tmp = tempfile.mkdtemp(prefix="kubecert-bench-")
    agents = []
    try:
        pki = os.path.join(tmp, "k")
        subprocess.run([bins[0], "demo-pki", pki], check=True, stdout=subprocess.DEVNULL)
        params = {"cert_dir": os.path.join(pki, "pki"), "kubeconfig_dir": pki}
        req = http_request(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "check",
                                       "params": params}).encode())
        labels = [chr(ord("A") + i) for i in range(len(bins))]
        agents = [Agent(b, tmp, l) for b, l in zip(bins, labels)]
        idle = {}
        for ag in agents:
            c = Conn(ag.sock)
            status, body = c.roundtrip(req)
            res = json.loads(body)["result"]
            for _ in range(100):
                c.roundtrip(req)
            c.close()
            time.sleep(0.5)
            idle[ag.label] = rss_kb(ag.p.pid)
            print(f"{ag.label}: {ag.bin} ({os.path.getsize(ag.bin)} bytes, "
                  f"mtime {time.strftime('%Y-%m-%d %H:%M', time.gmtime(os.path.getmtime(ag.bin)))}"
                  f" UTC); check covers {len(res['certificates'])} certificates + "
                  f"{len(res['certificateAuthorities'])} CAs; response {len(body)} bytes")
        print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; open loop: {a.clients} "
              f"connections x every {a.period_ms:g} ms for {a.seconds:g} s "
              f"({a.clients * 1000 / a.period_ms:.0f} calls/s offered); {a.rounds} rounds, "
              f"binaries interleaved in random order", flush=True)
        stdio_line = {
            "check": json.dumps({"jsonrpc": "2.0", "id": 1, "method": "check",
                                 "params": params}).encode() + b"\n",
            "version": json.dumps({"jsonrpc": "2.0", "id": 1,
                                   "method": "version"}).encode() + b"\n",
        }
        cases = [
            ("socket check, open loop", lambda ag: case_open_loop(ag, req, a)),
            ("socket check, 1 client, keep-alive", lambda ag: case_one_client(ag, req, a)),
            ("socket check, 1 client, conn per call", lambda ag: case_conn_per_call(ag, req, a)),
            (f"socket check, {a.clients} clients back to back",
             lambda ag: case_closed(ag, req, a)),
            ("stdio check round trip", lambda ag: case_stdio(ag.bin, stdio_line["check"], a)),
            ("stdio version round trip",
             lambda ag: case_stdio(ag.bin, stdio_line["version"], a)),
        ]
        res = {}
        peak = {}
        for name, fn in cases:
            for _ in range(a.rounds):
                order = agents[:]
                random.shuffle(order)
                for ag in order:
                    lat, bad, cpu, wall = fn(ag)
                    r = res.setdefault((name, ag.label), {"lat": [], "bad": 0, "cpu": 0,
                                                          "wall": 0.0})
                    r["lat"] += lat
                    r["bad"] += bad
                    r["cpu"] += cpu
                    r["wall"] += wall
                    if name.endswith("open loop"):
                        peak[ag.label] = rss_kb(ag.p.pid, "VmHWM")
        print(f"\n{'case':<44} bin {'n':>6} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>8} "
              f"{'calls/s':>8} {'cpu µs/call':>11}  (ms)")
        for name, _ in cases:
            for ag in agents:
                r = res[(name, ag.label)]
                ms = [x * 1000 for x in r["lat"]]
                cpu_us = r["cpu"] / TICK * 1e6 / len(ms)
                print(f"{name:<44} {ag.label:>3} {len(ms):>6} {pct(ms, 50):7.3f} "
                      f"{pct(ms, 90):7.3f} {pct(ms, 99):7.3f} {max(ms):8.2f} "
                      f"{len(ms) / r['wall']:8.0f} {cpu_us:11.0f}"
                      + (f"  {r['bad']} bad answers" if r["bad"] else ""))
        for ag in agents:
            print(f"RSS {ag.label}: idle {idle[ag.label] / 1024:.1f} MB, peak under the open-loop "
                  f"load {peak.get(ag.label, 0) / 1024:.1f} MB")
        if len(agents) >= 2:
            base = agents[-1].label
            for ag in agents[:-1]:
                print(f"\nratios {ag.label}/{base} (p50, p99, cpu per call):")
                for name, _ in cases:
                    x, y = res[(name, ag.label)], res[(name, base)]
                    xm = [v * 1000 for v in x["lat"]]
                    ym = [v * 1000 for v in y["lat"]]
                    xc = x["cpu"] / len(xm)
                    yc = y["cpu"] / len(ym)
                    print(f"  {name:<44} {pct(xm, 50) / pct(ym, 50):7.3f}x "
                          f"{pct(xm, 99) / pct(ym, 99):7.3f}x "
                          f"{(xc / yc) if yc else float('nan'):7.3f}x")
    finally:
        for ag in agents:
            ag.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
