#!/usr/bin/env bash
# Coverage-guided fuzzing of kubecert's parsers with cargo-fuzz (libFuzzer + AddressSanitizer).
# Not part of `make test`; `make fuzz` runs it.
#
# Targets (fuzz/fuzz_targets/):
#   pem_bundle   kubecert::pki::cert::parse_pem_bundle  (seeds: every *.crt of tests/fixtures)
#   der_cert     kubecert::pki::cert::parse_der + signed_by (seeds: the same certs as DER)
#   private_key  kubecert::pki::cert::parse_private_key (seeds: every *.key, PKCS#8 and EC forms)
#   kubeconfig   Kubeconfig::parse + client_cert_pem + rewrite_embedded/rewrite_user_to_file
#                (seeds: every kubeconfig of tests/fixtures)
#   rpc_request  the JSON-RPC request path of both transports: stdio line framing, the HTTP
#                body as one message, rpc::wire::parse (ids, batches), every method's params
#                parser, rpc::wire::handle with a caller that may call nothing
#                (seeds: requests, batches and bad ids written below)
#
# Environment:
#   FUZZ_SECONDS   seconds per target (default 180)
#   FUZZ_TARGETS   space-separated subset (default: all five)
#   FUZZ_NICE      niceness of the fuzzing processes (default 10: other builds keep going)
#   FUZZ_SANITIZER address (default) | none
#   FUZZ_TIMEOUT   seconds one input may take before libFuzzer calls it a hang (default 30)
#
# The toolchain here is stable: RUSTC_BOOTSTRAP=1 lets stable rustc take the -Z flags
# cargo-fuzz needs (-Zsanitizer, sancov passes). A nightly toolchain, if active, works as is.
# Exits non-zero when any target finds a crash, leak, hang or OOM; the inputs are kept in
# fuzz/artifacts/<target>/ and each run's log in fuzz/logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

FUZZ_SECONDS=${FUZZ_SECONDS:-180}
FUZZ_NICE=${FUZZ_NICE:-10}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-address}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-30}
read -r -a TARGETS <<<"${FUZZ_TARGETS:-pem_bundle der_cert private_key kubeconfig rpc_request}"

if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "[fuzz] installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
command -v openssl >/dev/null || { echo "[fuzz] openssl is needed to make DER/PKCS#8 seeds" >&2; exit 1; }

# ---- seed corpora from tests/fixtures (idempotent; corpus/ is not committed) ----
FIX=tests/fixtures
seed() { # seed TARGET NAME < data
    mkdir -p "fuzz/corpus/$1"
    cat >"fuzz/corpus/$1/seed-$2"
}
while IFS= read -r f; do
    rel=${f#"$FIX"/}
    name=${rel//\//_}
    seed pem_bundle "$name" <"$f"
    openssl x509 -in "$f" -outform DER 2>/dev/null | seed der_cert "$name.der"
done < <(find "$FIX" -name '*.crt' -type f | sort)
while IFS= read -r f; do
    rel=${f#"$FIX"/}
    name=${rel//\//_}
    seed private_key "$name" <"$f"
    # The same key as PKCS#8 ("PRIVATE KEY"), the third encoding kubeadm-era tools wrote.
    openssl pkcs8 -topk8 -nocrypt -in "$f" 2>/dev/null | seed private_key "$name.pkcs8"
done < <(find "$FIX" -name '*.key' -type f | sort)
# ECDSA keys (kubeadm's encryptionAlgorithm: ECDSA-P256/P384): SEC1 and PKCS#8, made once.
for curve in prime256v1 secp384r1; do
    [ -s "fuzz/corpus/private_key/seed-ec-$curve.sec1" ] && continue
    openssl ecparam -name "$curve" -genkey -noout 2>/dev/null | seed private_key "ec-$curve.sec1"
    openssl pkcs8 -topk8 -nocrypt -in "fuzz/corpus/private_key/seed-ec-$curve.sec1" 2>/dev/null |
        seed private_key "ec-$curve.pkcs8"
done
while IFS= read -r f; do
    rel=${f#"$FIX"/}
    seed kubeconfig "${rel//\//_}" <"$f"
    # The embedded client certs are PEM bundles too.
    grep -E '^\s*client-certificate-data:' "$f" | awk '{print $2}' | tr -d '"' |
        base64 -d 2>/dev/null | seed pem_bundle "${rel//\//_}.client.crt" || true
done < <(find "$FIX" -path '*/kubeconfig/*.conf' -type f | sort)
# JSON-RPC messages: one request per method, notifications, batches, ids of every kind,
# several stdio lines in one input.
req() { printf '{"jsonrpc":"2.0","id":%s,"method":"%s","params":%s}' "$1" "$2" "$3"; }
for m in check renew restore kubelet-conf csr-export csr-import metrics approve version rpc.discover; do
    req 1 "$m" '{}' | seed rpc_request "$m"
done
req '"a"' check '{"cert_dir":"/nonexistent","now":"2026-12-01T00:00:00Z","warn_within":"30d"}' | seed rpc_request check-params
req -3 renew '{"names":["apiserver","admin.conf"],"dry_run":true,"within":"720h"}' | seed rpc_request renew-params
for id in 1.5 1e3 '{"a":1}' '[1]' true null 18446744073709551616 -9223372036854775808; do
    req "$id" version '[]' | seed rpc_request "id-$id"
done
printf '{"jsonrpc":"2.0","method":"version"}' | seed rpc_request notification
printf '[%s,{"jsonrpc":"2.0","method":"version"},%s,42]' "$(req 1 version null)" "$(req 2.5 renew '{}')" |
    seed rpc_request batch
printf '%s\r\n%s\n[]\n{not json\n' "$(req 1 version '{}')" "$(req '"x"' rpc.discover '[]')" |
    seed rpc_request lines
# Empty seed files (an absent value) are of no use.
find fuzz/corpus -type f -empty -delete

declare -A DICT=([pem_bundle]=pem [der_cert]=der [private_key]=pem [kubeconfig]=kubeconfig [rpc_request]=rpc)

# ---- build once, so build time is not fuzzing time ----
echo "[fuzz] building ${TARGETS[*]} (sanitizer: $FUZZ_SANITIZER)"
for t in "${TARGETS[@]}"; do
    nice -n "$FUZZ_NICE" cargo fuzz build -s "$FUZZ_SANITIZER" "$t"
done

mkdir -p fuzz/logs
declare -A SECS WALL EXECS RATE CORPUS CRASHES RC
failed=0
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/artifacts/$t"
    find "fuzz/artifacts/$t" -type f | sort >"fuzz/logs/$t.before"
    log=fuzz/logs/$t.log
    echo "[fuzz] $t for ${FUZZ_SECONDS}s ($(find "fuzz/corpus/$t" -type f | wc -l) corpus files) -> $log"
    start=$(date +%s.%N)
    set +e
    nice -n "$FUZZ_NICE" cargo fuzz run -s "$FUZZ_SANITIZER" "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" -rss_limit_mb=2048 \
        -max_len=65536 -dict="fuzz/dicts/${DICT[$t]}.dict" \
        -artifact_prefix="$ROOT/fuzz/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    end=$(date +%s.%N)
    find "fuzz/artifacts/$t" -type f | sort | comm -13 "fuzz/logs/$t.before" - >"fuzz/logs/$t.new"
    WALL[$t]=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.0f", b-a}')
    # libFuzzer's own count: "Done N runs in S second(s)" (build time excluded).
    SECS[$t]=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    EXECS[$t]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    RATE[$t]=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    CORPUS[$t]=$(find "fuzz/corpus/$t" -type f | wc -l)
    CRASHES[$t]=$(wc -l <"fuzz/logs/$t.new")
    RC[$t]=$rc
    if [ "$rc" -ne 0 ] || [ "${CRASHES[$t]}" -ne 0 ]; then
        failed=1
        echo "[fuzz] $t FAILED (exit $rc); new artifacts:" >&2
        cat "fuzz/logs/$t.new" >&2
        grep -E 'panicked at|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY' "$log" | head -5 >&2 || true
    fi
done

echo
printf '%-12s %8s %8s %12s %9s %8s %8s %5s\n' target fuzz_s wall_s execs exec/s corpus crashes exit
for t in "${TARGETS[@]}"; do
    printf '%-12s %8s %8s %12s %9s %8s %8s %5s\n' "$t" "${SECS[$t]:-?}" "${WALL[$t]}" \
        "${EXECS[$t]:-?}" "${RATE[$t]:-?}" "${CORPUS[$t]}" "${CRASHES[$t]}" "${RC[$t]}"
done
exit "$failed"
