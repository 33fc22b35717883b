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
cd "$dest"

requirements=()
if [ "${KUBECERT_REQUIREMENTS:-1}" = 1 ]; then
    requirements=(--requirements)
fi
ansible-test units --python "${KUBECERT_PYTHON:-3.11}" --local "${requirements[@]}" --color no "$@"
