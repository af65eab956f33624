/*
 * Bounded, seeded fuzzing of the command parser and handlers through a real logged-in TLS session.
 * The oracle: every reply is well-formed on the wire, nothing leaks the real root or a Node error code,
 * the process never throws, no handler fails unexpectedly, and the server keeps serving afterwards.
 */
import net from 'node:net';
import { writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawFtpClient } from '../support/raw-client.js';
import { startServer, TEST_PASSWORD, TEST_USER, type RunningServer } from '../support/server.js';

// Fixed for CI; FUZZ_SEED / FUZZ_RUNS explore further (e.g. FUZZ_SEED=$RANDOM FUZZ_RUNS=5000).
const SEED = Number(process.env.FUZZ_SEED ?? 20261124);
const RUNS = Number(process.env.FUZZ_RUNS ?? 500);
const CRLF = Buffer.from('\r\n');

interface Reply {
  readonly code: number;
  readonly text: string;
}

/**
 * A control connection that checks the wire format itself (the test support client tolerates junk lines):
 * every line ends in CRLF, has no other CR or LF, and every reply starts `ddd ` or `ddd-` with 100 ≤ ddd ≤ 599
 * and, when multi-line, ends with `ddd ` of the same code.
 */
class StrictControl {
  readonly replies: Reply[] = [];
  readonly violations: string[] = [];
  closed = false;
  private buffer = Buffer.alloc(0);
  private multi: { code: number; lines: string[] } | undefined;
  private wake: (() => void) | undefined;
  private readonly onData = (chunk: Buffer) => this.consume(chunk);

  private constructor(public socket: net.Socket) {
    socket.on('data', this.onData);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      this.closed = true;
      if (this.buffer.length > 0) this.violations.push(`unterminated bytes at close: ${clip(this.buffer.toString('latin1'))}`);
      if (this.multi) this.violations.push(`unterminated multi-line ${this.multi.code} reply at close`);
      this.wake?.();
    });
  }

  /** Connects, AUTH TLS, logs in. */
  static async open(port: number): Promise<StrictControl> {
    const raw = net.connect({ port, host: '127.0.0.1' });
    await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
    const control = new StrictControl(raw);
    expect((await control.next()).code).toBe(220);
    expect((await control.command('AUTH TLS')).code).toBe(234);
    raw.off('data', control.onData);
    const secure = tls.connect({ socket: raw, host: '127.0.0.1', rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    control.socket = secure;
    secure.on('data', control.onData);
    secure.on('error', () => undefined);
    expect((await control.command(`USER ${TEST_USER}`)).code).toBe(331);
    expect((await control.command(`PASS ${TEST_PASSWORD}`)).code).toBe(230);
    expect((await control.command('PBSZ 0')).code).toBe(200);
    expect((await control.command('PROT P')).code).toBe(200);
    control.replies.length = 0;
    return control;
  }

  write(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  async command(line: string): Promise<Reply> {
    this.write(`${line}\r\n`);
    return this.next();
  }

  /** The next reply; throws when the connection closes first or after `timeoutMs`. */
  async next(timeoutMs = 5000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (this.closed) throw new Error('connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a reply');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    return this.replies.shift()!;
  }

  close(): void {
    this.socket.destroy();
  }

  private consume(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (let lf = this.buffer.indexOf(0x0a); lf !== -1; lf = this.buffer.indexOf(0x0a)) {
      const raw = this.buffer.subarray(0, lf);
      this.buffer = this.buffer.subarray(lf + 1);
      if (raw[raw.length - 1] !== 0x0d) this.violations.push(`line not ended by CRLF: ${clip(raw.toString('latin1'))}`);
      const line = raw.subarray(0, raw[raw.length - 1] === 0x0d ? -1 : undefined).toString('utf8');
      if (line.includes('\r')) this.violations.push(`bare CR inside a line: ${clip(line)}`);
      this.line(line);
    }
    this.wake?.();
  }

  private line(line: string): void {
    if (this.multi) {
      this.multi.lines.push(line);
      if (line.startsWith(`${this.multi.code} `)) {
        this.replies.push({ code: this.multi.code, text: this.multi.lines.join('\n') });
        this.multi = undefined;
      }
      return;
    }
    const m = /^(\d{3})([ -])/.exec(line);
    const code = Number(m?.[1]);
    if (!m || code < 100 || code > 599) {
      this.violations.push(`malformed reply line: ${clip(line)}`);
      return;
    }
    if (m[2] === '-') this.multi = { code, lines: [line] };
    else this.replies.push({ code, text: line });
  }
}

// --- what a fuzzed command line is made of ---

const KNOWN_VERBS = [
  'USER', 'PASS', 'AUTH', 'PBSZ', 'PROT', 'CCC', 'QUIT', 'NOOP', 'SYST', 'FEAT', 'OPTS', 'HELP', 'HOST', 'TYPE',
  'MODE', 'STRU', 'ALLO', 'PWD', 'XPWD', 'CWD', 'XCWD', 'CDUP', 'XCUP', 'DELE', 'MKD', 'XMKD', 'RMD', 'XRMD', 'RNFR',
  'RNTO', 'SIZE', 'MDTM', 'MFMT', 'MLST', 'PASV', 'EPSV', 'PORT', 'EPRT', 'RETR', 'STOR', 'APPE', 'STOU', 'LIST',
  'NLST', 'MLSD', 'REST', 'ABOR', 'STAT', 'REIN', 'SITE', 'ACCT', 'SMNT',
];

const verb = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(...KNOWN_VERBS) },
  { weight: 2, arbitrary: fc.constantFrom(...KNOWN_VERBS).map((v) => v.toLowerCase()) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 8 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }) },
);

const PATHS = [
  '.', '..', '/', '//', '../../etc/passwd', '/etc/passwd', '../../../../../../tmp', 'dir/../..', 'file.txt', 'dir',
  'dir/inner.txt', 'missing', 'a\0b', '\0', '~', '~root', '*', '-la', '-la dir', ' ', '  file.txt', 'file.txt ',
  'C:\\Windows\\win.ini', '\\\\server\\share', '%2e%2e/%2e%2e', 'dir/', 'link-out', 'link-out/x', 'fifo',
];

const specialBytes = fc
  .array(fc.constantFrom(0x0d, 0x0a, 0x00, 0xff, 0xf4, 0xf2, 0xfb, 0xfe, 0x20, 0x09, 0x41, 0x2e, 0x2f, 0x7c, 0x80, 0xc3), {
    maxLength: 40,
  })
  .map((a) => Buffer.from(a));

const argument: fc.Arbitrary<Buffer | undefined> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: fc.constantFrom(...PATHS).map((p) => Buffer.from(p)) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }).map((s) => Buffer.from(s)) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }).map((s) => Buffer.from(s)) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 60 }).map((a) => Buffer.from(a)) },
  { weight: 2, arbitrary: specialBytes },
  { weight: 1, arbitrary: fc.integer({ min: 4000, max: 9000 }).map((n) => Buffer.alloc(n, 0x61)) },
  { weight: 1, arbitrary: fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map((n) => Buffer.from(String(n))) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom('I', 'A', 'E', 'L', 'S', 'F', 'P', 'C', 'ON', 'OFF', 'ALL', 'UTF8', 'MLST', 'TLS', 'SSL'), fc.string({ maxLength: 10 }))
      .map(([a, b]) => Buffer.from(`${a} ${b}`)),
  },
  {
    weight: 1,
    // Active-mode targets, well-formed or nearly: foreign, privileged, out of range. The server must refuse
    // all but its own client's address before connecting anywhere (only 127.0.0.1 is used for that).
    arbitrary: fc.oneof(
      fc.tuple(fc.constantFrom('127,0,0,1', '10,1,2,3', '127,0,0,2', '0,0,0,0', '255,255,255,255', '1,2,3'), fc.nat(300), fc.nat(300))
        .map(([h, a, b]) => Buffer.from(`${h},${a},${b}`)),
      fc.tuple(fc.constantFrom('|1|127.0.0.1|', '|1|10.1.2.3|', '|2|::1|', '|2|fd00::1|', '|3|x|', '!1!127.0.0.2!', '||||'), fc.nat(70_000))
        .map(([h, p]) => Buffer.from(`${h}${p}|`)),
    ),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.stringMatching(/^\d{0,16}(\.\d{0,4})?$/), fc.constantFrom(...PATHS))
      .map(([t, p]) => Buffer.from(`${t} ${p}`)),
  },
);

const separator = fc.oneof(
  { weight: 12, arbitrary: fc.constant(' ') },
  { weight: 1, arbitrary: fc.constantFrom('  ', '\t', '') },
);

const commandLine: fc.Arbitrary<Buffer> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .tuple(verb, separator, argument)
      .map(([v, sep, arg]) => (arg === undefined ? Buffer.from(v) : Buffer.concat([Buffer.from(`${v}${sep}`), arg]))),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: specialBytes },
);

/** A Node error code or stack frame in a reply would mean an internal error reached the client. */
const INTERNALS = /\bERR_[A-Z_]+\b|\n\s+at |TypeError|RangeError|ReferenceError|undefined|\[object |StorageError|FtpError/;
/** Failure messages show at most 200 characters of a (possibly 9 KB) line or reply. */
const clip = (text: string): string => JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…(${text.length} chars)` : text);

const NODE_ERRNO = /\b(ENOENT|EACCES|EPERM|EISDIR|ENOTDIR|EEXIST|ENOTEMPTY|EINVAL|ELOOP|ENAMETOOLONG|EBADF|EMFILE|EAGAIN|EPIPE|ECONNRESET|EXDEV|EBUSY|ENXIO)\b/;

const SENTINEL_FILE = 'sentinel-9f2c.dat';
/** A distinct MFMT time-val per run: YYYYMMDDHHMMSS, counting seconds from 2001-01-01. */
const formatStamp = (n: number): string =>
  new Date(Date.UTC(2001, 0, 1) + n * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14);

let srv: RunningServer;
const processErrors: unknown[] = [];
const onProcessError = (err: unknown) => processErrors.push(err);

beforeAll(async () => {
  process.on('uncaughtException', onProcessError);
  process.on('unhandledRejection', onProcessError);
  // A short data timeout: a fuzzed EPSV followed by LIST waits for a data connection that never comes.
  srv = await startServer({ DATA_TIMEOUT_SECONDS: '1' });
  await writeFile(path.join(srv.root, 'file.txt'), 'fuzz target\n');
  await writeFile(path.join(srv.root, SENTINEL_FILE), '');
  await mkdir(path.join(srv.root, 'dir'));
  await writeFile(path.join(srv.root, 'dir', 'inner.txt'), 'inner\n');
});

afterAll(async () => {
  process.off('uncaughtException', onProcessError);
  process.off('unhandledRejection', onProcessError);
  await srv.stop();
});

describe('fuzzed command lines on one logged-in TLS session', () => {
  it('always get well-formed replies that leak nothing, and the server keeps serving', async () => {
    let control = await StrictControl.open(srv.port);
    let reconnects = 0;
    let run = 0;
    const codes = new Map<number, number>();

    await fc.assert(
      fc.asyncProperty(commandLine, async (line) => {
        const problems: string[] = [];
        if (control.closed) {
          reconnects++;
          control = await StrictControl.open(srv.port);
        }
        control.write(Buffer.concat([line, CRLF]));
        // ABOR ends any transfer the line started waiting for. MFMT with a time unique to this run marks the
        // end of its replies: its 213 reply echoes the time, so a stray reply from another run cannot match.
        const stamp = formatStamp(run++);
        const sentinel = `213 Modify=${stamp}; ${SENTINEL_FILE}`;
        control.write(`ABOR\r\nMFMT ${stamp} /${SENTINEL_FILE}\r\n`);
        const got: Reply[] = [];
        for (;;) {
          let r: Reply;
          try {
            r = await control.next(5000);
          } catch (err) {
            if (!control.closed) problems.push(`${String(err)} after ${clip(line.toString('latin1'))}`);
            else if (!got.some((g) => g.code === 221 || g.code === 421)) {
              problems.push(`closed without 221/421 after ${clip(line.toString('latin1'))}: ${clip(got.map((g) => g.text).join(' | '))}`);
            }
            break;
          }
          got.push(r);
        codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
          if (r.text === sentinel) break;
        }
        for (const r of got) {
          if (r.text.includes(srv.root)) problems.push(`reply shows the real root: ${clip(r.text)}`);
          if (NODE_ERRNO.test(r.text) || INTERNALS.test(r.text)) problems.push(`reply shows internals: ${clip(r.text)}`);
        }
        problems.push(...control.violations.splice(0));
        if (problems.length > 0) throw new Error(problems.join('\n'));
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    control.close();
    if (process.env.FUZZ_STATS) console.log({ reconnects, codes: Object.fromEntries([...codes].sort((a, b) => a[0] - b[0])) });

    expect(processErrors).toEqual([]);
    // A handler failing in a way the error mapping does not know ends as "451 Local error" plus an error log.
    expect(srv.logs.filter((l) => (l.level as number) >= 50)).toEqual([]);
    // The run did exercise closing paths (QUIT, over-long lines) and reconnected after them.
    expect(reconnects).toBeGreaterThan(0);

    // Afterwards a fresh client logs in and lists.
    const c = await RawFtpClient.connect(srv.port);
    expect((await c.read()).code).toBe(220);
    expect((await c.upgrade()).code).toBe(234);
    expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
    expect((await c.send('PBSZ 0')).code).toBe(200);
    expect((await c.send('PROT P')).code).toBe(200);
    const data = await c.openPassive({ tls: true });
    const listing = new Promise<string>((resolve) => {
      let text = '';
      data.on('data', (chunk: Buffer) => (text += chunk.toString()));
      data.once('close', () => resolve(text));
    });
    expect((await c.send('NLST')).code).toBe(150);
    // The fuzzer may have renamed or deleted file.txt and dir; the sentinel's name it cannot guess.
    expect((await listing).split('\r\n')).toContain(SENTINEL_FILE);
    expect((await c.read()).code).toBe(226);
    c.close();
  });
});

describe('garbage at the listeners', () => {
  /** Sends bytes on a fresh connection, then waits until either side closes or the server answers a trailing QUIT. */
  async function throwAt(port: number, payload: Buffer, o: { implicit?: boolean } = {}): Promise<string> {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('error', () => undefined);
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(payload);
    if (!o.implicit) socket.write('\r\nQUIT\r\n');
    else socket.end();
    await new Promise<void>((resolve) => socket.once('close', resolve));
    return text;
  }

  async function stillServes(port: number, implicitTls = false): Promise<void> {
    const c = await RawFtpClient.connect(port, { implicitTls });
    expect((await c.read()).code).toBe(220);
    if (!implicitTls) expect((await c.upgrade()).code).toBe(234);
    expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
    expect((await c.send('PWD')).code).toBe(257);
    c.close();
  }

  it('random bytes at the plain port: every answer is a well-formed reply, and the server keeps serving', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 3000 }), async (bytes) => {
        const text = await throwAt(srv.port, Buffer.from(bytes));
        // Every line the server sent is a reply line (these replies are all single-line).
        for (const line of text.split('\r\n').slice(0, -1)) expect(line).toMatch(/^[1-5]\d\d /);
        expect(text.endsWith('\r\n')).toBe(true);
        expect(text).toMatch(/^220 /);
      }),
      { seed: SEED, numRuns: 60 },
    );
    await stillServes(srv.port);
    expect(processErrors).toEqual([]);
  });

  it('a TLS ClientHello at the plain (explicit) port: the handshake fails, the server keeps serving', async () => {
    for (let i = 0; i < 5; i++) {
      const hello = tls.connect({ port: srv.port, host: '127.0.0.1', rejectUnauthorized: false });
      const outcome = await new Promise<string>((resolve) => {
        hello.once('secureConnect', () => resolve('handshake completed'));
        hello.once('error', () => resolve('error'));
        hello.once('close', () => resolve('closed'));
      });
      expect(outcome).not.toBe('handshake completed');
      hello.destroy();
    }
    await stillServes(srv.port);
    expect(processErrors).toEqual([]);
  });

  it('plain text and random bytes at an implicit-TLS server: refused, the server keeps serving', async () => {
    const implicit = await startServer({ FTPS_IMPLICIT_SSL: 'true' });
    try {
      for (const payload of ['USER anonymous\r\n', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 'AUTH TLS\r\n']) {
        // Nothing readable comes back: no FTP reply in plain text from an implicit server.
        expect(await throwAt(implicit.port, Buffer.from(payload), { implicit: true })).not.toMatch(/^\d{3}/);
      }
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 2000 }), async (bytes) => {
          expect(await throwAt(implicit.port, Buffer.from(bytes), { implicit: true })).not.toMatch(/^\d{3} /);
        }),
        { seed: SEED, numRuns: 30 },
      );
      await stillServes(implicit.port, true);
      expect(processErrors).toEqual([]);
    } finally {
      await implicit.stop();
    }
  });
});
