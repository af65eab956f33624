/*
 * Findings 4, 6 and 7: what a user may reach. Anonymous used to read every user's home (its root defaulted to
 * FTP_ROOT); a user removed from the users file, or made read-only, kept writing on sessions opened before the
 * reload; a passive connection opened in clear text before PROT P carried the next transfer in clear text.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config.js';
import { afterThisTest, tempDir } from '../support/fixtures.js';
import { connectData, loggedIn, readAll, RawFtpClient, secureClient } from '../support/raw-client.js';
import { startServer, withServer } from '../support/server.js';

const hash = (password: string): string => bcrypt.hashSync(password, 4);
const FILE_ONLY = { FTP_USER: '', FTP_PASSWORD: '' };

async function usersFile(dir: string, ...lines: string[]): Promise<string> {
  const file = path.join(dir, 'users');
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

async function login(port: number, user: string, password: string): Promise<RawFtpClient> {
  const c = await secureClient(port);
  afterThisTest(() => c.close());
  expect((await c.login(user, password)).code).toBe(230);
  return c;
}

describe('anonymous root (finding 4)', () => {
  it('defaults to FTP_ROOT/pub: anonymous sees what is published there, never the users\' homes', async () => {
    const dir = await tempDir();
    const file = await usersFile(dir, `bob:${hash('bob-pass')}:bob:rw`);
    await withServer({ ...FILE_ONLY, FTP_USERS_FILE: file, FTP_ANONYMOUS: 'true' }, async (srv) => {
      await mkdir(path.join(srv.root, 'bob'), { recursive: true });
      await writeFile(path.join(srv.root, 'bob', 'private.txt'), 'bob only');
      await writeFile(path.join(srv.root, 'pub', 'notice.txt'), 'for all');
      const anon = await login(srv.port, 'anonymous', 'guest@example.com');
      expect((await anon.send('STAT /')).text).toContain('notice.txt');
      expect((await anon.send('STAT /')).text).not.toContain('bob');
      expect((await anon.send('SIZE /bob/private.txt')).code).toBe(550);
      expect((await anon.send('SIZE ../bob/private.txt')).code).toBe(550);
    });
  });

  it('refuses to start when the anonymous root contains a user\'s home, naming both', async () => {
    const dir = await tempDir();
    const root = path.join(dir, 'root');
    const file = await usersFile(dir, `bob:${hash('bob-pass')}:bob:rw`);
    const err = await startServer({ ...FILE_ONLY, FTP_ROOT: root, FTP_USERS_FILE: file, FTP_ANONYMOUS: 'true', FTP_ANONYMOUS_ROOT: root }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([
      `FTP_USERS_FILE: line 1: home "bob" (${path.join(root, 'bob')}) is inside FTP_ANONYMOUS_ROOT (${root}): anonymous users could read it`,
    ]);
  });
});

describe('users-file reload (finding 6)', () => {
  it('closes sessions of removed or disabled users and narrows permissions at the next command', async () => {
    const dir = await tempDir();
    const file = await usersFile(
      dir,
      `bob:${hash('bob-pass')}:bob:rw`,
      `carol:${hash('carol-pass')}:carol:rw`,
      `dave:${hash('dave-pass')}:dave:rw`,
      `erin:${hash('erin-pass')}:erin:rw`,
    );
    await withServer({ ...FILE_ONLY, FTP_USERS_FILE: file }, async (srv) => {
      const bob = await login(srv.port, 'bob', 'bob-pass');
      const carol = await login(srv.port, 'carol', 'carol-pass');
      const dave = await login(srv.port, 'dave', 'dave-pass');
      const erin = await login(srv.port, 'erin', 'erin-pass');
      expect((await carol.send('MKD before')).code).toBe(257);
      // bob removed, carol read-only, dave disabled (`!` before the hash), erin unchanged.
      await usersFile(dir, `carol:${hash('carol-pass')}:carol:ro`, `dave:!${hash('dave-pass')}:dave:rw`, `erin:${hash('erin-pass')}:erin:rw`);
      await srv.server.reload();
      expect((await bob.send('PWD')).code).toBe(421);
      await expect(bob.read(2000)).rejects.toThrow(/closed/);
      expect((await dave.send('NOOP')).code).toBe(421);
      expect((await carol.send('MKD after')).code).toBe(550);
      expect((await carol.send('RMD before')).code).toBe(550);
      expect((await carol.send('PWD')).code).toBe(257);
      expect((await erin.send('MKD still')).code).toBe(257);
      // Nobody logs in as a removed or disabled user.
      const fresh = await secureClient(srv.port);
      afterThisTest(() => fresh.close());
      expect((await fresh.login('dave', 'dave-pass')).code).toBe(530);
      expect(await readdir(path.join(srv.root, 'carol'))).toEqual(['before']);
    });
  });
});

describe('protection level of data connections (finding 7)', () => {
  it('a passive connection opened before PROT P never carries a transfer in clear text', async () => {
    await withServer({}, async (srv) => {
      await writeFile(path.join(srv.root, 'secret.txt'), 'confidential');
      const c = await loggedIn(srv.port, { prot: false });
      afterThisTest(() => c.close());
      expect((await c.send('PBSZ 0')).code).toBe(200);
      const plain = await c.openPassive({ tls: false });
      const received = readAll(plain);
      expect((await c.send('PROT P')).code).toBe(200);
      expect((await c.send('RETR secret.txt')).code).toBe(425);
      expect((await received).toString()).toBe('');
      // With a fresh (protected) connection the transfer works.
      const secure = await c.openPassive({ tls: true });
      const content = readAll(secure);
      expect((await c.send('RETR secret.txt')).code).toBe(150);
      expect((await content).toString()).toBe('confidential');
      expect((await c.read()).code).toBe(226);
    });
  });

  it('a TLS connection opened before PROT C is not used after it (FTPS_REQUIRE_PROT_P=false)', async () => {
    await withServer({ FTPS_REQUIRE_PROT_P: 'false' }, async (srv) => {
      await writeFile(path.join(srv.root, 'f.txt'), 'data');
      const c = await loggedIn(srv.port);
      afterThisTest(() => c.close());
      const r = await c.send('EPSV');
      const port = Number(/\|\|\|(\d+)\|/.exec(r.text)?.[1]);
      const data = await connectData(port, { tls: true, session: c.tlsSession });
      const received = readAll(data).catch(() => Buffer.alloc(0));
      expect((await c.send('PROT C')).code).toBe(200);
      expect((await c.send('RETR f.txt')).code).toBe(425);
      expect((await received).toString()).toBe('');
    });
  });
});
