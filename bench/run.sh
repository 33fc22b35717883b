#!/usr/bin/env bash
# Benchmarks (`make bench`). Measures and prints; asserts nothing. Numbers go in bench/RESULTS.md.
#
#  1. `kubecert check -o json` on a full demo PKI vs the usual shell loop over the same files
#     (bench/openssl-loop.sh: `openssl x509 -enddate -noout` per .crt, grep|base64 -d|openssl
#     per kubeconfig). Ratio = loop time / check time.
#     The same on every PKI in tests/fixtures (BENCH_FIXTURE_RUNS (100) check runs,
#     BENCH_FIXTURE_LOOP_RUNS (10) loop runs each).
#  2. `kubecert renew all` vs the floor: generating the same number of keys of the same type
#     and nothing else (examples/keygen_floor.rs), serially and with renew's parallelism (one
#     std::thread::scope thread per key, all at once). Ratio = renew time / floor time.
#  3. Where check's time goes (examples/check_phases.rs), in-process, per phase.
#  4. The Ansible collection: kubecert.pki.check_expiration over 3 local hosts vs
#     `ansible all -m ping` on the same inventory (ansible/tests/bench-ha.sh; goal <= 1.2x).
#     Needs ansible-playbook (the repository's .venv, or KUBECERT_VENV); skipped without it
#     or with BENCH_ANSIBLE=0. BENCH_ANSIBLE_RUNS (7) interleaved rounds.
#  5. A fleet: 100 `kubecert serve --stdio` agents, one per simulated node with its own demo
#     PKI, queried concurrently by one asyncio client (bench/fleet.py): start-up, one check
#     round across the fleet (wall), per-agent RSS idle and under load, one-shot rounds.
#     BENCH_FLEET=0 skips it; FLEET_AGENTS (100), FLEET_ROUNDS (20), FLEET_KEY_ALG (rsa-2048).
#
# Timing: check and the shell loop with hyperfine (installed with apt-get when missing and
# root; else a bash loop with the same statistics); renew and its floors interleaved, round
# by round, timed with $EPOCHREALTIME. Environment: BENCH_CHECK_RUNS (300), BENCH_LOOP_RUNS (40),
# BENCH_RENEW_RUNS (40), BENCH_ALGS ("rsa-2048 ecdsa-p256"), BENCH_DIR (a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

CHECK_RUNS=${BENCH_CHECK_RUNS:-300}
LOOP_RUNS=${BENCH_LOOP_RUNS:-40}
RENEW_RUNS=${BENCH_RENEW_RUNS:-40}
read -r -a ALGS <<<"${BENCH_ALGS:-rsa-2048 ecdsa-p256}"

if ! command -v hyperfine >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null 2>&1; } || true
fi
command -v openssl >/dev/null || { echo "[bench] openssl is needed for the shell-loop baseline" >&2; exit 1; }

echo "[bench] building (release)"
cargo build --release --quiet --bin kubecert --example keygen_floor --example check_phases
if [ -n "${BENCH_DIR:-}" ]; then
    W=$BENCH_DIR
    mkdir -p "$W"
else
    W=$(mktemp -d)
    trap 'rm -rf "$W"' EXIT
fi
# Run installed copies, as a deployed kubecert is: the file the linker wrote in target/ starts
# measurably slower (~0.5-1 ms more page-fault time per exec here, its page-cache state),
# which would be an artifact of this checkout. Both are timed below.
mkdir -p "$W/bin"
install -m 0755 target/release/kubecert target/release/examples/keygen_floor \
    target/release/examples/check_phases "$W/bin/"
KC=$W/bin/kubecert
FLOOR=$W/bin/keygen_floor
PHASES=$W/bin/check_phases

# measure NAME RUNS PREPARE CMD... -> appends "NAME mean_ms sd_ms min_ms median_ms runs cpu_ms"
# to $W/results (cpu_ms: mean user+sys of the process and its children; "-" without hyperfine)
measure() {
    local name=$1 runs=$2 prepare=$3
    shift 3
    echo "[bench] $name ($runs runs)"
    if command -v hyperfine >/dev/null; then
        local args=(-N --style basic --warmup 2 --runs "$runs" --export-csv "$W/hf.csv")
        [ -n "$prepare" ] && args+=(--prepare "$prepare")
        # check exits 4 on a PKI with expired certificates (the fixtures): not a failure here.
        [ -n "${MEASURE_ANY_EXIT:-}" ] && args+=(--ignore-failure)
        hyperfine "${args[@]}" -- "$(printf '%q ' "$@")" >"$W/hf.log" 2>&1 || { cat "$W/hf.log" >&2; return 1; }
        # command,mean,stddev,median,user,system,min,max (seconds)
        tail -1 "$W/hf.csv" | awk -F, -v n="$name" -v r="$runs" \
            '{printf "%s %.3f %.3f %.3f %.3f %d %.3f\n", n, $(NF-6)*1000, $(NF-5)*1000, $(NF-1)*1000, $(NF-4)*1000, r, ($(NF-3)+$(NF-2))*1000}' >>"$W/results"
    else
        local i t0 t1
        : >"$W/times"
        for ((i = 0; i < runs + 2; i++)); do
            [ -n "$prepare" ] && bash -c "$prepare"
            t0=$(date +%s%N)
            "$@" >/dev/null 2>&1 || true
            t1=$(date +%s%N)
            [ "$i" -ge 2 ] && echo $(((t1 - t0))) >>"$W/times"
        done
        sort -n "$W/times" | awk -v n="$name" -v r="$runs" '
            { v[NR] = $1 / 1e6; s += v[NR]; ss += v[NR] * v[NR] }
            END { m = s / NR; sd = sqrt(ss / NR - m * m);
                  med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                  printf "%s %.3f %.3f %.3f %.3f %d -\n", n, m, sd, v[1], med, r }' >>"$W/results"
    fi
}
# interleaved RUNS NAME PREPARE CMD [NAME PREPARE CMD]... : one run of each command per round,
# so load that comes and goes on a shared machine falls on all of them alike (used for the
# slow renew comparisons). CMD is split on spaces (paths here have none). Wall time by bash's
# $EPOCHREALTIME around the command alone; one warm-up round is dropped.
interleaved() {
    local runs=$1 i j
    shift
    local -a spec=("$@")
    : >"$W/itimes"
    echo "[bench] interleaved ($runs rounds): $(for ((j = 0; j < ${#spec[@]}; j += 3)); do printf '%s ' "${spec[j]}"; done)"
    for ((i = 0; i <= runs; i++)); do
        for ((j = 0; j < ${#spec[@]}; j += 3)); do
            [ -n "${spec[j + 1]}" ] && bash -c "${spec[j + 1]}"
            local t0=$EPOCHREALTIME
            ${spec[j + 2]} >/dev/null 2>&1 || { echo "[bench] ${spec[j]} failed" >&2; return 1; }
            local t1=$EPOCHREALTIME
            [ "$i" -gt 0 ] && echo "${spec[j]} $t0 $t1" >>"$W/itimes"
        done
    done
    for ((j = 0; j < ${#spec[@]}; j += 3)); do
        awk -v n="${spec[j]}" '$1 == n { print ($3 - $2) * 1000 }' "$W/itimes" | sort -n | awk -v n="${spec[j]}" '
            { v[NR] = $1; s += $1; ss += $1 * $1 }
            END { m = s / NR; sd = sqrt(ss / NR - m * m); if (sd != sd) sd = 0;
                  med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                  printf "%s %.3f %.3f %.3f %.3f %d -\n", n, m, sd, v[1], med, NR }' >>"$W/results"
    done
}
: >"$W/results"
get() { awk -v n="$1" '$1 == n { print $2 }' "$W/results"; }      # mean
getmed() { awk -v n="$1" '$1 == n { print $5 }' "$W/results"; }   # median
getcpu() { awk -v n="$1" '$1 == n { print $7 }' "$W/results"; }   # user+sys, hyperfine only

# ---- 1. check vs the shell loop ----
"$KC" demo-pki "$W/check" >/dev/null
crts=$(find "$W/check/pki" -name '*.crt' | wc -l)
confs=$(ls "$W/check"/*.conf | wc -l)
measure check-json "$CHECK_RUNS" "" "$KC" check --cert-dir "$W/check/pki" --kubeconfig-dir "$W/check" -o json
measure check-json-target "$CHECK_RUNS" "" target/release/kubecert check --cert-dir "$W/check/pki" --kubeconfig-dir "$W/check" -o json
measure openssl-loop "$LOOP_RUNS" "" bash bench/openssl-loop.sh "$W/check"
# ... and on every PKI in tests/fixtures (today's clock: their leaves are expired), as is.
FIXTURES=()
for f in tests/fixtures/pki-*; do
    fx=${f##*/}
    FIXTURES+=("$fx")
    MEASURE_ANY_EXIT=1 measure "check-$fx" "${BENCH_FIXTURE_RUNS:-100}" "" "$KC" check --cert-dir "$f" --kubeconfig-dir "$f/kubeconfig" -o json
    MEASURE_ANY_EXIT=1 measure "loop-$fx" "${BENCH_FIXTURE_LOOP_RUNS:-10}" "" bash bench/openssl-loop.sh "$f" "$f/kubeconfig"
done

# ---- 2. renew all vs the key-generation floor ----
for alg in "${ALGS[@]}"; do
    d=$W/renew-$alg
    "$KC" demo-pki "$d" --key-algorithm "$alg" >/dev/null
    n=$("$KC" renew all --cert-dir "$d/pki" --kubeconfig-dir "$d" --dry-run -o json | grep -c '"would-renew"')
    echo "$alg $n" >>"$W/keys"
    interleaved "$RENEW_RUNS" \
        "renew-$alg" "rm -rf $d/kubecert-backup" \
        "$KC renew all --cert-dir $d/pki --kubeconfig-dir $d --backup-dir $d/kubecert-backup" \
        "floor-serial-$alg" "" "$FLOOR --count $n --alg $alg --serial" \
        "floor-parallel-$alg" "" "$FLOOR --count $n --alg $alg --parallel"
done

# ---- 3. check, phase by phase ----
"$PHASES" "$W/check" 200 >"$W/phases"

# ---- the table ----
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "timer: $(command -v hyperfine >/dev/null && hyperfine --version || echo 'bash loop')"
echo
printf '%-26s %10s %9s %10s %10s %5s %10s\n' benchmark mean_ms sd_ms min_ms median_ms runs cpu_ms
while read -r name mean sd min med runs cpu; do
    printf '%-26s %10s %9s %10s %10s %5s %10s\n' "$name" "$mean" "$sd" "$min" "$med" "$runs" "$cpu"
done <"$W/results"
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
r2() { echo "$(ratio "$(get "$1")" "$(get "$2")")x (medians: $(ratio "$(getmed "$1")" "$(getmed "$2")")x)"; }
echo "check: $crts .crt + $confs kubeconfigs; shell loop / kubecert check = $(r2 openssl-loop check-json) (goal >= 100x)"
echo "       with the binary as linked in target/: $(r2 openssl-loop check-json-target)"
if [ "$(getcpu check-json)" != - ]; then
    echo "       on CPU time (user+sys, less sensitive to other load): $(ratio "$(getcpu openssl-loop)" "$(getcpu check-json)")x"
fi
for fx in "${FIXTURES[@]}"; do
    echo "check on $fx: shell loop / kubecert check = $(r2 "loop-$fx" "check-$fx") (goal >= 100x on a full PKI)"
done
while read -r alg n; do
    echo "renew all ($n $alg keys): renew / serial floor = $(r2 "renew-$alg" "floor-serial-$alg")," \
        "renew / parallel floor = $(r2 "renew-$alg" "floor-parallel-$alg") (goal <= 1.2x)"
done <"$W/keys"
echo
echo "check phases (in-process, $(head -1 "$W/phases"))"
tail -n +2 "$W/phases"

# ---- 4. the Ansible collection: check_expiration vs ping ----
if [ "${BENCH_ANSIBLE:-1}" != 0 ]; then
    echo
    if [ -x "${KUBECERT_VENV:-.venv}/bin/ansible-playbook" ] || command -v ansible-playbook >/dev/null; then
        KUBECERT_BIN="$KC" ansible/tests/bench-ha.sh "${BENCH_ANSIBLE_RUNS:-7}" ||
            echo "[bench] ansible: bench-ha.sh failed" >&2
    else
        echo "ansible: skipped (no ansible-playbook; create .venv with scripts/deps.sh)"
    fi
fi

# ---- 5. a fleet of stdio agents ----
if [ "${BENCH_FLEET:-1}" != 0 ]; then
    echo
    python3 bench/fleet.py --bin "$KC" || echo "[bench] fleet: bench/fleet.py failed" >&2
fi
