/*
 * Certificate hot reload end to end: the real server, real TLS clients, and the certificate files swapped
 * underneath it the way the kubelet updates a mounted secret. New handshakes see the new certificate; a
 * session already running keeps its own, and its protected transfers still resume its control session.
 */
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { ftpsLogin } from '../support/ftps-client.js';
import { fingerprintOf, pemPair, SecretMount, type PemPair } from '../support/certificates.js';
import { listNames, loggedIn, readAll, RawFtpClient, secureClient } from '../support/raw-client.js';
import { afterThisTest, tempDir as makeTempDir } from '../support/fixtures.js';
import { withServer, type RunningServer } from '../support/server.js';

const tempDir = () => makeTempDir('ftps-certs-');

/** A client closed after the test. */
function track<T extends RawFtpClient>(client: T): T {
  afterThisTest(() => client.close());
  return client;
}

const logged = (srv: RunningServer, msg: string) => srv.logs.filter((l) => l.msg === msg);
const errors = (srv: RunningServer) => srv.logs.filter((l) => l.level === 50).map((l) => String(l.msg));

/** A passive data connection without resuming, allowed only when session reuse is not required. */
async function freshDataFingerprint(c: RawFtpClient): Promise<string | undefined> {
  const data = await c.openPassive({ tls: true, resume: false });
  const listing = readAll(data);
  const secure = new Promise((resolve) => data.once('secureConnect', resolve));
  expect((await c.send('NLST')).code).toBe(150);
  // The server starts TLS once it knows the transfer, so the handshake may complete after the 150.
  await secure;
  const fingerprint = fingerprintOf(data);
  await listing;
  expect((await c.read()).code).toBe(226);
  return fingerprint;
}

let a: PemPair;
let b: PemPair;
let c: PemPair;
let d: PemPair;
beforeAll(async () => {
  [a, b, c, d] = await Promise.all([pemPair('a.example'), pemPair('b.example'), pemPair('c.example'), pemPair('d.example')]);
});

describe('certificate hot reload', () => {
  it('uses a pair swapped in by the kubelet for new connections, while a running session keeps its own', async () => {
    const mount = await SecretMount.create(await tempDir(), SecretMount.tls(a));
    // The 30 s poll runs on a fake clock that never moves: only the directory watch can notice the swap.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    afterThisTest(() => vi.useRealTimers());
    await withServer({ TLS_CERT_PATH: mount.certPath, TLS_KEY_PATH: mount.keyPath }, async (srv) => {
      const running = track(await loggedIn(srv.port));
      expect(fingerprintOf(running.socket)).toBe(a.fingerprint256);
      await writeFile(path.join(srv.root, 'before.txt'), 'x');
      expect(await listNames(running)).toContain('before.txt');

      await mount.update(SecretMount.tls(b));
      await vi.waitFor(() => expect(logged(srv, 'certificate reloaded')).toHaveLength(1), { timeout: 10_000, interval: 10 });
      expect(logged(srv, 'certificate reloaded')[0]).toMatchObject({ fingerprint256: b.fingerprint256, file: mount.certPath });

      const fresh = track(await loggedIn(srv.port));
      expect(fingerprintOf(fresh.socket)).toBe(b.fingerprint256);
      expect(await listNames(fresh)).toContain('before.txt');

      // The running session: its PROT P data connections resume its old session (a fresh one would get 522).
      const upload = await running.openPassive({ tls: true });
      expect((await running.send('STOR after.txt')).code).toBe(150);
      upload.end('written after the swap');
      expect((await running.read()).code).toBe(226);
      expect(await readFile(path.join(srv.root, 'after.txt'), 'utf8')).toBe('written after the swap');
      expect(await listNames(running)).toEqual(expect.arrayContaining(['before.txt', 'after.txt']));
      expect(errors(srv)).toEqual([]);
    });
  });

  it('switches the shared contexts and the DATA_TLS_* pair when session reuse is not required', async () => {
    const control = await SecretMount.create(await tempDir(), SecretMount.tls(a));
    const data = await SecretMount.create(await tempDir(), SecretMount.tls(b));
    const env = {
      TLS_CERT_PATH: control.certPath,
      TLS_KEY_PATH: control.keyPath,
      DATA_TLS_CERT_PATH: data.certPath,
      DATA_TLS_KEY_PATH: data.keyPath,
      TLS_REQUIRE_SESSION_REUSE: 'false',
    };
    await withServer(env, async (srv) => {
      const running = track(await loggedIn(srv.port));
      expect(await freshDataFingerprint(running)).toBe(b.fingerprint256);

      await Promise.all([control.update(SecretMount.tls(c)), data.update(SecretMount.tls(d))]);
      await vi.waitFor(() => expect(srv.server.stats.tlsContexts).toBeGreaterThan(1), { timeout: 5_000, interval: 10 });
      await vi.waitFor(
        () => {
          const fingerprints = logged(srv, 'certificate reloaded').map((l) => l.fingerprint256);
          expect(fingerprints).toEqual(expect.arrayContaining([c.fingerprint256, d.fingerprint256]));
        },
        { timeout: 5_000, interval: 10 },
      );

      const fresh = track(await loggedIn(srv.port));
      expect(fingerprintOf(fresh.socket)).toBe(c.fingerprint256);
      expect(await freshDataFingerprint(fresh)).toBe(d.fingerprint256);
      // The running session still holds the shared contexts it started with.
      expect(await freshDataFingerprint(running)).toBe(b.fingerprint256);
      expect(await listNames(running)).toBeDefined();
    });
  });

  it('refuses a mismatched or broken pair with an error naming the file, and keeps the current one', async () => {
    const mount = await SecretMount.create(await tempDir(), SecretMount.tls(a));
    await withServer({ TLS_CERT_PATH: mount.certPath, TLS_KEY_PATH: mount.keyPath }, async (srv) => {
      const running = track(await loggedIn(srv.port));
      const wait = (n: number) => vi.waitFor(() => expect(errors(srv)).toHaveLength(n), { timeout: 5_000, interval: 10 });

      await mount.update({ 'tls.crt': b.cert, 'tls.key': a.key });
      await wait(1);
      expect(errors(srv)[0]).toBe(
        'certificates not reloaded, keeping the current ones: ' +
          `TLS_CERT_PATH/TLS_KEY_PATH: the private key ${mount.keyPath} does not match the certificate ${mount.certPath}`,
      );
      expect(fingerprintOf(track(await secureClient(srv.port)).socket)).toBe(a.fingerprint256);

      await mount.update({ 'tls.crt': 'garbage', 'tls.key': b.key });
      await wait(2);
      expect(errors(srv)[1]).toContain(`TLS_CERT_PATH: ${mount.certPath} is not a valid PEM certificate`);
      expect(fingerprintOf(track(await secureClient(srv.port)).socket)).toBe(a.fingerprint256);
      expect(await listNames(running)).toBeDefined();

      // Fixed: the next update is taken.
      await mount.update(SecretMount.tls(b));
      await vi.waitFor(() => expect(logged(srv, 'certificate reloaded')).toHaveLength(1), { timeout: 5_000, interval: 10 });
      expect(fingerprintOf(track(await secureClient(srv.port)).socket)).toBe(b.fingerprint256);
      expect(logged(srv, 'certificate reloaded')).toHaveLength(1);
    });
  });

  it('reload() (what SIGHUP calls) re-reads the certificates and the users file at once', async () => {
    const dir = await tempDir();
    const certPath = path.join(dir, 'server.crt');
    const keyPath = path.join(dir, 'server.key');
    const usersFile = path.join(dir, 'users');
    const users = (password: string) => writeFile(usersFile, `bob:${bcrypt.hashSync(password, 4)}:bob:rw\n`);
    await Promise.all([writeFile(certPath, a.cert), writeFile(keyPath, a.key), users('old')]);
    await withServer({ TLS_CERT_PATH: certPath, TLS_KEY_PATH: keyPath, FTP_USERS_FILE: usersFile }, async (srv) => {
      // Unchanged files: forced all the same, the certificate is logged again.
      await srv.server.reload();
      expect(logged(srv, 'certificate reloaded')).toEqual([expect.objectContaining({ fingerprint256: a.fingerprint256 })]);

      // Rewritten in place, no waiting for the watch: in use as soon as reload() returns.
      await Promise.all([writeFile(certPath, b.cert), writeFile(keyPath, b.key), users('new')]);
      await srv.server.reload();
      expect(fingerprintOf(track(await secureClient(srv.port)).socket)).toBe(b.fingerprint256);
      (await ftpsLogin(srv.port, 'bob', 'new')).close();
    });
  });
});

describe('SIGHUP', () => {
  const MAIN = path.resolve('dist/main.js');

  it('makes the running process reload, and does not end it', async () => {
    const dir = await tempDir();
    const certPath = path.join(dir, 'server.crt');
    const keyPath = path.join(dir, 'server.key');
    await Promise.all([writeFile(certPath, a.cert), writeFile(keyPath, a.key)]);
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(free));
      });
    });
    const env = {
      PATH: process.env.PATH ?? '',
      FTP_ROOT: path.join(dir, 'data'),
      FTP_USER: 'bob',
      FTP_PASSWORD: 'a password',
      FTPS_BIND_ADDRESS: '127.0.0.1',
      FTPS_PORT: String(port),
      HTTP_PORT: '0',
      PASV_MIN_PORT: '39910',
      PASV_MAX_PORT: '39919',
      TLS_CERT_PATH: certPath,
      TLS_KEY_PATH: keyPath,
    };
    const child = spawn(process.execPath, [MAIN], { env, cwd: os.tmpdir() });
    afterThisTest(() => child.kill('SIGKILL'));
    let output = '';
    const outputs = (text: string) =>
      vi.waitFor(() => expect(output).toContain(text), { timeout: 10_000, interval: 20 });
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await outputs('"msg":"listening"');

    // Unchanged files, so no watch fires: only the forced reload of SIGHUP logs the certificate again.
    child.kill('SIGHUP');
    await outputs('"msg":"reloading certificates and users"');
    await outputs('"msg":"certificate reloaded"');
    expect(output).toContain(`"fingerprint256":"${a.fingerprint256}"`);
    expect(child.exitCode).toBeNull();
    const client = track(await RawFtpClient.connect(port));
    expect((await client.read()).code).toBe(220);
    expect((await client.upgrade()).code).toBe(234);
    expect(fingerprintOf(client.socket)).toBe(a.fingerprint256);
  });
});
