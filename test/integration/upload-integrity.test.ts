/*
 * A 226 is a promise that the whole file is stored. A protected upload completes only when the client ended its
 * TLS stream with close_notify (TLS_STRICT_EOF): a bare TCP FIN or a reset gets 426 and the previous content
 * stays, in every TLS mode; REST beyond the end, uploads beyond MAX_UPLOAD_BYTES and ALLO get honest answers;
 * and a 226 survives the server being killed the moment after it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { afterThisTest } from '../support/fixtures.js';
import { loggedIn, RawFtpClient, secureClient } from '../support/raw-client.js';
import { TEST_PASSWORD, TEST_USER, withServer, type RunningServer } from '../support/server.js';
import { STORAGE_BACKENDS } from '../support/user-tree.js';
import { startServerProcess } from '../support/server-process.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
type Ending = 'close_notify' | 'fin' | 'reset';
type Mode = 'explicit' | 'implicit' | 'data-implicit';

const MODES: ReadonlyArray<{ mode: Mode; env: Record<string, string> }> = [
  { mode: 'explicit', env: {} },
  { mode: 'implicit', env: { FTPS_IMPLICIT_SSL: 'true' } },
  { mode: 'data-implicit', env: { DATA_IMPLICIT_SSL: 'true' } },
];

/** A session as the mode's clients set it up: PROT P, or (DATA_IMPLICIT_SSL) none. */
async function session(srv: RunningServer, mode: Mode, maxVersion?: tls.SecureVersion): Promise<RawFtpClient> {
  const c = await RawFtpClient.connect(srv.port, { implicitTls: mode === 'implicit' });
  afterThisTest(() => c.close());
  expect((await c.read()).code).toBe(220);
  if (mode !== 'implicit') expect((await c.upgrade(maxVersion ? { maxVersion } : {})).code).toBe(234);
  expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
  if (mode !== 'data-implicit') {
    expect((await c.send('PBSZ 0')).code).toBe(200);
    expect((await c.send('PROT P')).code).toBe(200);
  }
  return c;
}

/**
 * `command` on a protected passive data connection of our own TCP socket: `content` goes out over TLS, then the
 * connection ends as `ending` says — close_notify, or under the TLS layer a bare FIN or a reset. The final reply.
 */
async function upload(c: RawFtpClient, command: string, content: Buffer, ending: Ending, maxVersion?: tls.SecureVersion): Promise<number> {
  const epsv = await c.send('EPSV');
  const port = Number(/\|\|\|(\d+)\|/.exec(epsv.text)?.[1]);
  const raw = net.connect({ port, host: '127.0.0.1' });
  raw.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
  // Command first, as curl and ftplib do; the handshake-first order is in the DartFTP-style tests.
  const opening = await c.send(command);
  if (opening.code !== 150) {
    raw.destroy();
    return opening.code;
  }
  const data = tls.connect({ socket: raw, host: '127.0.0.1', session: c.tlsSession, rejectUnauthorized: false, ...(maxVersion && { maxVersion }) });
  data.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => data.once('secureConnect', resolve).once('error', reject));
  await new Promise<void>((resolve, reject) => data.write(content, (err) => (err ? reject(err) : resolve())));
  if (ending === 'close_notify') data.end();
  else if (ending === 'fin') raw.end();
  else raw.resetAndDestroy();
  const final = await c.read(15_000);
  data.destroy();
  return final.code;
}

async function withFile(srv: RunningServer, name: string, content: Buffer): Promise<string> {
  const file = path.join(srv.root, name);
  await writeFile(file, content);
  return file;
}

const noTempFiles = async (srv: RunningServer) => (await readdir(srv.root)).filter((n) => n.startsWith('.ftps-upload-'));

/** Every TLS mode on the local disk; on S3 (where a cut upload must also leave no multipart upload behind) explicit. */
const STRICT_EOF_CASES = [
  ...MODES.map((m) => ({ ...m, backend: 'local' as const, skip: false })),
  { ...MODES[0]!, backend: 's3' as const, skip: STORAGE_BACKENDS.find((b) => b.backend === 's3')!.skip },
];

describe.each(STRICT_EOF_CASES)('strict end of upload ($mode, $backend storage)', ({ mode, env, backend, skip }) => {
  // The first S3 server of a run may wait for the RGW image to build.
  const timeout = backend === 's3' ? 600_000 : undefined;

  it.skipIf(skip).each<Ending>(['fin', 'reset'])(
    'an upload ended by %s without close_notify gets 426 and the old content stays',
    async (ending) => {
      await withServer(
        env,
        async (srv) => {
          const previous = randomBytes(100_000);
          await srv.tree.put('target.bin', previous);
          const c = await session(srv, mode);
          // More than a part (S3_PART_SIZE=5 MiB in the tests): on S3 a multipart upload is under way when it is cut.
          expect(await upload(c, 'STOR target.bin', randomBytes(6 * 1024 * 1024), ending)).toBe(426);
          expect(sha256(await srv.tree.read('target.bin'))).toBe(sha256(previous));
          expect(await srv.tree.leftovers()).toEqual([]);
          expect((await c.send('NOOP')).code).toBe(200);
          expect(srv.logs).toContainEqual(expect.objectContaining({ msg: 'transfer', direction: 'upload', result: 'failed' }));
        },
        { backend },
      );
    },
    timeout,
  );

  it.skipIf(skip)(
    'an upload ended with close_notify gets 226 and the whole file',
    async () => {
      await withServer(
        env,
        async (srv) => {
          await srv.tree.put('target.bin', randomBytes(100));
          const c = await session(srv, mode);
          const content = randomBytes(3 * 1024 * 1024 + 7);
          expect(await upload(c, 'STOR target.bin', content, 'close_notify')).toBe(226);
          expect(sha256(await srv.tree.read('target.bin'))).toBe(sha256(content));
          // APPE and a resumed STOR are held to the same rule.
          expect(await upload(c, 'APPE target.bin', Buffer.from('tail'), 'fin')).toBe(426);
          // On disk an append writes in place (what arrived may stay); on S3 the object changes only on commit.
          if (backend === 's3') expect(sha256(await srv.tree.read('target.bin'))).toBe(sha256(content));
          expect(await upload(c, 'APPE target.bin', Buffer.from('tail'), 'close_notify')).toBe(226);
          expect((await srv.tree.read('target.bin')).subarray(-4).toString()).toBe('tail');
        },
        { backend },
      );
    },
    timeout,
  );
});

describe('strict end of upload, more ways in', () => {
  it('holds over TLS 1.2 as over TLS 1.3', async () => {
    await withServer({}, async (srv) => {
      const previous = randomBytes(1000);
      const file = await withFile(srv, 'twelve.bin', previous);
      const c = await session(srv, 'explicit', 'TLSv1.2');
      expect(await upload(c, 'STOR twelve.bin', randomBytes(500_000), 'fin', 'TLSv1.2')).toBe(426);
      expect(sha256(await readFile(file))).toBe(sha256(previous));
      expect(await upload(c, 'STOR twelve.bin', Buffer.from('whole'), 'close_notify', 'TLSv1.2')).toBe(226);
      expect((await readFile(file)).toString()).toBe('whole');
    });
  });

  it('holds for active-mode (PORT) uploads, where the server connects', async () => {
    await withServer({}, async (srv) => {
      const previous = randomBytes(1000);
      const file = await withFile(srv, 'active.bin', previous);
      const c = await loggedIn(srv.port);
      afterThisTest(() => c.close());
      for (const ending of ['fin', 'close_notify'] as const) {
        const listener = net.createServer();
        await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
        const { port } = listener.address() as net.AddressInfo;
        const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
        expect((await c.send(`PORT 127,0,0,1,${port >> 8},${port & 0xff}`)).code).toBe(200);
        expect((await c.send('STOR active.bin')).code).toBe(150);
        const raw = await accepted;
        raw.on('error', () => undefined);
        // The server is the TLS server on active connections too.
        const data = tls.connect({ socket: raw, host: '127.0.0.1', session: c.tlsSession, rejectUnauthorized: false });
        data.on('error', () => undefined);
        await new Promise<void>((resolve) => data.once('secureConnect', resolve));
        await new Promise<void>((resolve) => data.write(Buffer.from(`by ${ending}`), () => resolve()));
        if (ending === 'close_notify') data.end();
        else raw.end();
        expect((await c.read(15_000)).code).toBe(ending === 'fin' ? 426 : 226);
        listener.close();
        data.destroy();
      }
      expect((await readFile(file)).toString()).toBe('by close_notify');
    });
  });

  it('can be turned off (TLS_STRICT_EOF=false): a bare FIN then completes the upload', async () => {
    await withServer({ TLS_STRICT_EOF: 'false' }, async (srv) => {
      const file = await withFile(srv, 'lax.bin', Buffer.from('old'));
      const c = await session(srv, 'explicit');
      expect(await upload(c, 'STOR lax.bin', Buffer.from('cut short'), 'fin')).toBe(226);
      expect((await readFile(file)).toString()).toBe('cut short');
    });
  });
});

describe('clients that complete the data TLS handshake before sending STOR', () => {
  /** Like upload(), but the handshake completes first (DartFTP style; curl 7.88 waits for it ~0.2 s). */
  async function handshakeFirstUpload(c: RawFtpClient, command: string, content: Buffer, ending: Ending): Promise<number> {
    const epsv = await c.send('EPSV');
    const port = Number(/\|\|\|(\d+)\|/.exec(epsv.text)?.[1]);
    const raw = net.connect({ port, host: '127.0.0.1' });
    raw.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
    const data = tls.connect({ socket: raw, host: '127.0.0.1', session: c.tlsSession, rejectUnauthorized: false });
    data.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => data.once('secureConnect', resolve).once('error', reject));
    expect((await c.send(command)).code).toBe(150);
    await new Promise<void>((resolve) => data.write(content, () => resolve()));
    if (ending === 'close_notify') data.end();
    else raw.end();
    const final = await c.read(15_000);
    data.destroy();
    return final.code;
  }

  it.each(['data-implicit', 'explicit'] as const)('are served, and held to close_notify (%s)', async (mode) => {
    await withServer(mode === 'data-implicit' ? { DATA_IMPLICIT_SSL: 'true' } : {}, async (srv) => {
      const file = await withFile(srv, 'first.bin', Buffer.from('old'));
      const c = await session(srv, mode);
      expect(await handshakeFirstUpload(c, 'STOR first.bin', randomBytes(200_000), 'fin')).toBe(426);
      expect((await readFile(file)).toString()).toBe('old');
      expect(await handshakeFirstUpload(c, 'STOR first.bin', Buffer.from('new'), 'close_notify')).toBe(226);
      expect((await readFile(file)).toString()).toBe('new');
    });
  }, 20_000);
});

describe('offsets, limits and ALLO', () => {
  it('refuses REST beyond the end of the file for STOR and APPE (554), the file unchanged', async () => {
    await withServer({}, async (srv) => {
      const file = await withFile(srv, 'ten.txt', Buffer.from('0123456789'));
      const c = await session(srv, 'explicit');
      for (const command of ['STOR ten.txt', 'APPE ten.txt']) {
        expect((await c.send('REST 999999999999999')).code).toBe(350);
        expect(await upload(c, command, Buffer.from('x'), 'close_notify')).toBe(554);
      }
      expect((await readFile(file)).toString()).toBe('0123456789');
      expect((await c.send('REST 4')).code).toBe(350);
      expect(await upload(c, 'STOR ten.txt', Buffer.from('AB'), 'close_notify')).toBe(226);
      expect((await readFile(file)).toString()).toBe('0123AB');
    });
  });

  it('refuses an upload beyond MAX_UPLOAD_BYTES with 552, counting what the file keeps', async () => {
    await withServer({ MAX_UPLOAD_BYTES: '1000' }, async (srv) => {
      const file = await withFile(srv, 'capped.bin', Buffer.alloc(600, 'o'));
      const c = await session(srv, 'explicit');
      expect(await upload(c, 'STOR capped.bin', randomBytes(1001), 'close_notify')).toBe(552);
      expect((await readFile(file)).toString()).toBe('o'.repeat(600));
      expect(await upload(c, 'STOR capped.bin', Buffer.alloc(1000, 'n'), 'close_notify')).toBe(226);
      expect(await upload(c, 'APPE capped.bin', Buffer.from('x'), 'close_notify')).toBe(552);
      expect((await c.send('ALLO 1001')).code).toBe(552);
      expect((await c.send('ALLO 1000')).code).toBe(200);
      expect(await noTempFiles(srv)).toEqual([]);
    });
  });

  it('answers ALLO from the free space it can see', async () => {
    await withServer({}, async (srv) => {
      const c = await loggedIn(srv.port);
      afterThisTest(() => c.close());
      expect((await c.send('ALLO 1024')).code).toBe(200);
      expect((await c.send('ALLO 1024 R 512')).code).toBe(200);
      expect((await c.send('ALLO 999999999999999999')).code).toBe(452);
      expect((await c.send('ALLO lots')).code).toBe(501);
    });
  });

  it('a read-only user gets 550 for ALLO', async () => {
    await withServer({ FTP_ANONYMOUS: 'true' }, async (srv) => {
      const c = await secureClient(srv.port);
      afterThisTest(() => c.close());
      expect((await c.login('anonymous', 'x')).code).toBe(230);
      expect((await c.send('ALLO 10')).code).toBe(550);
    });
  });
});

describe('a crash right after 226', () => {
  it('never leaves a partial file under the final name (kill -9 at 226 and at random points mid-upload)', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'ftps-crash-'));
    afterThisTest(() => rm(root, { recursive: true, force: true }));
    const file = path.join(root, 'target.bin');
    let previous = randomBytes(64 * 1024);
    await writeFile(file, previous);
    for (let round = 0; round < 8; round++) {
      const srv = await startServerProcess({ FTP_ROOT: root, LOG_LEVEL: 'warn' });
      const content = randomBytes(4 * 1024 * 1024);
      // Even rounds die the moment 226 arrives; odd ones at a random point of the upload.
      const killAtMs = round % 2 === 1 ? 5 + Math.floor(Math.random() * 40) : undefined;
      const c = await secureClient(srv.port);
      expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
      expect((await c.send('PBSZ 0')).code).toBe(200);
      expect((await c.send('PROT P')).code).toBe(200);
      const killer = killAtMs === undefined ? undefined : setTimeout(() => srv.child.kill('SIGKILL'), killAtMs);
      const code = await upload(c, 'STOR target.bin', content, 'close_notify').catch(() => 0);
      if (code === 226) srv.child.kill('SIGKILL');
      clearTimeout(killer);
      await new Promise((resolve) => (srv.child.exitCode === null && srv.child.signalCode === null ? srv.child.once('exit', resolve) : resolve(undefined)));
      c.close();
      await srv.stop();
      const now = sha256(await readFile(file));
      if (code === 226) expect(now).toBe(sha256(content));
      else expect([sha256(previous), sha256(content)]).toContain(now);
      if (now === sha256(content)) previous = content;
    }
  }, 120_000);
});
