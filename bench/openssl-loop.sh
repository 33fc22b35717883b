#!/usr/bin/env bash
# The usual shell loop kubecert check replaces: every .crt under the PKI dir through
# `openssl x509 -enddate -noout`, and every kubeconfig's embedded client certificate
# (grep, base64 -d) piped to the same (a kubeconfig that references its certificate by path
# has no client-certificate-data line; the pipe then runs on nothing, as the loop would).
# Usage: openssl-loop.sh DIR (DIR/pki, DIR/*.conf), or openssl-loop.sh CERT_DIR KUBECONFIG_DIR
# (the tests/fixtures layout: openssl-loop.sh tests/fixtures/F tests/fixtures/F/kubeconfig).
set -u
if [ $# -ge 2 ]; then
    pki=$1 kc=$2
else
    pki=$1/pki kc=$1
fi
for f in $(find "$pki" -name '*.crt' | sort); do
    echo "$f: $(openssl x509 -enddate -noout -in "$f")"
done
for k in "$kc"/*.conf; do
    [ -e "$k" ] || continue
    echo "$k: $(grep 'client-certificate-data' "$k" | awk '{print $2}' | base64 -d | openssl x509 -enddate -noout)"
done
