# shellcheck shell=bash
# Helpers shared by run-sanity.sh and run-units.sh (sourced, not run).

# kubecert_use_venv: put the virtualenv with ansible-core and ansible-lint on PATH.
# Sets KUBECERT_COLLECTION (this collection's source dir) and KUBECERT_REPO.
kubecert_use_venv() {
    KUBECERT_COLLECTION="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    KUBECERT_REPO="$(cd "$KUBECERT_COLLECTION/.." && pwd)"
    local venv="${KUBECERT_VENV:-$KUBECERT_REPO/.venv}"
    if [ -x "$venv/bin/ansible-test" ]; then
        PATH="$venv/bin:$PATH"
        export PATH
    fi
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$tool not found (create $venv first, see ansible/README.md)" >&2; exit 2; }
    done
}

# kubecert_collection_tree: copy the collection to a temporary
# .../ansible_collections/kubecert/pki/ (the layout ansible-test insists on),
# make that a git repository so ansible-test lists exactly the copied files,
# and print its path. The caller removes "$(dirname of the 4th parent)".
#
# Copy, not symlink: ansible-test resolves the real path to find the
# ansible_collections/ parent. Earlier test output and caches are left out.
kubecert_collection_tree() {
    local work dest
    work="$(mktemp -d "${TMPDIR:-/tmp}/kubecert-collection.XXXXXX")"
    dest="$work/ansible_collections/kubecert/pki"
    mkdir -p "$dest"
    (cd "$KUBECERT_COLLECTION" && tar --exclude=./tests/output --exclude=__pycache__ --exclude=.cache --exclude=.ansible -cf - .) \
        | (cd "$dest" && tar -xf -)
    (
        cd "$dest" || exit 1
        git init -q
        git add -A
        git -c user.name=kubecert-tests -c user.email=tests@localhost -c commit.gpgsign=false commit -q -m tests
    )
    echo "$dest"
}

# ansible-test builds a virtualenv per sanity test without pip and bootstraps pip
# with a get-pip.py that it downloads from its own CI file server, which is not
# reachable here (only package registries are). Put an offline stand-in into its
# cache: it runs the pip wheel bundled with Python's ensurepip, which then
# installs the pinned pip from the package index as get-pip.py would.
kubecert_get_pip_standin() {
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
"""Offline stand-in for get-pip.py (written by kubecert's ansible/tests/lib.sh)."""
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
    echo "installed the get-pip stand-in $cache" >&2
}
