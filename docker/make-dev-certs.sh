#!/usr/bin/env bash
# Development certificates for ftps-gateway: a local CA and a server certificate signed by it.
#
#   docker/make-dev-certs.sh [OUT_DIR [NAME...]]     defaults: OUT_DIR=certs, NAME=localhost 127.0.0.1
#   docker/make-dev-certs.sh certs localhost 127.0.0.1 ftp.example.test 192.0.2.10
#
# Writes to OUT_DIR:
#   ca.crt   the development CA; give it to clients (curl --cacert, FileZilla trusts on first use)
#   ca.key   its key (0600); kept so that a second run for other names reuses the same CA
#   tls.crt  server certificate, the leaf only: clients that trust ca.crt need no chain. For a
#            certificate from a real intermediate CA, put leaf + intermediates in tls.crt.
#   tls.key  its key, readable by the container user node (uid 1000), see below
# Keys are EC P-256; the server certificate is valid 825 days (Apple's limit for trusted leaves),
# has every NAME in subjectAltName (IP addresses as IP entries) and the serverAuth extended key usage.
# An existing ca.crt + ca.key in OUT_DIR is reused; tls.crt and tls.key are replaced.
set -euo pipefail

readonly CONTAINER_UID=1000
readonly DAYS=825

out=${1:-certs}
shift || true
names=("$@")
if [ ${#names[@]} -eq 0 ]; then names=(localhost 127.0.0.1); fi

command -v openssl >/dev/null || { echo "make-dev-certs: openssl is required" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# subjectAltName: IPv4/IPv6 addresses as IP entries, everything else as DNS names.
san=()
for name in "${names[@]}"; do
  if [[ $name =~ ^[0-9]+(\.[0-9]+){3}$ || $name == *:* ]]; then san+=("IP:$name"); else san+=("DNS:$name"); fi
done
san_list=$(IFS=,; echo "${san[*]}")

# The CA: created once, reused afterwards so clients keep trusting it.
if [ -f "$out/ca.crt" ] && [ -f "$out/ca.key" ]; then
  echo "make-dev-certs: reusing the CA in $out/ca.crt"
else
  (umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/ca.key")
  openssl req -x509 -new -sha256 -key "$out/ca.key" -days "$DAYS" \
    -subj "/O=ftps-gateway development/CN=ftps-gateway development CA $(date -u +%Y-%m-%d)" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$out/ca.crt"
fi

# The server key and certificate.
(umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/tls.key")
openssl req -new -sha256 -key "$work/tls.key" -subj "/CN=${names[0]}" -out "$work/tls.csr"
cat >"$work/ext.cnf" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san_list
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EOF
openssl x509 -req -sha256 -in "$work/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$DAYS" -extfile "$work/ext.cnf" -out "$work/tls.crt"
openssl verify -CAfile "$out/ca.crt" "$work/tls.crt" >/dev/null

# Permissions. Certificates are public (0644). The container user node (uid 1000) must read tls.key
# through a read-only bind mount, which keeps the host's owner and mode:
#   - run by uid 1000 (the usual first user on Linux): 0600 suffices;
#   - run by root: the key is handed to uid 1000 and stays 0600;
#   - run by anyone else: 0644, readable by every local user. Acceptable for a development key only;
#     alternatively chown it to uid 1000 yourself, or run the container with --user "$(id -u)".
mv "$work/tls.crt" "$out/tls.crt"
mv "$work/tls.key" "$out/tls.key"
chmod 0644 "$out/ca.crt" "$out/tls.crt"
chmod 0600 "$out/ca.key" "$out/tls.key"
if [ "$(id -u)" -eq 0 ]; then
  chown "$CONTAINER_UID:$CONTAINER_UID" "$out/tls.key"
elif [ "$(id -u)" -ne "$CONTAINER_UID" ]; then
  chmod 0644 "$out/tls.key"
  echo "make-dev-certs: $out/tls.key is world-readable (0644) so that uid $CONTAINER_UID in the container can read it" >&2
fi

abs=$(cd "$out" && pwd)
cat <<EOF
Created in $abs:
  ca.crt, ca.key    development CA (keep ca.key private; it is not needed by the server)
  tls.crt, tls.key  server certificate for: ${names[*]} (valid $DAYS days)

Use them:
  docker run -d -p 21:21 -p 30000-30009:30000-30009 -v "$abs:/certs:ro" ftps-gateway:latest
  or in docker-compose.yml uncomment "- ./certs:/certs:ro" (with OUT_DIR=certs)
  or in Kubernetes: kubectl create secret tls ftps-gateway-tls --cert="$abs/tls.crt" --key="$abs/tls.key"
Clients verify the server with the CA instead of -k:
  curl --ssl-reqd --cacert "$abs/ca.crt" -u ftp:PASSWORD ftp://${names[0]}:21/
EOF
