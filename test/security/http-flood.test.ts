/*
 * Finding 8, health endpoint: about 70 idle connections to the HTTP port made 28 of 40 /healthz probes fail
 * (a fixed connection limit, held by whoever connected first). Now idle connections make room for new ones,
 * of their own address first, so probes are served through any flood of idle connections.
 */
import http from 'node:http';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { withServer } from '../support/server.js';

/** Opens `count` connections from `localAddress` that never send a byte; they stay open until closed. */
async function idleConnections(port: number, count: number, localAddress: string): Promise<net.Socket[]> {
  return Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Socket>((resolve) => {
          const s = net.connect({ port, host: '127.0.0.1', localAddress });
          s.on('error', () => undefined);
          s.once('connect', () => resolve(s));
        }),
    ),
  );
}

/** GET /healthz from `localAddress` on a new connection; the status, or 0 when it failed. */
function probe(port: number, localAddress: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', localAddress, agent: false, timeout: 5_000 }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(0));
  });
}

describe('HTTP endpoint under a connection flood', () => {
  it.each([
    ['another address', '127.0.0.2'],
    ['the probes\' own address', '127.0.0.1'],
  ])('serves 40 of 40 probes while 70 idle connections come from %s', async (_label, floodFrom) => {
    const httpPort = await freePort();
    await withServer({ HTTP_PORT: String(httpPort) }, async () => {
      const flood = await idleConnections(httpPort, 70, floodFrom);
      try {
        const statuses: number[] = [];
        for (let i = 0; i < 40; i++) statuses.push(await probe(httpPort, '127.0.0.1'));
        expect(statuses).toEqual(Array(40).fill(200));
      } finally {
        for (const s of flood) s.destroy();
      }
    });
  }, 60_000);
});
