/*
 * Every event type from a real session (basic-ftp over FTPS) to a real HTTP receiver: what each carries, and the
 * failures: a refused upload, failed logins, the ban they lead to.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifySignature, type GatewayEvent } from '../../src/events/event.js';
import { downloadText, ftpsLogin } from '../support/ftps-client.js';
import { freePort } from '../support/ports.js';
import { loggedIn } from '../support/raw-client.js';
import { startServer, TEST_PASSWORD, TEST_USER, type RunningServer } from '../support/server.js';

const SECRET = 'types-secret';
const events: GatewayEvent[] = [];
let receiver: http.Server;
let srv: RunningServer;
let httpPort: number;

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      res.statusCode = verifySignature(SECRET, body, String(req.headers['x-ftps-signature']), Math.floor(Date.now() / 1000)) ? 200 : 401;
      if (res.statusCode === 200) events.push(JSON.parse(body) as GatewayEvent);
      res.end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  httpPort = await freePort();
  srv = await startServer({
    HTTP_PORT: String(httpPort),
    HTTP_BIND_ADDRESS: '127.0.0.1',
    EVENT_WEBHOOK_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/`,
    EVENT_WEBHOOK_SECRET: SECRET,
    UPLOAD_SHA256: 'true',
    LOGIN_BAN_THRESHOLD: '2',
  });
});
afterAll(async () => {
  await srv?.stop();
  receiver.closeAllConnections();
  await new Promise((resolve) => receiver.close(resolve));
});

async function eventOf(type: string, path?: string): Promise<GatewayEvent> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const found = events.find((e) => e.type === type && (path === undefined || e.path === path));
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no ${type} event for ${path ?? 'any path'}; got ${events.map((e) => e.type).join(',')}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('events of a session', () => {
  it('login, upload, download, mkdir, rename, delete, rmdir, and a refused upload', async () => {
    const client = await ftpsLogin(srv.port, TEST_USER, TEST_PASSWORD);
    try {
      await client.uploadFrom(Readable.from([Buffer.from('hello\n')]), 'a.txt');
      expect(await downloadText(client, 'a.txt')).toBe('hello\n');
      await client.ensureDir('/dir');
      await client.cd('/');
      await client.rename('a.txt', 'dir/b.txt');
      await client.remove('dir/b.txt');
      await client.removeDir('dir');
      await expect(client.uploadFrom(Readable.from([Buffer.from('x')]), 'missing/c.txt')).rejects.toMatchObject({ code: 550 });
    } finally {
      client.close();
    }
    const login = await eventOf('login');
    expect(login).toMatchObject({ user: TEST_USER, clientAddress: '127.0.0.1', result: 'ok' });
    expect(login.session).toMatch(/^[0-9a-f]{8}$/);
    expect(await eventOf('upload', '/a.txt')).toMatchObject({
      user: TEST_USER,
      session: login.session,
      bytes: 6,
      result: 'ok',
      sha256: '5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03',
    });
    expect(await eventOf('download', '/a.txt')).toMatchObject({ bytes: 6, result: 'ok' });
    expect(await eventOf('mkdir', '/dir')).toMatchObject({ result: 'ok' });
    expect(await eventOf('rename', '/a.txt')).toMatchObject({ newPath: '/dir/b.txt' });
    expect(await eventOf('delete', '/dir/b.txt')).toMatchObject({ result: 'ok' });
    expect(await eventOf('rmdir', '/dir')).toMatchObject({ result: 'ok' });
    expect(await eventOf('upload_failed', '/missing/c.txt')).toMatchObject({ result: 'refused', user: TEST_USER });
    // One event per action, each with its own id.
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    // The gateway counts a delivery once it has read the receiver's answer, a moment after the receiver counted it.
    const scrape = async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    let metrics = await scrape();
    for (let i = 0; i < 50 && !metrics.includes(`ftps_events_delivered_total ${events.length}\n`); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      metrics = await scrape();
    }
    expect(metrics).toMatch(/^ftps_events_queued_total\{type="upload"\} 1$/m);
    expect(metrics).toMatch(new RegExp(`^ftps_events_delivered_total ${events.length}$`, 'm'));
    expect(metrics).toMatch(/^ftps_event_spool_bytes [1-9]\d*$/m);
    expect(metrics).toMatch(/^ftps_event_delivery_latency_seconds_count [1-9]/m);
  });

  it('abuse: an upload cut without TLS close_notify (426) is an upload_failed, truncated', async () => {
    const c = await loggedIn(srv.port);
    try {
      // Written after the handshake (the socket queues until then).
      const data = await c.openPassive({ tls: true });
      expect((await c.send('STOR cut.bin')).code).toBe(150);
      await new Promise<void>((resolve, reject) => data.write(Buffer.alloc(100_000, 1), (err) => (err ? reject(err) : resolve())));
      // destroy(), unlike end(), sends no close_notify: as when the client process dies.
      data.destroy();
      expect((await c.read()).code).toBe(426);
    } finally {
      c.close();
    }
    expect(await eventOf('upload_failed', '/cut.bin')).toMatchObject({ result: 'failed', reason: 'truncated: no TLS close_notify' });
  });

  it('abuse: failed logins and the ban they lead to', async () => {
    for (let i = 0; i < 2; i++) {
      await expect(ftpsLogin(srv.port, 'mallory', `guess-${i}`)).rejects.toMatchObject({ code: 530 });
    }
    expect(await eventOf('login_failed')).toMatchObject({ user: 'mallory', result: 'refused', reason: 'unknown-user', clientAddress: '127.0.0.1' });
    expect(await eventOf('ban')).toMatchObject({ clientAddress: '127.0.0.1', reason: '2 failed logins' });
    // The password is never in an event.
    expect(JSON.stringify(events)).not.toContain('guess-');
  });
});
