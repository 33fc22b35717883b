#!/usr/bin/env bash
# Run the collection's unit tests (tests/unit/) with `ansible-test units`.
#
# The JSON-RPC client is tested against tests/unit/plugins/fake_agent.py over
# both transports (NDJSON on stdio and HTTP over a unix socket); the modules are
# run end to end against it. No kubecert binary is needed.
#
# Usage: ansible/tests/run-units.sh [extra ansible-test units args]
# Environment: KUBECERT_VENV, KUBECERT_PYTHON, KUBECERT_REQUIREMENTS as for run-sanity.sh.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kubecert_use_venv ansible-test git

dest="$(kubecert_collection_tree)"
trap 'rm -rf "${dest%/ansible_collections/*}"' EXIT
# The contract test (tests/unit/plugins/test_contract.py) checks the modules and the
# fake agent against the agent's schema/ and error codes, which live outside the collection.
mkdir -p "$dest/tests/unit/contract"
cp -r "$KUBECERT_REPO/schema" "$dest/tests/unit/contract/schema"
cp "$KUBECERT_REPO/src/rpc/errors.rs" "$dest/tests/unit/contract/errors.rs"
cp -r "$KUBECERT_REPO/systemd" "$dest/tests/unit/contract/systemd"
cd "$dest"

requirements=()
if [ "${KUBECERT_REQUIREMENTS:-1}" = 1 ]; then
    requirements=(--requirements)
fi
ansible-test units --python "${KUBECERT_PYTHON:-3.11}" --local "${requirements[@]}" --color no "$@"
