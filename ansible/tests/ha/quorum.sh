# shellcheck shell=bash
# The quorum watcher of the HA tests, shared by run-ha.sh and run-ha-ca.sh (sourced; needs
# $python, $state and the `harness` function of the sourcing script). Every check here is
# strict: no watcher sample (every member, every 200 ms) with fewer than 2 healthy members of
# 3, and a play that restarted every etcd member moved the leadership before stopping the
# leader. A member counts as unhealthy in a sample when its GET /health fails and fails again
# 100 ms later (the watcher's --confirm-delay): a leadership handover has a few ms without a
# leader, in which /health answers false, and that is not an outage; a stopped, frozen or
# leaderless member fails both (tests/harness: EtcdLeaderChangeWatchTest). Each check appends
# a line to quorum_notes for the final report, with how many samples needed the second probe.

quorum_notes=()

# watch_start OUT [OVERRIDES...]: the detached watcher, one JSON line per 200 ms sample
watch_start() { harness watch --state "$state" --out "$1" --interval 0.2 --detach "${@:2}" >/dev/null; }
# watch_stop OUT: stop it (its summary is the last line of OUT)
watch_stop() { harness watch-stop --state "$state" --out "$1" >/dev/null; }

# quorum_report OUT: "SAMPLES FEW LONGEST NONE TRANSIENT" over the watcher's samples: how many, how
# many with fewer than 2 healthy members, the longest run of consecutive such samples, how many
# with none, how many had a member whose first probe failed and whose second passed.
quorum_report() {
    "$python" -c 'import json,sys
n = few = run = longest = none = transient = 0
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d.get("summary"):
        continue
    n += 1
    if d["healthy_members"] < 2:
        few += 1
        run += 1
        longest = max(longest, run)
    else:
        run = 0
    none += d["healthy_members"] == 0
    transient += bool(d.get("transient"))
print(n, few, longest, none, transient)' "$1"
}

min_healthy() {
    "$python" -c 'import json,sys
print(min((d["healthy_members"] for d in map(json.loads, open(sys.argv[1])) if not d.get("summary")), default="none"))' "$1"
}

# quorum_kept OUT NAME: the watcher probed, and no sample had fewer than 2 healthy members (of
# 3). Strict: the agent moves etcd's leadership off a member before restarting it (the
# restart's `leadership`), so stopping a member never leaves the others waiting out an
# election timeout without a leader.
quorum_kept() {
    local r
    r=($(quorum_report "$1"))
    quorum_notes+=("$2: ${r[0]} probes, ${r[1]} with fewer than 2 healthy members (longest run ${r[2]}), ${r[3]} with none; lowest $(min_healthy "$1")/3; ${r[4]} needed the 100 ms second probe")
    [ "${r[0]}" -gt 0 ] && [ "${r[1]}" = 0 ]
}

# leadership_ok OUT NAME: a play that restarted every etcd member stopped the leader too, so the
# agent moved the leadership at least once before a stop ("etcd leadership moved from A to
# B" in the role's restart summary), and no restart left it unchecked.
leadership_ok() {
    local moved unchecked
    moved=$(grep -o 'etcd leadership moved from [^;"]*' "$1" | sort -u | wc -l)
    unchecked=$(grep -c 'etcd leadership not checked' "$1" || true)
    quorum_notes+=("$2: leadership moved before $moved etcd stop(s): $(grep -o 'etcd leadership moved from [^;"]*' "$1" | sort -u | sed 's/etcd leadership moved //' | tr '\n' ' ')")
    [ "$moved" -ge 1 ] && [ "$unchecked" = 0 ]
}
