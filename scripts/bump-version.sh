#!/usr/bin/env bash
# bump-version.sh VERSION [ROOT] (make bump VERSION=x.y.z): set kubecert's version in
# Cargo.toml, Cargo.lock and ansible/galaxy.yml (the packages take Cargo.toml's), and turn
# CHANGELOG.md's "## [Unreleased]" into "## [VERSION] - <today>" under a new empty
# Unreleased section; then release-check.sh.
set -euo pipefail
version="${1:?usage: bump-version.sh VERSION [ROOT]}"
root="${2:-$(cd "$(dirname "$0")/.." && pwd)}"
here="$(cd "$(dirname "$0")" && pwd)"
if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ ]]; then
    echo "bump-version: $version is not a semantic version (x.y.z or x.y.z-pre)" >&2
    exit 2
fi
cd "$root"
if grep -q "^## \[$version\]" CHANGELOG.md; then
    echo "bump-version: CHANGELOG.md already has a $version section" >&2
    exit 1
fi
grep -q '^## \[Unreleased\]' CHANGELOG.md || { echo "bump-version: CHANGELOG.md has no ## [Unreleased] section" >&2; exit 1; }
sed -i '/^\[package\]/,/^\[/s/^version = ".*"$/version = "'"$version"'"/' Cargo.toml
awk -v v="$version" '/^name = "kubecert"$/ {print; getline; print "version = \"" v "\""; next} {print}' Cargo.lock >Cargo.lock.new
mv Cargo.lock.new Cargo.lock
sed -i 's/^version: .*$/version: '"$version"'/' ansible/galaxy.yml
today="$(date -u +%Y-%m-%d)"
sed -i "s/^## \[Unreleased\]$/## [Unreleased]\n\n## [$version] - $today/" CHANGELOG.md
"$here/release-check.sh" "$root"
