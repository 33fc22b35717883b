#!/usr/bin/env bash
# The usual shell loop kubecert check replaces: every .crt under pki/ through
# `openssl x509 -enddate -noout`, and every kubeconfig's embedded client certificate
# (grep, base64 -d) piped to the same. Usage: openssl-loop.sh DIR (DIR/pki, DIR/*.conf).
set -u
d=$1
for f in $(find "$d/pki" -name '*.crt' | sort); do
    echo "$f: $(openssl x509 -enddate -noout -in "$f")"
done
for k in "$d"/*.conf; do
    echo "$k: $(grep 'client-certificate-data' "$k" | awk '{print $2}' | base64 -d | openssl x509 -enddate -noout)"
done
