#!/bin/bash
# Starts the test slapd: TLS material from /certs or a fresh self-signed CA, slapd in the foreground
# on ldap:// (389, StartTLS), ldaps:// (636) and ldapi://, then prints "SLAPD READY" once both TCP
# listeners answer a bind of the service account.
#
# Environment:
#   LDAP_DEBUG     slapd -d level (default 0: errors only); "stats" logs every connection/bind/search.
#   LDAP_TLS_SANS  extra subjectAltNames for a generated certificate, e.g. "DNS:openldap,IP:10.1.2.3".
#   LDAP_CA_OUT    where a generated CA certificate is written (default /certs-out/ca.crt).
set -euo pipefail
# PID 1 ignores signals it has no handler for: exit on SIGTERM until slapd runs (replaced below).
trap 'exit 143' TERM INT

tls=/etc/ldap/tls
ca_out=${LDAP_CA_OUT:-/certs-out/ca.crt}
service_dn='cn=ftps-gateway,ou=services,dc=example,dc=org'

if [ -f /certs/tls.crt ] && [ -f /certs/tls.key ]; then
  cp /certs/tls.crt "$tls/tls.crt"
  cp /certs/tls.key "$tls/tls.key"
  # Without a CA file the server certificate is taken as its own (self-signed) CA.
  if [ -f /certs/ca.crt ]; then cp /certs/ca.crt "$tls/ca.crt"; else cp /certs/tls.crt "$tls/ca.crt"; fi
  echo "TLS: using the certificate mounted at /certs"
else
  host=$(hostname)
  sans="DNS:localhost,IP:127.0.0.1,DNS:$host${LDAP_TLS_SANS:+,$LDAP_TLS_SANS}"
  tmp=$(mktemp -d)
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 30 \
    -subj "/CN=ftps-gateway test LDAP CA" -keyout "$tmp/ca.key" -out "$tls/ca.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2> /dev/null
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "/CN=localhost" \
    -keyout "$tls/tls.key" -out "$tmp/tls.csr" 2> /dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
    "$sans" > "$tmp/ext.cnf"
  openssl x509 -req -in "$tmp/tls.csr" -CA "$tls/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial -days 30 \
    -extfile "$tmp/ext.cnf" -out "$tls/tls.crt" 2> /dev/null
  rm -rf "$tmp"
  if mkdir -p "$(dirname "$ca_out")" 2> /dev/null && cp "$tls/ca.crt" "$ca_out" 2> /dev/null; then
    chmod 0644 "$ca_out"
    echo "TLS: generated a CA and a server certificate for $sans; CA written to $ca_out"
  else
    echo "TLS: generated a CA and a server certificate for $sans; could not write $ca_out"
  fi
  echo "SLAPD CA PEM BEGIN"
  cat "$tls/ca.crt"
  echo "SLAPD CA PEM END"
fi

args=(-F /etc/ldap/slapd.d -h 'ldap:/// ldaps:/// ldapi:///' -d "${LDAP_DEBUG:-0}")
if [ "$(id -u)" = 0 ]; then
  # Run as root: bind the ports, then slapd drops to the openldap user.
  chown openldap:openldap "$tls"/*
  chmod 0640 "$tls/tls.key"
  args+=(-u openldap -g openldap)
fi

slapd "${args[@]}" &
pid=$!
stopping=
trap 'stopping=1; kill -TERM "$pid" 2> /dev/null' TERM INT

probe() {
  LDAPTLS_REQCERT=never LDAPTLS_CACERT="$tls/ca.crt" \
    ldapwhoami -x -o nettimeout=2 -H "$1" "${@:2}" -D "$service_dn" -w service-secret > /dev/null 2>&1
}
ready=
for _ in $(seq 600); do
  kill -0 "$pid" 2> /dev/null || break
  if probe ldap://localhost:389 -ZZ && probe ldaps://localhost:636; then ready=1; break; fi
  sleep 0.05
done
if [ -z "$ready" ] && [ -z "$stopping" ]; then
  echo "SLAPD FAILED: the listeners did not answer" >&2
  kill -TERM "$pid" 2> /dev/null || true
fi
[ -n "$ready" ] && echo "SLAPD READY"

# wait returns 128+signal when the trap interrupts it; wait again for slapd's own exit status.
status=0
wait "$pid" || status=$?
if [ "$status" -gt 128 ]; then status=0; wait "$pid" || status=$?; fi
[ -n "$ready" ] || [ -n "$stopping" ] || exit 1
exit "$status"
