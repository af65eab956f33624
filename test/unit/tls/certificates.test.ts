import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, type Config } from '../../../src/config/config.js';
import { loadConfig } from '../../../src/config/load.js';
import { StateDir } from '../../../src/state/state-dir.js';
import { loadTlsMaterial as loadWithState } from '../../../src/tls/certificates.js';
import { captureLog } from '../../support/fixtures.js';

interface Overrides {
  readonly tls?: Partial<Config['tls']>;
  readonly data?: Partial<Config['data']>;
}

/** Every field at its default; the TLS paths point into `dir`, where nothing exists unless a test writes it. */
function testConfig(dir: string, overrides: Overrides = {}): Config {
  const base = loadConfig({ FTP_ROOT: join(dir, 'root'), STATE_DIR: join(dir, 'state'), LOG_LEVEL: 'silent' }, { dotenvPath: join(dir, 'no.env') });
  return {
    ...base,
    data: { ...base.data, ...overrides.data },
    tls: { ...base.tls, certPath: join(dir, 'tls.crt'), keyPath: join(dir, 'tls.key'), pathsExplicit: false, ...overrides.tls },
  };
}

/** As createServer loads: with STATE_DIR, where a generated pair is kept. */
async function loadTlsMaterial(config: Config) {
  return loadWithState(config, await StateDir.open(config, captureLog().log));
}

/** The problem lines of the ConfigError that loading throws. */
async function problems(config: Config): Promise<readonly string[]> {
  const error = await loadTlsMaterial(config).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return (error as ConfigError).problems;
}

const PASSPHRASE = 'correct horse battery staple';
let pairA: Pem;
let pairB: Pem;
let encrypted: Pem;

interface Pem {
  readonly cert: string;
  readonly key: string;
}

beforeAll(async () => {
  const pem = async (commonName: string, passphrase?: string): Promise<Pem> => {
    const p = await generate([{ name: 'commonName', value: commonName }], {
      keyType: 'ec',
      algorithm: 'sha256',
      passphrase,
    });
    return { cert: p.cert, key: p.private };
  };
  [pairA, pairB, encrypted] = await Promise.all([pem('a.example'), pem('b.example'), pem('c.example', PASSPHRASE)]);
});

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ftps-tls-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writePair(name: string, pair: Pem): Promise<{ certPath: string; keyPath: string }> {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  await writeFile(certPath, pair.cert);
  await writeFile(keyPath, pair.key);
  return { certPath, keyPath };
}

describe('loadTlsMaterial', () => {
  it('generates a self-signed certificate when neither default file exists', async () => {
    const { control, data } = await loadTlsMaterial(testConfig(dir));
    expect(control.selfSigned).toBe(true);
    expect(control.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(control.subject).toBe('CN=ftps-gateway');
    const days = (control.validTo.getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(364);
    expect(days).toBeLessThan(367);
    expect(data).toBe(control);
  });

  it('keeps the generated pair in STATE_DIR for the next start, and replaces one that is damaged or expiring', async () => {
    const first = await loadTlsMaterial(testConfig(dir));
    const stored = join(dir, 'state', 'self-signed.pem');
    expect((await stat(stored)).mode & 0o777).toBe(0o600);
    const again = await loadTlsMaterial(testConfig(dir));
    expect(again.control).toMatchObject({ fingerprint256: first.control.fingerprint256, key: first.control.key, selfSigned: true });

    await writeFile(stored, first.control.cert);
    const afterDamage = await loadTlsMaterial(testConfig(dir));
    expect(afterDamage.control.fingerprint256).not.toBe(first.control.fingerprint256);

    const expiring = await generate([{ name: 'commonName', value: 'ftps-gateway' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      notAfterDate: new Date(Date.now() + 10 * 86_400_000),
    });
    await writeFile(stored, `${expiring.cert}${expiring.private}`);
    const renewed = await loadTlsMaterial(testConfig(dir));
    expect(renewed.control.validTo.getTime() - Date.now()).toBeGreaterThan(364 * 86_400_000);
    expect(await readFile(stored, 'utf8')).toContain(renewed.control.cert.trim());
  });

  it('refuses a STATE_DIR that an FTP client could reach', async () => {
    const inside = { ...testConfig(dir), storage: { ...testConfig(dir).storage, stateDir: join(dir, 'root', '.state') } };
    const error = await StateDir.open(inside, captureLog().log).catch((e: unknown) => e);
    expect((error as ConfigError).problems).toEqual([
      `STATE_DIR: ${join(dir, 'root', '.state')} and FTP_ROOT (${join(dir, 'root')}) overlap: FTP clients could reach the server's key and password hash`,
    ]);
  });

  it('says "cannot read" for a default key file that exists but cannot be read', async () => {
    await writeFile(join(dir, 'tls.crt'), pairA.cert);
    await mkdir(join(dir, 'tls.key'));
    expect(await problems(testConfig(dir))).toEqual([`TLS_KEY_PATH: cannot read ${join(dir, 'tls.key')} (EISDIR)`]);
  });

  it('loads the default files when both exist', async () => {
    await writeFile(join(dir, 'tls.crt'), pairA.cert);
    await writeFile(join(dir, 'tls.key'), pairA.key);
    const { control } = await loadTlsMaterial(testConfig(dir));
    expect(control).toMatchObject({ cert: pairA.cert, key: pairA.key, selfSigned: false, subject: 'CN=a.example' });
  });

  it('refuses a default pair of which only one file exists', async () => {
    await writeFile(join(dir, 'tls.crt'), pairA.cert);
    const lines = await problems(testConfig(dir));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^TLS_KEY_PATH: cannot read .*tls\.key \(ENOENT\)/);
  });

  it('names TLS_CERT_PATH when an explicit file is missing', async () => {
    const { keyPath } = await writePair('server', pairA);
    const certPath = join(dir, 'missing.crt');
    expect(await problems(testConfig(dir, { tls: { certPath, keyPath, pathsExplicit: true } }))).toEqual([
      `TLS_CERT_PATH: cannot read ${certPath} (ENOENT)`,
    ]);
  });

  it('reports each unreadable file', async () => {
    const config = testConfig(dir, { tls: { certPath: dir, keyPath: join(dir, 'nope.key'), pathsExplicit: true } });
    expect(await problems(config)).toEqual([
      `TLS_CERT_PATH: cannot read ${dir} (EISDIR)`,
      `TLS_KEY_PATH: cannot read ${join(dir, 'nope.key')} (ENOENT)`,
    ]);
  });

  it('refuses garbage instead of PEM', async () => {
    const paths = await writePair('server', { cert: 'not a certificate', key: 'not a key' });
    const lines = await problems(testConfig(dir, { tls: { ...paths, pathsExplicit: true } }));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^TLS_CERT_PATH: .* is not a valid PEM certificate/);
    expect(lines[1]).toMatch(/^TLS_KEY_PATH: .* is not a valid PEM private key/);
  });

  it('refuses a key that does not match the certificate', async () => {
    const paths = await writePair('server', { cert: pairA.cert, key: pairB.key });
    expect(await problems(testConfig(dir, { tls: { ...paths, pathsExplicit: true } }))).toEqual([
      `TLS_CERT_PATH/TLS_KEY_PATH: the private key ${paths.keyPath} does not match the certificate ${paths.certPath}`,
    ]);
  });

  it('decrypts an encrypted key with the right passphrase', async () => {
    const paths = await writePair('server', encrypted);
    const { control } = await loadTlsMaterial(
      testConfig(dir, { tls: { ...paths, pathsExplicit: true, keyPassphrase: PASSPHRASE } }),
    );
    expect(control).toMatchObject({ key: encrypted.key, passphrase: PASSPHRASE, subject: 'CN=c.example' });
  });

  it('refuses a wrong or missing passphrase without revealing it', async () => {
    const paths = await writePair('server', encrypted);
    const wrong = await problems(testConfig(dir, { tls: { ...paths, pathsExplicit: true, keyPassphrase: 'hunter2' } }));
    expect(wrong).toEqual([`TLS_KEY_PASSPHRASE: does not decrypt ${paths.keyPath} (TLS_KEY_PATH)`]);
    expect(wrong.join('\n')).not.toContain('hunter2');
    const missing = await problems(testConfig(dir, { tls: { ...paths, pathsExplicit: true } }));
    expect(missing).toEqual([`TLS_KEY_PASSPHRASE: not set, but ${paths.keyPath} (TLS_KEY_PATH) is encrypted`]);
  });

  it('loads the DATA_TLS pair separately, validated the same way', async () => {
    const control = await writePair('control', pairA);
    const data = await writePair('data', pairB);
    const loaded = await loadTlsMaterial(
      testConfig(dir, {
        tls: { ...control, pathsExplicit: true },
        data: { tlsCertPath: data.certPath, tlsKeyPath: data.keyPath },
      }),
    );
    expect(loaded.control.subject).toBe('CN=a.example');
    expect(loaded.data.subject).toBe('CN=b.example');

    const mismatched = await writePair('mismatched', { cert: pairB.cert, key: pairA.key });
    const lines = await problems(
      testConfig(dir, {
        tls: { ...control, pathsExplicit: true },
        data: { tlsCertPath: mismatched.certPath, tlsKeyPath: mismatched.keyPath },
      }),
    );
    expect(lines).toEqual([
      `DATA_TLS_CERT_PATH/DATA_TLS_KEY_PATH: the private key ${mismatched.keyPath} does not match the certificate ${mismatched.certPath}`,
    ]);
  });

  it('uses the control pair for data when DATA_TLS is unset', async () => {
    const control = await writePair('control', pairA);
    const loaded = await loadTlsMaterial(testConfig(dir, { tls: { ...control, pathsExplicit: true } }));
    expect(loaded.data).toBe(loaded.control);
  });

  it('follows symlinks as in a Kubernetes secret mount', async () => {
    // The kubelet's layout: ..2024_01_01/ holds the files, ..data -> it, tls.crt -> ..data/tls.crt.
    const mount = join(dir, 'secret');
    await mkdir(join(mount, '..2024_01_01'), { recursive: true });
    await writeFile(join(mount, '..2024_01_01', 'tls.crt'), pairA.cert);
    await writeFile(join(mount, '..2024_01_01', 'tls.key'), pairA.key);
    await symlink('..2024_01_01', join(mount, '..data'));
    await symlink(join('..data', 'tls.crt'), join(mount, 'tls.crt'));
    await symlink(join('..data', 'tls.key'), join(mount, 'tls.key'));
    const { control } = await loadTlsMaterial(
      testConfig(dir, { tls: { certPath: join(mount, 'tls.crt'), keyPath: join(mount, 'tls.key'), pathsExplicit: true } }),
    );
    expect(control).toMatchObject({ cert: pairA.cert, selfSigned: false });
  });

  it("reports what OpenSSL's security level refuses", async () => {
    const weak = generateKeyPairSync('rsa', {
      modulusLength: 1024,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const p = await generate([{ name: 'commonName', value: 'weak.example' }], { algorithm: 'sha256', keyPair: weak });
    const paths = await writePair('weak', { cert: p.cert, key: p.private });
    expect(await problems(testConfig(dir, { tls: { ...paths, pathsExplicit: true } }))).toEqual([
      `TLS_CERT_PATH/TLS_KEY_PATH: ${paths.certPath} with ${paths.keyPath} refused by OpenSSL (ee key too small)`,
    ]);
  });

  it('reports bad TLS_CIPHERS once, as a TLS_CIPHERS problem', async () => {
    expect(await problems(testConfig(dir, { tls: { ciphers: 'NOT-A-CIPHER' } }))).toEqual([
      'TLS_CIPHERS: NOT-A-CIPHER is refused by OpenSSL (no cipher match)',
    ]);
  });

  it('accepts valid TLS_CIPHERS', async () => {
    const config = testConfig(dir, { tls: { ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256' } });
    await expect(loadTlsMaterial(config)).resolves.toBeDefined();
  });
});

describe('loadTlsMaterial: the client CA (TLS_CLIENT_CA_PATH)', () => {
  const clientAuth = (caPath: string, mode: Config['tls']['clientAuth'] = 'required'): Overrides['tls'] => ({
    clientAuth: mode,
    clientCaPath: caPath,
  });

  it('loads a CA bundle into the control material only', async () => {
    const caPath = join(dir, 'clients.pem');
    const bundle = `${pairA.cert}\n${pairB.cert}`;
    await writeFile(caPath, bundle);
    const shared = await loadTlsMaterial(testConfig(dir, { tls: clientAuth(caPath, 'optional') }));
    expect(shared.control.clientCa).toBe(bundle);
    expect(shared.data).toBe(shared.control);

    const data = await writePair('data', pairB);
    const separate = await loadTlsMaterial(
      testConfig(dir, { tls: clientAuth(caPath), data: { tlsCertPath: data.certPath, tlsKeyPath: data.keyPath } }),
    );
    expect(separate.control.clientCa).toBe(bundle);
    expect(separate.data.clientCa).toBeUndefined();
  });

  it('ignores TLS_CLIENT_CA_PATH when TLS_CLIENT_AUTH is none', async () => {
    const { control } = await loadTlsMaterial(testConfig(dir, { tls: clientAuth(join(dir, 'missing.pem'), 'none') }));
    expect(control.clientCa).toBeUndefined();
  });

  it.each([
    ['a missing file', undefined, (p: string) => `TLS_CLIENT_CA_PATH: cannot read ${p} (ENOENT)`],
    ['a file without a certificate', 'not a certificate\n', (p: string) => `TLS_CLIENT_CA_PATH: ${p} holds no PEM certificate`],
    [
      'a damaged certificate',
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
      (p: string) => new RegExp(`^TLS_CLIENT_CA_PATH: certificate 1 in ${p} is not valid \\(.+\\)$`),
    ],
  ])('names TLS_CLIENT_CA_PATH for %s', async (_label, content, expected) => {
    const caPath = join(dir, 'clients.pem');
    if (content !== undefined) await writeFile(caPath, content);
    const lines = await problems(testConfig(dir, { tls: clientAuth(caPath) }));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(expected(caPath));
  });

  it('reports a CA problem together with the other problems', async () => {
    const paths = await writePair('server', { cert: pairA.cert, key: pairB.key });
    const caPath = join(dir, 'missing.pem');
    expect(await problems(testConfig(dir, { tls: { ...paths, pathsExplicit: true, ...clientAuth(caPath) } }))).toEqual([
      `TLS_CERT_PATH/TLS_KEY_PATH: the private key ${paths.keyPath} does not match the certificate ${paths.certPath}`,
      `TLS_CLIENT_CA_PATH: cannot read ${caPath} (ENOENT)`,
    ]);
  });
});
