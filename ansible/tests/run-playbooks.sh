#!/usr/bin/env bash
# Run the collection's playbooks and roles on localhost against the fake agent
# (tests/unit/plugins/fake_agent.py as the kubecert binary, over stdio) and a
# fake etcdctl, and check what they did: the aggregated expiration report, the
# rolling renewal (restarts, health gate, rollback that stops the rollout,
# check mode, static pod manifests) and the install role without systemd.
#
# No kubecert binary, etcd, kubelet or root is needed; the tests against the
# real agent live elsewhere.
#
# Usage: ansible/tests/run-playbooks.sh
# Environment: KUBECERT_VENV as for run-sanity.sh.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kubecert_use_venv ansible-playbook git

dest="$(kubecert_collection_tree)"
root="${dest%/ansible_collections/*}"
trap 'rm -rf "$root"' EXIT
w="$root/work"
mkdir -p "$w"
python="$(command -v python3)"

export ANSIBLE_COLLECTIONS_PATH="$root"
export ANSIBLE_NOCOLOR=1
export ANSIBLE_RETRY_FILES_ENABLED=0
export ANSIBLE_LOCALHOST_WARNING=0
export FAKE_AGENT_LOG="$w/agent.jsonl"
# The fake agent's health and served proof read these (written by the restart commands).
export FAKE_AGENT_HEALTH_FILE="$w/etcd-state"
export FAKE_AGENT_SERVED_FILE="$w/served-state"
export FAKE_AGENT_MANIFESTS_LOG="$w/manifests.log"

cat >"$w/kubecert" <<EOF
#!/bin/sh
exec "$python" "$dest/tests/unit/plugins/fake_agent.py" "\$@"
EOF

# A 3-member cluster whose health is read from $w/etcd-state.
cat >"$w/etcdctl" <<EOF
#!/bin/sh
echo "\$ETCDCTL_API \$*" >>"$w/etcdctl.log"
state=\$(cat "$w/etcd-state" 2>/dev/null || echo healthy)
cmd=""
for a; do case \$a in health) cmd=health;; list) cmd=list;; esac; done
if [ "\$cmd" = health ]; then
  if [ "\$state" = healthy ]; then
    echo '[{"endpoint":"https://10.0.0.1:2379","health":true,"took":"1ms"},{"endpoint":"https://10.0.0.2:2379","health":true,"took":"1ms"},{"endpoint":"https://10.0.0.3:2379","health":true,"took":"1ms"}]'
    exit 0
  fi
  echo '[{"endpoint":"https://10.0.0.1:2379","health":true,"took":"1ms"},{"endpoint":"https://10.0.0.2:2379","health":false,"took":"1ms","error":"context deadline exceeded"},{"endpoint":"https://10.0.0.3:2379","health":true,"took":"1ms"}]'
  echo "Error: unhealthy cluster" >&2
  exit 1
fi
echo '{"header":{},"members":[{"ID":1,"name":"a"},{"ID":2,"name":"b"},{"ID":3,"name":"c"}]}'
EOF
chmod +x "$w/kubecert" "$w/etcdctl"

cat >"$w/inventory.ini" <<EOF
[control_plane]
cp1 ansible_connection=local
cp2 ansible_connection=local
cp3 ansible_connection=local

[all:vars]
ansible_python_interpreter=$python
kubecert_become=false
kubecert_bin_path=$w/kubecert
kubecert_transport=stdio
kubecert_etcdctl=$w/etcdctl
kubecert_restart_method=command
kubecert_restart_command="echo {{ inventory_hostname }} {component} >>$w/restarts.log"
kubecert_restart_settle=0
kubecert_health_delay=1
kubecert_health_timeout=2
kubecert_preflight_timeout=1
EOF

passed=0
failed=0
reset() {
    unset FAKE_AGENT_PKI FAKE_AGENT_DRIFT_NODE
    rm -f "$w/agent.jsonl" "$w/restarts.log" "$w/etcdctl.log" "$w/etcd-state" "$w/broken" "$w/served-state" "$w/manifests.log"
    rm -rf "$w/host_vars" "$w/out.txt" "$w/kubecert-expiration.txt" "$w/kubecert-expiration.json"
}
play() {  # play EXPECTED_RC PLAYBOOK [ARGS...]: run, compare the exit status
    local expected="$1" rc=0
    shift
    # PLAY_INVENTORY: another inventory instead of $w/inventory.ini
    ansible-playbook -i "${PLAY_INVENTORY:-$w/inventory.ini}" "$@" >"$w/out.txt" 2>&1 || rc=$?
    if [ "$rc" != "$expected" ]; then
        echo "  ansible-playbook $* exited $rc, expected $expected:"
        tail -n 40 "$w/out.txt" | sed 's/^/    /'
        return 1
    fi
}
calls() {  # calls: the agent's methods and params, one per line
    [ -e "$w/agent.jsonl" ] || return 0
    "$python" -c 'import json,sys
for line in open(sys.argv[1]):
    r = json.loads(line); print(r["method"], json.dumps(r["params"], sort_keys=True))' "$w/agent.jsonl"
}
not_grep() {  # not_grep PATTERN FILE: PATTERN is not in FILE
    ! grep -q -- "$1" "$2"
}
expect() {  # expect DESCRIPTION COMMAND...: a check inside a scenario
    if ! "${@:2}"; then
        echo "  expected: $1"
        [ -z "${KUBECERT_PLAY_DEBUG:-}" ] || grep -E '"msg"|^ok:|^changed:|^fatal:|^skipping:' "$w/out.txt" | cut -c1-600 | sed 's/^/    | /'
        return 1
    fi
}
scenario() {
    local name="$1"
    shift
    # KUBECERT_SCENARIOS: an extended regex; only the scenarios whose name matches run.
    if [ -n "${KUBECERT_SCENARIOS:-}" ] && ! grep -qE -- "$KUBECERT_SCENARIOS" <<<"$name"; then
        return 0
    fi
    reset
    if "$@"; then
        echo "ok   $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        failed=$((failed + 1))
    fi
}

t_report_ok() {
    play 0 kubecert.pki.check_expiration -e "kubecert_report_dir=$w" -e kubecert_threshold_days=10 &&
    expect "a table row per certificate" grep -q 'cp2  *apiserver  *cert ' "$w/kubecert-expiration.txt" &&
    expect "JSON report with 3 hosts" "$python" -c 'import json,sys
d = json.load(open(sys.argv[1]))
assert sorted(d["hosts"]) == ["cp1", "cp2", "cp3"], d["hosts"].keys()
assert d["failedHosts"] == [] and d["thresholdDays"] == 10.0
assert {r["state"] for r in d["rows"]} == {"ok", "missing"}, d["rows"]' "$w/kubecert-expiration.json"
}
t_report_expiring() {
    play 2 kubecert.pki.check_expiration -e "kubecert_report_dir=$w" -e kubecert_threshold_days=30 &&
    expect "the failure names what expires" grep -q 'certificate(s) expire within 30 days or have expired: cp1 apiserver, cp1 etcd-server' "$w/out.txt" &&
    expect "the table marks it" grep -q 'cp3  *etcd-server .* EXPIRING' "$w/kubecert-expiration.txt"
}
t_report_unreadable_node() {
    # cp4 has no kubecert; cp5 cannot be reached (nothing listens on port 1).
    cat "$w/inventory.ini" - >"$w/inventory-bad.ini" <<EOF

[broken]
cp4 ansible_connection=local kubecert_bin_path=/nonexistent/kubecert
cp5 ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=1 ansible_ssh_common_args='-o ConnectTimeout=5'
EOF
    play 2 kubecert.pki.check_expiration -i "$w/inventory-bad.ini" -e "kubecert_report_dir=$w" -e kubecert_threshold_days=10 &&
    expect "unreadable nodes are reported" grep -q 'No data from cp4, cp5.' "$w/out.txt" &&
    expect "and listed in the table" grep -q '^cp4: NO DATA (.*cannot run' "$w/kubecert-expiration.txt" &&
    expect "the others still are" grep -q '^cp3  *apiserver ' "$w/kubecert-expiration.txt"
}
t_report_limit() {
    play 0 kubecert.pki.check_expiration -l cp2 -e "kubecert_report_dir=$w" -e kubecert_threshold_days=10 &&
    expect "only the limited node" "$python" -c 'import json,sys
d = json.load(open(sys.argv[1]))
assert sorted(d["hosts"]) == ["cp2"] and d["failedHosts"] == [], d' "$w/kubecert-expiration.json"
}
t_report_no_node() {
    play 2 kubecert.pki.check_expiration -e "kubecert_report_dir=$w" -e kubecert_hosts=no_such_group &&
    expect "says so" grep -q 'No node matches no_such_group' "$w/out.txt"
}
t_renew_all_nodes() {
    play 0 kubecert.pki.renew_ha &&
    expect "one renew per node, within 30d" test "$(calls | grep -c '^renew .*"within": "30d"')" = 3 &&
    expect "only the affected components restarted, node by node" diff <(printf '%s\n' 'cp1 etcd' 'cp1 kube-apiserver' 'cp2 etcd' 'cp2 kube-apiserver' 'cp3 etcd' 'cp3 kube-apiserver') "$w/restarts.log" &&
    expect "one restart call per node, by the agent, with the served proof" test "$(calls | grep '^restart ' | grep '"components": \["etcd", "kube-apiserver"\]' | grep '"method": "command"' | grep -c '"served": true')" = 3 &&
    expect "the restart waits kubecert_health_timeout for health, polling every kubecert_health_delay" test "$(calls | grep '^restart ' | grep '"health_timeout_ms": 2000' | grep -c '"poll_interval_ms": 1000')" = 3 &&
    expect "etcd health gate by the agent, on etcd's client address" test "$(calls | grep '^health .*"components": \["etcd"\], "endpoints": \[{"address": "127.0.0.1:2379", "endpoint": "etcd-client"}\]' | grep -c '"timeout_ms": 2000')" = 3 &&
    expect "etcdctl no longer used for health" test ! -e "$w/etcdctl.log" &&
    expect "each node says what it serves now" grep -q 'cp3: renewed apiserver .*; restarted etcd, kube-apiserver; serving: etcd-client 0b (current), etcd-peer 0b (current), kube-apiserver 0b (current)' "$w/out.txt"
}
t_nothing_due() {
    play 0 kubecert.pki.renew_ha -e kubecert_renew_within=10d &&
    expect "no restart" test ! -e "$w/restarts.log" &&
    expect "not changed" grep -qE 'cp3 +: ok=[0-9]+ +changed=0 ' "$w/out.txt"
}
t_rollback_stops_rollout() {
    mkdir -p "$w/host_vars"
    # On cp2 the restart breaks etcd; restarting again (the rollback) heals it.
    cat >"$w/host_vars/cp2.yml" <<EOF
kubecert_restart_commands:
  etcd: "if [ -e $w/broken ]; then echo healthy >$w/etcd-state; else touch $w/broken; echo unhealthy >$w/etcd-state; fi; echo cp2 {component} >>$w/restarts.log"
EOF
    play 2 kubecert.pki.renew_ha &&
    expect "cp2 restored its own backup" test "$(calls | grep -c '^restore {"backup_dir": "/var/backups/kubecert/fake"')" = 1 &&
    expect "cp3 never touched" test "$(calls | grep -c '^renew')" = 2 &&
    expect "components restarted again after the restore" test "$(grep -c '^cp2 etcd' "$w/restarts.log")" = 2 &&
    expect "a clear message" grep -q 'kubecert rolling renew FAILED on cp2 at Restart the components that read a renewed certificate, and prove they serve it: kubecert restart failed at health:etcd: etcd not healthy within 2000 ms -- Restored 2 files from /var/backups/kubecert/fake. Restarted etcd, kube-apiserver on the restored certificates. Cluster health after the rollback: OK (healthy after .*etcd healthy (3/3 members healthy, quorum ok)). No further node will be touched.' "$w/out.txt"
}
t_served_stale_rolls_back() {
    mkdir -p "$w/host_vars"
    # On cp2 the restart "does not reload": etcd keeps serving the old serial (until the rollback restores it).
    cat >"$w/host_vars/cp2.yml" <<EOF
kubecert_restart_commands:
  etcd: "if [ -e $w/broken ]; then rm -f $w/served-state; else touch $w/broken; echo stale:etcd >$w/served-state; fi; echo cp2 {component} >>$w/restarts.log"
EOF
    play 2 kubecert.pki.renew_ha &&
    expect "cp1 proved and passed" grep -q 'cp1: renewed .*serving: etcd-client 0b (current)' "$w/out.txt" &&
    expect "cp2 failed on the served proof" grep -q 'kubecert rolling renew FAILED on cp2 at Restart .*: kubecert restart failed at served:etcd: etcd still serves serial 0a after its restart -- Restored 2 files from /var/backups/kubecert/fake. Restarted etcd, kube-apiserver on the restored certificates.' "$w/out.txt" &&
    expect "cp2 restored its backup" test "$(calls | grep -c '^restore ')" = 1 &&
    expect "kube-apiserver not restarted after the failed etcd" test "$(grep -c '^cp2 ' "$w/restarts.log")" = 3 &&
    expect "cp3 never touched" test "$(calls | grep -c '^renew')" = 2
}
t_health_bound() {
    # kubecert_health_timeout bounds each wait once. The failing run waits three times (the
    # restart's health wait, the rollback's restart and its health check): going from a 1 s
    # to a 6 s bound adds 3 x 5 s, not 3 x 3 x 5 s as when every check retried for the bound.
    mkdir -p "$w/host_vars"
    cat >"$w/host_vars/cp1.yml" <<EOF
kubecert_restart_command: "echo unhealthy >$w/etcd-state; echo cp1 {component} >>$w/restarts.log"
EOF
    local t0 t1 t2
    t0=$(date +%s)
    play 2 kubecert.pki.renew_ha -l cp1 -e kubecert_health_timeout=1 &&
    t1=$(date +%s) &&
    rm -f "$w/agent.jsonl" "$w/etcd-state" &&
    play 2 kubecert.pki.renew_ha -l cp1 -e kubecert_health_timeout=6 &&
    t2=$(date +%s) &&
    expect "one bounded wait per phase: the restart, the rollback's restart and health check" test "$(calls | grep -c '"health_timeout_ms": 6000\|"timeout_ms": 6000')" = 3 &&
    expect "the gate fails at its bound" grep -q 'kubecert restart failed at health:etcd: etcd not healthy within 6000 ms' "$w/out.txt" &&
    expect "the rollback's health check waited its bound once" grep -q 'Cluster health after the rollback: NOT OK (not healthy after 6000 ms' "$w/out.txt" &&
    expect "5 s more per wait, not 3 x 5 s: took $(( (t2 - t1) - (t1 - t0) )) s more" test $(( (t2 - t1) - (t1 - t0) )) -ge 13 -a $(( (t2 - t1) - (t1 - t0) )) -le 25
}
t_preflight_unhealthy() {
    echo unhealthy >"$w/etcd-state"
    play 2 kubecert.pki.renew_ha &&
    expect "nothing renewed" test "$(calls | grep -c '^renew')" = 0 &&
    expect "a clear message" grep -q 'preflight failed on cp1: not healthy after 1000 ms (3 polls): etcd UNHEALTHY (1/3 members healthy, quorum LOST) Nothing was changed on this node and no further node will be touched.' "$w/out.txt"
}
t_check_mode() {
    play 0 kubecert.pki.renew_ha --check --diff -l cp1 &&
    expect "a dry run of the renewal and of the restart" test "$(calls | grep -c '"dry_run": true')" = 2 &&
    expect "no restart" test ! -e "$w/restarts.log" &&
    expect "says what it would restart" grep -q 'cp1: would renew apiserver .*; would restart etcd, kube-apiserver' "$w/out.txt" &&
    expect "a diff per certificate" grep -q '+++ after: apiserver (would-renew)' "$w/out.txt"
}
t_manifests() {
    mkdir -p "$w/manifests"
    touch "$w/manifests/etcd.yaml" "$w/manifests/kube-apiserver.yaml" "$w/manifests/kube-scheduler.yaml"
    local args=(-e kubecert_restart_method=manifests -e "kubecert_manifests_dir=$w/manifests"
        -e "kubecert_manifests_park_dir=$w/parked" -e kubecert_manifests_stop_wait=0)
    play 0 kubecert.pki.renew_ha -l cp1 "${args[@]}" &&
    expect "the agent moved the manifests out and back" diff <(printf '%s\n' 'parked etcd' 'parked kube-apiserver') "$w/manifests.log" &&
    expect "asked for manifest-move with the park dir" test "$(calls | grep '^restart ' | grep '"method": "manifest-move"' | grep -c "\"park_dir\": \"$w/parked\"")" = 1 &&
    expect "all manifests in place" test -e "$w/manifests/etcd.yaml" -a -e "$w/manifests/kube-apiserver.yaml" -a -e "$w/manifests/kube-scheduler.yaml" &&
    expect "nothing left parked" test -z "$(ls -A "$w/parked")" &&
    mv "$w/manifests/etcd.yaml" "$w/parked/" &&
    rm -f "$w/agent.jsonl" &&
    play 0 kubecert.pki.renew_ha -l cp1 "${args[@]}" &&
    expect "a manifest left parked by an interrupted run is moved back by the agent" test -e "$w/manifests/etcd.yaml" -a -z "$(ls -A "$w/parked")"
}
t_install_unit_files() {
    mkdir -p "$w/units"
    local unit
    for unit in kubecert.socket kubecert.service kubecert-renew.service kubecert-renew.timer; do
        printf '[Service]\nExecStart=/usr/local/bin/kubecert serve # %s\n' "$unit" >"$w/units/$unit"
    done
    cat >"$w/install-units.yml" <<EOF
- name: Install kubecert with its unit files, without touching systemd
  hosts: cp1
  gather_facts: false
  roles:
    - role: kubecert.pki.install
      vars:
        kubecert_binary_src: $w/kubecert
        kubecert_bin_path: $w/opt/kubecert
        kubecert_bin_owner: ""
        kubecert_bin_group: ""
        kubecert_systemd_units_src: $w/units
        kubecert_systemd_unit_dir: $w/etc-systemd
        kubecert_default_env: {KUBECERT_WITHIN: 45d}
        kubecert_default_env_file: $w/etc-default-kubecert
        kubecert_manage_services: false
EOF
    mkdir -p "$w/etc-systemd"
    play 0 "$w/install-units.yml" &&
    expect "four units" test "$(find "$w/etc-systemd" -type f | wc -l)" = 4 &&
    expect "ExecStart points at kubecert_bin_path" grep -qx "ExecStart=$w/opt/kubecert serve # kubecert.service" "$w/etc-systemd/kubecert.service" &&
    expect "the renewal settings are written" grep -qx 'KUBECERT_WITHIN=45d' "$w/etc-default-kubecert" &&
    play 0 "$w/install-units.yml" &&
    expect "idempotent" grep -qE 'cp1 +: ok=[0-9]+ +changed=0 ' "$w/out.txt"
}
t_readyz() {
    play 0 kubecert.pki.renew_ha -l cp1 -e "kubecert_apiserver_readyz_url=https://10.0.0.1:6443/readyz" &&
    expect "the API server is checked by the agent, on the /readyz address" test "$(calls | grep -c '^health .*"components": \["etcd", "kube-apiserver"\], "endpoints": \[{"address": "127.0.0.1:2379", "endpoint": "etcd-client"}, {"address": "10.0.0.1:6443", "endpoint": "kube-apiserver"}\]')" = 2 &&
    rm -f "$w/agent.jsonl" &&
    echo unhealthy >"$w/etcd-state" &&
    play 2 kubecert.pki.renew_ha -l cp1 -e "kubecert_apiserver_readyz_url=https://10.0.0.1:6443/readyz" &&
    expect "an unready API server stops the preflight" grep -q "preflight failed on cp1: not healthy after 1000 ms (3 polls): etcd UNHEALTHY (1/3 members healthy, quorum LOST); kube-apiserver UNHEALTHY (connection refused)" "$w/out.txt" &&
    expect "nothing renewed" test "$(calls | grep -c '^renew')" = 0
}
t_module_defaults_group() {
    cat >"$w/group.yml" <<EOF
- name: Modules share their agent options through module_defaults
  hosts: cp1
  gather_facts: false
  module_defaults:
    group/kubecert.pki.kubecert:
      kubecert_bin: $w/kubecert
      transport: stdio
      cert_dir: /srv/pki
  tasks:
    - name: Read
      kubecert.pki.cert_info:
      register: info
    - name: Renew
      kubecert.pki.cert_renew:
        within: 30d
      register: renew
    - name: Check what came back
      ansible.builtin.assert:
        that:
          - info is not changed
          - info.kind == 'CertificateExpirationInfo'
          - renew is changed
          - renew.componentsToRestart == ['etcd', 'kube-apiserver']
          - renew.backupDir == '/var/backups/kubecert/fake'
EOF
    play 0 "$w/group.yml" -e kubecert_bin_path=/nonexistent &&
    expect "both calls used the group's options" test "$(calls | grep -c '"cert_dir": "/srv/pki"')" = 2
}
t_install_without_systemd() {
    cat >"$w/install.yml" <<EOF
- name: Install kubecert
  hosts: cp1
  gather_facts: false
  roles:
    - role: kubecert.pki.install
      vars:
        kubecert_binary_src: $w/kubecert
        kubecert_bin_path: $w/inst/bin/kubecert
        kubecert_bin_owner: ""
        kubecert_bin_group: ""
        kubecert_install_systemd: false
EOF
    play 0 "$w/install.yml" &&
    expect "the binary is installed, executable" test -x "$w/inst/bin/kubecert" &&
    expect "it is the source" cmp -s "$w/kubecert" "$w/inst/bin/kubecert" &&
    play 0 "$w/install.yml" &&
    expect "idempotent" grep -qE 'cp1 +: ok=[0-9]+ +changed=0 ' "$w/out.txt"
}
t_report_key_missing() {
    # apiserver.key deleted: the agent says level fail and lists the problem; nothing is due.
    export FAKE_AGENT_PKI=key-missing
    play 2 kubecert.pki.check_expiration -e "kubecert_report_dir=$w" -e kubecert_threshold_days=10 &&
    expect "the failure names the problem" grep -q 'cp1 apiserver: key-missing' "$w/out.txt" &&
    expect "and the level" grep -q 'cp1: level fail' "$w/out.txt" &&
    expect "the table does not say ok" grep -q 'cp2  *apiserver  *cert .* UNHEALTHY' "$w/kubecert-expiration.txt"
}
t_report_no_pki() {
    # A wrong cert dir: every row missing, no CA, nothing that expires.
    export FAKE_AGENT_PKI=empty
    play 2 kubecert.pki.check_expiration -e "kubecert_report_dir=$w" -e kubecert_cert_dir=/nonexistent &&
    expect "no kubeadm PKI, said so" grep -q 'cp1: no kubeadm PKI found (cert_dir /nonexistent): every certificate and CA is missing' "$w/out.txt" &&
    expect "not a success message" not_grep 'Nothing expires within' "$w/out.txt"
}
t_report_kubelet_section() {
    # kubecert_kubelet=true: the kubelet's certificates are rows; an expired client one fails.
    play 0 kubecert.pki.check_expiration -e "kubecert_report_dir=$w" -e kubecert_threshold_days=10 -e kubecert_kubelet=true &&
    expect "cert_info asked for the kubelet section" grep -q '"kubelet": true' "$w/agent.jsonl" &&
    expect "a kubelet-client row" grep -q 'cp1  *kubelet-client  *kubelet-cert ' "$w/kubecert-expiration.txt" &&
    export FAKE_AGENT_PKI=kubelet-expired &&
    play 2 kubecert.pki.check_expiration -e "kubecert_report_dir=$w" -e kubecert_threshold_days=10 -e kubecert_kubelet=true &&
    expect "the expired kubelet client certificate is named" grep -q 'cp1 kubelet-client: expired' "$w/out.txt"
}
t_report_no_kubelet_by_default() {
    play 0 kubecert.pki.check_expiration -e "kubecert_report_dir=$w" -e kubecert_threshold_days=10 &&
    expect "no kubelet param by default" not_grep '"kubelet": true' "$w/agent.jsonl"
}
t_kubelet_recover() {
    play 0 kubecert.pki.kubelet_recover -l cp2 -e kubecert_restart_kubelet=false &&
    expect "rebuild for cp2 only, node name = inventory hostname" test "$(calls | grep -c '^kubelet-conf-rebuild ')" = 1 &&
    expect "node_name cp2, not a dry run" grep -q '"method": "kubelet-conf-rebuild".*"dry_run": false.*"node_name": "cp2"' <(calls | sed 's/^kubelet-conf-rebuild /{"method": "kubelet-conf-rebuild", "p": /') &&
    expect "then the kubelet section read back" grep -q '^check .*"kubelet": true' <(calls) &&
    reset &&
    play 0 kubecert.pki.kubelet_recover -l cp1 --check -e kubecert_node_name=node-a &&
    expect "check mode is a dry run with the given name" grep -q '^kubelet-conf-rebuild .*"dry_run": true.*"node_name": "node-a"' <(calls) &&
    expect "no read-back in check mode" not_grep '"kubelet": true' "$w/agent.jsonl" &&
    reset &&
    play 2 kubecert.pki.kubelet_recover -l cp1 -e kubecert_node_name=a/b &&
    expect "the refusal is shown" grep -q 'invalid node name' "$w/out.txt"
}
t_report_kubelet_conf() {
    # kubelet.conf embeds a client certificate that expires in 5 days; renew never touches it.
    export FAKE_AGENT_PKI=kubelet-embedded
    play 2 kubecert.pki.check_expiration -e "kubecert_report_dir=$w" -e kubecert_threshold_days=10 &&
    expect "the finding points at the module" grep -q 'cp1 kubelet.conf: .*kubecert.pki.kubelet_conf' "$w/out.txt" &&
    expect "not at the CLI" not_grep 'kubecert kubelet-conf repair' "$w/out.txt"
}
t_report_summary_unchanged() {
    play 0 kubecert.pki.check_expiration -e "kubecert_report_dir=$w" -e kubecert_threshold_days=10 &&
    expect "a summary line per node" grep -qE 'cp2: level ok, 4 certificates .*soonest apiserver in 20\.0 days' "$w/out.txt" &&
    expect "changed=0" grep -qE 'cp1 +: ok=[0-9]+ +changed=0 ' "$w/out.txt" &&
    play 0 kubecert.pki.check_expiration --check --diff -e "kubecert_report_dir=$w" -e kubecert_threshold_days=10 &&
    expect "check mode: changed=0" grep -qE 'cp1 +: ok=[0-9]+ +changed=0 ' "$w/out.txt" &&
    expect "check --diff prints no JSON diff" test "$(wc -l <"$w/out.txt")" -lt 120
}
t_report_served() {
    # Without kubecert_served nothing is probed; with it a kubelet that still serves its old
    # certificate fails the run, named with the component to restart.
    play 0 kubecert.pki.check_expiration -e "kubecert_report_dir=$w" -e kubecert_threshold_days=10 &&
    expect "no served param without the variable" not_grep '"served"' "$w/agent.jsonl" &&
    play 0 kubecert.pki.check_expiration -e "kubecert_report_dir=$w" -e kubecert_threshold_days=10 -e kubecert_served=true &&
    expect "served asked of the agent" grep -q '"served": true' "$w/agent.jsonl" &&
    expect "the summary says served ok" grep -qE 'cp2: level ok, .*served ok' "$w/out.txt" &&
    echo stale:kubelet >"$w/served-state" &&
    play 2 kubecert.pki.check_expiration -e "kubecert_report_dir=$w" -e kubecert_threshold_days=10 -e kubecert_served=true &&
    expect "the finding names the restart" grep -q 'cp1 served kubelet (127.0.0.1:10250): stale: serving a certificate other than the one on disk .* restart kubelet' "$w/out.txt" &&
    expect "in the JSON report too" "$python" -c 'import json,sys
d = json.load(open(sys.argv[1]))
assert d["hosts"]["cp3"]["served"]["staleComponents"] == ["kubelet"], d["hosts"]["cp3"].get("served")' "$w/kubecert-expiration.json"
}
t_renew_kubespray_group() {
    sed 's/^\[control_plane\]/[kube_control_plane]/' "$w/inventory.ini" >"$w/inventory-kubespray.ini"
    PLAY_INVENTORY="$w/inventory-kubespray.ini" play 0 kubecert.pki.renew_ha &&
    expect "every kube_control_plane node renewed" test "$(calls | grep -c '^renew ')" = 3
}
t_renew_no_host() {
    play 2 kubecert.pki.renew_ha -e kubecert_hosts=no_such_group &&
    expect "says so" grep -q 'No host matches no_such_group' "$w/out.txt"
}
t_renew_external_ca() {
    export FAKE_AGENT_PKI=external-ca
    play 2 kubecert.pki.renew_ha -l cp1 &&
    expect "the node fails naming what was not renewed" grep -q 'cp1: 2 due certificate(s) not renewed: apiserver (externally-managed: /etc/kubernetes/pki/ca.key is absent), etcd-server (externally-managed' "$w/out.txt" &&
    expect "nothing restarted" test ! -e "$w/restarts.log" &&
    play 2 kubecert.pki.renew_ha -l cp1 --check &&
    expect "check mode fails the same way" grep -q 'cp1: 2 due certificate(s) not renewed' "$w/out.txt" &&
    play 2 kubecert.pki.renew_ha -l cp1 -e '{"kubecert_renew_names": ["apiserver"]}' &&
    expect "names: apiserver is not a silent success" grep -q 'cp1: 1 due certificate(s) not renewed: apiserver (externally-managed' "$w/out.txt" &&
    play 0 kubecert.pki.renew_ha -l cp1 -e '{"kubecert_allow_unrenewable": ["apiserver", "etcd-server"]}' &&
    expect "allowed, with a warning" grep -q 'not renewed, allowed by kubecert_allow_unrenewable: apiserver, etcd-server' "$w/out.txt" &&
    expect "the agent decides, given allow_unrenewable (with kubecert_allow_missing)" \
        grep -q '"allow_unrenewable": \["apiserver", "etcd-server", "super-admin.conf"\]' "$FAKE_AGENT_LOG" &&
    play 2 kubecert.pki.renew_ha -l cp1 -e '{"kubecert_allow_unrenewable": ["apiserver"]}' &&
    expect "only what is not allowed fails the node" grep -q 'cp1: 1 due certificate(s) not renewed: etcd-server (externally-managed' "$w/out.txt" &&
    play 0 kubecert.pki.renew_ha -l cp1 -e '{"kubecert_allow_unrenewable": ["all"]}' &&
    expect "all: allowed, with a warning" grep -q 'not renewed, allowed by kubecert_allow_unrenewable: admin.conf, apiserver' "$w/out.txt"
}
t_renew_missing_kubeconfigs() {
    # A wrong kubeconfig dir: the kubeconfigs are missing.
    export FAKE_AGENT_PKI=empty
    play 2 kubecert.pki.renew_ha -l cp1 -e kubecert_kubeconfig_dir=/nonexistent &&
    expect "missing files fail the node" grep -q 'cp1: 4 due certificate(s) not renewed: admin.conf (missing: /etc/kubernetes/pki/admin.conf.crt does not exist)' "$w/out.txt"
}
t_renew_says_what_it_did() {
    play 0 kubecert.pki.renew_ha -l cp1 &&
    expect "old -> new NotAfter" grep -q 'renewed apiserver (2026-12-08T11:06:40Z -> 2027-11-18T11:06:40Z)' "$w/out.txt" &&
    expect "the backup" grep -q 'backup /var/backups/kubecert/fake' "$w/out.txt" &&
    expect "what was restarted" grep -q 'restarted etcd, kube-apiserver' "$w/out.txt" &&
    play 0 kubecert.pki.renew_ha -l cp1 --check &&
    expect "check mode says would" grep -q 'would renew apiserver (2026-12-08T11:06:40Z -> 2027-11-18T11:06:40Z)' "$w/out.txt" &&
    expect "and would restart" grep -q 'would restart etcd, kube-apiserver' "$w/out.txt"
}
t_renew_snapshot_serial() {
    play 0 kubecert.pki.renew_ha -e "kubecert_etcd_snapshot_dir=$w/snap" -e kubecert_serial=3 &&
    expect "one etcd snapshot, on the first node" test "$(grep -c "snapshot save $w/snap/kubecert-cp1-" "$w/etcdctl.log")" = 1 &&
    expect "before any renewal, over TLS" grep -q -- "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt .*snapshot save" "$w/etcdctl.log" &&
    expect "serial 3: one batch" test "$(grep -c '^PLAY \[Renew kubeadm certificates' "$w/out.txt")" = 1 &&
    expect "every node renewed" test "$(calls | grep -c '^renew ')" = 3
}
t_restore_example() {
    # cert_restore's EXAMPLES, as documented, under this ansible-core.
    "$python" - "$dest/plugins/modules/cert_restore.py" "$w/kubecert" >"$w/restore-example.yml" <<'PY'
import ast, sys, yaml
tree = ast.parse(open(sys.argv[1]).read())
examples = [n.value.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == 'EXAMPLES'][0]
tasks = yaml.safe_load(examples)[:2]
play = [{'name': 'cert_restore EXAMPLES', 'hosts': 'cp1', 'gather_facts': False,
         'module_defaults': {'group/kubecert.pki.kubecert': {'kubecert_bin': sys.argv[2], 'transport': 'stdio'}},
         'tasks': tasks}]
print(yaml.safe_dump(play))
PY
    play 0 "$w/restore-example.yml" &&
    expect "the rollback ran" test "$(calls | grep -c '^restore {"backup_dir": "/var/backups/kubecert/fake"')" = 1
}
t_install_from_tarball() {
    # The collection as a user gets it: built, installed, the role's defaults.
    ansible-galaxy collection build "$dest" --output-path "$w/dist" >"$w/out.txt" 2>&1 &&
    expect "LICENSE in the tarball" tar -tzf "$w"/dist/kubecert-pki-*.tar.gz LICENSE &&
    ANSIBLE_COLLECTIONS_PATH="$w/installed" ansible-galaxy collection install "$w"/dist/kubecert-pki-*.tar.gz -p "$w/installed" >>"$w/out.txt" 2>&1 &&
    cat >"$w/install-tarball.yml" <<EOF &&
- name: Install kubecert with the role's default unit files
  hosts: cp1
  gather_facts: false
  roles:
    - role: kubecert.pki.install
      vars:
        kubecert_binary_src: $w/kubecert
        kubecert_bin_path: $w/tb/kubecert
        kubecert_bin_owner: ""
        kubecert_bin_group: ""
        kubecert_systemd_unit_dir: $w/tb-systemd
        kubecert_manage_services: false
EOF
    mkdir -p "$w/tb-systemd" &&
    expect "the collection is installed" test -d "$w/installed/ansible_collections/kubecert/pki/roles/install" &&
    ANSIBLE_COLLECTIONS_PATH="$w/installed" play 0 "$w/install-tarball.yml" &&
    expect "four units from the collection" test "$(find "$w/tb-systemd" -type f | wc -l)" = 4 &&
    expect "ExecStart points at kubecert_bin_path" grep -q "^ExecStart=$w/tb/kubecert " "$w/tb-systemd/kubecert.service"
}
install_url_play() {  # install_url_play CHECKSUM: a playbook installing $w/kubecert from a file:// URL
    cat >"$w/install-url.yml" <<EOF
- name: Install kubecert from a URL with a checksum
  hosts: cp1
  gather_facts: false
  roles:
    - role: kubecert.pki.install
      vars:
        kubecert_binary_url: file://$w/kubecert
        kubecert_binary_checksum: "sha256:$1"
        kubecert_bin_path: $w/url/kubecert
        kubecert_bin_owner: ""
        kubecert_bin_group: ""
        kubecert_install_systemd: false
EOF
}
t_install_url() {
    local sum
    sum="$(sha256sum "$w/kubecert" | cut -d' ' -f1)"
    install_url_play "$sum" && play 0 "$w/install-url.yml" &&
    expect "installed from the URL" cmp -s "$w/kubecert" "$w/url/kubecert" &&
    rm -f "$w/url/kubecert" &&
    install_url_play 0000000000000000000000000000000000000000000000000000000000000000 &&
    play 2 "$w/install-url.yml" &&
    expect "a wrong checksum fails" grep -qi 'checksum mismatch\|did not match' "$w/out.txt" &&
    expect "and installs nothing" test ! -e "$w/url/kubecert"
}

install_src_play() {  # install_src_play CHECKSUM: a playbook installing $w/kubecert from the controller
    cat >"$w/install-src.yml" <<EOF
- name: Install the portable binary from the controller with its checksum
  hosts: cp1
  gather_facts: false
  roles:
    - role: kubecert.pki.install
      vars:
        kubecert_binary_src: $w/kubecert
        kubecert_binary_checksum: "$1"
        kubecert_bin_path: $w/src/bin/kubecert
        kubecert_bin_owner: ""
        kubecert_bin_group: ""
        kubecert_install_systemd: false
EOF
}
t_install_src_checksum() {
    local sum
    sum="$(sha256sum "$w/kubecert" | cut -d' ' -f1)"
    install_src_play "sha256:0000000000000000000000000000000000000000000000000000000000000000" &&
    play 2 "$w/install-src.yml" &&
    expect "a wrong checksum fails, naming the file and both sums" grep -q "$w/kubecert has sha256 $sum, not the kubecert_binary_checksum sha256:0000000000000000000000000000000000000000000000000000000000000000: checksum mismatch. Nothing was installed." "$w/out.txt" &&
    expect "and changes nothing (not even the directory)" test ! -e "$w/src" &&
    install_src_play "sha256:$sum" && play 0 "$w/install-src.yml" &&
    expect "the right checksum installs the binary" cmp -s "$w/kubecert" "$w/src/bin/kubecert" &&
    expect "changed" grep -qE 'cp1 +: ok=[0-9]+ +changed=[1-9]' "$w/out.txt" &&
    play 0 "$w/install-src.yml" &&
    expect "idempotent" grep -qE 'cp1 +: ok=[0-9]+ +changed=0 ' "$w/out.txt" &&
    echo "#!/bin/sh" >"$w/src/other" && cp "$w/src/bin/kubecert" "$w/src/before" &&
    install_src_play "sha256:$(sha256sum "$w/src/other" | cut -d' ' -f1)" && play 2 "$w/install-src.yml" &&
    expect "a mismatch leaves the installed binary as it was" cmp -s "$w/src/before" "$w/src/bin/kubecert"
}
t_install_package_refusals() {
    cat >"$w/install-pkg.yml" <<EOF
- name: Package and binary sources together are refused
  hosts: cp1
  gather_facts: false
  roles:
    - role: kubecert.pki.install
      vars:
        kubecert_install_from: package
        kubecert_package_src: $w/kubecert_0.1.0-1_amd64.deb
        kubecert_package_url: file://$w/kubecert_0.1.0-1_amd64.deb
        kubecert_package_cache_dir: $w/pkg-cache
EOF
    play 2 "$w/install-pkg.yml" &&
    expect "two package sources are refused" grep -q "kubecert_install_from=package takes kubecert_package_src" "$w/out.txt" &&
    expect "nothing copied" test ! -e "$w/pkg-cache" &&
    sed -i 's/kubecert_install_from: package/kubecert_install_from: tarball/' "$w/install-pkg.yml" &&
    play 2 "$w/install-pkg.yml" &&
    expect "an unknown source kind is refused (argument_specs)" grep -q "value of kubecert_install_from must be one of: binary, package, got: tarball" "$w/out.txt"
}

scenario "check_expiration: report, nothing due" t_report_ok
scenario "check_expiration: fails on what expires within the threshold" t_report_expiring
scenario "check_expiration: fails on unreadable nodes" t_report_unreadable_node
scenario "check_expiration: --limit checks only those nodes" t_report_limit
scenario "check_expiration: a pattern matching no node fails" t_report_no_node
scenario "check_expiration: a missing key fails (level fail, problems)" t_report_key_missing
scenario "check_expiration: no kubeadm PKI at the path fails" t_report_no_pki
scenario "check_expiration: kubelet.conf findings point at kubecert.pki.kubelet_conf" t_report_kubelet_conf
scenario "check_expiration: kubecert_kubelet=true adds the kubelet's certificates" t_report_kubelet_section
scenario "check_expiration: no kubelet section unless asked" t_report_no_kubelet_by_default
scenario "kubelet_recover: rebuild per node, check mode plans, refusals fail" t_kubelet_recover
scenario "check_expiration: a summary per node, changed=0, no diff" t_report_summary_unchanged
scenario "check_expiration: kubecert_served=true reports what each component serves" t_report_served
scenario "renew_ha: Kubespray's kube_control_plane group" t_renew_kubespray_group
scenario "renew_ha: a pattern matching no host fails" t_renew_no_host
scenario "renew_ha: due certificates of an external CA fail the node" t_renew_external_ca
scenario "renew_ha: missing kubeconfigs fail the node" t_renew_missing_kubeconfigs
scenario "renew_ha: the result says what was renewed, backed up, restarted" t_renew_says_what_it_did
scenario "renew_ha: etcd snapshot before the rollout, kubecert_serial" t_renew_snapshot_serial
scenario "docs: cert_restore EXAMPLES run" t_restore_example
scenario "renew_ha: every node renewed, restarted, health-gated" t_renew_all_nodes
scenario "renew_ha: nothing due, nothing restarted" t_nothing_due
scenario "renew_ha: failed health gate rolls back and stops the rollout" t_rollback_stops_rollout
scenario "renew_ha: a member serving its old certificate after the restart fails the node, rolled back" t_served_stale_rolls_back
scenario "renew_ha: kubecert_health_timeout bounds the health gate once" t_health_bound
scenario "renew_ha: unhealthy cluster, nothing touched" t_preflight_unhealthy
scenario "renew_ha: check mode is a dry run with diff" t_check_mode
scenario "renew_ha: restart through static pod manifests" t_manifests
scenario "renew_ha: kube-apiserver /readyz in the health checks" t_readyz
scenario "modules: options from module_defaults group/kubecert.pki.kubecert" t_module_defaults_group
scenario "install: binary only, idempotent" t_install_without_systemd
scenario "install: unit files with kubecert_bin_path, without systemd" t_install_unit_files
scenario "install: from the built tarball with the default units" t_install_from_tarball
scenario "install: from a URL with a checksum" t_install_url
scenario "install: the binary from the controller with a checksum; a mismatch changes nothing" t_install_src_checksum
scenario "install: package sources are checked before anything is installed" t_install_package_refusals

# rotate_ca: three hosts, each with its own cert dir (the fake agent keeps the rotation phase
# and the staged <ca>.next files there).
rotate_inventory() {
    local k
    {
        echo '[control_plane]'
        for k in 1 2 3; do
            mkdir -p "$w/rot/cp$k/pki/etcd"
            echo "cp$k ansible_connection=local kubecert_cert_dir=$w/rot/cp$k/pki kubecert_kubeconfig_dir=$w/rot/cp$k kubecert_restart_kubelet=false"
        done
        sed -n '/^\[all:vars\]/,$p' "$w/inventory.ini"
    } >"$w/inventory-rotate.ini"
}
rotate_calls() {  # "HOST-PHASE" per ca-rotate call, in order
    "$python" -c 'import json,sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["method"] == "ca-rotate":
        p = r["params"]; print(p["cert_dir"].split("/")[-2] + "-" + p["phase"] + ("-dry" if p["dry_run"] else ""))' "$w/agent.jsonl" | tr '\n' ' '
}
t_rotate_all_phases() {
    rm -rf "$w/rot"
    rotate_inventory
    PLAY_INVENTORY="$w/inventory-rotate.ini" play 0 kubecert.pki.rotate_ca -e kubecert_ca=etcd-ca --diff &&
    expect "every node stages before any promotes, every node promotes before any distrusts" test \
        "$(rotate_calls)" = "cp1-stage cp2-stage cp3-stage cp1-promote cp2-promote cp3-promote cp1-distrust cp2-distrust cp3-distrust " &&
    expect "the first node created the new CA, the others used its copy" test \
        "$(grep -c 'etcd/ca.next.crt: written (used the staged new CA)' "$w/out.txt")-$(grep -c 'etcd/ca.next.crt: written (created the new CA)' "$w/out.txt")" = 2-1 &&
    expect "every node has the same new CA certificate and key" test \
        "$(cat "$w"/rot/cp*/pki/etcd/ca.next.crt | sort -u | wc -l)-$(sha256sum "$w"/rot/cp*/pki/etcd/ca.next.key | cut -d' ' -f1 | sort -u | wc -l)" = \
        "$(sort -u "$w/rot/cp1/pki/etcd/ca.next.crt" | wc -l)-1" &&
    expect "the key copied with mode 0600" test "$(stat -c %a "$w"/rot/cp2/pki/etcd/ca.next.key)" = 600 &&
    expect "every node ends distrusted" test "$(cat "$w"/rot/cp*/pki/.fake-rotation-phase | sort -u)" = distrusted &&
    expect "components restarted node by node after every phase" diff <(
        for ph in 1 2 3; do for k in 1 2 3; do printf 'cp%s etcd\ncp%s kube-apiserver\n' "$k" "$k"; done; done) "$w/restarts.log" &&
    expect "each phase's checklist printed" test "$(grep -c 'Checklist (to do by hand): restart workloads that hold the old etcd-ca' "$w/out.txt")" = 9 &&
    expect "the key is never shown" not_grep 'fake key' "$w/out.txt" &&
    expect "the controller's temporary directory is gone" test -z "$(ls -d "${TMPDIR:-/tmp}"/kubecert-rotate-* 2>/dev/null)"
}
t_rotate_stops_on_failure() {
    rm -rf "$w/rot"
    rotate_inventory
    # cp2's stage fails: no further node, no promote anywhere.
    echo staged >"$w/rot/cp2/pki/.fake-rotation-phase"
    echo promoted >"$w/rot/cp2/pki/.fake-rotation-phase"
    PLAY_INVENTORY="$w/inventory-rotate.ini" play 2 kubecert.pki.rotate_ca -e kubecert_ca=etcd-ca &&
    expect "the failure names node, phase and cause" grep -q \
        'kubecert rotate_ca etcd-ca: phase stage FAILED on cp2 at Rotate the CA, phase stage, etcd-ca: kubecert ca-rotate failed: validation failed .*stage needs phase none or distrusted, the files say promoted' "$w/out.txt" &&
    expect "cp3 untouched, nothing promoted" test "$(rotate_calls)" = "cp1-stage cp2-stage " &&
    expect "the controller's temporary directory is gone" test -z "$(ls -d "${TMPDIR:-/tmp}"/kubecert-rotate-* 2>/dev/null)"
}
t_rotate_needs_a_ca() {
    rotate_inventory
    PLAY_INVENTORY="$w/inventory-rotate.ini" play 2 kubecert.pki.rotate_ca &&
    expect "says what is missing" grep -q 'rotate_ca needs -e kubecert_ca=ca|front-proxy-ca|etcd-ca (got nothing)' "$w/out.txt" &&
    expect "no call to the agent" test "$(calls | wc -l)" = 0 &&
    play 2 kubecert.pki.rotate_ca -e kubecert_ca=etcd-ca -e kubecert_hosts=nomatch &&
    expect "a pattern matching no host fails" grep -q 'must match some control-plane node' "$w/out.txt"
}
t_rotate_one_phase_check_mode() {
    rm -rf "$w/rot"
    rotate_inventory
    PLAY_INVENTORY="$w/inventory-rotate.ini" play 0 kubecert.pki.rotate_ca -e kubecert_ca=ca -e '{"kubecert_rotate_phases": ["stage"]}' --check --diff &&
    expect "only stage, as dry runs" test "$(rotate_calls)" = "cp1-stage-dry cp2-stage-dry cp3-stage-dry " &&
    expect "no file written" test -z "$(find "$w/rot" -type f)" &&
    expect "the diff shows the phase" grep -q '^+phase: staged' "$w/out.txt"
}
t_renew_ca_same_bytes() {
    rm -rf "$w/rot"
    rotate_inventory
    PLAY_INVENTORY="$w/inventory-rotate.ini" play 0 kubecert.pki.renew_ca -e '{"kubecert_cas": ["etcd-ca"]}' &&
    expect "renew on cp1 only, export there, install on cp2 and cp3, each checks the bytes" test "$(calls | cut -d' ' -f1 | tr '\n' ' ')" = \
        "health ca-renew ca-export ca-export restart health health ca-export ca-install ca-export restart health health ca-export ca-install ca-export restart health " &&
    expect "cp2 and cp3 install the PEM cp1 exported (the renewed serial)" "$python" -c 'import json, sys
sys.path.insert(0, sys.argv[2])
import fake_agent
pems = [json.loads(l)["params"]["pem"] for l in open(sys.argv[1]) if json.loads(l)["method"] == "ca-install"]
assert pems == [fake_agent.renewed_pem("etcd-ca")] * 2, pems' "$w/agent.jsonl" "$dest/tests/unit/plugins" &&
    expect "each node says what it did" test "$(grep -c 'etcd-ca installed (serial 33cc -> 44dd' "$w/out.txt")-$(grep -c 'cp1: etcd-ca renewed (serial 33cc -> 44dd' "$w/out.txt")" = 2-1 &&
    expect "etcd and kube-apiserver restarted node by node" diff <(for k in 1 2 3; do printf 'cp%s etcd\ncp%s kube-apiserver\n' "$k" "$k"; done) "$w/restarts.log"
}
# Issue 17 item 5: drift per node, SANs reconciled on every node with its own facts.
drift_host_vars() {  # each node's own name and advertise address, as host variables
    mkdir -p "$w/host_vars"
    for k in 1 2 3; do
        printf 'kubecert_node_name: node-%s\nkubecert_advertise_address: 10.0.0.%s\n' "$k" "$k" >"$w/host_vars/cp$k.yml"
    done
}
t_report_drift_per_node() {
    drift_host_vars
    export FAKE_AGENT_DRIFT_NODE=node-2
    play 0 kubecert.pki.check_expiration -e "kubecert_report_dir=$w" -e kubecert_threshold_days=10 \
        -e kubecert_kubeadm_kubeconfig=/etc/kubernetes/admin.conf &&
    expect "every node asked for drift with its own name and address, through the ConfigMap" \
        test "$(calls | grep '^check ' | grep '"drift": true' | grep '"kubeconfig": "/etc/kubernetes/admin.conf"' | grep -c '"node_name": "node-[123]"')" = 3 &&
    expect "cp2 with 10.0.0.2" test "$(calls | grep '^check ' | grep -c '"advertise_address": "10.0.0.2".*"node_name": "node-2"')" = 1 &&
    expect "the summary names the node and the drifted certificate" \
        grep -q 'cp2: level warn, .*drift from the kubeadm configuration (configmap kube-system/kubeadm-config, node node-2): apiserver (SANs missing: DNS:kubecert.example.com)' "$w/out.txt" &&
    expect "the other nodes have none" grep -q 'cp1: level ok, .*no drift from the kubeadm configuration (configmap kube-system/kubeadm-config, node node-1)' "$w/out.txt" &&
    expect "the other nodes have none" grep -q 'cp3: level ok, .*no drift from the kubeadm configuration (configmap kube-system/kubeadm-config, node node-3)' "$w/out.txt" &&
    expect "drift only on cp2" test "$(grep -o 'cp[0-9]: level [a-z]*, [^"]*drift from the kubeadm configuration (' "$w/out.txt" | grep -v 'no drift' | cut -d: -f1 | sort -u)" = cp2
}
t_report_no_drift_by_default() {
    play 0 kubecert.pki.check_expiration -e "kubecert_report_dir=$w" -e kubecert_threshold_days=10 &&
    expect "no drift param" test "$(calls | grep '^check ' | grep -c '"drift"')" = 0 &&
    expect "no drift in the summary" not_grep 'drift' "$w/out.txt"
}
t_renew_reconcile_sans_per_node() {
    drift_host_vars
    play 0 kubecert.pki.renew_ha -e kubecert_reconcile_sans=true -e kubecert_reconcile_exact=true \
        -e kubecert_kubeadm_config=/etc/kubernetes/kubeadm.yaml &&
    expect "one renew per node with the configuration, exact, and that node's own facts" \
        test "$(calls | grep '^renew ' | grep '"config": "/etc/kubernetes/kubeadm.yaml"' | grep '"exact": true' | grep -c '"reconcile_sans": true')" = 3 &&
    for k in 1 2 3; do
        expect "node $k renewed with node-$k and 10.0.0.$k" \
            test "$(calls | grep '^renew ' | grep -c "\"advertise_address\": \"10.0.0.$k\", .*\"node_name\": \"node-$k\"")" = 1 || return 1
    done
}
t_renew_reconcile_needs_a_config() {
    play 2 kubecert.pki.renew_ha -e kubecert_reconcile_sans=true &&
    expect "says what is missing" grep -q 'reconcile_sans is True but any of the following are missing: config, kubeconfig' "$w/out.txt" &&
    expect "nothing renewed" test "$(calls | grep -c '^renew ')" = 0
}
scenario "check_expiration: drift per node (own name and address), named in the summary" t_report_drift_per_node
scenario "check_expiration: no drift without a kubeadm configuration" t_report_no_drift_by_default
scenario "renew_ha: reconcile SANs on every node with its own name and address" t_renew_reconcile_sans_per_node
scenario "renew_ha: reconcile without a configuration fails before renewing" t_renew_reconcile_needs_a_config
scenario "rotate_ca: each phase on every node before the next, same new CA everywhere" t_rotate_all_phases
scenario "rotate_ca: the first failure stops, naming node and phase" t_rotate_stops_on_failure
scenario "rotate_ca: needs kubecert_ca and a matching host" t_rotate_needs_a_ca
scenario "rotate_ca: one phase in check mode" t_rotate_one_phase_check_mode
scenario "renew_ca: renew once, same bytes on every node, restart node by node" t_renew_ca_same_bytes

echo "playbooks: $passed passed, $failed failed"
[ "$failed" = 0 ]
