#!/usr/bin/env bash
# The HA acceptance scenario of the kubecert.pki collection (issue 8), on one
# machine: three inventory hosts node1..node3 (local connection), each with its
# own kubeadm directory from `kubecert demo-pki DIR --nodes 3 --expires-in 20d`
# (shared CAs, per-node leaves), its own loopback address 127.0.1.K, and a REAL
# 3-member etcd cluster (tests/harness/etcd_cluster.py) running on those
# certificates with mutual TLS on client and peer ports.
#
# The role restarts components with the `command` method: etcd is restarted for
# real (ha/restart-etcd.sh: `etcd_cluster.py restart-node --node K`, which reads the
# certificates now on disk and fails unless the member rejoins, then openssl records
# the serials the live member serves on its client and peer ports);
# kube-apiserver, kube-controller-manager and kube-scheduler do not run here, so
# their restart command only logs, their health wait is `true` and the inventory
# declares them kubecert_served_not_required. Only etcd is real. The agent does the
# rest, as in production: its health wait after each restart (`kubecert health etcd`),
# its served-certificate proof (etcd client and peer ports, kubecert_endpoints), the
# health gate (every member healthy over TLS with the node's healthcheck-client cert).
#
# Phases, in order, on the same cluster:
#   1. check_expiration, threshold 30d, certs expiring in 20d: fails, lists all nodes
#   2. renew_ha --check --diff: reports the changes of every node, changes no byte
#   3. renew_ha: every node renewed (openssl: new serials, later NotAfter; right after
#      its restart etcd serves the new certs on both ports, as the agent's proof said),
#      no watcher sample (200 ms, every member) with fewer than 2 healthy members, and the
#      agent moved etcd's leadership before stopping the leader (ha/quorum.sh, shared with
#      run-ha-ca.sh)
#   4. check_expiration, threshold 30d: passes, lists all nodes
#   5. renew_ha again (within 30d): changed=0 on every host, nothing restarted
#   6. failure injection (within 400d, so everything is due again): node 2's
#      etcd restarts with a peer cert from a foreign CA and does not rejoin; the
#      restart's health wait fails, node 2 is rolled back byte for byte and healthy
#      again, node 1 stays renewed, node 3 is untouched, the play fails with a clear
#      message, quorum never lost
#   7. the same, but the restart command itself fails (restart-node's exit
#      status when the member does not rejoin)
#   8. the same, but node 2's etcd restarts healthy on a copy of its old certificate
#      files (a restart that does not reload): openssl sees the old serials on the live
#      ports, the agent's served proof fails the node naming etcd and both serials, and
#      the rollback leaves node 2 serving its (restored) files
#   9. (issue 17) with a kubeadm configuration whose certSANs entry node 2's apiserver
#      certificate lacks: check_expiration reports drift on node 2 only; renew_ha with
#      kubecert_reconcile_sans fixes it there, each node with its own name and address
#      (host variables), the other nodes untouched (openssl)
#
# Usage: ansible/tests/run-ha.sh      (make e2e-ha)
# Environment:
#   KUBECERT_VENV              as for run-sanity.sh
#   KUBECERT_BIN               kubecert binary (default target/debug/kubecert, built when missing)
#   KUBECERT_HA_KEY_ALGORITHM  key algorithm of the demo PKI (default rsa-2048)
#   KUBECERT_HA_KEEP=1         keep the work directory (kept anyway when a check fails)
# Needs etcd, etcdctl and openssl (scripts/deps.sh installs them); without them
# the scenario is skipped, except under CI=true where that is a failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ha/lib.sh
. "$here/ha/lib.sh"
kubecert_use_venv ansible-playbook python3

missing=()
for tool in etcd etcdctl openssl setsid; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "${CI:-}" = true ]; then
        echo "run-ha: missing ${missing[*]} (scripts/deps.sh installs them)" >&2
        exit 1
    fi
    echo "run-ha: SKIPPED, missing ${missing[*]} (scripts/deps.sh installs them)"
    exit 0
fi

t_start=$(date +%s)
harness="$KUBECERT_REPO/tests/harness/etcd_cluster.py"
mkpki="$KUBECERT_REPO/tests/harness/mk_openssl_pki.sh"
python="$(command -v python3)"
w="$(mktemp -d "${TMPDIR:-/tmp}/kubecert-ha.XXXXXX")"
state="$w/etcd"
pki="$w/pki"
inv="$w/inventory/hosts.yml"
child=""
passed=0
failed=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$child" ]; then
        # ansible-playbook runs in its own session (setsid): end that process group.
        kill -TERM -- "-$child" 2>/dev/null || kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    if [ -e "$state" ]; then
        "$python" "$harness" stop --state "$state" >/dev/null 2>&1 || true
    fi
    if [ "$rc" != 0 ] || [ "$failed" != 0 ] || [ "${KUBECERT_HA_KEEP:-0}" = 1 ]; then
        echo "run-ha: work directory kept: $w (etcd logs in $state)"
    else
        rm -rf "$w"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export ANSIBLE_COLLECTIONS_PATH="$w/collections"
export ANSIBLE_NOCOLOR=1
export ANSIBLE_RETRY_FILES_ENABLED=0
export ANSIBLE_LOCALHOST_WARNING=0
export ANSIBLE_DEPRECATION_WARNINGS=0
export ANSIBLE_LOCAL_TEMP="$w/ansible-tmp"
ha_collections_path "$w/collections"

# --- helpers
note() { echo "== $*"; }
check() {  # check DESCRIPTION COMMAND...: one assertion of the scenario
    if "${@:2}"; then
        echo "ok   $1"
        passed=$((passed + 1))
    else
        echo "FAIL $1"
        failed=$((failed + 1))
    fi
}
phase_done() {  # phase_done NAME: record its duration; stop at the first failed phase
    local now
    now=$(date +%s)
    summary+=("$(printf '%-58s %4ss' "$1" $((now - phase_t0)))")
    phase_t0=$now
    if [ "$failed" != 0 ]; then
        echo "run-ha: stopping after a failed check in: $1"
        exit 1
    fi
}
# play OUT [ARGS...]: ansible-playbook in its own session (killed by the trap);
# sets play_rc.
play() {
    local out="$1"
    shift
    play_rc=0
    setsid ansible-playbook -i "$inv" "$@" >"$out" 2>&1 &
    child=$!
    wait "$child" || play_rc=$?
    child=""
}
show_tail() {  # on failure: what the play said
    echo "  (exit status $play_rc; last lines of $1:)"
    tail -n 25 "$1" | sed 's/^/    /'
    return 1
}
expect_rc() {  # expect_rc RC OUT
    [ "$play_rc" = "$1" ] || show_tail "$2"
}
recap() {  # recap OUT HOST FIELD: a PLAY RECAP counter (empty when the host is absent)
    sed -n "s/^$2 *:.* $3=\([0-9]*\) .*/\1/p" "$1" | tail -n 1
}
harness() { "$python" "$harness" "$@"; }
quiet() { "$@" >/dev/null 2>&1; }
etcd_pids() { cat "$state"/node-*.pid; }
# cert_pem NODE NAME: PEM of node K's certificate NAME (etcd/server, apiserver, admin.conf, ...)
cert_pem() {
    case "$2" in
    *.conf) sed -n 's/^ *client-certificate-data: *//p' "$pki/node-$1/$2" | base64 -d ;;
    *) cat "$pki/node-$1/pki/$2.crt" ;;
    esac
}
cert_serial() { cert_pem "$1" "$2" | openssl x509 -noout -serial | cut -d= -f2; }
cert_not_after() { date -d "$(cert_pem "$1" "$2" | openssl x509 -noout -enddate | cut -d= -f2)" +%s; }
# served_serial NODE PORT: serial of the certificate etcd node K presents on PORT
served_serial() {
    local c="$pki/node-$1/pki/etcd"
    timeout 10 openssl s_client -connect "127.0.1.$1:$2" -CAfile "$c/ca.crt" \
        -cert "$c/healthcheck-client.crt" -key "$c/healthcheck-client.key" </dev/null 2>/dev/null \
        | openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}
# norm: a serial as one form (openssl prints upper-case hex, the agent may not)
norm() { tr -d ':' | tr 'a-f' 'A-F' | sed 's/^0*//'; }
# served_after_restart NODE ENDPOINT [SKIP]: the serial openssl saw on etcd node K's
# ENDPOINT (etcd-client, etcd-peer) right after its restart (ha/restart-etcd.sh), in
# served.log past line SKIP
served_after_restart() {  # [SKIP [NTH]]: the NTH such restart (default 1)
    tail -n +$((${3:-0} + 1)) "$w/served.log" 2>/dev/null | sed -n "s/^node$1 $2 //p" | sed -n "${4:-1}p" | norm
}
# agent_proof OUT NODE ENDPOINT: the serial the agent's served proof reported as current
# in node K's summary line
agent_proof() {
    sed -n "s/^ *\"msg\": \"node$2: renewed .*serving: .*$3 \([0-9A-Fa-f:]*\) (current).*/\1/p" "$1" | head -n 1 | norm
}
# shellcheck source=ha/quorum.sh
. "$here/ha/quorum.sh"
report_hosts() {  # the hosts of check_expiration's JSON report
    "$python" -c 'import json,sys; print(" ".join(sorted(json.load(open(sys.argv[1]))["hosts"])))' "$w/kubecert-expiration.json"
}
table_has_nodes() {  # every node has rows in the text report
    local k
    for k in 1 2 3; do grep -q "^node$k  *etcd-server  *cert " "$w/kubecert-expiration.txt" || return 1; done
}
# would_renew OUT: "HOST COUNT" per host, the would-renew diffs of the check-mode run
would_renew() {
    "$python" - "$1" <<'PY'
import re, sys
count, seen = 0, {}
for line in open(sys.argv[1]):
    if re.match(r"\+\+\+ after: \S+ \(would-renew\)", line):
        count += 1
    m = re.match(r"changed: \[(node\d)\]", line)
    if m and count:
        seen[m.group(1)] = seen.get(m.group(1), 0) + count
        count = 0
print(" ".join("%s=%d" % kv for kv in sorted(seen.items())))
PY
}

phase_t0=$(date +%s)
summary=()

# --- setup
note "setup: demo PKI (3 nodes, leaves expire in 20d), etcd cluster, inventory in $w"
bin="$(ha_kubecert_bin)"
ha_pki "$bin" "$pki" 20d
# A peer certificate for node 2 from a foreign CA, with node 2's SANs (the injection).
PKI_KEYALG=ec bash "$mkpki" ca "$w/foreign" ca foreign-etcd-ca
mkdir -p "$w/foreign/node-2/pki/etcd"
PKI_KEYALG=ec bash "$mkpki" reissue-peer "$w/foreign" 2 "$w/foreign/ca.crt" "$w/foreign/ca.key"
harness start --root "$pki" --state "$state" --nodes 3 --port-base 0 >"$w/start.json"
port="$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_port"])' "$state/cluster.json")"
peer_port=$((port + 1))
mkdir -p "$(dirname "$inv")" "$w/backups" "$w/bin"
ha_inventory "$inv" "$bin" "$pki" "$w" "$port" "$state" "$harness"
echo "   etcd members https://127.0.1.{1,2,3}:$port (peers :$peer_port), kubecert $bin"
names=(etcd/server etcd/peer apiserver admin.conf)
declare -A serial0 notafter0
for k in 1 2 3; do
    ha_tree "$pki/node-$k" >"$w/tree0-node$k"
    for n in "${names[@]}"; do
        serial0[$k/$n]="$(cert_serial "$k" "$n")"
        notafter0[$k/$n]="$(cert_not_after "$k" "$n")"
    done
done
check "etcd cluster of 3 members healthy over mutual TLS" quiet harness health --state "$state" --node 2
phase_done "setup (PKI, real 3-member etcd cluster)"

# --- 1. check_expiration before the renewal
note "1. check_expiration.yml, threshold 30d, certificates expiring in 20d"
play "$w/check1.out" "$KUBECERT_COLLECTION/playbooks/check_expiration.yml" -e kubecert_threshold_days=30 -e "kubecert_report_dir=$w"
check "the playbook fails (exit 2)" expect_rc 2 "$w/check1.out"
check "the report has all three nodes" test "$(report_hosts)" = "node1 node2 node3"
check "the table lists every node's certificates" table_has_nodes
check "the failure names what expires, on every node" grep -q \
    "33 certificate(s) expire within 30 days or have expired: node1 admin.conf,.* node2 etcd-peer,.* node3 super-admin.conf" "$w/check1.out"
check "kubelet.conf (kubelet-rotated) is not due" grep -q '^node2  *kubelet.conf  *kubelet .* ok ' "$w/kubecert-expiration.txt"
phase_done "1. check_expiration before renewal: fails, 3 nodes"

# --- 2. check mode
note "2. renew_ha.yml --check --diff"
pids_before="$(etcd_pids)"
play "$w/checkmode.out" "$KUBECERT_COLLECTION/playbooks/renew_ha.yml" --check --diff
check "the check-mode run succeeds" expect_rc 0 "$w/checkmode.out"
check "every node reports its 11 certificates as would-renew" test "$(would_renew "$w/checkmode.out")" = "node1=11 node2=11 node3=11"
check "the diff shows NotAfter and serial before and after" grep -q '^-serial: ' "$w/checkmode.out"
check "every node reported as changed: the renewal and the restart it would do" test "$(recap "$w/checkmode.out" node1 changed)$(recap "$w/checkmode.out" node2 changed)$(recap "$w/checkmode.out" node3 changed)" = 222
for k in 1 2 3; do
    check "node$k: check mode says what it would restart" grep -q \
        "\"msg\": \"node$k: would renew .*; would restart etcd, kube-apiserver, kube-controller-manager, kube-scheduler" "$w/checkmode.out"
done
for k in 1 2 3; do
    ha_tree "$pki/node-$k" >"$w/tree-check-node$k"
    check "check mode changed no byte on node$k" cmp -s "$w/tree0-node$k" "$w/tree-check-node$k"
done
check "nothing restarted, no backup made" test ! -e "$w/restarts.log" -a -z "$(ls -A "$w/backups")"
check "etcd members not restarted (same pids)" test "$(etcd_pids)" = "$pids_before"
phase_done "2. renew_ha --check --diff: reports, changes nothing"

# --- 3. the rolling renewal
note "3. renew_ha.yml (serial 1), watcher probing quorum every 200 ms"
watch_start "$w/watch-renew.jsonl"
play "$w/renew.out" "$KUBECERT_COLLECTION/playbooks/renew_ha.yml"
watch_stop "$w/watch-renew.jsonl"
check "renew_ha: no watcher sample with fewer than 2 healthy members (200 ms)" quorum_kept "$w/watch-renew.jsonl" "3. renew_ha"
check "renew_ha: the etcd leader handed over its leadership before its stop" leadership_ok "$w/renew.out" "3. renew_ha"
check "the rolling renewal succeeds" expect_rc 0 "$w/renew.out"
for k in 1 2 3; do
    check "node$k changed, not failed" test "$(recap "$w/renew.out" "node$k" changed)" -gt 0 -a "$(recap "$w/renew.out" "node$k" failed)" = 0
done
for k in 1 2 3; do
    check "node$k: the agent's health gate, every etcd member healthy over TLS (summary)" grep -qE \
        "^ *\"msg\": \"node$k: renewed .*; health gate: healthy after [0-9]+ ms: etcd healthy \(3/3 members healthy, quorum ok\)" "$w/renew.out"
    check "node$k: the components that do not run here are reported unreachable, not required" grep -qE \
        "^ *\"msg\": \"node$k: renewed .*serving: .*kube-apiserver \? \(unreachable, not required\)" "$w/renew.out"
done
check "the components restarted node by node, etcd first" diff <(
    for k in 1 2 3; do
        printf 'node%s %s\n' "$k" etcd "$k" "kube-apiserver not running in this test" \
            "$k" "kube-controller-manager not running in this test" "$k" "kube-scheduler not running in this test"
    done) "$w/restarts.log"
for k in 1 2 3; do
    for n in "${names[@]}"; do
        s="$(cert_serial "$k" "$n")"
        check "node$k $n: new serial, later NotAfter (openssl)" \
            test "$s" != "${serial0[$k/$n]}" -a "$(cert_not_after "$k" "$n")" -gt "${notafter0[$k/$n]}"
    done
    check "node$k etcd/server and etcd/peer chain to the etcd CA" \
        quiet openssl verify -CAfile "$pki/node-$k/pki/etcd/ca.crt" "$pki/node-$k/pki/etcd/server.crt" "$pki/node-$k/pki/etcd/peer.crt"
    for pair in etcd-client:etcd/server etcd-peer:etcd/peer; do
        ep="${pair%%:*}" n="${pair#*:}"
        disk="$(cert_serial "$k" "$n" | norm)"
        check "node$k $ep right after its restart (openssl s_client): the new serial of $n on disk, not the old" \
            test "$(served_after_restart "$k" "$ep")" = "$disk" -a "$disk" != "$(norm <<<"${serial0[$k/$n]}")"
        check "node$k $ep: the agent's served proof reported that same serial as current" \
            test "$(agent_proof "$w/renew.out" "$k" "$ep")" = "$disk"
    done
    check "node$k etcd serves its renewed server certificate (end of phase)" test "$(served_serial "$k" "$port")" = "$(cert_serial "$k" etcd/server)"
    check "node$k etcd serves its renewed peer certificate (end of phase)" test "$(served_serial "$k" "$peer_port")" = "$(cert_serial "$k" etcd/peer)"
    check "node$k backed up what it replaced" test "$(find "$w/backups/node-$k" -mindepth 1 -maxdepth 1 -type d | wc -l)" = 1
done
check "etcd cluster healthy after the renewal" quiet harness health --state "$state" --node 3
phase_done "3. renew_ha: 3 nodes renewed, quorum kept"

# --- 4. check_expiration after the renewal
note "4. check_expiration.yml, threshold 30d, after the renewal"
play "$w/check2.out" "$KUBECERT_COLLECTION/playbooks/check_expiration.yml" -e kubecert_threshold_days=30 -e "kubecert_report_dir=$w"
check "the playbook passes" expect_rc 0 "$w/check2.out"
check "it says so" grep -q 'Nothing expires within 30 days' "$w/check2.out"
check "the report has all three nodes" test "$(report_hosts)" = "node1 node2 node3"
check "the table lists every node's certificates" table_has_nodes
check "no row is EXPIRING or EXPIRED" test "$(grep -cE ' (EXPIRING|EXPIRED) ' "$w/kubecert-expiration.txt")" = 0
phase_done "4. check_expiration after renewal: passes, 3 nodes"

# --- 5. idempotence
note "5. renew_ha.yml again, within 30d"
pids_before="$(etcd_pids)"
restarts_before="$(wc -l <"$w/restarts.log")"
for k in 1 2 3; do ha_tree "$pki/node-$k" >"$w/tree3-node$k"; done
play "$w/again.out" "$KUBECERT_COLLECTION/playbooks/renew_ha.yml" -e kubecert_renew_within=30d
check "the second run succeeds" expect_rc 0 "$w/again.out"
for k in 1 2 3; do
    check "node$k: changed=0" test "$(recap "$w/again.out" "node$k" changed)" = 0
    check "node$k: no byte changed" cmp -s "$w/tree3-node$k" <(ha_tree "$pki/node-$k")
done
check "nothing restarted" test "$(wc -l <"$w/restarts.log")" = "$restarts_before" -a "$(etcd_pids)" = "$pids_before"
phase_done "5. renew_ha again: changed=0 everywhere"

# --- 6, 7 and 8. failure injection on node 2
# failure_run NUMBER TITLE ETCD_RESTART_COMMAND MESSAGE FIRST_RESTART: renew_ha within
# 400d (everything is due again) with node 2's etcd restarted by ETCD_RESTART_COMMAND,
# then what must hold after the rollback. MESSAGE: an extended regex the failure message
# must match between "FAILED on node2 at " and " -- Restored"; FIRST_RESTART: node 2's
# first line in restarts.log.
failure_run() {
    local nr="$1" title="$2" command="$3" message="$4" first="$5" k n node3_pid restarts_before
    local -A serial_before
    note "$nr. renew_ha.yml within 400d, node 2's etcd: $title"
    mkdir -p "$w/inventory/host_vars"
    rm -f "$w/injected"
    cat >"$w/inventory/host_vars/node2.yml" <<EOT
# Failure injection (run-ha.sh phase $nr)
kubecert_restart_commands:
  etcd: >-
    $command
EOT
    for k in 1 2 3; do
        ha_tree "$pki/node-$k" >"$w/tree-before$nr-node$k"
        for n in "${names[@]}"; do serial_before[$k/$n]="$(cert_serial "$k" "$n")"; done
    done
    node3_pid="$(cat "$state/node-3.pid")"
    refused_before="$(cat "$state/node-1.log" "$state/node-3.log" | grep -c 'unknown authority' || true)"
    restarts_before="$(wc -l <"$w/restarts.log")"
    watch_start "$w/watch-failure$nr.jsonl"
    # A short health bound: node 2 will not recover by itself.
    play "$w/failure$nr.out" "$KUBECERT_COLLECTION/playbooks/renew_ha.yml" -e kubecert_renew_within=400d -e kubecert_health_timeout=2
    watch_stop "$w/watch-failure$nr.jsonl"
    check "no watcher sample with fewer than 2 healthy members during the failure and the rollback (200 ms)" \
        quorum_kept "$w/watch-failure$nr.jsonl" "$nr. renew_ha failure"
    check "the play fails (exit 2)" expect_rc 2 "$w/failure$nr.out"
    check "a clear message: node, component, what failed, what was restored, health after the rollback" grep -qE \
        "kubecert rolling renew FAILED on node2 at $message -- Restored [0-9]+ files from $w/backups/node-2/[0-9TZ]+\. Restarted etcd, kube-apiserver, kube-controller-manager, kube-scheduler on the restored certificates\. Cluster health after the rollback: OK \(healthy after [0-9]+ ms: etcd healthy \(3/3 members healthy, quorum ok\)\)\. No further node will be touched\." \
        "$w/failure$nr.out"
    check "node1 was renewed before node 2 failed" \
        test "$(cert_serial 1 etcd/server)" != "${serial_before[1/etcd/server]}" -a "$(recap "$w/failure$nr.out" node1 failed)" = 0
    check "node2 rolled back: its files byte-identical to before the run" cmp -s "$w/tree-before$nr-node2" <(ha_tree "$pki/node-2")
    check "node3 untouched: its files byte-identical" cmp -s "$w/tree-before$nr-node3" <(ha_tree "$pki/node-3")
    check "node3 not run and its etcd not restarted" \
        test -z "$(recap "$w/failure$nr.out" node3 ok)" -a "$(cat "$state/node-3.pid")" = "$node3_pid"
    check "node2: the rollout stopped at etcd, then everything restarted on the restored certificates" diff <(
        echo "$first"
        echo "node2 etcd"
        printf 'node2 %s not running in this test\n' kube-apiserver kube-controller-manager kube-scheduler
    ) <(tail -n +$((restarts_before + 1)) "$w/restarts.log" | grep '^node2')
    check "node2 etcd serves its pre-run server certificate" test "$(served_serial 2 "$port")" = "${serial_before[2/etcd/server]}"
    check "node2 etcd serves its pre-run peer certificate" test "$(served_serial 2 "$peer_port")" = "${serial_before[2/etcd/peer]}"
    check "etcd cluster healthy again, all 3 members" quiet harness health --state "$state" --node 2
}
failure_run 6 "restarted with a foreign peer certificate, the restart's health wait fails" \
    "$KUBECERT_COLLECTION/tests/ha/restart-etcd-foreign-peer.sh gate $w/injected $harness $state 2 $w/foreign/node-2/pki/etcd $pki/node-2/pki $w/restarts.log" \
    "Restart the components that read a renewed certificate, and prove they serve it: kubecert restart failed at health:etcd: etcd did not become healthy within 2s.*" \
    "node2 etcd (with a foreign peer certificate)"
check "the injection happened: members 1 and 3 refused node 2's foreign peer certificate" \
    test "$(cat "$state/node-1.log" "$state/node-3.log" | grep -c 'unknown authority')" -gt "$refused_before"
phase_done "6. node 2 restarted on a foreign peer cert (health wait fails): rolled back"
failure_run 7 "restarted with a foreign peer certificate, the restart command fails" \
    "$KUBECERT_COLLECTION/tests/ha/restart-etcd-foreign-peer.sh restart $w/injected $harness $state 2 $w/foreign/node-2/pki/etcd $pki/node-2/pki $w/restarts.log" \
    "Restart the components that read a renewed certificate, and prove they serve it: kubecert restart failed at restart:etcd: restart command failed.*did not rejoin the cluster within 3s.*" \
    "node2 etcd (with a foreign peer certificate)"
check "the injection happened: members 1 and 3 refused node 2's foreign peer certificate" \
    test "$(cat "$state/node-1.log" "$state/node-3.log" | grep -c 'unknown authority')" -gt "$refused_before"
phase_done "7. node 2's restart command fails: rolled back"

# 8: node 2's etcd restarts healthy on a copy of its files taken now (before the run):
# it serves the old serials while the renewed files are on disk.
rm -rf "$w/stale-pki"
mkdir -p "$w/stale-pki"
cp -a "$pki/node-1" "$pki/node-2" "$pki/node-3" "$w/stale-pki/"
stale_server="$(cert_serial 2 etcd/server | norm)" stale_peer="$(cert_serial 2 etcd/peer | norm)"
served_mark="$(wc -l <"$w/served.log")"
failure_run 8 "restarted healthy on a copy of its old certificate files (does not reload)" \
    "$KUBECERT_COLLECTION/tests/ha/restart-etcd-stale.sh $w/injected 2 $w $state $harness $w/stale-pki" \
    "Restart the components that read a renewed certificate, and prove they serve it: kubecert restart failed at served:etcd: etcd was restarted and is healthy but still does not serve the certificate on disk: etcd-client at 127\.0\.1\.2:$port is serving a certificate other than the one on disk \(served serial [0-9A-Fa-f:]+, NotAfter [0-9TZ:-]+; on disk serial [0-9A-Fa-f:]+, NotAfter [0-9TZ:-]+\) — restart etcd; etcd-peer at 127\.0\.1\.2:$peer_port is serving a certificate other than the one on disk .*" \
    "node2 etcd (on a copy of its old certificate files)"
# What the agent said, against what openssl saw on the live ports.
stale_msg="$(grep -o 'etcd-client at 127\.0\.1\.2:[0-9]* is serving a certificate other than the one on disk (served serial [0-9A-Fa-f:]*, NotAfter [^;]*; on disk serial [0-9A-Fa-f:]*' "$w/failure8.out" | head -n 1)"
msg_served="$(sed -n 's/.*(served serial \([0-9A-Fa-f:]*\),.*/\1/p' <<<"$stale_msg" | norm)"
msg_disk="$(sed -n 's/.*on disk serial \([0-9A-Fa-f:]*\)$/\1/p' <<<"$stale_msg" | norm)"
check "openssl: right after the stale restart node 2's client port served its OLD server serial" \
    test "$(served_after_restart 2 etcd-client "$served_mark")" = "$stale_server"
check "openssl: and its peer port its OLD peer serial" \
    test "$(served_after_restart 2 etcd-peer "$served_mark")" = "$stale_peer"
check "the failure message names the served (old) serial openssl saw" test -n "$msg_served" -a "$msg_served" = "$stale_server"
check "and the serial on disk then, a new one (not the old)" test -n "$msg_disk" -a "$msg_disk" != "$stale_server"
check "after the rollback node 2's files hold the old serial again (byte-identical, above) and it serves them" \
    test "$(served_after_restart 2 etcd-client "$served_mark" 2)" = "$stale_server"
phase_done "8. node 2 serves its old certificate after its restart: served proof fails, rolled back"

# --- 9. (issue 17 item 5, cfg17) drift per node and SANs reconciled with each node's own facts
note "9. check_expiration / renew_ha with a kubeadm configuration: node 2's apiserver lacks a certSANs entry"
printf 'apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer:\n  certSANs:\n  - api.ha.example\n' >"$w/kubeadm.yaml"
# Each node's own name and advertise address as host variables (the HA nodes share a hostname
# and have no static pod manifests here).
mkdir -p "$(dirname "$inv")/host_vars"
for k in 1 2 3; do
    printf 'kubecert_node_name: node-%s\nkubecert_advertise_address: 127.0.1.%s\n' "$k" "$k" >"$(dirname "$inv")/host_vars/node$k.yml"
done
# Setup: nodes 1 and 3 already carry the entry (reconciled with the CLI); node 2 does not.
for k in 1 3; do
    quiet "$bin" renew apiserver --config "$w/kubeadm.yaml" --reconcile-sans --node-name "node-$k" \
        --advertise-address "127.0.1.$k" --cert-dir "$pki/node-$k/pki" --kubeconfig-dir "$pki/node-$k" \
        --backup-dir "$w/backups/node-$k"
done
san_of() { cert_pem "$1" apiserver | openssl x509 -noout -ext subjectAltName | tail -n +2 | tr -d ' ' | tr ',' '\n' | sort | tr '\n' ' '; }
check "setup: nodes 1 and 3 have the certSANs entry, node 2 not (openssl)" \
    test "$(san_of 1 | grep -c api.ha.example)$(san_of 2 | grep -c api.ha.example)$(san_of 3 | grep -c api.ha.example)" = 101
for k in 1 2 3; do ha_tree "$pki/node-$k" >"$w/tree9-node$k"; done
play "$w/drift.out" "$KUBECERT_COLLECTION/playbooks/check_expiration.yml" -e kubecert_threshold_days=30 \
    -e "kubecert_report_dir=$w" -e "kubecert_kubeadm_config=$w/kubeadm.yaml"
check "check_expiration passes (drift is a warning)" expect_rc 0 "$w/drift.out"
check "it reports drift on node 2, naming the certificate and the SAN" grep -q \
    "node2: level warn, .*drift from the kubeadm configuration ($w/kubeadm.yaml, node node-2): apiserver (SANs missing: DNS:api.ha.example)" "$w/drift.out"
for k in 1 3; do
    check "and none on node$k" grep -q "node$k: level ok, .*no drift from the kubeadm configuration ($w/kubeadm.yaml, node node-$k)" "$w/drift.out"
done
play "$w/reconcile.out" "$KUBECERT_COLLECTION/playbooks/renew_ha.yml" -e kubecert_reconcile_sans=true \
    -e "kubecert_kubeadm_config=$w/kubeadm.yaml"
check "renew_ha with kubecert_reconcile_sans succeeds" expect_rc 0 "$w/reconcile.out"
check "node2 changed, nodes 1 and 3 not" test "$(recap "$w/reconcile.out" node1 changed)$(recap "$w/reconcile.out" node3 changed)" = 00 -a "$(recap "$w/reconcile.out" node2 changed)" -gt 0
check "node2: only apiserver.crt/.key changed" test "$(diff "$w/tree9-node2" <(ha_tree "$pki/node-2") | awk '/^>/ {print $5}' | sort | tr '\n' ' ')" = "./pki/apiserver.crt ./pki/apiserver.key "
for k in 1 3; do
    check "node$k: no byte changed" cmp -s "$w/tree9-node$k" <(ha_tree "$pki/node-$k")
done
check "node2's apiserver certificate now has DNS:api.ha.example, its own name and address (openssl)" \
    test "$(san_of 2 | grep -c 'DNS:api.ha.example DNS:kubernetes .*DNS:node-2 IPAddress:10.96.0.1 IPAddress:127.0.1.2 ')" = 1
check "and not node 1's (or node 3's) name or address" test "$(san_of 2 | grep -cE 'node-1|node-3|127\.0\.1\.1 |127\.0\.1\.3 ')" = 0
check "node 1 and node 3 keep their own (openssl)" test "$(san_of 1 | grep -c 'DNS:node-1 .*IPAddress:127.0.1.1 ')$(san_of 3 | grep -c 'DNS:node-3 .*IPAddress:127.0.1.3 ')" = 11
check "node2's apiserver certificate chains to its CA" quiet openssl verify -CAfile "$pki/node-2/pki/ca.crt" "$pki/node-2/pki/apiserver.crt"
play "$w/drift2.out" "$KUBECERT_COLLECTION/playbooks/check_expiration.yml" -e kubecert_threshold_days=30 \
    -e "kubecert_report_dir=$w" -e "kubecert_kubeadm_config=$w/kubeadm.yaml"
check "check_expiration: no drift left on any node" test "$(grep -c 'no drift from the kubeadm configuration' "$w/drift2.out")" -ge 3 -a "$(grep -c 'node[123]: level [a-z]*, .*, drift from the kubeadm' "$w/drift2.out")" = 0
rm -rf "$(dirname "$inv")/host_vars"
phase_done "9. drift on node 2 only, reconciled by renew_ha with each node's own facts"

harness stop --state "$state" >/dev/null
rm -rf "$state"
echo
echo "run-ha summary ($passed checks passed, $failed failed, $(($(date +%s) - t_start))s):"
printf '  %s\n' "${summary[@]}"
echo "  quorum watcher (every member, GET /health every 200 ms; no sample may have fewer than 2 healthy):"
printf '    %s\n' "${quorum_notes[@]}"
echo "  only etcd is real here; kube-apiserver, controller-manager and scheduler restarts are logged no-ops"
[ "$failed" = 0 ] || exit 1
# The CA lifecycle (issue 16) on a fresh cluster: renew_ca.yml and the etcd-ca rotation.
echo
"$here/run-ha-ca.sh"
