/*
 * PROXY protocol (PROXY_PROTOCOL, PROXY_TRUSTED_CIDRS) end to end. The test plays the load balancer at
 * 127.0.0.1 and writes the headers itself, naming clients at other loopback addresses: those addresses only
 * travel inside headers and are never connected to. The last test puts a real HAProxy in between.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, vi } from 'vitest';
import { hashPassword } from '../../src/auth/password-hash.js';
import { PROXY_V2_LOCAL, proxyHeader } from '../support/proxy-header.js';
import { connectData, loggedIn, RawFtpClient, readAll, type FtpReply } from '../support/raw-client.js';
import { TEST_PASSWORD, TEST_USER, withServer, type RunningServer } from '../support/server.js';

/** The load balancer: the address the server sees every relayed connection come from. */
const LB = '127.0.0.1';
const ALICE = '127.0.0.7';
const MALLORY = '127.0.0.9';
const TRUSTED = { PROXY_PROTOCOL: 'v2', PROXY_TRUSTED_CIDRS: LB };

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const logged = (srv: RunningServer, msg: string) => srv.logs.filter((l) => l.msg === msg);

/** The first reply on a control connection that began with `header`. */
async function greeting(port: number, header: Buffer): Promise<FtpReply> {
  const c = await RawFtpClient.connect(port, { prelude: header });
  try {
    return await c.read();
  } finally {
    c.close();
  }
}

/** Logged in over TLS with PBSZ 0 and PROT P, on a control connection that began with `header`. */
async function proxiedLogin(port: number, header: Buffer, o: { implicitTls?: boolean } = {}): Promise<RawFtpClient> {
  const c = await RawFtpClient.connect(port, { prelude: header, implicitTls: o.implicitTls ?? false });
  expect((await c.read()).code).toBe(220);
  if (!o.implicitTls) expect((await c.upgrade()).code).toBe(234);
  expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
  expect((await c.send('PBSZ 0')).code).toBe(200);
  expect((await c.send('PROT P')).code).toBe(200);
  return c;
}

/**
 * Everything a plain connection from the balancer's address receives until the server closes it; `send` is
 * written on connecting, in separate writes a few milliseconds apart when it is a list.
 */
function untilClosed(port: number, send?: Buffer | Buffer[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.once('connect', () => {
      (async () => {
        for (const piece of Array.isArray(send) ? send : send ? [send] : []) {
          socket.write(piece);
          await sleep(20);
        }
      })().catch(reject);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? undefined : reject(err)));
    socket.once('close', () => resolve(text));
  });
}

async function upload(c: RawFtpClient, name: string, content: Buffer, header: Buffer): Promise<FtpReply> {
  const data = await c.openPassive({ tls: true, prelude: header });
  expect((await c.send(`STOR ${name}`)).code).toBe(150);
  await new Promise<void>((resolve) => data.end(content, resolve));
  const final = await c.read();
  data.destroy();
  return final;
}

async function download(c: RawFtpClient, name: string, header: Buffer): Promise<Buffer> {
  const data = await c.openPassive({ tls: true, prelude: header });
  const body = readAll(data);
  expect((await c.send(`RETR ${name}`)).code).toBe(150);
  const bytes = await body;
  expect((await c.read()).code).toBe(226);
  return bytes;
}

describe.concurrent('PROXY protocol from a trusted balancer', () => {
  it('serves a session relayed with v2 headers on control and data connections as the client they name', async () => {
    await withServer(TRUSTED, async (srv) => {
      const c = await proxiedLogin(srv.port, proxyHeader(2, ALICE, 40_001));
      const content = randomBytes(300_000);
      expect((await upload(c, 'up.bin', content, proxyHeader(2, ALICE, 40_002))).code).toBe(226);
      expect(sha256(await readFile(path.join(srv.root, 'up.bin')))).toBe(sha256(content));
      expect(sha256(await download(c, 'up.bin', proxyHeader(2, ALICE, 40_003)))).toBe(sha256(content));
      expect((await c.send('STAT')).text).toContain(`Connected from ${ALICE}`);
      c.close();

      expect(logged(srv, 'connected')).toEqual([expect.objectContaining({ remote: ALICE, via: LB })]);
      expect(logged(srv, 'transfer').map((l) => [l.remote, l.via])).toEqual([
        [ALICE, LB],
        [ALICE, LB],
      ]);
    });
  });

  it('accepts v1 or both as PROXY_PROTOCOL says, and closes a connection with the other version', async () => {
    await withServer({ PROXY_PROTOCOL: 'any', PROXY_TRUSTED_CIDRS: LB }, async (srv) => {
      for (const version of [1, 2] as const) {
        const c = await proxiedLogin(srv.port, proxyHeader(version, ALICE));
        const content = randomBytes(1000);
        expect((await upload(c, `v${version}.bin`, content, proxyHeader(version === 1 ? 2 : 1, ALICE))).code).toBe(226);
        c.close();
      }
      expect(logged(srv, 'connected').map((l) => l.remote)).toEqual([ALICE, ALICE]);
    });
    await withServer({ PROXY_PROTOCOL: 'v1', PROXY_TRUSTED_CIDRS: LB }, async (srv) => {
      const c = await proxiedLogin(srv.port, proxyHeader(1, ALICE));
      expect((await upload(c, 'v1.bin', randomBytes(1000), proxyHeader(1, ALICE))).code).toBe(226);
      // A v2 header is closed without a greeting, on the control and on a data connection.
      expect(await untilClosed(srv.port, proxyHeader(2, ALICE))).toBe('');
      const data = await c.openPassive({ tls: true, prelude: proxyHeader(2, ALICE) });
      await readAll(data).catch(() => undefined);
      c.close();
      const reason = 'PROXY protocol v2 header, but PROXY_PROTOCOL=v1';
      expect(logged(srv, 'PROXY header refused, closing')).toEqual([expect.objectContaining({ level: 40, remote: LB, reason })]);
      expect(logged(srv, 'PROXY header refused on data connection')).toEqual([expect.objectContaining({ level: 40, via: LB, reason })]);
    });
  });

  it('takes a v2 LOCAL or v1 UNKNOWN header (health checks) as a connection from the balancer itself', async () => {
    await withServer({ PROXY_PROTOCOL: 'any', PROXY_TRUSTED_CIDRS: LB }, async (srv) => {
      expect((await greeting(srv.port, PROXY_V2_LOCAL)).code).toBe(220);
      expect((await greeting(srv.port, Buffer.from('PROXY UNKNOWN\r\n'))).code).toBe(220);
      expect(logged(srv, 'connected').map((l) => [l.remote, l.via])).toEqual([
        [LB, LB],
        [LB, LB],
      ]);
    });
  });

  it('works in implicit TLS mode: the header comes before the handshake', async () => {
    await withServer({ ...TRUSTED, FTPS_IMPLICIT_SSL: 'true' }, async (srv) => {
      const c = await proxiedLogin(srv.port, proxyHeader(2, ALICE), { implicitTls: true });
      const content = randomBytes(5000);
      expect((await upload(c, 'implicit.bin', content, proxyHeader(2, ALICE))).code).toBe(226);
      expect(sha256(await download(c, 'implicit.bin', proxyHeader(2, ALICE)))).toBe(sha256(content));
      c.close();
      expect(logged(srv, 'connected')).toEqual([expect.objectContaining({ remote: ALICE, via: LB })]);
    });
  });

  it('bans the client a header names, not the balancer or its other clients', async () => {
    await withServer({ ...TRUSTED, LOGIN_BAN_THRESHOLD: '2', LOGIN_BAN_SECONDS: '60', LOGIN_MAX_ATTEMPTS: '10' }, async (srv) => {
      const mallory = await RawFtpClient.connect(srv.port, { prelude: proxyHeader(2, MALLORY) });
      expect((await mallory.read()).code).toBe(220);
      expect((await mallory.upgrade()).code).toBe(234);
      expect((await mallory.login(TEST_USER, 'guess-1')).code).toBe(530);
      expect((await mallory.login(TEST_USER, 'guess-2')).code).toBe(530);
      await expect(mallory.read()).rejects.toThrow('connection closed');
      expect(logged(srv, 'address banned after repeated login failures')).toEqual([expect.objectContaining({ remote: MALLORY })]);

      expect((await greeting(srv.port, proxyHeader(2, MALLORY))).text).toBe('421 Too many failed logins from your address, try again later');
      const alice = await proxiedLogin(srv.port, proxyHeader(2, ALICE));
      alice.close();
      expect(logged(srv, 'connection from a banned address refused')).toEqual([expect.objectContaining({ remote: MALLORY, via: LB })]);
      expect(srv.server.stats).toMatchObject({ bannedAddresses: 1, refused: { banned: 1 } });
    });
  });

  it('counts MAX_CONNECTIONS_PER_IP per client a header names', async () => {
    await withServer({ ...TRUSTED, MAX_CONNECTIONS_PER_IP: '1' }, async (srv) => {
      const first = await RawFtpClient.connect(srv.port, { prelude: proxyHeader(2, ALICE) });
      expect((await first.read()).code).toBe(220);
      expect((await greeting(srv.port, proxyHeader(2, ALICE))).text).toBe('421 Too many connections from your address, try again later');
      expect((await greeting(srv.port, proxyHeader(2, MALLORY))).code).toBe(220);
      first.close();
      expect(logged(srv, 'connection refused')).toEqual([
        expect.objectContaining({ remote: ALICE, via: LB, reason: 'Too many connections from your address' }),
      ]);
    });
  });

  it("applies a users file's allowed CIDRs to the client a header names", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ftps-proxy-users-'));
    try {
      const file = path.join(dir, 'users');
      await writeFile(file, `carol:${await hashPassword('c-pass')}:carol:rw:${ALICE}/32\n`);
      await withServer({ ...TRUSTED, FTP_USER: '', FTP_PASSWORD: '', FTP_USERS_FILE: file }, async (srv) => {
        for (const [client, code] of [[ALICE, 230], [MALLORY, 530]] as const) {
          const c = await RawFtpClient.connect(srv.port, { prelude: proxyHeader(2, client) });
          expect((await c.read()).code).toBe(220);
          expect((await c.upgrade()).code).toBe(234);
          expect((await c.login('carol', 'c-pass')).code).toBe(code);
          c.close();
        }
        expect(logged(srv, 'login failed')).toEqual([expect.objectContaining({ remote: MALLORY, reason: 'address-not-allowed' })]);
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('checks PORT and EPRT against the client a header names, not the balancer', async () => {
    await withServer(TRUSTED, async (srv) => {
      const c = await proxiedLogin(srv.port, proxyHeader(2, ALICE));
      // Nothing connects: a data connection would only be opened by a transfer command.
      expect((await c.send('PORT 127,0,0,7,195,80')).code).toBe(200);
      expect((await c.send(`EPRT |1|${ALICE}|50000|`)).code).toBe(200);
      expect((await c.send('PORT 127,0,0,1,195,80')).code).toBe(504);
      expect((await c.send(`EPRT |1|${LB}|50000|`)).code).toBe(504);
      c.close();
      expect(logged(srv, 'refused active data connection to a foreign address').map((l) => l.target)).toEqual([LB, LB]);
    });
  });

  it('refuses passive data connections naming another client or bringing no header, and still takes the right one', async () => {
    await withServer(TRUSTED, async (srv) => {
      const c = await proxiedLogin(srv.port, proxyHeader(2, ALICE));
      const epsv = await c.send('EPSV');
      const port = Number(/\|\|\|(\d+)\|/.exec(epsv.text)?.[1]);
      // Another client relayed by the same balancer to the advertised port (port theft)...
      const stranger = await connectData(port, { tls: false, prelude: proxyHeader(2, MALLORY) });
      expect((await readAll(stranger)).length).toBe(0);
      // ...and the balancer's address without a header: a TLS ClientHello where the header should be.
      const headerless = await connectData(port, { tls: true, session: c.tlsSession });
      expect((await readAll(headerless).catch(() => Buffer.alloc(0))).length).toBe(0);
      // The listener stayed open for the client's own connection.
      const data = await connectData(port, { tls: true, session: c.tlsSession, prelude: proxyHeader(2, ALICE) });
      const listing = readAll(data);
      expect((await c.send('NLST')).code).toBe(150);
      await listing;
      expect((await c.read()).code).toBe(226);
      c.close();
      expect(logged(srv, 'refused data connection from a foreign address')).toEqual([
        expect.objectContaining({ level: 40, remote: ALICE, from: MALLORY, via: LB, port }),
      ]);
      expect(logged(srv, 'PROXY header refused on data connection')).toEqual([
        expect.objectContaining({ level: 40, via: LB, port, reason: 'no PROXY header' }),
      ]);
    });
  });

  it('closes a connection from a trusted address that brings no header, without a greeting', async () => {
    await withServer({ ...TRUSTED, TLS_HANDSHAKE_TIMEOUT_SECONDS: '1' }, async (srv) => {
      // A client that speaks first is closed at its first bytes.
      expect(await untilClosed(srv.port, Buffer.from('USER alice\r\n'))).toBe('');
      // A silent one after TLS_HANDSHAKE_TIMEOUT_SECONDS.
      const started = Date.now();
      expect(await untilClosed(srv.port)).toBe('');
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      expect(logged(srv, 'PROXY header refused, closing').map((l) => [l.remote, l.reason])).toEqual([
        [LB, 'no PROXY header'],
        [LB, 'no PROXY header within 1000 ms'],
      ]);
      expect(srv.server.stats.sessionsOpened).toBe(0);
    });
  });
});

describe.concurrent('PROXY protocol from an untrusted address', () => {
  const UNTRUSTED = { PROXY_PROTOCOL: 'any', PROXY_TRUSTED_CIDRS: '10.0.0.0/8' };

  it('closes an explicit-mode connection that begins with a header, and serves a direct client as itself', async () => {
    await withServer(UNTRUSTED, async (srv) => {
      // The greeting goes out first (a direct client waits for it); the header then ends the connection.
      expect(await untilClosed(srv.port, proxyHeader(1, ALICE))).toMatch(/^220 [^\n]*\r\n$/);
      expect(await untilClosed(srv.port, proxyHeader(2, ALICE))).toMatch(/^220 [^\n]*\r\n$/);
      // Fragmented: the signature is recognised across reads too.
      const header = proxyHeader(2, ALICE);
      expect(await untilClosed(srv.port, [header.subarray(0, 3), header.subarray(3, 7), header.subarray(7)])).toMatch(/^220 /);
      expect(logged(srv, 'PROXY header from an address outside PROXY_TRUSTED_CIDRS, closing')).toEqual([
        expect.objectContaining({ level: 40, remote: '127.0.0.1', version: 1 }),
        expect.objectContaining({ level: 40, remote: '127.0.0.1', version: 2 }),
        expect.objectContaining({ level: 40, remote: '127.0.0.1', version: 2 }),
      ]);

      const c = await loggedIn(srv.port);
      expect((await c.send('STAT')).text).toContain('Connected from 127.0.0.1');
      c.close();
    });
  });

  it('closes an implicit-mode connection that begins with a header before any TLS', async () => {
    await withServer({ ...UNTRUSTED, FTPS_IMPLICIT_SSL: 'true' }, async (srv) => {
      expect(await untilClosed(srv.port, proxyHeader(2, ALICE))).toBe('');
      expect(logged(srv, 'PROXY header from an address outside PROXY_TRUSTED_CIDRS, closing')).toEqual([
        expect.objectContaining({ remote: '127.0.0.1', version: 2 }),
      ]);
      expect(logged(srv, 'implicit TLS handshake failed')).toEqual([]);
      const c = await loggedIn(srv.port, { implicitTls: true });
      c.close();
    });
  });

  it('takes the bytes of a direct plain data connection as file content, even when they look like a header', async () => {
    await withServer({ ...UNTRUSTED, FTPS_REQUIRE_PROT_P: 'false' }, async (srv) => {
      const c = await loggedIn(srv.port, { prot: false });
      const content = Buffer.concat([proxyHeader(1, ALICE), proxyHeader(2, ALICE), randomBytes(1000)]);
      const data = await c.openPassive();
      expect((await c.send('STOR looks-like-a-header.bin')).code).toBe(150);
      await new Promise<void>((resolve) => data.end(content, resolve));
      expect((await c.read()).code).toBe(226);
      c.close();
      expect(await readFile(path.join(srv.root, 'looks-like-a-header.bin'))).toEqual(content);
    });
  });
});

const haproxy = spawnSync('haproxy', ['-v']).status === 0;

/** HAProxy's last health check result per server ("L4OK"), from its stats socket. */
function checkStatus(socketPath: string): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let csv = '';
    socket.on('data', (chunk: Buffer) => (csv += chunk.toString()));
    socket.once('error', reject);
    socket.once('close', () => {
      const [header = '', ...rows] = csv.trim().split('\n');
      const columns = header.replace(/^# /, '').split(',');
      const at = (row: string[], name: string) => row[columns.indexOf(name)] ?? '';
      const servers = rows.map((r) => r.split(',')).filter((r) => !['FRONTEND', 'BACKEND'].includes(at(r, 'svname')));
      resolve(Object.fromEntries(servers.map((r) => [`${at(r, 'pxname')}/${at(r, 'svname')}`, at(r, 'check_status')])));
    });
    socket.end('show stat\n');
  });
}

describe('behind a real HAProxy', () => {
  it.skipIf(!haproxy)(
    haproxy
      ? 'send-proxy-v2 on the control and passive ports, with health checks, relays the client address end to end'
      : 'send-proxy-v2 through HAProxy — skipped: haproxy is not installed (apt-get install haproxy)',
    async () => {
      const FRONT = '127.0.0.3';
      const CLIENT = '127.0.0.5';
      await withServer(TRUSTED, async (srv) => {
        const { pasvMinPort, pasvMaxPort } = srv.config.data;
        const dir = await mkdtemp(path.join(os.tmpdir(), 'ftps-haproxy-'));
        const cfg = path.join(dir, 'haproxy.cfg');
        // The balancer listens on another loopback address with the server's own port numbers, as it would on
        // its own host; passive ports map one to one ("server" without a port keeps the client's port).
        await writeFile(
          cfg,
          [
            'global',
            '  maxconn 200',
            `  stats socket ${path.join(dir, 'haproxy.sock')}`,
            'defaults',
            '  mode tcp',
            '  timeout connect 2s',
            '  timeout client 30s',
            '  timeout server 30s',
            'frontend control',
            `  bind ${FRONT}:${srv.port}`,
            '  default_backend control',
            'backend control',
            '  option tcp-check',
            '  tcp-check expect rstring ^220',
            `  server ftp1 127.0.0.1:${srv.port} send-proxy-v2 check inter 300ms`,
            'frontend passive',
            `  bind ${FRONT}:${pasvMinPort}-${pasvMaxPort}`,
            '  default_backend passive',
            'backend passive',
            `  server ftp1 127.0.0.1 send-proxy-v2 check port ${srv.port} check-send-proxy inter 300ms`,
            '',
          ].join('\n'),
        );
        const proc = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        try {
          // Both backends' health checks pass: they send a v2 LOCAL header, and the control one waits for the 220.
          await vi.waitFor(
            async () => expect(await checkStatus(path.join(dir, 'haproxy.sock'))).toEqual({ 'control/ftp1': 'L7OK', 'passive/ftp1': 'L4OK' }),
            { timeout: 10_000, interval: 200 },
          );
          expect(logged(srv, 'connected').filter((l) => l.remote === LB && l.via === LB).length).toBeGreaterThan(0);
          const c = await RawFtpClient.connect(srv.port, { host: FRONT, localAddress: CLIENT });
          expect((await c.read()).code).toBe(220);
          expect((await c.upgrade()).code).toBe(234);
          expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
          expect((await c.send('PBSZ 0')).code).toBe(200);
          expect((await c.send('PROT P')).code).toBe(200);
          const content = randomBytes(200_000);
          for (const command of ['STOR', 'RETR'] as const) {
            const epsv = await c.send('EPSV');
            const port = Number(/\|\|\|(\d+)\|/.exec(epsv.text)?.[1]);
            const raw = net.connect({ host: FRONT, port, localAddress: CLIENT });
            const data = tls.connect({ socket: raw, host: FRONT, rejectUnauthorized: false, session: c.tlsSession });
            data.on('error', () => undefined);
            const body = readAll(data);
            expect((await c.send(`${command} through-haproxy.bin`)).code).toBe(150);
            if (command === 'STOR') data.end(content);
            const received = await body;
            expect((await c.read()).code).toBe(226);
            if (command === 'RETR') expect(sha256(received)).toBe(sha256(content));
          }
          expect(sha256(await readFile(path.join(srv.root, 'through-haproxy.bin')))).toBe(sha256(content));
          expect((await c.send('STAT')).text).toContain(`Connected from ${CLIENT}`);
          c.close();
          expect(logged(srv, 'transfer').map((l) => [l.remote, l.via])).toEqual([
            [CLIENT, LB],
            [CLIENT, LB],
          ]);
          expect(logged(srv, 'PROXY header refused, closing')).toEqual([]);
          expect(logged(srv, 'PROXY header refused on data connection')).toEqual([]);
        } catch (err) {
          throw new Error(`${String(err)}\nhaproxy stderr:\n${stderr}`, { cause: err });
        } finally {
          proc.kill();
          await rm(dir, { recursive: true, force: true });
        }
      });
    },
  );
});
