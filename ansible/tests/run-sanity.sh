#!/usr/bin/env bash
# Run `ansible-test sanity` and `ansible-lint` on the kubecert.pki collection.
#
# ansible-test only works on a collection that sits at
# .../ansible_collections/<namespace>/<name>/, so the collection (ansible/ of the
# kubecert repository) is copied into a temporary tree of that shape first.
#
# Usage: ansible/tests/run-sanity.sh [extra ansible-test sanity args, e.g. --test pylint]
# Environment:
#   KUBECERT_VENV          virtualenv with ansible-core and ansible-lint (default: <repo>/.venv)
#   KUBECERT_PYTHON        Python version for ansible-test (default: 3.11)
#   KUBECERT_REQUIREMENTS  1 (default) lets ansible-test install each sanity test's own
#                          pinned requirements (--requirements); 0 does not
#   KUBECERT_SKIP_LINT     1 skips ansible-lint
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kubecert_use_venv ansible-test ansible-lint git
kubecert_get_pip_standin

dest="$(kubecert_collection_tree)"
trap 'rm -rf "${dest%/ansible_collections/*}"' EXIT
cd "$dest"

requirements=()
if [ "${KUBECERT_REQUIREMENTS:-1}" = 1 ]; then
    requirements=(--requirements)
fi

echo "== ansible-test sanity (python ${KUBECERT_PYTHON:-3.11}, $(ansible --version | head -n1))"
ansible-test sanity --python "${KUBECERT_PYTHON:-3.11}" --local "${requirements[@]}" --color no "$@"

if [ "${KUBECERT_SKIP_LINT:-0}" != 1 ]; then
    echo "== ansible-lint ($(ansible-lint --nocolor --version 2>/dev/null | head -n1))"
    ansible-lint --nocolor roles playbooks
fi
echo "== sanity passed"
