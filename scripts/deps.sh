#!/usr/bin/env bash
# Installs everything the test suite needs, idempotently:
#   apt: etcd-server etcd-client golang-cfssl openssl prometheus (promtool) systemd (systemd-analyze)
#   kubectl: the preinstalled one, else Debian's kubernetes-client
#   man-db, zsh, fish: tests/release.rs renders the man pages and checks the completions
#   the release tools (make dist-test): scripts/dist-deps.sh --lint
#   a Python virtualenv at .venv with ansible-core, ansible-lint, jsonschema, pytest
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v etcdctl >/dev/null || need_apt+=(etcd-client)
command -v cfssl >/dev/null || need_apt+=(golang-cfssl)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v setpriv >/dev/null || need_apt+=(util-linux)
command -v curl >/dev/null || need_apt+=(curl)
command -v kubectl >/dev/null || need_apt+=(kubernetes-client)
command -v man >/dev/null || need_apt+=(man-db)
command -v zsh >/dev/null || need_apt+=(zsh)
command -v fish >/dev/null || need_apt+=(fish)
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "[deps] apt-get install ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# prometheus' package starts a server we do not want running.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import ansible, jsonschema, pytest' 2>/dev/null || [ ! -x .venv/bin/ansible-lint ]; then
    .venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
fi
echo "[deps] etcd $(etcd --version | head -1 | awk '{print $3}'), cfssl $(cfssl version 2>/dev/null | head -1 | awk '{print $2}'), $(openssl version), kubectl $(kubectl version --client 2>/dev/null | sed -n 1p), $(.venv/bin/ansible --version 2>/dev/null | sed -n 1p)"
