#!/usr/bin/env bash
# Installs the tools of `make dist` into the virtualenv target/dist-tools (idempotent):
# zig + cargo-zigbuild, cargo-deb, cargo-generate-rpm, ansible-core (ansible-galaxy), and
# with --lint also Debian's lintian and rpmlint (apt, as root or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/dist-tools
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r scripts/requirements-dist.txt
if [ "${1:-}" = --lint ]; then
    need_apt=()
    command -v lintian >/dev/null || need_apt+=(lintian)
    command -v rpmlint >/dev/null || need_apt+=(rpmlint)
    command -v rpm >/dev/null || need_apt+=(rpm)
    command -v man >/dev/null || need_apt+=(man-db)
    command -v objdump >/dev/null || need_apt+=(binutils)
    if [ ${#need_apt[@]} -gt 0 ]; then
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO=sudo
        echo "[dist-deps] apt-get install ${need_apt[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    fi
fi
echo "[dist-deps] $("$venv/bin/cargo-zigbuild" --version), zig $("$venv/bin/python" -m ziglang version), cargo-deb $("$venv/bin/cargo-deb" --version)"
