#!/usr/bin/env bash
# `make dist`: builds into dist/
#   kubecert-<version>-x86_64-linux          portable binary: glibc >= 2.28 (RHEL 8, Debian 11,
#                                             Ubuntu 20.04 and newer), checked by check-glibc.sh
#   kubecert-<version>-x86_64-linux.sha256   its SHA-256 (sha256sum -c format)
#   kubecert_<version>-1_amd64.deb           cargo-deb       } /usr/bin/kubecert, the systemd units,
#   kubecert-<version>-1.x86_64.rpm          cargo-generate-rpm } /etc/default/kubecert, man pages,
#                                                               } bash/zsh/fish completions
#   kubecert-pki-<version>.tar.gz            the Ansible collection (ansible-galaxy collection build)
# The build is cargo-zigbuild with zig as linker for x86_64-unknown-linux-gnu.2.28 (aws-lc
# included). SOURCE_DATE_EPOCH defaults to the commit's time (reproducible date in
# --version, the man pages and the packages). Tools: scripts/dist-deps.sh (target/dist-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
tools="$repo/target/dist-tools/bin"
[ -x "$tools/cargo-zigbuild" ] || scripts/dist-deps.sh
export PATH="$tools:$PATH"

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
[ -n "$version" ] || { echo "dist: no version in Cargo.toml" >&2; exit 1; }
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || date +%s)"
fi
export SOURCE_DATE_EPOCH
triple=x86_64-unknown-linux-gnu
glibc=2.28
name="kubecert-$version-x86_64-linux"

echo "[dist] cargo zigbuild --release --target $triple.$glibc (kubecert $version)"
cargo zigbuild --release --locked --target "$triple.$glibc"
bin="target/$triple/release/kubecert"
scripts/check-glibc.sh "$bin" "$glibc"

stage=target/dist/stage
rm -rf "$stage"
mkdir -p "$stage"/{man,completions,systemd,default} dist
cp "$bin" "$stage/kubecert"
"$stage/kubecert" man --out "$stage/man" >/dev/null
gzip -9n "$stage"/man/*.1
"$stage/kubecert" completions bash >"$stage/completions/kubecert.bash"
"$stage/kubecert" completions zsh >"$stage/completions/_kubecert"
"$stage/kubecert" completions fish >"$stage/completions/kubecert.fish"
# The packages install the binary as /usr/bin/kubecert (the units in the repository run
# /usr/local/bin/kubecert, where the portable binary and the Ansible role put it).
for unit in systemd/*.service systemd/*.socket systemd/*.timer; do
    sed 's#/usr/local/bin/kubecert#/usr/bin/kubecert#g' "$unit" >"$stage/systemd/$(basename "$unit")"
done
if grep -rq /usr/local/bin "$stage/systemd"; then
    echo "dist: a unit still runs /usr/local/bin: $(grep -rl /usr/local/bin "$stage/systemd")" >&2
    exit 1
fi
cp systemd/kubecert-renew.env.example "$stage/default/kubecert"
cat >"$stage/changelog" <<CHANGES
kubecert ($version-1) unstable; urgency=medium

  * kubecert $version; see /usr/share/doc/kubecert/CHANGELOG.md.gz.

 -- kubecert maintainers <maintainers@kubecert.example>  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")
CHANGES

cp "$bin" "dist/$name"
(cd dist && sha256sum "$name" >"$name.sha256")

echo "[dist] cargo deb"
rm -f dist/kubecert_*.deb dist/kubecert-*.rpm dist/kubecert-pki-*.tar.gz
cargo deb --no-build --no-strip --output dist/ >/dev/null
echo "[dist] cargo generate-rpm"
cargo generate-rpm --output dist/ >/dev/null
echo "[dist] ansible-galaxy collection build"
ansible-galaxy collection build ansible --output-path dist --force >/dev/null
(cd dist && ls -l)
