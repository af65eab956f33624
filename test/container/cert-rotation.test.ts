/*
 * Certificate rotation in a running container, as in Kubernetes: a host directory laid out like a mounted TLS
 * secret is bind-mounted read-only at /certs, and the `..data` symlink is swapped on the host. Checked from the
 * host: a new connection sees the new certificate, a session opened before keeps working (protected transfers
 * resume its old TLS session), a broken pair is refused with an error naming the file and the old pair stays,
 * and `docker kill --signal HUP` reloads without ending the process.
 *
 * Passive ports 30200–30209 (mapped 1:1), so that this file can run beside the other container test files.
 */
import type { StartedTestContainer } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fingerprintOf, pemPair, SecretMount, type PemPair } from '../support/certificates.js';
import { listNames, loggedIn, readAll, secureClient, type RawFtpClient } from '../support/raw-client.js';
import { report } from '../support/measure.js';
import { TEST_PASSWORD, TEST_USER } from '../support/server.js';
import { ContainerFixture, HardenedContainer, IMAGE, logsOf, passivePortBindings, run, skipContainers, testImage } from './support.js';

const PASV_MIN = 30200;
const PASV_MAX = 30209;

const fixture = new ContainerFixture();

async function startGateway(certs: string): Promise<StartedTestContainer> {
  const container = await new HardenedContainer(IMAGE)
    .withEnvironment({
      PASV_ADDRESS: '127.0.0.1',
      PASV_MIN_PORT: String(PASV_MIN),
      PASV_MAX_PORT: String(PASV_MAX),
      // The raw client's loggedIn() logs in as the test user.
      FTP_USER: TEST_USER,
      FTP_PASSWORD: TEST_PASSWORD,
      // 'certificate directory changed': what the directory watch saw.
      LOG_LEVEL: 'debug',
    })
    .withExposedPorts(21, ...passivePortBindings(PASV_MIN, PASV_MAX))
    // TLS_CERT_PATH/TLS_KEY_PATH at their defaults, /certs/tls.crt and /certs/tls.key.
    .withBindMounts([{ source: certs, target: '/certs', mode: 'ro' }])
    .withTmpFs({ '/data': 'rw,size=16m,uid=1000,gid=1000,mode=0755' })
    .start();
  return fixture.track(container);
}

/** The gateway's JSON log lines whose message starts with `msg`. */
async function logged(gateway: StartedTestContainer, msg: string): Promise<Array<Record<string, unknown>>> {
  return (await logsOf(gateway))
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => String(l.msg).startsWith(msg));
}

const eventually = (check: () => Promise<void>) => vi.waitFor(check, { timeout: 15_000, interval: 100 });

describe.skipIf(skipContainers)('certificate rotation in a container', () => {
  let a: PemPair;
  let b: PemPair;
  const clients: RawFtpClient[] = [];

  beforeAll(async () => {
    [a, b] = await Promise.all([pemPair('rotation-a.example'), pemPair('rotation-b.example')]);
    await testImage('gateway');
  }, 600_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await fixture.cleanup();
  });

  /** Closed after the file's tests. */
  const client = (c: RawFtpClient): RawFtpClient => {
    clients.push(c);
    return c;
  };

  it('takes a swapped secret for new connections, keeps open sessions working, refuses a broken pair', async () => {
    const mount = await SecretMount.create(await fixture.tempDir('ftps-certs-'), SecretMount.tls(a));
    const gateway = await startGateway(mount.dir);
    const port = gateway.getMappedPort(21);
    expect(await logged(gateway, 'certificate loaded')).toEqual([
      expect.objectContaining({ fingerprint256: a.fingerprint256, file: '/certs/tls.crt', validTo: expect.any(String) }),
    ]);

    const running = client(await loggedIn(port));
    expect(fingerprintOf(running.socket)).toBe(a.fingerprint256);
    expect(await listNames(running)).not.toContain('kept.txt');

    const swapped = Date.now();
    await mount.update(SecretMount.tls(b));
    await eventually(async () => expect(await logged(gateway, 'certificate reloaded')).toHaveLength(1));
    report('certificate rotation in a container', { swapToReloadMs: Date.now() - swapped });
    expect((await logged(gateway, 'certificate reloaded'))[0]).toMatchObject({ fingerprint256: b.fingerprint256 });
    // The directory watch through the bind mount saw the swap before the reload (the 30 s poll logs no such line).
    const events = (await logged(gateway, 'certificate ')).map((l) => l.msg);
    expect(events.indexOf('certificate directory changed')).toBeGreaterThan(events.indexOf('certificate loaded'));
    expect(events.indexOf('certificate directory changed')).toBeLessThan(events.indexOf('certificate reloaded'));

    const fresh = client(await loggedIn(port));
    expect(fingerprintOf(fresh.socket)).toBe(b.fingerprint256);

    // The session opened before the swap uploads and lists over PROT P, resuming its old TLS session.
    const upload = await running.openPassive({ tls: true });
    expect((await running.send('STOR kept.txt')).code).toBe(150);
    upload.end('uploaded after the rotation');
    expect((await running.read()).code).toBe(226);
    expect(await listNames(running)).toContain('kept.txt');
    const download = await fresh.openPassive({ tls: true });
    const content = readAll(download);
    expect((await fresh.send('RETR kept.txt')).code).toBe(150);
    expect((await content).toString()).toBe('uploaded after the rotation');
    expect((await fresh.read()).code).toBe(226);

    // A key that belongs to another certificate: refused, named, and B stays.
    await mount.update({ 'tls.crt': a.cert, 'tls.key': b.key });
    await eventually(async () => expect(await logged(gateway, 'certificates not reloaded')).toHaveLength(1));
    expect((await logged(gateway, 'certificates not reloaded'))[0]!.msg).toContain(
      'the private key /certs/tls.key does not match the certificate /certs/tls.crt',
    );
    expect(fingerprintOf(client(await secureClient(port)).socket)).toBe(b.fingerprint256);
    expect(await listNames(running)).toContain('kept.txt');

    // SIGHUP: a forced reload, which refuses the same broken pair again and leaves the process serving.
    await run('docker', ['kill', '--signal=HUP', gateway.getId()]);
    await eventually(async () => expect(await logged(gateway, 'certificates not reloaded')).toHaveLength(2));
    expect(await logged(gateway, 'reloading certificates and users')).toHaveLength(1);
    expect(fingerprintOf(client(await secureClient(port)).socket)).toBe(b.fingerprint256);
    expect(await logged(gateway, 'certificate reloaded')).toHaveLength(1);
  }, 120_000);
});
