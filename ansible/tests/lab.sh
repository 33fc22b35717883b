#!/usr/bin/env bash
# A local lab for trying the collection's playbooks on one machine, in minutes:
# three inventory hosts node1..node3 (local connection, loopback 127.0.1.K), each
# with its own kubeadm directory from `kubecert demo-pki --nodes 3` (shared CAs,
# leaves that expire in LAB_EXPIRES_IN, default 20d), and - when etcd and etcdctl
# are installed - a real 3-member etcd cluster with mutual TLS on those
# certificates, restarted for real by the rolling renewal. It is the setup of
# the HA test (ansible/tests/run-ha.sh). No root, no Kubernetes.
#
# Usage:
#   ansible/tests/lab.sh up [DIR]     create the lab in DIR (default /tmp/kubecert-lab), print how to use it
#   ansible/tests/lab.sh down [DIR]   stop its etcd cluster and remove DIR
# Environment: KUBECERT_BIN (default target/debug/kubecert, built when missing),
#   KUBECERT_VENV, LAB_EXPIRES_IN (20d).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ha/lib.sh
. "$here/ha/lib.sh"
kubecert_use_venv ansible-playbook python3 openssl

cmd="${1:-}"
dir="${2:-/tmp/kubecert-lab}"
python="$(command -v python3)"
harness="$KUBECERT_REPO/tests/harness/etcd_cluster.py"

case "$cmd" in
up)
    if [ -e "$dir" ]; then
        echo "lab: $dir exists; run: $0 down $dir" >&2
        exit 1
    fi
    mkdir -p "$dir/backups"
    ha_collections_path "$dir/collections"
    bin="$(ha_kubecert_bin)"
    ha_pki "$bin" "$dir/pki" "${LAB_EXPIRES_IN:-20d}"
    if command -v etcd >/dev/null && command -v etcdctl >/dev/null && command -v setsid >/dev/null; then
        "$python" "$harness" start --root "$dir/pki" --state "$dir/etcd" --nodes 3 --port-base 0 >"$dir/etcd-start.json"
        port="$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_port"])' "$dir/etcd/cluster.json")"
        ha_inventory "$dir/hosts.yml" "$bin" "$dir/pki" "$dir" "$port" "$dir/etcd" "$harness"
        etcd_note="a real 3-member etcd cluster on https://127.0.1.{1,2,3}:$port, restarted by the renewal"
    else
        ha_inventory "$dir/hosts.yml" "$bin" "$dir/pki" "$dir"
        echo "kubecert_etcd_health_check: false" >"$dir/group_vars.yml"
        etcd_note="no etcd (etcd/etcdctl not installed): the health checks are off (-e @$dir/group_vars.yml)"
    fi
    cat <<EOM
lab: ready in $dir
  nodes       node1..node3, kubeadm directories $dir/pki/node-K (leaves expire in ${LAB_EXPIRES_IN:-20d})
  etcd        $etcd_note
  inventory   $dir/hosts.yml (group control_plane)

Try (from any directory):
  export ANSIBLE_COLLECTIONS_PATH=$dir/collections
  ansible-playbook -i $dir/hosts.yml kubecert.pki.check_expiration -e kubecert_report_dir=$dir   # fails: due within 30d
  ansible-playbook -i $dir/hosts.yml kubecert.pki.renew_ha --check --diff $( [ -e "$dir/group_vars.yml" ] && echo "-e @$dir/group_vars.yml")
  ansible-playbook -i $dir/hosts.yml kubecert.pki.renew_ha $( [ -e "$dir/group_vars.yml" ] && echo "-e @$dir/group_vars.yml")
  ansible-playbook -i $dir/hosts.yml kubecert.pki.check_expiration -e kubecert_report_dir=$dir   # passes
Remove it:
  $0 down $dir
EOM
    ;;
down)
    if [ -e "$dir/etcd/cluster.json" ]; then
        "$python" "$harness" stop --state "$dir/etcd" >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    echo "lab: removed $dir"
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
