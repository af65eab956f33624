import { createHash, timingSafeEqual } from 'node:crypto';
import { passwordBytes, type Account, type AuthResult, type Password, type UserStore } from './user-store.js';

/** Digests have a fixed length, so comparing them in constant time also hides the password's length. */
const digest = (s: Buffer | string): Buffer => createHash('sha256').update(s).digest();

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

  async authenticate(name: string, password: Password): Promise<AuthResult> {
    // Evaluate both comparisons always, so an unknown user costs the same as a wrong password.
    const nameOk = timingSafeEqual(digest(name), this.nameDigest);
    const passwordOk = timingSafeEqual(digest(passwordBytes(password)), this.passwordDigest);
    if (!nameOk) return { ok: false, reason: 'unknown-user' };
    return passwordOk ? { ok: true, account: this.account } : { ok: false, reason: 'wrong-password' };
  }
}
