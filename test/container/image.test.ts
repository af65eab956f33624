import { randomBytes, X509Certificate } from 'node:crypto';
import { chmod, chown, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import selfsigned from 'selfsigned';
import type { StartedTestContainer } from 'testcontainers';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ftpsLogin } from '../support/ftps-client.js';
import { connectData, readAll, RawFtpClient } from '../support/raw-client.js';
import { ContainerFixture, HardenedContainer, IMAGE, logsOf, passivePortBindings, run, sha256, skipContainers, testImage } from './support.js';

const PASV_MIN = 30000;
const PASV_MAX = 30009;
const USER = 'tester';
const PASSWORD = 'container secret 123';

const fixture = new ContainerFixture();
let certs: { dir: string; fingerprint256: string };

/** A certificate mounted the way the kubelet mounts a TLS secret: files are symlinks into ..data/. */
async function kubeletStyleCertificates(): Promise<{ dir: string; fingerprint256: string }> {
  const dir = await fixture.tempDir('ftps-certs-');
  // mkdtemp makes 0700 directories; the container user must be able to enter it.
  await chmod(dir, 0o755);
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'container-test' }], {
    keyType: 'ec',
    algorithm: 'sha256',
  });
  const version = '..2026_11_24_12_00_00.000000001';
  await mkdir(path.join(dir, version));
  await writeFile(path.join(dir, version, 'tls.crt'), pems.cert);
  await writeFile(path.join(dir, version, 'tls.key'), pems.private);
  // The kubelet's default mode 0644 lets the non-root container user read the key.
  await chmod(path.join(dir, version, 'tls.key'), 0o644);
  await symlink(version, path.join(dir, '..data'));
  await symlink('..data/tls.crt', path.join(dir, 'tls.crt'));
  await symlink('..data/tls.key', path.join(dir, 'tls.key'));
  return { dir, fingerprint256: new X509Certificate(pems.cert).fingerprint256 };
}

async function startGateway(env: Record<string, string>, data: string): Promise<StartedTestContainer> {
  const implicit = env.FTPS_IMPLICIT_SSL === 'true';
  const container = await new HardenedContainer(IMAGE)
    .withEnvironment({ PASV_ADDRESS: '127.0.0.1', FTP_USER: USER, FTP_PASSWORD: PASSWORD, ...env })
    .withExposedPorts(implicit ? 990 : 21, ...passivePortBindings(PASV_MIN, PASV_MAX))
    .withBindMounts([
      { source: data, target: '/data', mode: 'rw' },
      { source: certs.dir, target: '/certs', mode: 'ro' },
    ])
    .start();
  return fixture.track(container);
}

const controlPort = (c: StartedTestContainer, implicit = false) => c.getMappedPort(implicit ? 990 : 21);

describe.skipIf(skipContainers)('container image', () => {
  beforeAll(async () => {
    await testImage('gateway');
    certs = await kubeletStyleCertificates();
  }, 600_000);

  afterEach(() => fixture.removeContainers());
  afterAll(() => fixture.cleanup());

  it('FileZilla style (AUTH TLS, PROT P, session reuse): upload, list, download, rename, delete', async () => {
    const data = await fixture.dataDir();
    const gateway = await startGateway({}, data);
    const client = await ftpsLogin(controlPort(gateway), USER, PASSWORD);
    try {
      // The certificate served is the one mounted from the secret.
      const peer = (client.ftp.socket as tls.TLSSocket).getPeerX509Certificate();
      expect(peer?.fingerprint256).toBe(certs.fingerprint256);

      const content = randomBytes(3 * 1024 * 1024 + 17);
      await client.uploadFrom(Readable.from([content]), 'upload.bin');
      expect(sha256(await readFile(path.join(data, 'upload.bin')))).toBe(sha256(content));

      const listing = await client.list();
      expect(listing.map((f) => [f.name, f.size])).toEqual([['upload.bin', content.length]]);

      const chunks: Buffer[] = [];
      const sink = new (await import('node:stream')).Writable({
        write(chunk: Buffer, _enc, done) {
          chunks.push(chunk);
          done();
        },
      });
      await client.downloadTo(sink, 'upload.bin');
      expect(sha256(Buffer.concat(chunks))).toBe(sha256(content));

      await client.rename('upload.bin', 'renamed.bin');
      expect(await readdir(data)).toEqual(['renamed.bin']);
      await client.remove('renamed.bin');
      expect(await readdir(data)).toEqual([]);
    } finally {
      client.close();
    }
  });

  it('DartFTP style (implicit control, implicit data TLS, never PROT P): list, upload, download', async () => {
    const data = await fixture.dataDir();
    await writeFile(path.join(data, 'existing.txt'), 'served from the volume\n');
    const gateway = await startGateway({ FTPS_IMPLICIT_SSL: 'true', DATA_IMPLICIT_SSL: 'true' }, data);
    const client = await RawFtpClient.connect(controlPort(gateway, true), { implicitTls: true });
    try {
      expect((await client.read()).code).toBe(220);
      expect((await client.login(USER, PASSWORD)).code).toBe(230);
      expect((await client.send('TYPE I')).code).toBe(200);

      const pasv = async () => {
        const r = await client.send('PASV');
        const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(r.text);
        expect(r.code).toBe(227);
        expect(m!.slice(1, 5).join('.')).toBe('127.0.0.1');
        return connectData(Number(m![5]) * 256 + Number(m![6]), { tls: true, session: client.tlsSession });
      };

      let socket = await pasv();
      expect((await client.send('NLST')).code).toBe(150);
      expect((await readAll(socket)).toString()).toBe('existing.txt\r\n');
      expect((await client.read()).code).toBe(226);

      const content = randomBytes(512 * 1024);
      socket = await pasv();
      expect((await client.send('STOR dart.bin')).code).toBe(150);
      await new Promise<void>((resolve) => socket.end(content, resolve));
      expect((await client.read()).code).toBe(226);
      expect(sha256(await readFile(path.join(data, 'dart.bin')))).toBe(sha256(content));

      socket = await pasv();
      expect((await client.send('RETR dart.bin')).code).toBe(150);
      expect(sha256(await readAll(socket))).toBe(sha256(content));
      expect((await client.read()).code).toBe(226);
    } finally {
      client.close();
    }
  });

  it('refuses a plain-text FTP login by default', async () => {
    const gateway = await startGateway({}, await fixture.dataDir());
    const client = await RawFtpClient.connect(controlPort(gateway));
    try {
      expect((await client.read()).code).toBe(220);
      const user = await client.send(`USER ${USER}`);
      expect(user.code).toBe(530);
      expect(user.text).toMatch(/AUTH TLS/);
    } finally {
      client.close();
    }
  });

  it('exits 1 naming the variable when the environment is invalid', async () => {
    const result = await run('docker', ['run', '--rm', '-e', 'FTPS_IMPLICIT_SSL=maybe', IMAGE]).catch(
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(result).toMatchObject({ code: 1 });
    const output = (result as { stderr: string }).stderr;
    expect(output).toContain('FTPS_IMPLICIT_SSL: expected true/false/1/0/yes/no, got "maybe"');
    expect(output).not.toMatch(/\n\s+at /);
  });

  it('answers --version from the package.json it carries, --help with the variables, and exit 2 to an unknown argument', async () => {
    const { version } = JSON.parse(await readFile('package.json', 'utf8')) as { version: string };
    expect((await run('docker', ['run', '--rm', IMAGE, '--version'])).stdout).toBe(`ftps-gateway ${version}\n`);
    expect((await run('docker', ['run', '--rm', IMAGE, 'check-config', '--version'])).stdout).toBe(`ftps-gateway ${version}\n`);
    expect((await run('docker', ['run', '--rm', IMAGE, '--help'])).stdout).toMatch(/^ {2}PASV_MIN_PORT +30000$/m);
    const unknown = await run('docker', ['run', '--rm', IMAGE, 'serve', '--bogus']).catch((e: { code: number; stderr: string }) => e);
    expect(unknown).toMatchObject({ code: 2, stderr: 'ftps-gateway: unknown argument "--bogus" (see ftps-gateway serve --help)\n' });
  });

  it('declares a HEALTHCHECK that reports the running server healthy', async () => {
    const { stdout } = await run('docker', ['image', 'inspect', '--format', '{{json .Config.Healthcheck.Test}}', IMAGE]);
    const test = JSON.parse(stdout) as string[];
    expect(test).toEqual(['CMD', 'node', '/app/dist/main.js', 'healthcheck']);
    for (const env of [{}, { FTPS_IMPLICIT_SSL: 'true' }] as Array<Record<string, string>>) {
      const gateway = await startGateway(env, await fixture.dataDir());
      const result = await gateway.exec(test.slice(1));
      expect(result.exitCode).toBe(0);
      // HTTP_PORT defaults to 8080: the sub-command asks /readyz (test/container/http.test.ts has more).
      expect(result.output).toBe('healthy: ready\n');
      // The next container needs the same passive host ports.
      await fixture.removeContainers();
    }
  });

  it('runs as uid 1000 on a read-only root filesystem', async () => {
    const gateway = await startGateway({}, await fixture.dataDir());
    expect((await gateway.exec(['id', '-u'])).output.trim()).toBe('1000');
    const write = await gateway.exec(['touch', '/app/forbidden']);
    expect(write.exitCode).not.toBe(0);
    expect(write.output).toMatch(/Read-only file system/);
  });

  it('docker stop during an upload leaves the previous file intact and no temporary file', async () => {
    const data = await fixture.dataDir();
    const original = randomBytes(64 * 1024);
    await writeFile(path.join(data, 'target.bin'), original);
    await chown(path.join(data, 'target.bin'), 1000, 1000);
    const gateway = await startGateway({ SHUTDOWN_GRACE_SECONDS: '1' }, data);
    const client = await ftpsLogin(controlPort(gateway), USER, PASSWORD);
    // An upload that never ends on its own: 64 KiB every 20 ms.
    let sent = 0;
    const endless = new Readable({
      read() {
        setTimeout(() => {
          sent += 65536;
          this.push(randomBytes(65536));
        }, 20);
      },
    });
    const upload = client.uploadFrom(endless, 'target.bin').catch((err: Error) => err);
    await expect.poll(() => sent, { timeout: 10_000 }).toBeGreaterThan(1024 * 1024);
    // testcontainers' timeout is in milliseconds: docker stop with 10 s before SIGKILL. The server ends the upload
    // after its 1 s grace and exits 0 by itself; killed, it would exit 137.
    await gateway.stop({ remove: false, timeout: 10_000 });
    const { stdout: state } = await run('docker', ['inspect', '--format', '{{.State.ExitCode}} {{.State.OOMKilled}}', gateway.getId()]);
    expect(state.trim()).toBe('0 false');
    expect(await upload).toBeInstanceOf(Error);
    client.close();
    const logs = await logsOf(gateway);
    expect(sha256(await readFile(path.join(data, 'target.bin')))).toBe(sha256(original));
    expect(await readdir(data), logs).toEqual(['target.bin']);
    expect(logs).toContain('"signal":"SIGTERM"');
  });
});
