#!/usr/bin/env bash
# release-check.sh [ROOT]: fail unless every place that carries kubecert's version says the
# same: Cargo.toml, Cargo.lock, ansible/galaxy.yml, a "## [<version>]" section in
# CHANGELOG.md, and the artifacts in dist/ when there are any (binary, .deb, .rpm, collection
# tarball). `make bump VERSION=x.y.z` (scripts/bump-version.sh) moves them together.
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$root"
cargo_v="$(sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
lock_v="$(awk '/^name = "kubecert"$/ {getline; gsub(/^version = "|"$/, ""); print; exit}' Cargo.lock)"
galaxy_v="$(sed -n 's/^version: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' ansible/galaxy.yml | head -n1)"
problems=()
[ -n "$cargo_v" ] || problems+=("Cargo.toml has no [package] version")
[ "$lock_v" = "$cargo_v" ] || problems+=("Cargo.lock says kubecert ${lock_v:-<none>}, Cargo.toml $cargo_v (run cargo update -p kubecert --offline)")
[ "$galaxy_v" = "$cargo_v" ] || problems+=("ansible/galaxy.yml says ${galaxy_v:-<none>}, Cargo.toml $cargo_v")
grep -q "^## \[$cargo_v\]" CHANGELOG.md ||
    problems+=("CHANGELOG.md has no \"## [$cargo_v]\" section (make bump VERSION=$cargo_v)")
# Artifacts of another version left in dist/ would be shipped by mistake.
if [ -d dist ]; then
    for f in dist/*; do
        [ -e "$f" ] || continue
        base="$(basename "$f")"
        case "$base" in
            kubecert-"$cargo_v"-x86_64-linux | kubecert-"$cargo_v"-x86_64-linux.sha256 | \
                kubecert_"$cargo_v"-1_amd64.deb | kubecert-"$cargo_v"-1.x86_64.rpm | kubecert-pki-"$cargo_v".tar.gz) ;;
            *) problems+=("$f is not an artifact of $cargo_v (make dist again)") ;;
        esac
        if [ "${base##*.}" = deb ] && command -v dpkg-deb >/dev/null; then
            deb_v="$(dpkg-deb -f "$f" Version)"
            [ "$deb_v" = "$cargo_v-1" ] || problems+=("$f has Version $deb_v, not $cargo_v-1")
        fi
    done
fi
if [ ${#problems[@]} -gt 0 ]; then
    echo "release-check: the versions differ:" >&2
    printf '  %s\n' "${problems[@]}" >&2
    exit 1
fi
echo "release-check: kubecert $cargo_v in Cargo.toml, Cargo.lock, ansible/galaxy.yml, CHANGELOG.md$([ -d dist ] && echo ' and dist/')"
