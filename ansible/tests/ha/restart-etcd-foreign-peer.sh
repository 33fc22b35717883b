#!/usr/bin/env bash
# Failure injection for run-ha.sh: node K's etcd restart command during the
# failure scenarios.
#
# The first call (MARKER absent) stands for a renewal that went wrong: it
# replaces node K's freshly renewed etcd peer certificate and key with ones from
# a foreign CA, then restarts etcd node K. The other members refuse its peer
# connections ("certificate signed by unknown authority"), so it never rejoins.
# MODE says what the restart command then does:
#   gate     gives up waiting after a few seconds and exits 0, as a restart
#            through the static pod manifests would, leaving the broken member
#            for the role's health gate to find;
#   restart  exits 1, as `etcd_cluster.py restart-node` does when the member
#            does not rejoin: the restart step itself fails.
# Later calls (the role's rollback, after it restored the backup) are plain
# restarts that must rejoin.
#
# Usage: restart-etcd-foreign-peer.sh MODE MARKER HARNESS STATE K FOREIGN_DIR CERT_DIR RESTARTS_LOG
set -euo pipefail
[ $# -eq 8 ] || { echo "usage: $0 MODE MARKER HARNESS STATE K FOREIGN_DIR CERT_DIR RESTARTS_LOG" >&2; exit 2; }
mode="$1" marker="$2" harness="$3" state="$4" k="$5" foreign="$6" cert_dir="$7" log="$8"
case "$mode" in gate | restart) ;; *) echo "$0: MODE must be gate or restart" >&2; exit 2 ;; esac

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
if [ "$mode" = restart ]; then
    echo "etcd node $k did not rejoin the cluster within 3s after its restart" >&2
    exit 1
fi
echo "etcd node $k restarted with a foreign peer certificate and did not rejoin (injected)"
