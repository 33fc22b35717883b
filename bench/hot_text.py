#!/usr/bin/env python3
"""Regenerates link/hot-text.ld: the functions the agent and the common CLI paths run,
placed together at the start of the binary's code (not a test; a build input).

    KUBECERT_LINK_MAP=/tmp/kubecert.map cargo build --release    # the linker's map (build.rs)
    python3 bench/hot_text.py target/release/kubecert --map /tmp/kubecert.map
    cargo build --release                                        # relinks with the new file

(or, without --map, a binary that keeps its symbol table: `--config
'profile.release.package.kubecert.strip=false'`; but its hashes differ from the stripped
release build's, so only the file's wildcard half then matches).

Why: the kernel maps a file-backed page fault's whole 64 KB neighbourhood (fault-around), so
code touched here and there over the 15 MB of text keeps most of it resident: the idle
agent had ~10 MB of text in its RSS while the functions it had run were ~1.6 MB. Placed
together, the same functions cost ~their own size.

How: the binary runs under valgrind's callgrind through the paths to keep
hot: `serve --socket` (start, 101 `check` calls as bench/rpc_bench.py's idle measure, `version`,
`stats`), `serve --stdio` (the same calls), `--version` and `check -o json`. Every function
that ran (named by the symbol table, or by its entry address and the map) gives its input
section (`.text.<mangled name>`: rustc and aws-lc's C build put each function in its own
section), listed twice: exactly, then with the `17h<hash>E` of a Rust name and the
`.llvm.<n>` of a local promoted by ThinLTO as wildcards. The hashes change with the profile,
rustc and the dependencies, the paths do not: on the build the file was made from, the
exact names place the code that ran together (~1.7 MB); on another, the wildcards still
catch it, with the other instances of each generic path (`FnOnce::call_once`,
`serialize_entry`: ~4 MB in all). A
stale pattern matches nothing and its function simply stays where the linker puts it: an
out-of-date file costs RSS, never correctness.

build.rs passes the file to the linker (`-T`, the script only INSERTs a section BEFORE .text:
the default layout is otherwise kept) for release builds linked by the default linker.
"""

import bisect
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


def sections_from_symbols(binary):
    """(address, size, section) of each function of an unstripped binary: rustc and the C
    build name a function's section `.text.<symbol>`."""
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    secs = []
    for line in out.splitlines():
        p = line.split()
        if len(p) == 4 and p[2] in "tTwW":
            secs.append((int(p[0], 16), int(p[1], 16), ".text." + p[3]))
    return secs


def sections_from_map(path):
    """(address, size, section) of each .text input section in an LLD map (-Map)."""
    secs = []
    with open(path) as f:
        for line in f:
            p = line.split(None, 4)
            if len(p) == 5 and p[4].rstrip().endswith(")") and ":(.text." in p[4]:
                name = p[4].rstrip()[p[4].rindex(":(") + 2:-1]
                secs.append((int(p[0], 16), int(p[2], 16), name))
    return secs


def ran_sections(ran, secs):
    """The sections of the functions that ran: by symbol name, or by address (the entry
    point callgrind names a function of a stripped binary by)."""
    by_name = {name[len(".text."):]: name for _, _, name in secs}
    secs = sorted(s for s in secs if s[1] > 0)
    starts = [s[0] for s in secs]
    addrs = [int(fn.split("'")[0], 16) for fn in ran if fn.startswith("0x")]
    # valgrind loads a PIE at 0x108000 and names a stripped function by its run-time entry:
    # the offset is the one under which the entries fall on section starts.
    first = set(starts)
    bias = max((0, 0x108000), key=lambda b: sum(1 for a in addrs if a - b in first))
    out = set()
    for fn in ran:
        if fn in by_name:
            out.add(by_name[fn])
        elif fn.startswith("0x"):
            addr = int(fn.split("'")[0], 16) - bias
            i = bisect.bisect_right(starts, addr) - 1
            if i >= 0 and addr < secs[i][0] + secs[i][1]:
                out.add(secs[i][2])
    return out


def main():
    args = sys.argv[1:]
    mapfile = None
    if len(args) == 3 and args[1] == "--map":
        mapfile = os.path.abspath(args[2])
    elif len(args) != 1:
        sys.exit(__doc__)
    binary = os.path.abspath(args[0])
    secs = sections_from_map(mapfile) if mapfile else sections_from_symbols(binary)
    if not secs:
        sys.exit(f"{binary}: no symbol table (build with the strip=false override, or --map)")
    tmp = tempfile.mkdtemp(prefix="kubecert-hot-")
    try:
        ran = ran_sections(run_paths(binary, tmp), secs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    plain = re.compile(r"[A-Za-z0-9_.$]+")
    # A plain `.text` (assembly, crt files) would take every such file's code: left out.
    exact = sorted(n for n in ran if plain.fullmatch(n) and n.startswith(".text.")
                   and len(n) > len(".text."))
    wild = sorted({pattern(n) for n in exact} - set(exact))
    size = {name: sz for _, sz, name in secs}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("/* Generated by bench/hot_text.py (see there): the functions the agent and the\n"
                "   common CLI paths run, together before the rest of .text: first by exact\n"
                "   section name (this toolchain, these dependencies, this profile), then by\n"
                "   name with hashes as wildcards (any build). Only a layout: a pattern that\n"
                "   matches nothing is harmless. */\n")
        f.write("SECTIONS {\n  .text.hot : {\n")
        for p in exact + wild:
            f.write(f"    *({p})\n")
        f.write("  }\n} INSERT BEFORE .text;\n")
    print(f"{OUT}: {len(exact)} exact + {len(wild)} wildcard patterns; the functions that ran: "
          f"{sum(size[n] for n in exact) / 1024:.0f} KB of {sum(size.values()) / 1024:.0f} KB "
          f"of code")


if __name__ == "__main__":
    main()
