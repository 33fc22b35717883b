#!/usr/bin/env python3
"""Side-by-side A/B of kubecert builds: `bench/ab.py BIN_BEFORE BIN_AFTER [BIN...]`.

Used for the before/after quotes of structural changes (issues 14, 18): each round runs every
binary once, in a random order, so background load falls on all of them alike; a summary
compares medians of wall time (perf_counter) and CPU time (user+sys of the child, from
RUSAGE_CHILDREN deltas) to the first binary. Measures and prints; asserts nothing.

Cases (AB_CASES, comma-separated; default all):
- `check`: `check -o json` on an RSA demo PKI (AB_RUNS_FAST rounds, 300);
- `version`: `--version` (AB_RUNS_FAST); with `check`, the ratio check / --version per binary
  (issue 18's goal: <= 1.3x);
- `fixtures`: `check -o json` on every PKI in tests/fixtures (`--cert-dir F --kubeconfig-dir
  F/kubeconfig`, today's clock, so their leaves are expired; AB_RUNS_FIXTURE rounds, 100),
  and bench/openssl-loop.sh on the same files (AB_RUNS_LOOP rounds, 10, interleaved with the
  binaries): the ratio loop / check per binary (goal >= 100x on a full PKI), and loop /
  `/bin/true` in the same rounds: the ratio no process start can beat;
- `renew-ec`, `renew-rsa`: `renew all` on fresh copies of an ECDSA-P256 / RSA-2048 demo PKI
  (AB_RUNS_RENEW rounds, 40). With AB_FLOOR=path/to/keygen_floor (examples/keygen_floor.rs,
  release), the floor (the same number of keys of the same type, nothing else, one thread
  per key as renew does) runs in the same rounds and renew / floor is printed per binary
  (goals: ECDSA <= 1.2x, RSA <= 1.1x).
The demo PKIs are made by the last binary.
"""
import glob
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
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, prepare=None, check_rc=True):
    if prepare:
        prepare()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t1 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # check exits 3 (warn) or 4 (fail) on a PKI with findings; anything else is an error.
    if check_rc and p.returncode not in (0, 3, 4):
        sys.exit(f'ab: {" ".join(cmd)} exited {p.returncode}: {p.stderr.decode(errors="replace")[:300]}')
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return (t1 - t0) * 1e3, cpu * 1e3


def run_case(name, runners, n, prep=None, extra=None, extra_n=None):
    """runners: {label: argv}; extra: {label: argv} run in the first extra_n rounds only."""
    wall = {k: [] for k in list(runners) + list(extra or {})}
    cpu = {k: [] for k in wall}
    for _ in range(2):
        for k, cmd in runners.items():
            timed(cmd, prep)
    for i in range(n):
        todo = list(runners.items())
        if extra and i < (extra_n or n):
            todo += list(extra.items())
        random.shuffle(todo)
        for k, cmd in todo:
            t, c = timed(cmd, prep, check_rc=k in runners)
            wall[k].append(t)
            cpu[k].append(c)
    med = {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in wall if wall[k]}
    first = next(iter(runners))
    bw, bc = med[first]
    print(f'{name} ({n} rounds; medians, ratio to {first})')
    for k in wall:
        if k not in med:
            continue
        mw, mc = med[k]
        rel = f'({mw / bw:.3f})  cpu {mc:8.2f} ms ({mc / bc:.3f})' if k in runners else \
            f'         cpu {mc:8.2f} ms'
        print(f'  {k}: wall {mw:8.2f} ms {rel}', flush=True)
    return med


def main():
    bins = [os.path.abspath(b) for b in sys.argv[1:]]
    if len(bins) < 2:
        sys.exit(__doc__)
    fast = int(os.environ.get('AB_RUNS_FAST', 300))
    slow = int(os.environ.get('AB_RUNS_RENEW', 40))
    nfix = int(os.environ.get('AB_RUNS_FIXTURE', 100))
    nloop = int(os.environ.get('AB_RUNS_LOOP', 10))
    cases = os.environ.get('AB_CASES', 'check,version,fixtures,renew-ec,renew-rsa').split(',')
    floor = os.environ.get('AB_FLOOR')
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

        print(f'ab: {len(bins)} binaries, interleaved rounds in random order; load average at start '
              f'{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs')
        meds = {}
        if 'check' in cases:
            meds['check'] = run_case('check -o json (RSA demo PKI)', {
                b: [b, 'check', '-o', 'json', '--cert-dir', f'{w}/rsa/pki', '--kubeconfig-dir',
                    f'{w}/rsa', '--now', NOW] for b in bins}, fast)
        if 'version' in cases:
            meds['version'] = run_case('--version', {b: [b, '--version'] for b in bins}, fast)
        if 'check' in meds and 'version' in meds:
            print('check -o json / --version (medians; goal <= 1.3x)')
            for b in bins:
                (cw, cc), (vw, vc) = meds['check'][b], meds['version'][b]
                print(f'  {b}: wall {cw / vw:.2f}x  cpu {cc / vc:.2f}x')
        if 'fixtures' in cases:
            for f in sorted(glob.glob(os.path.join(ROOT, 'tests', 'fixtures', 'pki-*'))):
                fx = os.path.basename(f)
                loop = ['bash', os.path.join(ROOT, 'bench', 'openssl-loop.sh'), f, f'{f}/kubeconfig']
                runners = {b: [b, 'check', '-o', 'json', '--cert-dir', f, '--kubeconfig-dir',
                               f'{f}/kubeconfig'] for b in bins}
                # The ceiling of the ratio: a process that does nothing (/bin/true ignores its
                # arguments). On a PKI of one or two certificates the loop is a couple of
                # openssl processes, and no program can be 100x faster than that.
                runners['/bin/true'] = ['/bin/true']
                med = run_case(f'check -o json, {fx} (today: leaves expired)', runners, nfix,
                               extra={'openssl-loop': loop}, extra_n=nloop)
                lw, lc = med['openssl-loop']
                print(f'  openssl loop / check ({fx}; goal >= 100x on a full PKI): ' + ', '.join(
                    f'{b}: wall {lw / med[b][0]:.0f}x cpu {lc / med[b][1]:.0f}x'
                    for b in list(bins) + ['/bin/true']), flush=True)
        for case, d, alg in (('renew-ec', 'ec', 'ecdsa-p256'), ('renew-rsa', 'rsa', 'rsa-2048')):
            if case not in cases:
                continue
            extra = None
            if floor:
                fresh(d)()
                dry = subprocess.run(bins[-1:] + renew(bins[-1])[1:] + ['--dry-run', '-o', 'json'],
                                     capture_output=True, check=True).stdout.decode()
                n = dry.count('"would-renew"')
                extra = {f'floor-parallel ({n} keys)': [floor, '--count', str(n), '--alg', alg,
                                                       '--parallel']}
            med = run_case(f'renew all, {alg}', {b: renew(b) for b in bins}, slow, prep=fresh(d),
                           extra=extra)
            if extra:
                fk = next(iter(extra))
                fw, fc = med[fk]
                print(f'  renew / floor-parallel (goal {"<= 1.2x" if case == "renew-ec" else "<= 1.1x"}): '
                      + ', '.join(f'{b}: wall {med[b][0] / fw:.2f}x cpu {med[b][1] / fc:.2f}x'
                                  for b in bins), flush=True)
        print(f'ab: load average at end {os.getloadavg()[0]:.1f}')
    finally:
        shutil.rmtree(w, ignore_errors=True)


if __name__ == '__main__':
    main()
