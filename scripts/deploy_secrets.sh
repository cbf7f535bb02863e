#!/usr/bin/env bash
# Creates the secret files compose.yaml reads (README, "Production"):
#
#   scripts/deploy_secrets.sh PACS_HOST GNUHEALTH_HOST [DIR]
#
# into DIR (default ./secrets), readable by their owner only:
#   db_password, gnuhealth_admin_password, gnuhealth_sync_password,
#   orthanc_admin_password      random passwords (hex: safe in JSON and URIs)
#   tls_ca                      a CA certificate for this installation
#                               (tls_ca.key, its key: keep it offline)
#   gnuhealth_tls_certificate, gnuhealth_tls_key
#                               trytond's, for "gnuhealth" (the name Orthanc
#                               uses inside compose) and GNUHEALTH_HOST
#   orthanc_tls                 the certificate and key, in one PEM, of
#                               Orthanc's https (nginx in compose), for
#                               PACS_HOST, "orthanc" and localhost
# An existing file is kept: to use the hospital's own CA, put its
# certificates there first (tls_ca being that CA's certificate).
set -euo pipefail

pacs_host=${1:?usage: deploy_secrets.sh PACS_HOST GNUHEALTH_HOST [DIR]}
gnuhealth_host=${2:?usage: deploy_secrets.sh PACS_HOST GNUHEALTH_HOST [DIR]}
dir=${3:-secrets}
umask 077
mkdir -p "$dir"
cd "$dir"

for name in db_password gnuhealth_admin_password gnuhealth_sync_password \
            orthanc_admin_password; do
    [ -s "$name" ] || openssl rand -hex 24 > "$name"
done

# subjectAltName entries: DNS names, or IP addresses.
alt_names() {
    local name entries=()
    for name in "$@"; do
        if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then
            entries+=("IP:$name")
        else
            entries+=("DNS:$name")
        fi
    done
    local IFS=,
    echo "subjectAltName=${entries[*]}"
}

if [ ! -s tls_ca ]; then
    openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -sha256 \
        -subj "/CN=orthanc-gnuhealth CA $(hostname)" \
        -keyout tls_ca.key -out tls_ca 2>/dev/null
fi

# certificate NAME KEY CERTIFICATE HOST...: a key and a certificate signed by tls_ca.
certificate() {
    local key=$1 certificate=$2
    shift 2
    [ -s "$certificate" ] && return
    openssl req -newkey rsa:3072 -nodes -sha256 -subj "/CN=$1" \
        -addext "$(alt_names "$@")" -keyout "$key" -out "$certificate.csr" 2>/dev/null
    openssl x509 -req -in "$certificate.csr" -CA tls_ca -CAkey tls_ca.key \
        -CAcreateserial -days 825 -sha256 -copy_extensions copy \
        -out "$certificate" 2>/dev/null
    rm -f "$certificate.csr"
}

certificate gnuhealth_tls_key gnuhealth_tls_certificate "$gnuhealth_host" gnuhealth
if [ ! -s orthanc_tls ]; then
    certificate orthanc_tls.key orthanc_tls.crt "$pacs_host" orthanc localhost
    cat orthanc_tls.crt orthanc_tls.key > orthanc_tls
    rm -f orthanc_tls.crt orthanc_tls.key
fi
echo "deploy_secrets.sh: the secrets are in $(pwd)"
