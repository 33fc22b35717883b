#!/usr/bin/env bash
# Throwaway openssl generator for a kubeadm-layout multi-node PKI, following the
# `kubecert demo-pki DIR --nodes N` layout contract (see README.md here).
# Used by test_etcd_cluster.py until `kubecert demo-pki` exists; test data only.
# Env: PKI_KEYALG=rsa|ec (default rsa), PKI_KEYBITS, PKI_DAYS, PKI_IP_TEMPLATE.
#
#   mk_openssl_pki.sh pki DIR N
#       DIR/node-K/pki/{ca,front-proxy-ca,apiserver-etcd-client}.{crt,key}
#       DIR/node-K/pki/etcd/{ca,server,peer,healthcheck-client}.{crt,key}
#       (all nodes share the same CAs, CA keys included, as after kubeadm
#        --upload-certs / manual CA distribution)
#   mk_openssl_pki.sh reissue DIR K [CA_CRT CA_KEY]
#       re-issue node K's etcd server+peer certs (new key, new serial), signed by
#       CA_CRT/CA_KEY (default: node K's own pki/etcd/ca.{crt,key})
#   mk_openssl_pki.sh reissue-peer DIR K CA_CRT CA_KEY
#       re-issue only node K's etcd peer cert (new key) with the given CA
#   mk_openssl_pki.sh ca OUTDIR NAME CN
#       standalone CA OUTDIR/NAME.{crt,key}
#   mk_openssl_pki.sh client OUTDIR NAME CN CA_CRT CA_KEY
#       clientAuth leaf OUTDIR/NAME.{crt,key}
set -euo pipefail

DAYS=${PKI_DAYS:-365}
KEYBITS=${PKI_KEYBITS:-2048}
KEYALG=${PKI_KEYALG:-rsa}   # rsa (kubeadm default, RSA-2048) | ec (kubeadm ECDSA-P256)
IP_TEMPLATE=${PKI_IP_TEMPLATE:-127.0.1.%s}

die() { echo "mk_openssl_pki.sh: $*" >&2; exit 2; }

newkey() { # PATH
    case "$KEYALG" in
    rsa) openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:${KEYBITS}" -out "$1" 2>/dev/null ;;
    ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null ;;
    *) die "PKI_KEYALG must be rsa or ec" ;;
    esac
    chmod 600 "$1"
}

serial() { echo "0x$(openssl rand -hex 16)"; }

mkca() { # DIR NAME CN
    local d=$1 n=$2 cn=$3 ext
    mkdir -p "$d"
    newkey "$d/$n.key"
    ext=$(mktemp)
    cat >"$ext" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $cn
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyEncipherment,keyCertSign
subjectKeyIdentifier = hash
subjectAltName = DNS:$cn
EOF
    openssl req -x509 -new -key "$d/$n.key" -config "$ext" -extensions v3_ca \
        -days $((DAYS * 10)) -set_serial "$(serial)" -sha256 -out "$d/$n.crt"
    rm -f "$ext"
}

# leaf DIR NAME SUBJECT EKU CA_CRT CA_KEY [SAN]
leaf() {
    local d=$1 n=$2 subj=$3 eku=$4 cacrt=$5 cakey=$6 san=${7:-} ext csr
    mkdir -p "$d"
    newkey "$d/$n.key"
    ext=$(mktemp); csr=$(mktemp)
    {
        echo "basicConstraints = critical,CA:FALSE"
        echo "keyUsage = critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage = $eku"
        echo "authorityKeyIdentifier = keyid"
        [ -n "$san" ] && echo "subjectAltName = $san"
    } >"$ext"
    openssl req -new -key "$d/$n.key" -subj "$subj" -out "$csr"
    openssl x509 -req -in "$csr" -CA "$cacrt" -CAkey "$cakey" -set_serial "$(serial)" \
        -days "$DAYS" -sha256 -extfile "$ext" -out "$d/$n.crt" 2>/dev/null
    rm -f "$ext" "$csr"
}

node_san() { # K
    local ip
    # shellcheck disable=SC2059
    ip=$(printf "$IP_TEMPLATE" "$1")
    echo "DNS:node-$1,DNS:localhost,IP:$ip,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1"
}

etcd_server_peer() { # NODEDIR K CA_CRT CA_KEY [server|peer|both]
    local e=$1/pki/etcd k=$2 cacrt=$3 cakey=$4 which=${5:-both}
    if [ "$which" != peer ]; then
        leaf "$e" server "/CN=node-$k" serverAuth,clientAuth "$cacrt" "$cakey" "$(node_san "$k")"
    fi
    if [ "$which" != server ]; then
        leaf "$e" peer "/CN=node-$k" serverAuth,clientAuth "$cacrt" "$cakey" "$(node_san "$k")"
    fi
}

cmd=${1:-}; shift || true
case "$cmd" in
pki)
    [ $# -eq 2 ] || die "usage: pki DIR N"
    dir=$1; n=$2
    cas=$(mktemp -d)
    mkca "$cas" ca kubernetes
    mkca "$cas" front-proxy-ca front-proxy-ca
    mkca "$cas/etcd" ca etcd-ca
    for k in $(seq 1 "$n"); do
        nd=$dir/node-$k
        mkdir -p "$nd/pki/etcd"
        cp -p "$cas"/ca.crt "$cas"/ca.key "$cas"/front-proxy-ca.crt "$cas"/front-proxy-ca.key "$nd/pki/"
        cp -p "$cas"/etcd/ca.crt "$cas"/etcd/ca.key "$nd/pki/etcd/"
        etcd_server_peer "$nd" "$k" "$cas/etcd/ca.crt" "$cas/etcd/ca.key"
        leaf "$nd/pki/etcd" healthcheck-client "/CN=kube-etcd-healthcheck-client" clientAuth \
            "$cas/etcd/ca.crt" "$cas/etcd/ca.key"
        leaf "$nd/pki" apiserver-etcd-client "/CN=kube-apiserver-etcd-client" clientAuth \
            "$cas/etcd/ca.crt" "$cas/etcd/ca.key"
    done
    rm -rf "$cas"
    ;;
reissue | reissue-peer)
    [ $# -eq 2 ] || [ $# -eq 4 ] || die "usage: $cmd DIR K [CA_CRT CA_KEY]"
    nd=$1/node-$2
    [ -d "$nd" ] || die "no such node dir $nd"
    cacrt=${3:-$nd/pki/etcd/ca.crt}; cakey=${4:-$nd/pki/etcd/ca.key}
    if [ "$cmd" = reissue ]; then which=both; else which=peer; fi
    etcd_server_peer "$nd" "$2" "$cacrt" "$cakey" "$which"
    ;;
ca)
    [ $# -eq 3 ] || die "usage: ca OUTDIR NAME CN"
    mkca "$1" "$2" "$3"
    ;;
client)
    [ $# -eq 5 ] || die "usage: client OUTDIR NAME CN CA_CRT CA_KEY"
    leaf "$1" "$2" "/CN=$3" clientAuth "$4" "$5"
    ;;
*)
    die "usage: $0 {pki|reissue|reissue-peer|ca|client} ..."
    ;;
esac
