#!/usr/bin/env bash
# The HA acceptance scenario of the kubecert.pki collection (issue 8), on one
# machine: three inventory hosts node1..node3 (local connection), each with its
# own kubeadm directory from `kubecert demo-pki DIR --nodes 3 --expires-in 20d`
# (shared CAs, per-node leaves), its own loopback address 127.0.1.K, and a REAL
# 3-member etcd cluster (tests/harness/etcd_cluster.py) running on those
# certificates with mutual TLS on client and peer ports.
#
# The role restarts components with the `command` method: etcd is restarted for
# real (`etcd_cluster.py restart-node --node K`, which reads the certificates
# now on disk and fails unless the member rejoins); kube-apiserver,
# kube-controller-manager and kube-scheduler do not run here, so their restart
# command only logs. Only etcd is real. The role's health gate is the real one:
# `etcdctl endpoint health --cluster` and `member list` over TLS with that
# node's healthcheck-client certificate, every member healthy.
#
# Phases, in order, on the same cluster:
#   1. check_expiration, threshold 30d, certs expiring in 20d: fails, lists all nodes
#   2. renew_ha --check --diff: reports the changes of every node, changes no byte
#   3. renew_ha: every node renewed (openssl: new serials, later NotAfter; etcd
#      serves the new certs), no moment without quorum (watcher, 200 ms probes)
#   4. check_expiration, threshold 30d: passes, lists all nodes
#   5. renew_ha again (within 30d): changed=0 on every host, nothing restarted
#   6. failure injection (within 400d, so everything is due again): node 2's
#      etcd restarts with a peer cert from a foreign CA and does not rejoin; the
#      health gate fails, node 2 is rolled back byte for byte and healthy again,
#      node 1 stays renewed, node 3 is untouched, the play fails with a clear
#      message, quorum never lost
#   7. the same, but the restart command itself fails (restart-node's exit
#      status when the member does not rejoin) instead of the health gate
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
watch_start() { harness watch --state "$state" --out "$1" --interval 0.2 --detach >/dev/null; }
watch_stop() {  # watch_stop OUT: stop the watcher, keep its summary in $w/last-watch.json
    harness watch-stop --state "$state" --out "$1" --assert-quorum >"$w/last-watch.json"
}
watch_field() { "$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"][sys.argv[2]])' "$w/last-watch.json" "$1"; }
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
watch_notes=()

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
# The role's etcdctl: the real one, with its command lines logged.
cat >"$w/bin/etcdctl" <<EOF
#!/bin/sh
echo "\$*" >>"$w/etcdctl.log"
exec "$(command -v etcdctl)" "\$@"
EOF
chmod +x "$w/bin/etcdctl"
HA_ETCDCTL="$w/bin/etcdctl" ha_inventory "$inv" "$bin" "$pki" "$w" "$port" "$state" "$harness"
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
check "every node reported as changed" test "$(recap "$w/checkmode.out" node1 changed)$(recap "$w/checkmode.out" node2 changed)$(recap "$w/checkmode.out" node3 changed)" = 111
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
check "no moment without quorum while renewing (watcher)" watch_stop "$w/watch-renew.jsonl"
watch_notes+=("$(watch_field probes) probes, fewest members healthy $(watch_field min_healthy_members)/3 during phase 3")
check "the rolling renewal succeeds" expect_rc 0 "$w/renew.out"
for k in 1 2 3; do
    check "node$k changed, not failed" test "$(recap "$w/renew.out" "node$k" changed)" -gt 0 -a "$(recap "$w/renew.out" "node$k" failed)" = 0
done
for k in 1 2 3; do
    check "node$k's health checks: every member, over TLS with node$k's healthcheck-client cert" grep -q -- \
        "--endpoints=https://127.0.1.$k:$port,.* --cacert=$pki/node-$k/pki/etcd/ca.crt --cert=$pki/node-$k/pki/etcd/healthcheck-client.crt --key=$pki/node-$k/pki/etcd/healthcheck-client.key .*endpoint health --cluster" \
        "$w/etcdctl.log"
done
check "the health gate passed on every node" test "$(grep -c 'Cluster healthy after the renewal: etcd 3/3 members healthy, quorum ok' "$w/renew.out")" = 3
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
    check "node$k etcd serves its renewed server certificate" test "$(served_serial "$k" "$port")" = "$(cert_serial "$k" etcd/server)"
    check "node$k etcd serves its renewed peer certificate" test "$(served_serial "$k" "$peer_port")" = "$(cert_serial "$k" etcd/peer)"
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

# --- 6 and 7. failure injection on node 2
# failure_run MODE NUMBER TITLE EXPECTED_MESSAGE: renew_ha within 400d (everything
# is due again) with node 2's etcd restarted on a foreign peer certificate
# (ha/restart-etcd-foreign-peer.sh MODE), then what must hold after the rollback.
failure_run() {
    local mode="$1" nr="$2" title="$3" message="$4" k n node3_pid refused_before restarts_before
    local -A serial_before
    note "$nr. renew_ha.yml within 400d, node 2's etcd restarted on a foreign peer certificate ($title)"
    mkdir -p "$w/inventory/host_vars"
    rm -f "$w/injected"
    cat >"$w/inventory/host_vars/node2.yml" <<EOT
# Failure injection (run-ha.sh phase $nr): see ansible/tests/ha/restart-etcd-foreign-peer.sh
kubecert_restart_commands:
  etcd: >-
    $KUBECERT_COLLECTION/tests/ha/restart-etcd-foreign-peer.sh $mode $w/injected $harness $state 2
    $w/foreign/node-2/pki/etcd $pki/node-2/pki $w/restarts.log
EOT
    for k in 1 2 3; do
        ha_tree "$pki/node-$k" >"$w/tree-before$nr-node$k"
        for n in "${names[@]}"; do serial_before[$k/$n]="$(cert_serial "$k" "$n")"; done
    done
    node3_pid="$(cat "$state/node-3.pid")"
    refused_before="$(cat "$state/node-1.log" "$state/node-3.log" | grep -c 'unknown authority' || true)"
    restarts_before="$(wc -l <"$w/restarts.log")"
    watch_start "$w/watch-failure$nr.jsonl"
    # A shorter health gate (3 polls): node 2 will not recover by itself.
    play "$w/failure$nr.out" "$KUBECERT_COLLECTION/playbooks/renew_ha.yml" -e kubecert_renew_within=400d -e kubecert_health_timeout=2
    check "no moment without quorum during the failure and the rollback (watcher)" watch_stop "$w/watch-failure$nr.jsonl"
    watch_notes+=("$(watch_field probes) probes, fewest members healthy $(watch_field min_healthy_members)/3 during phase $nr")
    check "the play fails (exit 2)" expect_rc 2 "$w/failure$nr.out"
    check "the injection happened: members 1 and 3 refused node 2's foreign peer certificate" \
        test "$(cat "$state/node-1.log" "$state/node-3.log" | grep -c 'unknown authority')" -gt "$refused_before"
    check "a clear message: what failed, what was restored, health after the rollback" grep -q \
        "kubecert rolling renew FAILED on node2 at $message -- Restored [0-9]* files from $w/backups/node-2/[0-9TZ]*\. Cluster health after the rollback: OK (etcd 3/3 members healthy, quorum ok; kube-apiserver not checked)\. No further node will be touched\." \
        "$w/failure$nr.out"
    check "node1 was renewed before node 2 failed" \
        test "$(cert_serial 1 etcd/server)" != "${serial_before[1/etcd/server]}" -a "$(recap "$w/failure$nr.out" node1 failed)" = 0
    check "node2 rolled back: its files byte-identical to before the run" cmp -s "$w/tree-before$nr-node2" <(ha_tree "$pki/node-2")
    check "node3 untouched: its files byte-identical" cmp -s "$w/tree-before$nr-node3" <(ha_tree "$pki/node-3")
    check "node3 not run and its etcd not restarted" \
        test -z "$(recap "$w/failure$nr.out" node3 ok)" -a "$(cat "$state/node-3.pid")" = "$node3_pid"
    check "node2 restarted on the restored certificates after the rollback" diff <(
        echo "node2 etcd (with a foreign peer certificate)"
        printf 'node2 %s not running in this test\n' kube-apiserver kube-controller-manager kube-scheduler
        echo "node2 etcd"
        printf 'node2 %s not running in this test\n' kube-apiserver kube-controller-manager kube-scheduler
    ) <(tail -n +$((restarts_before + 1)) "$w/restarts.log" | grep '^node2')
    check "node2 etcd serves its pre-run server certificate" test "$(served_serial 2 "$port")" = "${serial_before[2/etcd/server]}"
    check "node2 etcd serves its pre-run peer certificate" test "$(served_serial 2 "$peer_port")" = "${serial_before[2/etcd/peer]}"
    check "etcd cluster healthy again, all 3 members" quiet harness health --state "$state" --node 2
    phase_done "$nr. failure on node 2 ($title): rolled back"
}
failure_run gate 6 "the health gate fails" \
    "Health | the cluster is healthy (after the renewal): Cluster not healthy after the renewal on node2: etcd 2/3 members healthy, quorum ok, unhealthy: https://127.0.1.2:$port; kube-apiserver not checked"
failure_run restart 7 "the restart fails" \
    "Restart | run the restart command of each component: One or more items failed (etcd: etcd node 2 did not rejoin the cluster within 3s after its restart (rc 1))"

harness stop --state "$state" >/dev/null
rm -rf "$state"
echo
echo "run-ha summary ($passed checks passed, $failed failed, $(($(date +%s) - t_start))s):"
printf '  %s\n' "${summary[@]}"
echo "  quorum watcher (200 ms probes), 0 moments without quorum:"
printf '    %s\n' "${watch_notes[@]}"
echo "  only etcd is real here; kube-apiserver, controller-manager and scheduler restarts are logged no-ops"
[ "$failed" = 0 ]
