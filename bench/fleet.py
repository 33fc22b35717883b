#!/usr/bin/env python3
"""Fleet simulation (issue 18 item 5; not a test, numbers for humans; asserts nothing but the
answers' shape).

    python3 bench/fleet.py [--bin BIN] [--agents 100] [--rounds 20] [--key-algorithm ALG]

One simulated node per agent: each gets its own demo PKI (`kubecert demo-pki`, made
NPROC at a time) and its own `kubecert serve --stdio --cert-dir D/pki --kubeconfig-dir D`
process, as fleet tooling reaches each node over ssh (`ssh node kubecert serve --stdio`;
the ssh hop itself is not simulated). One client (this script, asyncio, one event loop)
talks to all of them:

- start: spawn every agent at once, one `version` call each; wall time until the last
  answer ("the fleet is reachable").
- idle RSS: VmRSS of every agent from /proc after the start and a pause (median, max).
- rounds: `check` (no params: the agent's own PKI) sent to every agent at once, then every
  answer awaited; the round's wall time is from the first send to the last answer. Per-call
  latency is from that agent's send to its answer. Repeated --rounds times back to back.
- RSS under load: VmHWM (peak RSS) of every agent after the rounds (median, max), and the
  agents' CPU per check (utime+stime deltas from /proc/PID/stat over the rounds).
- one-shot round: what tooling without persistent sessions does (a fresh `serve --stdio`
  per node per round: spawn, one `check`, EOF, exit), all nodes at once; wall time.

Every answer must be a JSON-RPC result whose `certificates` list is non-empty (a fleet of
errors would be fast and wrong). Prints one line per measurement.
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
NOW = "2026-06-01T00:00:00Z"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def check_answer(line, what):
    try:
        msg = json.loads(line)
    except ValueError:
        raise SystemExit(f"fleet: {what}: not JSON: {line[:200]!r}")
    res = msg.get("result")
    if not isinstance(res, dict) or not res.get("certificates"):
        raise SystemExit(f"fleet: {what}: not a check result: {line[:300]!r}")
    return len(res["certificates"])


class Agent:
    def __init__(self, binary, node_dir):
        self.binary = binary
        self.dir = node_dir
        self.proc = None
        self.next_id = 0

    def argv(self):
        return [self.binary, "serve", "--stdio", "--cert-dir", os.path.join(self.dir, "pki"),
                "--kubeconfig-dir", self.dir]

    async def start(self):
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, limit=1 << 22)

    async def call(self, method, params=None):
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        t0 = time.perf_counter()
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        t1 = time.perf_counter()
        if not line:
            raise SystemExit(f"fleet: agent for {self.dir} closed its stdout")
        return t1 - t0, line

    async def stop(self):
        self.proc.stdin.close()
        await self.proc.wait()


async def make_pkis(binary, base, n, alg):
    sem = asyncio.Semaphore(os.cpu_count() or 2)

    async def one(i):
        d = os.path.join(base, f"node-{i:03d}")
        if os.path.isfile(os.path.join(d, "pki", "ca.crt")):
            return d  # --pki-base: made by an earlier run
        async with sem:
            p = await asyncio.create_subprocess_exec(
                binary, "demo-pki", d, "--key-algorithm", alg, "--now", NOW,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            _, err = await p.communicate()
            if p.returncode != 0:
                raise SystemExit(f"fleet: demo-pki {d}: {err.decode(errors='replace')[:300]}")
        return d

    return await asyncio.gather(*(one(i) for i in range(n)))


async def one_shot(binary, d):
    """A fresh agent for one call, as `ssh node kubecert serve --stdio` per task does."""
    a = Agent(binary, d)
    t0 = time.perf_counter()
    await a.start()
    _, line = await a.call("check")
    await a.stop()
    check_answer(line, f"one-shot check of {d}")
    return time.perf_counter() - t0


def ms(x):
    return x * 1000.0


async def run(a):
    base = a.pki_base or tempfile.mkdtemp(prefix="kubecert-fleet-")
    os.makedirs(base, exist_ok=True)
    agents = []
    try:
        t = time.perf_counter()
        dirs = await make_pkis(a.bin, base, a.agents, a.key_algorithm)
        print(f"fleet: {a.agents} demo PKIs ({a.key_algorithm}) made in "
              f"{time.perf_counter() - t:.1f} s; binary {a.bin}; {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.1f}", flush=True)

        # Start: every agent at once, a version call each.
        agents = [Agent(a.bin, d) for d in dirs]
        t0 = time.perf_counter()
        await asyncio.gather(*(x.start() for x in agents))
        await asyncio.gather(*(x.call("version") for x in agents))
        start_wall = time.perf_counter() - t0
        print(f"start: {a.agents} agents spawned and answering `version`: {ms(start_wall):.1f} ms "
              f"wall", flush=True)

        await asyncio.sleep(a.idle_pause)
        idle = [status_kb(x.proc.pid, "VmRSS") / 1024.0 for x in agents]
        print(f"idle RSS per agent: median {statistics.median(idle):.1f} MB, max {max(idle):.1f} MB, "
              f"sum {sum(idle):.0f} MB (VmRSS after {a.idle_pause:.1f} s idle)", flush=True)

        # Warm-up round (first check of each agent), not counted.
        ncerts = {check_answer(line, "warm-up") for _, line in
                  await asyncio.gather(*(x.call("check") for x in agents))}
        cpu0 = [cpu_seconds(x.proc.pid) for x in agents]
        rounds, lat = [], []
        for r in range(a.rounds):
            t0 = time.perf_counter()
            res = await asyncio.gather(*(x.call("check") for x in agents))
            rounds.append(time.perf_counter() - t0)
            for dt, line in res:
                lat.append(dt)
                check_answer(line, f"round {r}")
        cpu1 = [cpu_seconds(x.proc.pid) for x in agents]
        per_check = [(c1 - c0) / a.rounds for c0, c1 in zip(cpu0, cpu1)]
        print(f"check round across {a.agents} agents ({sorted(ncerts)} certificates each; "
              f"{a.rounds} rounds): wall median {ms(statistics.median(rounds)):.1f} ms, "
              f"min {ms(min(rounds)):.1f}, max {ms(max(rounds)):.1f} ms; "
              f"{a.agents * a.rounds / sum(rounds):.0f} checks/s", flush=True)
        print(f"  per call (send to answer, while all {a.agents} run): p50 {ms(pct(lat, 50)):.2f} ms, "
              f"p90 {ms(pct(lat, 90)):.2f}, p99 {ms(pct(lat, 99)):.2f}, max {ms(max(lat)):.2f} ms",
              flush=True)
        print(f"  agent CPU per check: median {ms(statistics.median(per_check)):.2f} ms "
              f"(/proc utime+stime over the rounds, {1000.0 / CLK_TCK:.0f} ms ticks)", flush=True)
        hwm = [status_kb(x.proc.pid, "VmHWM") / 1024.0 for x in agents]
        rss = [status_kb(x.proc.pid, "VmRSS") / 1024.0 for x in agents]
        print(f"RSS under load per agent: peak (VmHWM) median {statistics.median(hwm):.1f} MB, "
              f"max {max(hwm):.1f} MB; after the rounds (VmRSS) median "
              f"{statistics.median(rss):.1f} MB", flush=True)
        await asyncio.gather(*(x.stop() for x in agents))
        agents = []

        # One-shot rounds: a fresh process per node per round.
        shots = []
        for _ in range(a.one_shot_rounds):
            t0 = time.perf_counter()
            each = await asyncio.gather(*(one_shot(a.bin, d) for d in dirs))
            shots.append((time.perf_counter() - t0, each))
        walls = [w for w, _ in shots]
        each = [e for _, es in shots for e in es]
        print(f"one-shot round (a fresh `serve --stdio` per node, one check, exit; "
              f"{a.one_shot_rounds} rounds): wall median {ms(statistics.median(walls)):.1f} ms, "
              f"max {ms(max(walls)):.1f} ms; per node p50 {ms(pct(each, 50)):.1f} ms", flush=True)
    finally:
        for x in agents:
            if x.proc and x.proc.returncode is None:
                x.proc.kill()
                await x.proc.wait()
        if a.keep or a.pki_base:
            print(f"fleet: kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "kubecert"))
    ap.add_argument("--agents", type=int, default=int(os.environ.get("FLEET_AGENTS", 100)))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("FLEET_ROUNDS", 20)))
    ap.add_argument("--one-shot-rounds", type=int,
                    default=int(os.environ.get("FLEET_ONE_SHOT_ROUNDS", 3)))
    ap.add_argument("--key-algorithm", default=os.environ.get("FLEET_KEY_ALG", "rsa-2048"),
                    help="of the demo PKIs (rsa-2048, kubeadm's default; ecdsa-p256 is made "
                         "~8x faster)")
    ap.add_argument("--idle-pause", type=float, default=1.0)
    ap.add_argument("--keep", action="store_true", help="keep the PKIs")
    ap.add_argument("--pki-base", help="make the PKIs here, or reuse those an earlier run made "
                                       "(kept): an A/B of two binaries on the same PKIs")
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        sys.exit(f"fleet: no binary at {a.bin} (cargo build --release)")
    asyncio.run(run(a))


if __name__ == "__main__":
    main()
