/*
 * curl (OpenSSL) against the real server, in process: explicit FTPS (ftp:// with --ssl-reqd) and implicit
 * FTPS (ftps://), every data-connection mode curl has, TLS 1.2 and 1.3. Each test checks what a user would
 * see: curl's exit code, the bytes on disk or their SHA-256, and what the server logged.
 *
 * curl quirks these tests rely on or document:
 * - With OpenSSL, curl disables session tickets (SSL_OP_NO_TICKET): over TLS 1.2 its data connections resume
 *   the control session by session ID only, which needs the server's per-connection ID cache.
 * - curl 7.87–7.88 never starts TLS on an *active* data connection (curl/curl#10666, fixed in 8.0.0).
 * - curl 7.88 prints a bogus "sa_addr inet_ntop() failed" line in active mode (curl/curl#10622): stderr is
 *   not a failure signal, the exit code is.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandsOf, describeEachBackend, suiteServer, TEST_PASSWORD, TEST_USER, outcomesOf, transfersOf, type LogEntry, type RunningServer } from '../support/server.js';

const execFileAsync = promisify(execFile);
const CURL_MISSING = 'curl is not installed; these tests run the real client: apt-get install curl';

interface CurlResult {
  readonly exitCode: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Runs curl with an argv array (no shell). A non-zero exit is a result, not an exception. */
async function curl(...args: string[]): Promise<CurlResult> {
  try {
    const { stdout, stderr } = await execFileAsync('curl', ['--silent', '--show-error', '--max-time', '15', ...args], {
      encoding: 'buffer',
      timeout: 20_000,
      maxBuffer: 64 << 20,
    });
    return { exitCode: 0, stdout, stderr: stderr.toString('utf8') };
  } catch (err) {
    const e = err as { code?: unknown; killed?: boolean; stdout?: Buffer; stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error(CURL_MISSING, { cause: err });
    if (typeof e.code !== 'number') throw new Error(`curl did not finish (killed: ${e.killed})`, { cause: err });
    return { exitCode: e.code, stdout: e.stdout ?? Buffer.alloc(0), stderr: e.stderr?.toString('utf8') ?? '' };
  }
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The password has spaces: it goes as its own argv element, never into the URL or a shell string. */
const LOGIN = ['--user', `${TEST_USER}:${TEST_PASSWORD}`];
/** Explicit FTPS: AUTH TLS, and refuse to go on in clear. The certificate is self-signed. */
const EXPLICIT = ['--ssl-reqd', '--insecure', ...LOGIN];
const IMPLICIT = ['--insecure', ...LOGIN];

function url(srv: RunningServer, remotePath: string, scheme: 'ftp' | 'ftps' = 'ftp'): string {
  const encoded = remotePath.split('/').map(encodeURIComponent).join('/');
  return `${scheme}://127.0.0.1:${srv.port}/${encoded}`;
}

/** The server's log line for the transfer of `remotePath` (absolute, as the server logs it). */
function transferOf(srv: RunningServer, remotePath: string): LogEntry {
  const entries = transfersOf(srv, remotePath);
  expect(entries, `one transfer of ${remotePath} logged`).toHaveLength(1);
  return entries[0]!;
}

/** The TLS versions curl -v reports, one per handshake (control connection, then each data connection). */
const tlsVersionsIn = (stderr: string) => [...stderr.matchAll(/SSL connection using (TLSv1\.\d)/g)].map((m) => m[1]);

let curlVersion: [number, number];
let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'curl-client-'));
  let banner: string;
  try {
    banner = (await execFileAsync('curl', ['--version'], { timeout: 10_000 })).stdout;
  } catch (err) {
    throw new Error((err as { code?: unknown }).code === 'ENOENT' ? CURL_MISSING : 'curl --version failed', { cause: err });
  }
  const m = /^curl (\d+)\.(\d+)/.exec(banner);
  if (!m) throw new Error(`unexpected curl --version output: ${banner.split('\n')[0]}`);
  curlVersion = [Number(m[1]), Number(m[2])];
});
afterAll(() => rm(work, { recursive: true, force: true }));

describeEachBackend('curl', (backend) => {
  describe('curl, explicit FTPS (AUTH TLS, PROT P)', () => {
    const srv = suiteServer({}, { backend });

    describe.each([
      { tls: 'TLSv1.3', tlsArgs: [] },
      // OpenSSL-curl resumes by session ID only here (no tickets): this failed with 522 before the ID cache.
      { tls: 'TLSv1.2', tlsArgs: ['--tls-max', '1.2'] },
    ])('$tls', ({ tls, tlsArgs }) => {
      it.each([
        { mode: 'EPSV', modeArgs: [] },
        { mode: 'PASV', modeArgs: ['--disable-epsv'] },
      ])('downloads over $mode, resuming the control TLS session; SHA-256 matches', async ({ mode, modeArgs }) => {
        const name = `download-${mode}-${tls}.bin`;
        const content = randomBytes(300_000);
        await srv.tree.put(name, content);
        const out = path.join(work, name);

        const r = await curl(...EXPLICIT, ...tlsArgs, ...modeArgs, '--verbose', '--output', out, url(srv, name));

        expect(r.exitCode, r.stderr).toBe(0);
        expect(sha256(await readFile(out))).toBe(sha256(content));
        // Control connection and data connection, both at the version asked for.
        const versions = tlsVersionsIn(r.stderr);
        expect(versions.length).toBeGreaterThanOrEqual(2);
        expect(new Set(versions)).toEqual(new Set([tls]));
        const transfer = transferOf(srv, `/${name}`);
        expect(transfer).toMatchObject({ result: 'ok', protection: 'tls', bytes: content.length, tls });
        const verbs = commandsOf(srv, transfer).map((c) => c.split(' ')[0]);
        expect(verbs).toContain(mode);
        expect(verbs).not.toContain(mode === 'EPSV' ? 'PASV' : 'EPSV');
      });

      it('downloads three files on one control connection: every data connection resumes its session', async () => {
        const files = [1, 2, 3].map((i) => ({ name: `several-${i}-${tls}.bin`, content: randomBytes(50_000 * i) }));
        for (const f of files) await srv.tree.put(f.name, f.content);
        const outputs = files.flatMap((f) => ['--output', path.join(work, f.name), url(srv, f.name)]);

        const r = await curl(...EXPLICIT, ...tlsArgs, ...outputs);

        expect(r.exitCode, r.stderr).toBe(0);
        for (const f of files) expect(sha256(await readFile(path.join(work, f.name)))).toBe(sha256(f.content));
        const transfers = files.map((f) => transferOf(srv, `/${f.name}`));
        expect(transfers.map((t) => t?.result)).toEqual(['ok', 'ok', 'ok']);
        // One control connection (curl reuses it for the same host and login).
        expect(new Set(transfers.map((t) => t?.session)).size).toBe(1);
      });
    });

    it('lists a directory (LIST, and NLST with --list-only)', async () => {
      await srv.tree.mkdir('listing/beta dir');
      await srv.tree.put('listing/alpha.txt', 'alpha');

      const long = await curl(...EXPLICIT, url(srv, 'listing/'));
      expect(long.exitCode, long.stderr).toBe(0);
      // The server sends CRLF; curl turns it into LF for ASCII transfers (listings are ASCII).
      const lines = long.stdout.toString('utf8').trimEnd().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines).toContainEqual(expect.stringMatching(/^-rw\S+\s.*\s5 .*\salpha\.txt$/));
      expect(lines).toContainEqual(expect.stringMatching(/^d\S+\s.*\sbeta dir$/));

      const names = await curl(...EXPLICIT, '--list-only', url(srv, 'listing/'));
      expect(names.exitCode, names.stderr).toBe(0);
      expect(names.stdout.toString('utf8').trimEnd().split('\n').sort()).toEqual(['alpha.txt', 'beta dir']);
    });

    it('uploads with -T; the bytes on disk are the bytes sent', async () => {
      await srv.tree.mkdir('uploads');
      const local = path.join(work, 'upload.bin');
      const content = randomBytes(400_000);
      await writeFile(local, content);

      const r = await curl(...EXPLICIT, '--upload-file', local, url(srv, 'uploads/sent.bin'));

      expect(r.exitCode, r.stderr).toBe(0);
      expect((await srv.tree.read('uploads/sent.bin')).equals(content)).toBe(true);
      expect(transferOf(srv, '/uploads/sent.bin')).toMatchObject({ direction: 'upload', result: 'ok', protection: 'tls' });
    });

    it('creates missing directories with --ftp-create-dirs, and without it refuses the upload', async () => {
      const local = path.join(work, 'deep.bin');
      const content = randomBytes(10_000);
      await writeFile(local, content);
      const target = url(srv, 'made/by/curl/deep.bin');

      const refused = await curl(...EXPLICIT, '--upload-file', local, target);
      expect(refused.exitCode).toBe(9); // CURLE_REMOTE_ACCESS_DENIED: CWD made failed
      expect(await srv.tree.exists('made')).toBe(false);

      const created = await curl(...EXPLICIT, '--ftp-create-dirs', '--upload-file', local, target);
      expect(created.exitCode, created.stderr).toBe(0);
      expect((await srv.tree.read('made/by/curl/deep.bin')).equals(content)).toBe(true);
    });

    it('resumes a download with -C - (REST at the local size)', async () => {
      const content = randomBytes(200_000);
      await srv.tree.put('resume-down.bin', content);
      const local = path.join(work, 'resume-down.bin');
      await writeFile(local, content.subarray(0, 80_000));

      const r = await curl(...EXPLICIT, '--continue-at', '-', '--output', local, url(srv, 'resume-down.bin'));

      expect(r.exitCode, r.stderr).toBe(0);
      expect(sha256(await readFile(local))).toBe(sha256(content));
      const transfer = transferOf(srv, '/resume-down.bin');
      expect(transfer).toMatchObject({ result: 'ok', bytes: 120_000 });
      expect(commandsOf(srv, transfer)).toContain('REST 80000');
    });

    it('resumes an upload with -C - (SIZE, then APPE of the rest)', async () => {
      const content = randomBytes(150_000);
      await srv.tree.put('resume-up.bin', content.subarray(0, 70_000));
      const local = path.join(work, 'resume-up.bin');
      await writeFile(local, content);

      const r = await curl(...EXPLICIT, '--continue-at', '-', '--upload-file', local, url(srv, 'resume-up.bin'));

      expect(r.exitCode, r.stderr).toBe(0);
      expect(sha256(await srv.tree.read('resume-up.bin'))).toBe(sha256(content));
      const transfer = transferOf(srv, '/resume-up.bin');
      expect(transfer).toMatchObject({ result: 'ok', bytes: 80_000 });
      expect(commandsOf(srv, transfer)).toEqual(expect.arrayContaining(['SIZE resume-up.bin', 'APPE resume-up.bin']));
    });

    it('appends with -a (APPE)', async () => {
      await srv.tree.put('journal.txt', 'first line\n');
      const local = path.join(work, 'journal-more.txt');
      await writeFile(local, 'second line\n');

      const r = await curl(...EXPLICIT, '--append', '--upload-file', local, url(srv, 'journal.txt'));

      expect(r.exitCode, r.stderr).toBe(0);
      expect((await srv.tree.read('journal.txt')).toString()).toBe('first line\nsecond line\n');
    });

    it('deletes with -Q "-DELE name" after the listing; deleting a missing file fails', async () => {
      await srv.tree.mkdir('trash');
      await srv.tree.put('trash/doomed.txt', 'bye');

      const r = await curl(...EXPLICIT, '--quote', '-DELE doomed.txt', url(srv, 'trash/'));
      expect(r.exitCode, r.stderr).toBe(0);
      // The listing ran first, then DELE.
      expect(r.stdout.toString('utf8')).toMatch(/doomed\.txt/);
      expect(await srv.tree.exists('trash/doomed.txt')).toBe(false);

      const again = await curl(...EXPLICIT, '--quote', '-DELE doomed.txt', url(srv, 'trash/'));
      expect(again.exitCode).toBe(21); // CURLE_QUOTE_ERROR
    });

    it('renames with -Q "RNFR" -Q "RNTO" before the listing', async () => {
      // Commands without the "-" prefix run right after login, before curl changes to the URL's directory.
      await srv.tree.mkdir('moves');
      await srv.tree.put('moves/old name.txt', 'moved content');

      const r = await curl(...EXPLICIT, '--quote', 'RNFR moves/old name.txt', '--quote', 'RNTO moves/new name.txt', url(srv, 'moves/'));

      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout.toString('utf8')).toMatch(/new name\.txt/);
      expect(r.stdout.toString('utf8')).not.toMatch(/old name\.txt/);
      expect(await srv.tree.exists('moves/old name.txt')).toBe(false);
      expect((await srv.tree.read('moves/new name.txt')).toString()).toBe('moved content');
    });

    it('plain ftp:// without --ssl-reqd is refused at USER: no password in clear, no file served', async () => {
      await srv.tree.put('secret.txt', 'not for plain text');
      const before = srv.logs.length;

      const r = await curl(...LOGIN, url(srv, 'secret.txt'));

      expect(r.exitCode).toBe(67); // CURLE_LOGIN_DENIED
      expect(r.stderr).toMatch(/530/);
      expect(r.stdout.length).toBe(0);
      const verbs = srv.logs
        .slice(before)
        .filter((l) => l.msg === 'command')
        .map((l) => l.verb);
      expect(verbs).toContain('USER');
      expect(verbs).not.toContain('PASS');
      expect(transfersOf(srv, '/secret.txt')).toHaveLength(0);
    });
  });

  describe('curl, active mode (PORT/EPRT)', () => {
    // PROT C allowed, so that curl's active mode can be tested on this curl too; a short data timeout for
    // the case where curl never starts TLS on the data connection.
    const srv = suiteServer({ FTPS_REQUIRE_PROT_P: 'false', DATA_TIMEOUT_SECONDS: '2' }, { backend });

    it.each([
      { verb: 'EPRT', args: ['--ftp-port', '127.0.0.1'] },
      { verb: 'PORT', args: ['--ftp-port', '127.0.0.1', '--disable-eprt'] },
    ])('uploads and downloads with $verb (TLS control connection, PROT C data)', async ({ verb, args }) => {
      const content = randomBytes(250_000);
      const local = path.join(work, `active-${verb}.bin`);
      await writeFile(local, content);
      const name = `active-${verb}.bin`;

      // --ftp-ssl-control: TLS for the control connection (login), PROT C for data.
      const up = await curl('--ftp-ssl-control', '--insecure', ...LOGIN, ...args, '--upload-file', local, url(srv, name));
      expect(up.exitCode, up.stderr).toBe(0);
      expect(sha256(await srv.tree.read(name))).toBe(sha256(content));

      const back = path.join(work, `active-${verb}-back.bin`);
      const down = await curl('--ftp-ssl-control', '--insecure', ...LOGIN, ...args, '--output', back, url(srv, name));
      expect(down.exitCode, down.stderr).toBe(0);
      expect(sha256(await readFile(back))).toBe(sha256(content));

      const transfers = transfersOf(srv, `/${name}`);
      expect(outcomesOf(transfers)).toEqual([
        ['upload', 'ok', 'clear'],
        ['download', 'ok', 'clear'],
      ]);
      for (const t of transfers) {
        const commands = commandsOf(srv, t);
        expect(commands).toContain('PROT C');
        expect(commands.map((c) => c.split(' ')[0])).toContain(verb);
        expect(commands.map((c) => c.split(' ')[0])).not.toContain(verb === 'EPRT' ? 'PORT' : 'EPRT');
      }
    });

    it('with PROT P: curl >= 8 transfers over TLS; curl 7.87-7.88 (no TLS on active data, curl#10666) gets nothing in clear', async () => {
      const content = Buffer.from('active and protected\n');
      await srv.tree.put('active-prot-p.txt', content);

      const r = await curl(...EXPLICIT, '--ftp-port', '127.0.0.1', url(srv, 'active-prot-p.txt'));

      const transfer = transferOf(srv, '/active-prot-p.txt');
      const [major, minor] = curlVersion;
      if (major >= 8 || (major === 7 && minor < 87)) {
        expect(r.exitCode, r.stderr).toBe(0);
        expect(r.stdout.equals(content)).toBe(true);
        expect(transfer).toMatchObject({ result: 'ok', protection: 'tls' });
      } else {
        // curl reads the data socket without TLS; the server waits for a handshake and gives up after
        // DATA_TIMEOUT_SECONDS. Not one byte of the file crossed in clear.
        expect(r.exitCode).not.toBe(0);
        expect(r.stdout.length).toBe(0);
        expect(transfer).toMatchObject({ result: 'failed', protection: 'tls', bytes: 0 });
      }
    });
  });

  describe('curl, implicit FTPS (ftps://)', () => {
    const srv = suiteServer({ FTPS_IMPLICIT_SSL: 'true' }, { backend });

    it.each([
      { tls: 'TLSv1.3', tlsArgs: [] },
      { tls: 'TLSv1.2', tlsArgs: ['--tls-max', '1.2'] },
    ])('uploads, lists and downloads over $tls', async ({ tls, tlsArgs }) => {
      const name = `implicit-${tls}.bin`;
      const content = randomBytes(300_000);
      const local = path.join(work, name);
      await writeFile(local, content);

      const up = await curl(...IMPLICIT, ...tlsArgs, '--verbose', '--upload-file', local, url(srv, name, 'ftps'));
      expect(up.exitCode, up.stderr).toBe(0);
      expect(new Set(tlsVersionsIn(up.stderr))).toEqual(new Set([tls]));
      expect((await srv.tree.read(name)).equals(content)).toBe(true);

      const list = await curl(...IMPLICIT, ...tlsArgs, url(srv, '', 'ftps'));
      expect(list.exitCode, list.stderr).toBe(0);
      const line = list.stdout.toString('utf8').split('\n').find((l) => l.endsWith(` ${name}`));
      expect(line).toMatch(/^-\S+\s.*\s300000 /);

      const back = path.join(work, `${name}.back`);
      const down = await curl(...IMPLICIT, ...tlsArgs, '--output', back, url(srv, name, 'ftps'));
      expect(down.exitCode, down.stderr).toBe(0);
      expect(sha256(await readFile(back))).toBe(sha256(content));

      const transfers = transfersOf(srv, `/${name}`);
      expect(outcomesOf(transfers)).toEqual([
        ['upload', 'ok', 'tls'],
        ['download', 'ok', 'tls'],
      ]);
    });
  });
});
