#!/bin/bash
# Image build step: writes cn=config to /etc/ldap/slapd.d and loads seed.ldif into the mdb database.
# The seed goes through a running slapd (ldapi:// only) rather than slapadd so the memberof overlay
# fills in memberOf. slapd refuses to start while the TLS files named in cn=config are missing, so a
# throwaway self-signed certificate stands in during the build (entrypoint.sh writes the real ones).
set -euo pipefail
src=/opt/openldap
conf=/etc/ldap/slapd.d
work=$(mktemp -d)
admin_password=admin-secret

hash() { slappasswd -h '{SSHA}' -s "$1"; }

# cn=config: the schema entries go where config.ldif has its @SCHEMA@ marker.
awk -v rootpw="$(hash "$admin_password")" '
  /^# @SCHEMA@/ {
    n = split("core cosine nis inetorgperson", s, " ")
    for (i = 1; i <= n; i++) {
      f = "/etc/ldap/schema/" s[i] ".ldif"
      while ((getline line < f) > 0) print line
      close(f); print ""
    }
    next
  }
  { gsub(/@ROOTPW@/, rootpw); print }
' "$src/config.ldif" > "$work/config.ldif"

# Clear passwords (userPassword: x) and base64 ones (userPassword:: eA==) become {SSHA} hashes.
while IFS= read -r line; do
  case "$line" in
    'userPassword:: '*) printf 'userPassword: %s\n' "$(hash "$(printf %s "${line#userPassword:: }" | base64 -d)")" ;;
    'userPassword: '*) printf 'userPassword: %s\n' "$(hash "${line#userPassword: }")" ;;
    *) printf '%s\n' "$line" ;;
  esac
done < "$src/seed.ldif" > "$work/seed.ldif"

rm -rf "$conf" /var/lib/ldap/*
mkdir -p "$conf" /run/slapd /etc/ldap/tls
slapadd -n0 -F "$conf" -l "$work/config.ldif"
chown -R openldap:openldap "$conf" /var/lib/ldap /run/slapd /etc/ldap/tls
chmod 0750 /etc/ldap/tls
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 1 -subj /CN=build \
  -keyout /etc/ldap/tls/tls.key -out /etc/ldap/tls/tls.crt 2> /dev/null
cp /etc/ldap/tls/tls.crt /etc/ldap/tls/ca.crt
chown openldap:openldap /etc/ldap/tls/*

slapd -F "$conf" -h ldapi:/// -u openldap -g openldap
for _ in $(seq 100); do [ -S /run/slapd/ldapi ] && break; sleep 0.1; done
ldapadd -Q -Y EXTERNAL -H ldapi:/// -f "$work/seed.ldif" > /dev/null
# Fail the build if the overlay did not do its job.
ldapsearch -Q -LLL -Y EXTERNAL -H ldapi:/// -b uid=alice,ou=people,dc=example,dc=org -s base memberOf \
  | grep -qx 'memberOf: cn=ftp-rw,ou=groups,dc=example,dc=org'
pid=$(cat /run/slapd/slapd.pid)
kill -TERM "$pid"
while kill -0 "$pid" 2> /dev/null; do sleep 0.1; done
rm -rf "$work" /run/slapd/* /etc/ldap/tls/*
slapcat -n1 -F "$conf" -a '(objectClass=posixAccount)' | grep -c '^dn:' | sed 's/^/seeded users: /'
chown -R openldap:openldap /var/lib/ldap
