/*
 * Python's ftplib.FTP_TLS against the real server, in process. Stock FTP_TLS opens its data connections with
 * a fresh TLS handshake, never resuming the control connection's session; the default server
 * (TLS_REQUIRE_SESSION_REUSE=true) must refuse that with 522, like vsftpd's require_ssl_reuse. The well-known
 * subclass that passes `session=self.sock.session` to wrap_socket must work, over TLS 1.3 (tickets) and over
 * TLS 1.2 by ticket or by session ID only (as curl does) — and a session borrowed from *another* control
 * connection must not. With TLS_REQUIRE_SESSION_REUSE=false stock FTP_TLS works; its retrlines() calls
 * unwrap() and so fails unless the server ended the data connection with a TLS close_notify.
 *
 * The Python programs are constants; the port, credentials and paths reach them through env and argv.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServerProcess } from '../support/server-process.js';
import { startServer, TEST_PASSWORD, TEST_USER, outcomesOf, transfersOf, type RunningServer } from '../support/server.js';

const execFileAsync = promisify(execFile);
const PYTHON_MISSING = 'python3 is not installed; these tests run Python ftplib: apt-get install python3';

const PRELUDE = String.raw`
import ftplib, hashlib, json, os, socket, ssl, sys

def context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test server's certificate is self-signed
    if os.environ['TLS_MAX'] == '1.2':
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if os.environ['TICKETS'] == 'no':
        ctx.options |= ssl.OP_NO_TICKET  # resume by session ID only, as curl with OpenSSL does
    return ctx

class ReusedSessionFTP_TLS(ftplib.FTP_TLS):
    """The well-known fix: data connections resume the control connection's TLS session."""
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.data_session())
        return conn, size

    def data_session(self):
        return self.sock.session

def connect(cls, ctx, protect=True):
    ftp = cls(context=ctx, timeout=10)
    ftp.connect('127.0.0.1', int(os.environ['FTP_PORT']))
    ftp.login(os.environ['FTP_USER'], os.environ['FTP_PASSWORD'])
    if protect:
        ftp.prot_p()
    return ftp

def try_list(ftp):
    """LIST over a protected data connection: the lines received, how it failed, the final reply."""
    lines = []
    try:
        ftp.retrlines('LIST', lines.append)
        return {'lines': lines, 'error': None, 'reply': ftp.lastresp}
    except ftplib.error_perm as e:  # the refusal arrived as the transfer's final reply
        return {'lines': lines, 'error': 'error_perm', 'reply': str(e)}
    except (OSError, EOFError) as e:  # the data connection died first (ssl.SSLError is an OSError)
        try:
            reply = ftp.getresp()
        except ftplib.Error as perm:
            reply = str(perm)
        return {'lines': lines, 'error': type(e).__name__, 'reply': reply}
`;

/** Stock FTP_TLS: PROT P, then LIST. */
const STOCK_LIST = `${PRELUDE}
ftp = connect(ftplib.FTP_TLS, context())
result = try_list(ftp)
ftp.quit()
print(json.dumps(result))
`;

/** Stock FTP_TLS without PROT P (clear data connections), then LIST. */
const CLEAR_LIST = `${PRELUDE}
ftp = connect(ftplib.FTP_TLS, context(), protect=False)
result = try_list(ftp)
ftp.quit()
print(json.dumps(result))
`;

/** Upload argv[1] as argv[2], download it again, list names. argv[3]: 'stock' or 'reuse'. */
const ROUND_TRIP = `${PRELUDE}
local, remote, kind = sys.argv[1], sys.argv[2], sys.argv[3]
ftp = connect(ReusedSessionFTP_TLS if kind == 'reuse' else ftplib.FTP_TLS, context())
with open(local, 'rb') as f:
    stored = ftp.storbinary('STOR ' + remote, f)
digest = hashlib.sha256()
retrieved = ftp.retrbinary('RETR ' + remote, digest.update)
names = ftp.nlst()
print(json.dumps({'stored': stored, 'retrieved': retrieved, 'sha256': digest.hexdigest(),
                  'names': names, 'tls': ftp.sock.version()}))
ftp.quit()
`;

/** Two control connections; the second one's data connection presents the first one's TLS session. */
const BORROWED_SESSION = `${PRELUDE}
ctx = context()
owner = connect(ReusedSessionFTP_TLS, ctx)
own = try_list(owner)  # also makes sure the owner's session (ticket) has arrived

class Borrower(ReusedSessionFTP_TLS):
    def data_session(self):
        return owner.sock.session

thief = connect(Borrower, ctx)
stolen = try_list(thief)
thief.quit()
owner.quit()
print(json.dumps({'own': own, 'borrowed': stolen}))
`;

/**
 * Someone on the client's address connects to the passive port first, twice: once with a fresh handshake,
 * then presenting whatever session that first handshake left it. Neither may get the file.
 */
const PORT_THIEF = `${PRELUDE}
owner = connect(ftplib.FTP_TLS, context())
thief_context = context()

def steal(session):
    host, port = owner.makepasv()
    raw = socket.create_connection((host, port), timeout=10)  # before the owner's own connection
    owner.putcmd('RETR ' + sys.argv[1])
    preliminary = owner.getresp()
    data, stolen_session = b'', None
    try:
        conn = thief_context.wrap_socket(raw, server_hostname='127.0.0.1', session=session)
        stolen_session = conn.session
        while chunk := conn.recv(4096):
            data += chunk
    except OSError:
        pass
    try:
        final = owner.getresp()
    except ftplib.Error as e:
        final = str(e)
    return {'preliminary': preliminary, 'final': final, 'data': data.decode('latin-1')}, stolen_session

first, session = steal(None)
second, _ = steal(session)
owner.quit()
print(json.dumps({'first': first, 'second': second}))
`;

/**
 * LIST, then (after a line on stdin, while the test moves the server's clock) LIST again on the same control
 * connection, each data connection resuming the control session. One JSON line per LIST.
 */
const LIST_TWICE = `${PRELUDE}
ftp = connect(ReusedSessionFTP_TLS, context())
print(json.dumps(try_list(ftp)), flush=True)
sys.stdin.readline()
print(json.dumps(try_list(ftp)), flush=True)
ftp.quit()
`;

interface PythonRun {
  readonly tlsMax?: '1.2';
  readonly tickets?: boolean;
  /** Another login than the test user: [name, password]. */
  readonly login?: readonly [string, string];
}

/** Runs a constant Python program (isolated mode: no PYTHON* variables, no user site) and parses its JSON. */
async function python(srv: { readonly port: number }, program: string, args: readonly string[], o: PythonRun = {}): Promise<unknown> {
  try {
    const { stdout } = await execFileAsync('python3', ['-I', '-c', program, ...args], {
      env: {
        ...process.env,
        FTP_PORT: String(srv.port),
        FTP_USER: o.login?.[0] ?? TEST_USER,
        FTP_PASSWORD: o.login?.[1] ?? TEST_PASSWORD,
        TLS_MAX: o.tlsMax ?? '',
        TICKETS: o.tickets === false ? 'no' : 'yes',
      },
      timeout: 30_000,
    });
    return JSON.parse(stdout);
  } catch (err) {
    const e = err as { code?: unknown; stderr?: string };
    if (e.code === 'ENOENT') throw new Error(PYTHON_MISSING, { cause: err });
    throw new Error(`python3 failed (exit ${String(e.code)}): ${e.stderr ?? ''}`, { cause: err });
  }
}

interface ListResult {
  readonly lines: string[];
  readonly error: string | null;
  readonly reply: string;
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const REFUSED = /^522 TLS session of data connection must resume the control connection session/;

let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ftplib-client-'));
  try {
    await execFileAsync('python3', ['--version'], { timeout: 10_000 });
  } catch (err) {
    throw new Error((err as { code?: unknown }).code === 'ENOENT' ? PYTHON_MISSING : 'python3 --version failed', { cause: err });
  }
});
afterAll(() => rm(work, { recursive: true, force: true }));

describe('Python ftplib, default server (TLS_REQUIRE_SESSION_REUSE=true)', () => {
  let srv: RunningServer;
  beforeAll(async () => {
    srv = await startServer();
  });
  afterAll(() => srv.stop());

  it.each([
    { tls: 'TLSv1.3', run: {} },
    { tls: 'TLSv1.2', run: { tlsMax: '1.2' } },
  ] as const)('stock FTP_TLS: prot_p() + LIST over $tls is refused with 522, nothing listed', async ({ run }) => {
    await writeFile(path.join(srv.root, 'visible-only-with-reuse.txt'), 'x');

    const result = (await python(srv, STOCK_LIST, [], run)) as ListResult;

    expect(result.error).not.toBeNull();
    expect(result.reply).toMatch(REFUSED);
    expect(result.lines).toEqual([]);
  });

  it.each([
    { label: 'TLS 1.3 (ticket)', tls: 'TLSv1.3', run: {} },
    { label: 'TLS 1.2 (ticket)', tls: 'TLSv1.2', run: { tlsMax: '1.2' } },
    { label: 'TLS 1.2 (session ID only)', tls: 'TLSv1.2', run: { tlsMax: '1.2', tickets: false } },
  ] as const)('the ntransfercmd subclass (session=self.sock.session) uploads and downloads over $label', async ({ label, tls, run }) => {
    const content = randomBytes(300_000);
    const local = path.join(work, 'reuse.bin');
    await writeFile(local, content);
    const remote = `reuse ${label}.bin`;

    const result = (await python(srv, ROUND_TRIP, [local, remote, 'reuse'], run)) as Record<string, unknown>;

    expect(result).toMatchObject({ stored: expect.stringMatching(/^226/), retrieved: expect.stringMatching(/^226/), tls });
    expect((await readFile(path.join(srv.root, remote))).equals(content)).toBe(true);
    expect(result.sha256).toBe(sha256(content));
    expect(result.names).toContain(remote);
  });

  it.each([
    { label: 'TLS 1.3 ticket', run: {} },
    { label: 'TLS 1.2 session ID', run: { tlsMax: '1.2', tickets: false } },
  ] as const)('a data connection resuming another control connection’s session ($label) is refused', async ({ run }) => {
    await writeFile(path.join(srv.root, 'owned.txt'), 'x');

    const result = (await python(srv, BORROWED_SESSION, [], run)) as { own: ListResult; borrowed: ListResult };

    expect(result.own.error).toBeNull();
    expect(result.own.reply).toMatch(/^226/);
    expect(result.own.lines.some((l) => l.endsWith(' owned.txt'))).toBe(true);
    expect(result.borrowed.error).not.toBeNull();
    expect(result.borrowed.reply).toMatch(REFUSED);
    expect(result.borrowed.lines).toEqual([]);
  });

  it.each([
    { label: 'TLS 1.3', run: {} },
    { label: 'TLS 1.2', run: { tlsMax: '1.2' } },
  ] as const)('whoever takes the passive port first gets nothing, not even a session to retry with ($label)', async ({ label, run }) => {
    const name = `payroll ${label}.txt`;
    await writeFile(path.join(srv.root, name), 'confidential');

    const result = (await python(srv, PORT_THIEF, [name], run)) as {
      first: Record<string, string>;
      second: Record<string, string>;
    };

    for (const attempt of [result.first, result.second]) {
      expect(attempt.preliminary).toMatch(/^150/);
      expect(attempt.final).toMatch(REFUSED);
      expect(attempt.data).toBe('');
    }
    expect(transfersOf(srv, `/${name}`)).toMatchObject([
      { result: 'failed', bytes: 0 },
      { result: 'failed', bytes: 0 },
    ]);
  });
});

describe('Python ftplib, TLS_REQUIRE_SESSION_REUSE=false', () => {
  let srv: RunningServer;
  beforeAll(async () => {
    srv = await startServer({ TLS_REQUIRE_SESSION_REUSE: 'false' });
  });
  afterAll(() => srv.stop());

  it('stock FTP_TLS uploads with storbinary and downloads with retrbinary over protected data connections', async () => {
    const content = randomBytes(300_000);
    const local = path.join(work, 'stock.bin');
    await writeFile(local, content);

    const result = (await python(srv, ROUND_TRIP, [local, 'stock.bin', 'stock'])) as Record<string, unknown>;

    expect(result).toMatchObject({ stored: expect.stringMatching(/^226/), retrieved: expect.stringMatching(/^226/) });
    expect((await readFile(path.join(srv.root, 'stock.bin'))).equals(content)).toBe(true);
    expect(result.sha256).toBe(sha256(content));
    const transfers = transfersOf(srv, '/stock.bin');
    expect(outcomesOf(transfers)).toEqual([
      ['upload', 'ok', 'tls'],
      ['download', 'ok', 'tls'],
    ]);
  });

  it('stock FTP_TLS lists: a short listing after a fresh TLS 1.3 handshake still ends with close_notify', async () => {
    await writeFile(path.join(srv.root, 'listed.txt'), 'x');

    const result = (await python(srv, STOCK_LIST, [])) as ListResult;

    expect(result.error).toBeNull();
    expect(result.reply).toMatch(/^226/);
    expect(result.lines.some((l) => l.endsWith(' listed.txt'))).toBe(true);
  });
});

describe('Python ftplib, narrow exemptions (users-file reuse=optional, TLS_SESSION_REUSE_EXEMPT_CIDRS)', () => {
  const EXEMPT: readonly [string, string] = ['batch', 'batch-pass'];
  const STRICT: readonly [string, string] = ['person', 'person-pass'];
  let srv: RunningServer;
  beforeAll(async () => {
    const usersFile = path.join(work, 'users');
    await writeFile(
      usersFile,
      [`${EXEMPT[0]}:${bcrypt.hashSync(EXEMPT[1], 4)}:batch:rw,reuse=optional`, `${STRICT[0]}:${bcrypt.hashSync(STRICT[1], 4)}:person:rw`].join('\n'),
    );
    // An exempt range that does not hold the client (127.0.0.1): only the users-file option applies.
    srv = await startServer({ FTP_USERS_FILE: usersFile, TLS_SESSION_REUSE_EXEMPT_CIDRS: '10.0.0.0/8' });
  });
  afterAll(() => srv.stop());

  it('stock FTP_TLS uploads, downloads and lists as the exempted user', async () => {
    const content = randomBytes(200_000);
    const local = path.join(work, 'exempt.bin');
    await writeFile(local, content);

    const result = (await python(srv, ROUND_TRIP, [local, 'exempt.bin', 'stock'], { login: EXEMPT })) as Record<string, unknown>;

    expect(result).toMatchObject({ stored: expect.stringMatching(/^226/), retrieved: expect.stringMatching(/^226/), names: ['exempt.bin'] });
    expect(result.sha256).toBe(sha256(content));
    expect((await readFile(path.join(srv.root, 'batch', 'exempt.bin'))).equals(content)).toBe(true);
  });

  it('the exempted user still needs PROT P', async () => {
    const result = (await python(srv, CLEAR_LIST, [], { login: EXEMPT })) as ListResult;
    expect(result.reply).toMatch(/^521 /);
    expect(result.lines).toEqual([]);
  });

  it('another user, and an address outside the exempt range, still get a 522 that names the settings, in the reply and the log', async () => {
    const result = (await python(srv, STOCK_LIST, [], { login: STRICT })) as ListResult;

    expect(result.reply).toMatch(REFUSED);
    expect(result.reply).toContain('TLS_SESSION_REUSE_EXEMPT_CIDRS');
    expect(result.reply).toContain('reuse=optional');
    const refusal = srv.logs.find((l) => l.user === STRICT[0] && typeof l.reason === 'string' && String(l.reason).includes('TLS_REQUIRE_SESSION_REUSE'));
    expect(refusal).toBeDefined();
  });
});

describe('Python ftplib, TLS_SESSION_REUSE_EXEMPT_CIDRS holding the client', () => {
  let srv: RunningServer;
  beforeAll(async () => {
    srv = await startServer({ TLS_SESSION_REUSE_EXEMPT_CIDRS: '192.0.2.0/24, 127.0.0.0/8' });
  });
  afterAll(() => srv.stop());

  it('stock FTP_TLS round-trips from an exempted address', async () => {
    const content = randomBytes(100_000);
    const local = path.join(work, 'cidr.bin');
    await writeFile(local, content);

    const result = (await python(srv, ROUND_TRIP, [local, 'cidr.bin', 'stock'])) as Record<string, unknown>;

    expect(result).toMatchObject({ stored: expect.stringMatching(/^226/), retrieved: expect.stringMatching(/^226/) });
    expect(result.sha256).toBe(sha256(content));
  });
});

/**
 * The TLS session outlives the old 7,200 s limit (proftpd#1931: FileZilla sessions open for hours could no longer
 * resume): the server process runs under libfaketime, whose clock the test moves forward between two transfers
 * of one control connection. TLS 1.3 caps a session at 7 days; past that the data connection is refused.
 */
describe('Python ftplib, a control connection older than the TLS session lifetime (libfaketime)', () => {
  const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

  it.each([
    { label: '2 h 2 min, TLS 1.3', jump: '+7320s', run: {}, reply: /^226/ },
    { label: '2 h 2 min, TLS 1.2', jump: '+7320s', run: { tlsMax: '1.2' }, reply: /^226/ },
    { label: '7 days and 5 min, TLS 1.3', jump: '+605100s', run: {}, reply: REFUSED },
  ] as const)('after $label a data connection still resumes within 7 days, not beyond', { timeout: 60_000 }, async ({ jump, run, reply }) => {
    await access(LIBFAKETIME).catch((err: unknown) => {
      throw new Error('libfaketime is needed: apt-get install faketime (scripts/test-setup.sh)', { cause: err });
    });
    const clock = path.join(work, `clock-${jump}`);
    await writeFile(clock, '+0s');
    const root = await mkdtemp(path.join(work, 'root-'));
    const srv = await startServerProcess({
      FTP_ROOT: root,
      LD_PRELOAD: LIBFAKETIME,
      FAKETIME_TIMESTAMP_FILE: clock,
      // Read the file at every clock read (a cache would hide the jump; it costs the server some speed).
      FAKETIME_NO_CACHE: '1',
      // Timers stay on the real clock: only the wall clock (TLS session ages, certificate checks) jumps.
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    });
    try {
      await writeFile(path.join(root, 'still-here.txt'), 'x');
      const client = spawn('python3', ['-I', '-c', LIST_TWICE], {
        env: { ...process.env, FTP_PORT: String(srv.port), FTP_USER: TEST_USER, FTP_PASSWORD: TEST_PASSWORD, TLS_MAX: run.tlsMax ?? '', TICKETS: 'yes' },
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      const lines = createInterface({ input: client.stdout })[Symbol.asyncIterator]();
      const before = JSON.parse(String((await lines.next()).value)) as ListResult;
      await writeFile(clock, jump);
      client.stdin.end('\n');
      const after = JSON.parse(String((await lines.next()).value)) as ListResult;
      await once(client, 'exit');

      expect(before.reply).toMatch(/^226/);
      expect(after.reply).toMatch(reply);
    } finally {
      await srv.stop();
    }
  });
});
