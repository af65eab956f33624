/*
 * Finding 8, logins: password bytes that are not UTF-8 collapsed to U+FFFD, so different passwords matched; and
 * unknown user names were checked against the first user's hash only, so users with a costlier hash kind could
 * be told from unknown names by how long a failed login took.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { describe, expect, it } from 'vitest';
import { FileUserStore } from '../../src/auth/file-user-store.js';
import { hashPassword } from '../../src/auth/password-hash.js';
import { afterThisTest, captureLog, tempDir } from '../support/fixtures.js';
import { report } from '../support/measure.js';
import { RawFtpClient } from '../support/raw-client.js';
import { withServer } from '../support/server.js';

/** PASS with exactly these bytes after USER `user`; the reply code. */
async function loginWithBytes(port: number, user: string, password: Buffer): Promise<number> {
  const c = await RawFtpClient.connect(port);
  afterThisTest(() => c.close());
  await c.read();
  expect((await c.upgrade()).code).toBe(234);
  expect((await c.send(`USER ${user}`)).code).toBe(331);
  c.writeRaw(Buffer.concat([Buffer.from('PASS '), password, Buffer.from('\r\n')]));
  return (await c.read(10_000)).code;
}

const REPLACEMENT = '\uFFFD';

describe('password bytes', () => {
  it('compares what the client sent: invalid UTF-8 never matches a password containing U+FFFD', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'users');
    await writeFile(file, `bob:${bcrypt.hashSync(`${REPLACEMENT}b`, 4)}:bob:rw\n`);
    await withServer({ FTP_USER: 'alice', FTP_PASSWORD: `${REPLACEMENT}a`, FTP_USERS_FILE: file }, async (srv) => {
      expect(await loginWithBytes(srv.port, 'alice', Buffer.from([0xff, 0x61]))).toBe(530);
      expect(await loginWithBytes(srv.port, 'alice', Buffer.from(`${REPLACEMENT}a`))).toBe(230);
      expect(await loginWithBytes(srv.port, 'bob', Buffer.from([0xc0, 0x62]))).toBe(530);
      expect(await loginWithBytes(srv.port, 'bob', Buffer.from(`${REPLACEMENT}b`))).toBe(230);
    });
  }, 30_000);
});

describe('unknown user names and hash kinds', () => {
  it('costs unknown names what the users cost, kind by kind, the same each time for one name', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'users');
    // Two cheap bcrypt users first (the old decoy was the first user's hash), one costly scrypt user.
    const lines = [`amy:${bcrypt.hashSync('a', 4)}:amy:rw`, `ben:${bcrypt.hashSync('b', 4)}:ben:rw`, `cat:${await hashPassword('c')}:cat:rw`];
    await writeFile(file, `${lines.join('\n')}\n`);
    const store = await FileUserStore.open({ file, root: dir, log: captureLog().log, claimedBy: () => undefined, pollIntervalMs: 3_600_000 });
    afterThisTest(() => store.close());
    const cost = async (name: string) => {
      const started = performance.now();
      await store.authenticate(name, 'wrong', { address: '127.0.0.1' });
      return performance.now() - started;
    };
    const scrypt = await cost('cat');
    const bcryptCost = await cost('amy');
    const names = Array.from({ length: 60 }, (_, i) => `nobody-${i}`);
    const slow = [];
    for (const name of names) if ((await cost(name)) > (scrypt + bcryptCost) / 2) slow.push(name);
    report('decoys', { scryptMs: scrypt, bcryptMs: bcryptCost, slowUnknown: slow.length, unknown: names.length });
    // About a third of unknown names cost what the scrypt user costs (the kinds' shares: 2 bcrypt, 1 scrypt).
    expect(slow.length).toBeGreaterThan(8);
    expect(slow.length).toBeLessThan(40);
    // A name costs the same each time: repeating it learns nothing.
    for (const name of slow.slice(0, 3)) expect(await cost(name)).toBeGreaterThan((scrypt + bcryptCost) / 2);
  }, 60_000);
});
