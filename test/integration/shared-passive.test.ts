/*
 * PASV_PORT_SHARING with ONE passive port for every session: real clients, many sessions from one address at
 * once (the NAT case), a same-address thief holding its own session's ticket, clients exempt from resumption,
 * and the advertised port mapping (PASV_ADVERTISED_MIN_PORT).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import net from 'node:net';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DartStyleClient } from '../support/dart-style-client.js';
import { ftpsLogin } from '../support/ftps-client.js';
import { tempDir } from '../support/fixtures.js';
import { connectData, RawFtpClient } from '../support/raw-client.js';
import { startServer, TEST_PASSWORD, TEST_USER, type RunningServer } from '../support/server.js';

const execFileAsync = promisify(execFile);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const LOGIN = ['--user', `${TEST_USER}:${TEST_PASSWORD}`];

let srv: RunningServer;
let sharedPort: number;

beforeAll(async () => {
  // 60 sessions from one address at once: above the default per-address connection limit.
  srv = await startServer({ PASV_PORT_SHARING: 'true', TLS_SESSION_REUSE_EXEMPT_CIDRS: '127.0.0.9', MAX_CONNECTIONS_PER_IP: '100' }, { pasvPorts: 1 });
  sharedPort = srv.config.data.pasvMinPort;
});
afterAll(() => srv.stop());

const refusals = (reason: string) => srv.logs.filter((l) => l.msg === 'shared passive port: data connection refused' && l.reason === reason);

/** A control connection over TLS, logged in, with PROT P. */
async function protectedSession(port: number): Promise<RawFtpClient> {
  const control = await RawFtpClient.connect(port);
  await control.read();
  await control.upgrade();
  expect((await control.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
  await control.send('PBSZ 0');
  await control.send('PROT P');
  return control;
}

/**
 * RETR `name` with `raw` (a TCP connection to the shared port, a new one by default) as its data connection, TLS
 * resuming `control`'s session: expects 150 and 226, resolves with the bytes received.
 */
async function retrieve(control: RawFtpClient, name: string, raw?: net.Socket): Promise<Buffer> {
  const opening = control.send(`RETR ${name}`);
  const socket = raw ?? (await connectData(sharedPort, { tls: false }));
  // The control connection's (absent) SNI: OpenSSL offers a TLS 1.3 session only under the name it came from.
  const data = tls.connect({ socket, host: '127.0.0.1', session: control.tlsSession, rejectUnauthorized: false });
  const received: Buffer[] = [];
  data.on('data', (c: Buffer) => received.push(c));
  const ended = new Promise((resolve) => data.once('close', resolve));
  expect((await opening).code).toBe(150);
  expect((await control.read()).code).toBe(226);
  await ended;
  return Buffer.concat(received);
}

describe('one shared passive port', () => {
  it('serves curl over TLS 1.3 (tickets) and TLS 1.2 (session IDs), uploads and downloads', async () => {
    const work = await tempDir();
    for (const tlsArgs of [[], ['--tls-max', '1.2']]) {
      const content = randomBytes(200_000);
      const name = `curl-${tlsArgs.length}.bin`;
      await writeFile(path.join(work, name), content);
      const base = ['--silent', '--show-error', '--ssl-reqd', '--insecure', ...LOGIN, ...tlsArgs];
      await execFileAsync('curl', [...base, '-T', path.join(work, name), `ftp://127.0.0.1:${srv.port}/${name}`]);
      const { stdout } = await execFileAsync('curl', [...base, `ftp://127.0.0.1:${srv.port}/${name}`], { encoding: 'buffer', maxBuffer: 1 << 24 });
      expect(sha256(stdout)).toBe(sha256(content));
    }
    expect(srv.logs.filter((l) => l.msg === 'transfer' && l.result !== 'ok')).toEqual([]);
  });

  it('serves wget (explicit FTPS on a port other than 990; downloads only)', async () => {
    const content = randomBytes(70_000);
    await writeFile(path.join(srv.root, 'wget.bin'), content);
    const out = path.join(await tempDir(), 'wget.bin');
    const url = `ftps://${TEST_USER}:${encodeURIComponent(TEST_PASSWORD)}@127.0.0.1:${srv.port}/wget.bin`;
    await execFileAsync('wget', ['--quiet', '--no-check-certificate', '-O', out, url], { timeout: 20_000 });
    expect(sha256(await readFile(out))).toBe(sha256(content));
  });
  it('serves lftp, which resumes the control session on its data connections', async () => {
    await writeFile(path.join(srv.root, 'lftp.txt'), 'via lftp');
    const script = `set ftp:ssl-force true; set ssl:verify-certificate no; set ftp:passive-mode true; cat lftp.txt; bye`;
    const { stdout } = await execFileAsync('lftp', ['-u', `${TEST_USER},${TEST_PASSWORD}`, '-p', String(srv.port), '-e', script, '127.0.0.1'], {
      timeout: 20_000,
    });
    expect(stdout).toBe('via lftp');
  });

  it('routes 30 concurrent sessions from one address through the one port by their TLS sessions, none crossed', async () => {
    const files = Array.from({ length: 30 }, (_, i) => ({ name: `nat-${i}.bin`, content: randomBytes(20_000 + i * 1_000) }));
    await Promise.all(
      files.map(async ({ name, content }) => {
        const client = await ftpsLogin(srv.port, TEST_USER, TEST_PASSWORD);
        try {
          await client.uploadFrom(Readable.from([content]), name);
          const chunks: Buffer[] = [];
          await client.downloadTo(new Writable({ write: (c: Buffer, _e, done) => done(void chunks.push(c)) }), name);
          expect(sha256(Buffer.concat(chunks))).toBe(sha256(content));
        } finally {
          client.close();
        }
      }),
    );
    for (const { name, content } of files) expect(sha256(await readFile(path.join(srv.root, name)))).toBe(sha256(content));
  });

  it('40 sessions of one address whose data connections all wait before their ClientHello are all served', async () => {
    // More than the 32 silent connections one address may hold beyond its waiting sessions: each of these has one.
    const sessions = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const name = `early-${i}.bin`;
        const content = randomBytes(10_000 + i);
        await writeFile(path.join(srv.root, name), content);
        const control = await protectedSession(srv.port);
        await control.send('EPSV');
        return { control, name, content, raw: await connectData(sharedPort, { tls: false }) };
      }),
    );
    try {
      await Promise.all(
        sessions.map(async ({ control, name, content, raw }) => expect(sha256(await retrieve(control, name, raw))).toBe(sha256(content))),
      );
    } finally {
      for (const { control } of sessions) control.close();
    }
  });

  it("a same-address thief presenting its own session's ticket gets nothing; the victim's transfer succeeds", async () => {
    const secret = randomBytes(50_000);
    await writeFile(path.join(srv.root, 'payroll.bin'), secret);
    const [victim, thief] = await Promise.all([protectedSession(srv.port), protectedSession(srv.port)]);
    try {
      const epsv = await victim.send('EPSV');
      expect(Number(/\|\|\|(\d+)\|/.exec(epsv.text)?.[1])).toBe(sharedPort);
      const before = refusals('not_waiting').length;
      // The thief resumes its own session on the victim's advertised port, before the victim connects.
      const stolen = await connectData(sharedPort, { tls: false });
      // The control connections' (absent) SNI, as in retrieve().
      const stolenTls = tls.connect({ socket: stolen, host: '127.0.0.1', session: thief.tlsSession, rejectUnauthorized: false });
      stolenTls.on('error', () => undefined);
      const stolenBytes: Buffer[] = [];
      stolenTls.on('data', (c: Buffer) => stolenBytes.push(c));
      await expect.poll(() => refusals('not_waiting').length).toBe(before + 1);

      expect(sha256(await retrieve(victim, 'payroll.bin'))).toBe(sha256(secret));
      expect(Buffer.concat(stolenBytes).length).toBe(0);
    } finally {
      victim.close();
      thief.close();
    }
  });

  it('a data connection without a TLS session of any waiting session, from an address nobody waits for, is refused', async () => {
    const before = refusals('no_session').length;
    const stray = tls.connect({ port: sharedPort, host: '127.0.0.1', rejectUnauthorized: false });
    stray.on('error', () => undefined);
    await expect.poll(() => refusals('no_session').length).toBe(before + 1);
    stray.destroy();
  });

  it('silent connections: closed at once from an address nobody waits for, capped (oldest first) on the victim\'s own address', async () => {
    const content = randomBytes(40_000);
    await writeFile(path.join(srv.root, 'wanted.bin'), content);
    const victim = await protectedSession(srv.port);
    const silent: net.Socket[] = [];
    try {
      await victim.send('EPSV');
      const [strangers, capped] = [refusals('no_session').length, refusals('too_many_unrouted').length];
      const open = (localAddress: string) => {
        const socket = net.connect({ port: sharedPort, host: '127.0.0.1', localAddress });
        socket.on('error', () => undefined);
        silent.push(socket);
        return new Promise<void>((resolve) => socket.once('close', () => resolve()));
      };
      const closedStrangers = Array.from({ length: 20 }, () => open('127.0.0.2'));
      await Promise.all(closedStrangers);
      expect(refusals('no_session').length).toBe(strangers + 20);
      for (let i = 0; i < 40; i++) void open('127.0.0.1');
      // The cap: one per waiting session of the address (the victim's) plus 32.
      await expect.poll(() => refusals('too_many_unrouted').length).toBe(capped + 40 - 33);

      expect(sha256(await retrieve(victim, 'wanted.bin'))).toBe(sha256(content));
    } finally {
      for (const socket of silent) socket.destroy();
      victim.close();
    }
  });

  it('stock Python ftplib (never resumes) from an exempt address: routed by its address', async () => {
    const content = randomBytes(30_000);
    await writeFile(path.join(srv.root, 'py.bin'), content);
    // ftplib connects, sends RETR and waits for 150 before its TLS handshake: the reply must come first.
    const program = [
      'import ftplib, hashlib, ssl, sys',
      'ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE',
      "ftp = ftplib.FTP_TLS(context=ctx, timeout=10, source_address=('127.0.0.9', 0))",
      "ftp.connect('127.0.0.1', int(sys.argv[1])); ftp.login(sys.argv[2], sys.argv[3]); ftp.prot_p()",
      'h = hashlib.sha256(); ftp.retrbinary("RETR py.bin", h.update); print(h.hexdigest()); ftp.quit()',
    ].join('\n');
    const { stdout } = await execFileAsync('python3', ['-I', '-c', program, String(srv.port), TEST_USER, TEST_PASSWORD], { timeout: 20_000 });
    expect(stdout.trim()).toBe(sha256(content));
  });
});

describe('one shared passive port, implicit FTPS with DATA_IMPLICIT_SSL (DartFTP style)', () => {
  let implicit: RunningServer;
  beforeAll(async () => {
    implicit = await startServer({ PASV_PORT_SHARING: 'true', FTPS_IMPLICIT_SSL: 'true', DATA_IMPLICIT_SSL: 'true' }, { pasvPorts: 1 });
  });
  afterAll(() => implicit.stop());

  it('serves DartFTP-style clients (TLS first, then the command) from one address at once, each its own file', async () => {
    const files = Array.from({ length: 6 }, (_, i) => ({ name: `dart-${i}.bin`, content: randomBytes(40_000 + i) }));
    await Promise.all(
      files.map(async ({ name, content }) => {
        const client = await DartStyleClient.connect(implicit.port, 'implicit');
        try {
          await client.upload(`STOR ${name}`, content);
          expect(sha256(await client.download(`RETR ${name}`))).toBe(sha256(content));
        } finally {
          client.close();
        }
      }),
    );
  });
});

describe('one shared passive port and rclone', () => {
  it('copies up and back with the documented --ftp-concurrency 1', { timeout: 60_000 }, async () => {
    const work = await tempDir();
    const up = path.join(work, 'up');
    const down = path.join(work, 'down');
    await Promise.all([mkdir(up), mkdir(down)]);
    const files = Array.from({ length: 4 }, (_, i) => ({ name: `r${i}.bin`, content: randomBytes(60_000 + i) }));
    for (const f of files) await writeFile(path.join(up, f.name), f.content);
    const { stdout: pass } = await execFileAsync('rclone', ['obscure', TEST_PASSWORD]);
    const remote = `:ftp,host=127.0.0.1,port=${srv.port},user=${TEST_USER},pass=${pass.trim()},explicit_tls=true,no_check_certificate=true:rclone`;
    const flags = ['--config', path.join(work, 'rclone.conf'), '--ftp-concurrency', '1', '--retries', '1', '--low-level-retries', '1'];
    await writeFile(path.join(work, 'rclone.conf'), '');
    await execFileAsync('rclone', [...flags, 'copy', up, remote], { timeout: 50_000 });
    await execFileAsync('rclone', [...flags, 'copy', remote, down], { timeout: 50_000 });
    for (const f of files) expect(sha256(await readFile(path.join(down, f.name)))).toBe(sha256(f.content));
  });
});

describe('PASV_ADVERTISED_MIN_PORT', () => {
  let mapped: RunningServer;
  beforeAll(async () => {
    mapped = await startServer({ PASV_PORT_SHARING: 'true', PASV_ADVERTISED_MIN_PORT: '31500' }, { pasvPorts: 1 });
  });
  afterAll(() => mapped.stop());

  it('PASV and EPSV advertise the mapped port; the process listens on its own', async () => {
    const c = await RawFtpClient.connect(mapped.port);
    try {
      await c.read();
      await c.upgrade();
      await c.login(TEST_USER, TEST_PASSWORD);
      expect((await c.send('EPSV')).text).toContain('(|||31500|)');
      const pasv = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec((await c.send('PASV')).text)!;
      expect(Number(pasv[5]) * 256 + Number(pasv[6])).toBe(31500);
    } finally {
      c.close();
    }
  });
});
