import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAll, loggedIn, RawFtpClient, type FtpReply } from '../support/raw-client.js';
import { startServer, TEST_USER, type RunningServer } from '../support/server.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

const open: RawFtpClient[] = [];

/** Logged in with PROT P; closed after each test. */
async function session(port: number): Promise<RawFtpClient> {
  const c = await loggedIn(port);
  open.push(c);
  return c;
}

interface Download {
  readonly opening: FtpReply;
  readonly bytes: Buffer;
  readonly final: FtpReply;
}

/** EPSV, a TLS data connection resuming the control session, the command, all bytes, the final reply. */
async function download(c: RawFtpClient, command: string): Promise<Download> {
  const data = await c.openPassive({ tls: true });
  const body = readAll(data);
  // Marked handled at once: a refused command's connection can be reset before its reply is read.
  body.catch(() => undefined);
  const opening = await c.send(command);
  if (opening.code !== 150) {
    // The server drops the data connection it will not use.
    await body.catch(() => undefined);
    return { opening, bytes: Buffer.alloc(0), final: opening };
  }
  const bytes = await body;
  return { opening, bytes, final: await c.read() };
}

async function upload(c: RawFtpClient, command: string, content: Buffer): Promise<{ opening: FtpReply; final: FtpReply }> {
  const data = await c.openPassive({ tls: true });
  const opening = await c.send(command);
  if (opening.code !== 150) {
    data.destroy();
    return { opening, final: opening };
  }
  await new Promise<void>((resolve) => data.end(content, resolve));
  const final = await c.read();
  data.destroy();
  return { opening, final };
}

/** Waits for a condition the server reaches asynchronously (e.g. a closed session released). */
async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const tempFiles = async (dir: string) => (await readdir(dir)).filter((n) => n.startsWith('.ftps-upload-'));

let srv: RunningServer;
beforeAll(async () => {
  srv = await startServer();
});
afterAll(async () => {
  for (const c of open) c.close();
  await srv.stop();
});

describe('ABOR', () => {
  it('aborts a large RETR the client is not reading: 426 then 226, and the session goes on', async () => {
    const big = path.join(srv.root, 'huge.bin');
    await writeFile(big, '');
    await truncate(big, 200 * 1024 * 1024);
    await writeFile(path.join(srv.root, 'small.txt'), 'small file');
    const c = await session(srv.port);

    const data = await c.openPassive({ tls: true });
    let received = 0;
    let paused = false;
    const gotSome = new Promise<void>((resolve) =>
      data.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (!paused && received >= 256 * 1024) {
          // A slow client: stop reading; the server's writes back up.
          paused = true;
          data.pause();
          resolve();
        }
      }),
    );
    const closed = new Promise<void>((resolve) => data.once('close', () => resolve()));
    data.on('error', () => undefined);
    expect((await c.send('RETR huge.bin')).code).toBe(150);
    await gotSome;

    // As curl and ncftp send it: Telnet IP and Synch (IAC IP IAC DM) before ABOR.
    c.writeRaw(Buffer.concat([Buffer.from([0xff, 0xf4, 0xff, 0xf2]), Buffer.from('ABOR\r\n')]));
    const first = await c.read();
    const second = await c.read();
    expect([first.code, second.code]).toEqual([426, 226]);
    data.resume();
    await closed;
    expect(received).toBeLessThan(200 * 1024 * 1024);
    expect(srv.logs.some((l) => l.msg === 'transfer' && l.path === '/huge.bin' && l.result === 'aborted')).toBe(true);

    expect((await c.send('NOOP')).code).toBe(200);
    const after = await download(c, 'RETR small.txt');
    expect(after.final.code).toBe(226);
    expect(after.bytes.toString()).toBe('small file');
  });

  it('answers 225 when no transfer is running', async () => {
    const c = await session(srv.port);
    expect((await c.send('ABOR')).code).toBe(225);
    expect((await c.send('NOOP')).code).toBe(200);
  });
});

describe('restart, append and unique names', () => {
  it('REST + RETR returns exactly the tail, and the offset applies to one transfer only', async () => {
    const content = randomBytes(100_000);
    await writeFile(path.join(srv.root, 'rest.bin'), content);
    const c = await session(srv.port);
    expect((await c.send('REST 12345')).code).toBe(350);
    const tail = await download(c, 'RETR rest.bin');
    expect(tail.final.code).toBe(226);
    expect(tail.bytes.equals(content.subarray(12_345))).toBe(true);
    const whole = await download(c, 'RETR rest.bin');
    expect(sha256(whole.bytes)).toBe(sha256(content));
    expect((await c.send('REST 100000')).code).toBe(350);
    expect((await download(c, 'RETR rest.bin')).bytes.length).toBe(0);
    expect((await c.send('REST 100001')).code).toBe(350);
    expect((await download(c, 'RETR rest.bin')).final.code).toBe(554);
  });

  it('REST + STOR writes in place from the offset (resumed upload)', async () => {
    const content = randomBytes(300_000);
    const target = path.join(srv.root, 'resumed.bin');
    await writeFile(target, content.subarray(0, 120_000));
    const c = await session(srv.port);
    expect((await c.send('REST 120000')).code).toBe(350);
    const r = await upload(c, 'STOR resumed.bin', content.subarray(120_000));
    expect(r.final.code).toBe(226);
    expect(sha256(await readFile(target))).toBe(sha256(content));

    // Resuming before the end replaces what follows the offset.
    await writeFile(path.join(srv.root, 'digits.txt'), '0123456789');
    expect((await c.send('REST 4')).code).toBe(350);
    expect((await upload(c, 'STOR digits.txt', Buffer.from('abc'))).final.code).toBe(226);
    expect(await readFile(path.join(srv.root, 'digits.txt'), 'utf8')).toBe('0123abc');
  });

  it('APPE appends to an existing file and creates a missing one', async () => {
    await writeFile(path.join(srv.root, 'log.txt'), 'head-');
    const c = await session(srv.port);
    expect((await upload(c, 'APPE log.txt', Buffer.from('tail'))).final.code).toBe(226);
    expect(await readFile(path.join(srv.root, 'log.txt'), 'utf8')).toBe('head-tail');
    expect((await upload(c, 'APPE fresh.txt', Buffer.from('new'))).final.code).toBe(226);
    expect(await readFile(path.join(srv.root, 'fresh.txt'), 'utf8')).toBe('new');
  });

  it('STOU stores under a new unique name and announces it (150 FILE: name)', async () => {
    await mkdir(path.join(srv.root, 'stou'));
    await writeFile(path.join(srv.root, 'stou/report.txt'), 'original');
    const c = await session(srv.port);
    expect((await c.send('CWD stou')).code).toBe(250);

    const first = await upload(c, 'STOU report.txt', Buffer.from('copy one'));
    expect(first.opening.text).toBe('150 FILE: report.1.txt');
    expect(first.final.code).toBe(226);
    expect(first.final.text).toContain('report.1.txt');
    const second = await upload(c, 'STOU report.txt', Buffer.from('copy two'));
    expect(second.opening.text).toBe('150 FILE: report.2.txt');
    const unnamed = await upload(c, 'STOU', Buffer.from('anonymous'));
    const name = /^150 FILE: (\S+)$/.exec(unnamed.opening.text)?.[1];
    expect(name).toBeDefined();

    expect(await readFile(path.join(srv.root, 'stou/report.txt'), 'utf8')).toBe('original');
    expect(await readFile(path.join(srv.root, 'stou/report.1.txt'), 'utf8')).toBe('copy one');
    expect(await readFile(path.join(srv.root, 'stou/report.2.txt'), 'utf8')).toBe('copy two');
    expect(await readFile(path.join(srv.root, 'stou', name!), 'utf8')).toBe('anonymous');
  });
});

describe('TYPE A', () => {
  it('converts LF to CRLF on download and CRLF to LF on upload; TYPE I does not', async () => {
    await writeFile(path.join(srv.root, 'unix.txt'), 'one\ntwo\r\nthree\n');
    const c = await session(srv.port);
    expect((await c.send('TYPE A')).code).toBe(200);
    expect((await download(c, 'RETR unix.txt')).bytes.toString()).toBe('one\r\ntwo\r\nthree\r\n');
    expect((await upload(c, 'STOR dos.txt', Buffer.from('alpha\r\nbeta\r\ngamma'))).final.code).toBe(226);
    expect(await readFile(path.join(srv.root, 'dos.txt'), 'utf8')).toBe('alpha\nbeta\ngamma');

    expect((await c.send('TYPE I')).code).toBe(200);
    expect((await download(c, 'RETR unix.txt')).bytes.toString()).toBe('one\ntwo\r\nthree\n');
    expect((await upload(c, 'STOR raw.txt', Buffer.from('a\r\nb'))).final.code).toBe(226);
    expect(await readFile(path.join(srv.root, 'raw.txt'), 'utf8')).toBe('a\r\nb');
  });
});

/** A TLS data connection (resuming the control session) whose TCP socket the test can reset. */
async function resettableData(c: RawFtpClient): Promise<{ raw: net.Socket; data: tls.TLSSocket }> {
  const epsv = await c.send('EPSV');
  const port = Number(/\|\|\|(\d+)\|/.exec(epsv.text)![1]);
  const raw = net.connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
  const data = tls.connect({ socket: raw, host: '127.0.0.1', session: c.tlsSession, rejectUnauthorized: false });
  data.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => data.once('secureConnect', resolve).once('error', reject));
  expect(data.isSessionReused()).toBe(true);
  return { raw, data };
}

describe('broken data connections', () => {
  it('keeps the previous file and leaves no temporary file when the data connection is reset mid-STOR', async () => {
    await mkdir(path.join(srv.root, 'reset'));
    const target = path.join(srv.root, 'reset/target.bin');
    const previous = randomBytes(10_000);
    await writeFile(target, previous);
    const c = await session(srv.port);

    const { raw, data } = await resettableData(c);
    expect((await c.send('STOR reset/target.bin')).code).toBe(150);
    await new Promise<void>((resolve) => data.write(randomBytes(2 * 1024 * 1024), () => resolve()));
    // The upload is under way: it goes to a temporary file beside the target.
    expect(await tempFiles(path.join(srv.root, 'reset'))).toHaveLength(1);
    raw.resetAndDestroy();

    const final = await c.read();
    expect(final.code).toBe(426);
    expect(await readFile(target)).toEqual(previous);
    expect(await tempFiles(path.join(srv.root, 'reset'))).toEqual([]);
    expect(await readdir(path.join(srv.root, 'reset'))).toEqual(['target.bin']);
    expect((await c.send('NOOP')).code).toBe(200);
  });

  it('answers 426 when the client resets the data connection during a RETR, and the session goes on', async () => {
    const big = path.join(srv.root, 'reset-download.bin');
    await writeFile(big, '');
    await truncate(big, 64 * 1024 * 1024);
    const c = await session(srv.port);
    const { raw, data } = await resettableData(c);
    const gotSome = new Promise<void>((resolve) => data.once('data', () => resolve()));
    expect((await c.send('RETR reset-download.bin')).code).toBe(150);
    await gotSome;
    raw.resetAndDestroy();
    expect((await c.read()).code).toBe(426);
    expect((await c.send('NOOP')).code).toBe(200);
    await writeFile(path.join(srv.root, 'after-reset.txt'), 'fine');
    expect((await download(c, 'RETR after-reset.txt')).bytes.toString()).toBe('fine');
  });
});

describe('listings and file facts', () => {
  const recent = new Date(Date.now() - 3600_000);
  recent.setUTCMilliseconds(0);
  const old = new Date(Date.UTC(2020, 2, 4, 5, 6, 7));
  const pad = (n: number) => String(n).padStart(2, '0');
  const mdtm = (d: Date) =>
    `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}`;
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const lsDate = (d: Date) => `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2)} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  const dir = () => path.join(srv.root, 'fmt');

  beforeAll(async () => {
    await mkdir(path.join(dir(), 'sub'), { recursive: true });
    await writeFile(path.join(dir(), 'a.txt'), 'hello');
    await writeFile(path.join(dir(), 'old.txt'), 'abc');
    await chmod(path.join(dir(), 'a.txt'), 0o644);
    await chmod(path.join(dir(), 'old.txt'), 0o600);
    await chmod(path.join(dir(), 'sub'), 0o755);
    await utimes(path.join(dir(), 'a.txt'), recent, recent);
    await utimes(path.join(dir(), 'old.txt'), old, old);
    await utimes(path.join(dir(), 'sub'), recent, recent);
  });

  it('LIST gives ls -l lines (time for recent files, year for old ones), with or without options', async () => {
    const c = await session(srv.port);
    const subSize = (await stat(path.join(dir(), 'sub'))).size;
    const expected = [
      `-rw-r--r-- 1 ftp ftp         5 ${lsDate(recent)} a.txt`,
      `-rw------- 1 ftp ftp         3 Mar  4  2020 old.txt`,
      `drwxr-xr-x 1 ftp ftp ${String(subSize).padStart(9)} ${lsDate(recent)} sub`,
    ];
    for (const command of ['LIST fmt', 'LIST -la fmt']) {
      const r = await download(c, command);
      expect(r.final.code).toBe(226);
      expect(r.bytes.toString().endsWith('\r\n')).toBe(true);
      expect(r.bytes.toString().split('\r\n').filter(Boolean).sort()).toEqual([...expected].sort());
    }
    const one = await download(c, 'LIST fmt/a.txt');
    expect(one.bytes.toString()).toBe(`${expected[0]}\r\n`);
    const lsLine = /^[-dl][rwx-]{9} 1 ftp ftp +\d+ [A-Z][a-z]{2} [ \d]\d ( \d{4}|\d\d:\d\d) .+$/;
    for (const line of expected) expect(line).toMatch(lsLine);
    expect((await download(c, 'LIST missing')).final.code).toBe(550);
  });

  it('NLST gives names only', async () => {
    const c = await session(srv.port);
    const r = await download(c, 'NLST fmt');
    expect(r.final.code).toBe(226);
    expect(r.bytes.toString().split('\r\n').filter(Boolean).sort()).toEqual(['a.txt', 'old.txt', 'sub']);
  });

  it('MLSD gives RFC 3659 facts; MLSD of a file is refused', async () => {
    const c = await session(srv.port);
    const r = await download(c, 'MLSD fmt');
    expect(r.final.code).toBe(226);
    expect(r.bytes.toString().split('\r\n').filter(Boolean).sort()).toEqual([
      `type=dir;modify=${mdtm(recent)};perm=cdeflmp;unix.mode=0755; sub`,
      `type=file;size=3;modify=${mdtm(old)};perm=adfrw;unix.mode=0600; old.txt`,
      `type=file;size=5;modify=${mdtm(recent)};perm=adfrw;unix.mode=0644; a.txt`,
    ]);
    expect((await download(c, 'MLSD fmt/a.txt')).final.code).toBe(550);
  });

  it('MLST and STAT answer on the control connection', async () => {
    const c = await session(srv.port);
    const mlst = await c.send('MLST fmt/a.txt');
    expect(mlst.code).toBe(250);
    expect(mlst.text.split('\n')).toEqual([
      '250-Listing /fmt/a.txt',
      ` type=file;size=5;modify=${mdtm(recent)};perm=adfrw;unix.mode=0644; /fmt/a.txt`,
      '250 End',
    ]);
    expect((await c.send('MLST fmt/none')).code).toBe(550);

    const listing = await c.send('STAT fmt');
    expect(listing.code).toBe(213);
    const lines = listing.text.split('\n');
    expect(lines[0]).toBe('213-Status of /fmt:');
    expect(lines.at(-1)).toBe('213 End of status');
    expect(lines).toContain(` -rw-r--r-- 1 ftp ftp         5 ${lsDate(recent)} a.txt`);
    expect(lines).toContain(' -rw------- 1 ftp ftp         3 Mar  4  2020 old.txt');

    const status = await c.send('STAT');
    expect(status.code).toBe(211);
    expect(status.text).toContain(`Logged in as ${TEST_USER}`);
    expect(status.text).toContain('Control connection protected by TLS');
    expect(status.text).toContain('Data connections protected by TLS');
  });

  it('SIZE, MDTM and MFMT', async () => {
    const c = await session(srv.port);
    expect(await c.send('SIZE fmt/a.txt')).toEqual({ code: 213, text: '213 5' });
    expect((await c.send('SIZE fmt/sub')).code).toBe(550);
    expect((await c.send('SIZE fmt/none')).code).toBe(550);
    expect(await c.send('MDTM fmt/old.txt')).toEqual({ code: 213, text: `213 ${mdtm(old)}` });

    await writeFile(path.join(srv.root, 'touch.txt'), 'x');
    expect(await c.send('MFMT 20210102030405 touch.txt')).toEqual({ code: 213, text: '213 Modify=20210102030405; touch.txt' });
    expect((await stat(path.join(srv.root, 'touch.txt'))).mtime.toISOString()).toBe('2021-01-02T03:04:05.000Z');
    expect(await c.send('MDTM touch.txt')).toEqual({ code: 213, text: '213 20210102030405' });
    expect((await c.send('MFMT 20211302030405 touch.txt')).code).toBe(501);
    expect((await c.send('MFMT 20210102030405 none.txt')).code).toBe(550);
  });
});

describe('data connection set-up', () => {
  it('answers 425 to a transfer without PASV/EPSV/PORT/EPRT and touches nothing', async () => {
    await writeFile(path.join(srv.root, 'there.txt'), 'there');
    const c = await session(srv.port);
    expect((await c.send('RETR there.txt')).code).toBe(425);
    expect((await c.send('LIST')).code).toBe(425);
    expect((await c.send('STOR never.txt')).code).toBe(425);
    await expect(stat(path.join(srv.root, 'never.txt'))).rejects.toMatchObject({ code: 'ENOENT' });
    // A data channel is used by one transfer only.
    const used = await download(c, 'RETR there.txt');
    expect(used.final.code).toBe(226);
    expect((await c.send('RETR there.txt')).code).toBe(425);
  });

  it('answers 425 to PASV when the passive range is exhausted, and frees the port after use or close', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const onlyPort = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const single = await startServer({ PASV_MIN_PORT: String(onlyPort), PASV_MAX_PORT: String(onlyPort) });
    try {
      await writeFile(path.join(single.root, 'f.txt'), 'f');
      const pasvPort = (r: FtpReply) => {
        const m = /\(127,0,0,1,(\d+),(\d+)\)/.exec(r.text);
        return m ? Number(m[1]) * 256 + Number(m[2]) : undefined;
      };
      const a = await session(single.port);
      const b = await session(single.port);
      const first = await a.send('PASV');
      expect(first.code).toBe(227);
      expect(pasvPort(first)).toBe(onlyPort);
      expect((await b.send('PASV')).code).toBe(425);
      expect((await b.send('EPSV')).code).toBe(425);

      // Session a uses its channel: the port goes back to the pool.
      const data = tls.connect({ port: onlyPort, host: '127.0.0.1', session: a.tlsSession, rejectUnauthorized: false });
      const body = readAll(data);
      expect((await a.send('NLST')).code).toBe(150);
      expect((await body).toString()).toBe('f.txt\r\n');
      expect((await a.read()).code).toBe(226);
      const again = await b.send('PASV');
      expect(again.code).toBe(227);
      expect(pasvPort(again)).toBe(onlyPort);
      expect((await a.send('PASV')).code).toBe(425);

      // Session b leaves without using it: closing the session frees the port.
      expect((await b.send('QUIT')).code).toBe(221);
      await until(() => single.server.sessionCount === 1, 'the server to drop the closed session');
      expect((await a.send('PASV')).code).toBe(227);
    } finally {
      await single.stop();
    }
  });

  describe('active mode (PORT/EPRT) to the client itself', () => {
    async function listen(): Promise<{ server: net.Server; port: number; accepted: Promise<net.Socket> }> {
      const server = net.createServer();
      const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return { server, port: (server.address() as net.AddressInfo).port, accepted };
    }

    /** The server connects; with PROT P it is the TLS server and the test the TLS client resuming the session. */
    async function secureAccepted(c: RawFtpClient, accepted: Promise<net.Socket>): Promise<tls.TLSSocket> {
      const socket = await accepted;
      const secure = tls.connect({ socket, host: '127.0.0.1', session: c.tlsSession, rejectUnauthorized: false });
      await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
      expect(secure.isSessionReused()).toBe(true);
      return secure;
    }

    it('PORT + RETR: the server connects back and sends the file over TLS', async () => {
      const content = randomBytes(500_000);
      await writeFile(path.join(srv.root, 'active.bin'), content);
      const c = await session(srv.port);
      const l = await listen();
      try {
        expect((await c.send(`PORT 127,0,0,1,${l.port >> 8},${l.port & 0xff}`)).code).toBe(200);
        c.writeRaw('RETR active.bin\r\n');
        const data = await secureAccepted(c, l.accepted);
        expect(data.remoteAddress).toBe('127.0.0.1');
        const body = readAll(data);
        expect((await c.read()).code).toBe(150);
        expect(sha256(await body)).toBe(sha256(content));
        expect((await c.read()).code).toBe(226);
      } finally {
        l.server.close();
      }
    });

    it('EPRT + STOR: the upload arrives on disk', async () => {
      const content = randomBytes(400_000);
      const c = await session(srv.port);
      const l = await listen();
      try {
        expect((await c.send(`EPRT |1|127.0.0.1|${l.port}|`)).code).toBe(200);
        c.writeRaw('STOR active-up.bin\r\n');
        const data = await secureAccepted(c, l.accepted);
        expect((await c.read()).code).toBe(150);
        await new Promise<void>((resolve) => data.end(content, resolve));
        expect((await c.read()).code).toBe(226);
        expect(sha256(await readFile(path.join(srv.root, 'active-up.bin')))).toBe(sha256(content));
      } finally {
        l.server.close();
      }
    });

    it('refuses active connections to another address or a privileged port', async () => {
      const c = await session(srv.port);
      expect((await c.send('PORT 10,1,2,3,200,10')).code).toBe(504);
      expect((await c.send('EPRT |1|10.1.2.3|51210|')).code).toBe(504);
      expect((await c.send('PORT 127,0,0,1,0,21')).code).toBe(504);
      expect((await c.send('PORT 127,0,0,1')).code).toBe(501);
      // Nothing was set up by the refused commands.
      expect((await c.send('LIST')).code).toBe(425);
    });
  });
});
