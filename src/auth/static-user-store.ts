import { createHash, timingSafeEqual } from 'node:crypto';
import type { Account, AuthResult, UserStore } from './user-store.js';

/** Digests have a fixed length, so comparing them in constant time also hides the password's length. */
const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** One user from FTP_USER/FTP_PASSWORD, home = FTP_ROOT. */
export class StaticUserStore implements UserStore {
  private readonly nameDigest: Buffer;
  private readonly passwordDigest: Buffer;

  constructor(
    private readonly account: Account,
    password: string,
  ) {
    this.nameDigest = digest(account.name);
    this.passwordDigest = digest(password);
  }

  async authenticate(name: string, password: string): Promise<AuthResult> {
    // Evaluate both comparisons always, so an unknown user costs the same as a wrong password.
    const nameOk = timingSafeEqual(digest(name), this.nameDigest);
    const passwordOk = timingSafeEqual(digest(password), this.passwordDigest);
    if (!nameOk) return { ok: false, reason: 'unknown-user' };
    return passwordOk ? { ok: true, account: this.account } : { ok: false, reason: 'wrong-password' };
  }
}
