/* src/events/delivery.ts against a real HTTP receiver: order, signatures, retries, give-up, hangs, huge answers. */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Delivery, type DeliveryOptions } from '../../../src/events/delivery.js';
import { makeEvent, verifySignature } from '../../../src/events/event.js';
import { Spool } from '../../../src/events/spool.js';
import { createLogger } from '../../../src/observability/logger.js';

const SECRET = 'delivery-test-secret';
let dir: string;
let spool: Spool;
let delivery: Delivery | undefined;
let receiver: http.Server | undefined;
let logs: Array<Record<string, unknown>>;
let stats: { delivered: number; givenUp: number };

/** A receiver whose answer `respond` decides; it records every request body and whether its signature verifies. */
async function startReceiver(respond: (res: http.ServerResponse, n: number, body: string) => void) {
  const received: Array<{ body: string; signed: boolean }> = [];
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const header = String(req.headers['x-ftps-signature'] ?? '');
      received.push({ body, signed: verifySignature(SECRET, body, header, Math.floor(Date.now() / 1000)) });
      respond(res, received.length, body);
    });
  });
  await new Promise<void>((resolve) => receiver!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events`, received };
}

function deliver(url: string, o: Partial<DeliveryOptions> = {}): void {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  delivery = new Delivery(spool, {
    url,
    secret: SECRET,
    timeoutMs: 2000,
    maxAgeMs: 60_000,
    backoff: { firstMs: 10, maxMs: 50 },
    log: createLogger({ log: { level: 'debug', format: 'json' } }, sink),
    onDelivered: () => stats.delivered++,
    onGivenUp: () => stats.givenUp++,
    ...o,
  });
}

function emit(n: number, ageMs = 0): void {
  spool.append(JSON.stringify(makeEvent({ type: 'upload', path: `/f${n}` }, 'test', Date.now() - ageMs)));
}

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const paths = (received: Array<{ body: string }>) => received.map((r) => (JSON.parse(r.body) as { path: string }).path);

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'delivery-'));
  spool = new Spool({ dir, maxBytes: 1 << 20, syncIntervalMs: 50, syncEvery: 256, onDropped: () => undefined, onSyncError: () => undefined });
  logs = [];
  stats = { delivered: 0, givenUp: 0 };
});
afterEach(async () => {
  await delivery?.stop();
  delivery = undefined;
  spool.close();
  receiver?.closeAllConnections();
  await new Promise((resolve) => receiver?.close(resolve) ?? resolve(undefined));
  receiver = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('Delivery', () => {
  it('POSTs events in order, signed, and waits for new ones', async () => {
    const { url, received } = await startReceiver((res) => res.end('ok'));
    for (let n = 0; n < 20; n++) emit(n);
    deliver(url);
    await until(() => received.length === 20);
    emit(20);
    await until(() => received.length === 21);
    expect(paths(received)).toEqual(Array.from({ length: 21 }, (_, n) => `/f${n}`));
    expect(received.every((r) => r.signed)).toBe(true);
    expect(stats.delivered).toBe(21);
    expect(spool.peek(1)).toEqual([]);
  });

  it('retries an event answered 500 with backoff, keeping the order', async () => {
    const { url, received } = await startReceiver((res, n) => {
      res.statusCode = n <= 5 ? 500 : 204;
      res.end();
    });
    emit(0);
    emit(1);
    deliver(url);
    await until(() => stats.delivered === 2);
    expect(paths(received)).toEqual(['/f0', '/f0', '/f0', '/f0', '/f0', '/f0', '/f1']);
    expect(logs.filter((l) => l.msg === 'event delivery failed, retrying with backoff')).toHaveLength(1);
  });

  it('abuse: a receiver answering 500 forever; the event is given up at its max age, with an error log, and the next goes on', async () => {
    const { url, received } = await startReceiver((res, _n, body) => {
      res.statusCode = (JSON.parse(body) as { path: string }).path === '/f0' ? 500 : 200;
      res.end();
    });
    emit(0);
    emit(1);
    deliver(url, { maxAgeMs: 300 });
    await until(() => stats.delivered === 1, 5000);
    expect(stats.givenUp).toBe(1);
    expect(logs.some((l) => l.level === 50 && String(l.msg).includes('given up'))).toBe(true);
    // Backoff bounds the attempts: 300 ms at 10..50 ms each.
    const attempts = paths(received).filter((p) => p === '/f0').length;
    console.log(`500 forever: ${attempts} attempts before giving up after 300 ms`);
    expect(attempts).toBeGreaterThan(2);
    expect(attempts).toBeLessThan(300);
  });

  it('abuse: a receiver that never answers is cut at the timeout and retried', async () => {
    let hanging = true;
    const { url, received } = await startReceiver((res) => {
      if (!hanging) res.end();
    });
    emit(0);
    deliver(url, { timeoutMs: 200 });
    await until(() => received.length >= 2, 5000);
    hanging = false;
    await until(() => stats.delivered === 1, 5000);
    expect(logs.some((l) => l.problem === 'timeout')).toBe(true);
  });

  it('abuse: a huge, slow answer is not read; delivery goes on', async () => {
    const timers: NodeJS.Timeout[] = [];
    const { url } = await startReceiver((res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('x'.repeat(1 << 20));
      // Then a trickle that would never end.
      timers.push(setInterval(() => res.write('x'), 100));
    });
    for (let n = 0; n < 5; n++) emit(n);
    deliver(url);
    await until(() => stats.delivered === 5, 5000);
    for (const t of timers) clearInterval(t);
  });

  it('resumes after a stop at the first event not acknowledged', async () => {
    const { url, received } = await startReceiver((res) => res.end());
    for (let n = 0; n < 3; n++) emit(n);
    deliver(url);
    await until(() => stats.delivered === 3);
    await delivery!.stop();
    spool.close();
    spool = new Spool({ dir, maxBytes: 1 << 20, syncIntervalMs: 50, syncEvery: 256, onDropped: () => undefined, onSyncError: () => undefined });
    emit(3);
    deliver(url);
    await until(() => received.length === 4);
    expect(paths(received)).toEqual(['/f0', '/f1', '/f2', '/f3']);
  });
});
