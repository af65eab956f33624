/*
 * What happens to files and file descriptors when things go wrong mid-transfer: a client that vanishes,
 * a file deleted or truncated while it is being sent, a listing taken while an upload is running, and
 * many sessions that end in every way a session can end. In-process server, real TLS sockets, real files.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ftpsLogin } from '../support/ftps-client.js';
import { loggedIn, RawFtpClient, type FtpReply } from '../support/raw-client.js';
import { startServer, TEST_PASSWORD, TEST_USER, withServer, type RunningServer } from '../support/server.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const TEMP_NAME = /^\.ftps-upload-/;
const tempFiles = async (dir: string) => (await readdir(dir)).filter((n) => TEMP_NAME.test(n));
const openFds = () => readdirSync('/proc/self/fd').length;

/** Waits for a condition the server reaches asynchronously. */
async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Rejects with `what` when `promise` has not settled within `ms`: a hang fails the test instead of stalling it. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still running after ${ms} ms (hang)`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const clients: RawFtpClient[] = [];

/** Logged in with PROT P; closed after each test. */
async function session(port: number): Promise<RawFtpClient> {
  const c = await loggedIn(port);
  clients.push(c);
  return c;
}

/**
 * EPSV, `command` (answered 150) and its protected data connection resuming the control session, built on a TCP
 * socket of our own: `raw` can then be closed under the TLS layer, without close_notify, as when a client process
 * dies. The command goes before the TLS handshake, as clients send it (the server starts TLS for its direction).
 */
async function dataConnection(c: RawFtpClient, command: string): Promise<{ raw: net.Socket; data: tls.TLSSocket }> {
  const epsv = await c.send('EPSV');
  expect(epsv.code, epsv.text).toBe(229);
  const port = Number(/\|\|\|(\d+)\|/.exec(epsv.text)![1]);
  const raw = net.connect({ port, host: '127.0.0.1' });
  raw.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
  expect((await c.send(command)).code, command).toBe(150);
  // host: an IP, so no SNI — as on the control connection; OpenSSL resumes a TLS 1.3 session only under the same name.
  const data = tls.connect({ socket: raw, host: '127.0.0.1', session: c.tlsSession, rejectUnauthorized: false });
  data.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => data.once('secureConnect', resolve).once('error', reject));
  expect(data.isSessionReused()).toBe(true);
  return { raw, data };
}

/** The codes of every reply until the connection closes ('closed'), or until none comes for 5 s ('no reply'). */
async function codesUntilClosed(c: RawFtpClient): Promise<Array<number | string>> {
  const codes: Array<number | string> = [];
  for (;;) {
    try {
      codes.push((await c.read(5000)).code);
    } catch (err) {
      codes.push(String(err).includes('closed') ? 'closed' : 'no reply');
      return codes;
    }
  }
}

/** The bytes of a listing command (LIST/NLST/MLSD) and its final reply. */
async function listing(c: RawFtpClient, command: string): Promise<{ text: string; final: FtpReply }> {
  const { data } = await dataConnection(c, command);
  const chunks: Buffer[] = [];
  data.on('data', (chunk: Buffer) => chunks.push(chunk));
  await new Promise<void>((resolve) => (data.closed ? resolve() : data.once('close', () => resolve())));
  return { text: Buffer.concat(chunks).toString('utf8'), final: await c.read() };
}

/** Writes `total` random bytes in 64 KiB pieces, each after the previous one was handed to the kernel. */
async function send(data: tls.TLSSocket, total: number): Promise<void> {
  for (let sent = 0; sent < total; sent += 65_536) {
    await new Promise<void>((resolve, reject) => data.write(randomBytes(65_536), (err) => (err ? reject(err) : resolve())));
  }
}

/** The size of the one temporary upload file in `dir` (0 while there is none). */
async function tempSize(dir: string): Promise<number> {
  const [name] = await tempFiles(dir);
  if (name === undefined) return 0;
  return (await stat(path.join(dir, name)).catch(() => ({ size: 0 }))).size;
}

let srv: RunningServer;
beforeAll(async () => {
  // A short data timeout: nothing in these tests should ever need to wait for it, but a bug that makes the
  // server wait for a data connection must end the transfer well inside the test's own time limit.
  // The descriptor test runs 10 sessions at once from 127.0.0.1, each holding a passive port for a moment (and one
  // kind never connects): the default share of an address, a quarter of the test's 20 ports, would refuse some.
  srv = await startServer({ DATA_TIMEOUT_SECONDS: '5', LOG_LEVEL: 'info', PASV_MAX_PER_IP: '20' });
});
afterAll(async () => {
  for (const c of clients) c.close();
  await srv?.stop();
});

describe('a client vanishing mid-STOR', () => {
  // fin: the TCP connections end normally, but the TLS layer never says close_notify (a killed process).
  // rst: both connections are reset (a process killed with unread data, or a middlebox giving up).
  for (const how of ['fin', 'rst'] as const) {
    it(`(${how} on data and control) leaves the previous content intact and, once the session has ended, no temporary file`, async () => {
      const dir = path.join(srv.root, `vanish-${how}`);
      await mkdir(dir);
      const target = path.join(dir, 'target.bin');
      const previous = randomBytes(300_000);
      await writeFile(target, previous);
      const c = await session(srv.port);
      const { raw, data } = await dataConnection(c, `STOR vanish-${how}/target.bin`);
      await send(data, 2 * 1024 * 1024);
      // Mid-upload for sure: the server has written part of it to its temporary file.
      await until(async () => (await tempSize(dir)) >= 1024 * 1024, 'the temporary file to grow past 1 MiB');

      const controlRaw = (c.socket as tls.TLSSocket & { _parent?: net.Socket })._parent ?? c.socket;
      if (how === 'fin') {
        raw.destroy();
        controlRaw.destroy();
      } else {
        raw.resetAndDestroy();
        controlRaw.resetAndDestroy();
      }
      await until(() => srv.server.sessionCount === 0, 'the server to end the session');

      expect(sha256(await readFile(target))).toBe(sha256(previous));
      // The handler removes its temporary file before the transfer ends; give it a moment beyond the close.
      await until(async () => (await tempFiles(dir)).length === 0, 'the temporary file to be removed', 5000).catch(() => undefined);
      expect(await readdir(dir)).toEqual(['target.bin']);
    });
  }
});

/**
 * RETR of a 32 MiB file read slowly: 1 MiB, then a pause in which `meddle` changes the file (the server is
 * blocked on backpressure then, with most of the file not read yet), then the rest. Never hangs: a
 * transfer still running after 20 s fails the test.
 */
async function downloadWhile(name: string, meddle: (file: string) => Promise<void>): Promise<{ bytes: Buffer; final: FtpReply; original: Buffer }> {
  const file = path.join(srv.root, name);
  const original = randomBytes(32 * 1024 * 1024);
  await writeFile(file, original);
  const c = await session(srv.port);
  const { data } = await dataConnection(c, `RETR ${name}`);
  const chunks: Buffer[] = [];
  let received = 0;
  let paused = false;
  const gotFirstMiB = new Promise<void>((resolve) => {
    data.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received >= 1024 * 1024 && !paused) {
        paused = true;
        data.pause();
        resolve();
      }
    });
  });
  const ended = new Promise<void>((resolve) => data.once('close', () => resolve()));
  await within(10_000, 'the first MiB', gotFirstMiB);
  // Let the server fill the socket buffers and block.
  await sleep(200);
  await meddle(file);
  data.resume();
  await within(20_000, 'the download', ended);
  const final = await within(20_000, 'the final reply', c.read(20_000));
  // The session goes on.
  expect((await c.send('NOOP')).code).toBe(200);
  c.close();
  return { bytes: Buffer.concat(chunks), final, original };
}

describe('a file changing under a download', () => {
  it('deleted mid-transfer: the download completes (with the content it had) or ends with 426/451, never hangs', async () => {
    const { bytes, final, original } = await downloadWhile('deleted.bin', (file) => unlink(file));
    expect([226, 426, 451], final.text).toContain(final.code);
    // On POSIX the open file lives on until closed: what was sent is a prefix of the old content, and all of it on 226.
    expect(bytes.equals(original.subarray(0, bytes.length))).toBe(true);
    if (final.code === 226) expect(sha256(bytes)).toBe(sha256(original));
  });

  it('truncated mid-transfer: the download completes (with a prefix of the old content) or ends with 426/451, never hangs', async () => {
    const truncatedTo = 4 * 1024 * 1024;
    const { bytes, final, original } = await downloadWhile('truncated.bin', (file) => truncate(file, truncatedTo));
    expect([226, 426, 451], final.text).toContain(final.code);
    // Never bytes that were not in the file (zeros past the new end, or garbage): always a prefix of the old content.
    expect(bytes.length).toBeLessThanOrEqual(original.length);
    expect(bytes.equals(original.subarray(0, bytes.length))).toBe(true);
    // A 226 means everything the file still holds was sent (the server may have read further before the truncation).
    if (final.code === 226) expect(bytes.length).toBeGreaterThanOrEqual(truncatedTo);
  });
});

describe('temporary upload files', () => {
  it('are invisible in LIST, NLST, MLSD and STAT while an upload is running, and gone after it', async () => {
    const dir = path.join(srv.root, 'visible');
    await mkdir(dir);
    await writeFile(path.join(dir, 'old.txt'), 'old');
    const uploader = await session(srv.port);
    const { data } = await dataConnection(uploader, 'STOR visible/new.bin');
    const content = randomBytes(512 * 1024);
    await new Promise<void>((resolve) => data.write(content, () => resolve()));
    // The server writes in buffers (the first of 64 KiB): part of the upload is on disk, the rest still coming.
    await until(async () => (await tempSize(dir)) >= 64 * 1024, 'the temporary file');
    expect(await readdir(dir)).toEqual(expect.arrayContaining([expect.stringMatching(TEMP_NAME), 'old.txt']));

    const viewer = await session(srv.port);
    for (const cwd of ['/visible', '/']) {
      expect((await viewer.send(`CWD ${cwd}`)).code).toBe(250);
      const target = cwd === '/' ? 'visible' : '.';
      for (const command of [`LIST ${target}`, `LIST -la ${target}`, `NLST ${target}`, `MLSD ${target}`]) {
        const { text, final } = await listing(viewer, command);
        expect(final.code, command).toBe(226);
        expect(text, command).toContain('old.txt');
        expect(text, command).not.toMatch(/ftps-upload/);
      }
      const statReply = await viewer.send(`STAT ${target}`);
      expect(statReply.code).toBe(213);
      expect(statReply.text).toContain('old.txt');
      expect(statReply.text).not.toMatch(/ftps-upload/);
    }

    // The upload then finishes normally: the file appears, the temporary file is gone.
    await new Promise<void>((resolve) => data.end(resolve));
    expect((await uploader.read(10_000)).code).toBe(226);
    expect(sha256(await readFile(path.join(dir, 'new.bin')))).toBe(sha256(content));
    expect((await readdir(dir)).sort()).toEqual(['new.bin', 'old.txt']);
    const { text } = await listing(viewer, 'NLST visible');
    expect(text.split('\r\n').filter(Boolean).sort()).toEqual(['new.bin', 'old.txt']);
  });
});

describe('QUIT during a transfer', () => {
  // RFC 959 (QUIT): with a transfer in progress the server sends the transfer's result, then 221, then closes.
  it('QUIT queued behind a download, then ABOR: 426, 226 and 221 Goodbye, then the close (10 times)', async () => {
    const big = path.join(srv.root, 'quit-during.bin');
    await writeFile(big, '');
    await truncate(big, 64 * 1024 * 1024);
    for (let i = 0; i < 10; i++) {
      const c = await session(srv.port);
      const { data } = await dataConnection(c, 'RETR quit-during.bin');
      const gotSome = new Promise<void>((resolve) => data.once('data', () => resolve()));
      await gotSome;
      // The server is now blocked on a client that does not read: the transfer runs until ABOR.
      data.pause();
      c.writeRaw('QUIT\r\nABOR\r\n');
      const codes = await codesUntilClosed(c);
      data.destroy();
      expect(codes, `round ${i}`).toEqual([426, 226, 221, 'closed']);
    }
    await rm(big);
  });
});

describe('server shutdown while a transfer runs', () => {
  /** A server of the test's own with a 4 MiB file, for `use` to stop while a transfer runs. */
  const withBigFile = (use: (own: RunningServer) => Promise<void>) =>
    withServer({ LOG_LEVEL: 'info' }, async (own) => {
      await writeFile(path.join(own.root, 'big.bin'), randomBytes(4 * 1024 * 1024));
      await use(own);
    });

  it('basic-ftp writing a download to a slow disk: the download succeeds, the 421 comes after it', async () => {
    await withBigFile(async (own) => {
      const client = await ftpsLogin(own.port, TEST_USER, TEST_PASSWORD);
      try {
        let stopping: Promise<void> | undefined;
        let received = 0;
        const slowDisk = new Writable({
          highWaterMark: 64 * 1024,
          write(chunk: Buffer, _enc, done) {
            // Shutdown begins while the transfer runs; the last write takes the disk half a second.
            if (received === 0) stopping = own.server.stop(10_000);
            received += chunk.length;
            done();
          },
          final(done) {
            setTimeout(done, 500);
          },
        });
        expect((await client.downloadTo(slowDisk, 'big.bin')).code).toBe(226);
        expect(received).toBe(4 * 1024 * 1024);
        await within(10_000, 'shutdown', stopping!);
      } finally {
        client.close();
      }
    });
  });

  /**
   * A raw session's download during which the server begins to stop (with `graceMs`), read to its 226. Returns
   * the session, to act after its transfer, and the shutdown.
   */
  async function downloadWhileStopping(own: RunningServer, graceMs: number): Promise<{ c: RawFtpClient; stopping: Promise<void> }> {
    const c = await session(own.port);
    const { data } = await dataConnection(c, 'RETR big.bin');
    const stopping = own.server.stop(graceMs);
    await new Promise<void>((resolve) => data.on('data', () => undefined).once('close', () => resolve()));
    expect((await c.read()).code).toBe(226);
    return { c, stopping };
  }

  it('after its transfer a client is answered 221 to QUIT, 421 to any other command (no new transfer starts)', async () => {
    for (const next of ['QUIT', 'RETR big.bin'] as const) {
      await withBigFile(async (own) => {
        const { c, stopping } = await downloadWhileStopping(own, 10_000);
        await sleep(200);
        expect((await c.send(next)).code, next).toBe(next === 'QUIT' ? 221 : 421);
        await within(5_000, 'shutdown', stopping);
      });
    }
  });

  it('a client pipelining 1,000 commands behind its transfer, never reading: none runs, one 421, closed; the shutdown ends', async () => {
    await withBigFile(async (own) => {
      const c = await session(own.port);
      const { data } = await dataConnection(c, 'RETR big.bin');
      // Queued behind the transfer (reading pauses at 32): each would delete the file or open a new data channel.
      c.writeRaw('DELE big.bin\r\nEPSV\r\nRETR big.bin\r\n'.repeat(333) + 'NOOP\r\n');
      const stopping = own.server.stop(30_000);
      await new Promise<void>((resolve) => data.on('data', () => undefined).once('close', () => resolve()));
      await within(5_000, 'shutdown', stopping);
      const codes = await codesUntilClosed(c);
      expect(codes).toEqual([226, 421, 'closed']);
      expect((await stat(path.join(own.root, 'big.bin'))).size).toBe(4 * 1024 * 1024);
    });
  });

  it('a client silent after its transfer hears 421 within seconds, long before the grace period ends', async () => {
    await withBigFile(async (own) => {
      const { c, stopping } = await downloadWhileStopping(own, 30_000);
      expect(await c.read(10_000)).toMatchObject({ code: 421, text: expect.stringContaining('shutting down') });
      await within(5_000, 'shutdown', stopping);
    });
  });
});

describe('file descriptors', () => {
  it('return to the baseline after 50 sessions with transfers, aborts and vanishing clients', async () => {
    const dir = path.join(srv.root, 'fds');
    await mkdir(dir);
    const big = path.join(dir, 'big.bin');
    await writeFile(big, randomBytes(16 * 1024 * 1024));
    const kinds = [
      // An honest client: upload, list, download, compare, QUIT.
      async (i: number) => {
        const client = await ftpsLogin(srv.port, TEST_USER, TEST_PASSWORD);
        try {
          const content = randomBytes(64 * 1024 + i);
          await client.uploadFrom(Readable.from([content]), `fds/honest-${i}.bin`);
          expect((await client.list('fds')).some((f) => f.name === `honest-${i}.bin`)).toBe(true);
          const chunks: Buffer[] = [];
          await client.downloadTo(
            new Writable({
              write(chunk: Buffer, _enc, done) {
                chunks.push(chunk);
                done();
              },
            }),
            `fds/honest-${i}.bin`,
          );
          expect(sha256(Buffer.concat(chunks))).toBe(sha256(content));
        } finally {
          client.close();
        }
      },
      // ABOR of a download the client stops reading: 426 then 226.
      async () => {
        const c = await session(srv.port);
        const { data } = await dataConnection(c, 'RETR fds/big.bin');
        const gotSome = new Promise<void>((resolve) => data.once('data', () => resolve()));
        await gotSome;
        data.pause();
        const codes = [(await c.send('ABOR')).code, (await c.read()).code];
        expect(codes).toEqual([426, 226]);
        data.destroy();
        expect((await c.send('QUIT')).code).toBe(221);
      },
      // ABOR of an upload.
      async (i: number) => {
        const c = await session(srv.port);
        const { data } = await dataConnection(c, `STOR fds/aborted-${i}.bin`);
        await send(data, 256 * 1024);
        const codes = [(await c.send('ABOR')).code, (await c.read()).code];
        expect(codes).toEqual([426, 226]);
        data.destroy();
        c.close();
      },
      // EPSV and never connect, then vanish.
      async () => {
        const c = await session(srv.port);
        expect((await c.send('EPSV')).code).toBe(229);
        c.close();
      },
      // Vanish mid-download.
      async () => {
        const c = await session(srv.port);
        const { raw, data } = await dataConnection(c, 'RETR fds/big.bin');
        const gotSome = new Promise<void>((resolve) => data.once('data', () => resolve()));
        await gotSome;
        raw.destroy();
        c.close();
      },
      // Vanish mid-upload.
      async (i: number) => {
        const c = await session(srv.port);
        const { raw, data } = await dataConnection(c, `STOR fds/vanished-${i}.bin`);
        await send(data, 256 * 1024);
        raw.resetAndDestroy();
        c.close();
      },
    ];

    // Sessions of the tests before end first: the count below must be of this test's sessions only.
    for (const c of clients.splice(0)) c.close();
    await until(() => srv.server.sessionCount === 0, 'earlier sessions to end');
    // Warm-up: one session of each kind, so that whatever is opened once and kept (none is expected) is in the baseline.
    for (const [k, kind] of kinds.entries()) await kind(1000 + k);
    await until(() => srv.server.sessionCount === 0, 'warm-up sessions to end');
    await sleep(200);
    const before = openFds();

    // 50 sessions, 10 at a time, every kind; the peak shows that the count does see the sessions' descriptors.
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, openFds())), 5);
    try {
      for (let batch = 0; batch < 5; batch++) {
        await Promise.all(Array.from({ length: 10 }, (_, j) => kinds[(batch * 10 + j) % kinds.length]!(batch * 10 + j)));
      }
    } finally {
      clearInterval(sampler);
    }
    for (const c of clients.splice(0)) c.close();
    await until(() => srv.server.sessionCount === 0 && srv.server.stats.passivePortsInUse === 0, 'every session and passive port to be released');
    await until(async () => (await tempFiles(dir)).length === 0, 'temporary files to be removed');
    // Closed sockets release their descriptors on the next turns of the event loop.
    await until(() => openFds() <= before, 'descriptors to return to the baseline', 5000).catch(() => undefined);
    const after = openFds();
    console.log(`file descriptors of the test process: baseline ${before}, peak ${peak} during 50 sessions, ${after} after`);
    expect(peak).toBeGreaterThan(before + 20);
    // Exactly equal: nothing else in this test process opens descriptors meanwhile, and each of the 50 sessions
    // used 3–4 of them (control, data, passive listener, file); one leaked per session would show as ≥ 50.
    expect(after, `descriptors before ${before}, after ${after}`).toBeLessThanOrEqual(before);
    expect((await readdir(dir)).filter((n) => n.startsWith('vanished-') || n.startsWith('aborted-'))).toEqual([]);
    await rm(dir, { recursive: true });
  }, 120_000);
});
