import { isUtf8 } from 'node:buffer';
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import bcrypt from 'bcryptjs';

/**
 * Password hashes the users file accepts:
 * - bcrypt `$2a$`, `$2b$`, `$2y$` (so `htpasswd -nbB user pass` output works);
 * - scrypt as printed by `hash-password`: `$scrypt$ln=15,r=8,p=1$<salt>$<key>`, N = 2^ln, salt and derived
 *   key in unpadded base64. The parameters travel in the string, so raising them later breaks no old hash.
 */
export type PasswordHash =
  | { readonly kind: 'bcrypt'; readonly encoded: string }
  | { readonly kind: 'scrypt'; readonly cost: ScryptCost; readonly salt: Buffer; readonly key: Buffer };

interface ScryptCost {
  readonly ln: number;
  readonly r: number;
  readonly p: number;
}

/** What hash-password uses: 32 MiB and some tens of ms per login. */
const DEFAULT_COST: ScryptCost = { ln: 15, r: 8, p: 1 };
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** A hash from the file decides how much memory each login takes; refuse ones that would exhaust a small container. */
const MAX_SCRYPT_MEMORY = 256 * 1024 * 1024;

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const SCRYPT = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

/** Parses a hash from the users file; the problem text never repeats the hash. */
export function parsePasswordHash(text: string): { hash: PasswordHash } | { problem: string } {
  const b = BCRYPT.exec(text);
  if (b) {
    const rounds = Number(b[1]);
    if (rounds < 4 || rounds > 31) return { problem: `bcrypt cost ${rounds} out of range (4 to 31)` };
    return { hash: { kind: 'bcrypt', encoded: text } };
  }
  const s = SCRYPT.exec(text);
  if (s) {
    const cost = { ln: Number(s[1]), r: Number(s[2]), p: Number(s[3]) };
    const salt = Buffer.from(s[4]!, 'base64');
    const key = Buffer.from(s[5]!, 'base64');
    if (cost.ln < 1 || cost.r < 1 || cost.p < 1 || scryptMemory(cost) > MAX_SCRYPT_MEMORY) {
      const given = `ln=${cost.ln},r=${cost.r},p=${cost.p}`;
      return { problem: `scrypt parameters ${given} out of range (each at least 1; 128·2^ln·r at most 256 MiB)` };
    }
    if (salt.length < 8 || key.length < 16 || key.length > 64) {
      return { problem: 'scrypt hash with a salt under 8 bytes or a key outside 16 to 64 bytes' };
    }
    return { hash: { kind: 'scrypt', cost, salt, key } };
  }
  return { problem: 'password hash is neither bcrypt ($2a$, $2b$, $2y$) nor scrypt from hash-password ($scrypt$…)' };
}

const scryptMemory = ({ ln, r }: ScryptCost): number => 128 * 2 ** ln * r;

function deriveKey(password: Buffer | string, salt: Buffer, length: number, { ln, r, p }: ScryptCost): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // parsePasswordHash bounds the memory; maxmem only lifts Node's 32 MiB default, which ln=15,r=8 just exceeds.
    scrypt(password, salt, length, { N: 2 ** ln, r, p, maxmem: 2 * MAX_SCRYPT_MEMORY }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/**
 * Checks the client's bytes. Both kinds run off the event loop's critical path: bcryptjs yields between rounds,
 * scrypt runs on the thread pool. bcryptjs hashes UTF-8 strings only: bytes that are not UTF-8 still cost a full
 * comparison but never match (decoding them would map different passwords to the same U+FFFD text).
 */
export async function verifyPassword(hash: PasswordHash, password: Buffer): Promise<boolean> {
  if (hash.kind === 'scrypt') {
    const key = await deriveKey(password, hash.salt, hash.key.length, hash.cost);
    return timingSafeEqual(key, hash.key);
  }
  const matches = await bcrypt.compare(password.toString('utf8'), hash.encoded);
  return matches && isUtf8(password);
}

/** Memory one verification of `hash` takes, as a comparable cost (bcrypt: its rounds, as powers of two). */
export function hashCost(hash: PasswordHash): number {
  if (hash.kind === 'bcrypt') return 2 ** Number(hash.encoded.slice(4, 6));
  return scryptMemory(hash.cost) * hash.cost.p;
}

const base64 = (b: Buffer): string => b.toString('base64').replace(/=+$/, '');

/** The `hash-password` format, with a fresh random salt. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await deriveKey(password, salt, KEY_BYTES, DEFAULT_COST);
  const { ln, r, p } = DEFAULT_COST;
  return `$scrypt$ln=${ln},r=${r},p=${p}$${base64(salt)}$${base64(key)}`;
}
