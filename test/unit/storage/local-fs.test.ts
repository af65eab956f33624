import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalFsStorage } from '../../../src/storage/local-fs.js';
import type { FileReader, FileStat, StorageBackend, StorageErrorKind, UploadTarget } from '../../../src/storage/storage.js';
import { resolveVirtualPath, ROOT, type VirtualPath } from '../../../src/storage/virtual-path.js';

let base: string;
let root: string;
let storage: LocalFsStorage;

const vp = (input: string): VirtualPath => resolveVirtualPath(ROOT, input);
const onDisk = (rel: string): Promise<string> => fs.readFile(path.join(root, rel), 'utf8');
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

async function expectKind(promise: Promise<unknown>, kind: StorageErrorKind): Promise<void> {
  await expect(promise).rejects.toMatchObject({ name: 'StorageError', kind });
}

/** Everything from `start` to the end of the file, in small reads; closes the reader. */
async function readToEnd(reader: FileReader, start = 0): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for (let position = start; ; ) {
      const buffer = Buffer.alloc(100_000);
      const bytesRead = await reader.read(buffer, position);
      if (bytesRead === 0) return Buffer.concat(chunks);
      chunks.push(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    await reader.close();
  }
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

/** Every entry of a listing. */
async function listAll(backend: StorageBackend, p: VirtualPath): Promise<FileStat[]> {
  const entries: FileStat[] = [];
  for await (const entry of await backend.list(p)) entries.push(entry);
  return entries;
}

async function upload(target: UploadTarget, data: string | Buffer): Promise<void> {
  await target.write([Buffer.from(data)]);
  await target.commit();
}

/** Writes without committing. */
const writeChunk = (target: UploadTarget, data: string): Promise<void> => target.write([Buffer.from(data)]);

const baseNameOf = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

const tempFiles = async (dir = root): Promise<string[]> =>
  (await fs.readdir(dir)).filter((name) => name.startsWith('.ftps-upload-'));

beforeEach(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'ftps-storage-'));
  root = path.join(base, 'root');
  await fs.mkdir(path.join(root, 'docs'), { recursive: true });
  await fs.writeFile(path.join(root, 'docs', 'a.txt'), 'inside');
  // A sibling whose name starts with the root's: a string-prefix check would wrongly let it in.
  await fs.mkdir(path.join(base, 'root2'));
  await fs.writeFile(path.join(base, 'root2', 'secret.txt'), 'secret');
  storage = new LocalFsStorage(root);
});

afterEach(async () => {
  await fs.rm(base, { recursive: true, force: true });
});

describe('containment', () => {
  it('clamps .. at the root instead of leaving it', async () => {
    const escaped = vp('../../root2/secret.txt');
    expect(escaped).toBe('/root2/secret.txt');
    await expectKind(storage.stat(escaped), 'not-found');

    await upload(await storage.openWrite(vp('../../../up.txt'), { mode: 'replace' }), 'data');
    expect(await onDisk('up.txt')).toBe('data');
    expect(existsSync(path.join(base, 'up.txt'))).toBe(false);
  });

  it('keeps absolute client paths under the root', async () => {
    await expectKind(storage.stat(vp('/etc/passwd')), 'not-found');
    expect((await storage.stat(vp('/docs/a.txt'))).size).toBe(6);
  });

  it('refuses a NUL byte before touching the disk', () => {
    expect(() => vp('a.txt\0.jpg')).toThrow(expect.objectContaining({ kind: 'invalid-name' }));
  });

  describe('a symlink to /etc', () => {
    const probe = `ftps-gateway-test-${randomBytes(6).toString('hex')}`;

    beforeEach(async () => {
      await fs.symlink('/etc', path.join(root, 'etc'));
      await fs.symlink('/etc/hostname', path.join(root, 'hostname'));
    });

    afterEach(async () => {
      // Only a containment bug could have created it; do not leave it behind in /etc.
      await fs.rm(path.join('/etc', probe), { force: true });
    });

    it('is refused for list, openRead and openWrite, and stat shows the link itself', async () => {
      expect(await storage.stat(vp('/etc'))).toMatchObject({ name: 'etc', type: 'symlink' });
      await expectKind(storage.stat(vp('/etc/passwd')), 'outside-root');
      await expectKind(storage.list(vp('/etc')), 'outside-root');
      await expectKind(storage.openRead(vp('/etc/passwd')), 'outside-root');
      await expectKind(storage.openRead(vp('/hostname')), 'outside-root');
      for (const mode of ['replace', 'append', 'resume'] as const) {
        await expectKind(storage.openWrite(vp(`/etc/${probe}`), { mode }), 'outside-root');
        await expectKind(storage.openWrite(vp('/hostname'), { mode }), 'outside-root');
      }
      expect(existsSync(path.join('/etc', probe))).toBe(false);
    });

    it('is refused for mkdir, setModifiedTime and openUnique', async () => {
      await expectKind(storage.mkdir(vp(`/etc/${probe}`)), 'outside-root');
      await expectKind(storage.setModifiedTime(vp('/hostname'), new Date(0)), 'outside-root');
      await expectKind(storage.openUnique(vp('/etc'), probe), 'outside-root');
      expect(existsSync(path.join('/etc', probe))).toBe(false);
    });

    it('is listed as a link, not with the outside target', async () => {
      const entries = await listAll(storage, ROOT);
      expect(entries.find((e) => e.name === 'etc')?.type).toBe('symlink');
      expect(entries.find((e) => e.name === 'hostname')?.type).toBe('symlink');
    });
  });

  it('does not reach a sibling directory through a symlink', async () => {
    await fs.symlink('../root2', path.join(root, 'sneaky'));
    await fs.symlink(path.join(base, 'root2', 'secret.txt'), path.join(root, 'secret-link'));
    await expectKind(storage.list(vp('/sneaky')), 'outside-root');
    await expectKind(storage.openRead(vp('/sneaky/secret.txt')), 'outside-root');
    await expectKind(storage.openRead(vp('/secret-link')), 'outside-root');
    await expectKind(storage.openWrite(vp('/secret-link'), { mode: 'append' }), 'outside-root');
    await expectKind(storage.rename(vp('/sneaky/secret.txt'), vp('/stolen.txt')), 'outside-root');
    await expectKind(storage.remove(vp('/sneaky/secret.txt'), 'file'), 'outside-root');
    expect(await fs.readFile(path.join(base, 'root2', 'secret.txt'), 'utf8')).toBe('secret');
  });

  it('follows symlinks that stay inside', async () => {
    await fs.symlink('docs', path.join(root, 'docs-link'));
    await fs.symlink('docs/a.txt', path.join(root, 'a-link'));

    expect((await listAll(storage, vp('/docs-link'))).map((e) => e.name)).toEqual(['a.txt']);
    expect((await readToEnd(await storage.openRead(vp('/a-link')))).toString()).toBe('inside');
    const listed = await listAll(storage, ROOT);
    expect(listed.find((e) => e.name === 'docs-link')).toMatchObject({ type: 'dir' });
    expect(listed.find((e) => e.name === 'a-link')).toMatchObject({ type: 'file', size: 6 });
    expect(await storage.stat(vp('/a-link'))).toMatchObject({ name: 'a-link', type: 'file', size: 6 });

    // Writing through the link replaces the file it points to and keeps the link.
    await upload(await storage.openWrite(vp('/a-link'), { mode: 'replace' }), 'rewritten');
    expect(await onDisk('docs/a.txt')).toBe('rewritten');
    expect((await fs.lstat(path.join(root, 'a-link'))).isSymbolicLink()).toBe(true);
  });

  it('works when the root itself is reached through a symlink', async () => {
    const linkedRoot = path.join(base, 'home-link');
    await fs.symlink(root, linkedRoot);
    const viaLink = new LocalFsStorage(linkedRoot);
    expect((await listAll(viaLink, vp('/docs'))).map((e) => e.name)).toEqual(['a.txt']);
  });

  it('never creates the target of a dangling symlink that leads out', async () => {
    const outsideTarget = path.join(base, 'root2', 'planted.txt');
    await fs.symlink(outsideTarget, path.join(root, 'dangling'));

    expect(await storage.stat(vp('/dangling'))).toMatchObject({ name: 'dangling', type: 'symlink' });
    expect((await listAll(storage, ROOT)).find((e) => e.name === 'dangling')?.type).toBe('symlink');
    await expectKind(storage.openRead(vp('/dangling')), 'outside-root');
    for (const mode of ['replace', 'append', 'resume'] as const) {
      await expectKind(storage.openWrite(vp('/dangling'), { mode }), 'outside-root');
    }
    expect(existsSync(outsideTarget)).toBe(false);
    // The link itself can still be removed.
    await storage.remove(vp('/dangling'), 'file');
    expect(existsSync(path.join(root, 'dangling'))).toBe(false);
  });

  it('creates the target of a dangling symlink that stays inside', async () => {
    await fs.symlink('docs/later.txt', path.join(root, 'later'));
    await expectKind(storage.openRead(vp('/later')), 'not-found');
    await upload(await storage.openWrite(vp('/later'), { mode: 'replace' }), 'now');
    expect(await onDisk('docs/later.txt')).toBe('now');
    expect((await fs.lstat(path.join(root, 'later'))).isSymbolicLink()).toBe(true);
  });

  it('resolves relative links with .. physically, never above the home', async () => {
    await fs.mkdir(path.join(root, 'a', 'b'), { recursive: true });
    await fs.symlink('../../docs', path.join(root, 'a', 'b', 'up'));
    await fs.symlink('..', path.join(root, 'a', 'parent'));
    await fs.symlink('../..', path.join(root, 'a', 'too-far'));
    await fs.symlink('/', path.join(root, 'a', 'slash'));
    expect((await readToEnd(await storage.openRead(vp('/a/b/up/a.txt')))).toString()).toBe('inside');
    expect((await listAll(storage, vp('/a/parent'))).map((e) => e.name).sort()).toEqual(['a', 'docs']);
    expect((await storage.stat(vp('/a/parent/docs'))).type).toBe('dir');
    await expectKind(listAll(storage, vp('/a/too-far')), 'outside-root');
    await expectKind(storage.openRead(vp('/a/too-far/root2/secret.txt')), 'outside-root');
    // An absolute link to "/" means the machine's root, not the home's.
    await expectKind(listAll(storage, vp('/a/slash')), 'outside-root');
  });

  it('follows an absolute link that stays inside the home', async () => {
    await fs.symlink(path.join(root, 'docs', 'a.txt'), path.join(root, 'abs'));
    expect((await readToEnd(await storage.openRead(vp('/abs')))).toString()).toBe('inside');
  });

  it('refuses a loop of links', async () => {
    await fs.symlink('loop2', path.join(root, 'loop1'));
    await fs.symlink('loop1', path.join(root, 'loop2'));
    await expectKind(storage.openRead(vp('/loop1')), 'outside-root');
    await expectKind(listAll(storage, vp('/loop1')), 'outside-root');
    expect((await storage.stat(vp('/loop1'))).type).toBe('symlink');
  });

  it('with FOLLOW_SYMLINKS=false, refuses every symlink but lists and removes them as links', async () => {
    const strict = new LocalFsStorage(root, { followSymlinks: false, fsync: true });
    await fs.symlink('docs', path.join(root, 'docs-link'));
    await fs.symlink('docs/a.txt', path.join(root, 'a-link'));
    await expectKind(listAll(strict, vp('/docs-link')), 'outside-root');
    await expectKind(strict.openRead(vp('/a-link')), 'outside-root');
    await expectKind(strict.openRead(vp('/docs-link/a.txt')), 'outside-root');
    await expectKind(strict.openWrite(vp('/a-link'), { mode: 'replace' }), 'outside-root');
    const listed = await listAll(strict, ROOT);
    expect(listed.find((e) => e.name === 'docs-link')?.type).toBe('symlink');
    await strict.remove(vp('/a-link'), 'file');
    expect(await onDisk('docs/a.txt')).toBe('inside');
  });

  it('removes a link, never what it points to', async () => {
    await fs.symlink(path.join(base, 'root2', 'secret.txt'), path.join(root, 'link'));
    await storage.remove(vp('/link'), 'file');
    expect(existsSync(path.join(root, 'link'))).toBe(false);
    expect(await fs.readFile(path.join(base, 'root2', 'secret.txt'), 'utf8')).toBe('secret');
  });
});

describe('atomic replace', () => {
  beforeEach(async () => {
    await fs.writeFile(path.join(root, 'f.txt'), 'old content');
  });

  it('makes the new content visible on commit, with no temporary file left', async () => {
    await fs.chmod(path.join(root, 'f.txt'), 0o600);
    const data = randomBytes(3 * 1024 * 1024 + 17);
    await upload(await storage.openWrite(vp('/f.txt'), { mode: 'replace' }), data);
    expect(sha256(await fs.readFile(path.join(root, 'f.txt')))).toBe(sha256(data));
    expect((await fs.stat(path.join(root, 'f.txt'))).mode & 0o777).toBe(0o600);
    expect(await tempFiles()).toEqual([]);
  });

  it('hides the temporary file from list() while the upload runs', async () => {
    const target = await storage.openWrite(vp('/f.txt'), { mode: 'replace' });
    await writeChunk(target, 'partial');
    const temps = await tempFiles();
    expect(temps).toHaveLength(1);
    expect(temps[0]).toMatch(/^\.ftps-upload-[0-9a-f]{16}\.tmp$/);
    expect(await fs.readFile(path.join(root, temps[0] ?? ''), 'utf8')).toBe('partial');
    expect((await listAll(storage, ROOT)).map((e) => e.name).sort()).toEqual(['docs', 'f.txt']);
    expect(await onDisk('f.txt')).toBe('old content');
    await target.abort();
  });

  it('keeps the old content after abort()', async () => {
    const target = await storage.openWrite(vp('/f.txt'), { mode: 'replace' });
    await writeChunk(target, 'half of the new');
    await target.abort();
    expect(await onDisk('f.txt')).toBe('old content');
    expect(await tempFiles()).toEqual([]);
  });

  it('writes many chunks in one call, in order, and refuses a commit after abort', async () => {
    const parts = Array.from({ length: 300 }, (_, i) => Buffer.from(`part ${i};`));
    const target = await storage.openWrite(vp('/f.txt'), { mode: 'replace' });
    await target.write(parts.slice(0, 150));
    await target.write(parts.slice(150));
    await target.commit();
    expect(await onDisk('f.txt')).toBe(Buffer.concat(parts).toString());
    const aborted = await storage.openWrite(vp('/f.txt'), { mode: 'replace' });
    await writeChunk(aborted, 'never');
    await aborted.abort();
    await expectKind(aborted.commit(), 'io');
    expect(await onDisk('f.txt')).toBe(Buffer.concat(parts).toString());
    expect(await tempFiles()).toEqual([]);
  });

  it('creates a file that did not exist, in a subdirectory', async () => {
    await upload(await storage.openWrite(vp('/docs/new.bin'), { mode: 'replace' }), 'fresh');
    expect(await onDisk('docs/new.bin')).toBe('fresh');
    expect(await tempFiles(path.join(root, 'docs'))).toEqual([]);
  });

  it('refuses a directory or a missing parent up front', async () => {
    await expectKind(storage.openWrite(vp('/docs'), { mode: 'replace' }), 'is-a-directory');
    await expectKind(storage.openWrite(vp('/nope/x.txt'), { mode: 'replace' }), 'not-found');
    expect(await tempFiles()).toEqual([]);
  });
});

describe('append and resume', () => {
  it('appends to the end of an existing file', async () => {
    await fs.writeFile(path.join(root, 'log.txt'), 'hello');
    await upload(await storage.openWrite(vp('/log.txt'), { mode: 'append' }), ' world');
    expect(await onDisk('log.txt')).toBe('hello world');
  });

  it('creates the file when appending to nothing', async () => {
    await upload(await storage.openWrite(vp('/new.txt'), { mode: 'append' }), 'first');
    expect(await onDisk('new.txt')).toBe('first');
  });

  it('resumes at the offset and drops the old tail', async () => {
    await fs.writeFile(path.join(root, 'part.bin'), '0123456789');
    await upload(await storage.openWrite(vp('/part.bin'), { mode: 'resume', start: 4 }), 'AB');
    expect(await onDisk('part.bin')).toBe('0123AB');
  });

  it('tells the size the upload starts from, and refuses a resume beyond the end', async () => {
    await fs.writeFile(path.join(root, 'ten.bin'), '0123456789');
    const append = await storage.openWrite(vp('/ten.bin'), { mode: 'append' });
    expect(append.startSize).toBe(10);
    await append.abort();
    const resume = await storage.openWrite(vp('/ten.bin'), { mode: 'resume', start: 4 });
    expect(resume.startSize).toBe(4);
    await resume.abort();
    await expectKind(storage.openWrite(vp('/ten.bin'), { mode: 'resume', start: 11 }), 'invalid-offset');
    expect((await fs.stat(path.join(root, 'ten.bin'))).size).toBe(4);
  });

  it('resumes into a file that does not exist yet', async () => {
    await upload(await storage.openWrite(vp('/fresh.bin'), { mode: 'resume', start: 0 }), 'xyz');
    expect(await onDisk('fresh.bin')).toBe('xyz');
  });

  it('keeps what was written in place when aborted', async () => {
    await fs.writeFile(path.join(root, 'log.txt'), 'a');
    const target = await storage.openWrite(vp('/log.txt'), { mode: 'append' });
    await writeChunk(target, 'b');
    await target.abort();
    expect(await onDisk('log.txt')).toBe('ab');
  });
});

describe('reading', () => {
  it('reads the whole file, or from an offset', async () => {
    const data = randomBytes(1024 * 1024 + 3);
    await fs.writeFile(path.join(root, 'big.bin'), data);
    expect(sha256(await readToEnd(await storage.openRead(vp('/big.bin'))))).toBe(sha256(data));
    const tail = await readToEnd(await storage.openRead(vp('/big.bin')), 1024 * 1024);
    expect(tail).toEqual(data.subarray(1024 * 1024));
  });

  it('reads at any position: a short read at the end, 0 bytes at and past it', async () => {
    await fs.writeFile(path.join(root, 'ten.txt'), '0123456789');
    const reader = await storage.openRead(vp('/ten.txt'));
    const buffer = Buffer.alloc(4);
    expect(await reader.read(buffer, 6)).toBe(4);
    expect(buffer.toString()).toBe('6789');
    expect(await reader.read(buffer, 2)).toBe(4);
    expect(buffer.toString()).toBe('2345');
    expect(await reader.read(buffer, 8)).toBe(2);
    expect(buffer.subarray(0, 2).toString()).toBe('89');
    expect(await reader.read(buffer, 10)).toBe(0);
    expect(await reader.read(buffer, 1000)).toBe(0);
    await reader.close();
  });

  it('keeps reading a file deleted after opening, and sees a truncation as the end of the file', async () => {
    await fs.writeFile(path.join(root, 'gone.txt'), 'still here');
    const deleted = await storage.openRead(vp('/gone.txt'));
    await fs.unlink(path.join(root, 'gone.txt'));
    expect((await readToEnd(deleted)).toString()).toBe('still here');

    await fs.writeFile(path.join(root, 'short.txt'), '0123456789');
    const truncated = await storage.openRead(vp('/short.txt'));
    await fs.truncate(path.join(root, 'short.txt'), 3);
    expect((await readToEnd(truncated)).toString()).toBe('012');
  });

  it('rejects with a StorageError once closed, and closing twice is harmless', async () => {
    const reader = await storage.openRead(vp('/docs/a.txt'));
    await reader.close();
    await reader.close();
    await expectKind(reader.read(Buffer.alloc(10), 0), 'io');
  });

  it('leaves no file descriptor open after many opens, reads and refusals', async () => {
    await fs.writeFile(path.join(root, 'fd.bin'), randomBytes(10_000));
    const before = openFds();
    for (let i = 0; i < 200; i++) {
      expect(await readToEnd(await storage.openRead(vp('/fd.bin')), i)).toHaveLength(10_000 - i);
      // Opened, found to be a directory, closed again.
      await expectKind(storage.openRead(vp('/docs')), 'is-a-directory');
    }
    expect(openFds()).toBe(before);
  });

  it('refuses directories and special files without blocking', async () => {
    await expectKind(storage.openRead(vp('/docs')), 'is-a-directory');
    execFileSync('mkfifo', [path.join(root, 'pipe')]);
    await expectKind(storage.openRead(vp('/pipe')), 'permission');
    await expectKind(storage.openWrite(vp('/pipe'), { mode: 'resume' }), 'permission');
    // O_WRONLY on a FIFO without a reader fails with ENXIO at once instead of waiting for one.
    await expectKind(storage.openWrite(vp('/pipe'), { mode: 'append' }), 'io');
    expect((await listAll(storage, ROOT)).find((e) => e.name === 'pipe')?.type).toBe('other');
  });
});

describe('directory operations and error mapping', () => {
  it('stats and lists with real values', async () => {
    const mtime = new Date('2024-03-05T06:07:08Z');
    await fs.utimes(path.join(root, 'docs', 'a.txt'), mtime, mtime);
    await fs.chmod(path.join(root, 'docs', 'a.txt'), 0o640);
    expect(await listAll(storage, vp('/docs'))).toEqual([{ name: 'a.txt', type: 'file', size: 6, mtime, mode: 0o640 }]);
    expect(await storage.stat(ROOT)).toMatchObject({ name: '/', type: 'dir' });
  });

  it('maps errno codes to kinds', async () => {
    await fs.mkdir(path.join(root, 'full'));
    await fs.writeFile(path.join(root, 'full', 'x'), '');
    await expectKind(storage.stat(vp('/missing')), 'not-found');
    await expectKind(storage.list(vp('/docs/a.txt')), 'not-a-directory');
    await expectKind(storage.stat(vp('/docs/a.txt/deeper')), 'not-a-directory');
    await expectKind(storage.mkdir(vp('/docs')), 'exists');
    await expectKind(storage.mkdir(vp('/no/such/parent')), 'not-found');
    await expectKind(storage.remove(vp('/full'), 'dir'), 'not-empty');
    await expectKind(storage.remove(vp('/docs/a.txt'), 'dir'), 'not-a-directory');
    await expectKind(storage.remove(vp('/docs'), 'file'), 'is-a-directory');
    await expectKind(storage.remove(vp('/missing'), 'file'), 'not-found');
  });

  it('never lets the root be removed or renamed', async () => {
    await expectKind(storage.remove(ROOT, 'dir'), 'permission');
    await expectKind(storage.rename(ROOT, vp('/x')), 'permission');
    await expectKind(storage.rename(vp('/docs'), ROOT), 'permission');
    expect(existsSync(root)).toBe(true);
  });

  it('creates and removes directories', async () => {
    await storage.mkdir(vp('/new'));
    expect((await fs.stat(path.join(root, 'new'))).isDirectory()).toBe(true);
    await storage.remove(vp('/new'), 'dir');
    expect(existsSync(path.join(root, 'new'))).toBe(false);
  });

  it('renames files, replaces files, but never lands on a directory', async () => {
    await fs.writeFile(path.join(root, 'b.txt'), 'bee');
    await storage.rename(vp('/docs/a.txt'), vp('/moved.txt'));
    expect(await onDisk('moved.txt')).toBe('inside');
    await storage.rename(vp('/b.txt'), vp('/moved.txt'));
    expect(await onDisk('moved.txt')).toBe('bee');

    await fs.mkdir(path.join(root, 'empty'));
    await expectKind(storage.rename(vp('/moved.txt'), vp('/empty')), 'exists');
    await expectKind(storage.rename(vp('/docs'), vp('/empty')), 'exists');
    expect(await fs.readdir(path.join(root, 'docs'))).toEqual([]);
    await expectKind(storage.rename(vp('/missing'), vp('/x')), 'not-found');
  });

  it('sets the modification time', async () => {
    const time = new Date('2020-01-02T03:04:05Z');
    await storage.setModifiedTime(vp('/docs/a.txt'), time);
    expect((await fs.stat(path.join(root, 'docs', 'a.txt'))).mtime).toEqual(time);
    await expectKind(storage.setModifiedTime(vp('/missing'), time), 'not-found');
  });

  it('reserves unique names that keep the extension, atomically', async () => {
    const unique = async (dir: VirtualPath, hint: string) => (await storage.openUnique(dir, hint));
    const first = await unique(ROOT, 'report.txt');
    expect(first.path).toBe('/report.txt');
    // Reserved before any byte arrives: a second upload cannot get the same name.
    const second = await unique(ROOT, 'report.txt');
    expect(second.path).toBe('/report.1.txt');
    await upload(second.target, 'two');
    await upload(first.target, 'one');
    expect([await onDisk('report.txt'), await onDisk('report.1.txt')]).toEqual(['one', 'two']);
    expect((await unique(vp('/docs'), 'a.txt')).path).toBe('/docs/a.1.txt');
    await expectKind(storage.openUnique(ROOT, '../escape'), 'invalid-name');
    await expectKind(storage.openUnique(vp('/missing'), 'x'), 'not-found');
  });

  it('frees a reserved unique name when its upload is aborted', async () => {
    const { path: name, target } = await storage.openUnique(ROOT, 'gone.txt');
    await writeChunk(target, 'partial');
    await target.abort();
    expect(existsSync(path.join(root, baseNameOf(name)))).toBe(false);
    expect(await tempFiles()).toEqual([]);
  });

  it('gives 20 concurrent reservations 20 different names', async () => {
    const reserved = await Promise.all(Array.from({ length: 20 }, () => storage.openUnique(ROOT, 'same.bin')));
    expect(new Set(reserved.map((r) => r.path)).size).toBe(20);
    await Promise.all(reserved.map((r) => r.target.abort()));
  });
});
