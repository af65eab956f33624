/*
 * LDAP_URL against a real OpenLDAP (test/images/openldap: slapd seeded with users and groups, StartTLS on 389,
 * ldaps on 636, its own CA). The store is driven directly for the many password and filter cases (real LDAP,
 * real TLS, no FTP round trip each), and through the real server with basic-ftp for logins users see.
 */
import { readdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LdapUserStore, type LdapSettings } from '../../src/auth/ldap-user-store.js';
import { oneUser, startHook } from '../support/auth-hook.js';
import type { AuthResult } from '../../src/auth/user-store.js';
import { captureLog, tempDir } from '../support/fixtures.js';
import { downloadText, ftpsLogin } from '../support/ftps-client.js';
import { freePort } from '../support/ports.js';
import { withServer } from '../support/server.js';
import { ContainerFixture, skipContainers, testImage } from './support.js';

const BASE = 'dc=example,dc=org';
const SERVICE = { bindDn: `cn=ftps-gateway,ou=services,${BASE}`, bindPassword: 'service-secret' };
const RW_GROUP = `cn=ftp-rw,ou=groups,${BASE}`;
const RO_GROUP = `cn=ftp-ro,ou=groups,${BASE}`;

const fixture = new ContainerFixture();
let ldap: StartedTestContainer;
/** The directory's CA certificate, as a file (LDAP_CA_PATH). */
let caPath: string;
let startTlsUrl: string;
let ldapsUrl: string;

/** What a login gave, and the LDAP error lines it logged. */
async function attempt(settings: Partial<LdapSettings>, user: string, password: string | Buffer) {
  const { log, lines } = captureLog();
  const root = await tempDir('ftps-ldap-root-');
  const store = await LdapUserStore.open(
    {
      url: startTlsUrl,
      startTls: true,
      caPath,
      timeoutSeconds: 5,
      ...SERVICE,
      userBase: `ou=people,${BASE}`,
      userFilter: '(uid={user})',
      homeAttribute: undefined,
      homeTemplate: '{user}',
      rwGroup: RW_GROUP,
      roGroup: RO_GROUP,
      ...settings,
    },
    { root },
    log,
  );
  const result: AuthResult = await store.authenticate(user, password);
  return { result, root, problems: lines.filter((l) => l.msg === 'LDAP unavailable: login refused').map((l) => l.problem) };
}

const reasonOf = (r: AuthResult) => (r.ok ? 'ok' : r.reason);

describe.skipIf(skipContainers)('LDAP_URL against OpenLDAP', () => {
  beforeAll(async () => {
    ldap = fixture.track(
      await new GenericContainer(await testImage('openldap'))
        .withExposedPorts(389, 636)
        .withWaitStrategy(Wait.forLogMessage('SLAPD READY'))
        .withStartupTimeout(60_000)
        .start(),
    );
    const host = ldap.getHost();
    startTlsUrl = `ldap://${host}:${ldap.getMappedPort(389)}`;
    ldapsUrl = `ldaps://${host}:${ldap.getMappedPort(636)}`;
    caPath = path.join(await fixture.tempDir('ftps-ldap-ca-'), 'ca.crt');
    await writeFile(caPath, (await ldap.exec(['cat', '/etc/ldap/tls/ca.crt'])).output);
  }, 300_000);
  afterAll(() => fixture.cleanup());

  it('logs in a read-write member over StartTLS and over ldaps, with the home from the template', async () => {
    for (const url of [startTlsUrl, ldapsUrl]) {
      const { result, root } = await attempt({ url }, 'alice', 'alice-pass');
      expect(result).toEqual({ ok: true, account: { name: 'alice', homeDir: path.join(root, 'alice'), writable: true } });
    }
  });

  it('knows a user by the name the directory spells: "ALICE" logs in as alice, in her home', async () => {
    const { result, root } = await attempt({}, 'ALICE', 'alice-pass');
    expect(result).toEqual({ ok: true, account: { name: 'alice', homeDir: path.join(root, 'alice'), writable: true } });
  });

  it('maps the read-only group to read-only and takes the home from an attribute, inside FTP_ROOT', async () => {
    const { result, root } = await attempt({ homeAttribute: 'homeDirectory' }, 'bob', 'bob-pass');
    expect(result).toEqual({ ok: true, account: { name: 'bob', homeDir: path.join(root, 'home/bob'), writable: false } });
  });

  it('refuses a wrong password, an unknown user and a member of no group', async () => {
    expect(reasonOf((await attempt({}, 'alice', 'bob-pass')).result)).toBe('wrong-password');
    expect(reasonOf((await attempt({}, 'mallory', 'alice-pass')).result)).toBe('unknown-user');
    // The password is right (the bind succeeds), but carol is in neither group.
    expect(reasonOf((await attempt({}, 'carol', 'carol-pass')).result)).toBe('not-permitted');
  });

  it('refuses an empty password before binding (slapd would take it as an anonymous success)', async () => {
    const { result, problems } = await attempt({}, 'alice', '');
    expect(reasonOf(result)).toBe('wrong-password');
    expect(problems).toEqual([]);
  });

  it('sends UTF-8 passwords as they are: the NFC spelling binds, the NFD one does not, other bytes never', async () => {
    // dave is in no group: "not-permitted" proves the bind with the password succeeded.
    expect(reasonOf((await attempt({}, 'dave', 'pässwörd-ü')).result)).toBe('not-permitted');
    expect(reasonOf((await attempt({}, 'dave', 'pässwörd-ü'.normalize('NFD'))).result)).toBe('wrong-password');
    expect(reasonOf((await attempt({}, 'dave', Buffer.from('p\xe4ssw\xf6rd-\xfc', 'latin1'))).result)).toBe('wrong-password');
  });

  it('escapes the user name in the filter: "eve*(x)" is found as itself, wildcards match nobody', async () => {
    expect(reasonOf((await attempt({}, 'eve*(x)', 'eve-pass')).result)).toBe('not-permitted');
    // Unescaped, (uid=eve*) would find eve*(x), whose password this is, and (uid=*) every user.
    expect(reasonOf((await attempt({}, 'eve*', 'eve-pass')).result)).toBe('unknown-user');
    expect(reasonOf((await attempt({}, '*', 'alice-pass')).result)).toBe('unknown-user');
    expect(reasonOf((await attempt({}, 'alice)(uid=*', 'alice-pass')).result)).toBe('unknown-user');
  });

  it('fails closed: server down, server silent, untrusted certificate, wrong service password, ambiguous filter', async () => {
    const silent = net.createServer(() => undefined).listen(0, '127.0.0.1');
    await new Promise((resolve) => silent.once('listening', resolve));
    try {
      const cases: Array<[Partial<LdapSettings>, RegExp]> = [
        [{ url: `ldap://127.0.0.1:${await freePort()}` }, /ECONNREFUSED/],
        [{ url: `ldap://127.0.0.1:${(silent.address() as net.AddressInfo).port}`, timeoutSeconds: 1 }, /^no answer within 1 s$/],
        [{ caPath: undefined }, /^StartTLS: SELF_SIGNED_CERT_IN_CHAIN/],
        [{ bindPassword: 'not-the-secret' }, /^service account bind: InvalidCredentialsError \(result code 49\)$/],
        [{ userFilter: '(|(uid={user})(uid=bob))' }, /more than one entry/],
      ];
      for (const [settings, problem] of cases) {
        const { result, problems } = await attempt(settings, 'alice', 'alice-pass');
        expect(reasonOf(result)).toBe('source-unavailable');
        expect(problems).toEqual([expect.stringMatching(problem)]);
      }
    } finally {
      silent.close();
    }
  });

  /** The server with LDAP (StartTLS) as a user source. */
  const ldapEnv = () => ({
    LDAP_URL: startTlsUrl,
    LDAP_CA_PATH: caPath,
    LDAP_BIND_DN: SERVICE.bindDn,
    LDAP_BIND_PASSWORD: SERVICE.bindPassword,
    LDAP_USER_BASE: `ou=people,${BASE}`,
    LDAP_RW_GROUP: RW_GROUP,
    LDAP_RO_GROUP: RO_GROUP,
  });

  it('lets LDAP users log in through the server, after the local sources, with their permissions', async () => {
    const env = {
      ...ldapEnv(),
      // alice is also FTP_USER here, with another password: the local source owns the name.
      FTP_USER: 'alice',
      FTP_PASSWORD: 'local-alice',
    };
    await withServer(env, async (srv) => {
      // Twice through one store: each connection's StartTLS gets TLS options of its own.
      for (let i = 0; i < 2; i++) {
        const bob = await ftpsLogin(srv.port, 'bob', 'bob-pass');
        try {
          expect(await bob.list()).toEqual([]);
          await expect(bob.uploadFrom(Readable.from([Buffer.from('x')]), 'no.txt')).rejects.toMatchObject({ code: 550 });
        } finally {
          bob.close();
        }
      }
      expect(await readdir(srv.root)).toEqual(['bob']);
      await expect(ftpsLogin(srv.port, 'alice', 'alice-pass')).rejects.toMatchObject({ code: 530 });
      const alice = await ftpsLogin(srv.port, 'alice', 'local-alice');
      try {
        await alice.uploadFrom(Readable.from([Buffer.from('local')]), 'local.txt');
        expect(await downloadText(alice, 'local.txt')).toBe('local');
      } finally {
        alice.close();
      }
      expect(srv.logs.filter((l) => l.msg === 'login failed').map((l) => l.reason)).toEqual(['wrong-password']);
      expect(JSON.stringify(srv.logs)).not.toMatch(/service-secret|bob-pass|alice-pass/);
    });
  });

  it('asks the hook before LDAP: a name the hook knows stays with the hook, a 404 goes on to LDAP', async ({ onTestFinished }) => {
    // The hook knows "hooked" and refuses a wrong password with 401; every other name is a 404.
    const hook = await startHook(onTestFinished, oneUser({ home: 'from-hook', permissions: 'rw' }));
    await withServer({ ...ldapEnv(), FTP_USER: '', FTP_PASSWORD: '', AUTH_HOOK_URL: hook.url }, async (srv) => {
      for (const [user, password] of [['hooked', 'hook-pass'], ['alice', 'alice-pass']]) {
        const client = await ftpsLogin(srv.port, user!, password!);
        client.close();
      }
      expect((await readdir(srv.root)).sort()).toEqual(['alice', 'from-hook']);
      expect(hook.requests.map((r) => r.body.user)).toEqual(['hooked', 'alice']);
    });
  });
});
