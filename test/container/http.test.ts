/*
 * The HTTP endpoint in the built image: the HEALTHCHECK sub-command asks /readyz, and /healthz, /readyz and
 * /metrics answer on a published 8080. In the container the server runs as uid 1000, so a read-only /data is
 * simply a chmod away.
 */
import { chmod } from 'node:fs/promises';
import type { StartedTestContainer } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ftpsLogin } from '../support/ftps-client.js';
import { ContainerFixture, HardenedContainer, IMAGE, run, skipContainers, testImage } from './support.js';

const USER = 'tester';
const PASSWORD = 'container secret 123';
const HEALTHCHECK = ['node', '/app/dist/main.js', 'healthcheck'];

const fixture = new ContainerFixture();

async function startGateway(data: string): Promise<StartedTestContainer> {
  const container = await new HardenedContainer(IMAGE)
    // The passive range is never published here: only logins, no transfers.
    .withEnvironment({ FTP_USER: USER, FTP_PASSWORD: PASSWORD, PASV_MIN_PORT: '30400', PASV_MAX_PORT: '30409' })
    .withExposedPorts(21, 8080)
    .withBindMounts([{ source: data, target: '/data', mode: 'rw' }])
    .start();
  return fixture.track(container);
}

describe.skipIf(skipContainers)('container HTTP endpoint', () => {
  beforeAll(() => testImage('gateway'), 600_000);
  afterAll(() => fixture.cleanup());

  it('the image exposes 8080 and its HEALTHCHECK runs the sub-command', async () => {
    const { stdout } = await run('docker', ['image', 'inspect', '--format', '{{json .Config}}', IMAGE]);
    const config = JSON.parse(stdout) as { ExposedPorts: Record<string, unknown>; Healthcheck: { Test: string[] } };
    expect(Object.keys(config.ExposedPorts)).toContain('8080/tcp');
    expect(config.Healthcheck.Test).toEqual(['CMD', ...HEALTHCHECK]);
  });

  it('healthcheck and /readyz follow a /data that stops being writable; /metrics counts a login', async () => {
    const data = await fixture.dataDir();
    const gateway = await startGateway(data);
    const url = (path: string) => `http://${gateway.getHost()}:${gateway.getMappedPort(8080)}${path}`;

    const healthy = await gateway.exec(HEALTHCHECK);
    expect({ exitCode: healthy.exitCode, output: healthy.output }).toEqual({ exitCode: 0, output: 'healthy: ready\n' });
    expect((await fetch(url('/healthz'))).status).toBe(200);

    const client = await ftpsLogin(gateway.getMappedPort(21), USER, PASSWORD);
    try {
      const metrics = await (await fetch(url('/metrics'))).text();
      expect(metrics).toContain('ftps_logins_total{result="success"} 1\n');
      expect(metrics).toContain('ftps_sessions_active 1\n');
      expect(metrics).toMatch(/^process_resident_memory_bytes \d+/m);
    } finally {
      client.close();
    }

    // The container user (uid 1000) owns /data; 0555 takes its write permission away.
    await chmod(data, 0o555);
    try {
      await expect
        .poll(async () => {
          const r = await fetch(url('/readyz'));
          return [r.status, await r.text()];
        }, { timeout: 10_000, interval: 300 })
        .toEqual([503, 'not ready: the storage root /data is not writable (EACCES)\n']);
      const unhealthy = await gateway.exec(HEALTHCHECK);
      expect({ exitCode: unhealthy.exitCode, output: unhealthy.output }).toEqual({
        exitCode: 1,
        output: 'unhealthy: HTTP 503: not ready: the storage root /data is not writable (EACCES)\n',
      });
      expect((await fetch(url('/healthz'))).status).toBe(200);
    } finally {
      await chmod(data, 0o755);
    }
    await expect.poll(async () => (await fetch(url('/readyz'))).status, { timeout: 10_000, interval: 300 }).toBe(200);
  });
});
