/*
 * The HTTP endpoint (HTTP_PORT): /healthz, /readyz and /metrics of the in-process server, driven by real FTPS
 * clients. Metric values are checked against what the clients did: logins, bytes moved, failed handshakes.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadText, ftpsLogin } from '../support/ftps-client.js';
import { loggedIn, RawFtpClient, secureClient } from '../support/raw-client.js';
import { freePort } from '../support/ports.js';
import { startServer, TEST_PASSWORD, TEST_USER, type RunningServer } from '../support/server.js';

const run = promisify(execFile);


/** A server with its HTTP endpoint on a free loopback port. */
async function startWithHttp(env: Record<string, string> = {}): Promise<{ srv: RunningServer; url: (path: string) => string; httpPort: number }> {
  const httpPort = await freePort();
  const srv = await startServer({ HTTP_PORT: String(httpPort), HTTP_BIND_ADDRESS: '127.0.0.1', ...env });
  return { srv, httpPort, url: (path) => `http://127.0.0.1:${httpPort}${path}` };
}

async function get(url: string, init?: RequestInit): Promise<{ status: number; body: string; headers: Headers }> {
  const response = await fetch(url, init);
  return { status: response.status, body: await response.text(), headers: response.headers };
}

/** One sample of the Prometheus text: the value of `name` whose labels include `labels`; undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** Sends `request` on a raw connection; resolves with what came back once the server closed it, and how long that took. */
function rawHttp(port: number, request: string | Buffer): Promise<{ response: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = net.connect({ port, host: '127.0.0.1' }, () => socket.write(request));
    let response = '';
    socket.on('data', (c: Buffer) => (response += c.toString('latin1')));
    socket.once('error', reject);
    socket.once('close', () => resolve({ response, ms: performance.now() - started }));
  });
}

describe('HTTP endpoint', () => {
  let srv: RunningServer;
  let url: (path: string) => string;
  let httpPort: number;

  beforeAll(async () => {
    ({ srv, url, httpPort } = await startWithHttp({ TLS_HANDSHAKE_TIMEOUT_SECONDS: '1' }));
  });
  afterAll(() => srv.stop());

  it('GET /healthz answers 200 while the process serves', async () => {
    const r = await get(url('/healthz'));
    expect(r).toMatchObject({ status: 200, body: 'ok\n' });
    expect(r.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(r.headers.get('cache-control')).toBe('no-store');
  });

  it('GET /readyz: 200, then 503 with the reason while the storage root is gone or a file, then 200 again', async () => {
    expect(await get(url('/readyz'))).toMatchObject({ status: 200, body: 'ready\n' });
    // As root, chmod would not stop the probe: take the directory away instead. (Answers are cached for 1 s.)
    const aside = `${srv.root}.aside`;
    await rename(srv.root, aside);
    try {
      await expect.poll(() => get(url('/readyz')), { timeout: 5_000, interval: 200 }).toMatchObject({
        status: 503,
        body: `not ready: the storage root ${srv.root} is not writable (ENOENT)\n`,
      });
      await writeFile(srv.root, 'not a directory');
      await expect.poll(async () => (await get(url('/readyz'))).body, { timeout: 5_000, interval: 200 }).toContain('(ENOTDIR)');
      // Liveness is not readiness: the process still serves.
      expect((await get(url('/healthz'))).status).toBe(200);
    } finally {
      await rm(srv.root, { force: true });
      await rename(aside, srv.root);
    }
    await expect.poll(() => get(url('/readyz')), { timeout: 5_000, interval: 200 }).toMatchObject({ status: 200, body: 'ready\n' });
  });

  it('GET /metrics counts logins, transfers, bytes and failed handshakes as they happened', async () => {
    const before = (await get(url('/metrics'))).body;
    const count = (text: string, name: string, labels: Record<string, string> = {}) => sample(text, name, labels) ?? 0;
    const delta = (after: string, name: string, labels: Record<string, string> = {}) =>
      count(after, name, labels) - count(before, name, labels);

    // Logins: one good (basic-ftp), one wrong password, one unknown user.
    const bad = await secureClient(srv.port);
    expect((await bad.login(TEST_USER, 'wrong')).code).toBe(530);
    expect((await bad.login('nobody', TEST_PASSWORD)).code).toBe(530);
    bad.close();
    const client = await ftpsLogin(srv.port, TEST_USER, TEST_PASSWORD);
    // A PROT P upload and download of known sizes.
    const up = randomBytes(300_001);
    try {
      expect((await client.uploadFrom(Readable.from([up]), 'm.bin')).code).toBe(226);
      await mkdir(path.join(srv.root, 'sub'));
      await writeFile(path.join(srv.root, 'sub/d.txt'), 'downloaded text\n');
      expect(await downloadText(client, 'sub/d.txt')).toBe('downloaded text\n');

      const during = (await get(url('/metrics'))).body;
      expect(sample(during, 'ftps_sessions_active')).toBeGreaterThanOrEqual(1);
    } finally {
      client.close();
    }

    // Failed handshakes. Control: plain text after AUTH TLS (protocol), curl not trusting the self-signed
    // certificate (client_alert: unlike Node, OpenSSL clients abort with an alert), a client that never starts
    // its handshake (timeout, TLS_HANDSHAKE_TIMEOUT_SECONDS=1).
    const garbage = await RawFtpClient.connect(srv.port);
    await garbage.read();
    expect((await garbage.send('AUTH TLS')).code).toBe(234);
    garbage.writeRaw('USER plain-text-after-auth\r\n');
    const curl = await run('curl', ['--silent', '--ssl-reqd', '--max-time', '10', `ftp://127.0.0.1:${srv.port}/`]).catch((e: { code: number }) => e);
    // 60: the peer certificate cannot be authenticated.
    expect(curl).toMatchObject({ code: 60 });
    const silent = await RawFtpClient.connect(srv.port);
    await silent.read();
    expect((await silent.send('AUTH TLS')).code).toBe(234);
    // Data: a protected data connection that does not resume the control session (reuse_required).
    const fresh = await loggedIn(srv.port);
    const data = await fresh.openPassive({ tls: true, resume: false });
    data.on('error', () => undefined);
    expect((await fresh.send('NLST')).code).toBe(150);
    expect((await fresh.read()).code).toBe(522);

    await expect
      .poll(async () => {
        const now = (await get(url('/metrics'))).body;
        return ['protocol', 'client_alert', 'timeout'].map((reason) => delta(now, 'ftps_tls_handshake_failures_total', { channel: 'control', reason }));
      }, { timeout: 5_000, interval: 200 })
      .toEqual([1, 1, 1]);
    for (const c of [garbage, silent, fresh]) c.close();

    const after = (await get(url('/metrics'))).body;
    expect(delta(after, 'ftps_tls_handshake_failures_total', { channel: 'data', reason: 'reuse_required' })).toBe(1);
    expect(delta(after, 'ftps_logins_total', { result: 'success' })).toBe(2);
    expect(delta(after, 'ftps_logins_total', { result: 'wrong_password' })).toBe(1);
    expect(delta(after, 'ftps_logins_total', { result: 'unknown_user' })).toBe(1);
    expect(delta(after, 'ftps_transfers_total', { direction: 'upload', result: 'ok' })).toBe(1);
    expect(delta(after, 'ftps_transfers_total', { direction: 'download', result: 'ok' })).toBe(1);
    expect(delta(after, 'ftps_transfer_bytes_total', { direction: 'upload' })).toBe(up.length);
    expect(delta(after, 'ftps_transfer_bytes_total', { direction: 'download' })).toBe('downloaded text\n'.length);
    expect(delta(after, 'ftps_transfer_duration_seconds_count', { direction: 'upload' })).toBe(1);
    expect(delta(after, 'ftps_transfer_duration_seconds_bucket', { direction: 'download', le: '+Inf' })).toBe(1);
    expect(sample(after, 'ftps_transfer_duration_seconds_sum', { direction: 'upload' })).toBeGreaterThan(0);
    // The refused NLST was a listing that failed: it moved nothing.
    expect(delta(after, 'ftps_transfers_total', { direction: 'listing', result: 'failed' })).toBe(1);
    expect(delta(after, 'ftps_transfer_bytes_total', { direction: 'listing' })).toBe(0);

    // The certificate served, as a Unix time.
    const raw = await RawFtpClient.connect(srv.port);
    await raw.read();
    await raw.upgrade();
    const served = (raw.socket as tls.TLSSocket).getPeerX509Certificate()!;
    raw.close();
    for (const channel of ['control', 'data']) {
      expect(sample(after, 'ftps_certificate_expiry_timestamp_seconds', { channel })).toBe(Date.parse(served.validTo) / 1000);
    }
    // prom-client's process metrics, in this registry.
    expect(sample(after, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(sample(after, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    for (const name of ['ftps_banned_addresses', 'ftps_passive_ports_in_use', 'ftps_passive_ports_free']) {
      expect(after, name).toContain(`# TYPE ${name} gauge`);
    }
  });

  it('the passive port gauges follow a pending data connection', async () => {
    const c = await loggedIn(srv.port);
    try {
      const range = 20;
      const idle = (await get(url('/metrics'))).body;
      expect(sample(idle, 'ftps_passive_ports_in_use')! + sample(idle, 'ftps_passive_ports_free')!).toBe(range);
      const inUse = sample(idle, 'ftps_passive_ports_in_use')!;
      expect((await c.send('EPSV')).code).toBe(229);
      const pending = (await get(url('/metrics'))).body;
      expect(sample(pending, 'ftps_passive_ports_in_use')).toBe(inUse + 1);
      expect(sample(pending, 'ftps_passive_ports_free')).toBe(range - inUse - 1);
    } finally {
      c.close();
    }
  });

  it('answers 404 to other paths and 405 to other methods; HEAD is GET without a body', async () => {
    expect(await get(url('/nope'))).toMatchObject({ status: 404, body: 'not found\n' });
    expect((await get(url('/healthz/extra'))).status).toBe(404);
    expect((await get(url('/metrics?name[]=x'))).status).toBe(200);
    const post = await get(url('/metrics'), { method: 'POST', body: 'x' });
    expect(post).toMatchObject({ status: 405, body: 'method not allowed\n' });
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect((await get(url('/readyz'), { method: 'DELETE' })).status).toBe(405);
    expect(await get(url('/healthz'), { method: 'HEAD' })).toMatchObject({ status: 200, body: '' });
  });

  it('survives malformed requests and drops a client that trickles its headers', async () => {
    expect((await rawHttp(httpPort, 'NOT HTTP AT ALL\r\n\r\n')).response).toMatch(/^HTTP\/1\.1 400 /);
    expect((await rawHttp(httpPort, `GET /healthz HTTP/1.1\r\nX: ${'a'.repeat(16 * 1024)}\r\n\r\n`)).response).toMatch(/^HTTP\/1\.1 431 /);
    expect((await rawHttp(httpPort, randomBytes(4096))).response).toMatch(/^HTTP\/1\.1 400 /);
    // Slowloris: a request line and no end of headers. The server cuts it (2 s headers timeout); rawHttp waits for that.
    const slow = await rawHttp(httpPort, 'GET /metrics HTTP/1.1\r\nHost: x\r\n');
    expect(slow.response).toMatch(/^HTTP\/1\.1 408 |^$/);
    expect((await get(url('/healthz'))).status).toBe(200);
  }, 15_000);
});

describe('HTTP endpoint lifecycle', () => {
  it('/readyz turns 404 (draining) when shutdown stops the listener while a transfer runs, and the endpoint closes with the server', async () => {
    const { srv, url } = await startWithHttp();
    try {
      // A running upload holds the shutdown in its grace period.
      const c = await loggedIn(srv.port);
      const data = await c.openPassive({ tls: true });
      expect((await c.send('STOR held.bin')).code).toBe(150);
      data.write('first half ');
      const stopping = srv.server.stop(10_000);
      const during = await get(url('/readyz'));
      // 404, not 503: a balancer with HAProxy's disable-on-404 keeps this replica's running sessions.
      expect(during).toMatchObject({ status: 404, body: 'draining: the FTP listener is not accepting connections, running transfers finish\n' });
      // The listener is closed indeed: a new client is refused.
      await expect(new Promise((resolve, reject) => net.connect(srv.port, '127.0.0.1', () => resolve('connected')).once('error', reject))).rejects.toThrow(/ECONNREFUSED/);
      expect((await get(url('/healthz'))).status).toBe(200);
      data.end('second half');
      expect((await c.read()).code).toBe(226);
      await stopping;
      await expect(fetch(url('/healthz'))).rejects.toThrow();
      c.close();
    } finally {
      await srv.stop();
    }
  });

  it('TLS_CLIENT_AUTH=required: no certificate counts as no_certificate, one from another CA as certificate_refused', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ftps-http-ca-'));
    const ca = await generate([{ name: 'commonName', value: 'Client CA' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      extensions: [{ name: 'basicConstraints', cA: true, critical: true }],
    });
    const stranger = await generate([{ name: 'commonName', value: 'stranger' }], { keyType: 'ec', algorithm: 'sha256' });
    await writeFile(path.join(dir, 'ca.pem'), ca.cert);
    const { srv, url } = await startWithHttp({ TLS_CLIENT_AUTH: 'required', TLS_CLIENT_CA_PATH: path.join(dir, 'ca.pem') });
    try {
      for (const credentials of [{}, { cert: stranger.cert, key: stranger.private }]) {
        const c = await RawFtpClient.connect(srv.port);
        await c.read();
        // Over TLS 1.3 the client learns of the refusal only after its side of the handshake: either way is fine.
        await c.upgrade(credentials).catch(() => undefined);
        c.writeRaw('NOOP\r\n');
        await c.read().catch(() => undefined);
        c.close();
      }
      await expect
        .poll(async () => {
          const text = (await get(url('/metrics'))).body;
          return ['no_certificate', 'certificate_refused'].map((reason) => sample(text, 'ftps_tls_handshake_failures_total', { channel: 'control', reason }));
        }, { timeout: 5_000, interval: 200 })
        .toEqual([1, 1]);
    } finally {
      await srv.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a ban shows in ftps_banned_addresses, and a login on a connection opened before it counts as address_banned', async () => {
    const { srv, url } = await startWithHttp({ LOGIN_BAN_THRESHOLD: '1', LOGIN_MAX_ATTEMPTS: '10' });
    try {
      const [a, b] = await Promise.all([secureClient(srv.port), secureClient(srv.port)]);
      expect(sample((await get(url('/metrics'))).body, 'ftps_banned_addresses')).toBe(0);
      expect((await a.login(TEST_USER, 'wrong')).code).toBe(530);
      expect((await b.login(TEST_USER, TEST_PASSWORD)).code).toBe(530);
      const text = (await get(url('/metrics'))).body;
      expect(sample(text, 'ftps_banned_addresses')).toBe(1);
      expect(sample(text, 'ftps_logins_total', { result: 'wrong_password' })).toBe(1);
      expect(sample(text, 'ftps_logins_total', { result: 'address_banned' })).toBe(1);
      a.close();
      b.close();
    } finally {
      await srv.stop();
    }
  });
});
