/*
 * Resource limits under attack: stalled TLS handshakes (control and data), slowloris command lines, clients that
 * never log in or never read, PASV storms, and bursts of connections. Short limits keep the tests fast; the
 * server's own counters (FtpServer.stats) show what a refused client cost it. Each test has its own server, so
 * they run concurrently.
 */
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, vi } from 'vitest';
import { loggedIn, RawFtpClient } from '../support/raw-client.js';
import { startServer, withServer, type RunningServer } from '../support/server.js';

/** A plain TCP connection; `closed` resolves with everything it received once the server has closed it. */
async function tcp(port: number, localAddress = '127.0.0.1'): Promise<{ socket: net.Socket; closed: Promise<string> }> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => undefined);
  const closed = new Promise<string>((resolve) => socket.once('close', () => resolve(Buffer.concat(chunks).toString('latin1'))));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return { socket, closed };
}

/** The first line a connection receives; the connection stays open. '' when it is closed without one. */
async function firstLine(port: number, localAddress: string): Promise<{ line: string; socket: net.Socket }> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  socket.on('error', () => undefined);
  const line = await new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      if (text.includes('\r\n')) resolve(text.split('\r\n')[0]!);
    });
    socket.once('close', () => resolve(''));
  });
  return { line, socket };
}

const logged = (srv: RunningServer, msg: string) => srv.logs.filter((l) => l.msg === msg);

describe.concurrent('TLS_HANDSHAKE_TIMEOUT_SECONDS', () => {
  it('implicit: a connection that sends nothing, or half a ClientHello, is closed', async () => {
    await withServer({ FTPS_IMPLICIT_SSL: 'true', TLS_HANDSHAKE_TIMEOUT_SECONDS: '1' }, async (srv) => {
      const silent = await tcp(srv.port);
      const partial = await tcp(srv.port);
      // A TLS record header announcing a 512-byte handshake message, then a few bytes of it.
      partial.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]));
      expect(await Promise.all([silent.closed, partial.closed])).toEqual(['', '']);
      expect(logged(srv, 'implicit TLS handshake failed')).toEqual([
        expect.objectContaining({ err: 'Error: TLS handshake timed out' }),
        expect.objectContaining({ err: 'Error: TLS handshake timed out' }),
      ]);
      await vi.waitFor(() => expect(srv.server.stats.sessions).toBe(0), { timeout: 1000, interval: 20 });
    });
  });

  it('explicit: AUTH TLS and then silence is closed', async () => {
    await withServer({ TLS_HANDSHAKE_TIMEOUT_SECONDS: '1' }, async (srv) => {
      const c = await tcp(srv.port);
      c.socket.write('AUTH TLS\r\n');
      expect(await c.closed).toMatch(/^220 .*\r\n234 /);
      expect(logged(srv, 'TLS handshake after AUTH failed')).toEqual([expect.objectContaining({ err: 'Error: TLS handshake timed out' })]);
    });
  });

  it('data: a data connection that never starts its handshake fails the transfer with 425', async () => {
    await withServer({ TLS_HANDSHAKE_TIMEOUT_SECONDS: '1' }, async (srv) => {
      await writeFile(path.join(srv.root, 'file.txt'), 'content');
      const c = await loggedIn(srv.port, { prot: false });
      expect((await c.send('PBSZ 0')).code).toBe(200);
      expect((await c.send('PROT P')).code).toBe(200);
      const data = await c.openPassive({ tls: false });
      const dataClosed = new Promise((resolve) => data.once('close', resolve));
      expect((await c.send('RETR file.txt')).code).toBe(150);
      const r = await c.read();
      expect(r.code).toBe(425);
      expect(r.text).toMatch(/handshake .* timed out/);
      await dataClosed;
      expect((await c.send('NOOP')).code).toBe(200);
      c.close();
    });
  });
});

describe.concurrent('slow and idle clients', () => {
  it('bytes trickling without a line end do not keep a connection open (IDLE_TIMEOUT_SECONDS)', async () => {
    await withServer({ IDLE_TIMEOUT_SECONDS: '1' }, async (srv) => {
      const c = await tcp(srv.port);
      let ended = false;
      void c.closed.then(() => (ended = true));
      for (let i = 0; !ended && i < 50; i++) {
        c.socket.write('U');
        await sleep(100);
      }
      expect(await c.closed).toMatch(/^220 .*\r\n421 Idle timeout/);
      expect(logged(srv, 'idle timeout')).toHaveLength(1);
    });
  });

  it('a client that sends commands but never reads the replies: the server stops, replies do not pile up', async () => {
    await withServer({}, async (srv) => {
      const c = await tcp(srv.port);
      // HELP answers ~300 bytes for 6: far more than the socket buffers hold, unless the server waits for the client.
      const commands = 100_000;
      c.socket.write('HELP\r\n'.repeat(commands));
      c.socket.pause();
      const executed = () => srv.logs.filter((l) => l.msg === 'command').length;
      await vi.waitFor(() => expect(executed()).toBeGreaterThan(32), { timeout: 5000, interval: 20 });
      // Then until the server has stopped executing commands: the count holds still for half a second.
      let count = -1;
      while (count !== executed()) {
        count = executed();
        await sleep(500);
      }
      expect(count).toBeLessThan(commands / 2);
      c.socket.destroy();
    });
  });
});

describe('login deadline', () => {
  // Not concurrent: the server's timers run on a fake clock here, so the deadline falls between two known commands
  // however slow the machine is (on the real clock, a stranger left waiting 2 s met the idle timeout first).
  it('a client that keeps talking but never logs in is closed; a logged-in one doing the same is not', async () => {
    // The login deadline is min(60 s, IDLE_TIMEOUT_SECONDS), counted from the connection.
    const srv = await startServer({ IDLE_TIMEOUT_SECONDS: '2' });
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const stranger = await RawFtpClient.connect(srv.port);
      expect((await stranger.read()).code).toBe(220);
      const user = await loggedIn(srv.port, { prot: false });
      // Both talk every half second: each command restarts their idle timers, never the stranger's deadline.
      for (let t = 0; t < 2000; t += 500) {
        expect((await stranger.send('NOOP')).code).toBe(200);
        expect((await user.send('NOOP')).code).toBe(200);
        vi.advanceTimersByTime(500);
      }
      expect((await stranger.read()).text).toBe('421 Login timed out, closing control connection');
      await expect(stranger.read()).rejects.toThrow('connection closed');
      expect(logged(srv, 'no login in time, closing')).toHaveLength(1);
      expect(logged(srv, 'idle timeout')).toHaveLength(0);
      // Past the deadline, the logged-in session still works.
      expect((await user.send('NOOP')).code).toBe(200);
      user.close();
    } finally {
      // Before stop(): its grace timer must run on the real clock.
      vi.useRealTimers();
      await srv.stop();
    }
  });
});

describe.concurrent('PASV storms (DATA_TIMEOUT_SECONDS)', () => {
  it('passive ports nobody connects to are freed after the data timeout; repeated PASV holds one port', async () => {
    await withServer({ DATA_TIMEOUT_SECONDS: '2' }, async (srv) => {
      const range = srv.config.data.pasvMaxPort - srv.config.data.pasvMinPort + 1;
      const clients = await Promise.all(Array.from({ length: range + 1 }, () => loggedIn(srv.port, { prot: false })));
      const [repeater, ...storm] = clients;
      // One session asking again and again replaces its listener each time.
      for (let i = 0; i < 30; i++) expect((await repeater!.send('PASV')).code).toBe(227);
      expect(srv.server.stats.passivePortsInUse).toBe(1);
      // The others, each holding one port, exhaust the range (ports busy outside the server are skipped).
      const codes = await Promise.all(storm.map(async (c) => (await c.send('EPSV')).code));
      expect(codes).toContain(425);
      const opened = codes.filter((code) => code === 229).length;
      expect(srv.server.stats.passivePortsInUse).toBe(opened + 1);
      expect(opened + 1).toBeLessThanOrEqual(range);

      await vi.waitFor(() => expect(srv.server.stats.passivePortsInUse).toBe(0), { timeout: 5000, interval: 50 });
      const refused = storm[codes.indexOf(425)]!;
      expect((await refused.send('EPSV')).code).toBe(229);
      // The abandoned listener is gone: a transfer on it says so.
      const abandoned = storm[codes.indexOf(229)]!;
      expect((await abandoned.send('PBSZ 0')).code).toBe(200);
      expect((await abandoned.send('PROT P')).code).toBe(200);
      await writeFile(path.join(srv.root, 'file.txt'), 'content');
      expect((await abandoned.send('RETR file.txt')).code).toBe(425);
      for (const c of clients) c.close();
    });
  });
});

describe.concurrent('connection limits under a burst', () => {
  /** `count` connections at once, alternating between the addresses by the given shares; all kept open. */
  async function burst(srv: RunningServer, shares: Record<string, number>) {
    const addresses = Object.entries(shares).flatMap(([address, n]) => Array<string>(n).fill(address));
    const results = await Promise.all(addresses.map((address) => firstLine(srv.port, address).then((r) => ({ ...r, address }))));
    const admitted = results.filter((r) => r.line.startsWith('220 '));
    const refused = results.filter((r) => !r.line.startsWith('220 '));
    return {
      admitted,
      refused,
      admittedFrom: (address: string) => admitted.filter((r) => r.address === address).length,
      close: () => results.forEach((r) => r.socket.destroy()),
    };
  }

  it('MAX_CONNECTIONS_PER_IP: 100 connections at once from two addresses, exactly the limit from each', async () => {
    await withServer({ MAX_CONNECTIONS_PER_IP: '10' }, async (srv) => {
      const b = await burst(srv, { '127.0.0.1': 50, '127.0.0.2': 50 });
      expect([b.admittedFrom('127.0.0.1'), b.admittedFrom('127.0.0.2')]).toEqual([10, 10]);
      expect(new Set(b.refused.map((r) => r.line))).toEqual(new Set(['421 Too many connections from your address, try again later']));
      // The refused cost no session and no TLS context.
      expect(srv.server.stats).toMatchObject({ sessions: 20, sessionsOpened: 20, tlsContexts: 0, refused: { banned: 0, overLimit: 80 } });
      b.close();
    });
  });

  it('MAX_CONNECTIONS with MAX_CONNECTIONS_PER_IP: 100 at once, never more than either; freed slots are reused', async () => {
    await withServer({ MAX_CONNECTIONS: '25', MAX_CONNECTIONS_PER_IP: '15' }, async (srv) => {
      const b = await burst(srv, { '127.0.0.1': 70, '127.0.0.2': 30 });
      expect(b.admitted).toHaveLength(25);
      expect(b.admittedFrom('127.0.0.1')).toBeLessThanOrEqual(15);
      expect(b.admittedFrom('127.0.0.2')).toBeLessThanOrEqual(15);
      for (const r of b.refused) expect(r.line).toMatch(/^421 Too many connections( from your address)?, try again later$/);
      expect(srv.server.stats).toMatchObject({ sessions: 25, sessionsOpened: 25, refused: { overLimit: 75 } });
      b.close();
      await vi.waitFor(() => expect(srv.server.stats.sessions).toBe(0), { timeout: 3000, interval: 20 });
      const again = await firstLine(srv.port, '127.0.0.1');
      expect(again.line).toMatch(/^220 /);
      again.socket.destroy();
    });
  });

  it('implicit mode: refused connections are closed without TLS', async () => {
    await withServer({ FTPS_IMPLICIT_SSL: 'true', MAX_CONNECTIONS_PER_IP: '2' }, async (srv) => {
      const held = await Promise.all([RawFtpClient.connect(srv.port, { implicitTls: true }), RawFtpClient.connect(srv.port, { implicitTls: true })]);
      for (const c of held) expect((await c.read()).code).toBe(220);
      const contexts = srv.server.stats.tlsContexts;
      const refused = await Promise.all(Array.from({ length: 30 }, () => tcp(srv.port)));
      expect(await Promise.all(refused.map((r) => r.closed))).toEqual(Array(30).fill(''));
      expect(srv.server.stats).toMatchObject({ sessionsOpened: 2, tlsContexts: contexts, refused: { overLimit: 30 } });
      for (const c of held) c.close();
    });
  });
});
