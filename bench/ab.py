#!/usr/bin/env python3
"""Side-by-side A/B of kubecert builds: `bench/ab.py BIN_BEFORE BIN_AFTER [BIN...]`.

Used for the before/after quotes of structural changes (issue 14): each round runs every
binary once, in a random order, so background load falls on all of them alike; a summary
compares medians of wall time (perf_counter) and CPU time (user+sys of the child, from
RUSAGE_CHILDREN deltas) to the first binary. Cases: `check -o json` and `--version` on an
RSA demo PKI (AB_RUNS_FAST, 300 rounds), `renew all` on fresh copies of an RSA-2048 and an
ECDSA-P256 demo PKI (AB_RUNS_RENEW, 40 rounds). The demo PKIs are made by the last binary.
Measures and prints; asserts nothing.
"""
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

NOW = '2026-07-01T00:00:00Z'


def timed(cmd, prepare=None):
    if prepare:
        prepare()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t1 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f'ab: {" ".join(cmd)} exited {p.returncode}: {p.stderr.decode(errors="replace")[:300]}')
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return (t1 - t0) * 1e3, cpu * 1e3


def main():
    bins = [os.path.abspath(b) for b in sys.argv[1:]]
    if len(bins) < 2:
        sys.exit(__doc__)
    fast = int(os.environ.get('AB_RUNS_FAST', 300))
    slow = int(os.environ.get('AB_RUNS_RENEW', 40))
    w = tempfile.mkdtemp(prefix='kubecert-ab-')
    try:
        for alg, d in (('rsa-2048', 'rsa'), ('ecdsa-p256', 'ec')):
            subprocess.run([bins[-1], 'demo-pki', f'{w}/{d}', '--key-algorithm', alg, '--now',
                            '2026-06-01T00:00:00Z'], check=True, stdout=subprocess.DEVNULL)

        def fresh(d):
            def f():
                shutil.rmtree(f'{w}/r', ignore_errors=True)
                shutil.copytree(f'{w}/{d}', f'{w}/r', symlinks=True)
            return f

        def renew(b):
            return [b, 'renew', 'all', '--cert-dir', f'{w}/r/pki', '--kubeconfig-dir', f'{w}/r', '--now', NOW]

        cases = [
            ('check -o json (RSA demo PKI)', lambda b: [b, 'check', '-o', 'json', '--cert-dir', f'{w}/rsa/pki',
                                                        '--kubeconfig-dir', f'{w}/rsa', '--now', NOW], None, fast),
            ('--version', lambda b: [b, '--version'], None, fast),
            ('renew all, ECDSA-P256', renew, fresh('ec'), slow),
            ('renew all, RSA-2048', renew, fresh('rsa'), slow),
        ]
        print(f'ab: {len(bins)} binaries, interleaved rounds in random order; load average at start '
              f'{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs')
        for name, cmd, prep, n in cases:
            wall = {b: [] for b in bins}
            cpu = {b: [] for b in bins}
            for _ in range(3):
                for b in bins:
                    timed(cmd(b), prep)
            for _ in range(n):
                order = list(bins)
                random.shuffle(order)
                for b in order:
                    t, c = timed(cmd(b), prep)
                    wall[b].append(t)
                    cpu[b].append(c)
            base_w = statistics.median(wall[bins[0]])
            base_c = statistics.median(cpu[bins[0]])
            print(f'{name} ({n} rounds; medians, ratio to {bins[0]})')
            for b in bins:
                mw, mc = statistics.median(wall[b]), statistics.median(cpu[b])
                print(f'  {b}: wall {mw:8.2f} ms ({mw / base_w:.3f})  cpu {mc:8.2f} ms ({mc / base_c:.3f})',
                      flush=True)
        print(f'ab: load average at end {os.getloadavg()[0]:.1f}')
    finally:
        shutil.rmtree(w, ignore_errors=True)


if __name__ == '__main__':
    main()
