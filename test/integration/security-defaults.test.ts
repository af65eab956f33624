/*
 * Every secure default, shown refusing the insecure path a client (or an attacker next to it) can take,
 * and the documented opt-out where one exists. Real server, real sockets, real TLS, real files.
 */
import { constants } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { setTimeout } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectData, RawFtpClient, loggedIn, secureClient } from '../support/raw-client.js';
import { startServer, withServer, TEST_PASSWORD, TEST_USER, type RunningServer } from '../support/server.js';

const CONTENT = 'the file body\n';

/** Everything a socket receives until it closes; a reset or failed handshake just ends it. */
function received(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

/**
 * Whether the client's TLS handshake resumed a session, read when the handshake completes (afterwards, once
 * the socket is closed, isSessionReused() says null). Call it right after the TCP connect.
 */
function resumed(socket: tls.TLSSocket): Promise<boolean> {
  return new Promise((resolve) => {
    socket.once('secureConnect', () => resolve(socket.isSessionReused()));
    // A handshake the server cut (522) resumed nothing.
    socket.once('error', () => resolve(false));
  });
}

function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    socket.on('error', () => undefined);
    socket.once('close', () => resolve());
  });
}

/** A plain TCP connection from a chosen local address; resolves with its first line (the greeting or a refusal). */
async function firstLineFrom(port: number, localAddress: string): Promise<{ line: string; socket: net.Socket }> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress });
  socket.on('error', () => undefined);
  const line = await new Promise<string>((resolve, reject) => {
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString('utf8');
      const end = text.indexOf('\r\n');
      if (end !== -1) resolve(text.slice(0, end));
    });
    socket.once('close', () => reject(new Error(`closed without a line (got ${JSON.stringify(text)})`)));
  });
  return { line, socket };
}

/** A listener that counts connections, to prove the server never connected to it. */
async function countingListener(host: string): Promise<{ port: number; count: () => number; close: () => Promise<void> }> {
  let n = 0;
  const server = net.createServer((s) => {
    n++;
    s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    count: () => n,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const logText = (srv: RunningServer): string => JSON.stringify(srv.logs);

describe('with the defaults', () => {
  let srv: RunningServer;
  beforeAll(async () => {
    srv = await startServer();
    await writeFile(path.join(srv.root, 'file.txt'), CONTENT);
  });
  afterAll(() => srv.stop());

  describe('login needs TLS (FTPS_REQUIRE_TLS)', () => {
    it('refuses USER and PASS in plain text with 530 and says why', async () => {
      const c = await RawFtpClient.connect(srv.port);
      expect((await c.read()).code).toBe(220);
      const u = await c.send(`USER ${TEST_USER}`);
      expect(u.code).toBe(530);
      expect(u.text).toMatch(/TLS required.*AUTH TLS/);
      const p = await c.send(`PASS ${TEST_PASSWORD}`);
      expect(p.code).toBe(530);
      expect(p.text).toMatch(/TLS required/);
      // Nothing that needs a login became available.
      expect((await c.send('PWD')).code).toBe(530);
      c.close();
    });
  });

  describe('data protection (FTPS_REQUIRE_PROT_P)', () => {
    it('refuses a download on a data connection without PROT with 521 and sends nothing', async () => {
      const c = await loggedIn(srv.port, { prot: false });
      const data = await c.openPassive({ tls: false });
      const body = received(data);
      const r = await c.send('RETR file.txt');
      expect(r.code).toBe(521);
      expect(r.text).toMatch(/PROT P/);
      expect((await body).length).toBe(0);
      c.close();
    });

    it('refuses PROT C with 536, and a transfer after it still gets 521 and creates no file', async () => {
      const c = await loggedIn(srv.port, { prot: false });
      expect((await c.send('PBSZ 0')).code).toBe(200);
      expect((await c.send('PROT C')).code).toBe(536);
      const data = await c.openPassive({ tls: false });
      const r = await c.send('STOR uploaded.txt');
      expect(r.code).toBe(521);
      data.end('should never reach the disk');
      await closed(data);
      // The next command is answered normally: the refused STOR left no transfer behind.
      expect((await c.send('NOOP')).code).toBe(200);
      expect(await readdir(srv.root)).not.toContain('uploaded.txt');
      c.close();
    });

    it('refuses PROT S and PROT E with 536', async () => {
      const c = await loggedIn(srv.port, { prot: false });
      expect((await c.send('PBSZ 0')).code).toBe(200);
      expect((await c.send('PROT S')).code).toBe(536);
      expect((await c.send('PROT E')).code).toBe(536);
      c.close();
    });

    it('refuses CCC: the control connection stays protected', async () => {
      const c = await loggedIn(srv.port);
      const r = await c.send('CCC');
      expect(r.code).toBeGreaterThanOrEqual(500);
      expect(r.text).toMatch(/refused/);
      // Still TLS: a command over the same TLS socket is answered.
      expect(c.socket).toBeInstanceOf(tls.TLSSocket);
      expect((await c.send('NOOP')).code).toBe(200);
      c.close();
    });

    it('answers a second AUTH after TLS with 503', async () => {
      const c = await secureClient(srv.port);
      expect((await c.send('AUTH TLS')).code).toBe(503);
      expect((await c.send('NOOP')).code).toBe(200);
      c.close();
    });
  });

  describe('data TLS must resume the control session (TLS_REQUIRE_SESSION_REUSE)', () => {
    it('serves a data connection that resumes its own control session (the control case)', async () => {
      const c = await loggedIn(srv.port);
      const data = (await c.openPassive({ tls: true })) as tls.TLSSocket;
      const reused = resumed(data);
      const body = received(data);
      expect((await c.send('RETR file.txt')).code).toBe(150);
      expect((await body).toString()).toBe(CONTENT);
      expect(await reused).toBe(true);
      expect((await c.read()).code).toBe(226);
      c.close();
    });

    it('refuses a fresh handshake with 522 and sends no data', async () => {
      const c = await loggedIn(srv.port);
      const data = await c.openPassive({ tls: true, resume: false });
      const body = received(data);
      expect((await c.send('RETR file.txt')).code).toBe(150);
      const r = await c.read();
      expect(r.code).toBe(522);
      expect((await body).length).toBe(0);
      c.close();
    });

    it("refuses a data connection that presents another control connection's session", async () => {
      const a = await loggedIn(srv.port);
      const b = await loggedIn(srv.port);
      expect(a.tlsSession).toBeDefined();
      const epsv = await b.send('EPSV');
      const port = Number(/\|\|\|(\d+)\|/.exec(epsv.text)?.[1]);
      const stolen = (await connectData(port, { tls: true, session: a.tlsSession })) as tls.TLSSocket;
      const reused = resumed(stolen);
      const body = received(stolen);
      expect((await b.send('RETR file.txt')).code).toBe(150);
      expect((await b.read()).code).toBe(522);
      expect(await reused).toBe(false);
      expect((await body).length).toBe(0);
      a.close();
      b.close();
    });
  });

  describe('data TLS session reuse over TLS 1.2 by session ID (tickets off, as curl with OpenSSL does)', () => {
    const TLS12_IDS: tls.ConnectionOptions = { maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET };

    async function loggedIn12(): Promise<RawFtpClient> {
      const c = await RawFtpClient.connect(srv.port);
      expect((await c.read()).code).toBe(220);
      expect((await c.upgrade(TLS12_IDS)).code).toBe(234);
      expect((c.socket as tls.TLSSocket).getProtocol()).toBe('TLSv1.2');
      expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
      expect((await c.send('PBSZ 0')).code).toBe(200);
      expect((await c.send('PROT P')).code).toBe(200);
      return c;
    }

    async function retrWithSession(c: RawFtpClient, session: Buffer | undefined): Promise<{ reused: boolean; codes: number[]; body: string }> {
      const epsv = await c.send('EPSV');
      const port = Number(/\|\|\|(\d+)\|/.exec(epsv.text)?.[1]);
      const data = tls.connect({ port, host: '127.0.0.1', session, rejectUnauthorized: false, ...TLS12_IDS });
      const reused = resumed(data);
      const body = received(data);
      const codes = [(await c.send('RETR file.txt')).code];
      codes.push((await c.read()).code);
      return { reused: await reused, codes, body: (await body).toString() };
    }

    it('resumes its own control session by ID', async () => {
      const c = await loggedIn12();
      expect(await retrWithSession(c, c.tlsSession)).toEqual({ reused: true, codes: [150, 226], body: CONTENT });
      c.close();
    });

    it("refuses another control connection's session ID with 522", async () => {
      const a = await loggedIn12();
      const b = await loggedIn12();
      expect(await retrWithSession(b, a.tlsSession)).toEqual({ reused: false, codes: [150, 522], body: '' });
      a.close();
      b.close();
    });
  });

  describe('passive data connections only from the client (PASV_PROMISCUOUS)', () => {
    it('refuses and logs a connection from another address; the real client still gets its file', async () => {
      const c = await loggedIn(srv.port);
      const epsv = await c.send('EPSV');
      const port = Number(/\|\|\|(\d+)\|/.exec(epsv.text)?.[1]);
      const thief = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
      // Refused means closed by the server at once; accepted, it would wait for a TLS handshake.
      expect(await Promise.race([received(thief).then((b) => b.length), setTimeout(3000, 'still open', { ref: false })])).toBe(0);
      expect(srv.logs).toContainEqual(
        expect.objectContaining({ msg: 'refused data connection from a foreign address', from: '127.0.0.2', port }),
      );
      const data = await connectData(port, { tls: true, session: c.tlsSession });
      const body = received(data);
      expect((await c.send('RETR file.txt')).code).toBe(150);
      expect((await body).toString()).toBe(CONTENT);
      expect((await c.read()).code).toBe(226);
      c.close();
    });
  });

  describe('active mode only to the client itself (anti-bounce)', () => {
    it.each([
      ['PORT to another loopback address', (p: number) => `PORT 127,0,0,2,${p >> 8},${p & 255}`],
      ['EPRT to another loopback address', (p: number) => `EPRT |1|127.0.0.2|${p}|`],
      ['PORT to a private network address', () => 'PORT 10,1,2,3,19,137'],
      ['EPRT to a private network address', () => 'EPRT |1|10.1.2.3|5001|'],
      ['EPRT to an IPv6 address', () => 'EPRT |2|fd00::1|5001|'],
    ])('%s → 504, and the server connects nowhere', async (_label, command) => {
      const foreign = await countingListener('127.0.0.2');
      const c = await loggedIn(srv.port);
      const r = await c.send(command(foreign.port));
      expect(r.code).toBe(504);
      // The refused target was not remembered: a transfer now has no data connection at all.
      expect((await c.send('RETR file.txt')).code).toBe(425);
      expect(foreign.count()).toBe(0);
      await foreign.close();
      c.close();
    });

    it.each([
      ['PORT', 'PORT 127,0,0,1,0,21'],
      ['EPRT', 'EPRT |1|127.0.0.1|22|'],
    ])('%s to a privileged port of the client → 504', async (_label, command) => {
      const c = await loggedIn(srv.port);
      expect((await c.send(command)).code).toBe(504);
      expect((await c.send('RETR file.txt')).code).toBe(425);
      c.close();
    });

    it('connects back to the client itself (the control case)', async () => {
      const c = await loggedIn(srv.port);
      const listener = net.createServer();
      await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
      const port = (listener.address() as net.AddressInfo).port;
      const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
      expect((await c.send(`EPRT |1|127.0.0.1|${port}|`)).code).toBe(200);
      expect((await c.send('RETR file.txt')).code).toBe(150);
      // Active mode: the server connected, the client plays the TLS client on that socket.
      // No SNI (an IP as host), like the control connection: a TLS 1.3 session resumes only under the same name.
      const data = tls.connect({ socket: await accepted, host: '127.0.0.1', session: c.tlsSession, rejectUnauthorized: false });
      expect((await received(data)).toString()).toBe(CONTENT);
      expect((await c.read()).code).toBe(226);
      listener.close();
      c.close();
    });
  });

  describe('paths stay inside the root', () => {
    let outside: string;
    beforeAll(async () => {
      outside = await mkdtemp(path.join(os.tmpdir(), 'ftps-outside-'));
      await writeFile(path.join(outside, 'secret.txt'), 'outside secret');
      await mkdir(path.join(srv.root, 'sub'));
      await writeFile(path.join(srv.root, 'sub', 'inner.txt'), 'inner');
      await symlink(outside, path.join(srv.root, 'out-dir'));
      await symlink(path.join(outside, 'secret.txt'), path.join(srv.root, 'out-file'));
      await symlink(path.join(srv.root, 'sub', 'inner.txt'), path.join(srv.root, 'in-file'));
      await symlink('sub', path.join(srv.root, 'in-dir'));
    });
    afterAll(() => rm(outside, { recursive: true, force: true }));

    /** RETR over a proper protected data connection: the reply codes and the bytes that arrived. */
    async function retrieve(c: RawFtpClient, name: string): Promise<{ codes: number[]; body: string }> {
      const data = await c.openPassive({ tls: true });
      const body = received(data);
      const first = await c.send(`RETR ${name}`);
      const codes = [first.code];
      if (first.code === 150) codes.push((await c.read()).code);
      else data.destroy();
      return { codes, body: (await body).toString() };
    }

    it('CWD ../../.. stays at the root', async () => {
      const c = await loggedIn(srv.port);
      expect((await c.send('CWD sub')).code).toBe(250);
      await c.send('CWD ../../..');
      const pwd = await c.send('PWD');
      expect(pwd.text).toBe('257 "/" is the current directory');
      // And "/" is the FTP root, not the file system's.
      expect((await c.send('SIZE file.txt')).code).toBe(213);
      expect((await c.send('SIZE etc/passwd')).code).toBe(550);
      c.close();
    });

    it.each(['../../etc/passwd', '/etc/passwd', '../../../../../../../../etc/passwd', 'sub/../../etc/passwd'])(
      'RETR %s → 550, nothing served',
      async (name) => {
        const c = await loggedIn(srv.port);
        const { codes, body } = await retrieve(c, name);
        expect(codes).toEqual([550]);
        expect(body).toBe('');
        c.close();
      },
    );

    it('a NUL byte in a path is refused (553), never truncates the path', async () => {
      const c = await loggedIn(srv.port);
      const { codes, body } = await retrieve(c, 'file.txt\0.png');
      expect(codes).toEqual([553]);
      expect(body).toBe('');
      expect((await c.send('CWD /sub\0/..')).code).toBe(553);
      expect((await c.send('SIZE file.txt\0')).code).toBe(553);
      c.close();
    });

    it('a symlink that points outside the root is not followed', async () => {
      const c = await loggedIn(srv.port);
      expect(await retrieve(c, 'out-file')).toEqual({ codes: [550], body: '' });
      expect(await retrieve(c, 'out-dir/secret.txt')).toEqual({ codes: [550], body: '' });
      expect((await c.send('CWD out-dir')).code).toBe(550);
      expect((await c.send('SIZE out-file')).code).toBe(550);
      expect((await c.send('MKD out-dir/new')).code).toBe(550);
      expect((await c.send('DELE out-dir/secret.txt')).code).toBe(550);
      // Uploading through the link creates nothing outside.
      const data = await c.openPassive({ tls: true });
      const r = await c.send('STOR out-dir/planted.txt');
      data.destroy();
      expect(r.code).toBe(550);
      expect(await readdir(outside)).toEqual(['secret.txt']);
      c.close();
    });

    it('a symlink that points inside the root works', async () => {
      const c = await loggedIn(srv.port);
      expect(await retrieve(c, 'in-file')).toEqual({ codes: [150, 226], body: 'inner' });
      expect(await retrieve(c, 'in-dir/inner.txt')).toEqual({ codes: [150, 226], body: 'inner' });
      expect((await c.send('CWD in-dir')).code).toBe(250);
      c.close();
    });
  });

  describe('failed logins', () => {
    it('are slow, identical for unknown user and wrong password, and the last allowed one closes the connection', async () => {
      const wrong1 = 'wrong-password-one';
      const wrong2 = 'wrong-password-two';
      const c = await secureClient(srv.port);

      // Unknown user: the USER reply does not tell.
      expect((await c.send(`USER ${TEST_USER}`)).text).toBe((await c.send('USER nobody-here')).text);
      let started = performance.now();
      const unknownUser = await c.send(`PASS ${TEST_PASSWORD}`);
      expect(performance.now() - started).toBeGreaterThanOrEqual(950);

      expect((await c.send(`USER ${TEST_USER}`)).code).toBe(331);
      started = performance.now();
      const wrongPassword = await c.send(`PASS ${wrong1}`);
      expect(performance.now() - started).toBeGreaterThanOrEqual(950);

      expect(unknownUser.code).toBe(530);
      expect(wrongPassword.text).toBe(unknownUser.text);

      // LOGIN_MAX_ATTEMPTS defaults to 3: the third failure closes.
      expect((await c.send(`USER ${TEST_USER}`)).code).toBe(331);
      const last = await c.send(`PASS ${wrong2}`);
      expect(last.code).toBe(530);
      await expect(c.read(3000)).rejects.toThrow('connection closed');

      // The PASS commands were logged (so the search below is not vacuous), their arguments never.
      expect(srv.logs.filter((l) => l.msg === 'command' && l.verb === 'PASS').length).toBeGreaterThanOrEqual(3);
      expect(srv.logs.filter((l) => l.msg === 'login failed').length).toBeGreaterThanOrEqual(3);
      for (const secret of [TEST_PASSWORD, wrong1, wrong2]) expect(logText(srv)).not.toContain(secret);
    });

    it('a successful login never logs the password either, whatever the spelling of PASS', async () => {
      for (const pass of [`PASS ${TEST_PASSWORD}`, `pass ${TEST_PASSWORD}`, `Pass ${TEST_PASSWORD}`]) {
        const c = await secureClient(srv.port);
        expect((await c.send(`USER ${TEST_USER}`)).code).toBe(331);
        expect((await c.send(pass)).code).toBe(230);
        c.close();
      }
      expect(logText(srv)).not.toContain(TEST_PASSWORD);
    });

    it('a malformed PASS line (tab, no separator) is refused and its text is not logged either', async () => {
      // Upper case, so that the verb's case folding hides nothing.
      const secret = 'HUNTER2SECRET';
      const c = await secureClient(srv.port);
      expect((await c.send(`USER ${TEST_USER}`)).code).toBe(331);
      expect((await c.send(`PASS\t${secret}`)).code).toBe(502);
      expect((await c.send(`PASS${secret}`)).code).toBe(502);
      expect((await c.send(` PASS ${secret}`)).code).toBe(502);
      c.close();
      expect(srv.logs.filter((l) => l.msg === 'command').length).toBeGreaterThan(0);
      expect(logText(srv)).not.toContain(secret);
    });
  });

  describe('over-long command lines', () => {
    it('answers 500 and stays usable; the third closes with 421', async () => {
      const c = await RawFtpClient.connect(srv.port);
      expect((await c.read()).code).toBe(220);
      c.writeRaw(`NOOP ${'x'.repeat(5000)}\r\n`);
      expect((await c.read()).code).toBe(500);
      expect((await c.send('NOOP')).code).toBe(200);
      // A line still growing past the limit is answered at once, before its end arrives...
      c.writeRaw(`USER ${'y'.repeat(5000)}`);
      expect((await c.read()).code).toBe(500);
      // ...and the rest of it, up to its line end, is discarded, not run as a command.
      c.writeRaw('z'.repeat(3000));
      c.writeRaw('QUIT\r\n');
      expect((await c.send('SYST')).code).toBe(215);
      c.writeRaw(`${'A'.repeat(4100)}\r\n`);
      const r = await c.read();
      expect(r.code).toBe(421);
      await expect(c.read(3000)).rejects.toThrow('connection closed');
    });

    it('accepts a line of exactly 4096 bytes including CR', async () => {
      const c = await RawFtpClient.connect(srv.port);
      expect((await c.read()).code).toBe(220);
      const line = `NOOP ${' '.repeat(4096 - 'NOOP '.length - 1)}\r`;
      expect(Buffer.byteLength(line)).toBe(4096);
      c.writeRaw(`${line}\n`);
      expect((await c.read()).code).toBe(200);
      c.writeRaw(`${line.slice(0, -1)} \r\n`);
      expect((await c.read()).code).toBe(500);
      c.close();
    });
  });

  describe('STARTTLS command injection', () => {
    it('does not execute plain-text commands pipelined behind AUTH TLS', async () => {
      const c = await RawFtpClient.connect(srv.port);
      expect((await c.read()).code).toBe(220);
      // "AUTH TLS\r\nUSER x\r\n" in one write: upgrade() writes AUTH TLS into the corked socket.
      c.socket.cork();
      const upgraded = c.upgrade();
      c.writeRaw('USER injected\r\n');
      c.socket.uncork();
      expect((await upgraded).code).toBe(234);
      // The next reply is for what was sent over TLS, not a 331 for the injected USER.
      const next = await c.send('NOOP');
      expect(next.text).toBe('200 NOOP ok');
      expect((await c.send('PASS whatever')).code).toBe(503);
      expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
      expect(srv.logs.some((l) => l.verb === 'USER' && l.argument === 'injected')).toBe(false);
      c.close();
    });
  });
});

describe('opt-outs', () => {
  it('FTPS_REQUIRE_TLS=false: a plain-text login works (transfers still need PROT P)', async () => {
    await withServer({ FTPS_REQUIRE_TLS: 'false' }, async (srv) => {
      const c = await RawFtpClient.connect(srv.port);
      expect((await c.read()).code).toBe(220);
      expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
      expect((await c.send('PWD')).code).toBe(257);
      const data = await c.openPassive({ tls: false });
      expect((await c.send('LIST')).code).toBe(521);
      data.destroy();
      c.close();
    });
  });

  it('FTPS_REQUIRE_PROT_P=false: PROT C is accepted and a clear data connection transfers', async () => {
    await withServer({ FTPS_REQUIRE_PROT_P: 'false' }, async (srv) => {
      await writeFile(path.join(srv.root, 'file.txt'), CONTENT);
      const c = await loggedIn(srv.port, { prot: false });
      expect((await c.send('PBSZ 0')).code).toBe(200);
      expect((await c.send('PROT C')).code).toBe(200);
      const data = await c.openPassive({ tls: false });
      const body = received(data);
      expect((await c.send('RETR file.txt')).code).toBe(150);
      expect((await body).toString()).toBe(CONTENT);
      expect((await c.read()).code).toBe(226);
      c.close();
    });
  });

  it('TLS_REQUIRE_SESSION_REUSE=false: a fresh data handshake is accepted', async () => {
    await withServer({ TLS_REQUIRE_SESSION_REUSE: 'false' }, async (srv) => {
      await writeFile(path.join(srv.root, 'file.txt'), CONTENT);
      const c = await loggedIn(srv.port);
      const data = (await c.openPassive({ tls: true, resume: false })) as tls.TLSSocket;
      const reused = resumed(data);
      const body = received(data);
      expect((await c.send('RETR file.txt')).code).toBe(150);
      expect((await body).toString()).toBe(CONTENT);
      expect(await reused).toBe(false);
      expect((await c.read()).code).toBe(226);
      c.close();
    });
  });

  it('PASV_PROMISCUOUS=true: a data connection from another address is accepted', async () => {
    await withServer({ PASV_PROMISCUOUS: 'true' }, async (srv) => {
      await writeFile(path.join(srv.root, 'file.txt'), CONTENT);
      const c = await loggedIn(srv.port);
      const epsv = await c.send('EPSV');
      const port = Number(/\|\|\|(\d+)\|/.exec(epsv.text)?.[1]);
      const tcp = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
      await new Promise<void>((resolve, reject) => tcp.once('connect', resolve).once('error', reject));
      const other = tls.connect({ socket: tcp, host: '127.0.0.1', session: c.tlsSession, rejectUnauthorized: false });
      const body = received(other);
      expect((await c.send('RETR file.txt')).code).toBe(150);
      expect((await body).toString()).toBe(CONTENT);
      expect((await c.read()).code).toBe(226);
      c.close();
    });
  });

  it('ACTIVE_MODE=false: PORT and EPRT answer 502 and EPRT is not in FEAT', async () => {
    await withServer({ ACTIVE_MODE: 'false' }, async (srv) => {
      const c = await loggedIn(srv.port);
      expect((await c.send('PORT 127,0,0,1,200,10')).code).toBe(502);
      expect((await c.send('EPRT |1|127.0.0.1|51210|')).code).toBe(502);
      const feat = (await c.send('FEAT')).text.split('\n');
      expect(feat).toContain(' EPSV');
      expect(feat.some((l) => /EPRT/.test(l))).toBe(false);
      expect((await c.send('HELP')).text).not.toMatch(/\bPORT\b|\bEPRT\b/);
      c.close();
    });
  });
});

describe('limits', () => {
  it('IDLE_TIMEOUT_SECONDS: an idle client gets 421 and is disconnected', async () => {
    await withServer({ IDLE_TIMEOUT_SECONDS: '1' }, async (srv) => {
      const c = await RawFtpClient.connect(srv.port);
      const started = performance.now();
      expect((await c.read()).code).toBe(220);
      const r = await c.read(4000);
      expect(r.code).toBe(421);
      expect(r.text).toMatch(/idle/i);
      expect(performance.now() - started).toBeGreaterThanOrEqual(900);
      await expect(c.read(3000)).rejects.toThrow('connection closed');
    });
  });

  it('MAX_CONNECTIONS=2: the third connection gets 421 and is closed', async () => {
    await withServer({ MAX_CONNECTIONS: '2' }, async (srv) => {
      const a = await RawFtpClient.connect(srv.port);
      const b = await RawFtpClient.connect(srv.port);
      expect((await a.read()).code).toBe(220);
      expect((await b.read()).code).toBe(220);
      const c = await RawFtpClient.connect(srv.port);
      expect((await c.read()).code).toBe(421);
      await expect(c.read(3000)).rejects.toThrow('connection closed');
      // The two admitted sessions are unaffected.
      expect((await a.send('NOOP')).code).toBe(200);
      a.close();
      b.close();
    });
  });

  it('MAX_CONNECTIONS_PER_IP=1: a second connection from 127.0.0.1 gets 421, one from 127.0.0.2 is served', async () => {
    await withServer({ MAX_CONNECTIONS_PER_IP: '1' }, async (srv) => {
      const first = await firstLineFrom(srv.port, '127.0.0.1');
      expect(first.line).toMatch(/^220 /);
      const second = await firstLineFrom(srv.port, '127.0.0.1');
      expect(second.line).toMatch(/^421 /);
      await closed(second.socket);
      const other = await firstLineFrom(srv.port, '127.0.0.2');
      expect(other.line).toMatch(/^220 /);
      first.socket.destroy();
      other.socket.destroy();
    });
  });
});
