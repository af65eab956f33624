#!/usr/bin/env node
// Verifies a running ftps-gateway-test/openldap container with the npm client `ldapts`.
//
//   mkdir -p /tmp/ldap-check && cd /tmp/ldap-check && npm init -y >/dev/null && npm install ldapts
//   node /path/to/test/images/openldap/check.mjs <container>        # ports and CA found with the docker CLI
//   LDAP_URL=ldap://127.0.0.1:10389 LDAPS_URL=ldaps://127.0.0.1:10636 LDAP_CA_FILE=ca.crt node check.mjs
//
// `ldapts` is resolved from the current directory when it is not installed next to this file.
// Prints one line per check and closes with "N passed, N failed"; exits 1 on any failure.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

let ldapts;
try {
  ldapts = await import('ldapts');
} catch {
  ldapts = createRequire(path.join(process.cwd(), 'check.cjs'))('ldapts');
}
const { Client, EqualityFilter, AndFilter, escapeFilter, InvalidCredentialsError, UnwillingToPerformError, InsufficientAccessError } =
  ldapts;

const container = process.argv[2];
const docker = (...args) => execFileSync('docker', args, { encoding: 'utf8' });
const hostPort = (port) => docker('port', container, `${port}/tcp`).split('\n').find((l) => l.startsWith('0.0.0.0') || l.startsWith('127.')).trim();
const ldapUrl = process.env.LDAP_URL ?? (container ? `ldap://${hostPort(389).replace('0.0.0.0', '127.0.0.1')}` : 'ldap://127.0.0.1:389');
const ldapsUrl = process.env.LDAPS_URL ?? (container ? `ldaps://${hostPort(636).replace('0.0.0.0', '127.0.0.1')}` : 'ldaps://127.0.0.1:636');
const ca = process.env.LDAP_CA_FILE
  ? readFileSync(process.env.LDAP_CA_FILE, 'utf8')
  : docker('exec', container, 'cat', '/etc/ldap/tls/ca.crt');

const BASE = 'dc=example,dc=org';
const PEOPLE = `ou=people,${BASE}`;
const GROUPS = `ou=groups,${BASE}`;
const SERVICE_DN = `cn=ftps-gateway,ou=services,${BASE}`;
const SERVICE_PW = 'service-secret';
// A fresh object per use: ldapts' startTLS() stores the plain socket in the options object it is given
// (options.socket = ...), so a shared object would make a later ldaps:// client run TLS over that old socket.
const tlsOptions = () => ({ ca: [ca], minVersion: 'TLSv1.2' });

let passed = 0;
let failed = 0;
const clients = [];
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}\n     ${err?.stack ?? err}`);
  }
}

/** A client on ldap:// upgraded with StartTLS (trusting only the test CA). */
async function startTls() {
  const c = new Client({ url: ldapUrl, timeout: 5000, connectTimeout: 5000 });
  clients.push(c);
  await c.startTLS(tlsOptions());
  return c;
}
function ldaps() {
  const c = new Client({ url: ldapsUrl, timeout: 5000, connectTimeout: 5000, tlsOptions: tlsOptions() });
  clients.push(c);
  return c;
}
const whoami = async (c) => (await c.exop('1.3.6.1.4.1.4203.1.11.3')).value ?? '';
/** The gateway's two-step login: search the user's DN as the service account, then bind as that DN. */
async function findUser(c, uid) {
  const { searchEntries } = await c.search(PEOPLE, {
    scope: 'sub',
    filter: new AndFilter({ filters: [new EqualityFilter({ attribute: 'objectClass', value: 'inetOrgPerson' }), new EqualityFilter({ attribute: 'uid', value: uid })] }),
    attributes: ['uid', 'cn', 'homeDirectory', 'uidNumber', 'gidNumber', 'memberOf'],
  });
  return searchEntries;
}

console.log(`ldap:  ${ldapUrl} (StartTLS)\nldaps: ${ldapsUrl}`);

await check('StartTLS: service account binds and whoami is its DN', async () => {
  const c = await startTls();
  await c.bind(SERVICE_DN, SERVICE_PW);
  assert.equal(await whoami(c), `dn:${SERVICE_DN}`);
});

await check('StartTLS: certificate is rejected without the test CA', async () => {
  const c = new Client({ url: ldapUrl, timeout: 5000 });
  clients.push(c);
  await assert.rejects(c.startTLS({}), /self[- ]signed|unable to (get|verify)/i);
});

await check('ldaps: service account binds and whoami is its DN', async () => {
  const c = ldaps();
  await c.bind(SERVICE_DN, SERVICE_PW);
  assert.equal(await whoami(c), `dn:${SERVICE_DN}`);
});

await check('ldaps: certificate names localhost (SNI localhost also verifies)', async () => {
  const c = new Client({ url: ldapsUrl, timeout: 5000, tlsOptions: { ...tlsOptions(), servername: 'localhost' } });
  clients.push(c);
  await c.bind(SERVICE_DN, SERVICE_PW);
});

await check('search (&(objectClass=inetOrgPerson)(uid=alice)) under ou=people', async () => {
  const c = await startTls();
  await c.bind(SERVICE_DN, SERVICE_PW);
  const { searchEntries } = await c.search(PEOPLE, { scope: 'sub', filter: '(&(objectClass=inetOrgPerson)(uid=alice))', attributes: ['uid', 'homeDirectory', 'uidNumber', 'userPassword'] });
  assert.equal(searchEntries.length, 1);
  const [alice] = searchEntries;
  assert.equal(alice.dn, `uid=alice,${PEOPLE}`);
  assert.equal(alice.homeDirectory, '/home/alice');
  assert.equal(alice.uidNumber, '10001');
  // ldapts lists a requested attribute it did not receive as []: slapd withheld the value (ACL).
  assert.deepEqual([alice.userPassword ?? []].flat(), [], 'the service account must not read userPassword');
});

await check('alice binds with alice-pass (after the service bind, same connection)', async () => {
  const c = await startTls();
  await c.bind(SERVICE_DN, SERVICE_PW);
  const [alice] = await findUser(c, 'alice');
  await c.bind(alice.dn, 'alice-pass');
  assert.equal(await whoami(c), `dn:uid=alice,${PEOPLE}`);
});

await check('alice with a wrong password: InvalidCredentialsError (code 49)', async () => {
  const c = ldaps();
  await assert.rejects(c.bind(`uid=alice,${PEOPLE}`, 'wrong'), (e) => e instanceof InvalidCredentialsError && e.code === 49);
});

await check('unknown user DN: InvalidCredentialsError too (no user enumeration via bind)', async () => {
  const c = ldaps();
  await assert.rejects(c.bind(`uid=nobody,${PEOPLE}`, 'x'), InvalidCredentialsError);
});

await check('bob and carol bind with their passwords', async () => {
  const c = ldaps();
  await c.bind(`uid=bob,${PEOPLE}`, 'bob-pass');
  await c.bind(`uid=carol,${PEOPLE}`, 'carol-pass');
  assert.equal(await whoami(c), `dn:uid=carol,${PEOPLE}`);
});

await check('memberOf (operational: ask for it): alice ftp-rw, bob ftp-ro, carol none', async () => {
  const c = await startTls();
  await c.bind(SERVICE_DN, SERVICE_PW);
  const memberOf = async (uid) => [(await findUser(c, uid))[0].memberOf ?? []].flat();
  assert.deepEqual(await memberOf('alice'), [`cn=ftp-rw,${GROUPS}`]);
  assert.deepEqual(await memberOf('bob'), [`cn=ftp-ro,${GROUPS}`]);
  assert.deepEqual(await memberOf('carol'), []);
  // Not returned unless requested.
  const { searchEntries } = await c.search(`uid=alice,${PEOPLE}`, { scope: 'base' });
  assert.equal(searchEntries[0].memberOf, undefined);
});

await check('group search (&(objectClass=groupOfNames)(member=<dn>)) agrees', async () => {
  const c = await startTls();
  await c.bind(SERVICE_DN, SERVICE_PW);
  const groups = async (dn) =>
    (await c.search(GROUPS, { scope: 'sub', filter: new AndFilter({ filters: [new EqualityFilter({ attribute: 'objectClass', value: 'groupOfNames' }), new EqualityFilter({ attribute: 'member', value: dn })] }), attributes: ['cn'] })).searchEntries.map((e) => e.cn);
  assert.deepEqual(await groups(`uid=alice,${PEOPLE}`), ['ftp-rw']);
  assert.deepEqual(await groups(`uid=bob,${PEOPLE}`), ['ftp-ro']);
  assert.deepEqual(await groups(`uid=carol,${PEOPLE}`), []);
  // DN matching is by DN syntax: case and spacing of the asserted DN do not matter.
  assert.deepEqual(await groups(`UID=Alice, OU=People, DC=Example, DC=Org`), ['ftp-rw']);
});

await check('a user (alice) reads her own memberOf after binding', async () => {
  const c = ldaps();
  await c.bind(`uid=alice,${PEOPLE}`, 'alice-pass');
  const { searchEntries } = await c.search(`uid=alice,${PEOPLE}`, { scope: 'base', attributes: ['memberOf'] });
  assert.equal(searchEntries[0].memberOf, `cn=ftp-rw,${GROUPS}`);
});

await check('dave binds with the UTF-8 password pässwörd-ü (NFC); the NFD spelling fails', async () => {
  const c = ldaps();
  await c.bind(`uid=dave,${PEOPLE}`, 'pässwörd-ü'.normalize('NFC'));
  assert.equal(await whoami(c), `dn:uid=dave,${PEOPLE}`);
  await assert.rejects(c.bind(`uid=dave,${PEOPLE}`, 'pässwörd-ü'.normalize('NFD')), InvalidCredentialsError);
  await c.bind(SERVICE_DN, SERVICE_PW);
  assert.equal((await findUser(c, 'dave'))[0].cn, 'Dave Dürr');
});

await check('eve*(x) found with an escaped filter (uid=eve\\2a\\28x\\29) and binds', async () => {
  const uid = 'eve*(x)';
  assert.equal(new EqualityFilter({ attribute: 'uid', value: uid }).toString(), '(uid=eve\\2a\\28x\\29)');
  assert.equal(escapeFilter`(uid=${uid})`, '(uid=eve\\2a\\28x\\29)');
  const c = await startTls();
  await c.bind(SERVICE_DN, SERVICE_PW);
  const found = await findUser(c, uid);
  assert.equal(found.length, 1);
  assert.equal(found[0].uid, uid);
  assert.equal(found[0].dn, `uid=eve*(x),${PEOPLE}`);
  // Unescaped, "*" is a wildcard: (uid=eve*) would match any uid starting with "eve"; with "(x)" it is a syntax error.
  await assert.rejects(c.search(PEOPLE, { filter: `(uid=${uid})` }));
  const { searchEntries } = await c.search(PEOPLE, { filter: '(uid=e*)', attributes: ['uid'] });
  assert.deepEqual(searchEntries.map((e) => e.uid), [uid]);
  await c.bind(found[0].dn, 'eve-pass');
  assert.equal(await whoami(c), `dn:uid=eve*(x),${PEOPLE}`);
});

await check('empty password with a user DN: slapd refuses the unauthenticated bind (53 unwillingToPerform)', async () => {
  const c = ldaps();
  await assert.rejects(c.bind(`uid=alice,${PEOPLE}`, ''), (e) => e instanceof UnwillingToPerformError && e.code === 53);
  assert.equal(await whoami(c), '', 'the connection stays anonymous');
});

await check('anonymous bind ("" / "") succeeds but stays anonymous and reads nothing (noSuchObject 32)', async () => {
  const c = ldaps();
  await c.bind('', '');
  assert.equal(await whoami(c), '');
  // The ACLs hide the tree from anonymous: slapd answers noSuchObject even for the existing suffix.
  await assert.rejects(c.search(BASE, { scope: 'sub', filter: '(objectClass=*)' }), (e) => e instanceof ldapts.NoSuchObjectError && e.code === 32);
});

await check('the service account is read-only (modify: InsufficientAccessError)', async () => {
  const c = ldaps();
  await c.bind(SERVICE_DN, SERVICE_PW);
  await assert.rejects(
    c.modify(`uid=alice,${PEOPLE}`, new ldapts.Change({ operation: 'replace', modification: new ldapts.Attribute({ type: 'mail', values: ['x@example.org'] }) })),
    InsufficientAccessError,
  );
});

await Promise.allSettled(clients.map((c) => c.unbind()));
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
