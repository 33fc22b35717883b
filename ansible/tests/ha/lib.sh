# shellcheck shell=bash
# Helpers shared by run-ha.sh and bench-ha.sh (sourced, not run): a 3-node
# kubeadm PKI from `kubecert demo-pki`, and an inventory of three local hosts,
# node1..node3, one per node-K directory (node K's /etc/kubernetes).
#
# Needs: KUBECERT_REPO, KUBECERT_COLLECTION (lib.sh's kubecert_use_venv sets them).

HA_NODES=3

# ha_kubecert_bin: print the kubecert binary to use, building it when missing.
ha_kubecert_bin() {
    local bin="${KUBECERT_BIN:-$KUBECERT_REPO/target/debug/kubecert}"
    if [ ! -x "$bin" ]; then
        echo "building $bin (cargo build)" >&2
        (cd "$KUBECERT_REPO" && cargo build -q) >&2 || return 1
    fi
    echo "$bin"
}

# ha_collections_path DIR: make DIR/ansible_collections/kubecert/pki point at
# this collection, so that ansible-playbook runs the playbooks of the working
# tree (ansible/playbooks/*.yml) with its roles and modules.
ha_collections_path() {
    mkdir -p "$1/ansible_collections/kubecert"
    ln -sfn "$KUBECERT_COLLECTION" "$1/ansible_collections/kubecert/pki"
}

# ha_pki BIN DIR EXPIRES_IN: DIR/node-K (K = 1..3), shared CAs, per-node leaves
# expiring in EXPIRES_IN; then what a kubeadm >= 1.17 node has and the demo PKI
# does not: kubelet.conf referencing the kubelet-rotated
# DIR/kubelet-pki/node-K/kubelet-client-current.pem (a fresh one-year client
# certificate made here with openssl, standing in for the kubelet's rotation),
# set with `kubecert kubelet-conf repair` (the kubeadm#1753 fix). kubecert never
# renews the kubelet's client certificate, so without this the embedded one
# would expire in EXPIRES_IN whatever the renewal does.
# KUBECERT_HA_KEY_ALGORITHM (default rsa-2048, kubeadm's) sets the key algorithm.
ha_pki() {
    local bin="$1" dir="$2" expires="$3" k nd kp
    local err
    err="$("$bin" demo-pki "$dir" --nodes "$HA_NODES" --expires-in "$expires" \
        --key-algorithm "${KUBECERT_HA_KEY_ALGORITHM:-rsa-2048}" 2>&1 >/dev/null)" ||
        { echo "$bin demo-pki failed: $err" >&2; return 1; }
    for k in $(seq 1 "$HA_NODES"); do
        nd="$dir/node-$k"
        kp="$dir/kubelet-pki/node-$k"
        mkdir -p "$kp"
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$kp/client.key" 2>/dev/null &&
        openssl req -new -key "$kp/client.key" -subj "/O=system:nodes/CN=system:node:node-$k" -out "$kp/client.csr" &&
        openssl x509 -req -in "$kp/client.csr" -CA "$nd/pki/ca.crt" -CAkey "$nd/pki/ca.key" \
            -set_serial "0x$(openssl rand -hex 16)" -days 365 -sha256 \
            -extfile <(printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n') \
            -out "$kp/client.crt" 2>/dev/null || return 1
        cat "$kp/client.crt" "$kp/client.key" >"$kp/kubelet-client-current.pem"
        chmod 600 "$kp/kubelet-client-current.pem"
        rm -f "$kp/client.key" "$kp/client.csr" "$kp/client.crt"
        "$bin" kubelet-conf repair --kubeconfig-dir "$nd" --cert-dir "$nd/pki" --kubelet-pki "$kp" -o json \
            | grep -q '"action": *"repaired"' || { echo "kubelet-conf repair failed on node-$k" >&2; return 1; }
    done
}

# ha_inventory FILE BIN PKI_DIR WORK_DIR [CLIENT_PORT STATE_DIR HARNESS]: a YAML
# inventory, group control_plane, hosts node1..node3 on the local connection,
# each with its own cert dir, kubeconfig dir, kubelet PKI dir, backup dir
# (outside the node's directory, so that a node's tree can be compared byte for
# byte), loopback address 127.0.1.K and etcd endpoints (its own member first).
# With CLIENT_PORT and STATE_DIR, the restart method is `command`: etcd is
# restarted for real with ha/restart-etcd.sh (`etcd_cluster.py restart-node --node K`,
# which fails unless the member rejoins a healthy cluster, then openssl records the
# served serials); kube-apiserver, kube-controller-manager and kube-scheduler do not
# run in this test, so their "restart" only appends a line to WORK_DIR/restarts.log,
# their health wait is `true` and they are declared kubecert_served_not_required.
# HA_ETCDCTL, when set, is the etcdctl the role's health checks run.
ha_inventory() {
    local file="$1" bin="$2" pki="$3" w="$4" port="${5:-}" state="${6:-}" harness="${7:-}" k j eps
    local python peer_port=""
    python="$(command -v python3)"
    if [ -n "$state" ]; then
        peer_port="$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["peer_port"])' "$state/cluster.json")"
    fi
    {
        cat <<EOF
# Written by ansible/tests/ha/lib.sh (ha_inventory).
control_plane:
  vars:
    ansible_connection: local
    ansible_python_interpreter: $python
    kubecert_become: false
    kubecert_bin_path: $bin
    kubecert_transport: stdio
    kubecert_etcdctl: ${HA_ETCDCTL:-$(command -v etcdctl || echo etcdctl)}
    kubecert_etcd_command_timeout: 2s
    kubecert_restart_method: command
    # No kube-apiserver, controller-manager or scheduler runs here: only etcd is real.
    kubecert_restart_command: "echo {{ inventory_hostname }} {component} not running in this test >>$w/restarts.log"
    kubecert_restart_settle: 0
    kubecert_health_delay: 1
    kubecert_health_timeout: 4
    kubecert_preflight_timeout: 4
EOF
        if [ -n "$state" ]; then
            cat <<EOF
    # Only etcd runs here: the served proof cannot reach the other components' endpoints,
    # and says so (unreachable) without failing the node; etcd's client and peer ports must
    # serve the renewed certificates.
    kubecert_served_not_required: [kube-apiserver, kube-controller-manager, kube-scheduler]
EOF
        fi
        cat <<EOF
  hosts:
EOF
        for k in $(seq 1 "$HA_NODES"); do
            eps="https://127.0.1.$k:${port:-2379}"
            for j in $(seq 1 "$HA_NODES"); do
                [ "$j" = "$k" ] || eps="$eps, https://127.0.1.$j:${port:-2379}"
            done
            cat <<EOF
    node$k:
      ansible_host: 127.0.1.$k
      kubecert_cert_dir: $pki/node-$k/pki
      kubecert_kubeconfig_dir: $pki/node-$k
      kubecert_kubelet_pki: $pki/kubelet-pki/node-$k
      kubecert_backup_dir: $w/backups/node-$k
      kubecert_etcd_endpoints: [$eps]
EOF
            if [ -n "$state" ]; then
                cat <<EOF
      kubecert_restart_commands:
        etcd: "$KUBECERT_COLLECTION/tests/ha/restart-etcd.sh $k $w $state $harness"
      # Where etcd node $k listens (no static pod manifest here to read it from): the agent's
      # health checks and served proof connect there.
      kubecert_endpoints:
        - {endpoint: etcd-client, address: "127.0.1.$k:$port"}
        - {endpoint: etcd-peer, address: "127.0.1.$k:$peer_port"}
      # The agent's health wait after each restart: the native etcd check (the agent's CLI);
      # the other components do not run here.
      kubecert_restart_health_command: >-
        case '{component}' in
        etcd) $bin health etcd --cert-dir $pki/node-$k/pki --endpoint etcd-client=127.0.1.$k:$port
        --timeout 2s --request-timeout 1s >/dev/null ;;
        *) true ;; esac
EOF
            fi
        done
    } >"$file"
}

# ha_tree DIR: every file, directory and symlink under DIR with its type, mode
# and (files) SHA-256, sorted: equal output means byte-identical trees.
ha_tree() {
    (
        cd "$1" || exit 1
        find . -printf '%y %m %p\n' | LC_ALL=C sort -k3 | while read -r type mode path; do
            if [ "$type" = f ]; then
                echo "$type $mode $(sha256sum <"$path" | cut -d' ' -f1) $path"
            else
                echo "$type $mode - $path"
            fi
        done
    )
}
