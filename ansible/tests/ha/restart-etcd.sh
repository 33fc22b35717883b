#!/usr/bin/env bash
# run-ha.sh's etcd restart command (the role's `command` restart method): restarts etcd
# node K for real (`etcd_cluster.py restart-node`, which fails unless the member rejoins a
# healthy cluster), then records with openssl which certificate the live member serves on
# its client and peer ports, right after this restart:
#   WORK/restarts.log  "nodeK etcd[ (NOTE)]"
#   WORK/served.log    "nodeK etcd-client SERIAL" and "nodeK etcd-peer SERIAL" (openssl's hex)
# ROOT (default: the cluster's) is the directory whose node-K/pki/etcd files etcd is started
# on: a copy of older files makes the member serve those instead of the files on disk.
#
# Usage: restart-etcd.sh K WORK STATE HARNESS [ROOT [NOTE]]
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 K WORK STATE HARNESS [ROOT [NOTE]]" >&2; exit 2; }
k="$1" w="$2" state="$3" harness="$4" root="${5:-}" note="${6:-}"
echo "node$k etcd${note:+ ($note)}" >>"$w/restarts.log"
python3 "$harness" restart-node --state "$state" --node "$k" --timeout 30 ${root:+--root "$root"} >/dev/null
read -r ip client peer cluster_root < <(python3 -c '
import json, sys
c = json.load(open(sys.argv[1] + "/cluster.json"))
print(c["ip_template"].format(k=int(sys.argv[2])), c["client_port"], c["peer_port"], c["root"])' "$state" "$k")
c="$cluster_root/node-$k/pki/etcd"
for ep in "etcd-client $client" "etcd-peer $peer"; do
    set -- $ep
    serial="$(timeout 10 openssl s_client -connect "$ip:$2" -CAfile "$c/ca.crt" \
        -cert "$c/healthcheck-client.crt" -key "$c/healthcheck-client.key" </dev/null 2>/dev/null |
        openssl x509 -noout -serial | cut -d= -f2)"
    echo "node$k $1 ${serial:-none}" >>"$w/served.log"
done
