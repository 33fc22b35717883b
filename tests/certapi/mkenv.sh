#!/usr/bin/env bash
# mkenv.sh - create a throwaway PKI and kubeconfigs for the certapi test server.
#
# Usage:
#   tests/certapi/mkenv.sh [options] DIR
#
# Options:
#   --ca-cert FILE     use this CA certificate (e.g. a kubecert demo PKI's ca.crt)
#   --ca-key FILE      ... and its key (both or neither); default: create DIR/ca.crt,key
#   --server URL       API server URL written into the kubeconfigs
#                      (default https://127.0.0.1:6443; re-run with the real port)
#   --admin-cn CN      admin client cert CN        (default kubernetes-admin)
#   --admin-org O      admin client cert O         (default kubeadm:cluster-admins)
#   --user-cn CN       unprivileged client CN      (default developer)
#   --user-org O       unprivileged client O       (default developers)
#   --force            regenerate keys/certs that already exist
#
# Everything but the kubeconfigs is created only when missing, so the script
# can be run a second time with --server once the server's port is known.
#
# Files written to DIR:
#   ca.crt ca.key            (only when no --ca-cert/--ca-key are given)
#   server.crt server.key    serving cert, SAN IP:127.0.0.1, DNS:localhost
#   admin.crt admin.key      CN=kubernetes-admin, O=kubeadm:cluster-admins
#   user.crt user.key        CN=developer, O=developers
#   expired-admin.crt/.key   like admin, but validity ended yesterday
#   admin.conf user.conf expired-admin.conf   kubeconfigs with embedded data
#   env                      KEY=VALUE lines (paths) for scripts and tests
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-2}"; }

CA_CERT="" CA_KEY="" SERVER_URL="https://127.0.0.1:6443" FORCE=0
ADMIN_CN="kubernetes-admin" ADMIN_ORG="kubeadm:cluster-admins"
USER_CN="developer" USER_ORG="developers"
DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --ca-cert) CA_CERT="$2"; shift 2 ;;
    --ca-key) CA_KEY="$2"; shift 2 ;;
    --server) SERVER_URL="$2"; shift 2 ;;
    --admin-cn) ADMIN_CN="$2"; shift 2 ;;
    --admin-org) ADMIN_ORG="$2"; shift 2 ;;
    --user-cn) USER_CN="$2"; shift 2 ;;
    --user-org) USER_ORG="$2"; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) usage 0 ;;
    -*) echo "mkenv.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$DIR" ] || usage; DIR="$1"; shift ;;
  esac
done
[ -n "$DIR" ] || usage
if { [ -n "$CA_CERT" ] && [ -z "$CA_KEY" ]; } || { [ -z "$CA_CERT" ] && [ -n "$CA_KEY" ]; }; then
  echo "mkenv.sh: --ca-cert and --ca-key go together" >&2; exit 2
fi

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
umask 077
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# A minimal config so the host's openssl.cnf never matters.
cat > "$WORK/openssl.cnf" <<'EOF'
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = unused
[ ca ]
default_ca = ca_default
[ ca_default ]
database = $ENV::CERTAPI_CADIR/index.txt
new_certs_dir = $ENV::CERTAPI_CADIR
serial = $ENV::CERTAPI_CADIR/serial
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = yes
[ policy_any ]
[ v3_ca ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyEncipherment,keyCertSign
subjectKeyIdentifier = hash
[ server ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
subjectKeyIdentifier = none
subjectAltName = DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:::1
[ client ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
subjectKeyIdentifier = none
EOF
export OPENSSL_CONF="$WORK/openssl.cnf" CERTAPI_CADIR="$WORK"

utc() { date -u -d "$1" +%Y%m%d%H%M%SZ; }

need() { [ "$FORCE" = 1 ] || [ ! -s "$DIR/$1" ]; }

if [ -z "$CA_CERT" ]; then
  CA_CERT="$DIR/ca.crt" CA_KEY="$DIR/ca.key"
  if need ca.crt || [ ! -s "$DIR/ca.key" ]; then
    openssl genrsa -traditional -out "$DIR/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$DIR/ca.key" -subj "/CN=kubernetes" -days 3650 \
      -config "$WORK/openssl.cnf" -extensions v3_ca -out "$DIR/ca.crt"
    FORCE_LEAVES=1
  fi
fi
CA_CERT=$(cd "$(dirname "$CA_CERT")" && pwd)/$(basename "$CA_CERT")
CA_KEY=$(cd "$(dirname "$CA_KEY")" && pwd)/$(basename "$CA_KEY")
[ "${FORCE_LEAVES:-0}" = 1 ] && FORCE=1

# leaf NAME SUBJECT EXTSECTION STARTDATE ENDDATE
leaf() {
  local name=$1 subj=$2 ext=$3 start=$4 end=$5
  need "$name.crt" || [ ! -s "$DIR/$name.key" ] || return 0
  export CERTAPI_CADIR="$WORK/ca-$name"
  mkdir -p "$CERTAPI_CADIR"
  : > "$CERTAPI_CADIR/index.txt"
  openssl rand -hex 16 | sed 's/^./4/' > "$CERTAPI_CADIR/serial"
  openssl genrsa -traditional -out "$DIR/$name.key" 2048 2>/dev/null
  openssl req -new -key "$DIR/$name.key" -subj "$subj" -config "$WORK/openssl.cnf" \
    -out "$CERTAPI_CADIR/req.csr"
  openssl ca -batch -config "$WORK/openssl.cnf" -notext -preserveDN \
    -startdate "$start" -enddate "$end" -extensions "$ext" \
    -cert "$CA_CERT" -keyfile "$CA_KEY" -in "$CERTAPI_CADIR/req.csr" \
    -out "$DIR/$name.crt" 2>"$CERTAPI_CADIR/log" || { cat "$CERTAPI_CADIR/log" >&2; exit 1; }
}

NOW_MINUS_5M=$(utc '-5 minutes')
leaf server "/CN=kube-apiserver" server "$NOW_MINUS_5M" "$(utc '+1 year')"
leaf admin "/O=$ADMIN_ORG/CN=$ADMIN_CN" client "$NOW_MINUS_5M" "$(utc '+1 year')"
leaf user "/O=$USER_ORG/CN=$USER_CN" client "$NOW_MINUS_5M" "$(utc '+1 year')"
leaf expired-admin "/O=$ADMIN_ORG/CN=$ADMIN_CN" client "$(utc '-2 days')" "$(utc '-1 day')"

b64() { base64 -w0 < "$1"; }

# kubeconfig FILE USERNAME CERTNAME
kubeconfig() {
  local file=$1 user=$2 cert=$3
  cat > "$DIR/$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: $(b64 "$CA_CERT")
    server: $SERVER_URL
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: $user
  name: $user@kubernetes
current-context: $user@kubernetes
preferences: {}
users:
- name: $user
  user:
    client-certificate-data: $(b64 "$DIR/$cert.crt")
    client-key-data: $(b64 "$DIR/$cert.key")
EOF
}
kubeconfig admin.conf "$ADMIN_CN" admin
kubeconfig user.conf "$USER_CN" user
kubeconfig expired-admin.conf "$ADMIN_CN" expired-admin

cat > "$DIR/env" <<EOF
CA_CERT=$CA_CERT
CA_KEY=$CA_KEY
SERVER_CERT=$DIR/server.crt
SERVER_KEY=$DIR/server.key
SERVER_URL=$SERVER_URL
ADMIN_KUBECONFIG=$DIR/admin.conf
USER_KUBECONFIG=$DIR/user.conf
EXPIRED_KUBECONFIG=$DIR/expired-admin.conf
EOF
