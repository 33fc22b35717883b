#!/usr/bin/env bash
# Failure injection for run-ha.sh: node K's etcd restart command when the restart "does
# not reload". etcd 3.4 re-reads its certificate files on every TLS handshake, so a plain
# restart cannot leave it serving an old certificate; instead, the first call (MARKER
# absent) restarts the member on STALE_ROOT, a copy of the node's files taken before the
# renewal: the member rejoins (the old certificates are valid, same CAs) and is healthy, but
# serves the old serials while the renewed files are on disk - what a restart that does not
# reload leaves behind. restart-etcd.sh records the served serials (openssl).
# Later calls (the role's rollback, after it restored the backup) are plain restarts on the
# files on disk.
#
# Usage: restart-etcd-stale.sh MARKER K WORK STATE HARNESS STALE_ROOT
set -euo pipefail
[ $# -eq 6 ] || { echo "usage: $0 MARKER K WORK STATE HARNESS STALE_ROOT" >&2; exit 2; }
marker="$1" k="$2" w="$3" state="$4" harness="$5" stale="$6"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -e "$marker" ]; then
    exec "$here/restart-etcd.sh" "$k" "$w" "$state" "$harness"
fi
touch "$marker"
exec "$here/restart-etcd.sh" "$k" "$w" "$state" "$harness" "$stale" "on a copy of its old certificate files"
