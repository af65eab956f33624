/*
 * Events delivered at least once (issue 13 "done when"): 1,000 uploads through a real gateway process while the
 * HTTP receiver is stopped and restarted and the gateway is killed with SIGKILL and restarted. The receiver
 * deduplicates by id; every upload's event must arrive, signed, with the right SHA-256, in order per path.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Client } from 'basic-ftp';
import { afterAll, describe, expect, it } from 'vitest';
import { verifySignature, type GatewayEvent } from '../../src/events/event.js';
import { ftpsLogin } from '../support/ftps-client.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';
import { TEST_PASSWORD, TEST_USER } from '../support/server.js';

const SECRET = 'events-test-secret';
const UPLOADS = 1000;
const WORKERS = 8;
/** Every DELETE_EVERY-th file is deleted after its upload: its delete event must arrive after its upload event. */
const DELETE_EVERY = 10;

/** A webhook receiver that can be stopped and started again on the same port, as a real one restarts. */
class Receiver {
  /** Events by id, in order of first arrival. */
  readonly events = new Map<string, GatewayEvent>();
  requests = 0;
  badSignatures = 0;
  private server: http.Server | undefined;
  port = 0;

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        this.requests++;
        if (!verifySignature(SECRET, body, String(req.headers['x-ftps-signature']), Math.floor(Date.now() / 1000))) {
          this.badSignatures++;
          res.statusCode = 401;
          res.end();
          return;
        }
        const event = JSON.parse(body) as GatewayEvent;
        if (!this.events.has(event.id)) this.events.set(event.id, event);
        res.end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.server!;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }

  ofType(type: string): GatewayEvent[] {
    return [...this.events.values()].filter((e) => e.type === type);
  }
}

const content = (n: number) => Buffer.from(`file ${n}\n`.repeat(1 + (n % 7)));
const fileName = (n: number) => `f${String(n).padStart(4, '0')}.txt`;

describe('events: at least once through receiver outages and kill -9', () => {
  let dir: string;
  const receiver = new Receiver();
  let gateway: ServerProcess | undefined;

  afterAll(async () => {
    await gateway?.stop();
    await receiver.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers the event of every upload exactly once after deduplication, signed, in order per path', { timeout: 120_000 }, async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'events-'));
    await receiver.start();
    const env = {
      FTP_ROOT: path.join(dir, 'root'),
      STATE_DIR: path.join(dir, 'state'),
      EVENT_WEBHOOK_URL: `http://127.0.0.1:${receiver.port}/hook`,
      EVENT_WEBHOOK_SECRET: SECRET,
      EVENT_TYPES: 'upload,delete',
      EVENT_TIMEOUT_SECONDS: '2',
      REPLICA_NAME: 'gw-test',
      UPLOAD_SHA256: 'true',
      LOG_LEVEL: 'warn',
    };
    gateway = await startServerProcess(env);
    let restarting: Promise<void> | undefined;
    /** SIGKILL, then a new process on the same volume (and a new port). */
    const killAndRestart = () => {
      restarting = (async () => {
        const old = gateway!;
        old.child.kill('SIGKILL');
        await old.stop();
        gateway = await startServerProcess(env);
      })();
    };

    let next = 0;
    let done = 0;
    let retries = 0;
    /** Deletes the client saw answered 250. One retried after a kill may find the file gone (550): its DELE ran,
     * and the kill may have come before its event was spooled — an action whose reply never came. */
    const deleted: string[] = [];
    const started = performance.now();
    const milestones = new Map<number, () => void>([
      [200, () => void receiver.stop()],
      [400, killAndRestart],
      [600, () => void receiver.start()],
      [800, killAndRestart],
    ]);

    const connect = async (): Promise<Client> => {
      for (;;) {
        await restarting;
        try {
          return await ftpsLogin(gateway!.port, TEST_USER, TEST_PASSWORD);
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    };
    /** Runs `step` until it succeeds, reconnecting after a killed gateway. */
    const withRetry = async (client: { current: Client }, step: (c: Client) => Promise<unknown>) => {
      for (;;) {
        try {
          await step(client.current);
          return;
        } catch {
          retries++;
          client.current.close();
          client.current = await connect();
        }
      }
    };
    const worker = async () => {
      const client = { current: await connect() };
      for (let n = next++; n < UPLOADS; n = next++) {
        await withRetry(client, (c) => c.uploadFrom(Readable.from([content(n)]), fileName(n)));
        if (n % DELETE_EVERY === 0) {
          await withRetry(client, async (c) => {
            try {
              await c.remove(fileName(n));
              deleted.push(`/${fileName(n)}`);
            } catch (err) {
              // Deleted by a try whose reply the kill swallowed.
              if ((err as { code?: number }).code !== 550) throw err;
            }
          });
        }
        done++;
        milestones.get(done)?.();
      }
      client.current.close();
    };
    await Promise.all(Array.from({ length: WORKERS }, worker));
    const uploadedMs = performance.now() - started;

    const deadline = Date.now() + 45_000;
    const uploadedPaths = () => new Set(receiver.ofType('upload').map((e) => e.path));
    const deletedPaths = () => new Set(receiver.ofType('delete').map((e) => e.path));
    while (uploadedPaths().size < UPLOADS || deleted.some((p) => !deletedPaths().has(p))) {
      if (Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const deliveredMs = performance.now() - started;
    const uploads = receiver.ofType('upload');
    console.log(
      `events: ${UPLOADS} uploads (${WORKERS} clients, ${retries} retried steps) in ${uploadedMs.toFixed(0)} ms, all events delivered at ` +
        `${deliveredMs.toFixed(0)} ms; ${receiver.requests} POSTs for ${receiver.events.size} distinct events ` +
        `(${uploads.length} upload, ${receiver.ofType('delete').length} delete)`,
    );

    expect(receiver.badSignatures).toBe(0);
    // EVENT_TYPES=upload,delete: the logins of every connection were filtered out.
    expect(new Set([...receiver.events.values()].map((e) => e.type))).toEqual(new Set(['upload', 'delete']));
    const expected = Array.from({ length: UPLOADS }, (_, n) => `/${fileName(n)}`);
    expect([...uploadedPaths()].sort()).toEqual(expected);
    // More than one upload event for a path only where a killed gateway made its client upload again.
    expect(uploads.length - UPLOADS).toBeLessThanOrEqual(retries);
    expect(new Set(receiver.events.values()).size).toBe(receiver.events.size);
    for (const e of uploads) {
      const n = Number(/f(\d+)/.exec(e.path!)![1]);
      expect(e).toMatchObject({ schema: 'ftps-gateway.event/1', replica: 'gw-test', user: TEST_USER, clientAddress: '127.0.0.1', result: 'ok' });
      expect(e.bytes).toBe(content(n).length);
      expect(e.sha256).toBe(createHash('sha256').update(content(n)).digest('hex'));
    }
    // Order per path: the delete of a file arrives after its upload(s).
    expect(deleted.filter((p) => !deletedPaths().has(p))).toEqual([]);
    const order = [...receiver.events.values()];
    for (const p of deletedPaths()) {
      const lastUpload = order.findLastIndex((e) => e.type === 'upload' && e.path === p);
      const deletion = order.findIndex((e) => e.type === 'delete' && e.path === p);
      expect(deletion, p).toBeGreaterThan(lastUpload);
    }
  });
});
