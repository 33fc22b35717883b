#!/usr/bin/env bash
# The release checks of `make test`, on the artifacts of one `make dist` (scripts/dist.sh):
#  - the artifacts are there, the checksum file verifies, the portable binary needs at most
#    GLIBC_2.28 and runs the `make run` demo;
#  - lintian reports no error on the .deb, rpmlint none on the .rpm; what they contain;
#  - as root with dpkg: `dpkg -i` the .deb, `kubecert --version`, `man -l` the installed page,
#    `systemd-analyze verify` the installed units, nothing enabled; remove and purge; then the
#    install role's package path (twice: changed=0), purged again. /etc/kubernetes is hashed
#    before and after (a sentinel tree is made when there is none, and removed).
# Prints "N passed, N failed"; exits 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
bin="dist/kubecert-$version-x86_64-linux"
deb="dist/kubecert_${version}-1_amd64.deb"
rpm="dist/kubecert-${version}-1.x86_64.rpm"
tgz="dist/kubecert-pki-$version.tar.gz"
w="$(mktemp -d "${TMPDIR:-/tmp}/kubecert-dist.XXXXXX")"
passed=0
failed=0
skipped=0
check() {  # check NAME COMMAND...
    if "${@:2}"; then echo "ok   $1"; passed=$((passed + 1)); else echo "FAIL $1"; failed=$((failed + 1)); fi
}
skip() { echo "SKIP $1"; skipped=$((skipped + 1)); }
run() {  # run EXPECTED_RC COMMAND...: output in $w/out
    local rc=0
    "${@:2}" >"$w/out" 2>&1 || rc=$?
    [ "$rc" = "$1" ] || { echo "  $* exited $rc, expected $1:"; tail -n 30 "$w/out" | sed 's/^/    /'; return 1; }
}
has() { grep -qE -- "$1" "$w/out" || { echo "  no /$1/ in:"; head -n 30 "$w/out" | sed 's/^/    /'; return 1; }; }
has_all() { local p; for p; do has "$p" || return 1; done; }
lacks() { ! grep -qE -- "$1" "$w/out" || { echo "  /$1/ in:"; grep -E -- "$1" "$w/out" | head | sed 's/^/    /'; return 1; }; }

units="kubecert.socket kubecert.service kubecert-renew.service kubecert-renew.timer kubecert-metrics.service kubecert-metrics.timer"

for f in "$bin" "$bin.sha256" "$deb" "$rpm" "$tgz"; do
    check "dist/ has $(basename "$f")" test -s "$f"
done
check "the checksum file verifies" run 0 bash -c "cd dist && sha256sum -c $(basename "$bin").sha256"
check "the portable binary needs at most GLIBC_2.28" run 0 scripts/check-glibc.sh "$bin" 2.28
check "  --version: version, commit, date, kubernetes-api" run 0 "$bin" --version
check "  says $version" has "^kubecert $version \(commit [0-9a-f]{12}, built [0-9T:-]+Z, kubernetes-api: yes\)$"
check "the portable binary runs the make run demo" run 0 make --no-print-directory demo-run KUBECERT="$repo/$bin" DEMO="$w/demo"
check "  renewing what expired within 30d, then nothing to warn about" has "^\\$ kubecert check \.\.\.$"
check "  the final check finds nothing expiring (exit 0)" run 0 "$bin" check --cert-dir "$w/demo/pki" --kubeconfig-dir "$w/demo" --warn-within 30d

# What the .deb holds.
check "deb: contents" run 0 dpkg-deb -c "$deb"
check "  /usr/bin/kubecert" has ' (\./)?usr/bin/kubecert$'
for u in $units; do check "  unit $u" has " (\./)?lib/systemd/system/$u$"; done
check "  /etc/default/kubecert" has ' (\./)?etc/default/kubecert$'
check "  man pages kubecert.1.gz, kubecert-renew.1.gz" has ' (\./)?usr/share/man/man1/kubecert-renew\.1\.gz$'
check "  bash, zsh, fish completions" has_all 'bash-completion/completions/kubecert$' 'vendor-completions/_kubecert$' 'vendor_completions.d/kubecert.fish$'
check "  nothing under /etc/kubernetes" lacks ' (\./)?etc/kubernetes'
mkdir -p "$w/ctl" && dpkg-deb -e "$deb" "$w/ctl"
check "deb: /etc/default/kubecert is a conffile" grep -qx /etc/default/kubecert "$w/ctl/conffiles"
check "deb: no maintainer script (nothing enabled or started on install)" test -z "$(ls "$w/ctl" | grep -Ev '^(control|conffiles|md5sums)$')"
check "deb: depends on libc6 >= 2.28 at most" run 0 dpkg-deb -f "$deb" Depends
check "  $(cat "$w/out")" has 'libc6 \(>= 2\.(1[0-9]|2[0-8])(\.[0-9]+)?\)'

# lintian 2.116 (Debian 12) warns once, kept: initial-upload-closes-no-bugs (the changelog entry
# closes no Debian bug: kubecert is not in Debian's archive, it is its upstream's package).
if command -v lintian >/dev/null; then
    lintian --tag-display-limit 0 "$deb" >"$w/out" 2>&1
    check "lintian: no error on the .deb" lacks '^E: '
    sed 's/^/  lintian: /' "$w/out"
else
    check "lintian is installed (scripts/dist-deps.sh --lint)" false
fi
if command -v rpmlint >/dev/null; then
    # scripts/rpmlint.toml: the errors the package build cannot fix, each with its reason.
    rpmlint -c scripts/rpmlint.toml "$rpm" >"$w/out" 2>&1
    sed 's/^/  rpmlint: /' "$w/out"
    check "rpmlint: no error on the .rpm" has ' 0 errors'
else
    check "rpmlint is installed (scripts/dist-deps.sh --lint)" false
fi
if command -v rpm >/dev/null; then
    check "rpm: contents" run 0 rpm -qlp "$rpm"
    check "  /usr/bin/kubecert, units, /etc/default/kubecert, man, completions" has_all '^/usr/bin/kubecert$' '^/usr/lib/systemd/system/kubecert-renew\.timer$' '^/etc/default/kubecert$' '^/usr/share/man/man1/kubecert\.1\.gz$' '^/usr/share/zsh/site-functions/_kubecert$'
    check "rpm: /etc/default/kubecert is %config" run 0 rpm -qcp "$rpm"
    check "  listed" has '^/etc/default/kubecert$'
    check "rpm: no scriptlets" run 0 rpm -qp --scripts "$rpm"
    check "  none" test ! -s "$w/out"
fi

# The collection tarball as a user gets it, and its install role's binary path: the portable
# binary with its checksum (the .sha256 file's), into a directory of the test (no root needed).
playbook="$repo/target/dist-tools/bin/ansible-playbook"
role() {  # role PLAYBOOK: run it with the collection installed from the tarball
    ANSIBLE_COLLECTIONS_PATH="$w/collections" ANSIBLE_NOCOLOR=1 ANSIBLE_LOCALHOST_WARNING=0 \
        "$playbook" -i localhost, -e ansible_python_interpreter=/usr/bin/python3 "$1"
}
binary_play() {  # binary_play CHECKSUM: $w/binary.yml installs $bin to $w/inst/bin/kubecert
    cat >"$w/binary.yml" <<PLAY
- name: Install the portable kubecert with the role of the collection tarball
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: kubecert.pki.install
      vars:
        kubecert_install_from: binary
        kubecert_binary_src: $repo/$bin
        kubecert_binary_checksum: "sha256:$1"
        kubecert_bin_path: $w/inst/bin/kubecert
        kubecert_bin_owner: ""
        kubecert_bin_group: ""
        kubecert_version: "$version"
        kubecert_install_systemd: false
PLAY
}
check "ansible-galaxy collection install the tarball" run 0 "$repo/target/dist-tools/bin/ansible-galaxy" collection install "$tgz" -p "$w/collections"
check "  kubecert.pki $version, with its install role" test -f "$w/collections/ansible_collections/kubecert/pki/roles/install/tasks/main.yml"
sum="$(cut -d' ' -f1 "$bin.sha256")"
binary_play 0000000000000000000000000000000000000000000000000000000000000000
check "role (binary path): a wrong checksum fails" run 2 role "$w/binary.yml"
check "  naming the checksum mismatch" has "has sha256 $sum, not the kubecert_binary_checksum sha256:0{64}: checksum mismatch\. Nothing was installed\."
check "  and installs nothing" test ! -e "$w/inst"
binary_play "$sum"
check "role (binary path): the checksum of the .sha256 file installs the binary" run 0 role "$w/binary.yml"
check "  changed" has 'localhost +: ok=[0-9]+ +changed=[1-9]'
check "  the portable binary, byte for byte" cmp -s "$bin" "$w/inst/bin/kubecert"
check "  it runs: --version says $version" run 0 "$w/inst/bin/kubecert" --version
check "  $version" has "^kubecert $version "
check "role (binary path): a second run changes nothing" run 0 role "$w/binary.yml"
check "  changed=0" has 'localhost +: ok=[0-9]+ +changed=0 '

# Install and remove on this machine: root and dpkg, and no kubecert of another origin.
etc_hash() {  # every path, mode, owner, size and content hash under /etc/kubernetes
    (cd /etc/kubernetes && find . -printf '%p %m %u %g %s %y\n' | sort && find . -type f -print0 | sort -z | xargs -0r sha256sum) | sha256sum
}
if [ "$(id -u)" != 0 ] || ! command -v dpkg >/dev/null; then
    skip "dpkg -i / remove: needs root and dpkg"
elif [ -e /usr/bin/kubecert ] && ! dpkg -S /usr/bin/kubecert >/dev/null 2>&1; then
    skip "dpkg -i / remove: /usr/bin/kubecert exists and is not from a package; not overwriting it"
else
    made_sentinel=""
    if [ ! -e /etc/kubernetes ]; then
        made_sentinel=1
        mkdir -p /etc/kubernetes/pki /etc/kubernetes/manifests
        echo "kubecert dist-test sentinel" >/etc/kubernetes/pki/ca.crt
        echo "sentinel" >/etc/kubernetes/admin.conf
        chmod 600 /etc/kubernetes/admin.conf
    fi
    before="$(etc_hash)"
    check "dpkg -i the .deb" run 0 dpkg -i "$deb"
    check "  kubecert --version" run 0 /usr/bin/kubecert --version
    check "  says $version" has "^kubecert $version \(commit "
    check "  man -l the installed page" run 0 env MANPAGER=cat MANWIDTH=100 man -l /usr/share/man/man1/kubecert.1.gz
    check "  renders it" has_all '^NAME' 'Keeps the certificates of kubeadm clusters alive'
    check "  man -l kubecert-ca-rotate.1.gz" run 0 env MANPAGER=cat man -l /usr/share/man/man1/kubecert-ca-rotate.1.gz
    unit_paths=()
    for u in $units; do unit_paths+=("/lib/systemd/system/$u"); done
    check "  systemd-analyze verify the installed units" run 0 systemd-analyze verify "${unit_paths[@]}"
    check "  with no complaint" test ! -s "$w/out"
    check "  nothing enabled" test -z "$(find /etc/systemd/system -name 'kubecert*' 2>/dev/null)"
    check "  /etc/default/kubecert installed" test -s /etc/default/kubecert
    check "dpkg -r" run 0 dpkg -r kubecert
    check "  the binary is gone" test ! -e /usr/bin/kubecert
    check "  the conffile stays until purge" test -e /etc/default/kubecert
    check "dpkg -P" run 0 dpkg -P kubecert
    check "  /etc/default/kubecert purged" test ! -e /etc/default/kubecert
    check "  /etc/kubernetes untouched" test "$(etc_hash)" = "$before"

    # The install role's package path, with apt on this machine.
    cat >"$w/role.yml" <<PLAY
- name: Install kubecert from its .deb with the role of the collection tarball
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: kubecert.pki.install
      vars:
        kubecert_install_from: package
        kubecert_package_src: $repo/$deb
        kubecert_package_cache_dir: $w/pkg-cache
        kubecert_version: "$version"
        kubecert_manage_services: false
PLAY
    check "role (package path): installs the .deb" run 0 role "$w/role.yml"
    check "  changed" has 'localhost +: ok=[0-9]+ +changed=[1-9]'
    check "  dpkg says installed, $version-1" test "$(dpkg-query -W -f '${Status} ${Version}' kubecert 2>&1)" = "install ok installed $version-1"
    check "role (package path): a second run changes nothing" run 0 role "$w/role.yml"
    check "  changed=0" has 'localhost +: ok=[0-9]+ +changed=0 '
    check "  nothing enabled" test -z "$(find /etc/systemd/system -name 'kubecert*' 2>/dev/null)"
    check "dpkg -P after the role" run 0 dpkg -P kubecert
    check "  /etc/kubernetes untouched" test "$(etc_hash)" = "$before"
    [ -z "$made_sentinel" ] || rm -rf /etc/kubernetes
fi
rm -rf "$w"
echo "dist: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
