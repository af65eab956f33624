/* FTP_ANONYMOUS end to end: real server, real TLS logins, real files. */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Client } from 'basic-ftp';
import { afterEach, describe, expect, it } from 'vitest';
import { downloadText, ftpsLogin } from '../support/ftps-client.js';
import { TEST_PASSWORD, TEST_USER, withServer, type RunningServer } from '../support/server.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function login(srv: RunningServer, user: string, password: string): Promise<Client> {
  const client = await ftpsLogin(srv.port, user, password);
  cleanups.push(() => client.close());
  return client;
}

describe('FTP_ANONYMOUS', () => {
  it('lets "anonymous" in with any password, read-only in FTP_ROOT/pub: listing and downloads work, every write is 550', async () => {
    await withServer({ FTP_ANONYMOUS: 'true' }, async (srv) => {
      const pub = path.join(srv.root, 'pub');
      await writeFile(path.join(pub, 'readme.txt'), 'public');
      await writeFile(path.join(srv.root, 'private.txt'), 'not for anonymous');
      const anon = await login(srv, 'anonymous', 'guest@example.com');
      expect((await anon.list()).map((f) => f.name)).toEqual(['readme.txt']);
      expect(await downloadText(anon, 'readme.txt')).toBe('public');

      await expect(anon.uploadFrom(Readable.from([Buffer.from('x')]), 'new.txt')).rejects.toMatchObject({ code: 550 });
      await expect(anon.remove('readme.txt')).rejects.toMatchObject({ code: 550 });
      await expect(anon.send('MKD sub')).rejects.toMatchObject({ code: 550 });
      await expect(anon.send('RNFR readme.txt')).rejects.toMatchObject({ code: 550 });
      expect(await readdir(pub)).toEqual(['readme.txt']);

      // FTP_USER (home FTP_ROOT) still logs in, with write access, and publishes into pub.
      const admin = await login(srv, TEST_USER, TEST_PASSWORD);
      await admin.uploadFrom(Readable.from([Buffer.from('by admin')]), 'pub/admin.txt');
      expect((await anon.list()).map((f) => f.name).sort()).toEqual(['admin.txt', 'readme.txt']);
    });
  });

  it('accepts "ftp" with an empty password, rooted at FTP_ANONYMOUS_ROOT', async () => {
    const pub = await mkdtemp(path.join(os.tmpdir(), 'ftps-pub-'));
    cleanups.push(() => rm(pub, { recursive: true, force: true }));
    await writeFile(path.join(pub, 'public.txt'), 'for everyone');
    await withServer({ FTP_ANONYMOUS: 'true', FTP_ANONYMOUS_ROOT: pub }, async (srv) => {
      await writeFile(path.join(srv.root, 'private.txt'), 'not for anonymous');
      const anon = await login(srv, 'ftp', '');
      expect((await anon.list()).map((f) => f.name)).toEqual(['public.txt']);
      expect(await downloadText(anon, 'public.txt')).toBe('for everyone');
    });
  });

  it('is off by default', async () => {
    await withServer({}, async (srv) => {
      await expect(ftpsLogin(srv.port, 'anonymous', 'guest@example.com')).rejects.toMatchObject({ code: 530 });
    });
  });
});
