/*
 * rclone (Debian's, Go's TLS) against the real server, in process. rclone keeps one TLS session cache for all
 * its connections to a host: with several control connections (its default concurrency), a data connection
 * resumes whichever session was cached last, usually another control connection's, and the secure default
 * refuses it (522). The documented flag `--ftp-concurrency 1` works at the defaults; the users-file option
 * `reuse=optional` and TLS_SESSION_REUSE_EXEMPT_CIDRS let its default flags in.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, TEST_PASSWORD, TEST_USER, type RunningServer } from '../support/server.js';

const execFileAsync = promisify(execFile);
const MISSING = 'rclone is not installed: apt-get install rclone (scripts/test-setup.sh)';
const FILES = 6;
const EXEMPT = ['batch', 'batch-pass'] as const;

let work: string;
let usersFile: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'rclone-client-'));
  try {
    await execFileAsync('rclone', ['version'], { timeout: 20_000 });
  } catch (err) {
    throw new Error(MISSING, { cause: err });
  }
  await writeFile(path.join(work, 'rclone.conf'), '');
  usersFile = path.join(work, 'users');
  await writeFile(usersFile, `${EXEMPT[0]}:${bcrypt.hashSync(EXEMPT[1], 4)}:batch:rw,reuse=optional\n`);
});
afterAll(() => rm(work, { recursive: true, force: true }));

/** rclone with an empty config; `remote` is an on-the-fly ftp remote. Never retries, so a refusal shows. */
async function rclone(args: readonly string[]): Promise<{ ok: boolean; stdout: string; output: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(
      'rclone',
      ['--config', path.join(work, 'rclone.conf'), '--retries', '1', '--low-level-retries', '1', '--contimeout', '10s', ...args],
      { timeout: 60_000 },
    );
    return { ok: true, stdout, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') throw new Error(MISSING, { cause: err });
    return { ok: false, stdout: e.stdout ?? '', output: (e.stdout ?? '') + (e.stderr ?? '') };
  }
}

async function remote(srv: RunningServer, [user, password]: readonly [string, string]): Promise<string> {
  const { stdout } = await execFileAsync('rclone', ['obscure', password]);
  return `:ftp,host=127.0.0.1,port=${srv.port},user=${user},pass=${stdout.trim()},explicit_tls=true,no_check_certificate=true:`;
}

/** FILES files up, listed, and down again into a fresh directory: what came back equals what went. */
async function roundTrip(srv: RunningServer, login: readonly [string, string], flags: readonly string[] = []) {
  const up = await mkdtemp(path.join(work, 'up-'));
  const down = await mkdtemp(path.join(work, 'down-'));
  const files = new Map(Array.from({ length: FILES }, (_, i) => [`file-${i}.bin`, randomBytes(100_000 + i * 50_000)]));
  for (const [name, content] of files) await writeFile(path.join(up, name), content);
  const target = `${await remote(srv, login)}sync`;
  const copied = await rclone([...flags, 'copy', up, target]);
  const listed = await rclone([...flags, 'lsf', target]);
  const back = await rclone([...flags, 'copy', target, down]);
  const received = new Map<string, Buffer>();
  for (const name of await readdir(down)) received.set(name, await readFile(path.join(down, name)));
  return { copied, listed, back, files, received };
}

const refusals = (srv: RunningServer) =>
  srv.logs.filter((l) => l.msg === 'transfer' && String(l.reason ?? '').includes('TLS_REQUIRE_SESSION_REUSE'));

describe('rclone at the secure defaults', () => {
  let srv: RunningServer;
  beforeAll(async () => {
    srv = await startServer({ FTP_USERS_FILE: usersFile });
    await mkdir(path.join(srv.root, 'batch'), { recursive: true });
  });
  afterAll(() => srv.stop());

  it('with --ftp-concurrency 1 (the documented flag), uploads, lists and downloads', { timeout: 120_000 }, async () => {
    const { copied, listed, back, files, received } = await roundTrip(srv, [TEST_USER, TEST_PASSWORD], ['--ftp-concurrency', '1']);

    expect(copied.ok, copied.output).toBe(true);
    expect(listed.stdout.trim().split('\n').sort()).toEqual([...files.keys()].sort());
    expect(back.ok, back.output).toBe(true);
    expect(received).toEqual(files);
  });

  it('with its default flags, a user with reuse=optional uploads, lists and downloads', { timeout: 120_000 }, async () => {
    const { copied, listed, back, files, received } = await roundTrip(srv, EXEMPT);

    expect(copied.ok, copied.output).toBe(true);
    expect(listed.stdout.trim().split('\n').sort()).toEqual([...files.keys()].sort());
    expect(back.ok, back.output).toBe(true);
    expect(received).toEqual(files);
  });

  it('with its default flags and no exemption, data connections that resume another connection’s session get 522', { timeout: 120_000 }, async () => {
    const before = refusals(srv).length;

    const { copied } = await roundTrip(srv, [TEST_USER, TEST_PASSWORD]);

    expect(copied.ok).toBe(false);
    expect(copied.output).toContain('522');
    expect(refusals(srv).length).toBeGreaterThan(before);
  });
});

describe('rclone from an address in TLS_SESSION_REUSE_EXEMPT_CIDRS', () => {
  let srv: RunningServer;
  beforeAll(async () => {
    srv = await startServer({ TLS_SESSION_REUSE_EXEMPT_CIDRS: '127.0.0.1/32' });
  });
  afterAll(() => srv.stop());

  it('uploads, lists and downloads with its default flags', { timeout: 120_000 }, async () => {
    const { copied, listed, back, files, received } = await roundTrip(srv, [TEST_USER, TEST_PASSWORD]);

    expect(copied.ok, copied.output).toBe(true);
    expect(listed.stdout.trim().split('\n').sort()).toEqual([...files.keys()].sort());
    expect(back.ok, back.output).toBe(true);
    expect(received).toEqual(files);
    expect(refusals(srv)).toEqual([]);
  });
});
