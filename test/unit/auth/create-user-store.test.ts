import { stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { describe, expect, it } from 'vitest';
import { createUserStore } from '../../../src/auth/create-user-store.js';
import { ConfigError } from '../../../src/config/config.js';
import { envSchema } from '../../../src/config/schema.js';
import { StateDir } from '../../../src/state/state-dir.js';
import { afterThisTest, captureLog, tempDir } from '../../support/fixtures.js';

const LOCAL = { address: '127.0.0.1' };
const FILE_USER = `bob:${bcrypt.hashSync('bob-pass', 4)}:bob:rw\n`;

/**
 * createUserStore with FTP_ROOT = <dir>/root and `env`; with `usersFile`, that content is FTP_USERS_FILE.
 * `env` may use the placeholder DIR for the temporary directory.
 */
async function create(env: Record<string, string>, usersFile?: string) {
  const dir = await tempDir();
  const file = path.join(dir, 'users');
  if (usersFile !== undefined) await writeFile(file, usersFile);
  const vars = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.replace('DIR', dir)]));
  const config = envSchema.parse({
    FTP_ROOT: path.join(dir, 'root'),
    STATE_DIR: path.join(dir, 'state'),
    ...(usersFile !== undefined && { FTP_USERS_FILE: file }),
    ...vars,
  });
  const { log, lines } = captureLog();
  const announced: string[] = [];
  const users = await createUserStore(config, log, { state: await StateDir.open(config, log), announce: (line) => announced.push(line) });
  afterThisTest(() => users.close?.());
  return { users, lines, dir, announced };
}

const generatedUser = ({ announced }: { announced: string[] }) => announced.length > 0;
const problemsOf = (err: unknown): readonly string[] => (err instanceof ConfigError ? err.problems : [String(err)]);

describe('createUserStore', () => {
  it('creates "ftp" with a random password only when no user source is configured', async () => {
    const bare = await create({});
    expect(bare.announced).toHaveLength(1);
    const password = /^Generated password for FTP user "ftp": (\S+)$/.exec(bare.announced[0]!)?.[1];
    expect(await bare.users.authenticate('ftp', password!, LOCAL)).toMatchObject({ ok: true, account: { writable: true } });
    expect(await bare.users.authenticate('ftp', `${password}x`, LOCAL)).toEqual({ ok: false, reason: 'wrong-password' });
    expect(JSON.stringify(bare.lines)).not.toContain(password);

    expect(generatedUser(await create({ FTP_ANONYMOUS: 'true' }))).toBe(false);
    expect(generatedUser(await create({}, '# nobody yet\n'))).toBe(false);
    expect(generatedUser(await create({ FTP_USER: 'admin', FTP_PASSWORD: 'pw' }))).toBe(false);
  });

  it('anonymous: "anonymous" or "ftp" in any case, any password, read-only in FTP_ANONYMOUS_ROOT, created at start', async () => {
    const { users, dir } = await create({ FTP_ANONYMOUS: 'true', FTP_ANONYMOUS_ROOT: 'DIR/pub' });
    expect((await stat(path.join(dir, 'pub'))).isDirectory()).toBe(true);
    const account = { name: 'anonymous', homeDir: path.join(dir, 'pub'), writable: false };
    expect(await users.authenticate('anonymous', 'me@example.com', LOCAL)).toEqual({ ok: true, account });
    expect(await users.authenticate('FTP', '', LOCAL)).toEqual({ ok: true, account });
    expect(await users.authenticate('guest', 'x', LOCAL)).toEqual({ ok: false, reason: 'unknown-user' });
  });

  it('combines FTP_USER, the users file and anonymous, each user with its own home and rights', async () => {
    const env = { FTP_USER: 'admin', FTP_PASSWORD: 'admin-pass', FTP_ANONYMOUS: 'true', FTP_ANONYMOUS_ROOT: 'DIR/pub' };
    const { users, dir } = await create(env, FILE_USER);
    const root = path.join(dir, 'root');
    expect(await users.authenticate('admin', 'admin-pass', LOCAL)).toEqual({
      ok: true,
      account: { name: 'admin', homeDir: root, writable: true },
    });
    expect(await users.authenticate('bob', 'bob-pass', LOCAL)).toMatchObject({
      ok: true,
      account: { name: 'bob', homeDir: path.join(root, 'bob'), writable: true },
    });
    expect(await users.authenticate('ftp', 'x', LOCAL)).toMatchObject({ ok: true, account: { writable: false } });
    // The source that knows the name says why it failed; a name nobody knows is unknown.
    expect(await users.authenticate('bob', 'admin-pass', LOCAL)).toEqual({ ok: false, reason: 'wrong-password' });
    expect(await users.authenticate('admin', 'bob-pass', LOCAL)).toEqual({ ok: false, reason: 'wrong-password' });
    expect(await users.authenticate('eve', 'bob-pass', LOCAL)).toEqual({ ok: false, reason: 'unknown-user' });
  });

  it('refuses a users-file line that names FTP_USER or, with anonymous on, an anonymous name', async () => {
    const line = (name: string) => `${name}:${bcrypt.hashSync('x', 4)}:${name}:rw\n`;
    const err = await create({ FTP_USER: 'admin', FTP_PASSWORD: 'pw', FTP_ANONYMOUS: 'true' }, `${line('admin')}${line('Anonymous')}`).catch(
      (e: unknown) => e,
    );
    expect(problemsOf(err)).toEqual([
      'FTP_USERS_FILE: line 1: user "admin" is already defined by FTP_USER',
      'FTP_USERS_FILE: line 2: user "Anonymous" is already defined by FTP_ANONYMOUS',
    ]);
    // Without anonymous access, "ftp" is an ordinary name.
    const { users } = await create({}, line('ftp'));
    expect(await users.authenticate('ftp', 'x', LOCAL)).toMatchObject({ ok: true, account: { writable: true } });
  });

  it('refuses FTP_USER with an anonymous name while anonymous access is on', async () => {
    const err = await create({ FTP_USER: 'ftp', FTP_PASSWORD: 'pw', FTP_ANONYMOUS: 'true' }).catch((e: unknown) => e);
    expect(problemsOf(err)).toEqual(['FTP_USER: "ftp" is an anonymous login name, and FTP_ANONYMOUS is true']);
  });

  it('gives anonymous FTP_ROOT/pub by default, apart from every home', async () => {
    const { users, dir } = await create({ FTP_ANONYMOUS: 'true' }, FILE_USER);
    expect(await users.authenticate('anonymous', 'x', LOCAL)).toMatchObject({ account: { homeDir: path.join(dir, 'root', 'pub') } });
    expect((await stat(path.join(dir, 'root', 'pub'))).isDirectory()).toBe(true);
  });

  it('refuses to start when the anonymous root contains a home, naming both', async () => {
    const admin = await create({ FTP_USER: 'admin', FTP_PASSWORD: 'pw', FTP_ANONYMOUS: 'true', FTP_ANONYMOUS_ROOT: 'DIR/root' }).catch(
      (e: unknown) => e,
    );
    expect(problemsOf(admin)).toEqual([expect.stringMatching(/^FTP_ANONYMOUS_ROOT: .*\/root contains FTP_ROOT .* the home of FTP_USER "admin"/)]);
    const fileUser = await create({ FTP_ANONYMOUS: 'true', FTP_ANONYMOUS_ROOT: 'DIR/root' }, FILE_USER).catch((e: unknown) => e);
    expect(problemsOf(fileUser)).toEqual([
      expect.stringMatching(/^FTP_USERS_FILE: line 1: home "bob" \(.*\/root\/bob\) is inside FTP_ANONYMOUS_ROOT/),
    ]);
  });
});
