#!/usr/bin/env bash
# Benchmark (not a test): wall time of the check_expiration playbook over the
# 3-node inventory of run-ha.sh, against `ansible -m ping` over the same
# inventory, the floor of any Ansible run that reaches every node once.
# Also timed, to show where the difference goes: a one-task playbook that only
# runs kubecert.pki.cert_info on every node (no report).
#
# Runs are interleaved (ping, cert_info, check_expiration, ping, ...) after one
# warm-up round; prints every run, the medians and the ratios. The goal is
# check_expiration <= 1.2 x ping. No etcd is needed.
#
# Usage: ansible/tests/bench-ha.sh [RUNS]     (default 7); also run by `make bench` (bench/run.sh)
# Environment: KUBECERT_VENV, KUBECERT_BIN, KUBECERT_HA_KEY_ALGORITHM as for run-ha.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ha/lib.sh
. "$here/ha/lib.sh"
kubecert_use_venv ansible ansible-playbook python3

runs="${1:-7}"
python="$(command -v python3)"
w="$(mktemp -d "${TMPDIR:-/tmp}/kubecert-bench-ha.XXXXXX")"
trap 'rm -rf "$w"' EXIT
export ANSIBLE_COLLECTIONS_PATH="$w/collections"
export ANSIBLE_NOCOLOR=1
export ANSIBLE_RETRY_FILES_ENABLED=0
export ANSIBLE_LOCALHOST_WARNING=0
export ANSIBLE_DEPRECATION_WARNINGS=0
export ANSIBLE_LOCAL_TEMP="$w/ansible-tmp"
ha_collections_path "$w/collections"

bin="$(ha_kubecert_bin)"
ha_pki "$bin" "$w/pki" 20d
mkdir -p "$w/inventory"
inv="$w/inventory/hosts.yml"
ha_inventory "$inv" "$bin" "$w/pki" "$w"
cat >"$w/cert_info.yml" <<'EOF'
- name: Read certificate expiration, nothing else
  hosts: all
  gather_facts: false
  tasks:
    - name: Read certificate expiration
      kubecert.pki.cert_info:
        cert_dir: "{{ kubecert_cert_dir }}"
        kubeconfig_dir: "{{ kubecert_kubeconfig_dir }}"
        kubelet_pki: "{{ kubecert_kubelet_pki }}"
        kubecert_bin: "{{ kubecert_bin_path }}"
        transport: "{{ kubecert_transport }}"
EOF

kinds=(ping cert_info check_expiration)
run_one() {  # run_one KIND: the command, output to $w/out-KIND
    case "$1" in
    ping) ansible -i "$inv" all -m ansible.builtin.ping ;;
    cert_info) ansible-playbook -i "$inv" "$w/cert_info.yml" ;;
    check_expiration) ansible-playbook -i "$inv" "$KUBECERT_COLLECTION/playbooks/check_expiration.yml" \
        -e kubecert_threshold_days=10 -e "kubecert_report_dir=$w" ;;
    esac >"$w/out-$1" 2>&1
}
declare -A times
for kind in "${kinds[@]}"; do
    run_one "$kind" || { echo "bench-ha: $kind failed:" >&2; tail -n 20 "$w/out-$kind" >&2; exit 1; }
    times[$kind]=""
done
echo "bench-ha: $runs interleaved runs each over 3 local hosts ($(ansible --version 2>/dev/null | sed -n 1p), $(nproc) CPUs, kubecert $bin)"
for i in $(seq 1 "$runs"); do
    line="  run $i:"
    for kind in "${kinds[@]}"; do
        t0=$EPOCHREALTIME
        run_one "$kind"
        t1=$EPOCHREALTIME
        dt="$("$python" -c 'import sys; print("%.3f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$t0" "$t1")"
        times[$kind]="${times[$kind]} $dt"
        line="$line $kind ${dt}s"
    done
    echo "$line"
done
"$python" - "${times[ping]}" "${times[cert_info]}" "${times[check_expiration]}" <<'PY'
import statistics, sys
ping, info, check = ([float(x) for x in arg.split()] for arg in sys.argv[1:4])
mp, mi, mc = (statistics.median(v) for v in (ping, info, check))
print("  median: ping %.2fs, cert_info-only playbook %.2fs, check_expiration %.2fs" % (mp, mi, mc))
print("  ratio check_expiration / ping: %.2fx (goal <= 1.2x: %s); cert_info-only / ping: %.2fx"
      % (mc / mp, "met" if mc / mp <= 1.2 else "NOT met", mi / mp))
PY
