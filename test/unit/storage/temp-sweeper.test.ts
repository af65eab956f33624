import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/observability/logger.js';
import { safeAgeMs, sweepTempFiles, type SweepSummary } from '../../../src/storage/temp-sweeper.js';

const HOUR_MS = 3_600_000;
const OLDER_THAN = HOUR_MS;
/** Two hours ago, in seconds: older than OLDER_THAN. */
const OLD = Date.now() / 1000 - 2 * 3600;

let base: string;
let root: string;
let logs: Array<Record<string, unknown>>;

const tempName = (): string => `.ftps-upload-${randomBytes(8).toString('hex')}.tmp`;

/** Writes `content` at `rel` under `dir`, creating parents; with `old`, its mtime is two hours ago. */
async function put(rel: string, { old = true, content = 'partial upload', dir = root } = {}): Promise<string> {
  const file = path.join(dir, rel);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, content);
  if (old) await fs.utimes(file, OLD, OLD);
  return file;
}

function sweep(signal = new AbortController().signal): Promise<SweepSummary> {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const log = createLogger({ log: { level: 'debug', format: 'json' } }, sink);
  return sweepTempFiles({ root, olderThanMs: OLDER_THAN, log, signal });
}

beforeEach(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'ftps-sweep-'));
  root = path.join(base, 'root');
  await fs.mkdir(root);
  logs = [];
});

afterEach(async () => {
  // The directory the unremovable-files test locks: its files could not be cleaned up either.
  await fs.chmod(path.join(root, 'locked'), 0o700).catch(() => undefined);
  await fs.rm(base, { recursive: true, force: true });
});

describe('safeAgeMs', () => {
  it('is an hour, or four data timeouts when that is longer', () => {
    expect(safeAgeMs(60)).toBe(HOUR_MS);
    expect(safeAgeMs(900)).toBe(HOUR_MS);
    expect(safeAgeMs(1800)).toBe(2 * HOUR_MS);
  });
});

describe('sweepTempFiles', () => {
  it('removes old temporary upload files at every depth and keeps fresh ones', async () => {
    const old = [
      await put(tempName(), { content: 'a'.repeat(100) }),
      await put(`alice/${tempName()}`, { content: 'b'.repeat(20) }),
      await put(`alice/photos/2024/summer/${tempName()}`, { content: 'c'.repeat(3) }),
    ];
    const fresh = [await put(tempName(), { old: false }), await put(`alice/photos/${tempName()}`, { old: false })];
    const regular = await put('alice/photos/old-photo.jpg');

    const summary = await sweep();

    for (const file of old) expect(existsSync(file), file).toBe(false);
    for (const file of [...fresh, regular]) expect(existsSync(file), file).toBe(true);
    // root, alice, photos, 2024, summer
    expect(summary).toMatchObject({ removed: 3, bytes: 123, directories: 5, failures: 0, aborted: false });
    expect(logs).toEqual([
      expect.objectContaining({ level: 30, msg: 'temporary upload files swept', root, olderThanSeconds: 3600, ...summary }),
    ]);
  });

  it('keeps names that only look like a temporary upload file, and walks into a directory so named', async () => {
    const lookalikes = [
      '.ftps-upload-xyz.tmp',
      'x.ftps-upload-0123456789abcdef.tmp',
      '.ftps-upload-0123456789ABCDEF.tmp',
      '.ftps-upload-0123456789abcde.tmp',
      '.ftps-upload-0123456789abcdef0.tmp',
      '.ftps-upload-0123456789abcdef.tmp.bak',
      'ftps-upload-0123456789abcdef.tmp',
    ];
    for (const name of lookalikes) await put(name);
    const dirNamedLikeTemp = path.join(root, '.ftps-upload-0123456789abcdef.tmp');
    const inside = await put(`.ftps-upload-0123456789abcdef.tmp/${tempName()}`);
    await fs.utimes(dirNamedLikeTemp, OLD, OLD);

    const summary = await sweep();

    expect((await fs.readdir(root)).sort()).toEqual([...lookalikes, '.ftps-upload-0123456789abcdef.tmp'].sort());
    expect((await fs.stat(dirNamedLikeTemp)).isDirectory()).toBe(true);
    expect(existsSync(inside)).toBe(false);
    expect(summary).toMatchObject({ removed: 1, directories: 2, failures: 0 });
  });

  it('follows no symlink and removes no symlink or FIFO, whatever its name', async () => {
    const outside = path.join(base, 'outside');
    const outsideTemp = await put(tempName(), { dir: outside });
    await fs.symlink(outside, path.join(root, 'linked-dir'));
    // A link named like a temporary file, itself old, to an old temporary file outside; and a dangling one.
    const namedLink = path.join(root, tempName());
    await fs.symlink(outsideTemp, namedLink);
    await fs.lutimes(namedLink, OLD, OLD);
    const dangling = path.join(root, tempName());
    await fs.symlink(path.join(base, 'nothing-here'), dangling);
    const fifo = path.join(root, tempName());
    execFileSync('mkfifo', [fifo]);
    await fs.utimes(fifo, OLD, OLD);

    const summary = await sweep();

    expect(existsSync(outsideTemp)).toBe(true);
    for (const entry of [namedLink, dangling, fifo]) expect((await fs.lstat(entry)).isFile(), entry).toBe(false);
    expect(summary).toMatchObject({ removed: 0, directories: 1, failures: 0 });
  });

  it('does nothing when aborted before it starts, and stops mid-walk when aborted', async () => {
    const files = await Promise.all(Array.from({ length: 300 }, (_, i) => put(`d${i}/${tempName()}`)));
    const before = new AbortController();
    before.abort();
    expect(await sweep(before.signal)).toMatchObject({ removed: 0, directories: 0, aborted: true });

    const during = new AbortController();
    const running = sweep(during.signal);
    setImmediate(() => during.abort());
    const summary = await running;

    const left = files.filter((f) => existsSync(f)).length;
    expect(summary.aborted).toBe(true);
    expect(summary.removed).toBeLessThan(files.length);
    expect(left).toBe(files.length - summary.removed);
    expect(summary.directories).toBeLessThan(files.length + 1);
    expect(logs.at(-1)).toMatchObject({ msg: 'temporary upload files swept', aborted: true, removed: summary.removed });
  });

  // Root may remove files from a read-only directory, so this needs an ordinary user.
  it.skipIf(process.getuid?.() === 0)('warns for at most 10 files it cannot remove, and counts them all', async () => {
    const locked = path.join(root, 'locked');
    const stuck = await Promise.all(Array.from({ length: 12 }, () => put(`locked/${tempName()}`)));
    await fs.chmod(locked, 0o555);
    const removable = await put(tempName());

    const summary = await sweep();

    for (const file of stuck) expect(existsSync(file)).toBe(true);
    expect(existsSync(removable)).toBe(false);
    expect(summary).toMatchObject({ removed: 1, failures: 12 });
    const warnings = logs.filter((l) => l.level === 40);
    expect(warnings).toHaveLength(10);
    for (const w of warnings) {
      expect(w).toMatchObject({ msg: 'cannot remove a stale temporary upload file', err: { code: 'EACCES' } });
      expect(stuck).toContain(w.path);
    }
  });
});
