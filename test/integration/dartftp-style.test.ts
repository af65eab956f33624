/**
 * Clients built on PowerTCP / DartFTP (and similar old Windows stacks) speak "implicit data TLS": they never
 * send PBSZ or PROT, use PASV, and start TLS on every data connection from its first byte, resuming the
 * control connection's session. The server supports them with DATA_IMPLICIT_SSL=true.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { DartStyleClient } from '../support/dart-style-client.js';
import { readAll } from '../support/raw-client.js';
import { describeEachBackend, suiteServer } from '../support/server.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

const LS_LINE = (name: string, size: number) =>
  new RegExp(`^-[rwx-]{9} 1 ftp ftp +${size} [A-Z][a-z]{2} [ \\d]\\d (\\d\\d:\\d\\d| \\d{4}) ${name.replace('.', '\\.')}$`);

const modes: ReadonlyArray<{ mode: 'implicit' | 'explicit'; env: Record<string, string> }> = [
  { mode: 'implicit', env: { FTPS_IMPLICIT_SSL: 'true', DATA_IMPLICIT_SSL: 'true' } },
  { mode: 'explicit', env: { DATA_IMPLICIT_SSL: 'true' } },
];

describeEachBackend('DartFTP-style client', (backend) => {
  describe.each(modes)('$mode control TLS, DATA_IMPLICIT_SSL=true', ({ mode, env }) => {
    const srv = suiteServer(env, { backend });
    const clients: DartStyleClient[] = [];
    const connect = async () => {
      const c = await DartStyleClient.connect(srv.port, mode);
      clients.push(c);
      return c;
    };

    afterAll(() => {
      for (const c of clients) c.close();
    });

    it('uploads, lists and downloads without PBSZ/PROT, every data connection TLS resuming the session', async () => {
      const c = await connect();
      const content = randomBytes(2 * 1024 * 1024 + 3);
      await c.upload('STOR dart.bin', content);
      expect(sha256(await srv.tree.read('dart.bin'))).toBe(sha256(content));

      await srv.tree.put('readme.txt', 'line one\nline two\n');
      const list = (await c.download('LIST')).toString('utf8');
      const lines = list.split('\r\n').filter(Boolean);
      expect(lines).toHaveLength(2);
      expect(lines.find((l) => l.endsWith(' dart.bin'))).toMatch(LS_LINE('dart.bin', content.length));
      expect(lines.find((l) => l.endsWith(' readme.txt'))).toMatch(LS_LINE('readme.txt', 18));
      expect((await c.download('NLST')).toString().split('\r\n').filter(Boolean).sort()).toEqual(['dart.bin', 'readme.txt']);

      expect(sha256(await c.download('RETR dart.bin'))).toBe(sha256(content));
      expect((await c.download('RETR readme.txt')).toString()).toBe('line one\nline two\n');

      const status = await c.control.send('STAT');
      expect(status.code).toBe(211);
      expect(status.text).toContain('Data connections protected by TLS');
      const transfers = srv.logs.filter((l) => l.msg === 'transfer');
      expect(transfers.length).toBeGreaterThanOrEqual(5);
      expect(transfers.every((l) => l.protection === 'tls' && l.result === 'ok')).toBe(true);
    });

    it('works when the data connection is opened after the command is sent', async () => {
      const c = await connect();
      const content = randomBytes(64 * 1024);
      await srv.tree.put('late.bin', content);
      const port = await c.pasv();
      c.control.writeRaw('RETR late.bin\r\n');
      // The server answers 150 once the data connection is there.
      const data = await c.openData(port);
      const body = readAll(data);
      expect((await c.control.read()).code).toBe(150);
      expect(sha256(await body)).toBe(sha256(content));
      expect((await c.control.read()).code).toBe(226);
    });

    it('refuses a data connection that does not start with TLS, and stores nothing', async () => {
      const c = await connect();
      const port = await c.pasv();
      const plain = net.connect({ port, host: '127.0.0.1' });
      plain.on('error', () => undefined);
      await new Promise<void>((resolve, reject) => plain.once('connect', resolve).once('error', reject));
      const closed = new Promise<void>((resolve) => plain.once('close', () => resolve()));
      expect((await c.control.send('STOR plain.txt')).code).toBe(150);
      plain.write('this is not a TLS ClientHello\r\n');
      const final = await c.control.read();
      expect(final.code).toBe(522);
      await closed;
      expect(await srv.tree.exists('plain.txt')).toBe(false);
      expect(await srv.tree.leftovers()).toEqual([]);
      // The session goes on.
      const content = Buffer.from('after the refusal');
      await c.upload('STOR plain.txt', content);
      expect(await srv.tree.read('plain.txt')).toEqual(content);
    });

    it('refuses a TLS data connection with a fresh (not resumed) session', async () => {
      const c = await connect();
      await srv.tree.put('private.txt', 'private');
      const port = await c.pasv();
      const stranger = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false });
      stranger.on('error', () => undefined);
      const body = readAll(stranger).catch(() => Buffer.alloc(0));
      const r = await c.control.send('RETR private.txt');
      const final = r.code === 150 ? await c.control.read() : r;
      expect(final.code).toBe(522);
      expect((await body).toString()).not.toContain('private');
    });
  });
});
