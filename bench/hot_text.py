#!/usr/bin/env python3
"""Regenerates link/hot-text.ld: the functions the agent and the common CLI paths run,
placed together at the start of the binary's code (not a test; a build input).

    cargo build --release --config 'profile.release.package.kubecert.strip=false'
    python3 bench/hot_text.py target/release/kubecert      # writes link/hot-text.ld

Why: the kernel maps a file-backed page fault's whole 64 KB neighbourhood (fault-around), so
code touched here and there over the 15 MB of text keeps most of it resident: the idle
agent had ~10 MB of text in its RSS while the functions it had run were ~1.6 MB. Placed
together, the same functions cost ~their own size.

How: the binary (with its symbol table: the release profile strips it, hence the override
above, which relinks only kubecert) runs under valgrind's callgrind through the paths to keep
hot: `serve --socket` (start, 101 `check` calls as bench/rpc_bench.py's idle measure, `version`,
`stats`), `serve --stdio` (the same calls), `--version` and `check -o json`. Every function
that ran becomes an input-section pattern (`.text.<mangled name>`: rustc and aws-lc's C build
put each function in its own section), with the `17h<hash>E` of a Rust name and the
`.llvm.<n>` of a local promoted by ThinLTO as wildcards: those hashes change with the profile (the
stripped release build and this symbol-carrying one hash differently), rustc and the
dependencies, the paths do not. A wildcard also takes the other instances of a generic path
(`FnOnce::call_once`, `serialize_entry`): the hot section is ~2x the code that ran. A
stale pattern matches nothing and its function simply stays where the linker puts it: an
out-of-date file costs RSS, never correctness.

build.rs passes the file to the linker (`-T`, the script only INSERTs a section BEFORE .text:
the default layout is otherwise kept) for release builds linked by the default linker.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rpc_bench as rb  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "link", "hot-text.ld")
HASH = re.compile(r"17h[0-9a-f]{16}E(\.llvm\.[0-9]+)?$")
LLVM = re.compile(r"\.llvm\.[0-9]+$")


def pattern(name):
    """The section pattern of a function: hash and `.llvm.<n>` suffix as wildcards (a local
    promoted by one build's ThinLTO may not be promoted in another)."""
    return LLVM.sub("*", HASH.sub("17h*", name))


def callgrind(args, out, drive=None, stdin=None):
    cmd = ["valgrind", "--tool=callgrind", "--demangle=no", "--compress-strings=no",
           "--compress-pos=no", f"--callgrind-out-file={out}"] + args
    p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE if stdin else subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    if drive:
        drive(p)
    p.wait()
    fns = set()
    with open(out) as f:
        for line in f:
            if line.startswith("fn="):
                fns.add(line[3:].strip())
    return fns


def run_paths(binary, tmp):
    pki = os.path.join(tmp, "k")
    subprocess.run([binary, "demo-pki", pki], check=True, stdout=subprocess.DEVNULL)
    params = {"cert_dir": os.path.join(pki, "pki"), "kubeconfig_dir": pki}
    calls = [{"jsonrpc": "2.0", "id": 1, "method": "check", "params": params}] * 101 + [
        {"jsonrpc": "2.0", "id": 2, "method": "version"},
        {"jsonrpc": "2.0", "id": 3, "method": "stats"}]
    fns = set()

    sock = os.path.join(tmp, "a.sock")

    def socket_calls(p):
        for _ in range(2400):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        c = rb.Conn(sock)
        for call in calls:
            c.roundtrip(rb.http_request(json.dumps(call).encode()))
        c.close()
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)

    fns |= callgrind([binary, "serve", "--socket", sock], os.path.join(tmp, "cg.socket"),
                     drive=socket_calls)

    def stdio_calls(p):
        for call in calls:
            p.stdin.write(json.dumps(call).encode() + b"\n")
            p.stdin.flush()
            p.stdout.readline()
        p.stdin.close()

    fns |= callgrind([binary, "serve", "--stdio"], os.path.join(tmp, "cg.stdio"),
                     drive=stdio_calls, stdin=subprocess.PIPE)
    fns |= callgrind([binary, "--version"], os.path.join(tmp, "cg.version"))
    fns |= callgrind([binary, "check", "-o", "json", "--cert-dir", params["cert_dir"],
                      "--kubeconfig-dir", pki], os.path.join(tmp, "cg.check"))
    return fns


def text_symbols(binary):
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        p = line.split()
        if len(p) == 4 and p[2] in "tTwW":
            sizes[p[3]] = int(p[1], 16)
    return sizes


def patterns(ran, sizes):
    pats, total = set(), 0
    for name in ran:
        if name not in sizes:
            continue  # ld.so, libc, valgrind's own, or an address without a symbol
        total += sizes[name]
        if not re.fullmatch(r"[A-Za-z0-9_.$]+", name):
            continue  # not a plain section name (never seen for rustc or C symbols)
        pats.add(pattern(name))
    hot = sum(size for name, size in sizes.items() if pattern(name) in pats)
    return sorted(pats), total, hot


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    sizes = text_symbols(binary)
    if not sizes:
        sys.exit(f"{binary}: no symbol table (build with the strip=false override above)")
    tmp = tempfile.mkdtemp(prefix="kubecert-hot-")
    try:
        ran = run_paths(binary, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pats, total, hot = patterns(ran, sizes)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("/* Generated by bench/hot_text.py (see there): the functions the agent and the\n"
                "   common CLI paths run, together before the rest of .text. Only a layout:\n"
                "   a pattern that matches nothing is harmless. */\n")
        f.write("SECTIONS {\n  .text.hot : {\n")
        for p in pats:
            f.write(f"    *(.text.{p})\n")
        f.write("  }\n} INSERT BEFORE .text;\n")
    print(f"{OUT}: {len(pats)} patterns; {len(ran)} functions ran, "
          f"{total / 1024:.0f} KB of the binary's {sum(sizes.values()) / 1024:.0f} KB of code; "
          f"the patterns match {hot / 1024:.0f} KB")


if __name__ == "__main__":
    main()
