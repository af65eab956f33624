import { createHash, timingSafeEqual } from 'node:crypto';
import { verifyPassword, type PasswordHash } from './password-hash.js';
import { passwordBytes, type Account, type AuthResult, type Password, type UserStore } from './user-store.js';

/** Digests have a fixed length, so comparing them in constant time also hides the password's length. */
const digest = (s: Buffer | string): Buffer => createHash('sha256').update(s).digest();

/** FTP_PASSWORD as configured, or the hash of a generated password (STATE_DIR). */
export type StaticSecret = { readonly password: string } | { readonly hash: PasswordHash };

/** One user whose home is FTP_ROOT: FTP_USER/FTP_PASSWORD, or the generated default user. */
export class StaticUserStore implements UserStore {
  private readonly nameDigest: Buffer;
  private readonly matches: (password: Buffer) => Promise<boolean>;

  constructor(
    private readonly account: Account,
    secret: StaticSecret,
  ) {
    this.nameDigest = digest(account.name);
    if ('hash' in secret) {
      this.matches = (password) => verifyPassword(secret.hash, password);
    } else {
      const passwordDigest = digest(secret.password);
      this.matches = async (password) => timingSafeEqual(digest(password), passwordDigest);
    }
  }

  async authenticate(name: string, password: Password): Promise<AuthResult> {
    // Evaluate both comparisons always, so an unknown user costs the same as a wrong password.
    const nameOk = timingSafeEqual(digest(name), this.nameDigest);
    const passwordOk = await this.matches(passwordBytes(password));
    if (!nameOk) return { ok: false, reason: 'unknown-user' };
    return passwordOk ? { ok: true, account: this.account } : { ok: false, reason: 'wrong-password' };
  }
}
