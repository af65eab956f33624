/*
 * A new user's first hour with the image, as the README and docker-compose.yml say to run it:
 * - the README's `docker run` one-liner, run as written (host ports and names swapped for free ones): a download
 *   running when `docker stop` comes finishes, because the one-liner's --stop-timeout outlasts the server's
 *   SHUTDOWN_GRACE_SECONDS where Docker's default 10 s would cut it;
 * - docker-compose.yml: the password printed at the first `up` and the generated certificate survive `down` and
 *   a second `up` (the STATE_DIR volume), and the password is not printed again;
 * - LOG_FORMAT=pretty runs in the image, with readable times.
 * Compose v2 (`docker compose`) is used when present, otherwise v1 (`docker-compose`, Debian 12's).
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { RawFtpClient } from '../support/raw-client.js';
import { ContainerFixture, IMAGE, run, sha256, skipContainers, testImage } from './support.js';

const execFileAsync = promisify(execFile);
const fixture = new ContainerFixture();
const PASSWORD_LINE = /^Generated password for FTP user "ftp": (\S+)$/m;
/** Free of the other container suites' passive ranges. */
const PASSIVE = { min: 30_700, max: 30_709 };
const unique = (name: string) => `${name}-${process.pid}-${randomBytes(3).toString('hex')}`;

/** Resolves once the container's log says the server listens; returns the log so far. */
async function logsOnceListening(container: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const { stdout, stderr } = await run('docker', ['logs', container]);
    if (/"msg":"listening"|INFO: listening/.test(stdout)) return stdout + stderr;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${container} never listened: ${(await run('docker', ['logs', container]).catch(() => ({ stdout: '' }))).stdout}`);
}

async function logsIn(port: number, password: string) {
  const client = await RawFtpClient.connect(port);
  try {
    await client.read();
    await client.upgrade();
    return (await client.login('ftp', password)).code;
  } finally {
    client.close();
  }
}

const fingerprintIn = (logs: string) => /"fingerprint256":"([0-9A-F:]+)"/.exec(logs)?.[1];

describe.skipIf(skipContainers)('first hour with the image', () => {
  beforeAll(() => testImage('gateway'), 600_000);
  afterAll(() => fixture.cleanup());

  it("the README's docker run one-liner: a download running at docker stop completes", { timeout: 120_000 }, async () => {
    const readme = await readFile(path.resolve('README.md'), 'utf8');
    const written = /docker run -d --name ftps (?:[^\n]*\\\n)+[^\n]*/.exec(readme)?.[0];
    expect(written).toBeDefined();
    const [name, data, state, port] = [unique('ftps-oneliner'), unique('ftps-data'), unique('ftps-state'), await freePort()];
    const args = written!
      .replace(/\\\n/g, ' ')
      .split(/\s+/)
      .slice(1)
      .map((arg) =>
        arg
          .replace(/^ftps$/, name)
          .replace(/^21:21$/, `127.0.0.1:${port}:21`)
          .replace(/^30000-30009:30000-30009$/, `127.0.0.1:${PASSIVE.min}-${PASSIVE.max}:${PASSIVE.min}-${PASSIVE.max}`)
          .replace(/^ftps-data:/, `${data}:`)
          .replace(/^ftps-state:/, `${state}:`)
          .replace(/^ftps-gateway$/, IMAGE),
      );
    expect(args).toContain('--stop-timeout');
    // The one-liner's image is the last argument: the passive range of this test goes before it.
    args.splice(args.length - 1, 0, '-e', `PASV_MIN_PORT=${PASSIVE.min}`, '-e', `PASV_MAX_PORT=${PASSIVE.max}`);
    fixture.trackId(name);
    await run('docker', args);
    const password = PASSWORD_LINE.exec(await logsOnceListening(name))?.[1];
    expect(password).toBeDefined();
    try {
      // 16 MiB read at 1 MiB/s: it runs 14 s past the stop, beyond Docker's default 10 s.
      const content = randomBytes(16 << 20);
      const local = await fixture.tempDir('ftps-oneliner-');
      await writeFile(path.join(local, 'big.bin'), content);
      const curl = ['--silent', '--show-error', '--ssl-reqd', '--insecure', '--user', `ftp:${password}`];
      await execFileAsync('curl', [...curl, '-T', path.join(local, 'big.bin'), `ftp://127.0.0.1:${port}/big.bin`]);

      const download = spawn('curl', [...curl, '--limit-rate', '1M', '--output', path.join(local, 'back.bin'), `ftp://127.0.0.1:${port}/big.bin`]);
      const downloaded = once(download, 'exit');
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      await run('docker', ['stop', name]);
      const [code] = (await downloaded) as [number];

      expect(code).toBe(0);
      expect(sha256(await readFile(path.join(local, 'back.bin')))).toBe(sha256(content));
      const { stdout } = await run('docker', ['inspect', '--format', '{{.State.ExitCode}}', name]);
      // Exit 0: the server ended by itself once the transfer was done, no SIGKILL (137).
      expect(stdout.trim()).toBe('0');
    } finally {
      await fixture.removeContainers();
      await run('docker', ['volume', 'rm', '-f', data, state]).catch(() => undefined);
    }
  });

  it('docker-compose.yml: a second up after down keeps the password and the certificate, and prints no password', { timeout: 180_000 }, async () => {
    const compose = (await execFileAsync('docker', ['compose', 'version']).then(
      () => ['docker', 'compose'],
      () => ['docker-compose'],
    )) as [string, ...string[]];
    const project = unique('ftps-first-hour');
    const port = await freePort();
    // The file as shipped, but the image already built by this run and only the control port, on a free port.
    const file = parse(await readFile(path.resolve('docker-compose.yml'), 'utf8')) as { services: { ftps: Record<string, unknown> } };
    const ftps = file.services.ftps;
    delete ftps.build;
    ftps.image = IMAGE;
    ftps.ports = [`127.0.0.1:${port}:21`];
    const dir = await fixture.tempDir('ftps-compose-');
    const composeFile = path.join(dir, 'docker-compose.yml');
    await writeFile(composeFile, stringify(file));
    const [command, ...base] = compose;
    const composeRun = (...args: string[]) => execFileAsync(command, [...base, '-p', project, '-f', composeFile, ...args], { timeout: 120_000 });
    const containerOf = async () => (await composeRun('ps', '-q', 'ftps')).stdout.trim();
    try {
      await composeRun('up', '-d');
      const first = await logsOnceListening(await containerOf());
      const password = PASSWORD_LINE.exec(first)?.[1];
      expect(password).toBeDefined();
      expect(await logsIn(port, password!)).toBe(230);

      await composeRun('down');
      await composeRun('up', '-d');
      const second = await logsOnceListening(await containerOf());

      expect(second).not.toMatch(PASSWORD_LINE);
      expect(fingerprintIn(second)).toBe(fingerprintIn(first));
      expect(await logsIn(port, password!)).toBe(230);
      expect(await logsIn(port, `${password}x`)).toBe(530);
    } finally {
      await composeRun('down', '-v').catch(() => undefined);
    }
  });

  it('LOG_FORMAT=pretty runs in the image, one readable line per entry', { timeout: 60_000 }, async () => {
    const name = fixture.trackId(unique('ftps-pretty'));
    await run('docker', ['run', '-d', '--name', name, '--read-only', '--tmpfs', '/tmp', '-e', 'LOG_FORMAT=pretty', '-e', 'HTTP_PORT=0', IMAGE]);
    const logs = await logsOnceListening(name);

    expect(logs).toMatch(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z\] INFO: listening /m);
    expect((await run('docker', ['inspect', '--format', '{{.State.Running}}', name])).stdout.trim()).toBe('true');
    await fixture.removeContainers();
  });
});
