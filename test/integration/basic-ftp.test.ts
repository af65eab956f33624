import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { Client, FileType } from 'basic-ftp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAll, RawFtpClient } from '../support/raw-client.js';
import { describeEachBackend, suiteServer, TEST_PASSWORD, TEST_USER } from '../support/server.js';
import { ftpsAccess } from '../support/ftps-client.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** Collects what basic-ftp downloads into memory. */
class Sink extends Writable {
  private readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.chunks.push(chunk);
    done();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

async function download(client: Client, remote: string, startAt = 0): Promise<Buffer> {
  const sink = new Sink();
  const res = await client.downloadTo(sink, remote, startAt);
  expect(res.code).toBe(226);
  return sink.bytes;
}

let localDir: string;

beforeAll(async () => {
  localDir = await mkdtemp(path.join(os.tmpdir(), 'ftps-basic-local-'));
});
afterAll(() => rm(localDir, { recursive: true, force: true }));

/** Seconds are all MDTM and MLSD tell. */
const toSeconds = (d: Date): number => Math.floor(d.getTime() / 1000) * 1000;

describeEachBackend('basic-ftp', (backend) => {
  const srv = suiteServer({}, { backend });
  const clients: Client[] = [];

  /** The FileZilla way: explicit AUTH TLS, PBSZ 0 / PROT P, data TLS resuming the control session. */
  async function connect(secureOptions: ConnectionOptions = {}): Promise<Client> {
    const { client, welcome } = await ftpsAccess(srv.port, TEST_USER, TEST_PASSWORD, { secureOptions });
    clients.push(client);
    expect(welcome.code).toBe(220);
    return client;
  }

  afterAll(() => {
    for (const c of clients) c.close();
  });

  describe('basic-ftp over explicit FTPS (FileZilla style)', () => {
    it('protects the control and data connections and resumes the control TLS session', async () => {
      const client = await connect();
      const control = client.ftp.socket as TLSSocket;
      expect(control.encrypted).toBe(true);
      await client.list('/');
      // The server refuses a data connection that does not resume the session, so a listing proves reuse;
      // its transfer log also says the data connection was protected.
      const transfers = srv.logs.filter((l) => l.msg === 'transfer');
      expect(transfers.at(-1)).toMatchObject({ protection: 'tls', result: 'ok' });
    });

    it('uploads from a Readable and from a local file, then lists names, sizes and types', async () => {
      const client = await connect();
      await client.ensureDir('/up');
      const fromStream = Buffer.from('streamed content\n');
      expect((await client.uploadFrom(Readable.from([fromStream]), 'stream.txt')).code).toBe(226);
      const localFile = path.join(localDir, 'local.bin');
      const fileBytes = randomBytes(70_000);
      await writeFile(localFile, fileBytes);
      expect((await client.uploadFrom(localFile, 'file.bin')).code).toBe(226);
      await client.send('MKD sub');

      expect(await srv.tree.read('up/stream.txt')).toEqual(fromStream);
      expect(await srv.tree.read('up/file.bin')).toEqual(fileBytes);

      const listing = await client.list();
      // The server announces MLST in FEAT, so basic-ftp lists with MLSD.
      expect(client.availableListCommands).toEqual(['MLSD']);
      const byName = new Map(listing.map((f) => [f.name, f]));
      expect([...byName.keys()].sort()).toEqual(['file.bin', 'stream.txt', 'sub']);
      expect(byName.get('stream.txt')).toMatchObject({ type: FileType.File, size: fromStream.length });
      expect(byName.get('file.bin')).toMatchObject({ type: FileType.File, size: fileBytes.length });
      expect(byName.get('sub')?.type).toBe(FileType.Directory);
      expect(byName.get('file.bin')?.modifiedAt?.getTime()).toBe(toSeconds(await srv.tree.mtime('up/file.bin')));
    });

    it('parses the ls -l lines of LIST the same way (clients without MLSD)', async () => {
      await srv.tree.mkdir('ls/inner');
      await srv.tree.put('ls/name with spaces.txt', 'twelve bytes');
      const client = await connect();
      client.availableListCommands = ['LIST -a'];
      const listing = await client.list('/ls');
      expect(listing.map((f) => [f.name, f.type, f.type === FileType.File ? f.size : 'dir']).sort()).toEqual([
        ['inner', FileType.Directory, 'dir'],
        ['name with spaces.txt', FileType.File, 12],
      ]);
      expect(listing.find((f) => f.isFile)?.permissions).toBeDefined();
    });

    it('downloads to a stream and to a local file', async () => {
      const content = randomBytes(100_000);
      await srv.tree.put('down/data.bin', content);
      const client = await connect();
      expect(sha256(await download(client, '/down/data.bin'))).toBe(sha256(content));
      const target = path.join(localDir, 'downloaded.bin');
      expect((await client.downloadTo(target, '/down/data.bin')).code).toBe(226);
      expect(sha256(await readFile(target))).toBe(sha256(content));
    });

    it('renames and removes files', async () => {
      await srv.tree.mkdir('ren');
      await srv.tree.put('ren/old.txt', 'keep me');
      const client = await connect();
      expect((await client.rename('/ren/old.txt', '/ren/new.txt')).code).toBe(250);
      expect(await srv.tree.names('ren')).toEqual(['new.txt']);
      expect((await srv.tree.read('ren/new.txt')).toString()).toBe('keep me');
      expect((await client.remove('/ren/new.txt')).code).toBe(250);
      expect(await srv.tree.names('ren')).toEqual([]);
      await expect(client.remove('/ren/new.txt')).rejects.toMatchObject({ code: 550 });
      // The failed command left the connection usable.
      expect((await client.send('NOOP')).code).toBe(200);
    });

    it('creates nested directories, changes into them and removes a tree', async () => {
      const client = await connect();
      expect(await client.pwd()).toBe('/');
      await client.ensureDir('/tree/a/b');
      // ensureDir leaves the client in the new directory.
      expect(await client.pwd()).toBe('/tree/a/b');
      expect(await srv.tree.exists('tree/a/b')).toBe(true);
      await client.uploadFrom(Readable.from([Buffer.from('leaf')]), 'leaf.txt');
      expect((await srv.tree.read('tree/a/b/leaf.txt')).toString()).toBe('leaf');
      await client.cdup();
      expect(await client.pwd()).toBe('/tree/a');
      await client.cd('/tree');
      expect(await client.pwd()).toBe('/tree');
      expect((await client.list()).map((f) => f.name)).toEqual(['a']);
      await expect(client.cd('/tree/missing')).rejects.toMatchObject({ code: 550 });

      await client.removeDir('/tree');
      expect(await srv.tree.exists('tree')).toBe(false);
    });

    it('reports size and modification time (SIZE, MDTM)', async () => {
      await srv.tree.put('meta.bin', randomBytes(12_345));
      const client = await connect();
      expect(await client.size('meta.bin')).toBe(12_345);
      expect((await client.lastMod('meta.bin')).getTime()).toBe(toSeconds(await srv.tree.mtime('meta.bin')));
      await expect(client.size('nope.bin')).rejects.toMatchObject({ code: 550 });
    });

    it(backend === 's3' ? 'refuses MFMT with 550 (S3 keeps its own times)' : 'sets the modification time (MFMT)', async () => {
      await srv.tree.put('stamped.bin', 'stamp');
      const before = await srv.tree.mtime('stamped.bin');
      const client = await connect();
      const set = client.send('MFMT 20240229131415 stamped.bin');
      if (backend === 's3') {
        await expect(set).rejects.toMatchObject({ code: 550 });
        expect(await srv.tree.mtime('stamped.bin')).toEqual(before);
      } else {
        expect((await set).code).toBe(213);
        expect(await srv.tree.mtime('stamped.bin')).toEqual(new Date(Date.UTC(2024, 1, 29, 13, 14, 15)));
      }
      expect((await client.lastMod('stamped.bin')).getTime()).toBe(toSeconds(await srv.tree.mtime('stamped.bin')));
    });

    it(backend === 's3' ? 'refuses to rename a directory with 550, leaving it whole' : 'renames a directory with its contents', async () => {
      await srv.tree.put('folder/inner/leaf.txt', 'leaf');
      const client = await connect();
      const renamed = client.rename('/folder', '/renamed-folder');
      if (backend === 's3') {
        await expect(renamed).rejects.toMatchObject({ code: 550 });
        expect((await srv.tree.read('folder/inner/leaf.txt')).toString()).toBe('leaf');
        expect(await srv.tree.exists('renamed-folder')).toBe(false);
      } else {
        expect((await renamed).code).toBe(250);
        expect((await srv.tree.read('renamed-folder/inner/leaf.txt')).toString()).toBe('leaf');
        expect(await srv.tree.exists('folder')).toBe(false);
      }
      expect((await client.send('NOOP')).code).toBe(200);
    });

    it('resumes a download at an offset (REST + RETR) and appends to an upload (APPE)', async () => {
      const content = randomBytes(50_000);
      await srv.tree.put('resume.bin', content);
      const client = await connect();
      const tail = await download(client, 'resume.bin', 30_000);
      expect(tail).toEqual(content.subarray(30_000));

      // A partial local file completed by a resumed download, as FileZilla does.
      const local = path.join(localDir, 'resume.bin');
      await writeFile(local, content.subarray(0, 20_000));
      await client.downloadTo(local, 'resume.bin', 20_000);
      expect(sha256(await readFile(local))).toBe(sha256(content));

      await srv.tree.put('append.txt', 'first,');
      expect((await client.appendFrom(Readable.from([Buffer.from('second')]), 'append.txt')).code).toBe(226);
      expect((await srv.tree.read('append.txt')).toString()).toBe('first,second');
    });

    it('moves an 8 MiB random file both ways intact', async () => {
      const content = randomBytes(8 * 1024 * 1024);
      const client = await connect();
      expect((await client.uploadFrom(Readable.from([content]), 'big.bin')).code).toBe(226);
      const stored = await srv.tree.read('big.bin');
      expect(stored.length).toBe(content.length);
      expect(sha256(stored)).toBe(sha256(content));
      expect(await client.size('big.bin')).toBe(content.length);
      const back = await download(client, 'big.bin');
      expect(sha256(back)).toBe(sha256(content));
      // No temporary upload file (or multipart upload) is left behind.
      expect(await srv.tree.leftovers()).toEqual([]);
    });
  });

  describe('basic-ftp limited to TLS 1.2', () => {
    it('works with session reuse on every data connection', async () => {
      const client = await connect({ maxVersion: 'TLSv1.2' });
      const control = client.ftp.socket as TLSSocket;
      expect(control.getProtocol()).toBe('TLSv1.2');
      const content = randomBytes(300_000);
      await client.ensureDir('/tls12');
      expect((await client.uploadFrom(Readable.from([content]), 'x.bin')).code).toBe(226);
      expect((await client.list()).map((f) => [f.name, f.size])).toEqual([['x.bin', content.length]]);
      expect(sha256(await download(client, 'x.bin'))).toBe(sha256(content));
      expect(sha256(await download(client, 'x.bin', 1000))).toBe(sha256(content.subarray(1000)));
      expect(sha256(await srv.tree.read('tls12/x.bin'))).toBe(sha256(content));
      const tls12 = srv.logs.filter((l) => l.msg === 'transfer' && l.tls === 'TLSv1.2');
      expect(tls12.length).toBeGreaterThanOrEqual(4);
      expect(tls12.every((l) => l.protection === 'tls' && l.result === 'ok')).toBe(true);
    });

    it('refuses a TLS 1.2 data connection that does not resume the control session', async () => {
      await srv.tree.put('secret.txt', 'secret');
      const c = await RawFtpClient.connect(srv.port);
      try {
        expect((await c.read()).code).toBe(220);
        expect((await c.upgrade({ maxVersion: 'TLSv1.2' })).code).toBe(234);
        expect((c.socket as TLSSocket).getProtocol()).toBe('TLSv1.2');
        expect((await c.login(TEST_USER, TEST_PASSWORD)).code).toBe(230);
        expect((await c.send('PBSZ 0')).code).toBe(200);
        expect((await c.send('PROT P')).code).toBe(200);
        // A fresh handshake, as an attacker who raced the client to the passive port would make.
        const data = await c.openPassive({ tls: true, resume: false });
        const received = readAll(data).catch(() => Buffer.alloc(0));
        const r = await c.send('RETR secret.txt');
        const final = r.code === 150 ? await c.read() : r;
        expect(final.code).toBe(522);
        expect((await received).toString()).not.toContain('secret');
      } finally {
        c.close();
      }
    });
  });
});
