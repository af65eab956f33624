import { execFile } from 'node:child_process';
import { randomBytes, scryptSync } from 'node:crypto';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';
import { describe, expect, it } from 'vitest';
import { hashPassword, parsePasswordHash, verifyPassword, type PasswordHash } from '../../../src/auth/password-hash.js';

const run = promisify(execFile);
const htpasswd = await run('htpasswd', ['-nbB', 'probe', 'probe']).then(
  () => true,
  () => false,
);

function parsed(text: string): PasswordHash {
  const result = parsePasswordHash(text);
  if ('problem' in result) throw new Error(result.problem);
  return result.hash;
}

const b64 = (b: Buffer): string => b.toString('base64').replace(/=+$/, '');

describe('bcrypt hashes', () => {
  it.each([
    // The OpenBSD/jBCrypt test vector for "abc".
    ['$2a$ (OpenBSD test vector)', 'abc', '$2a$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i'],
    ['$2b$ (bcryptjs)', 'bcryptjs secret', bcrypt.hashSync('bcryptjs secret', 4)],
    // `htpasswd -nbB bob 'htpasswd secret'`, apache2-utils 2.4.71.
    ['$2y$ (htpasswd)', 'htpasswd secret', '$2y$05$clGbfFgP3w84.BxeAH0e8OPXBSqf/k8EEMe9xKMvd9VbYvVb8nkvS'],
  ])('%s: the right password verifies, a wrong one does not', async (_kind, password, hash) => {
    expect(await verifyPassword(parsed(hash), Buffer.from(password))).toBe(true);
    expect(await verifyPassword(parsed(hash), Buffer.from(`${password}x`))).toBe(false);
  });

  it.skipIf(!htpasswd)('verifies what the installed htpasswd -B prints now', async () => {
    const { stdout } = await run('htpasswd', ['-nbB', 'carol', 'fresh from htpasswd']);
    const hash = stdout.trim().split(':')[1]!;
    expect(hash).toMatch(/^\$2y\$/);
    expect(await verifyPassword(parsed(hash), Buffer.from('fresh from htpasswd'))).toBe(true);
    expect(await verifyPassword(parsed(hash), Buffer.from('fresh from htpasswd '))).toBe(false);
  });
});

describe('scrypt hashes', () => {
  it('hashPassword prints the documented format and round-trips', async () => {
    const hash = await hashPassword('pässword with spaces');
    expect(hash).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(await verifyPassword(parsed(hash), Buffer.from('pässword with spaces'))).toBe(true);
    expect(await verifyPassword(parsed(hash), Buffer.from('password with spaces'))).toBe(false);
    // A fresh salt each time.
    expect(await hashPassword('pässword with spaces')).not.toBe(hash);
  });

  it('reads the parameters from the string: a hash made elsewhere with other parameters verifies', async () => {
    const salt = randomBytes(12);
    const key = scryptSync('other tool', salt, 48, { N: 2 ** 10, r: 4, p: 2 });
    const hash = parsed(`$scrypt$ln=10,r=4,p=2$${b64(salt)}$${b64(key)}`);
    expect(await verifyPassword(hash, Buffer.from('other tool'))).toBe(true);
    expect(await verifyPassword(hash, Buffer.from('other tool!'))).toBe(false);
  });
});

describe('parsePasswordHash refuses', () => {
  const salt = b64(randomBytes(16));
  const key = b64(randomBytes(32));
  it.each([
    ['a plain-text password', 'hunter2', /neither bcrypt/],
    ['$2x$ bcrypt', '$2x$05$clGbfFgP3w84.BxeAH0e8OPXBSqf/k8EEMe9xKMvd9VbYvVb8nkvS', /neither bcrypt/],
    ['a truncated bcrypt hash', '$2b$05$clGbfFgP3w84.BxeAH0e8OPXBSqf/k8EEMe9xKMvd9VbYvVb8nkv', /neither bcrypt/],
    ['bcrypt cost 3', '$2b$03$clGbfFgP3w84.BxeAH0e8OPXBSqf/k8EEMe9xKMvd9VbYvVb8nkvS', /cost 3 out of range/],
    ['scrypt ln=0', `$scrypt$ln=0,r=8,p=1$${salt}$${key}`, /out of range/],
    ['scrypt needing 1 GiB', `$scrypt$ln=20,r=8,p=1$${salt}$${key}`, /at most 256 MiB/],
    ['scrypt with a 6-byte salt', `$scrypt$ln=10,r=8,p=1$${b64(randomBytes(6))}$${key}`, /salt under 8 bytes/],
    ['scrypt with an unknown parameter order', `$scrypt$r=8,ln=10,p=1$${salt}$${key}`, /neither bcrypt/],
  ])('%s, without repeating the hash', (_case, text, problem) => {
    const result = parsePasswordHash(text);
    expect(result).toEqual({ problem: expect.stringMatching(problem) });
    expect((result as { problem: string }).problem).not.toContain(text);
  });
});
