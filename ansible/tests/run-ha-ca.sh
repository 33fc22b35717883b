#!/usr/bin/env bash
# The CA lifecycle on the HA harness (issue 16): three inventory hosts node1..node3 (local
# connection, each with its own kubeadm directory from `kubecert demo-pki --nodes 3`) and a
# REAL 3-member etcd cluster with mutual TLS on client and peer ports
# (tests/harness/etcd_cluster.py), as in run-ha.sh, which calls this script.
#
#   A. renew_ca.yml (every CA, validity 175200h): the same bytes on all three nodes, a new
#      serial and the NotAfter asked, the join hash unchanged (openssl pipeline), every leaf
#      and kubeconfig client certificate still verifies, the kubeconfigs' CA data updated,
#      etcd restarted node by node, no watcher sample (200 ms) with fewer than 2 healthy
#      members: the agent moves etcd's leadership off a member before stopping it.
#   B. rotate_ca.yml -e kubecert_ca=etcd-ca, phase by phase (stage, then promote and
#      distrust), every member restarted in each phase; a watcher probes every member every
#      200 ms over mutual TLS with a client chain valid across the whole rotation (a leaf of
#      the new CA plus the new CA cross-signed by the old one) and its log must hold no sample
#      with fewer than 2 healthy members; after promote etcdctl with a client certificate of
#      the NEW CA works; after distrust one of the OLD CA is refused (the TLS error asserted).
#      Skipped, saying so, when the agent has no `ca rotate`.
#
# Usage: ansible/tests/run-ha-ca.sh   (run-ha.sh runs it after its own scenario)
# Environment: as run-ha.sh (KUBECERT_VENV, KUBECERT_BIN, KUBECERT_HA_KEEP=1).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=ha/lib.sh
. "$here/ha/lib.sh"
kubecert_use_venv ansible-playbook python3
for tool in etcd etcdctl openssl setsid; do
    command -v "$tool" >/dev/null || { echo "run-ha-ca: SKIPPED, missing $tool"; [ "${CI:-}" != true ]; exit $?; }
done

t_start=$(date +%s)
harness="$KUBECERT_REPO/tests/harness/etcd_cluster.py"
python="$(command -v python3)"
w="$(mktemp -d "${TMPDIR:-/tmp}/kubecert-ha-ca.XXXXXX")"
# etcd's data dirs on tmpfs when there is one: a slow fdatasync of a shared disk (> 1 s) makes
# etcd's own /health answer false on the members waiting for it, which is not what this tests.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    state="$(mktemp -d /dev/shm/kubecert-ha-ca-etcd.XXXXXX)"
else
    state="$w/etcd"
fi
pki="$w/pki"
inv="$w/inventory/hosts.yml"
child=""
passed=0
failed=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$child" ]; then
        kill -TERM -- "-$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    if [ -e "$state" ]; then
        "$python" "$harness" stop --state "$state" >/dev/null 2>&1 || true
        [ "$state" = "$w/etcd" ] || { cp -r "$state" "$w/etcd" 2>/dev/null; rm -rf "$state"; }
    fi
    if [ "$rc" != 0 ] || [ "$failed" != 0 ] || [ "${KUBECERT_HA_KEEP:-0}" = 1 ]; then
        echo "run-ha-ca: work directory kept: $w"
    else
        rm -rf "$w"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export ANSIBLE_COLLECTIONS_PATH="$w/collections" ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0
export ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_DEPRECATION_WARNINGS=0 ANSIBLE_LOCAL_TEMP="$w/ansible-tmp"
ha_collections_path "$w/collections"

note() { echo "== $*"; }
check() {
    if "${@:2}"; then echo "ok   $1"; passed=$((passed + 1)); else echo "FAIL $1"; failed=$((failed + 1)); fi
}
phase_t0=$(date +%s)
summary=()
phase_done() {
    local now
    now=$(date +%s)
    summary+=("$(printf '%-62s %4ss' "$1" $((now - phase_t0)))")
    phase_t0=$now
    if [ "$failed" != 0 ]; then echo "run-ha-ca: stopping after a failed check in: $1"; exit 1; fi
}
play() {  # play OUT ARGS...: sets play_rc
    local out="$1"
    shift
    play_rc=0
    setsid ansible-playbook -i "$inv" "$@" >"$out" 2>&1 &
    child=$!
    wait "$child" || play_rc=$?
    child=""
}
expect_rc() {
    [ "$play_rc" = "$1" ] && return 0
    echo "  (exit status $play_rc; last lines of $2:)"
    tail -n 30 "$2" | sed 's/^/    /'
    return 1
}
harness() { "$python" "$harness" "$@"; }
quiet() { "$@" >/dev/null 2>&1; }
join_hash() {  # kubeadm's discovery hash of the first certificate of a PEM file, with openssl
    openssl x509 -pubkey -noout -in "$1" | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1
}
kc_ca() { sed -n 's/^ *certificate-authority-data: *//p' "$1" | base64 -d; }
kc_cert() { sed -n 's/^ *client-certificate-data: *//p' "$1" | base64 -d; }
# shellcheck source=ha/quorum.sh
. "$here/ha/quorum.sh"
kc_ok() {  # kc_ok K CONF: the kubeconfig's CA data is node K's ca.crt and its client certificate verifies
    local p="$pki/node-$1/pki"
    cmp -s <(kc_ca "$pki/node-$1/$2") "$p/ca.crt" && quiet openssl verify -CAfile "$p/ca.crt" <(kc_cert "$pki/node-$1/$2")
}
# tls_health CACERT CERT KEY K: GET /health on member K over mutual TLS: "healthy" or the error
tls_health() {
    "$python" - "$@" "$port" <<'PY'
import json, ssl, sys, http.client
cacert, cert, key, k, port = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cacert)
ctx.load_cert_chain(cert, key)
try:
    conn = http.client.HTTPSConnection("127.0.1." + k, int(port), context=ctx, timeout=5)
    conn.request("GET", "/health")
    body = conn.getresponse().read().decode()
    print("healthy" if json.loads(body).get("health") in ("true", True) else "unhealthy: " + body)
except (OSError, ssl.SSLError, http.client.HTTPException) as e:
    print("%s: %s" % (type(e).__name__, e))
PY
}
refused_old() {  # refused_old K: member K refuses the old-CA client certificate with a TLS alert
    tls_health "$w/rot/new-ca.crt" "$w/old-client/healthcheck-client.crt" "$w/old-client/healthcheck-client.key" "$1" |
        tee -a "$w/old-refused.out" | grep -q 'SSLV3_ALERT_BAD_CERTIFICATE'
}

note "setup: demo PKI (3 nodes), real 3-member etcd cluster, inventory in $w"
bin="$(ha_kubecert_bin)"
ha_pki "$bin" "$pki" 300d
harness start --root "$pki" --state "$state" --nodes 3 --port-base 0 >"$w/start.json"
port="$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_port"])' "$state/cluster.json")"
mkdir -p "$(dirname "$inv")" "$w/backups"
ha_inventory "$inv" "$bin" "$pki" "$w" "$port" "$state" "$harness"
endpoints="https://127.0.1.1:$port,https://127.0.1.2:$port,https://127.0.1.3:$port"
check "etcd cluster of 3 members healthy over mutual TLS" quiet harness health --state "$state" --node 1
cas=(ca.crt front-proxy-ca.crt etcd/ca.crt)
declare -A hash0 sha0
for f in "${cas[@]}"; do
    hash0[$f]="$(join_hash "$pki/node-1/pki/$f")"
    sha0[$f]="$(sha256sum <"$pki/node-1/pki/$f" | cut -d' ' -f1)"
done
phase_done "setup"

# --- A. same-key renewal of every CA
note "A. renew_ca.yml, every CA, validity 175200h"
watch_start "$w/watch-renew.jsonl"
play "$w/renew-ca.out" "$KUBECERT_COLLECTION/playbooks/renew_ca.yml" -e kubecert_ca_validity=175200h
watch_stop "$w/watch-renew.jsonl"
check "renew_ca.yml succeeds" expect_rc 0 "$w/renew-ca.out"
check "renew_ca: no watcher sample with fewer than 2 healthy members (200 ms)" quorum_kept "$w/watch-renew.jsonl" "A. renew_ca"
check "renew_ca: the etcd leader handed over its leadership before its stop" leadership_ok "$w/renew-ca.out" "A. renew_ca"
want_end=$(($(date +%s) + 175200 * 3600))
for f in "${cas[@]}"; do
    s1="$(sha256sum <"$pki/node-1/pki/$f" | cut -d' ' -f1)"
    check "$f: renewed (new bytes on node1)" test "$s1" != "${sha0[$f]}"
    check "$f: identical bytes on all three nodes" test \
        "$(sha256sum <"$pki/node-2/pki/$f" | cut -d' ' -f1) $(sha256sum <"$pki/node-3/pki/$f" | cut -d' ' -f1)" = "$s1 $s1"
    check "$f: join hash unchanged (openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum)" \
        test "$(join_hash "$pki/node-2/pki/$f")" = "${hash0[$f]}"
    end=$(date -d "$(openssl x509 -noout -enddate -in "$pki/node-3/pki/$f" | cut -d= -f2)" +%s)
    check "$f: NotAfter is now + 175200h (within 10 minutes)" test $((end - want_end)) -lt 600 -a $((want_end - end)) -lt 600
done
for k in 1 2 3; do
    p="$pki/node-$k/pki"
    check "node$k: every leaf verifies against its renewed CA (openssl verify)" quiet sh -c "
        openssl verify -CAfile '$p/ca.crt' '$p/apiserver.crt' '$p/apiserver-kubelet-client.crt' &&
        openssl verify -CAfile '$p/front-proxy-ca.crt' '$p/front-proxy-client.crt' &&
        openssl verify -CAfile '$p/etcd/ca.crt' '$p/etcd/server.crt' '$p/etcd/peer.crt' '$p/etcd/healthcheck-client.crt' '$p/apiserver-etcd-client.crt'"
    for conf in admin.conf controller-manager.conf scheduler.conf; do
        check "node$k $conf: client certificate verifies, CA data is the renewed ca.crt" kc_ok "$k" "$conf"
    done
done
check "etcd restarted node by node" test "$(grep -c ' etcd$' "$w/restarts.log")" = 3 -a \
    "$(grep ' etcd$' "$w/restarts.log" | tr '\n' ' ')" = "node1 etcd node2 etcd node3 etcd "
check "etcd cluster healthy after the renewal, with the renewed CA" quiet harness health --state "$state" --node 3
phase_done "A. renew_ca: same bytes on 3 nodes, join hash unchanged"

# --- B. rotation of etcd-ca to a new key
if ! "$bin" ca rotate --help >/dev/null 2>&1; then
    echo "run-ha-ca: B. SKIPPED: $bin has no \`ca rotate\` (issue 16 item 3 not in this build)"
    summary+=("B. rotate_ca etcd-ca: SKIPPED (no ca rotate in the agent)")
else
    note "B. rotate_ca.yml -e kubecert_ca=etcd-ca, phase by phase"
    e1="$pki/node-1/pki/etcd"
    mkdir -p "$w/old-client" "$w/rot"
    cp "$e1/healthcheck-client.crt" "$e1/healthcheck-client.key" "$e1/ca.crt" "$w/old-client/"
    # stage: the watcher uses the node's (old-CA) credentials; nothing is signed by the new CA yet.
    watch_start "$w/watch-stage.jsonl" --cacert-file "$w/old-client/ca.crt" \
        --cert-file "$w/old-client/healthcheck-client.crt" --key-file "$w/old-client/healthcheck-client.key"
    restarts0=$(wc -l <"$w/restarts.log")
    play "$w/rotate-stage.out" "$KUBECERT_COLLECTION/playbooks/rotate_ca.yml" -e kubecert_ca=etcd-ca \
        -e '{"kubecert_rotate_phases": ["stage"]}'
    watch_stop "$w/watch-stage.jsonl"
    check "stage succeeds on every node" expect_rc 0 "$w/rotate-stage.out"
    check "stage: no watcher sample with fewer than 2 healthy members (200 ms)" quorum_kept "$w/watch-stage.jsonl" "B. stage"
    check "stage: the etcd leader handed over its leadership before its stop" leadership_ok "$w/rotate-stage.out" "B. stage"
    check "stage: every member restarted, node by node" test \
        "$(tail -n +$((restarts0 + 1)) "$w/restarts.log" | grep ' etcd$' | tr '\n' ' ')" = "node1 etcd node2 etcd node3 etcd "
    check "stage: the same new CA staged on every node" test \
        "$(cat "$pki"/node-*/pki/etcd/ca.next.crt | sha256sum)" = "$(cat "$e1/ca.next.crt" "$e1/ca.next.crt" "$e1/ca.next.crt" | sha256sum)"
    cp "$e1/ca.next.crt" "$w/rot/new-ca.crt"
    check "stage: the controller's copy of the new CA key is gone" test -z "$(ls -d "${TMPDIR:-/tmp}"/kubecert-rotate-* 2>/dev/null)"
    # A client chain valid across the rotation: a leaf of the new CA, plus the new CA
    # cross-signed by the old one (same subject and key); servers verify against old+new.
    (
        cd "$w/rot"
        # The cross certificate carries the new CA's own SKI (the agent's, which need not be
        # openssl's hash), so that the leaf's AKID points at it.
        ski="$(openssl x509 -in "$e1/ca.next.crt" -noout -ext subjectKeyIdentifier | tail -n 1 | tr -d ' ')"
        openssl x509 -x509toreq -in "$e1/ca.next.crt" -signkey "$e1/ca.next.key" -out cross.csr 2>/dev/null
        openssl x509 -req -in cross.csr -CA "$w/old-client/ca.crt" -CAkey "$e1/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
            -days 30 -sha256 -extfile <(printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=%s\n' "$ski") \
            -out cross.crt 2>/dev/null
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out watcher.key 2>/dev/null
        openssl req -new -key watcher.key -subj /CN=kubecert-rotation-watcher -out watcher.csr
        openssl x509 -req -in watcher.csr -CA "$e1/ca.next.crt" -CAkey "$e1/ca.next.key" -set_serial "0x$(openssl rand -hex 8)" \
            -days 30 -sha256 -extfile <(printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n') \
            -out watcher.crt 2>/dev/null
        cat watcher.crt cross.crt >watcher-chain.crt
        cat "$w/old-client/ca.crt" new-ca.crt >trust.crt
    )
    check "the watcher's chain verifies against the old CA alone and the new CA alone" quiet sh -c "
        openssl verify -CAfile '$w/old-client/ca.crt' -untrusted '$w/rot/cross.crt' '$w/rot/watcher.crt' &&
        openssl verify -CAfile '$w/rot/new-ca.crt' '$w/rot/watcher.crt'"
    watch_start "$w/watch-rotate.jsonl" --cacert-file "$w/rot/trust.crt" --cert-file "$w/rot/watcher-chain.crt" \
        --key-file "$w/rot/watcher.key"
    # promote
    restarts0=$(wc -l <"$w/restarts.log")
    play "$w/rotate-promote.out" "$KUBECERT_COLLECTION/playbooks/rotate_ca.yml" -e kubecert_ca=etcd-ca \
        -e '{"kubecert_rotate_phases": ["promote"]}'
    check "promote succeeds on every node" expect_rc 0 "$w/rotate-promote.out"
    check "promote: the etcd leader handed over its leadership before its stop" leadership_ok "$w/rotate-promote.out" "B. promote"
    check "promote: every member restarted, node by node" test \
        "$(tail -n +$((restarts0 + 1)) "$w/restarts.log" | grep ' etcd$' | tr '\n' ' ')" = "node1 etcd node2 etcd node3 etcd "
    for k in 1 2 3; do
        check "node$k: etcd leaves signed by the NEW CA (openssl verify against it alone)" quiet openssl verify \
            -CAfile "$w/rot/new-ca.crt" "$pki/node-$k/pki/etcd/server.crt" "$pki/node-$k/pki/etcd/peer.crt" \
            "$pki/node-$k/pki/etcd/healthcheck-client.crt" "$pki/node-$k/pki/apiserver-etcd-client.crt"
    done
    check "after promote: etcdctl with a client certificate of the NEW CA works on every member" quiet env ETCDCTL_API=3 \
        etcdctl --endpoints="$endpoints" --cacert="$w/rot/trust.crt" --cert="$pki/node-2/pki/etcd/healthcheck-client.crt" \
        --key="$pki/node-2/pki/etcd/healthcheck-client.key" --command-timeout=5s endpoint health
    check "after promote: the OLD-CA client certificate still works (both trusted until distrust)" quiet env ETCDCTL_API=3 \
        etcdctl --endpoints="$endpoints" --cacert="$w/rot/trust.crt" --cert="$w/old-client/healthcheck-client.crt" \
        --key="$w/old-client/healthcheck-client.key" --command-timeout=5s endpoint health
    # distrust
    restarts0=$(wc -l <"$w/restarts.log")
    play "$w/rotate-distrust.out" "$KUBECERT_COLLECTION/playbooks/rotate_ca.yml" -e kubecert_ca=etcd-ca \
        -e '{"kubecert_rotate_phases": ["distrust"]}'
    watch_stop "$w/watch-rotate.jsonl"
    check "distrust succeeds on every node" expect_rc 0 "$w/rotate-distrust.out"
    check "distrust: the etcd leader handed over its leadership before its stop" leadership_ok "$w/rotate-distrust.out" "B. distrust"
    check "distrust: every member restarted, node by node" test \
        "$(tail -n +$((restarts0 + 1)) "$w/restarts.log" | grep ' etcd$' | tr '\n' ' ')" = "node1 etcd node2 etcd node3 etcd "
    check "promote+distrust: no watcher sample with fewer than 2 healthy members (200 ms, client chain valid across the rotation)" \
        quorum_kept "$w/watch-rotate.jsonl" "B. promote+distrust"
    for k in 1 2 3; do
        check "node$k: the old etcd CA is in no bundle (etcd/ca.crt is the new CA alone)" test \
            "$(grep -c 'BEGIN CERTIFICATE' "$pki/node-$k/pki/etcd/ca.crt")-$(join_hash "$pki/node-$k/pki/etcd/ca.crt")" = "1-$(join_hash "$w/rot/new-ca.crt")"
    done
    set +e
    ETCDCTL_API=3 etcdctl --endpoints="https://127.0.1.1:$port" --cacert="$w/rot/new-ca.crt" \
        --cert="$w/old-client/healthcheck-client.crt" --key="$w/old-client/healthcheck-client.key" \
        --command-timeout=5s --dial-timeout=3s endpoint health >"$w/old-refused.out" 2>&1
    old_rc=$?
    set -e
    # etcdctl (gRPC) only says the transport failed; a TLS GET of /health shows the server's alert.
    check "after distrust: etcdctl with the OLD-CA client certificate fails at the transport (exit $old_rc)" \
        sh -c "[ $old_rc != 0 ] && grep -q 'all SubConns are in TransientFailure' '$w/old-refused.out'"
    for k in 1 2 3; do
        check "after distrust: node$k refuses the OLD-CA client certificate (TLS alert bad certificate)" \
            refused_old "$k"
        check "after distrust: node$k accepts a NEW-CA client certificate (GET /health: healthy)" test \
            "$(tls_health "$w/rot/new-ca.crt" "$pki/node-$k/pki/etcd/healthcheck-client.crt" "$pki/node-$k/pki/etcd/healthcheck-client.key" "$k")" = healthy
    done
    check "after distrust: the NEW-CA client certificate works" quiet env ETCDCTL_API=3 \
        etcdctl --endpoints="$endpoints" --cacert="$w/rot/new-ca.crt" --cert="$pki/node-3/pki/etcd/healthcheck-client.crt" \
        --key="$pki/node-3/pki/etcd/healthcheck-client.key" --command-timeout=5s endpoint health
    phase_done "B. rotate_ca etcd-ca: stage, promote, distrust; quorum kept"
fi

harness stop --state "$state" >/dev/null
rm -rf "$state"
echo
echo "run-ha-ca summary ($passed checks passed, $failed failed, $(($(date +%s) - t_start))s):"
printf '  %s\n' "${summary[@]}"
echo "  quorum watcher (every member, GET /health over mutual TLS every 200 ms; no sample may have fewer than 2 healthy):"
printf '    %s\n' "${quorum_notes[@]}"
[ "$failed" = 0 ]
