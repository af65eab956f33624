/*
 * Brute-force defence (LOGIN_BAN_THRESHOLD, LOGIN_BAN_WINDOW_SECONDS, LOGIN_BAN_SECONDS): failed logins are
 * counted per client address across connections; at the threshold the address is banned, and a banned address
 * is turned away at connect before any session or TLS context exists. Short bans keep the tests fast; each test
 * has its own server, so they run concurrently.
 */
import net from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { RawFtpClient, secureClient } from '../support/raw-client.js';
import { withServer, TEST_PASSWORD, TEST_USER, type RunningServer } from '../support/server.js';

/** Three failures ban for three seconds; a connection alone would allow ten. */
const BANS = { LOGIN_BAN_THRESHOLD: '3', LOGIN_BAN_SECONDS: '3', LOGIN_MAX_ATTEMPTS: '10' };

/** The first reply line a plain connection from `localAddress` receives, or '' when it is closed without one. */
function greetingFrom(port: number, localAddress: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.includes('\r\n')) socket.destroy();
    });
    socket.once('error', reject);
    socket.once('close', () => resolve(text.split('\r\n')[0]!));
  });
}

const logged = (srv: RunningServer, msg: string) => srv.logs.filter((l) => l.msg === msg);

describe.concurrent('login bans', () => {
  it('bans the address at the threshold, across connections, and lifts the ban in time', async () => {
    await withServer(BANS, async (srv) => {
      const a = await secureClient(srv.port);
      const b = await secureClient(srv.port);
      // Unknown user and wrong password: the same reply, and both count.
      const [unknownUser, wrongPassword] = await Promise.all([a.login('nobody', TEST_PASSWORD), b.login(TEST_USER, 'guess-1')]);
      expect(unknownUser).toEqual({ code: 530, text: '530 Login incorrect' });
      expect(wrongPassword).toEqual(unknownUser);
      expect(logged(srv, 'address banned after repeated login failures')).toEqual([]);

      // The third failure bans; its connection gets the usual reply and is closed.
      expect(await b.login(TEST_USER, 'guess-2')).toEqual(unknownUser);
      await expect(b.read()).rejects.toThrow('connection closed');
      expect(logged(srv, 'address banned after repeated login failures')).toEqual([
        expect.objectContaining({ level: 40, remote: '127.0.0.1', failures: 3, banSeconds: 3 }),
      ]);

      // New connections from the address: 421 at once; another address is served.
      const sessionsBefore = srv.server.stats.sessionsOpened;
      expect(await greetingFrom(srv.port, '127.0.0.1')).toBe('421 Too many failed logins from your address, try again later');
      expect(await greetingFrom(srv.port, '127.0.0.2')).toMatch(/^220 /);
      expect(srv.server.stats).toMatchObject({ sessionsOpened: sessionsBefore + 1, refused: { banned: 1 }, bannedAddresses: 1 });

      // A connection opened before the ban gets no more guesses, not even the right one.
      expect(await a.login(TEST_USER, TEST_PASSWORD)).toEqual(unknownUser);
      await expect(a.read()).rejects.toThrow('connection closed');

      await vi.waitFor(() => expect(logged(srv, 'address ban expired')).toEqual([expect.objectContaining({ remote: '127.0.0.1' })]), {
        timeout: 4000,
        interval: 50,
      });
      const c = await secureClient(srv.port);
      expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
      c.close();
      expect(srv.server.stats.bannedAddresses).toBe(0);
    });
  });

  it('a successful login in between does not reset the count', async () => {
    await withServer(BANS, async (srv) => {
      const attacker = await secureClient(srv.port);
      const user = await secureClient(srv.port);
      const [first, login] = await Promise.all([attacker.login(TEST_USER, 'guess-1'), user.login(TEST_USER, TEST_PASSWORD)]);
      expect([first.code, login.code]).toEqual([530, 230]);
      expect((await attacker.login(TEST_USER, 'guess-2')).code).toBe(530);
      expect((await attacker.login(TEST_USER, 'guess-3')).code).toBe(530);
      await expect(attacker.read()).rejects.toThrow('connection closed');
      expect(srv.server.stats.bannedAddresses).toBe(1);
      // The logged-in session is left alone; only new connections are turned away.
      expect((await user.send('PWD')).code).toBe(257);
      user.close();
    });
  });

  it('implicit mode: a banned address is closed without a byte, with no session or TLS context made', async () => {
    await withServer({ ...BANS, LOGIN_BAN_THRESHOLD: '1', FTPS_IMPLICIT_SSL: 'true' }, async (srv) => {
      const c = await RawFtpClient.connect(srv.port, { implicitTls: true });
      expect((await c.read()).code).toBe(220);
      expect((await c.login(TEST_USER, 'guess')).code).toBe(530);
      await expect(c.read()).rejects.toThrow('connection closed');

      const before = srv.server.stats;
      const linesBefore = srv.logs.length;
      const attempts = await Promise.all(Array.from({ length: 20 }, () => greetingFrom(srv.port, '127.0.0.1')));
      expect(attempts).toEqual(Array(20).fill(''));
      expect(srv.server.stats).toMatchObject({
        sessionsOpened: before.sessionsOpened,
        tlsContexts: before.tlsContexts,
        refused: { banned: 20, overLimit: 0 },
      });
      // The ban was logged once; the refused attempts log nothing above debug.
      expect(srv.logs.slice(linesBefore).filter((l) => (l.level as number) > 20)).toEqual([]);
    });
  });
});
