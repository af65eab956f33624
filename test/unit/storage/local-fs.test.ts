import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalFsStorage } from '../../../src/storage/local-fs.js';
import { ROOT, type VirtualPath } from '../../../src/storage/virtual-path.js';
import { expectKind, listAll, readToEnd, sha256, upload, vp, writeChunk } from '../../support/storage.js';

let base: string;
let root: string;
let storage: LocalFsStorage;

const onDisk = (rel: string): Promise<string> => fs.readFile(path.join(root, rel), 'utf8');
const openFds = (): number => readdirSync('/proc/self/fd').length;

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
});

describe('append and resume', () => {
  it('an aborted resume leaves the file cut at the offset (in place), and one beyond the end is refused', async () => {
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

  it('keeps what was written in place when aborted', async () => {
    await fs.writeFile(path.join(root, 'log.txt'), 'a');
    const target = await storage.openWrite(vp('/log.txt'), { mode: 'append' });
    await writeChunk(target, 'b');
    await target.abort();
    expect(await onDisk('log.txt')).toBe('ab');
  });
});

describe('reading', () => {
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

  it('never renames onto a directory, though POSIX would replace an empty one', async () => {
    await fs.mkdir(path.join(root, 'empty'));
    await expectKind(storage.rename(vp('/docs/a.txt'), vp('/empty')), 'exists');
    await expectKind(storage.rename(vp('/docs'), vp('/empty')), 'exists');
    expect(await fs.readdir(path.join(root, 'docs'))).toEqual(['a.txt']);
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
});
