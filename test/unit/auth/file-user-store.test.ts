import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { describe, expect, it, vi } from 'vitest';
import { FileUserStore } from '../../../src/auth/file-user-store.js';
import { hashPassword } from '../../../src/auth/password-hash.js';
import { ConfigError } from '../../../src/config/config.js';
import { afterThisTest, captureLog, tempDir } from '../../support/fixtures.js';

const LOCAL = { address: '127.0.0.1' };
const hash = (password: string): string => bcrypt.hashSync(password, 4);

/** The store over `file`, homes under `root` next to it; closed after the test. */
async function openStore(file: string, pollIntervalMs = 3_600_000) {
  const { log, lines } = captureLog();
  const root = path.join(path.dirname(file), 'root');
  const store = await FileUserStore.open({ file, root, log, claimedBy: () => undefined, pollIntervalMs });
  afterThisTest(() => store.close());
  return { store, lines, root };
}

async function setup(content: string) {
  const file = path.join(await tempDir(), 'users');
  await writeFile(file, content);
  return { file, ...(await openStore(file)) };
}

const problemsOf = (err: unknown): readonly string[] => (err instanceof ConfigError ? err.problems : [String(err)]);

describe('FileUserStore: logging in', () => {
  it('accepts the right password and says why a login failed', async () => {
    const { root, store } = await setup(`alice:${hash('a-pass')}:homes/alice:rw\nbob:${await hashPassword('b-pass')}:homes/bob:ro\n`);
    expect(await store.authenticate('alice', 'a-pass', LOCAL)).toMatchObject({
      ok: true,
      account: { name: 'alice', homeDir: path.join(root, 'homes/alice'), writable: true },
    });
    expect(await store.authenticate('bob', 'b-pass', LOCAL)).toMatchObject({ ok: true, account: { writable: false } });
    expect(await store.authenticate('alice', 'b-pass', LOCAL)).toEqual({ ok: false, reason: 'wrong-password' });
    expect(await store.authenticate('mallory', 'a-pass', LOCAL)).toEqual({ ok: false, reason: 'unknown-user' });
  });

  it('checks an unknown name against a decoy hash, and never lets the decoy match', async () => {
    // The decoy is the first user's hash: its own password, under another name, must still fail.
    const { store } = await setup(`alice:${hash('decoy-pass')}:alice:rw\n`);
    expect(await store.authenticate('nobody', 'decoy-pass', LOCAL)).toEqual({ ok: false, reason: 'unknown-user' });
  });

  it('refuses a user outside allowed-cidrs even with the right password', async () => {
    const { store } = await setup(`carol:${hash('c-pass')}:carol:rw:10.0.0.0/8,2001:db8::/32\n`);
    expect(await store.authenticate('carol', 'c-pass', LOCAL)).toEqual({ ok: false, reason: 'address-not-allowed' });
    expect(await store.authenticate('carol', 'c-pass', { address: '::1' })).toEqual({ ok: false, reason: 'address-not-allowed' });
    expect(await store.authenticate('carol', 'c-pass', { address: '10.20.30.40' })).toMatchObject({ ok: true });
    expect(await store.authenticate('carol', 'c-pass', { address: '2001:db8::42' })).toMatchObject({ ok: true });
    expect(await store.authenticate('carol', 'wrong', { address: '10.20.30.40' })).toEqual({ ok: false, reason: 'wrong-password' });
  });
});

describe('FileUserStore: at start', () => {
  it('throws a ConfigError naming each bad line, without the hash', async () => {
    const good = hash('x');
    const err = await setup(`# users\nalice:${good}:alice:rw\nbob:${good}:bob:rx\ncarol:${good}:/etc:rw\n`).catch((e: unknown) => e);
    expect(problemsOf(err)).toEqual([
      'FTP_USERS_FILE: line 3: unknown permissions "rx" (rw or ro)',
      'FTP_USERS_FILE: line 4: home "/etc" must be a relative path inside FTP_ROOT (no "..")',
    ]);
    expect(String(err)).not.toContain(good);
  });

  it('throws a ConfigError for a file that cannot be read', async () => {
    const file = path.join(await tempDir(), 'absent');
    const err = await openStore(file).catch((e: unknown) => e);
    expect(problemsOf(err)).toEqual([`FTP_USERS_FILE: cannot read ${file} (ENOENT)`]);
  });
});

describe('FileUserStore: reloading', () => {
  it('applies a changed file, does nothing for an unchanged one, and keeps the last good users over a broken one', async () => {
    const { file, store, lines } = await setup(`alice:${hash('old')}:alice:rw\n`);
    await writeFile(file, `alice:${hash('new')}:alice:rw\nbob:${hash('b')}:bob:ro\n`);
    await store.reload();
    expect(await store.authenticate('alice', 'new', LOCAL)).toMatchObject({ ok: true });
    expect(await store.authenticate('alice', 'old', LOCAL)).toMatchObject({ ok: false });
    expect(lines.filter((l) => l.msg === 'users file reloaded')).toMatchObject([{ users: 2 }]);

    const before = lines.length;
    await store.reload();
    expect(lines.length).toBe(before);

    await writeFile(file, `# broken\nalice:${hash('newer')}:alice:rw\nbob:${hash('b')}:../bob:ro\n`);
    await store.reload();
    expect(await store.authenticate('alice', 'new', LOCAL)).toMatchObject({ ok: true });
    expect(await store.authenticate('alice', 'newer', LOCAL)).toMatchObject({ ok: false });
    expect(lines.slice(before)).toMatchObject([
      { level: 40, line: 3, msg: 'users file line 3: home "../bob" must be a relative path inside FTP_ROOT (no "..")' },
      { level: 40, problems: 1, msg: 'users file not reloaded: keeping the current users' },
    ]);

    // The same broken content again: nothing new to say.
    const afterBroken = lines.length;
    await store.reload();
    expect(lines.length).toBe(afterBroken);
  });

  it('keeps the users while the file is missing, and says so once', async () => {
    const { file, store, lines } = await setup(`alice:${hash('a')}:alice:rw\n`);
    await rm(file);
    await store.reload();
    await store.reload();
    expect(lines.filter((l) => l.code === 'ENOENT')).toHaveLength(1);
    expect(await store.authenticate('alice', 'a', LOCAL)).toMatchObject({ ok: true });
  });

  it('notices a Kubernetes-style secret update (a ..data symlink swap) without polling', async () => {
    const dir = await tempDir();
    // The layout kubelet writes: users -> ..data/users, ..data -> ..<timestamp>.
    const version = async (name: string, content: string) => {
      await mkdir(path.join(dir, name));
      await writeFile(path.join(dir, name, 'users'), content);
    };
    await version('..2024_01_01', `alice:${hash('first')}:alice:rw\n`);
    await symlink('..2024_01_01', path.join(dir, '..data'));
    await symlink('..data/users', path.join(dir, 'users'));
    const { store } = await openStore(path.join(dir, 'users'));
    expect(await store.authenticate('alice', 'first', LOCAL)).toMatchObject({ ok: true });

    await version('..2024_01_02', `alice:${hash('second')}:alice:rw\n`);
    await symlink('..2024_01_02', path.join(dir, '..data_tmp'));
    await rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    await rm(path.join(dir, '..2024_01_01'), { recursive: true });

    await vi.waitFor(async () => expect(await store.authenticate('alice', 'second', LOCAL)).toMatchObject({ ok: true }), {
      timeout: 5000,
      interval: 50,
    });
    expect(await store.authenticate('alice', 'first', LOCAL)).toMatchObject({ ok: false });
  });

  it('re-reads the file on its timer, for changes the directory watch cannot see', async () => {
    // The file is a link into another directory: writing the target there makes no event where we watch.
    const dir = await tempDir();
    await mkdir(path.join(dir, 'watched'));
    await mkdir(path.join(dir, 'elsewhere'));
    const target = path.join(dir, 'elsewhere', 'users');
    await writeFile(target, `alice:${hash('first')}:alice:rw\n`);
    await symlink(target, path.join(dir, 'watched', 'users'));
    const { store, lines } = await openStore(path.join(dir, 'watched', 'users'), 50);
    await writeFile(target, `alice:${hash('second')}:alice:rw\n`);
    await vi.waitFor(() => expect(lines.some((l) => l.msg === 'users file reloaded')).toBe(true), { timeout: 2000, interval: 20 });
    expect(await store.authenticate('alice', 'second', LOCAL)).toMatchObject({ ok: true });
  });

  it('stops reloading once closed', async () => {
    const { file, store } = await setup(`alice:${hash('first')}:alice:rw\n`);
    store.close();
    await writeFile(file, `alice:${hash('second')}:alice:rw\n`);
    await store.reload();
    expect(await store.authenticate('alice', 'first', LOCAL)).toMatchObject({ ok: true });
  });
});
