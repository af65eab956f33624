/*
 * lftp (GnuTLS) against the real server, in process: explicit FTPS with ftp:ssl-force/ftp:ssl-protect-data,
 * implicit FTPS with ftps://. Checks bytes on disk, SHA-256 of what came back, and the server's log.
 *
 * lftp quirks these tests rely on or document:
 * - lftp resumes the control connection's TLS session on data connections because ftp:ssl-copy-sid is on by
 *   default (it copies the session, ticket included, from the control connection). With it off, every
 *   protected transfer is refused with 522 by the default server (TLS_REQUIRE_SESSION_REUSE=true).
 * - lftp 4.9.2 with cmd:fail-exit hangs after a *failed* `cat` (a failed `get` exits): use `get`.
 * - The password (it has spaces) is passed in LFTP_PASSWORD with `open --env-password`, not in the script.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandsOf, describeEachBackend, suiteServer, TEST_PASSWORD, TEST_USER, outcomesOf, transfersOf, type LogEntry, type RunningServer } from '../support/server.js';
import type { UserTree } from '../support/user-tree.js';

const execFileAsync = promisify(execFile);
const LFTP_MISSING = 'lftp is not installed; these tests run the real client: apt-get install lftp';

interface LftpResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Fail fast instead of hanging: one retry, a 10 s network timeout, stop at the first failed command. */
const BASE_SETTINGS = [
  'set cmd:fail-exit true',
  'set net:max-retries 1',
  'set net:timeout 10',
  'set net:reconnect-interval-base 1',
  'set ssl:verify-certificate no',
  'set ftp:ssl-force true',
  'set ftp:ssl-protect-data true',
];

let work: string;
let lftpHome: string;

/**
 * Runs `lftp -c` with the settings above, an `open` of the server, then `commands`. lftp runs in `work`, so
 * local paths in scripts are relative names chosen by the tests; HOME is a temporary directory so the
 * user's rc files and bookmarks play no part.
 */
async function lftp(
  srv: RunningServer,
  commands: readonly string[],
  o: { implicit?: boolean; settings?: readonly string[] } = {},
): Promise<LftpResult> {
  if (!/^\w+$/.test(TEST_USER)) throw new Error('TEST_USER must be a plain word to appear in an lftp script');
  const scheme = o.implicit ? 'ftps' : 'ftp';
  const script = [
    ...BASE_SETTINGS,
    ...(o.settings ?? []),
    `open -u ${TEST_USER} --env-password ${scheme}://127.0.0.1:${srv.port}`,
    ...commands,
  ].join('; ');
  try {
    const { stdout, stderr } = await execFileAsync('lftp', ['-c', script], {
      cwd: work,
      env: { ...process.env, HOME: lftpHome, LFTP_PASSWORD: TEST_PASSWORD },
      timeout: 30_000,
    });
    return { exitCode: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: unknown; killed?: boolean; stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') throw new Error(LFTP_MISSING, { cause: err });
    if (typeof e.code !== 'number') {
      throw new Error(`lftp did not finish (killed: ${e.killed}); stderr: ${e.stderr ?? ''}`, { cause: err });
    }
    return { exitCode: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const exists = (p: string) => access(p).then(() => true, () => false);

/** Every entry under `dir`: relative path → 'dir' or the file's SHA-256. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const full = path.join(entry.parentPath, entry.name);
    const rel = path.relative(dir, full).split(path.sep).join('/');
    result[rel] = entry.isDirectory() ? 'dir' : sha256(await readFile(full));
  }
  return result;
}

/** The same, of a directory on the server, read behind its back. */
async function snapshotOnServer(tree: UserTree, dir: string): Promise<Record<string, string>> {
  const result: Record<string, string> = {};
  for (const name of await tree.names(dir)) {
    const rel = `${dir}/${name}`;
    // What cannot be read as a file is a directory (EISDIR on disk, no such key in a bucket).
    const content = await tree.read(rel).catch(() => undefined);
    if (content !== undefined) result[name] = sha256(content);
    else {
      result[name] = 'dir';
      for (const [inner, kind] of Object.entries(await snapshotOnServer(tree, rel))) result[`${name}/${inner}`] = kind;
    }
  }
  return result;
}

const verbsOf = (srv: RunningServer, entry: LogEntry): string[] => commandsOf(srv, entry).map((c) => c.split(' ')[0]!);

beforeAll(async () => {
  lftpHome = await mkdtemp(path.join(os.tmpdir(), 'lftp-home-'));
  try {
    await execFileAsync('lftp', ['--version'], { timeout: 10_000 });
  } catch (err) {
    throw new Error((err as { code?: unknown }).code === 'ENOENT' ? LFTP_MISSING : 'lftp --version failed', { cause: err });
  }
});
afterAll(() => rm(lftpHome, { recursive: true, force: true }));

describeEachBackend('lftp', (backend) => {
  // A client directory per backend: lftp would not overwrite what the other backend's run got (xfer:clobber).
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), `lftp-client-${backend}-`));
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  describe('lftp, explicit FTPS (ftp:ssl-force, PROT P)', () => {
    const srv = suiteServer({}, { backend });

    it.each([
      { tls: 'TLSv1.3', settings: [] },
      { tls: 'TLSv1.2', settings: ['set ssl:priority "NORMAL:-VERS-TLS1.3"'] },
    ])('puts, lists and gets a file over $tls, data connections resuming the control session', async ({ tls, settings }) => {
      const name = `put-${tls}.bin`;
      const content = randomBytes(300_000);
      await writeFile(path.join(work, name), content);

      const r = await lftp(srv, [`put ${name} -o remote-${name}`, 'ls', `get remote-${name} -o back-${name}`], { settings });

      expect(r.exitCode, r.stderr).toBe(0);
      expect((await srv.tree.read(`remote-${name}`)).equals(content)).toBe(true);
      expect(sha256(await readFile(path.join(work, `back-${name}`)))).toBe(sha256(content));
      const listed = r.stdout.split('\n').find((l) => l.endsWith(` remote-${name}`));
      expect(listed).toMatch(/^-\S+\s.*\s300000 /);
      const transfers = transfersOf(srv, `/remote-${name}`);
      expect(transfers.map((t) => [t.direction, t.result, t.protection, t.tls])).toEqual([
        ['upload', 'ok', 'tls', tls],
        ['download', 'ok', 'tls', tls],
      ]);
    });

    it.each([
      { mode: 'EPSV', settings: ['set ftp:prefer-epsv yes'], expected: ['EPSV'] },
      { mode: 'active', settings: ['set ftp:passive-mode no'], expected: ['PORT', 'EPRT'] },
    ])('gets a file over $mode data connections', async ({ mode, settings, expected }) => {
      const name = `mode-${mode}.bin`;
      const content = randomBytes(200_000);
      await srv.tree.put(name, content);

      const r = await lftp(srv, [`get ${name} -o got-${name}`], { settings });

      expect(r.exitCode, r.stderr).toBe(0);
      expect(sha256(await readFile(path.join(work, `got-${name}`)))).toBe(sha256(content));
      const [transfer] = transfersOf(srv, `/${name}`);
      expect(transfer).toMatchObject({ result: 'ok', protection: 'tls' });
      const dataVerbs = verbsOf(srv, transfer!).filter((v) => ['PASV', 'EPSV', 'PORT', 'EPRT'].includes(v));
      expect(dataVerbs.length).toBeGreaterThan(0);
      expect(dataVerbs.every((v) => expected.includes(v))).toBe(true);
    });

    it('mirrors a tree up (mirror -R) and back down, three connections in parallel; contents identical', async () => {
      const tree = path.join(work, 'tree');
      await mkdir(path.join(tree, 'data', 'deeper'), { recursive: true });
      await mkdir(path.join(tree, 'with space'));
      await writeFile(path.join(tree, 'readme.txt'), 'mirror me\n');
      await writeFile(path.join(tree, 'empty.txt'), '');
      await writeFile(path.join(tree, 'data', 'blob.bin'), randomBytes(200_000));
      await writeFile(path.join(tree, 'data', 'deeper', 'more.bin'), randomBytes(50_000));
      await writeFile(path.join(tree, 'with space', 'name with space.txt'), 'spaces\n');
      const original = await snapshot(tree);

      const up = await lftp(srv, ['mirror --reverse --parallel=3 tree mirrored']);
      expect(up.exitCode, up.stderr).toBe(0);
      expect(await snapshotOnServer(srv.tree, 'mirrored')).toEqual(original);

      const down = await lftp(srv, ['mirror --parallel=3 mirrored tree-back']);
      expect(down.exitCode, down.stderr).toBe(0);
      expect(await snapshot(path.join(work, 'tree-back'))).toEqual(original);

      const transfers = srv.logs.filter((l) => l.msg === 'transfer' && String(l.path).startsWith('/mirrored/'));
      expect(transfers.length).toBeGreaterThanOrEqual(2 * 5);
      expect(transfers.every((t) => t.result === 'ok' && t.protection === 'tls')).toBe(true);
      // --parallel=3 opened more than one control connection, each resuming its own TLS session.
      expect(new Set(transfers.map((t) => t.session)).size).toBeGreaterThan(1);
    });

    it('mkdir, mv, rm and rmdir; rmdir of a non-empty directory fails and leaves it', async () => {
      await writeFile(path.join(work, 'note.txt'), 'a note\n');

      const made = await lftp(srv, ['mkdir -p box/inner', 'put note.txt -o box/inner/note.txt', 'mv box/inner/note.txt box/moved.txt']);
      expect(made.exitCode, made.stderr).toBe(0);
      expect(await srv.tree.exists('box/inner/note.txt')).toBe(false);
      expect((await srv.tree.read('box/moved.txt')).toString()).toBe('a note\n');

      const refused = await lftp(srv, ['rmdir box']);
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toMatch(/550/);
      expect(await srv.tree.exists('box/moved.txt')).toBe(true);

      const cleaned = await lftp(srv, ['rm box/moved.txt', 'rmdir box/inner', 'rmdir box']);
      expect(cleaned.exitCode, cleaned.stderr).toBe(0);
      expect(await srv.tree.exists('box')).toBe(false);
    });

    it('with ftp:ssl-copy-sid off, lftp does not resume the session and the server refuses the data connection (522)', async () => {
      await srv.tree.put('guarded.txt', 'only for the session owner');

      const r = await lftp(srv, ['get guarded.txt -o guarded-copy.txt'], { settings: ['set ftp:ssl-copy-sid no'] });

      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/522 TLS session of data connection must resume/);
      expect(await exists(path.join(work, 'guarded-copy.txt'))).toBe(false);
      expect(transfersOf(srv, '/guarded.txt')).toMatchObject([{ result: 'failed', bytes: 0 }]);
    });
  });

  describe('lftp, implicit FTPS (ftps://)', () => {
    const srv = suiteServer({ FTPS_IMPLICIT_SSL: 'true' }, { backend });

    it('puts, lists and gets a file', async () => {
      const content = randomBytes(250_000);
      await writeFile(path.join(work, 'implicit.bin'), content);

      const r = await lftp(srv, ['put implicit.bin -o on-server.bin', 'ls', 'get on-server.bin -o implicit-back.bin'], {
        implicit: true,
      });

      expect(r.exitCode, r.stderr).toBe(0);
      expect((await srv.tree.read('on-server.bin')).equals(content)).toBe(true);
      expect(sha256(await readFile(path.join(work, 'implicit-back.bin')))).toBe(sha256(content));
      expect(r.stdout).toMatch(/\s250000 .*on-server\.bin\n/);
      const transfers = transfersOf(srv, '/on-server.bin');
      expect(outcomesOf(transfers)).toEqual([
        ['upload', 'ok', 'tls'],
        ['download', 'ok', 'tls'],
      ]);
    });
  });
});
