#!/usr/bin/env bash
# Failure injection for run-ha.sh: node K's etcd restart command during the
# failure scenario.
#
# The first call (MARKER absent) stands for a renewal that went wrong: it
# replaces node K's freshly renewed etcd peer certificate and key with ones from
# a foreign CA, then restarts etcd node K. The other members refuse its peer
# connections ("certificate signed by unknown authority"), so it never rejoins;
# the restart gives up after a few seconds and exits 0, as a restart through
# the static pod manifests would, leaving the member broken for the role's
# health gate to find. Later calls (the role's rollback, after it restored the
# backup) are plain restarts that must rejoin.
#
# Usage: restart-etcd-foreign-peer.sh MARKER HARNESS STATE K FOREIGN_DIR CERT_DIR RESTARTS_LOG
set -euo pipefail
[ $# -eq 7 ] || { echo "usage: $0 MARKER HARNESS STATE K FOREIGN_DIR CERT_DIR RESTARTS_LOG" >&2; exit 2; }
marker="$1" harness="$2" state="$3" k="$4" foreign="$5" cert_dir="$6" log="$7"

if [ -e "$marker" ]; then
    echo "node$k etcd" >>"$log"
    exec python3 "$harness" restart-node --state "$state" --node "$k" --timeout 30 >/dev/null
fi
touch "$marker"
echo "node$k etcd (with a foreign peer certificate)" >>"$log"
cp "$foreign/peer.crt" "$cert_dir/etcd/peer.crt"
cp "$foreign/peer.key" "$cert_dir/etcd/peer.key"
if python3 "$harness" restart-node --state "$state" --node "$k" --timeout 3 >/dev/null 2>&1; then
    echo "etcd node $k rejoined with a foreign peer certificate: the injection did not work" >&2
    exit 1
fi
echo "etcd node $k restarted with a foreign peer certificate and did not rejoin (injected)"
