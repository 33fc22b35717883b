#!/usr/bin/env bash
# Run `ansible-test sanity` and `ansible-lint` on the kubecert.pki collection.
#
# ansible-test only works on a collection that sits at
# .../ansible_collections/<namespace>/<name>/, so the collection (ansible/ of the
# kubecert repository) is copied into a temporary tree of that shape and made a
# git repository there: ansible-test then lists exactly the copied files.
#
# Usage: ansible/tests/run-sanity.sh [extra ansible-test sanity args]
# Environment:
#   KUBECERT_VENV          virtualenv with ansible-core and ansible-lint (default: <repo>/.venv)
#   KUBECERT_PYTHON        Python version for ansible-test (default: 3.11)
#   KUBECERT_REQUIREMENTS  1 (default) lets ansible-test install the sanity tests' own
#                          requirements into that virtualenv (--requirements); 0 does not
#   KUBECERT_SKIP_LINT     1 skips ansible-lint
set -euo pipefail

collection="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(cd "$collection/.." && pwd)"
venv="${KUBECERT_VENV:-$repo/.venv}"
python_version="${KUBECERT_PYTHON:-3.11}"

if [ -x "$venv/bin/ansible-test" ]; then
    PATH="$venv/bin:$PATH"
    export PATH
fi
for tool in ansible-test ansible-lint git; do
    command -v "$tool" >/dev/null || { echo "run-sanity.sh: $tool not found (create $venv first)" >&2; exit 2; }
done

# ansible-test builds a virtualenv per sanity test without pip and bootstraps pip
# with a get-pip.py it downloads from its own CI file server, which only package
# registries can be reached from here. Put an offline stand-in into its cache:
# it runs the pip wheel that Python's ensurepip bundles, which then installs the
# pinned pip from the package index like get-pip.py would.
install_get_pip_standin() {
    local pip_version cache
    pip_version="$(python3 - <<'PY'
import re, ansible_test._internal.python_requirements as m
print(re.search(r"pip='([0-9.]+)'", open(m.__file__).read()).group(1))
PY
)"
    cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
    [ -e "$cache" ] && return 0
    mkdir -p "$(dirname "$cache")"
    cat >"$cache" <<'PY'
"""Offline stand-in for get-pip.py (written by kubecert's ansible/tests/run-sanity.sh)."""
import glob
import os
import runpy
import sys

import ensurepip

wheels = sorted(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), '_bundled', 'pip-*.whl')))
if not wheels:
    sys.exit('get-pip stand-in: this Python has no bundled pip wheel')
sys.path.insert(0, wheels[-1])
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
sys.argv = ['pip', 'install', '--upgrade', '--force-reinstall'] + args
runpy.run_module('pip', run_name='__main__', alter_sys=True)
PY
    echo "run-sanity.sh: installed the get-pip stand-in $cache"
}
install_get_pip_standin

work="$(mktemp -d "${TMPDIR:-/tmp}/kubecert-sanity.XXXXXX")"
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/kubecert/pki"
mkdir -p "$dest"

# Copy, not symlink: ansible-test resolves the real path to find the
# ansible_collections/ parent. Leave out earlier test output and caches.
(cd "$collection" && tar --exclude=./tests/output --exclude=__pycache__ --exclude=.cache --exclude=.ansible -cf - .) \
    | (cd "$dest" && tar -xf -)

cd "$dest"
git init -q
git add -A
git -c user.name=kubecert-sanity -c user.email=sanity@localhost -c commit.gpgsign=false commit -q -m sanity

requirements=()
if [ "${KUBECERT_REQUIREMENTS:-1}" = 1 ]; then
    requirements=(--requirements)
fi

echo "== ansible-test sanity (python $python_version, $(ansible --version | head -n1))"
ansible-test sanity --python "$python_version" --local "${requirements[@]}" --color no "$@"

if [ "${KUBECERT_SKIP_LINT:-0}" != 1 ]; then
    echo "== ansible-lint ($(ansible-lint --nocolor --version 2>/dev/null | head -n1))"
    ansible-lint --nocolor roles playbooks
fi
echo "== sanity passed"
