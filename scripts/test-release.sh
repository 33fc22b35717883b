#!/usr/bin/env bash
# Tests of the release scripts that need no build: bump-version.sh moves every version
# together, release-check.sh fails naming the file that differs, and check-glibc.sh fails on a
# binary that needs a glibc above 2.28 (the host-built one: Debian 12's glibc 2.36 gives it
# GLIBC_2.34 symbols). Usage: scripts/test-release.sh [HOST_BINARY]
set -uo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
host_bin="${1:-target/debug/kubecert}"
w="$(mktemp -d "${TMPDIR:-/tmp}/kubecert-release.XXXXXX")"
trap 'rm -rf "$w"' EXIT
passed=0
failed=0
check() {  # check NAME COMMAND...: one assertion
    if "${@:2}"; then echo "ok   $1"; passed=$((passed + 1)); else echo "FAIL $1"; failed=$((failed + 1)); fi
}
copy() {  # a fresh copy of the versioned files in $w/r
    rm -rf "$w/r" && mkdir -p "$w/r/ansible" &&
        cp Cargo.toml Cargo.lock CHANGELOG.md "$w/r/" && cp ansible/galaxy.yml "$w/r/ansible/"
}
run() {  # run EXPECTED_RC COMMAND...: output in $w/out
    local rc=0
    "${@:2}" >"$w/out" 2>&1 || rc=$?
    [ "$rc" = "$1" ] || { echo "  $* exited $rc, expected $1:"; sed 's/^/    /' "$w/out"; return 1; }
}
has() { grep -qF -- "$1" "$w/out" || { echo "  no \"$1\" in:"; sed 's/^/    /' "$w/out"; return 1; }; }

copy
check "release-check passes on the repository" run 0 scripts/release-check.sh "$w/r"
check "bump refuses a version that is not semantic" run 2 scripts/bump-version.sh 1.2 "$w/r"
check "  and changes nothing" cmp -s Cargo.toml "$w/r/Cargo.toml"
check "bump 0.9.0 moves every version and passes release-check" run 0 scripts/bump-version.sh 0.9.0 "$w/r"
check "  Cargo.toml" grep -qx 'version = "0.9.0"' "$w/r/Cargo.toml"
check "  Cargo.lock" grep -A1 -x 'name = "kubecert"' "$w/r/Cargo.lock" -q
check "  Cargo.lock's kubecert entry" test "$(grep -A1 -x 'name = "kubecert"' "$w/r/Cargo.lock" | tail -n1)" = 'version = "0.9.0"'
check "  only kubecert's entry in Cargo.lock changed" test "$(diff Cargo.lock "$w/r/Cargo.lock" | grep -c '^[<>]')" = 2
check "  ansible/galaxy.yml" grep -qx 'version: 0.9.0' "$w/r/ansible/galaxy.yml"
check "  CHANGELOG.md: a dated 0.9.0 section under a new Unreleased" test "$(grep '^## \[' "$w/r/CHANGELOG.md" | head -n2 | tr '\n' '|')" = "## [Unreleased]|## [0.9.0] - $(date -u +%Y-%m-%d)|"
sed -i 's/^version: .*/version: 0.9.1/' "$w/r/ansible/galaxy.yml"
check "release-check fails when galaxy.yml differs" run 1 scripts/release-check.sh "$w/r"
check "  naming the file and both versions" has "ansible/galaxy.yml says 0.9.1, Cargo.toml 0.9.0"
copy
sed -i '/^\[package\]/,/^\[/s/^version = ".*"$/version = "0.1.1"/' "$w/r/Cargo.toml"
check "release-check fails when only Cargo.toml moved" run 1 scripts/release-check.sh "$w/r"
check "  naming Cargo.lock" has "Cargo.lock says kubecert 0.1.0, Cargo.toml 0.1.1"
check "  naming galaxy.yml" has "ansible/galaxy.yml says 0.1.0, Cargo.toml 0.1.1"
check "  naming CHANGELOG.md" has 'CHANGELOG.md has no "## [0.1.1]" section'
copy
mkdir -p "$w/r/dist" && touch "$w/r/dist/kubecert-0.0.9-x86_64-linux"
check "release-check fails on an artifact of another version in dist/" run 1 scripts/release-check.sh "$w/r"
check "  naming it" has "dist/kubecert-0.0.9-x86_64-linux is not an artifact of 0.1.0"

if [ -x "$host_bin" ]; then
    check "check-glibc fails on the host-built binary (needs GLIBC_2.34)" run 1 scripts/check-glibc.sh "$host_bin" 2.28
    check "  naming the version needed and the symbols" has "needs GLIBC_2.34, above the allowed GLIBC_2.28 (versions above it: "
    check "check-glibc passes it with a higher limit" run 0 scripts/check-glibc.sh "$host_bin" 2.36
else
    echo "FAIL check-glibc: no host-built binary at $host_bin (cargo build first)"
    failed=$((failed + 1))
fi
check "check-glibc refuses a file that is not ELF" run 2 scripts/check-glibc.sh Cargo.toml
echo "release scripts: $passed passed, $failed failed"
[ "$failed" = 0 ]
