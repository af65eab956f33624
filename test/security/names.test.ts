/*
 * Finding 8, names: a bare CR in a file name split listing lines; users could create the server's reserved
 * `.ftps-upload-*.tmp` names (hidden, then swept); two concurrent `STOU report.txt` both got `report.txt` and
 * one upload was lost.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { afterThisTest } from '../support/fixtures.js';
import { loggedIn, readAll, type RawFtpClient } from '../support/raw-client.js';
import { withServer } from '../support/server.js';

async function client(port: number): Promise<RawFtpClient> {
  const c = await loggedIn(port);
  afterThisTest(() => c.close());
  return c;
}

/** An upload command on a fresh protected passive connection: the final reply (or the refusal) and the name STOU chose. */
async function upload(c: RawFtpClient, command: string, content: string): Promise<{ code: number; text: string }> {
  const data = await c.openPassive({ tls: true });
  const opening = await c.send(command);
  if (opening.code !== 150) {
    data.destroy();
    return opening;
  }
  data.end(content);
  await readAll(data);
  const done = await c.read();
  return { code: done.code, text: `${opening.text}\n${done.text}` };
}

describe('file names', () => {
  it('refuses CR and LF inside names with 553, before touching the disk', async () => {
    await withServer({}, async (srv) => {
      const c = await client(srv.port);
      expect((await upload(c, 'STOR a\rb.txt', 'x')).code).toBe(553);
      expect((await c.send('MKD dir\rname')).code).toBe(553);
      expect((await c.send('RNFR x')).code).toBe(550);
      await writeFile(path.join(srv.root, 'plain.txt'), 'p');
      expect((await c.send('RNFR plain.txt')).code).toBe(350);
      expect((await c.send('RNTO evil\rname')).code).toBe(553);
      expect(await readdir(srv.root)).toEqual(['plain.txt']);
    });
  });

  it('leaves names with CR or LF that others put on the volume out of listings, whole lines only', async () => {
    await withServer({}, async (srv) => {
      await writeFile(path.join(srv.root, 'fine.txt'), '');
      await writeFile(path.join(srv.root, 'split\r-rw-r--r-- 1 ftp ftp 0 Jan  1 2020 forged'), '');
      const c = await client(srv.port);
      const data = await c.openPassive({ tls: true });
      const listing = readAll(data);
      expect((await c.send('LIST')).code).toBe(150);
      const lines = (await listing).toString().split('\r\n').filter(Boolean);
      expect((await c.read()).code).toBe(226);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/ fine\.txt$/);
    });
  });

  it('refuses the reserved .ftps-upload- names with 553 for every command that creates or names one', async () => {
    await withServer({}, async (srv) => {
      const c = await client(srv.port);
      const reserved = '.ftps-upload-0123456789abcdef.tmp';
      expect((await upload(c, `STOR ${reserved}`, 'x')).code).toBe(553);
      expect((await upload(c, `STOR sub/../${reserved}`, 'x')).code).toBe(553);
      expect((await upload(c, `STOU ${reserved}`, 'x')).code).toBe(553);
      expect((await c.send('MKD .ftps-upload-dir')).code).toBe(553);
      await writeFile(path.join(srv.root, 'plain.txt'), 'p');
      expect((await c.send('RNFR plain.txt')).code).toBe(350);
      expect((await c.send(`RNTO ${reserved}`)).code).toBe(553);
      expect(await readdir(srv.root)).toEqual(['plain.txt']);
    });
  });

  it('gives two concurrent STOU of the same name two names, and keeps both uploads', async () => {
    await withServer({}, async (srv) => {
      const [a, b] = [await client(srv.port), await client(srv.port)];
      const [da, db] = [await a.openPassive({ tls: true }), await b.openPassive({ tls: true })];
      // Both names are chosen before either upload sends a byte.
      const [oa, ob] = await Promise.all([a.send('STOU report.txt'), b.send('STOU report.txt')]);
      expect([oa.code, ob.code]).toEqual([150, 150]);
      da.end('from a');
      db.end('from b');
      await Promise.all([readAll(da), readAll(db)]);
      expect([(await a.read()).code, (await b.read()).code]).toEqual([226, 226]);
      const names = (await readdir(srv.root)).sort();
      expect(names).toEqual(['report.1.txt', 'report.txt']);
      const contents = await Promise.all(names.map((n) => readFile(path.join(srv.root, n), 'utf8')));
      expect(contents.sort()).toEqual(['from a', 'from b']);
    });
  });
});
