/*
 * FTP_USERS_FILE end to end: real server, real TLS logins, real files, and the file rewritten underneath
 * the running server the way Kubernetes updates a mounted secret.
 */
import { mkdir, readFile, rename, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import bcrypt from 'bcryptjs';
import type { Client } from 'basic-ftp';
import { describe, expect, it, vi } from 'vitest';
import { hashPassword } from '../../src/auth/password-hash.js';
import { downloadText, ftpsLogin } from '../support/ftps-client.js';
import { afterThisTest, tempDir as makeTempDir } from '../support/fixtures.js';
import { RawFtpClient } from '../support/raw-client.js';
import { TEST_PASSWORD, TEST_USER, withServer, type RunningServer } from '../support/server.js';

/** The server with only the users file as a user source (startServer sets FTP_USER otherwise). */
const FILE_ONLY = { FTP_USER: '', FTP_PASSWORD: '' };
const bcryptHash = (password: string): string => bcrypt.hashSync(password, 4);

const tempDir = () => makeTempDir('ftps-users-');

/** A users file with `lines`; returns its path. */
async function usersFile(...lines: string[]): Promise<string> {
  const file = path.join(await tempDir(), 'users');
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

async function login(srv: RunningServer, user: string, password: string): Promise<Client> {
  const client = await ftpsLogin(srv.port, user, password);
  afterThisTest(() => client.close());
  return client;
}

/** The reply a failed login gets, read raw so the exact text can be compared. */
async function refusedLogin(srv: RunningServer, user: string, password: string): Promise<string> {
  const c = await RawFtpClient.connect(srv.port);
  afterThisTest(() => c.close());
  await c.read();
  await c.upgrade();
  return (await c.login(user, password)).text;
}

const names = async (client: Client, dir = '/'): Promise<string[]> => (await client.list(dir)).map((f) => f.name).sort();

const upload = (client: Client, remote: string, content: string) => client.uploadFrom(Readable.from([Buffer.from(content)]), remote);

describe('FTP_USERS_FILE', () => {
  it('gives each user a home of their own, created on first login, where they see only their files', async () => {
    const file = usersFile(`alice:${bcryptHash('alice-pass')}:homes/alice:rw`, `bob:${await hashPassword('bob-pass')}:homes/bob:rw`);
    await withServer({ ...FILE_ONLY, FTP_USERS_FILE: await file }, async (srv) => {
      await expect(stat(path.join(srv.root, 'homes'))).rejects.toMatchObject({ code: 'ENOENT' });
      const alice = await login(srv, 'alice', 'alice-pass');
      expect((await stat(path.join(srv.root, 'homes/alice'))).isDirectory()).toBe(true);
      await upload(alice, 'a.txt', 'from alice');
      const bob = await login(srv, 'bob', 'bob-pass');
      await upload(bob, 'b.txt', 'from bob');

      expect(await names(alice)).toEqual(['a.txt']);
      expect(await names(bob)).toEqual(['b.txt']);
      expect(await readFile(path.join(srv.root, 'homes/alice/a.txt'), 'utf8')).toBe('from alice');
      expect(await readFile(path.join(srv.root, 'homes/bob/b.txt'), 'utf8')).toBe('from bob');
      // "/" is the home: "/../bob" is alice's own (absent) /bob, not bob's home.
      await expect(alice.list('/../bob')).rejects.toMatchObject({ code: 550 });
      await expect(alice.size('../bob/b.txt')).rejects.toMatchObject({ code: 550 });
    });
  });

  it('a read-only user can list and download, and every write is refused with 550', async () => {
    const file = await usersFile(`reader:${bcryptHash('r-pass')}:reports:ro`);
    await withServer({ ...FILE_ONLY, FTP_USERS_FILE: file }, async (srv) => {
      await mkdir(path.join(srv.root, 'reports'));
      await writeFile(path.join(srv.root, 'reports/q1.txt'), 'quarter one');
      const reader = await login(srv, 'reader', 'r-pass');
      expect(await names(reader)).toEqual(['q1.txt']);
      expect(await downloadText(reader, 'q1.txt')).toBe('quarter one');

      await expect(upload(reader, 'new.txt', 'x')).rejects.toMatchObject({ code: 550 });
      await expect(reader.remove('q1.txt')).rejects.toMatchObject({ code: 550 });
      await expect(reader.send('MKD sub')).rejects.toMatchObject({ code: 550 });
      await expect(reader.send('RNFR q1.txt')).rejects.toMatchObject({ code: 550 });
      expect(await names(reader)).toEqual(['q1.txt']);
      expect(await readFile(path.join(srv.root, 'reports/q1.txt'), 'utf8')).toBe('quarter one');
    });
  });

  it('refuses a login from outside allowed-cidrs exactly like a wrong password, and logs why', async () => {
    const file = await usersFile(
      `carol:${bcryptHash('c-pass')}:carol:rw:127.0.0.2,10.0.0.0/8,2001:db8::/32`,
      `dave:${bcryptHash('d-pass')}:dave:rw:127.0.0.0/8,::1`,
    );
    await withServer({ ...FILE_ONLY, FTP_USERS_FILE: file }, async (srv) => {
      const outside = await refusedLogin(srv, 'carol', 'c-pass');
      const wrong = await refusedLogin(srv, 'dave', 'not-d-pass');
      expect(outside).toBe('530 Login incorrect');
      expect(wrong).toBe(outside);
      expect(srv.logs.filter((l) => l.msg === 'login failed').map((l) => [l.user, l.reason])).toEqual([
        ['carol', 'address-not-allowed'],
        ['dave', 'wrong-password'],
      ]);
      expect(await names(await login(srv, 'dave', 'd-pass'))).toEqual([]);
      expect(JSON.stringify(srv.logs)).not.toMatch(/c-pass|d-pass/);
    });
  });

  it('reloads a Kubernetes-style secret update without a restart, and keeps the users over a broken one', async () => {
    // The layout kubelet writes: users -> ..data/users, ..data -> ..<version>; an update swaps ..data.
    const dir = await tempDir();
    let version = 0;
    const publish = async (...lines: string[]) => {
      const name = `..v${++version}`;
      await mkdir(path.join(dir, name));
      await writeFile(path.join(dir, name, 'users'), `${lines.join('\n')}\n`);
      await symlink(name, path.join(dir, '..data_tmp'));
      await rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    };
    await publish(`erin:${bcryptHash('first')}:erin:rw`);
    await symlink('..data/users', path.join(dir, 'users'));

    await withServer({ ...FILE_ONLY, FTP_USERS_FILE: path.join(dir, 'users') }, async (srv) => {
      (await login(srv, 'erin', 'first')).close();
      const reloads = () => srv.logs.filter((l) => l.msg === 'users file reloaded').length;

      await publish(`erin:${bcryptHash('second')}:erin:rw`);
      // The directory watch, or at the latest the 5 s re-read, picks the swap up.
      await vi.waitFor(() => expect(reloads()).toBe(1), { timeout: 10_000, interval: 50 });
      (await login(srv, 'erin', 'second')).close();
      await expect(ftpsLogin(srv.port, 'erin', 'first')).rejects.toMatchObject({ code: 530 });

      await publish('# line 1', `erin:${bcryptHash('third')}:erin:rw`, `frank:${bcryptHash('f')}:frank:rw:10.0.0.0/40`);
      const refused = () => srv.logs.some((l) => l.msg === 'users file not reloaded: keeping the current users');
      await vi.waitFor(() => expect(refused()).toBe(true), { timeout: 10_000, interval: 50 });
      const lineProblem = expect.stringContaining('users file line 3: allowed-cidrs');
      expect(srv.logs).toContainEqual(expect.objectContaining({ level: 40, line: 3, msg: lineProblem }));
      (await login(srv, 'erin', 'second')).close();
      expect(reloads()).toBe(1);
    });
  });

  it('works next to FTP_USER, whose home stays FTP_ROOT', async () => {
    const file = await usersFile(`bob:${bcryptHash('bob-pass')}:bob:rw`);
    await withServer({ FTP_USERS_FILE: file }, async (srv) => {
      const bob = await login(srv, 'bob', 'bob-pass');
      await upload(bob, 'from-bob.txt', 'hello');
      const admin = await login(srv, TEST_USER, TEST_PASSWORD);
      expect(await names(admin)).toEqual(['bob']);
      expect(await downloadText(admin, 'bob/from-bob.txt')).toBe('hello');
    });
  });
});
