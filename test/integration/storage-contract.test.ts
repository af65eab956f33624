/*
 * The storage contract: the same tests against both backends, driven as the commands drive them. `local` is
 * LocalFsStorage on a temporary directory; `s3` is the S3 backend on a fresh bucket of the run's Ceph RGW
 * (test/support/s3.ts), with a key prefix for the tenant and one for the home. What each test arranges or checks
 * behind the backend's back goes through a UserTree (files on disk, or keys in the bucket), so one body fits both.
 *
 * Where S3 refuses by design (renaming a directory, setting a modification time) or cannot tell (free space), the
 * test says what each backend does. Cases only the local disk can have (symlinks, FIFOs, descriptors, permission
 * bits) stay in test/unit/storage/local-fs.test.ts; keys only a bucket can hold are at the end of this file.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LocalFsStorage } from '../../src/storage/local-fs.js';
import { Bucket } from '../../src/storage/s3/bucket.js';
import { S3Storage } from '../../src/storage/s3/s3-storage.js';
import type { StorageBackend } from '../../src/storage/storage.js';
import { ROOT } from '../../src/storage/virtual-path.js';
import { s3TestBucket, s3Tree, skipS3, TEST_PART_SIZE, type S3TestBucket } from '../support/s3.js';
import { expectKind, listAll, readToEnd, sha256, upload, vp, writeChunk } from '../support/storage.js';
import { localTree, type BackendName, type UserTree } from '../support/user-tree.js';

/** A home to test in, and a neighbour whose name starts with the home's (`u1`, `u1x`): it must stay out of reach. */
interface Subject {
  readonly storage: StorageBackend;
  readonly tree: UserTree;
  readonly neighbour: UserTree;
}

interface BackendUnderTest {
  readonly backend: BackendName;
  readonly skip: boolean;
  /** Once per describe: what the homes share (a temporary directory, a bucket). */
  setUp(): Promise<{ home(n: number): Promise<Subject>; tearDown(): Promise<void> }>;
}

const local: BackendUnderTest = {
  backend: 'local',
  skip: false,
  async setUp() {
    const base = await mkdtemp(path.join(os.tmpdir(), 'ftps-contract-'));
    return {
      async home(n) {
        const [home, neighbour] = [path.join(base, `u${n}`), path.join(base, `u${n}x`)];
        await mkdir(home);
        await mkdir(neighbour);
        return { storage: new LocalFsStorage(home), tree: localTree(home), neighbour: localTree(neighbour) };
      },
      tearDown: () => rm(base, { recursive: true, force: true }),
    };
  },
};

const TENANT = 'tenant/';

const s3: BackendUnderTest = {
  backend: 's3',
  skip: skipS3,
  async setUp() {
    const bucket: S3TestBucket = await s3TestBucket({ prefix: TENANT });
    const store = new Bucket(bucket.settings);
    const treeAt = (home: string) => s3Tree(bucket.client, bucket.settings.bucket, `${TENANT}${home}/`);
    return {
      home: (n) =>
        Promise.resolve({ storage: new S3Storage(store, `${TENANT}u${n}/`, TEST_PART_SIZE), tree: treeAt(`u${n}`), neighbour: treeAt(`u${n}x`) }),
      tearDown: () => Promise.resolve(store.destroy()),
    };
  },
};

const MiB = 1024 * 1024;
const seconds = (d: Date): number => Math.floor(d.getTime() / 1000);

describe.each([local, s3])('storage contract: $backend', ({ backend, skip, setUp }) => {
  let shared: Awaited<ReturnType<BackendUnderTest['setUp']>>;
  let storage: StorageBackend;
  let tree: UserTree;
  let neighbour: UserTree;
  let homes = 0;

  describe.skipIf(skip)(skip ? 'needs the RGW container (SKIP_CONTAINER_TESTS=1)' : 'a fresh home per test', () => {
    beforeAll(async () => {
      shared = await setUp();
    }, 600_000);
    afterAll(() => shared?.tearDown());

    beforeEach(async () => {
      ({ storage, tree, neighbour } = await shared.home(++homes));
      await tree.put('docs/a.txt', 'inside');
      await neighbour.put('secret.txt', 'secret');
    });
    afterEach(async () => {
      // Whatever a test did, no upload is left half-done.
      expect(await tree.leftovers()).toEqual([]);
    });

    describe('stat and list', () => {
      it('stats files, directories and the root with real values', async () => {
        expect(await storage.stat(vp('/docs/a.txt'))).toMatchObject({ name: 'a.txt', type: 'file', size: 6 });
        expect((await storage.stat(vp('/docs/a.txt'))).mtime).toEqual(await tree.mtime('docs/a.txt'));
        expect(await storage.stat(vp('/docs'))).toMatchObject({ name: 'docs', type: 'dir' });
        expect(await storage.stat(ROOT)).toMatchObject({ name: '/', type: 'dir' });
      });

      it('lists files with sizes and directories, also one that exists only by what is in it', async () => {
        await tree.put('list/three.txt', 'abc');
        await tree.mkdir('list/empty');
        await tree.put('list/implicit/deeper/x.bin', 'x');
        const entries = await listAll(storage, vp('/list'));
        expect(entries.map((e) => [e.name, e.type]).sort()).toEqual([
          ['empty', 'dir'],
          ['implicit', 'dir'],
          ['three.txt', 'file'],
        ]);
        const three = entries.find((e) => e.name === 'three.txt');
        expect(three?.size).toBe(3);
        // To the second: S3 listings give milliseconds, HEAD (and so stat) whole seconds.
        expect(seconds(three!.mtime)).toBe(seconds(await tree.mtime('list/three.txt')));
        expect(await storage.stat(vp('/list/implicit/deeper'))).toMatchObject({ type: 'dir' });
        expect(await listAll(storage, vp('/list/empty'))).toEqual([]);
      });

      it('refuses what is not there, and a file as a directory, before any entry', async () => {
        await expectKind(storage.stat(vp('/missing')), 'not-found');
        await expectKind(storage.list(vp('/missing')), 'not-found');
        await expectKind(storage.stat(vp('/docs/missing')), 'not-found');
        // A file in the middle of a path: ENOTDIR on a disk, simply no such key in a bucket; 550 either way.
        await expectKind(storage.stat(vp('/docs/a.txt/deeper')), ['not-a-directory', 'not-found']);
        await expectKind(storage.list(vp('/docs/a.txt')), ['not-a-directory', 'not-found']);
      });

      it('leaves out names no client could use: the server reserved prefix, CR or LF', async () => {
        await tree.put('hide/ok.txt', 'ok');
        await tree.put('hide/.ftps-upload-0123456789abcdef.tmp', 'someone else’s upload');
        await tree.put('hide/bad\r\nname', 'x');
        expect((await listAll(storage, vp('/hide'))).map((e) => e.name)).toEqual(['ok.txt']);
        await tree.remove('hide/.ftps-upload-0123456789abcdef.tmp');
      });

      it('streams a directory of 1,050 entries (two ListObjectsV2 pages) completely, each once; closing early is fine', async () => {
        const names = Array.from({ length: 1_050 }, (_, i) => `f${String(i).padStart(4, '0')}`);
        await inParallel(names, 32, (name) => (Number(name.slice(1)) % 500 === 0 ? tree.mkdir(`many/${name}`) : tree.put(`many/${name}`, name)));
        const listed = await listAll(storage, vp('/many'));
        expect(listed).toHaveLength(names.length);
        expect(listed.map((e) => e.name).sort()).toEqual(names);
        expect(listed.filter((e) => e.type === 'dir').map((e) => e.name).sort()).toEqual(['f0000', 'f0500', 'f1000']);

        const listing = await storage.list(vp('/many'));
        let seen = 0;
        for await (const entry of listing) if (entry.name && ++seen === 10) break;
        await listing.close();
        expect(seen).toBe(10);
      }, 60_000);
    });

    describe('reading', () => {
      it('reads the whole file, from an offset, and at any position', async () => {
        const data = randomBytes(MiB + 3);
        await tree.put('big.bin', data);
        expect(sha256(await readToEnd(await storage.openRead(vp('/big.bin'))))).toBe(sha256(data));
        expect(await readToEnd(await storage.openRead(vp('/big.bin')), MiB)).toEqual(data.subarray(MiB));

        await tree.put('ten.txt', '0123456789');
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

      it('reads an empty file as 0 bytes', async () => {
        await tree.put('empty.bin', '');
        expect(await readToEnd(await storage.openRead(vp('/empty.bin')))).toEqual(Buffer.alloc(0));
      });

      it('refuses a directory and a missing file; a closed reader rejects, closing twice is harmless', async () => {
        await expectKind(storage.openRead(vp('/docs')), ['is-a-directory', 'not-found']);
        await expectKind(storage.openRead(vp('/missing')), 'not-found');
        const reader = await storage.openRead(vp('/docs/a.txt'));
        await reader.close();
        await reader.close();
        await expectKind(reader.read(Buffer.alloc(10), 0), 'io');
      });
    });

    describe('replace uploads', () => {
      beforeEach(() => tree.put('f.txt', 'old content'));

      it('creates a new file in a subdirectory, visible only once committed', async () => {
        const target = await storage.openWrite(vp('/docs/new.bin'), { mode: 'replace' });
        expect(target.startSize).toBe(0);
        await writeChunk(target, 'fresh');
        expect(await tree.exists('docs/new.bin')).toBe(false);
        await expectKind(storage.stat(vp('/docs/new.bin')), 'not-found');
        expect((await listAll(storage, vp('/docs'))).map((e) => e.name)).toEqual(['a.txt']);
        await target.commit();
        expect((await tree.read('docs/new.bin')).toString()).toBe('fresh');
        expect(await tree.names('docs')).toEqual(['a.txt', 'new.bin']);
      });

      it('replaces an existing file in one step: the old content until the commit, the new one after', async () => {
        const target = await storage.openWrite(vp('/f.txt'), { mode: 'replace' });
        await writeChunk(target, 'partial');
        expect((await tree.read('f.txt')).toString()).toBe('old content');
        expect(await storage.stat(vp('/f.txt'))).toMatchObject({ size: 11 });
        expect((await listAll(storage, ROOT)).map((e) => e.name).sort()).toEqual(['docs', 'f.txt']);
        await writeChunk(target, ' and the rest');
        await target.commit();
        expect((await tree.read('f.txt')).toString()).toBe('partial and the rest');
      });

      it('writes many chunks given in one call, in order', async () => {
        const parts = Array.from({ length: 300 }, (_, i) => Buffer.from(`part ${i};`));
        const target = await storage.openWrite(vp('/f.txt'), { mode: 'replace' });
        await target.write(parts.slice(0, 150));
        await target.write(parts.slice(150));
        await target.commit();
        expect(await tree.read('f.txt')).toEqual(Buffer.concat(parts));
      });

      it('stores an empty file', async () => {
        await (await storage.openWrite(vp('/zero.bin'), { mode: 'replace' })).commit();
        expect(await storage.stat(vp('/zero.bin'))).toMatchObject({ type: 'file', size: 0 });
        expect(await tree.read('zero.bin')).toEqual(Buffer.alloc(0));
      });

      it('stores 11 MiB written in 64 KiB chunks (a multipart upload on S3) intact', async () => {
        const data = randomBytes(2 * TEST_PART_SIZE + MiB);
        await upload(await storage.openWrite(vp('/f.txt'), { mode: 'replace' }), data);
        expect(sha256(await tree.read('f.txt'))).toBe(sha256(data));
        expect(await storage.stat(vp('/f.txt'))).toMatchObject({ size: data.length });
      });

      it('keeps the old content after abort(), and refuses a commit after it', async () => {
        const target = await storage.openWrite(vp('/f.txt'), { mode: 'replace' });
        await writeChunk(target, 'half of the new');
        await target.abort();
        await expectKind(target.commit(), 'io');
        expect((await tree.read('f.txt')).toString()).toBe('old content');
      });

      it('abuse: an upload cut after whole parts were stored never replaces the old file and leaves no upload behind', async () => {
        const target = await storage.openWrite(vp('/f.txt'), { mode: 'replace' });
        const data = randomBytes(TEST_PART_SIZE + MiB);
        for (let at = 0; at < data.length; at += 256 * 1024) await target.write([data.subarray(at, at + 256 * 1024)]);
        // The connection breaks here: the session aborts what it had.
        await target.abort();
        expect((await tree.read('f.txt')).toString()).toBe('old content');
        expect(await tree.leftovers()).toEqual([]);
        // A new file cut the same way is not there at all.
        const fresh = await storage.openWrite(vp('/never.bin'), { mode: 'replace' });
        await fresh.write([data]);
        await fresh.abort();
        expect(await tree.exists('never.bin')).toBe(false);
      });

      it('abuse: an abort() that comes while a write() is still under way (as when the data connection fails) leaves nothing', async () => {
        const target = await storage.openWrite(vp('/f.txt'), { mode: 'replace' });
        // A whole part at once: on S3 this write creates the multipart upload, and abort() comes while it does.
        const writing = target.write([randomBytes(TEST_PART_SIZE + 1)]);
        await target.abort();
        await writing.catch(() => undefined);
        expect((await tree.read('f.txt')).toString()).toBe('old content');
        expect(await tree.leftovers()).toEqual([]);
      });

      it('refuses a directory as the target, and a missing parent directory', async () => {
        await expectKind(storage.openWrite(vp('/docs'), { mode: 'replace' }), 'is-a-directory');
        await expectKind(storage.openWrite(vp('/nope/x.txt'), { mode: 'replace' }), 'not-found');
        expect(await tree.exists('nope')).toBe(false);
      });
    });

    describe('append and resume', () => {
      it('appends to the end of a file, and creates one that was not there', async () => {
        await tree.put('log.txt', 'hello');
        const target = await storage.openWrite(vp('/log.txt'), { mode: 'append' });
        expect(target.startSize).toBe(5);
        await upload(target, ' world');
        expect((await tree.read('log.txt')).toString()).toBe('hello world');
        await upload(await storage.openWrite(vp('/new.txt'), { mode: 'append' }), 'first');
        expect((await tree.read('new.txt')).toString()).toBe('first');
      });

      it('resumes at the offset dropping the old tail; refuses a resume beyond the end; resumes into nothing at 0', async () => {
        await tree.put('part.bin', '0123456789');
        const target = await storage.openWrite(vp('/part.bin'), { mode: 'resume', start: 4 });
        expect(target.startSize).toBe(4);
        await upload(target, 'AB');
        expect((await tree.read('part.bin')).toString()).toBe('0123AB');
        await expectKind(storage.openWrite(vp('/part.bin'), { mode: 'resume', start: 7 }), 'invalid-offset');
        expect((await tree.read('part.bin')).toString()).toBe('0123AB');
        await upload(await storage.openWrite(vp('/fresh.bin'), { mode: 'resume', start: 0 }), 'xyz');
        expect((await tree.read('fresh.bin')).toString()).toBe('xyz');
      });

      it('appends to and resumes a file larger than a part (server-side copy of the kept bytes on S3)', async () => {
        const old = randomBytes(TEST_PART_SIZE + MiB);
        const more = randomBytes(300_000);
        await tree.put('large.bin', old);
        await upload(await storage.openWrite(vp('/large.bin'), { mode: 'append' }), more);
        expect(sha256(await tree.read('large.bin'))).toBe(sha256(Buffer.concat([old, more])));

        for (const start of [TEST_PART_SIZE + 17, 100]) {
          await tree.put('large.bin', old);
          await upload(await storage.openWrite(vp('/large.bin'), { mode: 'resume', start }), more);
          expect(sha256(await tree.read('large.bin')), `resumed at ${start}`).toBe(sha256(Buffer.concat([old.subarray(0, start), more])));
        }
      });
    });

    describe('directories, removal, renaming', () => {
      it('creates directories; refuses one that exists (also as a file) or whose parent is missing', async () => {
        await storage.mkdir(vp('/new'));
        expect(await storage.stat(vp('/new'))).toMatchObject({ type: 'dir' });
        expect(await tree.exists('new')).toBe(true);
        await storage.mkdir(vp('/new/inner'));
        expect(await listAll(storage, vp('/new'))).toMatchObject([{ name: 'inner', type: 'dir' }]);
        await expectKind(storage.mkdir(vp('/docs')), 'exists');
        await expectKind(storage.mkdir(vp('/docs/a.txt')), 'exists');
        await expectKind(storage.mkdir(vp('/no/such/parent')), 'not-found');
      });

      it('removes files and empty directories; refuses a non-empty one, a missing one, the wrong kind and the root', async () => {
        await tree.mkdir('empty');
        await tree.put('full/x', '');
        await storage.remove(vp('/docs/a.txt'), 'file');
        expect(await tree.exists('docs/a.txt')).toBe(false);
        await storage.remove(vp('/empty'), 'dir');
        expect(await tree.exists('empty')).toBe(false);
        await expectKind(storage.remove(vp('/full'), 'dir'), 'not-empty');
        expect(await tree.exists('full/x')).toBe(true);
        await expectKind(storage.remove(vp('/missing'), 'file'), 'not-found');
        await expectKind(storage.remove(vp('/missing'), 'dir'), 'not-found');
        await expectKind(storage.remove(vp('/full'), 'file'), 'is-a-directory');
        await expectKind(storage.remove(vp('/full/x'), 'dir'), ['not-a-directory', 'not-found']);
        await expectKind(storage.remove(ROOT, 'dir'), 'permission');
        expect(await tree.exists('full/x')).toBe(true);
      });

      it('renames a file, also onto an existing file, never onto a directory; refuses a missing source and the root', async () => {
        await tree.put('b.txt', 'bee');
        await tree.mkdir('empty');
        await storage.rename(vp('/docs/a.txt'), vp('/moved.txt'));
        expect((await tree.read('moved.txt')).toString()).toBe('inside');
        expect(await tree.exists('docs/a.txt')).toBe(false);
        await storage.rename(vp('/b.txt'), vp('/moved.txt'));
        expect((await tree.read('moved.txt')).toString()).toBe('bee');
        expect(await tree.exists('b.txt')).toBe(false);
        // 'exists' from the disk, 'is-a-directory' from S3: 550 either way.
        await expectKind(storage.rename(vp('/moved.txt'), vp('/empty')), ['exists', 'is-a-directory']);
        expect((await tree.read('moved.txt')).toString()).toBe('bee');
        await expectKind(storage.rename(vp('/missing'), vp('/x')), 'not-found');
        await expectKind(storage.rename(ROOT, vp('/x')), ['permission', 'unsupported']);
        await expectKind(storage.rename(vp('/moved.txt'), ROOT), ['permission', 'is-a-directory']);
      });

      it(
        backend === 's3' ? 'refuses to rename a directory (S3 has none to rename), leaving it whole' : 'renames a directory with its contents',
        async () => {
          await tree.put('tree/inner/leaf.txt', 'leaf');
          const renamed = storage.rename(vp('/tree'), vp('/moved-tree'));
          if (backend === 's3') {
            await expectKind(renamed, 'unsupported');
            expect((await tree.read('tree/inner/leaf.txt')).toString()).toBe('leaf');
            expect(await tree.exists('moved-tree')).toBe(false);
          } else {
            await renamed;
            expect((await tree.read('moved-tree/inner/leaf.txt')).toString()).toBe('leaf');
            expect(await tree.exists('tree')).toBe(false);
          }
        },
      );

      it(backend === 's3' ? 'refuses to set a modification time (S3 keeps its own)' : 'sets the modification time', async () => {
        const time = new Date('2020-01-02T03:04:05Z');
        const set = storage.setModifiedTime(vp('/docs/a.txt'), time);
        if (backend === 's3') {
          await expectKind(set, 'unsupported');
          expect(await tree.mtime('docs/a.txt')).not.toEqual(time);
        } else {
          await set;
          expect(await tree.mtime('docs/a.txt')).toEqual(time);
        }
        await expectKind(storage.setModifiedTime(vp('/missing'), time), backend === 's3' ? 'unsupported' : 'not-found');
      });

      it(backend === 's3' ? 'cannot tell the free space' : 'tells the free space', async () => {
        const free = await storage.freeSpace(ROOT);
        if (backend === 's3') expect(free).toBeUndefined();
        else expect(free).toBeGreaterThan(0);
      });
    });

    describe('unique names (STOU)', () => {
      it('reserves a name that clobbers nothing, in the directory asked for', async () => {
        const { path: name, target } = await storage.openUnique(vp('/docs'), 'a.txt');
        expect(name).toMatch(/^\/docs\/[^/]+$/);
        expect(name).not.toBe('/docs/a.txt');
        await upload(target, 'unique');
        expect((await tree.read(name.slice(1))).toString()).toBe('unique');
        expect((await tree.read('docs/a.txt')).toString()).toBe('inside');
        await expectKind(storage.openUnique(vp('/missing'), 'x'), 'not-found');
      });

      it('gives 20 concurrent reservations 20 different names, and an aborted one leaves nothing', async () => {
        const reserved = await Promise.all(Array.from({ length: 20 }, () => storage.openUnique(ROOT, 'same.bin')));
        expect(new Set(reserved.map((r) => r.path)).size).toBe(20);
        await Promise.all(reserved.map((r, i) => (i % 2 === 0 ? upload(r.target, `n${i}`) : writeChunk(r.target, 'x').then(() => r.target.abort()))));
        const kept = reserved.filter((_, i) => i % 2 === 0).map((r) => r.path.slice(1));
        expect(await tree.names()).toEqual(['docs', ...kept].sort());
      });
    });

    describe('abuse: names', () => {
      it('clamps .. at the home: the neighbour with a longer name stays out of reach', async () => {
        const escaped = vp(`../../u${homes}x/secret.txt`);
        expect(escaped).toBe(`/u${homes}x/secret.txt`);
        await expectKind(storage.stat(escaped), 'not-found');
        await expectKind(storage.stat(vp('/secret.txt')), 'not-found');
        expect((await listAll(storage, ROOT)).map((e) => e.name)).toEqual(['docs']);
        await upload(await storage.openWrite(vp('../../../up.txt'), { mode: 'replace' }), 'data');
        expect((await tree.read('up.txt')).toString()).toBe('data');
        expect(await neighbour.names()).toEqual(['secret.txt']);
      });

      it('stores names with %2F, backslashes, spaces and URL characters as they are', async () => {
        const names = ['a%2Fb.txt', 'back\\slash.txt', 'sp ace+plus?q=1&r#frag;é€.txt', '%2e%2e'];
        for (const name of names) await upload(await storage.openWrite(vp(`/${name}`), { mode: 'replace' }), name);
        expect(await tree.names()).toEqual(['docs', ...names].sort());
        for (const name of names) expect((await readToEnd(await storage.openRead(vp(`/${name}`)))).toString()).toBe(name);
        expect((await listAll(storage, ROOT)).map((e) => e.name).sort()).toEqual(['docs', ...names].sort());
        expect(await tree.exists('a/b.txt')).toBe(false);
        await storage.rename(vp('/a%2Fb.txt'), vp('/back\\slash.txt'));
        expect((await tree.read('back\\slash.txt')).toString()).toBe('a%2Fb.txt');
      });

      it('takes a 200-character name and refuses a 1,100-character one, storing nothing', async () => {
        const long = `${'n'.repeat(196)}.txt`;
        await upload(await storage.openWrite(vp(`/${long}`), { mode: 'replace' }), 'long');
        expect((await tree.read(long)).toString()).toBe('long');
        const tooLong = 'x'.repeat(1_100);
        // Refused when opened (a disk's NAME_MAX) or when committed (S3's 1,024-byte key limit).
        await expectKind(
          storage.openWrite(vp(`/${tooLong}`), { mode: 'replace' }).then((t) => upload(t, 'too long')),
          'invalid-name',
        );
        await expectKind(storage.mkdir(vp(`/${tooLong}`)), 'invalid-name');
        expect(await tree.names()).toEqual(['docs', long].sort());
      });
    });
  });
});

/** `fn` over `items` with at most `limit` running at once. */
async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) await fn(items[i]!);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

describe.skipIf(skipS3)('storage contract, s3 only: keys no client could have made', () => {
  let bucket: S3TestBucket;
  let store: Bucket;
  let storage: StorageBackend;
  let client: S3Client;
  const home = `${TENANT}odd/`;

  beforeAll(async () => {
    bucket = await s3TestBucket({ prefix: TENANT });
    client = bucket.client;
    store = new Bucket(bucket.settings);
    storage = new S3Storage(store, home, TEST_PART_SIZE);
    const tree = s3Tree(client, bucket.settings.bucket, home);
    // Markers and keys as other tools write them: a marker for the home itself, a key named like the home without
    // its slash, empty, '.' and '..' components, and a file and a directory of the same name.
    const raw = (key: string) => client.send(new PutObjectCommand({ Bucket: bucket.settings.bucket, Key: key, Body: Buffer.from(key) }));
    for (const key of [`${TENANT}odd`, home, `${home}d/`, `${home}d//double`, `${home}d/./dot`, `${home}d/../dotdot`, `${home}d/twin`, `${home}d/twin/`, `${home}d/twin/inside`]) {
      await raw(key);
    }
    await tree.put('d/plain.txt', 'plain');
  }, 600_000);
  afterAll(() => store.destroy());

  it('lists the home without an entry for its own marker or for the key named like it', async () => {
    expect((await listAll(storage, ROOT)).map((e) => [e.name, e.type])).toEqual([['d', 'dir']]);
  });

  it('lists a directory with marker-like and dot keys as names a client can use, each once', async () => {
    const entries = await listAll(storage, vp('/d'));
    const names = entries.map((e) => e.name);
    expect(names).toContain('plain.txt');
    expect(names).toContain('twin');
    for (const name of names) {
      expect(name).not.toMatch(/^(\.|\.\.)?$/);
      expect(name).not.toContain('/');
    }
    expect(new Set(names).size).toBe(names.length);
    expect((await readToEnd(await storage.openRead(vp('/d/plain.txt')))).toString()).toBe('plain');
  });
});
