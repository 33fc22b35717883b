#!/usr/bin/env bash
# check-glibc.sh BINARY [MAX]: fail when BINARY needs a glibc newer than MAX (default 2.28),
# read from the versions of the symbols it imports (objdump -T: GLIBC_2.x) and of its
# version-needed section (readelf -V), so that it starts on RHEL 8 (2.28), Debian 11 and
# Ubuntu 20.04 (2.31) and newer.
# Exit 0: prints the highest GLIBC_ version needed; 1: too new (names the version and the
# symbols needing it); 2: usage, or not a readable ELF.
set -euo pipefail
bin="${1:?usage: check-glibc.sh BINARY [MAX]}"
max="${2:-2.28}"
for tool in objdump readelf; do
    command -v "$tool" >/dev/null || { echo "check-glibc: $tool not found (apt-get install binutils)" >&2; exit 2; }
done
[ -r "$bin" ] || { echo "check-glibc: $bin: no such readable file" >&2; exit 2; }
if ! syms="$(objdump -T "$bin" 2>&1)"; then
    echo "check-glibc: $bin is not an ELF objdump can read: ${syms%%$'\n'*}" >&2
    exit 2
fi
# Every GLIBC_x.y[.z] version the binary references (symbols and version-needed entries).
versions="$( { grep -o 'GLIBC_[0-9][0-9.]*' <<<"$syms" || true; readelf -V --wide "$bin" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' || true; } \
    | sed 's/^GLIBC_//; s/\.$//' | sort -u -V)"
if [ -z "$versions" ]; then
    echo "check-glibc: $bin references no GLIBC_ symbol version (static or not linked against glibc)" >&2
    exit 2
fi
highest="$(tail -n1 <<<"$versions")"
if [ "$(printf '%s\n%s\n' "$max" "$highest" | sort -V | tail -n1)" != "$max" ]; then
    too_new="$(while read -r v; do
        [ "$(printf '%s\n%s\n' "$max" "$v" | sort -V | tail -n1)" = "$max" ] || echo "$v"; done <<<"$versions" | tr '\n' ' ')"
    symbols="$(grep -E "GLIBC_(${too_new// /|})[^0-9.]" <<<"$syms" | awk '{print $NF}' | sort -u | head -n 8 | tr '\n' ' ' || true)"
    echo "check-glibc: $bin needs GLIBC_$highest, above the allowed GLIBC_$max (versions above it: ${too_new% }; symbols: ${symbols% })" >&2
    exit 1
fi
echo "check-glibc: $bin needs at most GLIBC_$highest (allowed: GLIBC_$max)"
